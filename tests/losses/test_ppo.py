"""PPO losses with inputs that put each token in a known branch (unclipped / clipped high / clipped low /
dual clip), aggregation by hand, micro-batch invariance of the (numerator, denominator) form, entropy."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.losses.ppo import entropy_from_logits, policy_loss, policy_loss_terms, value_loss, value_loss_terms

AGGS = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"]


def k3(r: float) -> float:
    return r - 1 - math.log(r)


def test_policy_loss_four_branches():
    """old_logps = 0, so ρ = exp(logps); ε = 0.2, dual clip c = 3. Per-token loss max(−Aρ, −A·clip(ρ)):

    1. ρ = 1.1, A = +1: inside [0.8, 1.2] → ℓ = −1.1, gradient −Aρ = −1.1.
    2. ρ = 1.5, A = +2: clipped high → ℓ = max(−3.0, −2.4) = −2.4, no gradient.
    3. ρ = 0.5, A = −1: clipped low → ℓ = max(0.5, 0.8) = 0.8 (< c|A| = 3), no gradient.
    4. ρ = 5.0, A = −1: surrogate ℓ = max(5.0, 1.2) = 5.0 > c|A| = 3 → dual clip ℓ = 3, no gradient.

    token_mean = (−1.1 − 2.4 + 0.8 + 3) / 4 = 0.075 (0.575 without the dual clip, where token 4 keeps 5.0
    and its gradient −Aρ = 5). clipfrac = 2/4 (tokens 2, 3), dual_clipfrac = 1/4, ratio_mean = 8.1/4.
    """
    ratios = [1.1, 1.5, 0.5, 5.0]
    logps = torch.tensor([ratios]).log().requires_grad_(True)
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, 2.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, metrics = policy_loss(logps, old, adv, mask, clip_eps=0.2, dual_clip=3.0)
    assert loss.item() == pytest.approx(0.075, abs=1e-6)
    loss.backward()
    torch.testing.assert_close(logps.grad, torch.tensor([[-1.1 / 4, 0.0, 0.0, 0.0]]))
    assert metrics["clipfrac"].item() == 0.5 and metrics["dual_clipfrac"].item() == 0.25
    assert metrics["ratio_mean"].item() == pytest.approx(2.025)
    assert metrics["approx_kl"].item() == pytest.approx(sum(k3(r) for r in ratios) / 4, rel=1e-5)

    logps.grad = None
    loss, metrics = policy_loss(logps, old, adv, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(0.575, abs=1e-6) and metrics["dual_clipfrac"].item() == 0.0
    loss.backward()
    torch.testing.assert_close(logps.grad, torch.tensor([[-1.1 / 4, 0.0, 0.0, 5.0 / 4]]))


def test_clip_higher_is_asymmetric():
    """ε_low = 0.2, ε_high = 0.28 (DAPO). ρ = 1.25, A = +1: inside [0.8, 1.28] → ℓ = −1.25 (symmetric ε would clip
    to −1.2). ρ = 0.75, A = −1: low bound unchanged → ℓ = max(0.75, 0.8) = 0.8."""
    logps = torch.tensor([[1.25, 0.75]]).log()
    adv, mask, old = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), torch.zeros(1, 2)
    num, den, m = policy_loss_terms(logps, old, adv, mask, clip_eps=0.2, clip_eps_high=0.28, aggregation="token_mean")
    assert (num.item(), den.item()) == (pytest.approx(-1.25 + 0.8), 2.0) and m["clipfrac"].item() == 0.5
    num, _, m = policy_loss_terms(logps, old, adv, mask, clip_eps=0.2)
    assert num.item() == pytest.approx(-1.2 + 0.8) and m["clipfrac"].item() == 1.0


def test_padding_with_nonfinite_logps_is_ignored():
    logps = torch.tensor([[0.0, float("-inf"), float("nan")]], requires_grad=True)
    old = torch.tensor([[0.0, float("-inf"), 3.0]])
    adv = torch.tensor([[2.0, float("nan"), 1.0]])
    loss, metrics = policy_loss(logps, old, adv, torch.tensor([[1, 0, 0]]))
    loss.backward()
    assert loss.item() == -2.0 and torch.isfinite(logps.grad).all() and metrics["ratio_mean"].item() == 1.0


def test_aggregations_by_hand():
    """ρ = 1 everywhere (inside the clip), so ℓ = −A. Row 0: ℓ = [1, 2, 3]; row 1: ℓ = [4]; row 2: empty.
    token_mean = 10/4 = 2.5; seq_mean_token_mean = (2 + 4)/2 = 3; seq_mean_token_sum = (6 + 4)/2 = 5
    (the empty row is not counted)."""
    adv = -torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    logps = torch.zeros(3, 3)
    expected = {"token_mean": (10.0, 4.0), "seq_mean_token_mean": (6.0, 2.0), "seq_mean_token_sum": (10.0, 2.0)}
    for agg, (num, den) in expected.items():
        n, d, _ = policy_loss_terms(logps, logps, adv, mask, aggregation=agg)
        assert (n.item(), d.item()) == (num, den)
        assert policy_loss(logps, logps, adv, mask, aggregation=agg)[0].item() == num / den
    with pytest.raises(ValueError, match="token_mean"):
        policy_loss(logps, logps, adv, mask, aggregation="mean")


@pytest.mark.parametrize("aggregation", AGGS)
def test_micro_batches_sum_to_the_whole_batch(aggregation):
    """Σ numerators / Σ denominators over 2 micro-batches = the whole batch's loss, and so are the gradients."""
    g = torch.Generator().manual_seed(0)
    B, T = 4, 5
    logps0 = -torch.rand(B, T, generator=g)
    old = logps0 + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, T, generator=g)
    mask = torch.tensor([[int(t < n) for t in range(T)] for n in (5, 2, 4, 1)])
    kw = dict(clip_eps=0.2, clip_eps_high=0.3, dual_clip=3.0, aggregation=aggregation)

    whole = logps0.clone().requires_grad_(True)
    loss, _ = policy_loss(whole, old, adv, mask, **kw)
    loss.backward()

    split = logps0.clone().requires_grad_(True)
    terms = [policy_loss_terms(split[s], old[s], adv[s], mask[s], **kw) for s in (slice(0, 2), slice(2, 4))]
    num = sum(t[0] for t in terms)
    den = sum(t[1] for t in terms)
    (num / den).backward()
    torch.testing.assert_close(num / den, loss)
    torch.testing.assert_close(split.grad, whole.grad)
    # a plain mean of micro-batch means would differ for token_mean (2+2 rows of unequal length)
    if aggregation == "token_mean":
        naive = sum(policy_loss(split[s], old[s], adv[s], mask[s], **kw)[0] for s in (slice(0, 2), slice(2, 4))) / 2
        assert not torch.isclose(naive, loss)


