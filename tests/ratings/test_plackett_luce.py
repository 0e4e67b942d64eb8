"""Plackett–Luce fits against hand-derived values.

Rankings 0 ≻ 1 ≻ 2 and 2 ≻ 1 ≻ 0: by symmetry θ_0 = θ_2 = a, θ_1 = b; with x = e^(b−a) each ranking
has probability 1/(2 + x) · x/(1 + x). Setting the derivative of ln x − ln(2 + x) − ln(1 + x) to 0:
1 = x/(2+x) + x/(1+x) ⇔ (2+x)(1+x) = x(1+x) + x(2+x) ⇔ x² = 2, so b − a = ln2/2 and, centred
(2a + b = 0), a = −ln2/6, b = ln2/3.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.ratings.bradley_terry import fit_bradley_terry
from rlhf_lightning.ratings.plackett_luce import (
    fit_plackett_luce,
    group_rankings,
    plackett_luce_derivatives,
    plackett_luce_nll,
)


def test_two_opposite_rankings_of_three_by_hand():
    fit = fit_plackett_luce(3, [[0, 1, 2], [2, 1, 0]])
    ln2 = math.log(2)
    torch.testing.assert_close(fit.ratings, torch.tensor([-ln2 / 6, ln2 / 3, -ln2 / 6], dtype=torch.float64))
    x = math.sqrt(2)
    assert fit.log_likelihood == pytest.approx(2 * math.log(x / ((2 + x) * (1 + x))), abs=1e-10)


def test_rankings_of_two_are_bradley_terry():
    pl = fit_plackett_luce(3, [[0, 1], [0, 1], [1, 0], [1, 2], [2, 0], [2, 1]])
    bt = fit_bradley_terry(3, [0, 0, 1, 1, 2, 2], [1, 1, 0, 2, 0, 1], [1.0] * 6)
    torch.testing.assert_close(pl.ratings, bt.ratings)
    torch.testing.assert_close(pl.se, bt.se)


def test_mixed_lengths_have_a_zero_gradient_and_a_shift_invariant_hessian():
    """Rankings of 2, 3 and 4 items together (grouped by length, no padding)."""
    rankings = [[0, 1, 2, 3], [3, 1, 0], [2, 0], [1, 3, 2], [0, 2, 1, 3], [3, 0]]
    fit = fit_plackett_luce(4, rankings)
    groups = group_rankings(rankings)

    def nll(t):
        return sum(plackett_luce_nll(t, order, w) for order, w in groups)

    assert torch.func.grad(nll)(fit.ratings).abs().max() < 1e-9
    h = torch.func.hessian(nll)(fit.ratings)
    assert h.sum(-1).abs().max() < 1e-10  # adding a constant to every rating changes nothing


def test_closed_form_derivatives_match_autograd():
    order = torch.tensor([[0, 2, 1, 3], [3, 1, 2, 0], [1, 0, 3, 2]])
    w = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    theta = torch.tensor([0.4, -0.3, 0.9, -1.0], dtype=torch.float64)
    g, h = plackett_luce_derivatives(theta, order, w)
    torch.testing.assert_close(g, torch.func.grad(plackett_luce_nll)(theta, order, w))
    torch.testing.assert_close(h, torch.func.hessian(plackett_luce_nll)(theta, order, w))


def test_recovers_strengths_from_simulated_rankings():
    """Sorting θ + Gumbel noise samples a Plackett–Luce ranking (Yellott 1977)."""
    gen = torch.Generator().manual_seed(0)
    truth = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.0], dtype=torch.float64)
    rankings = []
    for _ in range(800):
        items = torch.randperm(5, generator=gen)[:3]
        noise = -torch.log(-torch.log(torch.rand(3, generator=gen, dtype=torch.float64)))
        rankings.append(items[torch.argsort(truth[items] + noise, descending=True)].tolist())
    fit = fit_plackett_luce(5, rankings)
    err = fit.ratings - truth
    assert (err.abs() < 3.5 * fit.se).all() and err.abs().max() < 0.2, (err, fit.se)


def test_bad_rankings():
    with pytest.raises(ValueError, match="distinct"):
        fit_plackett_luce(3, [[0, 0, 1]])
    with pytest.raises(ValueError, match="distinct"):
        fit_plackett_luce(3, [[0]])
