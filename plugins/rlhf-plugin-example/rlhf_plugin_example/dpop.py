"""DPO-Positive (DPOP) preference loss.

Pal, Karkhanis, Dooley, Roberts, Naidu and White, 2024, "Smaug: Fixing Failure Modes of Preference
Optimisation with DPO-Positive", arXiv:2402.13228, Section 3 (the DPOP objective).

Plain DPO only asks the chosen log-ratio to exceed the rejected one, so both may fall — and on
pairs with a small edit distance the likelihood of the *preferred* answer often drops. DPOP adds a
penalty that is active only while the policy assigns the chosen completion less probability than
the reference does::

    r_w = log π(y_w|x) - log π_ref(y_w|x)          # chosen log-ratio
    r_l = log π(y_l|x) - log π_ref(y_l|x)          # rejected log-ratio
    loss = -log σ( β · (r_w - r_l - λ · max(0, -r_w)) )

(``max(0, -r_w) = max(0, log π_ref(y_w|x) / π(y_w|x))``). With ``λ = 0`` this is the DPO sigmoid
loss (Rafailov et al., 2023, Eq. 7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rlhf_lightning import PreferenceLoss
from rlhf_lightning.errors import ConfigError


def dpop_loss(chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
              beta: float = 0.1, lam: float = 50.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-pair DPOP loss; all inputs ``(B,)`` summed completion log-probs.

    Returns ``(losses, chosen_rewards, rejected_rewards, penalty)``, each ``(B,)``; the implicit
    rewards are ``β·r_w`` and ``β·r_l`` (detached), ``penalty = max(0, -r_w)``.
    """
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    penalty = torch.clamp(-chosen_ratio, min=0.0)
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio - lam * penalty))
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach(), penalty.detach()


class DPOPositiveLoss(PreferenceLoss):
    """DPO-Positive (Pal et al., 2024): DPO plus a penalty when the chosen answer loses likelihood.

    ``beta``: inverse temperature of the implicit reward, as in DPO. ``lam``: weight of the
    penalty ``max(0, log π_ref(y_w) - log π(y_w))``; 0 recovers DPO.
    """

    reference_free = False

    def __init__(self, beta: float = 0.1, lam: float = 50.0) -> None:
        super().__init__()
        if beta <= 0 or lam < 0:
            raise ConfigError(f"dpop: beta must be > 0 and lam >= 0 (got beta={beta}, lam={lam})")
        self.beta = float(beta)
        self.lam = float(lam)

    def __call__(self, chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor | None,
                 ref_rejected_logps: Tensor | None, chosen_lengths: Tensor,
                 rejected_lengths: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError("dpop needs reference log-probs (reference_free = False)")
        losses, chosen_r, rejected_r, penalty = dpop_loss(chosen_logps, rejected_logps, ref_chosen_logps,
                                                          ref_rejected_logps, self.beta, self.lam)
        metrics = {
            "rewards/chosen": chosen_r,
            "rewards/rejected": rejected_r,
            "rewards/margins": chosen_r - rejected_r,
            "rewards/accuracies": (chosen_r > rejected_r).float(),
            "dpop/penalty": penalty,
        }
        return losses, metrics
