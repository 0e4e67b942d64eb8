"""Advantage estimators: GAE vs an explicit double loop and a hand case; GRPO, RLOO, REINFORCE++ by hand;
every estimator resolves through the registry."""

from __future__ import annotations

import statistics

import pytest
import torch

from rlhf_lightning import AdvantageEstimator, registry
from rlhf_lightning.algorithms.advantages import (
    GAE,
    GRPO,
    RLOO,
    ReinforcePlusPlus,
    discounted_returns,
    gae_advantages,
    grpo_advantages,
    rloo_advantages,
)

NAN = float("nan")


def reference_gae(rewards, values, mask, gamma, lam):
    """Plain-Python GAE: per row, time steps are the masked positions; Â_t = Σ_l (γλ)^l δ_{t+l}."""
    B, T = rewards.shape
    adv = [[0.0] * T for _ in range(B)]
    ret = [[0.0] * T for _ in range(B)]
    for b in range(B):
        steps = [t for t in range(T) if mask[b, t]]
        r = [float(rewards[b, t]) for t in steps]
        v = [float(values[b, t]) for t in steps] + [0.0]  # bootstrap 0 after the last token
        deltas = [r[i] + gamma * v[i + 1] - v[i] for i in range(len(steps))]
        for i, t in enumerate(steps):
            a = sum((gamma * lam) ** l * deltas[i + l] for l in range(len(steps) - i))
            adv[b][t] = a
            ret[b][t] = a + v[i]
    return torch.tensor(adv, dtype=torch.float64), torch.tensor(ret, dtype=torch.float64)


def test_gae_hand_three_tokens():
    """r = [0, 0, 1], V = [0.5, 0.6, 0.7], padding after; γ = 1, λ = 0.5:
    δ = [0.6 − 0.5, 0.7 − 0.6, 1 − 0.7] = [0.1, 0.1, 0.3];  Â₂ = 0.3, Â₁ = 0.1 + 0.5·0.3 = 0.25,
    Â₀ = 0.1 + 0.5·0.25 = 0.225;  returns = Â + V = [0.725, 0.85, 1.0].
    γ = 0.5, λ = 1 gives Monte-Carlo returns: G = [0.25, 0.5, 1.0] and Â = G − V = [−0.25, −0.1, 0.3]."""
    r = torch.tensor([[0.0, 0.0, 1.0, NAN]])
    v = torch.tensor([[0.5, 0.6, 0.7, NAN]])
    m = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae_advantages(r, v, m, gamma=1.0, lam=0.5)
    torch.testing.assert_close(adv, torch.tensor([[0.225, 0.25, 0.3, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[0.725, 0.85, 1.0, 0.0]]))
    adv, ret = gae_advantages(r, v, m, gamma=0.5, lam=1.0)
    torch.testing.assert_close(adv, torch.tensor([[-0.25, -0.1, 0.3, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[0.25, 0.5, 1.0, 0.0]]))


def test_gae_matches_double_loop_on_ragged_masks():
    g = torch.Generator().manual_seed(0)
    B, T = 5, 7
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    lengths = [7, 4, 1, 0, 6]
    mask = torch.tensor([[int(t < n) for t in range(T)] for n in lengths])
    mask[4, 2] = 0  # a hole inside row 4: skipped, the next real token is the next step
    mask[1] = torch.tensor([0, 0, 1, 1, 1, 1, 0])  # left and right padding
    for gamma, lam in [(1.0, 0.95), (0.9, 0.8), (0.7, 0.0)]:
        adv, ret = gae_advantages(rewards, values, mask, gamma, lam)
        ref_adv, ref_ret = reference_gae(rewards, values, mask, gamma, lam)
        torch.testing.assert_close(adv, ref_adv)
        torch.testing.assert_close(ret, ref_ret)
    assert adv[3].abs().sum() == 0 and adv[~mask.bool()].abs().sum() == 0


def test_gae_class_whitens_advantages_not_returns():
    r = torch.tensor([[0.0, 0.0, 1.0, NAN], [0.0, 2.0, NAN, NAN]])
    v = torch.tensor([[0.5, 0.6, 0.7, NAN], [0.1, 0.2, NAN, NAN]])
    m = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    adv, ret = GAE(gamma=1.0, lam=0.5)(r, m, values=v)
    raw, raw_ret = gae_advantages(r, v, m, 1.0, 0.5)
    torch.testing.assert_close(ret, raw_ret)
    real = adv[m.bool()]
    assert abs(real.mean().item()) < 1e-6 and real.std().item() == pytest.approx(1.0, rel=1e-5)
    assert adv[~m.bool()].abs().sum() == 0
    adv2, _ = GAE(gamma=1.0, lam=0.5, whiten=False)(r, m, values=v)
    torch.testing.assert_close(adv2, raw)
    with pytest.raises(ValueError, match="critic values"):
        GAE()(r, m)


# GRPO / RLOO batch: groups 7 (three samples), 3 (two), 5 (one). Sequence rewards are the token sums:
# row 0: 0.5 + 0.5 = 1, row 1: 0, row 2: 2 (on its last token), rows 3, 4: 4 and 2, row 5: 9.
REWARDS = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.0],
                        [4.0, NAN, NAN], [1.0, 1.0, NAN], [9.0, NAN, NAN]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 0]])
