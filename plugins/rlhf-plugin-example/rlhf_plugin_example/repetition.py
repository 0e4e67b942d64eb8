"""Repetition: a reward for lexical diversity and a constraint that flags degenerate loops.

Repeated n-grams are the classic failure of sampled text (Holtzman et al., 2020, "The Curious Case
of Neural Text Degeneration") and a common way for an RL policy to game a reward model; the
distinct-n ratio is the diversity measure of Li et al., 2016, "A Diversity-Promoting Objective
Function for Neural Conversation Models".
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rlhf_lightning import ConstraintChecker, RewardFunction
from rlhf_lightning.errors import ConfigError


def ngrams(text: str, n: int, lowercase: bool = True) -> list[tuple[str, ...]]:
    """Word n-grams of ``text`` (whitespace tokens)."""
    words = (text.lower() if lowercase else text).split()
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


class DistinctNgramReward(RewardFunction):
    """Rewards lexical diversity: distinct word n-grams / all word n-grams (distinct-n, in [0, 1]).

    A completion with fewer than ``n`` words has no n-grams and scores ``short_score``
    (default 0, so that empty answers are not rewarded for being "diverse").
    """

    def __init__(self, n: int = 2, lowercase: bool = True, short_score: float = 0.0) -> None:
        super().__init__()
        if n < 1:
            raise ConfigError(f"distinct_ngrams: n must be >= 1, got {n}")
        self.n = n
        self.lowercase = lowercase
        self.short_score = float(short_score)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        scores = []
        for text in completions:
            grams = ngrams(text, self.n, self.lowercase)
            scores.append(len(set(grams)) / len(grams) if grams else self.short_score)
        return scores


class RepeatedNgramConstraint(ConstraintChecker):
    """Flags looping text: cost = extra occurrences of the most repeated word n-gram (0 = no repeat).

    With ``n=3`` and the default ``threshold=1``, a completion violates the constraint when some
    3-gram occurs three times or more.
    """

    def __init__(self, n: int = 3, lowercase: bool = True, threshold: float = 1.0) -> None:
        super().__init__(threshold=threshold)
        if n < 1:
            raise ConfigError(f"repeated_ngrams: n must be >= 1, got {n}")
        self.n = n
        self.lowercase = lowercase

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        costs = []
        for text in completions:
            counts = Counter(ngrams(text, self.n, self.lowercase))
            costs.append(float(max(counts.values()) - 1) if counts else 0.0)
        return costs
