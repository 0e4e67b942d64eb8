"""KL estimators against the analytic KL of categorical distributions (exact expectation), and controllers."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.algorithms.kl import AdaptiveKLController, FixedKLController, kl_estimate


def expectation(p: torch.Tensor, q: torch.Tensor, estimator: str) -> float:
    """E_{x~p}[k(x)] computed exactly: every outcome x of the support as one 'sample', weighted by p(x)."""
    k = kl_estimate(p.log().unsqueeze(0), q.log().unsqueeze(0), estimator).squeeze(0)
    return float((p * k).sum())


P = torch.tensor([0.5, 0.5], dtype=torch.float64)
Q = torch.tensor([0.25, 0.75], dtype=torch.float64)
# KL(P‖Q) = ½ log(0.5/0.25) + ½ log(0.5/0.75) = ½ log(4/3)
KL_PQ = 0.5 * math.log(4 / 3)


def test_k1_and_k3_unbiased_hand_case():
    assert expectation(P, Q, "k1") == pytest.approx(KL_PQ, abs=1e-12)
    # E_p[q/p − 1 − log(q/p)] = Σq − 1 + KL = KL
    assert expectation(P, Q, "k3") == pytest.approx(KL_PQ, abs=1e-12)


def test_k2_known_bias_hand_case():
    """E_p[½ (log p/q)²] = ¼ (log² 2 + log² (2/3)) ≈ 0.161214 ≠ KL ≈ 0.143841: a bias of ≈ +0.017373,
    which equals ½ (Var_p[log p/q] + KL²) − KL."""
    e_k2 = expectation(P, Q, "k2")
    assert e_k2 == pytest.approx(0.25 * (math.log(2) ** 2 + math.log(2 / 3) ** 2), abs=1e-12)
    assert e_k2 - KL_PQ == pytest.approx(0.017373, abs=1e-6)
    var = 0.25 * (math.log(2) - math.log(2 / 3)) ** 2  # two equally likely values: Var = (a − b)² / 4
    assert e_k2 == pytest.approx(0.5 * (var + KL_PQ ** 2), abs=1e-12)


def test_random_categoricals_and_k2_bias_vanishes_faster_than_kl():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), 0)
    d = torch.randn(6, generator=g, dtype=torch.float64)
    gaps = []
    for scale in (0.5, 0.05):
        q = torch.softmax(p.log() + scale * d, 0)
        kl = float((p * (p / q).log()).sum())
        assert expectation(p, q, "k1") == pytest.approx(kl, rel=1e-9)
        assert expectation(p, q, "k3") == pytest.approx(kl, rel=1e-9)
        gaps.append(abs(expectation(p, q, "k2") - kl) / kl)
    assert gaps[1] < gaps[0] / 5  # relative bias is O(distance): 10x closer → ~10x smaller


def test_pointwise_properties_clamp_and_dtype():
    logp = torch.tensor([[0.0, -100.0, -1.0]], dtype=torch.bfloat16)
    ref = torch.tensor([[-100.0, 0.0, -1.0]], dtype=torch.bfloat16)
    k3 = kl_estimate(logp, ref, "k3")
    assert k3.dtype == torch.float32 and torch.isfinite(k3).all() and (k3 >= 0).all()
    # log r clamped to ∓20: e^{−20} − 1 + 20 and e^{20} − 1 − 20; equal tokens → 0
    torch.testing.assert_close(k3, torch.tensor([[math.exp(-20) + 19, math.exp(20) - 21, 0.0]]))
    assert torch.isinf(kl_estimate(logp.float(), ref.float(), "k3", log_ratio_clamp=None)).any()
    assert (kl_estimate(logp, ref, "k2") >= 0).all()
    with pytest.raises(ValueError, match="k4"):
        kl_estimate(logp, ref, "k4")


def test_adaptive_controller_hand_steps_and_resume():
    c = AdaptiveKLController(init_coef=0.1, target=6.0, horizon=10000)
    assert c.update(9.0, 1000) == pytest.approx(0.1 * 1.02)           # e = clip(0.5) = 0.2
    assert c.update(6.6, 1000) == pytest.approx(0.1 * 1.02 * 1.01)    # e = 0.1
    assert c.update(0.0, 500) == pytest.approx(0.1 * 1.02 * 1.01 * 0.99)  # e = clip(−1) = −0.2
    d = AdaptiveKLController(init_coef=0.5, target=6.0, horizon=10000)
    d.load_state_dict(c.state_dict())
    assert d.value == c.value and d.update(7.0, 64) == c.update(7.0, 64)
    with pytest.raises(ValueError):
        AdaptiveKLController(target=0.0)


def test_fixed_controller():
    c = FixedKLController(0.05)
    assert c.update(100.0, 10) == 0.05 and c.value == 0.05
    c.load_state_dict({"value": 0.2})
    assert c.value == 0.2 and c.state_dict() == {"value": 0.2}
