"""Numeric tests of the rule-based rewards, with the expected values derived in each docstring."""

from __future__ import annotations

import pytest

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.rewards.rules import FormatReward, KeywordReward, LengthReward, MatchReward, RegexReward

P = ["p"] * 5


def words(n: int) -> str:
    return " ".join(["w"] * n)


def test_length_two_sided():
    """target 10, scale 5: score = max(-1, 1 - |n - 10| / 5).

    n=10 -> 1; n=8 -> 0.6; n=13 -> 0.4; n=0 -> max(-1, -1) = -1; n=30 -> floor -1.
    """
    r = LengthReward(target=10, scale=5)
    assert r(P, [words(10), words(8), words(13), "", words(30)]) == pytest.approx([1, 0.6, 0.4, -1, -1])


def test_length_one_sided_default_scale_and_chars():
    """one_sided, scale = target = 4: below target 1 - (4 - n)/4, at or above target 1 (no unbounded growth)."""
    r = LengthReward(target=4, one_sided=True)
    assert r(P, ["", words(1), words(2), words(4), words(40)]) == pytest.approx([0, 0.25, 0.5, 1, 1])
    chars = LengthReward(target=4, unit="chars")  # "abcdef": |6-4|/4 = 0.5 -> 0.5
    assert chars(["p"], ["abcdef"]) == [0.5]


def test_length_rejects_bad_settings():
    with pytest.raises(ConfigError):
        LengthReward(target=0)
    with pytest.raises(ConfigError):
        LengthReward(target=3, scale=-1)


def test_keyword_reductions():
    """keywords (thanks, please): "Thanks, please!" has both -> fraction 1; "thanks thanks" -> 1/2, count 2."""
    texts = ["Thanks, please!", "thanks thanks", "nothing here"]
    assert KeywordReward(["thanks", "please"])(P[:3], texts) == [1.0, 0.5, 0.0]
    assert KeywordReward(["thanks", "please"], reduce="count")(P[:3], texts) == [2.0, 2.0, 0.0]
    assert KeywordReward(["thanks", "please"], reduce="any")(P[:3], texts) == [1.0, 1.0, 0.0]
    assert KeywordReward(["thanks"], case_sensitive=True)(P[:2], texts[:2]) == [0.0, 1.0]
    assert KeywordReward(["cat"], whole_word=True)(P[:2], ["concatenate", "a cat."]) == [0.0, 1.0]
    with pytest.raises(ConfigError):
        KeywordReward([])


def test_regex_modes_and_flags():
    r = RegexReward(r"\d+", match_score=2.0, miss_score=-1.0)
    assert r(P[:2], ["answer 42", "none"]) == [2.0, -1.0]
    full = RegexReward(r"[a-z]+", mode="fullmatch")
    assert full(P[:3], ["  abc \n", "abc1", "ABC"]) == [1.0, 0.0, 0.0]  # strip=True trims whitespace
    assert RegexReward(r"[a-z]+", mode="fullmatch", flags=["IGNORECASE"])(["p"], ["ABC"]) == [1.0]
    assert RegexReward(r"\d", mode="count", match_score=0.5)(P[:2], ["1 2 3", "x"]) == [1.5, 0.0]
    with pytest.raises(ConfigError, match="Invalid regular expression"):
        RegexReward("(")
    with pytest.raises(ConfigError, match="Unknown regex flag"):
        RegexReward("a", flags=["SHOUTING"])


def test_format_reward_spans_lines():
    r = FormatReward()
    good = "<think>step 1\nstep 2</think>\n<answer>4</answer>"
    assert r(P[:3], [good, "<answer>4</answer>", good + " trailing"]) == [1.0, 0.0, 0.0]


def test_match_reward_with_extraction_and_normalisation():
    r = MatchReward(column="answer", extract=r"\\boxed\{([^}]*)\}")
    comps = [r"so \boxed{3} no \boxed{ 42 }", r"\boxed{41}", "no box"]
    assert r(P[:3], comps, answer=["42", "42", "42"]) == [1.0, 0.0, 0.0]  # last match wins, whitespace normalised
    assert MatchReward()(P[:2], ["Paris", "paris  "], answer=["PARIS", "Lyon"]) == [1.0, 0.0]
    assert MatchReward(normalize=False)(["p"], ["Paris"], answer=["paris"]) == [0.0]
    with pytest.raises(ConfigError, match="needs the dataset column 'answer'"):
        MatchReward()(["p"], ["x"], reference=["x"])
    with pytest.raises(ConfigError, match="capturing group"):
        MatchReward(extract=r"\d+")
