"""Elo ratings: sequential updates over comparisons, in a given order or averaged over shuffles.

Elo (1978, "The Rating of Chessplayers"): both items start at ``initial``; for each comparison
``(i, j, y)`` in turn (``y`` = 1: ``i`` won, 0: ``j`` won, 0.5: tie)

    E = 1 / (1 + 10^((R_j − R_i) / scale)),   R_i ← R_i + K·(y − E),   R_j ← R_j − K·(y − E).

The result depends on the order: the last comparisons move the ratings most, and an item's rating
keeps moving by about ``K`` per game however much data came before (Elo estimates a drifting skill,
not a fixed one). Ratings from one fixed order are therefore noisy for a static set of judgements;
:func:`elo_shuffled` averages them over random orders (seeded) and reports the spread across
orders. Each update keeps the sum of ratings, so the mean stays ``initial``.
``scale / ln 10`` Elo points are one unit of the Bradley–Terry log-odds scale.

Math layer: torch only (plain Python floats for the sequential loop).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = ["elo_ratings", "elo_shuffled", "elo_to_log_odds"]


def elo_ratings(n: int, i: Sequence[int], j: Sequence[int], y: Sequence[float], *, k: float = 32.0,
                initial: float = 1500.0, scale: float = 400.0, order: Optional[Sequence[int]] = None) -> Tensor:
    """Ratings ``(n,)`` float64 after one sequential pass over the comparisons, in ``order``
    (indices into ``i, j, y``; default: as given)."""
    if k <= 0 or scale <= 0:
        raise ValueError(f"k and scale must be > 0, got k={k}, scale={scale}")
    r = [float(initial)] * n
    for m in range(len(i)) if order is None else order:
        a, b, outcome = int(i[m]), int(j[m]), float(y[m])
        expected = 1.0 / (1.0 + 10.0 ** ((r[b] - r[a]) / scale))
        delta = k * (outcome - expected)
        r[a] += delta
        r[b] -= delta
    return torch.tensor(r, dtype=torch.float64)


def elo_shuffled(n: int, i: Sequence[int], j: Sequence[int], y: Sequence[float], *, shuffles: int, seed: int = 0,
                 k: float = 32.0, initial: float = 1500.0, scale: float = 400.0) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation ``(n,)`` of :func:`elo_ratings` over ``shuffles`` random orders
    drawn from ``torch.Generator().manual_seed(seed)`` (the std is 0 for ``shuffles = 1``)."""
    if shuffles < 1:
        raise ValueError(f"shuffles must be >= 1, got {shuffles}")
    gen = torch.Generator().manual_seed(seed)
    runs = torch.stack([elo_ratings(n, i, j, y, k=k, initial=initial, scale=scale,
                                    order=torch.randperm(len(i), generator=gen).tolist()) for _ in range(shuffles)])
    std = runs.std(dim=0, correction=1) if shuffles > 1 else torch.zeros(n, dtype=torch.float64)
    return runs.mean(dim=0), std


def elo_to_log_odds(ratings: Tensor, *, initial: float = 1500.0, scale: float = 400.0) -> Tensor:
    """Elo points as centred natural-log odds: ``(R − initial)·ln 10 / scale`` (so that
    ``σ(r_i − r_j)`` is Elo's expected score of ``i`` against ``j``)."""
    return (ratings - initial) * (math.log(10.0) / scale)
