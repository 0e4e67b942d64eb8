"""Exact resumption: 2 uninterrupted training steps == 1 step, checkpoint, new process state, 1 step."""

from __future__ import annotations

import torch
from lightning.pytorch import seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from rlhf_lightning.constraints.base import ConstraintChecker
from rlhf_lightning.modules.ppo.config import ConstraintRule, KLSpec, PPOLoopSpec
from rlhf_lightning.rollout.generation import GenerationSpec
from tests.modules.ppo_helpers import CharLength, make_data, make_module, make_trainer, write_prompts


class LengthCost(ConstraintChecker):
    def __call__(self, prompts, completions, **columns):
        return [len(c) / 10.0 for c in completions]


def build(model_dir):
    return make_module(
        model_dir, [CharLength()],
        constraints=[ConstraintRule(checker=LengthCost(threshold=0.5), mode="lagrangian", lambda_lr=0.3, name="len")],
        kl=KLSpec(coef=0.1, target=0.01, horizon=20),
        ppo=PPOLoopSpec(epochs=2, num_minibatches=2),  # 4 optimizer steps per training step
        generation=GenerationSpec(max_new_tokens=5, do_sample=True, temperature=1.3))


def run(model_dir, prompts, root, max_rollouts, ckpt_path=None, save=False):
    seed_everything(0)
    module = build(model_dir)
    callbacks = [ModelCheckpoint(dirpath=str(root / "ckpt"), every_n_train_steps=1, save_last=True,
                                 save_top_k=-1)] if save else []
    trainer = make_trainer(root, 4 * max_rollouts, callbacks=callbacks, enable_checkpointing=save)
    # shuffled prompts, 3 batches per epoch: the resumed run must pick up the prompt order mid-epoch
    trainer.fit(module, make_data(model_dir, prompts, batch_size=3, seed=7), ckpt_path=ckpt_path)
    return module, trainer


def test_resumed_run_continues_exactly(tiny_llama_dir, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", n=8)
    full, _ = run(tiny_llama_dir, prompts, tmp_path / "full", 2)
    first, _ = run(tiny_llama_dir, prompts, tmp_path / "a", 1, save=True)
    ckpt = tmp_path / "a" / "ckpt" / "last.ckpt"
    state = torch.load(ckpt, weights_only=False)
    assert not any(k.startswith("ref_model.") for k in state["state_dict"])  # the frozen copy is not stored
    saved = state["ppo_state"]
    assert saved["lambdas"]["len"]["value"] == first.lambdas["len"].value > 0
    assert saved["kl_controller"]["value"] == first.kl_ctl.value != 0.1
    assert saved["rollouts_done"] == 1 and "rng" in saved
    assert state["optimizer_states"][0]["state"], "optimizer moments are in the checkpoint"

    resumed, trainer = run(tiny_llama_dir, prompts, tmp_path / "b", 2, ckpt_path=str(ckpt))
    assert resumed.rollouts_done == 2 and trainer.global_step == 8
    assert resumed.lambdas["len"].value == full.lambdas["len"].value
    assert resumed.kl_ctl.value == full.kl_ctl.value
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{k} differs after resuming")


def test_data_module_state_points_after_the_used_batches(tiny_llama_dir, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", n=8)
    _, trainer = run(tiny_llama_dir, prompts, tmp_path / "a", 2, save=True)
    state = torch.load(tmp_path / "a" / "ckpt" / "last.ckpt", weights_only=False)
    data_state = next(v for k, v in state.items() if k.endswith("PromptDataModule"))
    assert data_state == {"epoch": 0, "samples_done": 6, "seed": 7}
