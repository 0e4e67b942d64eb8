"""Base classes of loss plugins: preference losses (DPO family), unpaired preference losses (KTO) and
reward-model losses.

Math layer: imports torch only. A loss class holds its hyperparameters (``__init__`` arguments,
the YAML ``init_args``) and calls a pure tensor function; it is not an ``nn.Module``.
"""

from __future__ import annotations

import torch
from torch import Tensor


class PreferenceLoss:
    """Loss on (chosen, rejected) pairs for offline preference optimisation (group ``rlhf_lightning.preference_losses``).

    Call contract::

        loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
             chosen_lengths, rejected_lengths) -> (losses, metrics)

    - ``chosen_logps``, ``rejected_logps``: ``(B,)`` SUMS of the policy's completion-token
      log-probabilities (prompt tokens excluded).
    - ``ref_chosen_logps``, ``ref_rejected_logps``: ``(B,)`` the same under the frozen reference,
      or ``None`` when the class sets ``reference_free = True`` (the stage then skips the reference).
    - ``chosen_lengths``, ``rejected_lengths``: ``(B,)`` completion-token counts (for
      length-normalised losses such as SimPO).
    - ``losses``: ``(B,)`` one loss per pair; the stage reduces it (mean) so that data-parallel
      sharding and gradient accumulation do not change the result.
    - ``metrics``: ``dict[str, Tensor]`` of ``(B,)`` or scalar tensors to log (e.g. implicit
      rewards, margins, accuracies).
    """

    reference_free: bool = False

    def __init__(self) -> None:
        pass

    def __call__(self, chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor | None,
                 ref_rejected_logps: Tensor | None, chosen_lengths: Tensor,
                 rejected_lengths: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class UnpairedPreferenceLoss:
    """Loss on unpaired (prompt, completion, desirable?) rows, as KTO (group ``rlhf_lightning.unpaired_losses``).

    Call contract::

        loss(logps, ref_logps, labels, kl=None) -> (losses, metrics)

    - ``logps``, ``ref_logps``: ``(B,)`` SUMS of the completion-token log-probabilities under the
      policy and the frozen reference.
    - ``labels``: ``(B,)`` bool, ``True`` for a desirable completion, ``False`` for an undesirable one.
    - ``kl``: scalar tensor, the batch's KL estimate ``mean(log π(y'|x) - log π_ref(y'|x))`` over
      mismatched pairs ``(x, y')`` (detached; averaged over data-parallel ranks by the stage), or
      ``None`` when the class sets ``needs_kl = False`` (the stage then skips the mismatched pairs).
    - ``losses``: ``(B,)`` one loss per row; the stage takes their mean. ``metrics``: ``dict[str,
      Tensor]``, ``(B,)`` or scalar tensors to log (the stage averages ``(B,)`` ones per label).
    """

    needs_kl: bool = True

    def __init__(self) -> None:
        pass

    def __call__(self, logps: Tensor, ref_logps: Tensor, labels: Tensor,
                 kl: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class RewardLoss:
    """Loss that trains a scalar reward model from rankings or labels (group ``rlhf_lightning.reward_losses``).

    Call contract::

        loss(rewards, mask=None, labels=None, margins=None) -> (losses, metrics)

    - ``rewards``: ``(B, K)`` scalar rewards of K responses to the same prompt, **ordered best
      first**: pairwise data is ``K = 2`` with the chosen response in column 0; a K-wise ranking
      (InstructGPT) has responses sorted best → worst; ties are not expressed by order.
    - ``mask``: ``(B, K)`` bool, ``True`` where a response exists (variable K per prompt; valid
      responses come first). ``None`` = all valid.
    - ``labels``: ``(B, K)`` float targets for pointwise losses (e.g. regression on human scores);
      ``None`` for ranking losses. A loss that needs them sets ``needs_labels = True``.
    - ``margins``: ``(B,)`` optional preference strength per prompt (Llama 2's margin term);
      ``None`` = no margin.
    - ``losses``: ``(B,)`` one loss per prompt; ``metrics``: ``dict[str, Tensor]`` (e.g. accuracy).
    """

    needs_labels: bool = False

    def __init__(self) -> None:
        pass

    def __call__(self, rewards: Tensor, mask: Tensor | None = None, labels: Tensor | None = None,
                 margins: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    @staticmethod
    def full_mask(rewards: Tensor, mask: Tensor | None) -> Tensor:
        """``mask`` as a bool ``(B, K)`` tensor (all ``True`` when ``None``)."""
        return torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask.to(torch.bool)
