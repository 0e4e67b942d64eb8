"""Bradley–Terry ratings from paired comparisons: penalised maximum likelihood by Newton's method.

Model (Bradley & Terry 1952): item ``i`` has a rating ``θ_i`` on the natural-log-odds scale and

    P(i beats j) = σ(θ_i − θ_j) = π_i / (π_i + π_j),   π_i = exp(θ_i).

Ties, two ways (``ties=``):

- ``"half"``: a tie is half a win for each side; an outcome is any ``y ∈ [0, 1]`` (1: ``i`` won,
  0: ``j`` won, 0.5: tie) and the log-likelihood is ``y·log σ(d) + (1 − y)·log σ(−d)``, ``d = θ_i − θ_j``.
- ``"davidson"`` (Davidson 1970, JASA 65:317, eq. 2.1): one more parameter ``ν ≥ 0`` with
  ``P(i ≻ j) = π_i / Z``, ``P(j ≻ i) = π_j / Z``, ``P(tie) = ν·sqrt(π_i π_j) / Z``,
  ``Z = π_i + π_j + ν·sqrt(π_i π_j)``; outcomes must be exactly 1, 0 or 0.5. Data without ties
  gives ``ν = 0``, which is plain Bradley–Terry, and is fitted as such.

Estimation: minimise ``NLL(θ) + λ/2·‖θ‖² + (Σθ)² / (2n)`` with Newton steps and a backtracking line
search (all terms convex, the log-likelihoods being log-sum-exps of affine functions of θ and log ν).
``λ = prior`` is a Gaussian prior N(0, 1/λ) on every rating (a MAP estimate): it keeps items that won
every comparison finite. With ``prior = 0`` this is the MLE, which exists iff the win graph is strongly
connected (Zermelo 1929; Ford 1957; Hunter 2004, Ann. Statist. 32:384, Assumption 1) — the caller checks
that (:mod:`rlhf_lightning.ratings.graph`). The likelihood ignores a common shift of θ; the last term
(zero at the optimum) fixes that gauge, so ratings come out centred: ``Σ θ_i = 0``.

Standard errors: from the observed information, ``Cov(θ) ≈ P·H⁻¹·P`` with ``H`` the Hessian of the
minimised objective at the optimum (for Davidson the θ block of the joint inverse, so ν's uncertainty
is included) and ``P = I − 11ᵀ/n`` the centring projection: the SE of each centred rating, the
posterior standard deviation (Laplace approximation) when ``prior > 0``. They assume independent
comparisons; pairs cut from one K-wise ranking are not, so their SEs come out too small.

Math layer: torch only, float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

Ties = Literal["half", "davidson"]
__all__ = ["BTFit", "bradley_terry_nll", "bradley_terry_derivatives", "davidson_nll", "fit_bradley_terry",
           "newton_minimise", "centred_covariance"]


@dataclass
class BTFit:
    """``ratings`` and ``se``: ``(n,)`` float64 (centred, natural-log scale); ``nu``: Davidson's tie
    parameter (None for half-wins); ``log_likelihood`` of the data at the estimate (prior excluded)."""

    ratings: Tensor
    se: Tensor
    nu: Optional[float]
    log_likelihood: float
    iterations: int
    converged: bool


def bradley_terry_nll(theta: Tensor, i: Tensor, j: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Negative log-likelihood, ties as half-wins. ``theta (n,)``; ``i, j (m,)`` long item indices;
    ``y (m,)`` outcomes in [0, 1] (share of the win that went to ``i``); ``w (m,)`` weights. Scalar."""
    d = theta[i] - theta[j]
    return -(w * (y * F.logsigmoid(d) + (1 - y) * F.logsigmoid(-d))).sum()


