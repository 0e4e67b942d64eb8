"""Rule-based rewards: length, keywords, regular expressions / output format, reference-answer match."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.option_checks import require
from rlhf_lightning.rewards.base import RewardFunction

Unit = Literal["words", "chars"]

_FLAGS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL,
          "VERBOSE": re.VERBOSE, "ASCII": re.ASCII}


def text_length(text: str, unit: Unit) -> int:
    """Length of ``text`` in whitespace-separated words or in characters."""
    return len(text.split()) if unit == "words" else len(text)


def compile_flags(flags: Sequence[str]) -> int:
    """``["IGNORECASE", "DOTALL"]`` -> ``re.IGNORECASE | re.DOTALL``, refusing unknown names."""
    value = 0
    for flag in flags:
        if flag.upper() not in _FLAGS:
            raise ConfigError(f"Unknown regex flag {flag!r}; use any of {', '.join(_FLAGS)}")
        value |= _FLAGS[flag.upper()]
    return value


def compile_pattern(pattern: str, flags: int = 0) -> re.Pattern:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ConfigError(f"Invalid regular expression {pattern!r}: {exc}") from exc


class LengthReward(RewardFunction):
    """Rewards completions whose length is close to a target (bounded, unlike raw length).

    With ``n`` the completion length (``unit``: words or characters)::

        score = max(-1, 1 - |n - target| / scale)      # two_sided (default)
        score = max(-1, 1 - max(target - n, 0) / scale) # one_sided: no penalty above target

    so the score is 1 at the target, falls linearly by 1 per ``scale`` units of distance and is
    floored at -1. ``scale`` defaults to ``target`` (0 words -> 0, target -> 1, 2·target -> 0).
    ``one_sided=True`` is "encourage longer answers" saturating at the target.
    """

    def __init__(self, target: int = 100, scale: float | None = None, unit: Unit = "words",
                 one_sided: bool = False) -> None:
        super().__init__()
        require(self, "target", target > 0, "must be > 0", target, f"length reward: target must be > 0, got {target}")
        self.target = int(target)
        self.scale = float(scale if scale is not None else target)
        require(self, "scale", self.scale > 0, "must be > 0", scale, f"length reward: scale must be > 0, got {scale}")
        self.unit = unit
        self.one_sided = one_sided

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        out = []
        for text in completions:
            n = text_length(text, self.unit)
            distance = max(self.target - n, 0) if self.one_sided else abs(n - self.target)
            out.append(max(-1.0, 1.0 - distance / self.scale))
        return out


class KeywordReward(RewardFunction):
    """Rewards completions that contain given keywords.

    ``reduce="fraction"``: share of keywords present (0..1); ``"any"``: 1 if at least one is
    present else 0; ``"count"``: total number of occurrences. ``whole_word`` matches on word
    boundaries; matching is case-insensitive unless ``case_sensitive``.
    """

    def __init__(self, keywords: list[str], reduce: Literal["fraction", "any", "count"] = "fraction",
                 case_sensitive: bool = False, whole_word: bool = False) -> None:
        super().__init__()
        if not keywords:
            raise ConfigError("keyword reward: give at least one keyword")
        self.keywords = list(keywords)
        self.reduce = reduce
        flags = 0 if case_sensitive else re.IGNORECASE
        wrap = (lambda k: rf"\b{re.escape(k)}\b") if whole_word else re.escape
        self._patterns = [re.compile(wrap(k), flags) for k in self.keywords]

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        out = []
        for text in completions:
            counts = [len(p.findall(text)) for p in self._patterns]
            if self.reduce == "count":
                out.append(float(sum(counts)))
            elif self.reduce == "any":
                out.append(1.0 if any(counts) else 0.0)
            else:
                out.append(sum(1 for c in counts if c) / len(counts))
        return out


class RegexReward(RewardFunction):
    """Scores ``match_score`` when a regular expression matches the completion, else ``miss_score``.

    ``mode``: ``"search"`` (anywhere), ``"fullmatch"`` (the whole completion, after stripping
    surrounding whitespace when ``strip``) or ``"count"`` (``match_score`` × number of matches,
    ``miss_score`` when none). ``flags``: names from :mod:`re` (``IGNORECASE``, ``DOTALL`` …).
    """

    def __init__(self, pattern: str, match_score: float = 1.0, miss_score: float = 0.0,
                 mode: Literal["search", "fullmatch", "count"] = "search", flags: list[str] | None = None,
                 strip: bool = True) -> None:
        super().__init__()
        self.pattern = pattern
        self.match_score = float(match_score)
        self.miss_score = float(miss_score)
        self.mode = mode
        self.strip = strip
        self._regex = compile_pattern(pattern, compile_flags(flags or []))

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        out = []
        for text in completions:
            text = text.strip() if self.strip else text
            if self.mode == "count":
                hits = len(self._regex.findall(text))
                out.append(self.match_score * hits if hits else self.miss_score)
            else:
                match = self._regex.fullmatch(text) if self.mode == "fullmatch" else self._regex.search(text)
                out.append(self.match_score if match else self.miss_score)
        return out


class FormatReward(RegexReward):
    """Rewards completions whose whole text has a required format (a full-match regex, ``.`` spans lines).

    The default pattern is the reasoning format ``<think>…</think>`` followed by
    ``<answer>…</answer>``.
    """

    def __init__(self, pattern: str = r"<think>.*?</think>\s*<answer>.*?</answer>", match_score: float = 1.0,
                 miss_score: float = 0.0, flags: list[str] | None = None) -> None:
        super().__init__(pattern, match_score=match_score, miss_score=miss_score, mode="fullmatch",
                         flags=["DOTALL", *(flags or [])])


class MatchReward(RewardFunction):
    """Rewards a completion whose answer equals the sample's reference answer (a dataset column).

    The answer is the completion itself, or the first group of ``extract`` (a regex searched in the
    completion; its last match wins, e.g. ``"\\\\boxed\\{([^}]*)\\}"``). With ``normalize`` both
    sides are lower-cased and whitespace-collapsed before comparing. Scores ``match_score`` or
    ``miss_score``; a completion without an extractable answer scores ``miss_score``.
    """

    def __init__(self, column: str = "answer", extract: str | None = None, normalize: bool = True,
                 match_score: float = 1.0, miss_score: float = 0.0) -> None:
        super().__init__()
        self.column = column
        self.normalize = normalize
        self.match_score = float(match_score)
        self.miss_score = float(miss_score)
        self._extract = compile_pattern(extract, re.DOTALL) if extract else None
        if self._extract is not None and self._extract.groups < 1:
            raise ConfigError(f"match reward: extract pattern {extract!r} needs a capturing group")

    def _norm(self, text: str) -> str:
        return " ".join(str(text).split()).lower() if self.normalize else str(text)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        if self.column not in columns:
            raise ConfigError(f"match reward needs the dataset column {self.column!r}; "
                              f"columns present: {', '.join(sorted(columns)) or '(none)'}")
        out = []
        for text, ref in zip(completions, columns[self.column], strict=True):
            if self._extract is not None:
                found = self._extract.findall(text)
                if not found:
                    out.append(self.miss_score)
                    continue
                last = found[-1]
                text = last[0] if isinstance(last, tuple) else last
            out.append(self.match_score if self._norm(text) == self._norm(ref) else self.miss_score)
        return out
