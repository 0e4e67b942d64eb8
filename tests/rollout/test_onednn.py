"""oneDNN fp32 linear, per model: same outputs and gradients as the stock path, and the kernel really runs.

Kernel calls are counted with torch.profiler (``mkldnn::_linear_pointwise`` vs ``aten::addmm``/``aten::mm``),
so a route that silently falls back to the stock GEMM fails these tests.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from rlhf_lightning.errors import InvalidOption
from rlhf_lightning.rollout import onednn
from rlhf_lightning.rollout.generation import GenerationSpec

pytestmark = pytest.mark.skipif(not onednn.available(), reason="PyTorch built without oneDNN")

ONEDNN = "mkldnn::_linear_pointwise"
STOCK = ("aten::addmm", "aten::mm")


def _count(fn) -> dict[str, int]:
    """Calls of the oneDNN linear kernel and of the stock GEMMs while ``fn`` runs (forward and backward)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    counts = {ONEDNN: 0, "stock": 0}
    for event in prof.key_averages():
        if event.key == ONEDNN:
            counts[ONEDNN] += event.count
        elif event.key in STOCK:
            counts["stock"] += event.count
    return counts


def _upstream(out: torch.Tensor) -> torch.Tensor:
    return (out * torch.linspace(-1, 1, out.shape[-1])).sum()  # a non-uniform upstream gradient


def test_forward_and_backward_run_through_onednn_and_match_the_stock_linear():
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 40)
    x = torch.randn(3, 7, 48)

    def grads():
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = layer(xi)
        return out, xi

    stock_out, stock_x = grads()
    _upstream(stock_out).backward()
    stock = (stock_out.detach(), stock_x.grad, layer.weight.grad.clone(), layer.bias.grad.clone())

    layers = onednn.route(layer)
    try:
        assert type(layer) is onednn.OneDNNLinear and layers == [layer]
        got = {}
        fwd = _count(lambda: got.update(pair=grads()))
        out, xi = got["pair"]
        bwd = _count(lambda: _upstream(out).backward())
    finally:
        onednn.unroute(layers)
    assert fwd == {ONEDNN: 1, "stock": 0}
    assert bwd == {ONEDNN: 2, "stock": 0}  # grad_x = g·W and grad_W = gᵀ·x; the bias gradient is a sum
    assert type(layer) is torch.nn.Linear
    for ours, ref in zip((out.detach(), xi.grad, layer.weight.grad, layer.bias.grad), stock, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_no_grad_and_keyword_calls_take_the_fast_path():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(5, 16)
    with onednn.routed(layer, True) as n, torch.no_grad():
        assert n == 1
        got = {}
        counts = _count(lambda: got.update(pos=layer(x), kw=layer(input=x)))
    assert counts == {ONEDNN: 2, "stock": 0}
    for out in got.values():
        torch.testing.assert_close(out, x @ layer.weight.T, rtol=1e-5, atol=1e-5)


def test_only_the_routed_model_changes_and_it_is_restored():
    torch.manual_seed(0)
    mine, other = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)), torch.nn.Linear(4, 4)
    stock_forward = torch.nn.Linear.forward
    with pytest.raises(RuntimeError, match="boom"), onednn.routed(mine, True) as n:
        assert n == 2 and {type(m) for m in mine if isinstance(m, torch.nn.Linear)} == {onednn.OneDNNLinear}
        assert torch.nn.Linear.forward is stock_forward  # nothing process-wide
        x = torch.randn(2, 4)
        with torch.no_grad():
            assert _count(lambda: (other(x), torch.nn.functional.linear(x, other.weight))) == {ONEDNN: 0, "stock": 2}
        raise RuntimeError("boom")
    assert type(mine[0]) is torch.nn.Linear and type(mine[2]) is torch.nn.Linear
    assert not hasattr(mine[0], "_onednn_refs")


def test_nested_routing_keeps_the_outer_route():
    layer = torch.nn.Linear(4, 4)
    outer = onednn.route(layer)
    with onednn.routed(layer, True):
        assert type(layer) is onednn.OneDNNLinear
    assert type(layer) is onednn.OneDNNLinear  # the persistent route is still there
    onednn.unroute(outer)
    assert type(layer) is torch.nn.Linear
    with onednn.routed(layer, False) as n:
        assert n == 0 and type(layer) is torch.nn.Linear