GROUPS = torch.tensor([7, 7, 7, 3, 3, 5])


def per_sample(adv: torch.Tensor) -> list[float]:
    """The advantage of each row (checked to be the same on every real token and 0 on padding)."""
    out = []
    for row, m in zip(adv, MASK.bool(), strict=True):
        assert row[~m].abs().sum() == 0 and torch.all(row[m] == row[m][0])
        out.append(row[m][0].item())
    return out


def test_grpo_by_hand():
    """Group 7: R = [1, 0, 2], mean 1, sample std √((0 + 1 + 1)/2) = 1 → Â = [0, −1, 1]/(1 + eps).
    Group 3: R = [4, 2], mean 3, std √2 → Â = ±1/(√2 + eps). Group 5: one sample → 0."""
    eps = 1e-4
    adv, ret = GRPO(eps=eps)(REWARDS, MASK, group_ids=GROUPS)
    assert ret is None
    s2 = 2 ** 0.5
    assert per_sample(adv) == pytest.approx([0.0, -1 / (1 + eps), 1 / (1 + eps), 1 / (s2 + eps), -1 / (s2 + eps), 0.0])
    dr, _ = GRPO(scale_by_std=False)(REWARDS, MASK, group_ids=GROUPS)  # Dr. GRPO: no std division
    assert per_sample(dr) == pytest.approx([0.0, -1.0, 1.0, 1.0, -1.0, 0.0])
    same = grpo_advantages(torch.ones(2, 2), torch.ones(2, 2), torch.tensor([0, 0]))
    assert same.abs().sum() == 0  # equal rewards: no signal, no nan
    with pytest.raises(ValueError, match="group_ids"):
        GRPO()(REWARDS, MASK)


def test_rloo_by_hand():
    """Group 7: R = [1, 0, 2] → Â_i = R_i − mean of the others = [1 − 1, 0 − 1.5, 2 − 0.5] = [0, −1.5, 1.5].
    Group 3: [4, 2] → [2, −2]."""
    keep = GROUPS != 5
    adv, ret = RLOO()(REWARDS[keep], MASK[keep], group_ids=GROUPS[keep])
    assert ret is None
    expected = [0.0, -1.5, 1.5, 2.0, -2.0]
    for row, m, e in zip(adv, MASK[keep].bool(), expected, strict=True):
        assert row[m].tolist() == pytest.approx([e] * int(m.sum())) and row[~m].abs().sum() == 0
    with pytest.raises(ValueError, match=r"RLOO needs >= 2 samples per prompt.*\[5\]"):
        rloo_advantages(REWARDS, MASK, GROUPS)


def test_reinforce_pp_by_hand():
    """Row 0: r = [−0.1, −0.1, 1.0] → G = [0.8, 0.9, 1.0] (γ = 1); row 1: r = [0, −1, pad] → G = [−1, −1].
    γ = 0.5: row 0 → [−0.1 + 0.5·0.4, −0.1 + 0.5·1, 1] = [0.1, 0.4, 1.0]; row 1 → [−0.5, −1].
    Whitened over the 5 real tokens with their mean and sample std."""
    r = torch.tensor([[-0.1, -0.1, 1.0], [0.0, -1.0, NAN]])
    m = torch.tensor([[1, 1, 1], [1, 1, 0]])
    torch.testing.assert_close(discounted_returns(r, m, 1.0), torch.tensor([[0.8, 0.9, 1.0], [-1.0, -1.0, 0.0]]))
    torch.testing.assert_close(discounted_returns(r, m, 0.5), torch.tensor([[0.1, 0.4, 1.0], [-0.5, -1.0, 0.0]]))
    est = ReinforcePlusPlus()
    assert not est.needs_critic and not est.needs_groups
    adv, ret = est(r, m)
    g = [0.8, 0.9, 1.0, -1.0, -1.0]
    mu, sd = statistics.mean(g), statistics.stdev(g)
    expected = [(x - mu) / sd for x in g]
    assert ret is None and adv[m.bool()].tolist() == pytest.approx(expected, rel=1e-5)
    assert adv[1, 2] == 0
    raw, _ = ReinforcePlusPlus(gamma=0.5, whiten=False)(r, m)
    torch.testing.assert_close(raw, discounted_returns(r, m, 0.5))


@pytest.mark.parametrize(("name", "cls", "critic", "groups"), [
    ("gae", GAE, True, False), ("grpo", GRPO, False, True), ("rloo", RLOO, False, True),
    ("reinforce_pp", ReinforcePlusPlus, False, False), ("reinforce++", ReinforcePlusPlus, False, False)])
def test_estimators_resolve_through_the_registry(name, cls, critic, groups):
    registry.reset()
    assert registry.get("advantage_estimators", name) is cls
    assert issubclass(cls, AdvantageEstimator) and name in registry.names("advantage_estimators")
    assert (cls.needs_critic, cls.needs_groups) == (critic, groups)
    cls()  # no required arguments
