"""Rule-based constraint checkers: maximum length and banned words / patterns."""

from __future__ import annotations

import re
from typing import Any, Literal

from rlhf_lightning.constraints.base import ConstraintChecker
from rlhf_lightning.errors import ConfigError
from rlhf_lightning.option_checks import require
from rlhf_lightning.rewards.rules import compile_flags, compile_pattern, text_length


class MaxLengthConstraint(ConstraintChecker):
    """Cost = how far a completion exceeds ``max_length`` (words or characters): ``max(0, n - max_length)``.

    With the default ``threshold=0`` any excess is a violation; the cost grows with the excess so a
    penalty or Lagrangian can be graded.
    """

    def __init__(self, max_length: int = 256, unit: Literal["words", "chars"] = "words",
                 threshold: float = 0.0) -> None:
        super().__init__(threshold=threshold)
        require(self, "max_length", max_length >= 0, "must be >= 0", max_length,
                f"max_length constraint: max_length must be >= 0, got {max_length}")
        self.max_length = int(max_length)
        self.unit = unit

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [float(max(0, text_length(c, self.unit) - self.max_length)) for c in completions]


class BannedPatternsConstraint(ConstraintChecker):
    """Cost = number of occurrences of banned words (whole words) and regular-expression patterns.

    Words match case-insensitively unless ``case_sensitive``; ``flags`` apply to ``patterns``.
    With the default ``threshold=0`` a single occurrence is a violation.
    """

    def __init__(self, words: list[str] | None = None, patterns: list[str] | None = None,
                 case_sensitive: bool = False, flags: list[str] | None = None, threshold: float = 0.0) -> None:
        super().__init__(threshold=threshold)
        if not words and not patterns:
            raise ConfigError("banned_patterns constraint: give words and/or patterns")
        self.words = list(words or [])
        self.patterns = list(patterns or [])
        word_flags = 0 if case_sensitive else re.IGNORECASE
        self._regexes = [re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", word_flags) for w in self.words]
        self._regexes += [compile_pattern(p, compile_flags(flags or [])) for p in self.patterns]

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [float(sum(len(r.findall(c)) for r in self._regexes)) for c in completions]
