"""Reward-model losses against hand-derived values.

Notation: sp(x) = softplus(x) = log(1 + e^x), so -log σ(d) = sp(-d).
  sp(-1) = log(1 + e^-1) = 0.313261687518...
  sp(-2) = log(1 + e^-2) = 0.126928011043...
  sp(0)  = log 2         = 0.693147180560...
  sp(2)  = 2.126928011043...
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.losses.reward import (
    BinaryLoss,
    KWiseRankingLoss,
    MSELoss,
    PairwiseLoss,
    PlackettLuceLoss,
    binary_logistic_loss,
    kwise_ranking_loss,
    pairwise_logistic_loss,
    plackett_luce_loss,
    pointwise_mse_loss,
)
from rlhf_lightning.registry import get, names

SP_M1 = math.log1p(math.exp(-1))
SP_M2 = math.log1p(math.exp(-2))
LOG2 = math.log(2)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# ----------------------------------------------------------------------------------- pairwise
def test_pairwise_hand_values():
    # rows: gap 1 -> sp(-1); gap 2 -> sp(-2); gap -1 (wrong order) -> sp(1) = 1 + sp(-1)
    losses = pairwise_logistic_loss(t(1.0, 2.0, 0.0), t(0.0, 0.0, 1.0))
    torch.testing.assert_close(losses, t(SP_M1, SP_M2, 1 + SP_M1))


def test_pairwise_tie_is_log2_and_not_accurate():
    losses, metrics = PairwiseLoss()(t([0.5, 0.5], [3.0, 3.0]))
    torch.testing.assert_close(losses, t(LOG2, LOG2))
    torch.testing.assert_close(metrics["accuracy"], torch.zeros(2))  # a tie is not a correct ordering
    torch.testing.assert_close(metrics["margin"], t(0.0, 0.0))


def test_pairwise_margin_is_subtracted():
    # gap 1 with margin 1 -> -log σ(0) = log 2; gap 1 with margin -1 -> sp(-2); margin 0 -> sp(-1)
    losses = pairwise_logistic_loss(t(1.0, 1.0, 1.0), t(0.0, 0.0, 0.0), margins=t(1.0, -1.0, 0.0))
    torch.testing.assert_close(losses, t(LOG2, SP_M2, SP_M1))
    # the plugin uses the data's margins unless told not to
    rewards, margins = t([1.0, 0.0]), t(1.0)
    torch.testing.assert_close(PairwiseLoss()(rewards, margins=margins)[0], t(LOG2))
    torch.testing.assert_close(PairwiseLoss(use_margins=False)(rewards, margins=margins)[0], t(SP_M1))


def test_pairwise_center_rewards_term():
    # TRL's center_rewards_coefficient: + c (r_w + r_l)^2 ; r = (1, 0) and (2, 1), c = 0.01
    losses, _ = PairwiseLoss(center_rewards_coefficient=0.01)(t([1.0, 0.0], [2.0, 1.0]))
    torch.testing.assert_close(losses, t(SP_M1 + 0.01 * 1.0, SP_M1 + 0.01 * 9.0))


def test_pairwise_accuracy_and_margin_metrics():
    _, metrics = PairwiseLoss()(t([2.0, 0.5], [0.0, 1.0]))
    torch.testing.assert_close(metrics["accuracy"], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(metrics["margin"], t(1.5, -1.0))


def test_pairwise_refuses_rankings_and_pointwise():
    with pytest.raises(ValueError, match="K = 3"):
        PairwiseLoss()(t([1.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match="K >= 2"):
        PairwiseLoss()(t([1.0], [2.0]))


# ----------------------------------------------------------------------------------- K-wise
def test_kwise_hand_value_k3():
    # rewards best first (2, 1, 0): pairs (2-1), (2-0), (1-0) -> [sp(-1) + sp(-2) + sp(-1)] / C(3,2)
    losses = kwise_ranking_loss(t([2.0, 1.0, 0.0]), torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(losses, t((2 * SP_M1 + SP_M2) / 3))


def test_kwise_k2_equals_pairwise_with_margin_and_centering():
    g = torch.Generator().manual_seed(0)
    rewards, margins = torch.randn(16, 2, generator=g, dtype=torch.float64), torch.rand(16, generator=g,
                                                                                         dtype=torch.float64)
    for coef in (None, 0.05):
        kw, kw_metrics = KWiseRankingLoss(center_rewards_coefficient=coef)(rewards, margins=margins)
        pw, pw_metrics = PairwiseLoss(center_rewards_coefficient=coef)(rewards, margins=margins)
        torch.testing.assert_close(kw, pw)
        torch.testing.assert_close(kw_metrics["accuracy"], pw_metrics["accuracy"])


def test_kwise_is_the_mean_of_its_pairwise_losses():
    g = torch.Generator().manual_seed(1)
    r = torch.randn(3, 4, generator=g, dtype=torch.float64)
    expected = torch.stack([
        torch.stack([pairwise_logistic_loss(r[b, i], r[b, j]) for i in range(4) for j in range(i + 1, 4)]).mean()
        for b in range(3)])
    torch.testing.assert_close(KWiseRankingLoss()(r)[0], expected)


def test_kwise_variable_k_uses_only_valid_responses():
    # row 0 has K = 2 valid of 3 columns: its loss is the pairwise loss of its first two; the dummy
    # third reward (100) must not matter. Row 1 is a full K = 3 ranking.
    rewards = t([1.0, 0.0, 100.0], [2.0, 1.0, 0.0])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    losses, metrics = KWiseRankingLoss()(rewards, mask)
    torch.testing.assert_close(losses, t(SP_M1, (2 * SP_M1 + SP_M2) / 3))
    torch.testing.assert_close(metrics["accuracy"], torch.tensor([1.0, 1.0]))


def test_kwise_loss_of_a_prompt_does_not_depend_on_the_batch():
    # reduction invariance: a prompt's loss is the same alone or batched with a wider ranking
    alone = KWiseRankingLoss()(t([1.0, 0.5]))[0]
    batched = KWiseRankingLoss()(t([1.0, 0.5, 0.0, 0.0], [3.0, 2.0, 1.0, 0.0]),
                                 torch.tensor([[True, True, False, False], [True] * 4]))[0]
    torch.testing.assert_close(batched[:1], alone)


def test_kwise_skips_tied_pairs_given_labels():
    # labels (3, 3, 1): pair (0,1) is a tie and left out. rewards (0, 1, 0):
    # pair (0,2): gap 0 -> log 2 ; pair (1,2): gap 1 -> sp(-1); mean over the 2 remaining pairs
    rewards, labels = t([0.0, 1.0, 0.0]), t([3.0, 3.0, 1.0])
    losses, _ = KWiseRankingLoss()(rewards, labels=labels)
    torch.testing.assert_close(losses, t((LOG2 + SP_M1) / 2))
    # without skip_ties, the tied pair counts as ordered: gap -1 -> 1 + sp(-1)
    losses, _ = KWiseRankingLoss(skip_ties=False)(rewards, labels=labels)
    torch.testing.assert_close(losses, t((1 + SP_M1 + LOG2 + SP_M1) / 3))


def test_kwise_margin_applies_to_every_pair():
    # (2, 1, 0) with margin 1: gaps 1, 2, 1 become 0, 1, 0 -> [log2 + sp(-1) + log2] / 3
    losses, _ = KWiseRankingLoss()(t([2.0, 1.0, 0.0]), margins=t(1.0))
    torch.testing.assert_close(losses, t((2 * LOG2 + SP_M1) / 3))


def test_kwise_gradient_skips_invalid_slots():
    rewards = t([1.0, 0.0, 5.0]).requires_grad_()
    KWiseRankingLoss()(rewards, torch.tensor([[True, True, False]]))[0].sum().backward()
    assert rewards.grad[0, 2] == 0 and torch.isfinite(rewards.grad).all()


# ----------------------------------------------------------------------------------- Plackett-Luce
def test_plackett_luce_hand_value_k3():
    # (2, 1, 0): stage 1: logsumexp(2,1,0) - 2 = log(1 + e^-1 + e^-2); stage 2: logsumexp(1,0) - 1 = sp(-1)
    expected = math.log(1 + math.exp(-1) + math.exp(-2)) + SP_M1
    torch.testing.assert_close(plackett_luce_loss(t([2.0, 1.0, 0.0]), torch.ones(1, 3, dtype=torch.bool)),
                               t(expected))
    torch.testing.assert_close(PlackettLuceLoss(normalize=True)(t([2.0, 1.0, 0.0]))[0], t(expected / 2))


def test_plackett_luce_k2_equals_pairwise():
    r = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(PlackettLuceLoss()(r)[0], PairwiseLoss()(r)[0])


def test_plackett_luce_masked_slots_have_no_effect_and_finite_gradients():
    rewards = t([2.0, 1.0, 0.0, -7.0], [1.0, 0.0, 30.0, 30.0]).requires_grad_()
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    losses, _ = PlackettLuceLoss()(rewards, mask)
    torch.testing.assert_close(losses, t(math.log(1 + math.exp(-1) + math.exp(-2)) + SP_M1, SP_M1))
    losses.sum().backward()
    assert torch.isfinite(rewards.grad).all()
    assert rewards.grad[0, 3] == 0 and (rewards.grad[1, 2:] == 0).all()


def test_plackett_luce_refuses_margins():
    with pytest.raises(ValueError, match="no margin term"):
        PlackettLuceLoss()(t([1.0, 0.0]), margins=t(0.5))
    PlackettLuceLoss()(t([1.0, 0.0]), margins=t(0.0))  # zero margins (the collator's "absent") are fine


# ----------------------------------------------------------------------------------- pointwise
def test_mse_hand_values():
    # (1 - 3)^2 = 4 ; scale 0.5 -> targets 1.5: (1 - 1.5)^2 = 0.25 ; two valid responses -> mean
    torch.testing.assert_close(MSELoss()(t([1.0]), labels=t([3.0]))[0], t(4.0))
    torch.testing.assert_close(MSELoss(scale=0.5)(t([1.0]), labels=t([3.0]))[0], t(0.25))
    losses = pointwise_mse_loss(t([1.0, 2.0, 9.0]), t([0.0, 0.0, float("nan")]), torch.tensor([[True, True, False]]))
    torch.testing.assert_close(losses, t((1.0 + 4.0) / 2))


def test_binary_hand_values():
    # r = 0, y = 1 -> log 2 ; r = 2, y = 0 -> sp(2) ; r = 2, y = 1 -> sp(-2)
    losses = binary_logistic_loss(t([0.0], [2.0], [2.0]), t([1.0], [0.0], [1.0]), torch.ones(3, 1, dtype=torch.bool))
    torch.testing.assert_close(losses, t(LOG2, 2 + SP_M2, SP_M2))
    _, metrics = BinaryLoss()(t([0.5], [-0.5], [0.5]), labels=t([1.0], [0.0], [0.0]))
    torch.testing.assert_close(metrics["accuracy"], t(1.0, 1.0, 0.0))


@pytest.mark.parametrize("loss", [MSELoss(), BinaryLoss()])
def test_pointwise_losses_refuse_missing_or_nan_labels(loss):
    with pytest.raises(ValueError, match="needs labels"):
        loss(t([1.0]))
    with pytest.raises(ValueError, match=r"batch rows \[1\]"):
        loss(t([1.0], [2.0]), labels=t([1.0], [float("nan")]))


def test_binary_refuses_non_binary_labels():
    with pytest.raises(ValueError, match="0 or 1"):
        BinaryLoss()(t([1.0]), labels=t([0.5]))


# ----------------------------------------------------------------------------------- registry
def test_builtins_are_registered():
    assert {"pairwise", "kwise", "plackett_luce", "mse", "binary"} <= set(names("reward_losses"))
    assert get("reward_losses", "kwise") is KWiseRankingLoss
    assert MSELoss.needs_labels and BinaryLoss.needs_labels and not PairwiseLoss.needs_labels
