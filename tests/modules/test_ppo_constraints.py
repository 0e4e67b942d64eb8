"""Constrained RLHF in PPOModule: skip excludes violators from the gradient, penalties, PPO-Lagrangian λ."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from lightning.pytorch import seed_everything

from rlhf_lightning.constraints.base import ConstraintChecker
from rlhf_lightning.modules.ppo.config import ConstraintRule
from rlhf_lightning.modules.ppo.experience import apply_constraints
from rlhf_lightning.rollout.generation import GenerationSpec
from rlhf_lightning.rollout.samples import Rollout, position_ids_of
from tests.modules.ppo_helpers import CharLength, make_data, make_module, make_trainer, weights, write_prompts


class FixedCost(ConstraintChecker):
    """Costs set by the test: ``costs`` (one per sample, cycled) — the same for every call."""

    def __init__(self, costs=(0.0,), threshold: float = 0.0) -> None:
        super().__init__(threshold=threshold)
        self.costs = list(costs)

    def __call__(self, prompts, completions, **columns):
        return [self.costs[i % len(self.costs)] for i in range(len(completions))]


def first_batch(model_dir, tmp_path, batch_size=2):
    data = make_data(model_dir, write_prompts(tmp_path / "p.jsonl", n=4), batch_size=batch_size, shuffle=False)
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def subset(r: Rollout, rows: list[int]) -> Rollout:
    idx = torch.tensor(rows)
    pick = {k: getattr(r, k)[idx] for k in ("input_ids", "attention_mask", "position_ids", "completion_ids", "mask",
                                            "finished", "group_ids", "old_logps", "ref_logps", "values",
                                            "advantages", "returns") if getattr(r, k) is not None}
    return replace(r, **pick, valid=torch.ones(len(rows), dtype=torch.bool),
                   prompts=[r.prompts[i] for i in rows], completions=[r.completions[i] for i in rows])


def grads_of(module, r: Rollout) -> list[torch.Tensor]:
    module.zero_grad()
    loss, _ = module.minibatch_loss(r, torch.arange(len(r)))
    loss.backward()
    return [p.grad.clone() for p in module.parameters() if p.requires_grad and p.grad is not None]


def test_skip_mode_violators_contribute_zero_gradient(tiny_llama_dir, tmp_path):
    """Kept-but-skipped gives exactly the gradient of the batch with the violator removed."""
    rule = ConstraintRule(checker=FixedCost([5.0, 0.0, 0.0, 0.0]), mode="skip")
    module = make_module(tiny_llama_dir, [CharLength()], constraints=[rule],
                         generation=GenerationSpec(max_new_tokens=5, do_sample=True, num_return_sequences=2))
    module.configure_model()
    seed_everything(0)
    r, logs = module.make_experience(first_batch(tiny_llama_dir, tmp_path))
    assert r.valid.tolist() == [False, True, True, True]
    assert logs["constraint/FixedCost/violation_rate"] == 0.25 and logs["skipped_samples"] == 1
    with torch.no_grad():  # give the violator a large advantage: it must still not matter
        r.advantages[0] = torch.where(r.mask[0], 100.0, 0.0)
    kept_but_skipped = grads_of(module, r)
    removed = grads_of(module, subset(r, [1, 2, 3]))
    assert len(kept_but_skipped) == len(removed) > 0
    for a, b in zip(kept_but_skipped, removed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    not_skipped = grads_of(module, replace(r, valid=torch.ones(4, dtype=torch.bool)))
    assert any(not torch.allclose(a, b) for a, b in zip(kept_but_skipped, not_skipped, strict=True))


def test_all_violating_batch_is_logged_not_crashed(tiny_llama_dir, tmp_path):
    module = make_module(tiny_llama_dir, [CharLength()],
                         constraints=[ConstraintRule(checker=FixedCost([1.0]), mode="skip", name="always")])
    module.configure_model()
    before = weights(module.model)
    seed_everything(0)
    trainer = make_trainer(tmp_path, -1, max_epochs=1, limit_train_batches=2)
    with pytest.warns(UserWarning, match="every sample of the rollout was skipped"):
        trainer.fit(module, make_data(tiny_llama_dir, write_prompts(tmp_path / "p.jsonl")))
    m = trainer.logged_metrics
    assert m["train/all_skipped"] == 1 and m["constraint/always/violation_rate"] == 1
    assert module.optimizer_steps == 0 and module.rollouts_done == 2
    assert all(torch.equal(v, module.model.state_dict()[k]) for k, v in before.items())


def fake_rollout(n: int = 4) -> Rollout:
    ids = torch.ones(n, 3, dtype=torch.long)
    mask = torch.ones(n, 2, dtype=torch.bool)
    return Rollout(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=position_ids_of(torch.ones_like(ids)),
                   prompt_width=1, completion_ids=ids[:, 1:], mask=mask, finished=torch.ones(n, dtype=torch.bool),
                   group_ids=torch.arange(n), prompts=["p"] * n, completions=["c"] * n)


def _apply(module, total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The stage's constraint step on a 4-sample rollout, one process (global mean = local mean)."""
    return apply_constraints(module.constraint_rules, module.constraint_names, module.lambdas, fake_rollout(),
                             total, torch.ones(4, dtype=torch.bool), lambda s, c: s / c)


def test_penalize_subtracts_coef_times_cost(tiny_llama_dir):
    rule = ConstraintRule(checker=FixedCost([0.0, 2.0]), mode="penalize", coef=0.5)
    module = make_module(tiny_llama_dir, [CharLength()], constraints=[rule])
    total, valid, _ = _apply(module, torch.ones(4))
    assert total.tolist() == [1.0, 0.0, 1.0, 0.0] and valid.all()


def test_lagrange_multiplier_rises_while_violated_and_falls_back(tiny_llama_dir):
    """Threshold 1, λ lr 0.5: mean cost 3 → λ grows by 1 per step; cost 0 → shrinks by 0.5 to exactly 0."""
    checker = FixedCost([3.0], threshold=1.0)
    rule = ConstraintRule(checker=checker, mode="lagrangian", lambda_lr=0.5, normalize=True, name="len")
    module = make_module(tiny_llama_dir, [CharLength()], constraints=[rule])
    lams, scores = [], []
    for step in range(8):
        checker.costs = [3.0] if step < 4 else [0.0]
        total, _, logs = _apply(module, torch.full((4,), 2.0))
        lams.append(logs["constraint/len/lambda"])
        scores.append(float(total[0]))
    assert lams == [1.0, 2.0, 3.0, 4.0, 3.5, 3.0, 2.5, 2.0]
    # (R − λC) / (1 + λ) with R = 2, C = 3 at λ = 1: (2 − 3) / 2
    assert scores[0] == pytest.approx(-0.5)
    assert scores[4] == pytest.approx(2.0 / 4.5)  # C = 0: only the normalisation
    for _ in range(10):
        _apply(module, torch.ones(4))
    assert module.lambdas["len"].value == 0.0  # projected: never below 0


def test_lagrangian_lambda_logged_during_training(tiny_llama_dir, tmp_path):
    rule = ConstraintRule(checker=FixedCost([2.0]), mode="lagrangian", lambda_lr=0.1, name="cost")
    module = make_module(tiny_llama_dir, [CharLength()], constraints=[rule])
    seed_everything(0)
    trainer = make_trainer(tmp_path, 2)
    trainer.fit(module, make_data(tiny_llama_dir, write_prompts(tmp_path / "p.jsonl")))
    assert trainer.logged_metrics["constraint/cost/lambda"] == pytest.approx(0.4)
