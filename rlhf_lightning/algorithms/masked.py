"""Reductions over the real (unmasked) entries of a tensor: sums, means, variances, whitening.

Math layer: imports torch only. Masks are bool or 0/1 tensors broadcastable to ``x``; ``1`` marks a
real completion token, ``0`` padding. Masked entries are *selected away* (``torch.where``), not
multiplied by zero, so ``inf``/``nan`` at padding positions (e.g. ``-inf`` log-probs of pad tokens)
never leak into the results or their gradients.

Empty masks never raise (a data-dependent check would force a device sync): the count of an empty
selection is clamped to 1, so its mean and variance are 0. Callers that must reject empty batches
check the mask themselves.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor

#: set by :func:`pooled_statistics`: sums a tensor over all data-parallel processes
_POOL: ContextVar[Optional[Callable[[Tensor], Tensor]]] = ContextVar("masked_pool", default=None)


@contextmanager
def pooled_statistics(sum_fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Inside this context :func:`whiten` takes its mean and variance over the masked entries of
    ``x`` on *every* process, ``sum_fn`` summing a tensor across them (an all-reduce), so batch
    normalisation does not depend on how the batch is split (every process must whiten as often)."""
    token = _POOL.set(sum_fn)
    try:
        yield
    finally:
        _POOL.reset(token)


def _select(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(x with masked entries set to 0, mask as bool expanded to x's shape)``."""
    keep = mask.to(torch.bool).expand_as(x)
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)), keep


def masked_sum(x: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Sum of ``x`` over the entries where ``mask`` is set.

    Args:
        x: any shape, e.g. ``(B, T)``.
        mask: bool or 0/1, broadcastable to ``x``.
        dim: dimension(s) to reduce; ``None`` reduces everything to a scalar.
    Returns:
        ``x``'s shape without ``dim`` (a scalar for ``dim=None``).
    """
    xs, _ = _select(x, mask)
    return xs.sum() if dim is None else xs.sum(dim=dim)


def masked_count(mask: Tensor, dim: int | tuple[int, ...] | None = None, like: Tensor | None = None) -> Tensor:
    """Number of set entries of ``mask`` (broadcast to ``like``'s shape when given), as a float tensor."""
    m = mask.to(torch.bool)
    if like is not None:
        m = m.expand_as(like)
    m = m.to(like.dtype if like is not None and like.is_floating_point() else torch.float32)
    return m.sum() if dim is None else m.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is set: ``sum(x·m) / max(sum(m), 1)``.

    Args:
        x: any shape, e.g. ``(B, T)``.
        mask: bool or 0/1, broadcastable to ``x``.
        dim: dimension(s) to reduce; ``None`` reduces everything.
    Returns:
        ``x``'s shape without ``dim``. A slice with no set entry has mean 0 (count clamped to 1).
    """
    total = masked_sum(x, mask, dim)
    count = masked_count(mask, dim, like=x).clamp(min=1)
    return total / count


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the masked entries of ``x`` (all dimensions pooled), a scalar.

    ``var = sum(m·(x − mean)²) / (n − 1)`` (Bessel-corrected) when ``unbiased``, else ``/ n``, with
    ``n`` the number of set entries. The denominator is clamped to 1, so a selection of 0 or 1
    entries has variance 0 (its deviations are all 0) instead of ``nan``.

    Args:
        x: any shape, e.g. ``(B, T)``.
        mask: bool or 0/1, broadcastable to ``x``.
    Returns:
        scalar tensor.
    """
    mean = masked_mean(x, mask)
    sq_dev = masked_sum((x - mean) ** 2, mask)
    n = masked_count(mask, like=x)
    denom = (n - 1) if unbiased else n
    return sq_dev / denom.clamp(min=1)


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise the masked entries of ``x`` to unit variance (and zero mean when ``shift_mean``).

    ``y = (x − μ) / sqrt(σ² + eps)`` (``+ μ`` added back when ``shift_mean=False``), with ``μ`` and
    the unbiased ``σ²`` taken over the masked entries of the whole tensor (batch-level advantage
    normalisation, as in PPO implementations and REINFORCE++, Hu 2025 §3) — of the whole tensor on
    all processes inside :func:`pooled_statistics`. ``rsqrt`` of
    ``σ² + eps`` keeps a constant input finite (it maps to 0).

    Args:
        x: ``(B, T)`` (any shape).
        mask: bool or 0/1, broadcastable to ``x``.
    Returns:
        same shape as ``x``; exactly 0 where ``mask`` is 0.
    """
    pool = _POOL.get()
    if pool is None:
        mean = masked_mean(x, mask)
        var = masked_var(x, mask, unbiased=True)
    else:
        total, n = pool(torch.stack([masked_sum(x, mask), masked_count(mask, like=x)]))
        mean = total / n.clamp(min=1)
        var = pool(masked_sum((x - mean) ** 2, mask)) / (n - 1).clamp(min=1)
    y = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        y = y + mean
    return _select(y, mask)[0]