def test_value_loss_by_hand():
    """V_old = 0, G = 1, clip 0.2. V = 0.1: V_clip = 0.1, both errors 0.81 → 0.405 (not clipped, grad (V−G) = −0.9);
    V = 0.5: V_clip = 0.2, max(0.25, 0.64) → 0.32 (clipped, no grad); V = −0.5: V_clip = −0.2, max(2.25, 1.44)
    → 1.125 (unclipped, grad −1.5). token_mean = 1.85/3; vf_clipfrac = 1/3. clip=None: ½(0.81 + 0.25 + 2.25)/3."""
    values = torch.tensor([[0.1, 0.5, -0.5, 7.0]], requires_grad=True)
    old = torch.zeros(1, 4)
    ret = torch.tensor([[1.0, 1.0, 1.0, float("nan")]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, metrics = value_loss(values, old, ret, mask, clip=0.2)
    assert loss.item() == pytest.approx(1.85 / 3) and metrics["vf_clipfrac"].item() == pytest.approx(1 / 3)
    loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([[-0.9 / 3, 0.0, -1.5 / 3, 0.0]]))
    loss, metrics = value_loss(values, old, ret, mask, clip=None)
    assert loss.item() == pytest.approx(0.5 * 3.31 / 3) and metrics["vf_clipfrac"].item() == 0.0
    num, den, _ = value_loss_terms(values, old, ret, mask, aggregation="seq_mean_token_sum")
    assert (num.item(), den.item()) == (pytest.approx(1.85), 1.0)


def test_entropy_from_logits():
    """Uniform over V = 8 → log 8. Logits 1e4 + [0, 1, 2] have the entropy of [0, 1, 2] (shift invariance),
    which fp32 keeps only because the max is subtracted first. A -inf logit (masked token) has p = 0: no nan."""
    logits = torch.zeros(1, 3, 8)
    logits[0, 1, :3] = 1e4 + torch.tensor([0.0, 1.0, 2.0])
    logits[0, 1, 3:] = float("-inf")
    logits[0, 2, :3] = torch.tensor([0.0, 1.0, 2.0])
    logits[0, 2, 3:] = float("-inf")
    logits.requires_grad_(True)
    ent = entropy_from_logits(logits)
    p = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64).softmax(0)
    h3 = float(-(p * p.log()).sum())
    torch.testing.assert_close(ent, torch.tensor([[math.log(8), h3, h3]]))
    ent.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 1, 3:].abs().sum() == 0
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    q = z.softmax(-1)
    torch.testing.assert_close(entropy_from_logits(z), -(q * q.log()).sum(-1))
    assert entropy_from_logits(z.to(torch.bfloat16)).dtype == torch.float32
