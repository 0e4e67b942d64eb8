"""Bradley–Terry and Davidson fits against hand-derived values.

Facts used below (d = θ_a − θ_b, σ the logistic function):
- Two items, ``w`` wins of a and ``l`` of b, no prior: the MLE sets σ(d) = w/(w+l), so d = ln(w/l);
  the Fisher information of d is N·p(1−p) with N = w + l, p = w/N, and a centred rating is ±d/2, so
  its SE is ½·sqrt(1/(N p (1−p))).
- A tree-shaped comparison graph has one free difference per edge, so each edge's likelihood is
  maximised on its own: d_e = ln(w_e/l_e), and the differences' estimates are independent.
- The MLE solves Zermelo's equations: for every item, its wins equal its expected wins
  Σ_j n_ij σ(θ_i − θ_j) (ties as half-wins count ½ each).
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.ratings.bradley_terry import (
    bradley_terry_derivatives,
    bradley_terry_nll,
    davidson_nll,
    fit_bradley_terry,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


def test_two_items_three_wins_one_loss():
    """d = ln 3, ratings ±ln3/2; SE = ½·sqrt(1/(4·¾·¼)) = ½·sqrt(4/3) = 0.57735."""
    fit = fit_bradley_terry(2, [0, 0, 0, 1], [1, 1, 1, 0], [1.0, 1.0, 1.0, 1.0])
    assert fit.converged and fit.nu is None
    torch.testing.assert_close(fit.ratings, torch.tensor([LN3 / 2, -LN3 / 2], dtype=torch.float64))
    torch.testing.assert_close(fit.se, torch.full((2,), 0.5 * math.sqrt(4 / 3), dtype=torch.float64))
    # log-likelihood at the MLE: 3 ln ¾ + ln ¼
    assert fit.log_likelihood == pytest.approx(3 * math.log(0.75) + math.log(0.25), abs=1e-12)


def test_three_items_on_a_chain():
    """A beats B 2-1, B beats C 2-1, A and C never meet: d_AB = d_BC = ln 2, so centred
    (θ_A, θ_B, θ_C) = (ln2, 0, −ln2). Var(d_e) = 1/(3·(2/3)(1/3)) = 3/2 for each edge;
    θ_A = (2 d_AB + d_BC)/3 → Var = (4 + 1)/9 · 3/2 = 5/6; θ_B = (d_BC − d_AB)/3 → Var = 2/9 · 3/2 = 1/3."""
    i, j = [0, 0, 1, 1, 1, 2], [1, 1, 0, 2, 2, 1]
    fit = fit_bradley_terry(3, i, j, [1.0] * 6)
    torch.testing.assert_close(fit.ratings, torch.tensor([LN2, 0.0, -LN2], dtype=torch.float64))
    expected_se = torch.tensor([math.sqrt(5 / 6), math.sqrt(1 / 3), math.sqrt(5 / 6)], dtype=torch.float64)
    torch.testing.assert_close(fit.se, expected_se)


def test_prior_keeps_an_unbeaten_item_finite():
    """One comparison, A won. Penalty λ/2·(t² + t²) with θ = (t, −t): stationarity 2σ(−2t) = 2λt, so
    λ = 1/(2 ln 3) gives t = ln3/2 (σ(−ln 3) = ¼ = λ·ln3/2); P(A beats B) = σ(ln 3) = ¾."""
    fit = fit_bradley_terry(2, [0], [1], [1.0], prior=1 / (2 * LN3))
    torch.testing.assert_close(fit.ratings, torch.tensor([LN3 / 2, -LN3 / 2], dtype=torch.float64))
    assert torch.sigmoid(fit.ratings[0] - fit.ratings[1]).item() == pytest.approx(0.75, abs=1e-12)


def test_davidson_ties_recover_the_multinomial_frequencies():
    """A beats B 4 times, B beats A once, 2 ties (N = 7). Two parameters, three outcomes that sum to 1:
    the fit is saturated, so P(A) = 4/7, P(B) = 1/7, P(tie) = 2/7. With d = θ_A − θ_B:
    P(A)/P(B) = e^d = 4 → θ_A = ln2; ν = P(tie)/sqrt(P(A)P(B)) = 2/sqrt(4) = 1."""
    i, j = [0] * 7, [1] * 7
    y = [1.0, 1.0, 1.0, 1.0, 0.0, 0.5, 0.5]
    fit = fit_bradley_terry(2, i, j, y, ties="davidson")
    torch.testing.assert_close(fit.ratings, torch.tensor([LN2, -LN2], dtype=torch.float64))
    assert fit.nu == pytest.approx(1.0, abs=1e-9)
    assert fit.log_likelihood == pytest.approx(4 * math.log(4 / 7) + math.log(1 / 7) + 2 * math.log(2 / 7), abs=1e-9)
    # the same data, ties as half-wins: 5 of 7 wins to A → d = ln(5/2)
    half = fit_bradley_terry(2, i, j, y)
    assert half.nu is None
    torch.testing.assert_close(half.ratings, torch.tensor([math.log(2.5) / 2, -math.log(2.5) / 2], dtype=torch.float64))


def test_davidson_without_ties_is_bradley_terry_with_nu_zero():
    i, j, y = [0, 0, 1, 1, 2, 2, 0], [1, 2, 2, 0, 0, 1, 1], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    dav, bt = fit_bradley_terry(3, i, j, y, ties="davidson"), fit_bradley_terry(3, i, j, y)
    assert dav.nu == 0.0
    torch.testing.assert_close(dav.ratings, bt.ratings)
    # and the Davidson likelihood at log ν → −∞ is the Bradley–Terry one
    theta = torch.tensor([0.3, -0.1, -0.2], dtype=torch.float64)
    t = [torch.tensor(v) for v in (i, j)]
    args = (t[0], t[1], torch.tensor(y, dtype=torch.float64), torch.ones(7, dtype=torch.float64))
    torch.testing.assert_close(davidson_nll(theta, torch.tensor(-60.0, dtype=torch.float64), *args),
                               bradley_terry_nll(theta, *args))


def test_mle_solves_zermelos_equations_on_a_cycle_with_ties():
    """Irregular data with a cycle (not hand-solvable): wins = expected wins for every item, and the
    ratings sum to 0."""
    i = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 0, 2, 1])
    j = torch.tensor([1, 2, 2, 3, 3, 0, 0, 1, 3, 1, 0])
    y = torch.tensor([1, 1, 0.5, 1, 1, 1, 1, 0, 1, 0.5, 1], dtype=torch.float64)
    fit = fit_bradley_terry(4, i, j, y)
    p = torch.sigmoid(fit.ratings[i] - fit.ratings[j])
    observed = torch.zeros(4, dtype=torch.float64).index_add(0, i, y).index_add(0, j, 1 - y)
    expected = torch.zeros(4, dtype=torch.float64).index_add(0, i, p).index_add(0, j, 1 - p)
    torch.testing.assert_close(observed, expected, atol=1e-10, rtol=0)
    assert abs(float(fit.ratings.sum())) < 1e-12


def test_recovers_known_strengths_from_simulated_comparisons():
    """6 items, 3000 random pairs drawn from the model: every estimate within 3.5 SE of the truth
    and within 0.2; each item plays ~1000 games at p(1−p) ≈ 0.2, so its SE is near 1/sqrt(200) ≈ 0.07."""
    gen = torch.Generator().manual_seed(0)
    truth = torch.tensor([1.2, 0.6, 0.1, -0.2, -0.7, -1.0], dtype=torch.float64)
    truth = truth - truth.mean()
    m = 3000
    i = torch.randint(0, 6, (m,), generator=gen)
    j = (i + torch.randint(1, 6, (m,), generator=gen)) % 6
    y = (torch.rand(m, generator=gen, dtype=torch.float64) < torch.sigmoid(truth[i] - truth[j])).double()
    fit = fit_bradley_terry(6, i, j, y)
    err = fit.ratings - truth
    assert fit.converged
    assert (err.abs() < 3.5 * fit.se).all() and err.abs().max() < 0.2, (err, fit.se)
    assert 0.05 < float(fit.se.mean()) < 0.1  # ≈ 1/sqrt(n_i p(1−p)) with ~1000 games per item


def test_closed_form_derivatives_match_autograd():
    """The closed-form gradient and Hessian the fit uses equal torch.func's, repeated pairs included."""
    i, j = torch.tensor([0, 0, 1, 2, 3, 1]), torch.tensor([1, 1, 2, 0, 1, 3])
    y = torch.tensor([1, 0.5, 1, 0, 1, 0.25], dtype=torch.float64)
    w = torch.tensor([1, 2, 1, 0.5, 1, 1], dtype=torch.float64)
    theta = torch.tensor([0.3, -0.2, 0.7, -1.1], dtype=torch.float64)
    g, h = bradley_terry_derivatives(theta, i, j, y, w)
    torch.testing.assert_close(g, torch.func.grad(bradley_terry_nll)(theta, i, j, y, w))
    torch.testing.assert_close(h, torch.func.hessian(bradley_terry_nll)(theta, i, j, y, w))


@pytest.mark.parametrize("kwargs,message", [
    (dict(n=2, i=[0], j=[0], y=[1.0]), "itself"),
    (dict(n=2, i=[0], j=[1], y=[1.5]), "outcomes"),
    (dict(n=2, i=[0], j=[2], y=[1.0]), "indices"),
    (dict(n=2, i=[0], j=[1], y=[1.0], prior=-1.0), "prior"),
    (dict(n=2, i=[0, 0], j=[1, 1], y=[0.5, 0.5], ties="davidson"), "every comparison is a tie"),
    (dict(n=2, i=[0], j=[1], y=[0.7], ties="davidson"), "0, 0.5 or 1"),
])
def test_bad_arguments(kwargs, message):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=message):
        fit_bradley_terry(n, kwargs.pop("i"), kwargs.pop("j"), kwargs.pop("y"), **kwargs)
