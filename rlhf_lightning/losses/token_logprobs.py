"""Per-token log-probabilities of completion tokens (online RL needs them per token).

Math layer: imports torch only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def token_logps(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """``log softmax(logits / temperature)[targets]`` per position.

    ``log p(y_t) = z_t[y_t] − logsumexp(z_t)`` with ``z_t = logits_t / temperature``; computed in
    float32 at least, without materialising the full log-softmax twice.

    Args:
        logits: ``(B, T, V)`` logits that predict ``targets`` (already shifted: ``logits[:, t]``
            scores ``targets[:, t]``).
        targets: ``(B, T)`` token ids (padding positions get a value too; the caller masks them).
        temperature: the sampling temperature the tokens were drawn with (PPO's ratio must use the
            same distribution the rollout sampled from).
    Returns:
        ``(B, T)`` log-probabilities.
    """
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if temperature != 1.0:
        z = z / temperature
    picked = z.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(z, dim=-1)

