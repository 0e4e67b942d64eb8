"""Next-token cross-entropy on a subset of positions (SFT, pre-training, ORPO/RPO's NLL term).

Pure tensor math: imports torch only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf_lightning.losses.labels import IGNORE_INDEX


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood and the number of tokens it covers.

    Position ``t`` of ``logits`` predicts ``labels[t + 1]`` (the causal shift is done here, so
    ``labels`` are aligned with ``input_ids``); positions whose label is ``-100`` are ignored.

    Args:
        logits: ``(B, T, V)``.
        labels: ``(B, T)`` token ids, ``-100`` where no loss is taken.
    Returns:
        ``(nll_sum, n_tokens)``: scalar tensors. The mean loss is ``nll_sum / n_tokens``; returning
        the pair lets callers normalise over a global batch (data-parallel ranks, accumulation).
    """
    # Shift the labels, not the logits: slicing (B, T, V) logits and flattening them would copy the
    # largest tensor of the step (and its gradient) just to drop one position.
    shifted = torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), IGNORE_INDEX)], dim=1)
    flat = logits.reshape(-1, logits.shape[-1])
    nll_sum = F.cross_entropy(flat if flat.dtype == torch.float32 else flat.float(), shifted.reshape(-1),
                              ignore_index=IGNORE_INDEX, reduction="sum")
    n_tokens = (shifted != IGNORE_INDEX).sum()
    return nll_sum, n_tokens
