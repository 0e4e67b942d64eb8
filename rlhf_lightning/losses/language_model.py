"""Next-token cross-entropy on a subset of positions (SFT, pre-training, ORPO/RPO's NLL term).

Pure tensor math: imports torch only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


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
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    nll_sum = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    n_tokens = (shift_labels != IGNORE_INDEX).sum()
    return nll_sum, n_tokens
