"""Evaluation statistics, with expected values derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.evaluation.metrics import (
    bootstrap_interval,
    distinct_n,
    mean_std_stderr,
    per_prompt_wins,
    win_rate,
    words,
)


def test_per_prompt_wins_counts_ties_half():
    """Prompt 0: draws win, tie, lose -> (1 + 0.5 + 0) / 3 = 0.5; prompt 1: win, win, tie -> 2.5 / 3."""
    policy = torch.tensor([[2.0, 1.0, 0.0], [5.0, 5.0, 1.0]])
    baseline = torch.tensor([[1.0, 1.0, 3.0], [4.0, 0.0, 1.0]])
    assert per_prompt_wins(policy, baseline).tolist() == pytest.approx([0.5, 2.5 / 3])


def test_win_rate_compares_draw_by_draw_not_all_pairs():
    """Policy [1, 3] vs baseline [2, 4]: draw by draw it loses both (0); over all pairs it would win 1 of 4."""
    w = win_rate(torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, 4.0]]), samples=50)
    assert (w.rate, w.lo, w.hi) == (0.0, 0.0, 0.0)


def test_all_wins_and_self_comparison_degenerate():
    """Every draw wins -> 1 with interval [1, 1]; a policy against itself ties everywhere -> exactly 0.5, [0.5, 0.5]."""
    scores = torch.tensor([[0.3, 0.1], [0.2, 0.9], [0.5, 0.5]])
    wins = win_rate(scores + 1.0, scores, samples=200)
    assert (wins.rate, wins.lo, wins.hi) == (1.0, 1.0, 1.0)
    self_ = win_rate(scores, scores, samples=200)
    assert (self_.rate, self_.lo, self_.hi) == (0.5, 0.5, 0.5)


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    """Per-prompt wins 0 or 1 half the time: the mean 0.5 lies inside the interval, which is narrower
    than [0, 1] and is about ±1.96·sqrt(0.25/40) ≈ ±0.155 wide around it for 40 prompts."""
    per_prompt = torch.tensor([0.0, 1.0] * 20)
    lo, hi = bootstrap_interval(per_prompt, samples=2000, seed=3)
    assert lo < 0.5 < hi
    assert 0.30 < lo < 0.40 and 0.60 < hi < 0.70


def test_bootstrap_interval_depends_on_the_seed_only():
    """Values 0, 1/39, ..., 1 (mean 0.5, sd ≈ 0.296, s.e. ≈ 0.047): the interval is about 0.5 ± 0.09;
    the same seed repeats it, another seed moves it a little."""
    per_prompt = torch.arange(40, dtype=torch.float64) / 39
    lo, hi = bootstrap_interval(per_prompt, samples=2000, seed=3)
    assert 0.38 < lo < 0.44 and 0.56 < hi < 0.62
    assert bootstrap_interval(per_prompt, samples=2000, seed=3) == (lo, hi)
    assert bootstrap_interval(per_prompt, samples=2000, seed=4) != (lo, hi)


def test_bootstrap_interval_of_a_single_prompt_or_equal_prompts_is_a_point():
    assert bootstrap_interval(torch.tensor([0.75]), samples=10) == (0.75, 0.75)
    assert bootstrap_interval(torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64), samples=10) == (0.1, 0.1)


def test_bootstrap_interval_refuses_bad_input():
    with pytest.raises(ValueError):
        bootstrap_interval(torch.tensor([]))
    with pytest.raises(ValueError):
        bootstrap_interval(torch.tensor([0.5]), samples=0)


def test_mean_std_stderr():
    """[1, 2, 3, 6]: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3, s.e. sqrt(14/3) / 2."""
    mean, std, se = mean_std_stderr(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert mean == pytest.approx(3.0)
    assert std == pytest.approx(math.sqrt(14 / 3))
    assert se == pytest.approx(math.sqrt(14 / 3) / 2)
    assert mean_std_stderr(torch.tensor([0.0])) == (0.0, 0.0, 0.0)


def test_words_split_whitespace_and_cjk_characters():
    assert words("spring wind,  春风 ok") == ["spring", "wind,", "春", "风", "ok"]
    assert words("看那荷花！Look") == ["看", "那", "荷", "花", "！", "Look"]
    assert words("  ") == []


def test_distinct_n_on_a_known_example():
    """Texts "a b a" and "春 春": unigrams a, b, a, 春, 春 -> 3 unique of 5; bigrams (a b), (b a),
    (春 春) -> 3 of 3; trigrams: only (a b a) -> 1 of 1."""
    texts = ["a b a", "春春"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 5)
    assert distinct_n(texts, 2) == 1.0
    assert distinct_n(texts, 3) == 1.0
    assert distinct_n(["same words", "same words"], 2) == pytest.approx(1 / 2)
    assert distinct_n(["one", ""], 2) == 0.0  # no bigram at all