def test_other_dtypes_subclasses_and_autocast_take_the_stock_path():
    class Custom(torch.nn.Linear):
        pass

    model = torch.nn.ModuleDict({"f64": torch.nn.Linear(4, 4).to(torch.float64), "custom": Custom(4, 4),
                                 "plain": torch.nn.Linear(4, 4)})
    with onednn.routed(model, True) as n, torch.no_grad():
        assert n == 2 and type(model["custom"]) is Custom  # subclasses keep their own forward

        def run():
            model["f64"](torch.randn(2, 4, dtype=torch.float64))
            model["custom"](torch.randn(2, 4))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model["plain"](torch.randn(2, 4))

        assert _count(run)[ONEDNN] == 0


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)

    def forward(self, x):
        return self.down(torch.tanh(self.up(x)))


def _checkpointed():
    torch.manual_seed(0)
    block, head = _Block(), torch.nn.Linear(8, 3)
    return block, head, torch.randn(4, 8, requires_grad=True)


def _loss(block, head, x):
    return _upstream(head(checkpoint(block, x, use_reentrant=False)))


def test_a_persistent_route_covers_activation_checkpointing_recompute():
    block, head, x = _checkpointed()
    ref_block, ref_head = copy.deepcopy(block), copy.deepcopy(head)
    layers = onednn.route(block) + onednn.route(head)
    try:
        got = {}
        fwd = _count(lambda: got.update(loss=_loss(block, head, x)))
        bwd = _count(lambda: got["loss"].backward())
    finally:
        onednn.unroute(layers)
    assert fwd == {ONEDNN: 3, "stock": 0}
    assert bwd == {ONEDNN: 2 + 3 * 2, "stock": 0}  # recompute of up/down, then 2 GEMMs per layer
    _loss(ref_block, ref_head, x.detach().requires_grad_(True)).backward()
    torch.testing.assert_close(block.up.weight.grad, ref_block.up.weight.grad, rtol=1e-5, atol=1e-5)


def test_a_routed_block_does_not_cover_recompute_after_it():
    """Documented limit of :func:`onednn.routed`: checkpoint recompute after the block would run the stock
    kernel, whose saved tensors differ (``Wᵀ`` vs ``W``), and non-reentrant checkpointing refuses that.
    This is why the PPO stage routes its models for their lifetime instead."""
    block, head, x = _checkpointed()
    with onednn.routed(torch.nn.ModuleList([block, head]), True):
        loss = _loss(block, head, x)
    with pytest.raises(torch.utils.checkpoint.CheckpointError):
        loss.backward()


def test_a_routed_model_deep_copies_and_pickles_and_keeps_its_state_dict_keys():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    keys = list(model.state_dict())
    layers = onednn.route(model)
    assert type(copy.deepcopy(model)[0]) is onednn.OneDNNLinear
    assert type(pickle.loads(pickle.dumps(model))[0]) is onednn.OneDNNLinear
    assert list(model.state_dict()) == keys
    onednn.unroute(layers)


def test_auto_follows_the_cached_probe(monkeypatch):
    first = onednn.probe()
    assert onednn.probe() == first  # measured once per process and thread count
    assert onednn.resolve("auto") == (first["speedup"] >= onednn.AUTO_MARGIN)
    assert onednn.resolve(True) and not onednn.resolve(False)
    with pytest.raises(ValueError, match="onednn"):
        onednn.resolve("on")  # YAML's on/off arrive as booleans; the strings are refused


def test_generation_option_is_checked_and_routes_only_while_generating(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf_lightning.rollout.generation import generate
    from tests.tiny import build_llama, build_tokenizer

    with pytest.raises(InvalidOption, match="onednn"):
        GenerationSpec(onednn="fast")
    tok_dir = build_tokenizer(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tok_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(build_llama(tmp_path / "m", vocab_size=len(tok)))
    batch = tok(["hello world", "spring"], return_tensors="pt", padding=True)
    counts = {}
    for option in (True, False):
        spec = GenerationSpec(max_new_tokens=3, min_new_tokens=3, onednn=option)
        counts[option] = _count(lambda s=spec: generate(model, tok, batch["input_ids"], batch["attention_mask"], s))
        assert all(type(m) is not onednn.OneDNNLinear for m in model.modules())
    n_linear = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert counts[True][ONEDNN] == 3 * n_linear and counts[True]["stock"] == 0  # 3 forwards, every layer
    assert counts[False][ONEDNN] == 0
