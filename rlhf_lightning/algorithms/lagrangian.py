"""Lagrange multiplier for constrained RLHF (PPO-Lagrangian).

Math layer: imports torch only.

The constrained problem ``max_θ J_R(θ)  s.t.  J_C(θ) ≤ d`` (reward ``R``, cost ``C`` from a
constraint/cost model, threshold ``d``) is solved through its Lagrangian dual
``min_θ max_{λ≥0} −J_R(θ) + λ·(J_C(θ) − d)`` (Ray, Achiam & Amodei 2019, "Benchmarking Safe
Exploration in Deep RL", PPO-Lagrangian; Dai et al. 2023, "Safe RLHF", arXiv 2310.12773, eq. 10):
the policy maximises ``R − λ·C`` while ``λ`` follows gradient *ascent* on ``λ·(E[C] − d)``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


class LagrangeMultiplier:
    """``λ ≥ 0`` updated by projected gradient ascent on ``λ·(E[cost] − threshold)``.

    Parameterisation: ``λ`` **directly** (not ``log λ``)::

        λ ← clip(λ + lr · (mean_cost − threshold), 0, max_value)

    The gradient of ``λ·(E[C] − d)`` with respect to ``λ`` is ``E[C] − d``; the projection onto
    ``[0, max_value]`` keeps the dual variable feasible. Safe RLHF instead ascends on ``log λ``
    (``ln λ ← ln λ + α·(J_C − d)``), which keeps ``λ > 0`` but can never reach 0 (so the cost
    term never switches off) and cannot start from ``λ = 0``; the direct form can, and its step
    does not scale with ``λ``. Consequences: ``λ`` rises linearly while the constraint is violated
    and falls back to exactly 0 — never below — once it is satisfied.

    Args:
        init: initial ``λ`` (≥ 0).
        lr: step size of the ascent (> 0).
        max_value: optional upper bound on ``λ`` (``None``: unbounded).
    """

    def __init__(self, init: float = 0.0, lr: float = 0.05, max_value: float | None = None) -> None:
        if init < 0:
            raise ValueError(f"Lagrange multiplier init must be >= 0, got {init}")
        if lr <= 0:
            raise ValueError(f"Lagrange multiplier lr must be > 0, got {lr}")
        if max_value is not None and max_value < init:
            raise ValueError(f"max_value ({max_value}) must be >= init ({init})")
        self.lr = float(lr)
        self.max_value = None if max_value is None else float(max_value)
        self.value = float(init)

    def update(self, mean_cost: float | Tensor, threshold: float) -> float:
        """One projected ascent step given the batch's mean cost; returns the new ``λ``."""
        lam = self.value + self.lr * (float(mean_cost) - float(threshold))
        lam = max(lam, 0.0)
        if self.max_value is not None:
            lam = min(lam, self.max_value)
        self.value = lam
        return lam

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


def lagrangian_scores(scores: Tensor, costs: Tensor, lam: float | Tensor, normalize: bool = True) -> Tensor:
    """Sequence scores of the Lagrangian policy objective: ``(R − λ·C) / (1 + λ)`` (or ``R − λ·C``).

    The policy step of PPO-Lagrangian maximises ``R − λ·C``; Safe RLHF (Dai et al. 2023, §3.3)
    divides by ``1 + λ`` so the scale of the combined signal stays that of one reward when ``λ``
    grows (the optimum in θ is unchanged for a fixed ``λ``).

    Args:
        scores: ``(B,)`` reward-model scores ``R``.
        costs: ``(B,)`` costs ``C`` (higher = worse).
        lam: the current ``λ ≥ 0`` (a float or a scalar tensor; treated as a constant).
        normalize: divide by ``1 + λ``.
    Returns:
        ``(B,)`` combined scores.
    """
    combined = scores - lam * costs
    return combined / (1.0 + lam) if normalize else combined
