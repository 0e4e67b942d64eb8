"""ROUGE-N and ROUGE-L (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries").

Pure Python. Tokens: lower-cased runs of letters and digits (punctuation dropped, as the reference
``rouge-score`` tokenizer does for Latin text), and one token per CJK character (which that
tokenizer would drop), so Chinese summaries score too. No stemming.

For a candidate ``c`` and a reference ``r``:

- ROUGE-N: ``overlap = Σ_g min(count_c(g), count_r(g))`` over n-grams ``g``;
  ``P = overlap / #ngrams(c)``, ``R = overlap / #ngrams(r)``;
- ROUGE-L: ``P = LCS(c, r) / |c|``, ``R = LCS(c, r) / |r|`` (longest common subsequence of tokens);
- ``F = 2PR / (P + R)`` (0 when ``P + R = 0``).

Against several references the best F (or P or R) over them is taken.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal, Sequence

from rlhf_lightning.evaluation.metrics import CJK_RANGES

Variant = Literal["rouge1", "rouge2", "rougeL"]
Measure = Literal["f1", "precision", "recall"]
VARIANTS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")
_TOKEN = re.compile(f"[{CJK_RANGES}]|[^\\W_{CJK_RANGES}]+")
_PUNCT = re.compile(r"[\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]")


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; each CJK character alone; punctuation (ASCII and CJK) dropped."""
    return [t for t in _TOKEN.findall(text.lower()) if not _PUNCT.fullmatch(t)]


def _score(overlap: int, n_candidate: int, n_reference: int) -> Score:
    p = overlap / n_candidate if n_candidate else 0.0
    r = overlap / n_reference if n_reference else 0.0
    return Score(p, r, 2 * p * r / (p + r) if p + r else 0.0)


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(candidate: Sequence[str], reference: Sequence[str], n: int) -> Score:
    """ROUGE-N of two token lists."""
    c, r = _ngrams(candidate, n), _ngrams(reference, n)
    return _score(sum((c & r).values()), sum(c.values()), sum(r.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(|a|·|b|) time, O(|b|) memory)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(row[j], row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> Score:
    """ROUGE-L (sentence level) of two token lists."""
    return _score(lcs_length(candidate, reference), len(candidate), len(reference))


def rouge(candidate: str, references: str | Sequence[str], variant: Variant = "rougeL",
          measure: Measure = "f1") -> float:
    """``measure`` of ROUGE ``variant`` between a candidate text and one or more reference texts (best one)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ROUGE variant {variant!r}; use one of {', '.join(VARIANTS)}")
    refs = [references] if isinstance(references, str) else list(references)
    cand = tokenize(candidate)
    best = 0.0
    for ref in refs:
        tokens = tokenize(ref)
        s = rouge_l(cand, tokens) if variant == "rougeL" else rouge_n(cand, tokens, int(variant[-1]))
        best = max(best, getattr(s, measure))
    return best
