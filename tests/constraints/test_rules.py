"""Numeric tests of the rule-based constraint checkers."""

from __future__ import annotations

import pytest

from rlhf_lightning.constraints.rules import BannedPatternsConstraint, MaxLengthConstraint
from rlhf_lightning.errors import ConfigError


def test_max_length_cost_is_the_excess():
    """max 3 words: costs max(0, n - 3) for n = 1, 3, 5 -> 0, 0, 2; violations cost > 0."""
    c = MaxLengthConstraint(max_length=3)
    costs = c(["p"] * 3, ["a", "a b c", "a b c d e"])
    assert costs == [0.0, 0.0, 2.0]
    assert c.violated(costs) == [False, False, True]
    chars = MaxLengthConstraint(max_length=4, unit="chars", threshold=1.0)  # "abcdef": 2 > 1
    assert chars.violated(chars(["p", "p"], ["abcdef", "abcde"])) == [True, False]
    with pytest.raises(ConfigError):
        MaxLengthConstraint(max_length=-1)


def test_banned_words_and_patterns_count_occurrences():
    """words (damn) whole-word, case-insensitive; pattern a phone number.

    "Damn, damn" -> 2; "damnation" -> 0 (not a whole word); "call 555-1234 damn" -> 1 + 1 = 2.
    """
    c = BannedPatternsConstraint(words=["damn"], patterns=[r"\d{3}-\d{4}"])
    costs = c(["p"] * 3, ["Damn, damn", "damnation", "call 555-1234 damn"])
    assert costs == [2.0, 0.0, 2.0]
    assert c.violated(costs) == [True, False, True]
    assert BannedPatternsConstraint(words=["Damn"], case_sensitive=True)(["p"], ["damn Damn"]) == [1.0]
    assert BannedPatternsConstraint(words=["c++"])(["p"], ["I like c++ a lot"]) == [1.0]  # escaped
    assert BannedPatternsConstraint(patterns=["secret"], flags=["IGNORECASE"], threshold=1)(["p"], ["SECRET"]) == [1.0]
    with pytest.raises(ConfigError):
        BannedPatternsConstraint()
