"""Elo updates against hand-computed values.

K = 32, scale 400, both at 1500. A beats B: E_A = 1/(1 + 10^0) = ½, A → 1500 + 32·½ = 1516, B → 1484.
Then B beats A: E_B = 1/(1 + 10^((1516 − 1484)/400)) = 1/(1 + 10^0.08) = 1/2.2022644346 = 0.4540781,
B → 1484 + 32·(1 − 0.4540781) = 1501.4695, A → 1516 − 17.4695 = 1498.5305.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.ratings.elo import elo_ratings, elo_shuffled, elo_to_log_odds


def test_two_games_by_hand():
    one = elo_ratings(2, [0], [1], [1.0])
    torch.testing.assert_close(one, torch.tensor([1516.0, 1484.0], dtype=torch.float64))
    two = elo_ratings(2, [0, 1], [1, 0], [1.0, 1.0])
    e_b = 1 / (1 + 10 ** 0.08)
    assert e_b == pytest.approx(0.4540781, abs=1e-7)
    torch.testing.assert_close(two, torch.tensor([1516 - 32 * (1 - e_b), 1484 + 32 * (1 - e_b)], dtype=torch.float64))
    assert float(two[1]) == pytest.approx(1501.4695, abs=1e-4)


def test_tie_between_equals_changes_nothing_and_k_scales_the_step():
    torch.testing.assert_close(elo_ratings(2, [0], [1], [0.5]), torch.tensor([1500.0, 1500.0], dtype=torch.float64))
    torch.testing.assert_close(elo_ratings(2, [0], [1], [1.0], k=10.0), torch.tensor([1505.0, 1495.0],
                                                                                   dtype=torch.float64))


def test_order_matters_and_the_sum_is_kept():
    """The same two results (A won, then B won) in the other order end with A ahead instead of B."""
    ab = elo_ratings(2, [0, 1], [1, 0], [1.0, 1.0])
    ba = elo_ratings(2, [0, 1], [1, 0], [1.0, 1.0], order=[1, 0])
    assert ab[1] > ab[0] and ba[0] > ba[1]
    torch.testing.assert_close(ab, ba.flip(0))
    assert float(ab.sum()) == pytest.approx(3000.0) and float(ba.sum()) == pytest.approx(3000.0)


def test_shuffled_mean_is_seeded_and_symmetric_data_averages_out():
    i, j, y = [0, 1, 0, 1], [1, 0, 1, 0], [1.0, 1.0, 1.0, 1.0]  # 2-2: over many orders A and B end level
    mean, spread = elo_shuffled(2, i, j, y, shuffles=400, seed=3)
    again, _ = elo_shuffled(2, i, j, y, shuffles=400, seed=3)
    torch.testing.assert_close(mean, again)
    assert abs(float(mean[0] - mean[1])) < 3.0 and float(spread[0]) > 1.0  # orders disagree
    single, zero = elo_shuffled(2, i, j, y, shuffles=1, seed=3)
    assert torch.equal(zero, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shuffles"):
        elo_shuffled(2, i, j, y, shuffles=0)


def test_log_odds_scale_gives_elo_expected_score():
    r = torch.tensor([1600.0, 1450.0], dtype=torch.float64)
    z = elo_to_log_odds(r)
    expected = 1 / (1 + 10 ** ((1450 - 1600) / 400))
    assert torch.sigmoid(z[0] - z[1]).item() == pytest.approx(expected, abs=1e-12)
    assert float(z[0]) == pytest.approx(100 * math.log(10) / 400)
