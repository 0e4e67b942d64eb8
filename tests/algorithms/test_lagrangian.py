"""Lagrange multiplier: rises while the constraint is violated, falls back to exactly 0, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.algorithms.lagrangian import LagrangeMultiplier, lagrangian_scores


def test_rises_while_violated_then_returns_to_zero_never_below():
    lam = LagrangeMultiplier(init=0.0, lr=0.5)
    # cost 1.0 over threshold 0.2: gradient 0.8, step 0.4 each → 0.4, 0.8, 1.2
    values = [lam.update(mean_cost=1.0, threshold=0.2) for _ in range(3)]
    assert values == pytest.approx([0.4, 0.8, 1.2])
    # cost 0.0 under threshold 0.2: step −0.1 each → 1.1, 1.0, …, reaches 0 after 12 steps and stays
    down = [lam.update(0.0, 0.2) for _ in range(15)]
    assert down[0] == pytest.approx(1.1) and all(a >= b for a, b in zip(down, down[1:], strict=False))
    assert down[-1] == 0.0 and min(down) >= 0.0 and lam.value == 0.0
    assert lam.update(0.0, 0.2) == 0.0  # projected: never below 0


def test_max_value_and_tensor_cost():
    lam = LagrangeMultiplier(init=0.9, lr=1.0, max_value=1.0)
    assert lam.update(torch.tensor(5.0), 0.0) == 1.0


def test_state_dict_round_trip_resumes_exactly():
    a = LagrangeMultiplier(lr=0.1)
    for cost in [0.7, 0.9, 0.1]:
        a.update(cost, 0.3)
    b = LagrangeMultiplier(lr=0.1)
    b.load_state_dict(a.state_dict())
    assert b.value == a.value and b.update(0.5, 0.3) == a.update(0.5, 0.3)


def test_invalid_arguments():
    for kwargs in [dict(init=-1.0), dict(lr=0.0), dict(init=2.0, max_value=1.0)]:
        with pytest.raises(ValueError):
            LagrangeMultiplier(**kwargs)


def test_lagrangian_scores():
    r, c = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    # λ = 1: (R − C) / 2 = [0.25, 1.5]; unnormalised R − C = [0.5, 3.0]
    torch.testing.assert_close(lagrangian_scores(r, c, 1.0), torch.tensor([0.25, 1.5]))
    torch.testing.assert_close(lagrangian_scores(r, c, 1.0, normalize=False), torch.tensor([0.5, 3.0]))
    assert math.isclose(lagrangian_scores(r, c, 0.0)[0].item(), 1.0)
