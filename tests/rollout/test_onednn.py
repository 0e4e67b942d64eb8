"""oneDNN fp32 linear: same outputs and gradients as the stock path, stock path outside and for others."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.rollout import onednn
from rlhf_lightning.rollout.onednn import onednn_linear

pytestmark = pytest.mark.skipif(not onednn.available(), reason="PyTorch built without oneDNN")


def _grads(layer, x, on: bool):
    layer.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    with onednn_linear(on):
        out = layer(x)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()  # a non-uniform upstream gradient
    return out.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()


def test_forward_and_gradients_match_the_stock_linear():
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 40)
    x = torch.randn(3, 7, 48)
    for ours, stock in zip(_grads(layer, x, True), _grads(layer, x, False)):
        torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_no_grad_forward_matches_and_uses_onednn(monkeypatch):
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(5, 16)
    calls = []
    real = onednn._gemm
    monkeypatch.setattr(onednn, "_gemm", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad(), onednn_linear():
        out = layer(x)
    assert calls == [1]
    torch.testing.assert_close(out, x @ layer.weight.T, rtol=1e-5, atol=1e-5)


def test_other_dtypes_subclasses_and_autocast_take_the_stock_path(monkeypatch):
    monkeypatch.setattr(onednn, "_gemm", lambda *a: pytest.fail("oneDNN path taken"))

    class Custom(torch.nn.Linear):
        pass

    with torch.no_grad(), onednn_linear():
        torch.nn.Linear(4, 4).to(torch.float64)(torch.randn(2, 4, dtype=torch.float64))
        Custom(4, 4)(torch.randn(2, 4))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.Linear(4, 4)(torch.randn(2, 4))


def test_the_stock_forward_is_restored_after_nesting_and_errors():
    stock = torch.nn.Linear.forward
    with onednn_linear():
        with onednn_linear():
            assert torch.nn.Linear.forward is not stock
        assert torch.nn.Linear.forward is not stock  # the outer block is still active
    assert torch.nn.Linear.forward is stock
    with pytest.raises(RuntimeError):
        with onednn_linear():
            raise RuntimeError("boom")
    assert torch.nn.Linear.forward is stock
    with onednn_linear(enabled=False):
        assert torch.nn.Linear.forward is stock


def test_the_environment_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv("RLHF_LIGHTNING_ONEDNN", "0")
    stock = torch.nn.Linear.forward
    with onednn_linear():
        assert torch.nn.Linear.forward is stock
