"""Preference losses against hand-derived values.

Inputs are chosen so every term is known in closed form: log-ratios that make ``β·h`` equal to
0 or ln 3 (σ(ln 3) = 3/4, σ(-ln 3) = 1/4), hinge inputs on both sides of the kink, IPO deltas
that hit the target 1/(2τ) exactly, and per-token average probabilities of 1/2 and 1/4 for ORPO
(odds 1 and 1/3).
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.losses.preference import (
    CDPOLoss,
    HingeLoss,
    IPOLoss,
    NLLLoss,
    ORPOLoss,
    RobustLoss,
    RPOLoss,
    SigmoidLoss,
    SimPOLoss,
    WeightedLoss,
    hinge_loss,
    ipo_loss,
    log_odds,
    nll_loss,
    orpo_loss,
    robust_loss,
    sigmoid_loss,
    simpo_loss,
)

LN2, LN3 = math.log(2), math.log(3)
T = torch.tensor


def _call(loss, c, r, rc=None, rr=None, lc=None, lr=None):
    c, r = T(c, dtype=torch.float), T(r, dtype=torch.float)
    lc = T(lc if lc is not None else [1] * len(c))
    lr = T(lr if lr is not None else [1] * len(c))
    rc = None if rc is None else T(rc, dtype=torch.float)
    rr = None if rr is None else T(rr, dtype=torch.float)
    return loss(c, r, rc, rr, lc, lr)


def test_sigmoid_is_ln2_when_policy_equals_reference():
    """h = 0 -> -log σ(0) = ln 2, whatever the log-probs, lengths, β or ε (cDPO: (1-ε)ln2 + ε ln2)."""
    logps = T([-3.0, -10.0, -0.5])
    for loss in (SigmoidLoss(0.1), SigmoidLoss(0.5), CDPOLoss(0.1, 0.3)):
        losses, metrics = loss(logps, logps - 1, logps, logps - 1, T([3, 5, 1]), T([2, 2, 2]))
        torch.testing.assert_close(losses, torch.full((3,), LN2))
        assert metrics["rewards/margins"].abs().max() == 0 and metrics["rewards/accuracies"].sum() == 0


def test_sigmoid_and_cdpo_hand_values():
    """β = 0.5, r_w = 2 ln 3, r_l = 0 -> βh = ln 3: DPO = -log(3/4) = ln 4 - ln 3;
    cDPO(ε=0.2) = 0.8·(ln4 - ln3) + 0.2·(-log(1/4)) = 0.8·(ln4 - ln3) + 0.2·ln 4."""
    c, r = T([2 * LN3]), T([0.0])
    assert sigmoid_loss(c, r, 0.5).item() == pytest.approx(math.log(4) - LN3)
    assert sigmoid_loss(c, r, 0.5, 0.2).item() == pytest.approx(0.8 * (math.log(4) - LN3) + 0.2 * math.log(4))
    losses, m = _call(SigmoidLoss(0.5), [-1 + 2 * LN3], [-4.0], [-1.0], [-4.0])
    assert losses.item() == pytest.approx(math.log(4) - LN3)
    assert m["rewards/chosen"].item() == pytest.approx(LN3) and m["rewards/rejected"].item() == 0
    assert m["rewards/margins"].item() == pytest.approx(LN3) and m["rewards/accuracies"].item() == 1


def test_robust_hand_values():
    """βh = ln 3, ε = 0.25: (-(0.75)·log(3/4) + 0.25·log(1/4)) / 0.5 = 1.5·(ln4 - ln3) - 0.5·ln4.
    ε = 0 reduces to DPO; at h = 0 it is ln 2 ((1-ε)ln2 - ε ln2)/(1-2ε) = ln 2."""
    c, r = T([2 * LN3]), T([0.0])
    assert robust_loss(c, r, 0.5, 0.25).item() == pytest.approx(1.5 * (math.log(4) - LN3) - 0.5 * math.log(4))
    assert robust_loss(c, r, 0.5, 0.0).item() == pytest.approx(sigmoid_loss(c, r, 0.5).item())
    assert robust_loss(T([1.0]), T([1.0]), 0.3, 0.4).item() == pytest.approx(LN2)


def test_ipo_hand_values_length_normalised():
    """τ = 0.25 -> target 1/(2τ) = 2. r_w = 6 over 2 tokens (3/token), r_l = 2 over 2 (1/token):
    delta = 2 -> loss 0. r_w = 6 over 3 tokens: delta = 1 -> loss 1. Unnormalised would give (4-2)² = 4."""
    assert ipo_loss(T([6.0]), T([2.0]), T([2]), T([2]), 0.25).item() == pytest.approx(0.0)
    assert ipo_loss(T([6.0]), T([2.0]), T([3]), T([2]), 0.25).item() == pytest.approx(1.0)
    losses, m = _call(IPOLoss(0.25), [0.0], [0.0], [0.0], [0.0], [4], [9])
    assert losses.item() == pytest.approx(4.0)   # h = 0 -> (0 - 2)²


def test_hinge_both_sides_of_the_kink():
    """β = 0.5: h = 1 -> 1 - 0.5 = 0.5; h = 4 -> max(0, -1) = 0 (no gradient); h = -2 -> 2."""
    h = T([1.0, 4.0, -2.0], requires_grad=True)
    losses = hinge_loss(h, torch.zeros(3), 0.5)
    torch.testing.assert_close(losses, T([0.5, 0.0, 2.0]))
    losses.sum().backward()
    torch.testing.assert_close(h.grad, T([-0.5, 0.0, -0.5]))
    assert _call(HingeLoss(0.5), [1.0], [0.0], [0.0], [0.0])[0].item() == pytest.approx(0.5)


def test_simpo_hand_values_and_reference_free():
    """avg w = -4/4 = -1, avg l = -6/2 = -3. β = 2, γ = 0.5: z = 2·2 - 0.5 = 3.5 -> -log σ(3.5).
    β = 1, γ = 2 - ln 3: z = 2 - γ = ln 3 -> -log(3/4) = ln4 - ln3."""
    assert simpo_loss(T([-4.0]), T([-6.0]), T([4]), T([2]), 2.0, 0.5).item() == pytest.approx(
        -math.log(1 / (1 + math.exp(-3.5))))
    assert simpo_loss(T([-4.0]), T([-6.0]), T([4]), T([2]), 1.0, 2 - LN3).item() == pytest.approx(
        math.log(4) - LN3)
    loss = SimPOLoss(beta=1.0, gamma=2 - LN3)
    assert loss.reference_free
    losses, m = _call(loss, [-4.0], [-6.0], None, None, [4], [2])
    assert losses.item() == pytest.approx(math.log(4) - LN3)
    assert m["rewards/chosen"].item() == pytest.approx(-1.0) and m["rewards/rejected"].item() == pytest.approx(-3.0)


def test_orpo_hand_values():
    """Chosen: 2 tokens, sum log p = 2 ln(1/2) -> p_w = 1/2, odds 1. Rejected: 3 tokens, sum 3 ln(1/4)
    -> p_l = 1/4, odds 1/3. log odds ratio = ln 3; L_OR = -log σ(ln 3) = ln4 - ln3; NLL = ln 2.
    λ = 0.5 -> loss = ln 2 + 0.5·(ln4 - ln3)."""
    c, r = T([2 * math.log(0.5)]), T([3 * math.log(0.25)])
    losses, nll, ratio = orpo_loss(c, r, T([2]), T([3]), 0.5)
    assert ratio.item() == pytest.approx(LN3) and nll.item() == pytest.approx(LN2)
    assert losses.item() == pytest.approx(LN2 + 0.5 * (math.log(4) - LN3))
    assert ORPOLoss.reference_free
    out, m = ORPOLoss(0.5)(c, r, None, None, T([2]), T([3]))
    assert out.item() == pytest.approx(losses.item()) and m["orpo/log_odds_ratio"].item() == pytest.approx(LN3)


def test_log_odds_is_stable_near_probability_one():
    """log p = -1e-8: odds ≈ 1e8 -> log odds ≈ ln(1e8); a naive log(1 - exp(x)) in float32 gives -inf."""
    assert log_odds(T([-1e-8])).item() == pytest.approx(math.log(1e8), rel=1e-4)


def test_nll_sequence_and_token_reductions():
    """Sums -2, -9 over 1 and 3 tokens. sequence: [2, 3]. tokens: total 11/4 spread as x·B/Σ|y| =
    [2·2/4, 9·2/4] = [1, 4.5], mean 2.75 = 11/4."""
    c, lens = T([-2.0, -9.0]), T([1, 3])
    torch.testing.assert_close(nll_loss(c, lens, "sequence"), T([2.0, 3.0]))
    tok = nll_loss(c, lens, "tokens")
    torch.testing.assert_close(tok, T([1.0, 4.5]))
    assert tok.mean().item() == pytest.approx(11 / 4)
    assert NLLLoss.reference_free


def test_weighted_combination_and_rpo():
    """sigmoid at h = 0 (ln 2) + 0.5 × NLL (2 tokens summing -4 -> 2) = ln 2 + 1, RPO the same."""
    c, r, lc, lr = T([-4.0]), T([-5.0]), T([2]), T([2])
    combo = WeightedLoss([SigmoidLoss(0.1), NLLLoss()], [1.0, 0.5])
    assert not combo.reference_free
    losses, m = combo(c, r, c, r, lc, lr)
    assert losses.item() == pytest.approx(LN2 + 1.0)
    assert m["loss/0_SigmoidLoss"].item() == pytest.approx(LN2) and m["loss/1_NLLLoss"].item() == pytest.approx(2)
    assert "rewards/chosen" in m
    assert RPOLoss(0.1, 0.5)(c, r, c, r, lc, lr)[0].item() == pytest.approx(LN2 + 1.0)
    assert WeightedLoss([SimPOLoss(), ORPOLoss()]).reference_free


def test_bad_hyperparameters():
    for make in (lambda: SigmoidLoss(beta=0), lambda: RobustLoss(label_smoothing=0.5),
                 lambda: SigmoidLoss(label_smoothing=0.7), lambda: NLLLoss("mean"),
                 lambda: WeightedLoss([]), lambda: WeightedLoss([SigmoidLoss()], [1.0, 2.0])):
        with pytest.raises(ConfigError):
            make()


def test_reference_losses_refuse_missing_reference():
    with pytest.raises(ValueError, match="reference"):
        _call(SigmoidLoss(), [0.0], [0.0])


def test_gradients_flow_to_policy_logps_only_where_expected():
    """DPO gradient wrt chosen logps is -β·σ(-βh); at h = 0, β = 0.2: -0.1 (and +0.1 for rejected)."""
    c, r = T([-1.0], requires_grad=True), T([-1.0], requires_grad=True)
    losses, _ = SigmoidLoss(0.2)(c, r, T([-1.0]), T([-1.0]), T([1]), T([1]))
    losses.sum().backward()
    assert c.grad.item() == pytest.approx(-0.1) and r.grad.item() == pytest.approx(0.1)
