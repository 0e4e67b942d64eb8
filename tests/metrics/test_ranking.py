"""Ranking metrics against hand-counted values."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.metrics import ConcordanceAccuracy, KendallTau, MeanMargin, PairwiseAccuracy, RankingAccuracy


def test_pairwise_accuracy_accumulates_and_counts_ties_as_wrong():
    m = PairwiseAccuracy()
    m.update(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))  # 1 of 2
    m.update(torch.tensor([2.0, 3.0]), torch.tensor([2.0, 1.0]))  # tie (wrong), right: 1 of 2
    assert m.compute().item() == pytest.approx(2 / 4)


def test_mean_margin():
    m = MeanMargin()
    m.update(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    m.update(torch.tensor([4.0]), torch.tensor([1.0]))
    assert m.compute().item() == pytest.approx((1 - 1 + 3) / 3)


def test_ranking_accuracy_pools_pairs_over_rankings_of_different_k():
    # row 0 (3, 1, 2): pairs (0,1) ok, (0,2) ok, (1,2) wrong -> 2/3
    # row 1 K=2 of 3 (0, 1, x): (0,1) wrong -> 0/1 ; pooled: 2 / 4
    m = RankingAccuracy()
    m.update(torch.tensor([[3.0, 1.0, 2.0], [0.0, 1.0, 9.0]]), torch.tensor([[True] * 3, [True, True, False]]))
    assert m.compute().item() == pytest.approx(2 / 4)


def test_ranking_accuracy_equals_pairwise_for_k2():
    r = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    a, b = RankingAccuracy(), PairwiseAccuracy()
    a.update(r)
    b.update(r[:, 0], r[:, 1])
    assert a.compute().item() == pytest.approx(b.compute().item())


def test_kendall_tau_per_prompt_mean():
    # row 0 perfect order: tau 1 ; row 1 reversed: -1 ; row 2 (3, 1, 2): (2 - 1)/3 = 1/3
    # row 3 with a prediction tie (1, 1, 0): concordant 2, discordant 0 -> 2/3 (tau-a)
    m = KendallTau()
    m.update(torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [1.0, 1.0, 0.0]]))
    assert m.compute().item() == pytest.approx((1 - 1 + 1 / 3 + 2 / 3) / 4)


def test_kendall_tau_skips_prompts_without_pairs():
    m = KendallTau()
    m.update(torch.tensor([[1.0, 0.0], [5.0, 9.0]]), torch.tensor([[True, True], [True, False]]))
    assert m.compute().item() == pytest.approx(1.0)


def test_concordance_accuracy_counts_pairs_with_different_targets():
    # targets (1, 2, 2, 0): pairs with different targets: (0,1) (0,2) (0,3) (1,3) (2,3) = 5
    # preds   (0, 1, -1, -2): ordered right: (0,1) yes, (0,2) no, (0,3) yes, (1,3) yes, (2,3) yes -> 4/5
    m = ConcordanceAccuracy(block=2)
    m.update(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]))
    m.update(torch.tensor([-1.0, -2.0]), torch.tensor([2.0, 0.0]))
    assert m.compute().item() == pytest.approx(4 / 5)