def davidson_nll(theta: Tensor, log_nu: Tensor, i: Tensor, j: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Davidson (1970) negative log-likelihood; ``y`` is 1 (``i`` won), 0 (``j`` won) or 0.5 (tie);
    shapes as :func:`bradley_terry_nll`, ``log_nu`` a scalar tensor. Scalar."""
    ti, tj = theta[i], theta[j]
    tie_logit = log_nu + (ti + tj) / 2
    log_z = torch.logsumexp(torch.stack([ti, tj, tie_logit]), dim=0)
    numerator = torch.where(y == 0.5, tie_logit, torch.where(y == 1, ti, tj))
    return -(w * (numerator - log_z)).sum()


def newton_minimise(objective: Callable[[Tensor], Tensor], x0: Tensor, *, max_iter: int = 100, tol: float = 1e-10,
                    derivatives: Optional[Callable[[Tensor], tuple[Tensor, Tensor]]] = None
                    ) -> tuple[Tensor, Tensor, int, bool]:
    """Minimise a smooth, strictly convex ``objective`` of ``x (p,)``: Newton steps with Armijo
    backtracking. Stops (after one more full step) when half the Newton decrement ``gᵀH⁻¹g`` is below
    ``tol``. ``derivatives(x) -> (gradient (p,), Hessian (p, p))`` where known in closed form (much
    faster than the default, ``torch.func``). Returns ``(x, H at x (p, p), iterations, converged)``."""
    if derivatives is None:
        grad_fn, hess_fn = torch.func.grad(objective), torch.func.hessian(objective)

        def derivatives(x: Tensor) -> tuple[Tensor, Tensor]:
            return grad_fn(x), hess_fn(x)

    x = x0.clone()
    for it in range(1, max_iter + 1):
        g, h = derivatives(x)
        step = torch.linalg.solve(h, g)
        decrement = float(g @ step)
        if decrement / 2 < tol:  # inside the quadratic region: one last full step, error ~ decrement²
            x = x - step
            return x, derivatives(x)[1], it, True
        f0, t = float(objective(x)), 1.0
        while t > 1e-12 and float(objective(x - t * step)) > f0 - 1e-4 * t * decrement:
            t /= 2
        x = x - t * step
    return x, derivatives(x)[1], max_iter, False


def bradley_terry_derivatives(theta: Tensor, i: Tensor, j: Tensor, y: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient ``(n,)`` and Hessian ``(n, n)`` of :func:`bradley_terry_nll`: with ``p = σ(θ_i − θ_j)``,
    each comparison adds ``w(p − y)`` to ``g_i`` (minus to ``g_j``) and ``w·p(1−p)`` to ``H_ii`` and
    ``H_jj`` (minus to ``H_ij`` and ``H_ji``)."""
    n = theta.shape[0]
    p = torch.sigmoid(theta[i] - theta[j])
    r, c = w * (p - y), w * p * (1 - p)
    g = torch.zeros(n, dtype=theta.dtype).index_add_(0, i, r).index_add_(0, j, -r)
    h = torch.zeros(n, n, dtype=theta.dtype)
    h.index_put_((i, i), c, accumulate=True).index_put_((j, j), c, accumulate=True)
    h.index_put_((i, j), -c, accumulate=True).index_put_((j, i), -c, accumulate=True)
    return g, h


def centred_covariance(hessian: Tensor, n: int) -> Tensor:
    """``P·H⁻¹·P`` for the first ``n`` coordinates (the ratings), ``P = I − 11ᵀ/n``. ``(n, n)``."""
    cov = torch.linalg.inv(hessian)[:n, :n]
    p = torch.eye(n, dtype=cov.dtype) - 1.0 / n
    return p @ cov @ p


def fit_bradley_terry(n: int, i: Tensor, j: Tensor, y: Tensor, w: Optional[Tensor] = None, *, prior: float = 0.0,
                      ties: Ties = "half", max_iter: int = 100, tol: float = 1e-10) -> BTFit:
    """Fit ratings of ``n`` items from ``m`` comparisons ``(i[k], j[k], y[k])`` with weights ``w``
    (default 1): see the module docstring. ``prior = λ >= 0``. Connectivity is the caller's to check:
    without a prior, a win graph that is not strongly connected has no finite MLE, and Newton stops
    wherever the likelihood flattens out (large ratings, huge SEs) — check with
    :func:`rlhf_lightning.ratings.graph.unbeaten_components` first."""
    if prior < 0 or not math.isfinite(prior):
        raise ValueError(f"prior must be a finite number >= 0, got {prior}")
    if ties not in ("half", "davidson"):
        raise ValueError(f"ties must be 'half' or 'davidson', got {ties!r}")
    i, j = torch.as_tensor(i, dtype=torch.long), torch.as_tensor(j, dtype=torch.long)
    y = torch.as_tensor(y, dtype=torch.float64)
    w = torch.ones_like(y) if w is None else torch.as_tensor(w, dtype=torch.float64)
    if not (i.shape == j.shape == y.shape == w.shape) or i.dim() != 1:
        raise ValueError(f"i, j, y, w must be 1-D of one length, got {[tuple(t.shape) for t in (i, j, y, w)]}")
    if n < 1 or (len(i) and (min(int(i.min()), int(j.min())) < 0 or max(int(i.max()), int(j.max())) >= n)):
        raise ValueError(f"item indices must be in [0, {n})")
    if bool((i == j).any()):
        raise ValueError("an item compared with itself")
    if bool(((y < 0) | (y > 1)).any()) or bool((w < 0).any()):
        raise ValueError("outcomes must lie in [0, 1] and weights be >= 0")
    if n == 1:
        return BTFit(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                     None if ties == "half" else 0.0, 0.0, 0, True)

    def regulariser(theta: Tensor) -> Tensor:
        return prior / 2 * (theta**2).sum() + theta.sum() ** 2 / (2 * n)

    has_ties = bool((y == 0.5).any())
    if ties == "davidson" and not bool(((y == 0) | (y == 0.5) | (y == 1)).all()):
        raise ValueError("Davidson ties need outcomes 0, 0.5 or 1")
    if ties == "davidson" and has_ties:
        if bool((y == 0.5).all()):
            raise ValueError("every comparison is a tie: Davidson's ν has no finite estimate")

        def objective(x: Tensor) -> Tensor:
            return davidson_nll(x[:n], x[n], i, j, y, w) + regulariser(x[:n])

        x0 = torch.zeros(n + 1, dtype=torch.float64)
        x, h, iterations, converged = newton_minimise(objective, x0, max_iter=max_iter, tol=tol)
        theta, nu = x[:n], math.exp(float(x[n]))
        loglik = -float(davidson_nll(theta, x[n], i, j, y, w))
    else:
        def objective(theta: Tensor) -> Tensor:
            return bradley_terry_nll(theta, i, j, y, w) + regulariser(theta)

        extra = prior * torch.eye(n, dtype=torch.float64) + 1.0 / n  # Hessian of the regulariser

        def derivatives(theta: Tensor) -> tuple[Tensor, Tensor]:
            g, h = bradley_terry_derivatives(theta, i, j, y, w)
            return g + prior * theta + theta.sum() / n, h + extra

        theta, h, iterations, converged = newton_minimise(objective, torch.zeros(n, dtype=torch.float64),
                                                          max_iter=max_iter, tol=tol, derivatives=derivatives)
        nu = None if ties == "half" else 0.0  # Davidson without ties: ν = 0, the same likelihood
        loglik = -float(bradley_terry_nll(theta, i, j, y, w))
    se = centred_covariance(h, n).diagonal().clamp(min=0).sqrt()
    return BTFit(theta - theta.mean(), se, nu, loglik, iterations, converged)
