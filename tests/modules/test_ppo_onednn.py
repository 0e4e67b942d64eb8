"""``ppo.onednn`` / ``generation.onednn``: the PPO stage routes its own models' fp32 linears through oneDNN.

The kernel calls of one training step are counted with torch.profiler, so a switch that routes nothing,
or a fast path that falls back to the stock GEMM, fails here.
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import seed_everything

from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.ppo_config import PPOLoopSpec
from rlhf_lightning.rollout import onednn
from rlhf_lightning.rollout.generation import GenerationSpec
from tests.modules.ppo_helpers import CharLength, make_data, make_module, make_trainer, write_prompts

pytestmark = pytest.mark.skipif(not onednn.available(), reason="PyTorch built without oneDNN")


def _fit_counting(module, tiny_llama_dir, tmp_path) -> int:
    data = make_data(tiny_llama_dir, write_prompts(tmp_path / "prompts.jsonl", n=4))
    seed_everything(0)
    trainer = make_trainer(tmp_path, 1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        trainer.fit(module, data)
    assert module.optimizer_steps == 1
    return sum(e.count for e in prof.key_averages() if e.key == "mkldnn::_linear_pointwise")


def test_on_routes_policy_and_reference_and_survives_activation_checkpointing(tiny_llama_dir, tmp_path):
    """Gradient checkpointing recomputes each block in backward: the routed class covers it (a routed
    block closed before backward would make non-reentrant checkpointing raise CheckpointError)."""
    policy = ModelSpec(name_or_path=str(tiny_llama_dir), gradient_checkpointing=True)
    module = make_module(tiny_llama_dir, [CharLength()], policy=policy, ppo=PPOLoopSpec(onednn=True),
                         generation=GenerationSpec(max_new_tokens=4, do_sample=True, onednn=False))
    module.configure_model()
    for model in (module.model, module.ref_model):
        assert not any(type(m) is torch.nn.Linear for m in model.modules())
        assert any(type(m) is onednn.OneDNNLinear for m in model.modules())
    assert _fit_counting(module, tiny_llama_dir, tmp_path) > 0


def test_off_leaves_every_linear_stock(tiny_llama_dir, tmp_path):
    module = make_module(tiny_llama_dir, [CharLength()], ppo=PPOLoopSpec(onednn=False),
                         generation=GenerationSpec(max_new_tokens=4, do_sample=True, onednn=False))
    module.configure_model()
    assert not any(type(m) is onednn.OneDNNLinear for m in module.model.modules())
    assert _fit_counting(module, tiny_llama_dir, tmp_path) == 0
    assert torch.nn.Linear.forward is not onednn.OneDNNLinear.forward


def test_the_default_is_the_stock_kernel():
    """Off by default: tests/benchmarks/run_all.py measured oneDNN slower end to end on AMD Zen 5."""
    assert PPOLoopSpec().onednn is False and GenerationSpec().onednn is False
