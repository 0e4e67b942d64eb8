"""KTO and its unpaired relatives: pure functions, and the plugin classes that hold their
hyperparameters (entry-point group ``rlhf_lightning.unpaired_losses``).

KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization", Eq. 7-8)
learns from single completions labelled desirable or undesirable. With the implied reward
``r = log π(y|x) - log π_ref(y|x)`` and the reference point ``z0 = max(0, KL(π || π_ref))``::

    L(x, y) = λ_D · (1 - σ(β (r - z0)))   if y is desirable
              λ_U · (1 - σ(β (z0 - r)))   if y is undesirable

``z0`` is estimated per batch from *mismatched* pairs ``(x_i, y_j)``, ``j ≠ i`` (the paper, §4.1;
TRL's ``KTOTrainer``): :func:`kl_estimate` of their log-ratios, detached (no gradient flows through
the reference point) and clamped at 0. Definitions and defaults follow TRL 1.16 (``loss_type="kto"``
and ``"apo_zero_unpaired"``), so the numbers agree.

Math layer: imports torch only (and the project's option checks).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from rlhf_lightning.losses.base import UnpairedPreferenceLoss
from rlhf_lightning.option_checks import non_negative, positive, require

# --------------------------------------------------------------------------- pure functions


def kl_estimate(kl_logps: Tensor, ref_kl_logps: Tensor) -> Tensor:
    """The batch's KL estimate ``mean_i(log π(y'_i|x_i) - log π_ref(y'_i|x_i))``, detached.

    ``kl_logps``, ``ref_kl_logps``: ``(B,)`` log-prob sums of the mismatched pairs ``(x_i, y'_i)``.
    Returns a scalar; not clamped (average it over data-parallel ranks first, then :func:`kto_loss`
    clamps, as TRL does).
    """
    return (kl_logps - ref_kl_logps).mean().detach()


def kto_loss(logratios: Tensor, labels: Tensor, kl: Tensor, beta: float = 0.1, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> Tensor:
    """KTO's per-row loss (Ethayarajh et al. 2024, Eq. 7-8; TRL ``loss_type="kto"``).

    Args:
        logratios: ``(B,)`` ``r = log π(y|x) - log π_ref(y|x)`` (completion-token sums).
        labels: ``(B,)`` bool, ``True`` = desirable.
        kl: scalar, the KL estimate; clamped at 0 here and detached (the reference point ``z0``).

    Returns ``(B,)``: ``λ_D (1 - σ(β (r - z0)))`` on desirable rows, ``λ_U (1 - σ(β (z0 - r)))`` on
    undesirable ones. With ``r = z0`` every row costs half its weight.
    """
    z0 = kl.detach().clamp(min=0)
    labels = labels.to(torch.bool)
    desirable = desirable_weight * (1 - torch.sigmoid(beta * (logratios - z0)))
    undesirable = undesirable_weight * (1 - torch.sigmoid(beta * (z0 - logratios)))
    return torch.where(labels, desirable, undesirable)


def apo_zero_unpaired_loss(logratios: Tensor, labels: Tensor, beta: float = 0.1, desirable_weight: float = 1.0,
                           undesirable_weight: float = 1.0) -> Tensor:
    """Unpaired APO-zero (D'Oosterlinck et al. 2024, "Anchored Preference Optimization", Eq. 7;
    TRL ``loss_type="apo_zero_unpaired"``): KTO with the reference point fixed at 0.

    Returns ``(B,)``: ``λ_D (1 - σ(β r))`` on desirable rows (push their likelihood up) and
    ``λ_U σ(β r)`` on undesirable ones (push it down).
    """
    labels = labels.to(torch.bool)
    desirable = desirable_weight * (1 - torch.sigmoid(beta * logratios))
    undesirable = undesirable_weight * torch.sigmoid(beta * logratios)
    return torch.where(labels, desirable, undesirable)


# --------------------------------------------------------------------------- plugin classes


class _UnpairedLoss(UnpairedPreferenceLoss):
    def __init__(self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> None:
        super().__init__()
        positive(self, "beta", beta)
        non_negative(self, "desirable_weight", desirable_weight)
        non_negative(self, "undesirable_weight", undesirable_weight)
        require(self, "desirable_weight", desirable_weight + undesirable_weight > 0,
                "desirable_weight and undesirable_weight must not both be 0", desirable_weight)
        self.beta = float(beta)
        self.desirable_weight = float(desirable_weight)
        self.undesirable_weight = float(undesirable_weight)

    def losses(self, logratios: Tensor, labels: Tensor, kl: Optional[Tensor]) -> Tensor:
        raise NotImplementedError

    def __call__(self, logps: Tensor, ref_logps: Tensor, labels: Tensor,
                 kl: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor]]:
        if self.needs_kl and kl is None:
            raise ValueError(f"{type(self).__name__} needs the KL estimate from mismatched pairs (kl=None)")
        logratios = logps - ref_logps
        losses = self.losses(logratios, labels, kl)
        metrics = {"rewards": self.beta * logratios.detach()}
        if kl is not None:
            metrics["kl"] = kl.detach().clamp(min=0)
        return losses, metrics


class KTOLoss(_UnpairedLoss):
    """KTO (Ethayarajh et al. 2024): unpaired desirable/undesirable rows, KL reference point. See :func:`kto_loss`.

    Args:
        beta: β, the inverse temperature of the value function (higher: stay closer to the reference).
        desirable_weight, undesirable_weight: λ_D and λ_U; the paper recommends
            ``λ_D n_D / (λ_U n_U)`` in ``[1, 4/3]`` for ``n_D`` desirable and ``n_U`` undesirable rows.
    """

    needs_kl = True

    def losses(self, logratios, labels, kl):
        return kto_loss(logratios, labels, kl, self.beta, self.desirable_weight, self.undesirable_weight)


class APOZeroUnpairedLoss(_UnpairedLoss):
    """Unpaired APO-zero (D'Oosterlinck et al. 2024): KTO without the KL reference point.

    See :func:`apo_zero_unpaired_loss`; same options as :class:`KTOLoss`."""

    needs_kl = False

    def losses(self, logratios, labels, kl):
        return apo_zero_unpaired_loss(logratios, labels, self.beta, self.desirable_weight, self.undesirable_weight)
