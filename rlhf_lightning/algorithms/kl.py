"""Per-token KL estimators and KL-coefficient controllers for the online-RL stage.

Math layer: imports torch only.

- :func:`kl_estimate`: Monte-Carlo estimators of ``KL(π ‖ π_ref)`` from tokens sampled from ``π``
  (J. Schulman, "Approximating KL divergence", 2020).
- :class:`FixedKLController`, :class:`AdaptiveKLController`: the coefficient ``β`` of the per-token
  KL penalty in the shaped reward ``r_t = −β·KL_t (+ score at the last token)``; the adaptive one
  is the proportional controller of Ziegler et al. 2019, "Fine-Tuning Language Models from Human
  Preferences", §2.2. Both are checkpointed by the stage (``state_dict`` / ``load_state_dict``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

KLEstimator = Literal["k1", "k2", "k3"]

#: |log r| is clamped to this for k3 only: exp(20) ≈ 4.9e8 is finite in fp32/bf16, exp(89) is not.
K3_LOG_RATIO_CLAMP = 20.0


def kl_estimate(logps: Tensor, ref_logps: Tensor, estimator: KLEstimator = "k1",
                log_ratio_clamp: float | None = K3_LOG_RATIO_CLAMP) -> Tensor:
    """Per-token estimate of ``KL(π ‖ π_ref)`` from tokens ``x ~ π`` (Schulman 2020).

    With ``r = π_ref(x) / π(x)`` (so ``log r = ref_logps − logps``):

    - ``k1 = −log r = logps − ref_logps``: unbiased, ``E_π[k1] = KL``; high variance and negative
      for some samples. The estimator of Ziegler et al. 2019 / InstructGPT's reward penalty.
    - ``k2 = ½ (log r)²``: always ``≥ 0``, low variance, **biased**: ``E_π[k2] = ½ E_π[(log r)²]
      = ½ (Var_π[log r] + KL²)``, which matches ``KL`` only to second order in ``r − 1``.
    - ``k3 = (r − 1) − log r``: unbiased (``E_π[r] = 1``), always ``≥ 0`` (``log r ≤ r − 1``), low
      variance; GRPO's per-token KL term (Shao et al. 2024, eq. 4). Computed as
      ``expm1(log r) − log r``; ``log r`` is first clamped to ``[−log_ratio_clamp,
      log_ratio_clamp]`` (default 20) so ``exp`` cannot overflow when the policy has drifted far
      from the reference — beyond the clamp the estimate (and its gradient) is capped, which only
      matters for tokens whose probability ratio exceeds ``e^20``. ``None`` disables the clamp.

    Args:
        logps: ``(B, T)`` log-probabilities of the sampled tokens under ``π`` (the policy).
        ref_logps: ``(B, T)`` log-probabilities of the same tokens under ``π_ref``.
        estimator: ``"k1"``, ``"k2"`` or ``"k3"``.
        log_ratio_clamp: bound on ``|log r|`` for ``k3`` (``None``: no clamp).
    Returns:
        ``(B, T)`` per-token estimates in at least float32 (padding positions are not masked here;
        the caller masks). Gradients flow to both inputs.
    """
    dtype = torch.promote_types(torch.promote_types(logps.dtype, ref_logps.dtype), torch.float32)
    log_ratio = logps.to(dtype) - ref_logps.to(dtype)  # log π/π_ref = −log r
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    if estimator == "k3":
        log_r = -log_ratio
        if log_ratio_clamp is not None:
            log_r = log_r.clamp(-log_ratio_clamp, log_ratio_clamp)
        return torch.expm1(log_r) - log_r
    raise ValueError(f"Unknown KL estimator {estimator!r}; choose one of 'k1', 'k2', 'k3'")


class FixedKLController:
    """Constant KL coefficient ``β`` (``update`` is a no-op); InstructGPT's choice (Ouyang et al. 2022)."""

    def __init__(self, coef: float) -> None:
        if coef < 0:
            raise ValueError(f"KL coefficient must be >= 0, got {coef}")
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Keep ``β``; returns it (same interface as :class:`AdaptiveKLController`)."""
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Proportional controller that steers the measured KL towards ``target`` (Ziegler et al. 2019, §2.2).

    After each rollout batch of ``n_steps`` samples with mean KL ``KL`` (summed over the tokens of a
    completion, the quantity Ziegler et al. target)::

        e = clip(KL / target − 1, −0.2, 0.2)
        β ← β · (1 + e · n_steps / horizon)

    so ``β`` grows while the policy drifts further than ``target`` nats and shrinks when it stays
    closer; the clip bounds the change per update to ±20 % · ``n_steps / horizon``.

    Args:
        init_coef: initial ``β`` (≥ 0).
        target: target KL in nats (> 0).
        horizon: number of samples over which the error is corrected (> 0).
    """

    def __init__(self, init_coef: float = 0.1, target: float = 6.0, horizon: int = 10000) -> None:
        if init_coef < 0:
            raise ValueError(f"init_coef must be >= 0, got {init_coef}")
        if target <= 0:
            raise ValueError(f"target KL must be > 0, got {target}")
        if horizon <= 0:
            raise ValueError(f"horizon must be > 0, got {horizon}")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """One controller step for a batch of ``n_steps`` samples with mean KL ``current_kl``; returns ``β``."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        """Only ``β`` is state; ``target`` and ``horizon`` are hyperparameters and come from the config."""
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
