"""Evaluation statistics: win rates with bootstrap intervals, KL summaries, distinct-n, text lengths.

Math layer: imports torch (and the standard library) only. Shapes: ``P`` prompts, ``N`` sampled
answers per prompt; answer ``j`` of every policy comes from the same random draws (common random
numbers), which is why answers are compared draw by draw.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

# One token per CJK character: ideographs (with extension A and compatibility forms), kana, hangul
# syllables, CJK punctuation and full-width forms. Everything else splits on whitespace.
CJK_RANGES = ("\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
              "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef")
_TOKEN = re.compile(f"[{CJK_RANGES}]|[^\\s{CJK_RANGES}]+")


def per_prompt_wins(policy: Tensor, baseline: Tensor) -> Tensor:
    """Fraction of draws in which the policy's answer beats the baseline's, per prompt.

    ``w_i = (1/N) Σ_j [1(s_ij > b_ij) + ½·1(s_ij = b_ij)]`` (a tie counts half).

    Args:
        policy, baseline: ``(P, N)`` scores; ``[i, j]`` is the answer to prompt ``i`` from draw ``j``.
    Returns:
        ``(P,)`` float64 in ``[0, 1]``.
    """
    if policy.shape != baseline.shape or policy.dim() != 2:
        raise ValueError(f"scores must both be (P, N); got {tuple(policy.shape)} and {tuple(baseline.shape)}")
    policy, baseline = policy.double(), baseline.double()
    return ((policy > baseline).double() + 0.5 * (policy == baseline).double()).mean(dim=1)


def bootstrap_interval(per_prompt: Tensor, *, samples: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``per_prompt``, resampling prompts.

    ``samples`` resamples of ``P`` prompts drawn with replacement (a generator seeded with ``seed``,
    so every policy and reward gets the same resamples); the interval is the ``(1 ± confidence)/2``
    quantiles of their means (Efron & Tibshirani 1993, ch. 13). Identical per-prompt values give a
    zero-width interval at that value.

    Args:
        per_prompt: ``(P,)`` one value per prompt, ``P >= 1``.
    Returns:
        ``(lo, hi)``.
    """
    if per_prompt.dim() != 1 or per_prompt.numel() == 0:
        raise ValueError(f"per_prompt must be a non-empty (P,) tensor, got shape {tuple(per_prompt.shape)}")
    if samples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need samples >= 1 and 0 < confidence < 1, got {samples}, {confidence}")
    values = per_prompt.double()
    generator = torch.Generator().manual_seed(seed)
    n = values.numel()
    means = torch.empty(samples, dtype=torch.float64)
    chunk = max(1, 2_000_000 // n)  # bound the (chunk, P) index tensor for large prompt sets
    for start in range(0, samples, chunk):
        rows = min(chunk, samples - start)
        idx = torch.randint(n, (rows, n), generator=generator)
        means[start:start + rows] = values[idx].mean(dim=1)
    tail = (1.0 - confidence) / 2.0
    lo, hi = torch.quantile(means, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)).tolist()
    # The quantiles of identical means can differ from them in the last bit; a constant stays exact.
    if bool((values == values[0]).all()):
        lo = hi = float(values[0])
    return lo, hi


@dataclass(frozen=True)
class WinRate:
    """Mean of the per-prompt win fractions and its bootstrap interval."""

    rate: float
    lo: float
    hi: float


def win_rate(policy: Tensor, baseline: Tensor, *, samples: int = 2000, seed: int = 0,
             confidence: float = 0.95) -> WinRate:
    """Win rate of ``policy`` over ``baseline`` (both ``(P, N)``): draws averaged per prompt, then
    prompts averaged; interval from :func:`bootstrap_interval` over prompts."""
    wins = per_prompt_wins(policy, baseline)
    lo, hi = bootstrap_interval(wins, samples=samples, seed=seed, confidence=confidence)
    return WinRate(float(wins.mean()), lo, hi)


def mean_std_stderr(values: Tensor) -> tuple[float, float, float]:
    """Mean, sample standard deviation (``N - 1`` in the denominator; 0 for one value) and standard
    error ``std / sqrt(N)`` of ``values`` ``(M,)`` (e.g. per-answer KL log-ratios)."""
    if values.numel() == 0:
        raise ValueError("no values to summarise")
    v = values.double().flatten()
    std = float(v.std(correction=1)) if v.numel() > 1 else 0.0
    return float(v.mean()), std, std / math.sqrt(v.numel())


def words(text: str) -> list[str]:
    """Whitespace-separated words, with each CJK character a word of its own.

    ``words("spring 春风 ok")`` is ``["spring", "春", "风", "ok"]``.
    """
    return _TOKEN.findall(text)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016, "A Diversity-Promoting Objective"): unique n-grams / all n-grams.

    n-grams are taken within each text (over :func:`words`) and pooled over ``texts``; 0.0 when
    no text has ``n`` words.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = []
    for text in texts:
        tokens = words(text)
        grams.extend(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0
