"""Plackett–Luce ratings from whole K-wise rankings (no ties): penalised maximum likelihood.

Model (Luce 1959; Plackett 1975, Appl. Statist. 24:193): a ranking ``σ_1 ≻ σ_2 ≻ … ≻ σ_K`` is a
sequence of choices, each of the best among the items left:

    P(σ) = Π_{k=1}^{K−1} exp(θ_{σ_k}) / Σ_{l=k}^{K} exp(θ_{σ_l}).

With K = 2 it is Bradley–Terry. Unlike cutting a ranking into its K(K−1)/2 pairs (InstructGPT's
reward-model loss; :mod:`.bradley_terry` with independent pairs), a ranking counts as one observation,
so the standard errors are not overstated. The estimate maximises the log-likelihood minus
``λ/2·‖θ‖²`` by the Newton iteration of :mod:`.bradley_terry` (same centring, gauge term and standard
errors); the MLE (``λ = 0``) exists iff the graph of "ranked above" is strongly connected (Hunter 2004,
Ann. Statist. 32:384, §5).

Math layer: torch only.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from rlhf_lightning.ratings.bradley_terry import BTFit, centred_covariance, newton_minimise

__all__ = ["plackett_luce_nll", "plackett_luce_derivatives", "fit_plackett_luce", "group_rankings"]


def group_rankings(rankings: Sequence[Sequence[int]], w: Sequence[float] | None = None) -> list[tuple[Tensor, Tensor]]:
    """Rankings grouped by length: ``[(order (R_K, K) long, weights (R_K,) float64), ...]`` (no padding,
    so no ``−inf`` entries whose second derivatives would be wrong)."""
    groups: dict[int, tuple[list, list]] = {}
    for r, ranking in enumerate(rankings):
        orders, weights = groups.setdefault(len(ranking), ([], []))
        orders.append(list(ranking))
        weights.append(1.0 if w is None else float(w[r]))
    return [(torch.tensor(o, dtype=torch.long), torch.tensor(ws, dtype=torch.float64))
            for _, (o, ws) in sorted(groups.items())]


def plackett_luce_nll(theta: Tensor, order: Tensor, w: Tensor) -> Tensor:
    """Negative log-likelihood of rankings ``order (R, K)`` (item indices, best first) with weights
    ``w (R,)`` under ratings ``theta (n,)``. Scalar.

    Per ranking ``−Σ_k [θ_{σ_k} − logsumexp_{l ≥ k} θ_{σ_l}]``; the suffix log-sum-exps by a reversed
    ``logcumsumexp``; the last position contributes 0."""
    scores = theta[order]
    suffix = torch.logcumsumexp(scores.flip(-1), dim=-1).flip(-1)
    return -(w * (scores - suffix).sum(-1)).sum()


def plackett_luce_derivatives(theta: Tensor, order: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient ``(n,)`` and Hessian ``(n, n)`` of :func:`plackett_luce_nll`: each choice ``k`` of a
    ranking, with ``p`` the softmax of the ratings of the items still left, adds ``w(p − e_{σ_k})`` to the
    gradient and ``w(diag p − p pᵀ)`` to the Hessian (the multinomial logit's information)."""
    n, k_len = theta.shape[0], order.shape[1]
    g = torch.zeros(n, dtype=theta.dtype)
    h = torch.zeros(n, n, dtype=theta.dtype)
    scores = theta[order]
    for k in range(k_len - 1):
        left, p = order[:, k:], torch.softmax(scores[:, k:], dim=-1)
        g.index_add_(0, left.reshape(-1), (w[:, None] * p).reshape(-1)).index_add_(0, order[:, k], -w)
        info = w[:, None, None] * (torch.diag_embed(p) - p[:, :, None] * p[:, None, :])
        rows, cols = left[:, :, None].expand_as(info), left[:, None, :].expand_as(info)
        h.index_put_((rows.reshape(-1), cols.reshape(-1)), info.reshape(-1), accumulate=True)
    return g, h


def fit_plackett_luce(n: int, rankings: Sequence[Sequence[int]], w: Sequence[float] | None = None, *,
                      prior: float = 0.0, max_iter: int = 100, tol: float = 1e-10) -> BTFit:
    """Ratings of ``n`` items from rankings (lists of distinct item indices, best first, K >= 2),
    with weights ``w`` (default 1). ``nu`` is None. Connectivity is the caller's to check."""
    if prior < 0 or not math.isfinite(prior):
        raise ValueError(f"prior must be a finite number >= 0, got {prior}")
    for ranking in rankings:
        if len(ranking) < 2 or len(set(ranking)) != len(ranking) or not all(0 <= a < n for a in ranking):
            raise ValueError(f"a ranking must list >= 2 distinct items in [0, {n}), got {list(ranking)}")
    if n == 1 or not rankings:
        return BTFit(torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64), None, 0.0, 0, True)
    groups = group_rankings(rankings, w)

    def nll(theta: Tensor) -> Tensor:
        return sum(plackett_luce_nll(theta, order, weights) for order, weights in groups)

    def objective(theta: Tensor) -> Tensor:
        return nll(theta) + prior / 2 * (theta**2).sum() + theta.sum() ** 2 / (2 * n)

    extra = prior * torch.eye(n, dtype=torch.float64) + 1.0 / n  # Hessian of the penalty and gauge terms

    def derivatives(theta: Tensor) -> tuple[Tensor, Tensor]:
        g, h = torch.zeros(n, dtype=torch.float64), extra.clone()
        for order, weights in groups:
            dg, dh = plackett_luce_derivatives(theta, order, weights)
            g, h = g + dg, h + dh
        return g + prior * theta + theta.sum() / n, h

    theta, h, iterations, converged = newton_minimise(objective, torch.zeros(n, dtype=torch.float64),
                                                      max_iter=max_iter, tol=tol, derivatives=derivatives)
    se = centred_covariance(h, n).diagonal().clamp(min=0).sqrt()
    loglik = -float(nll(theta))
    return BTFit(theta - theta.mean(), se, None, loglik, iterations, converged)
