"""Log-probabilities of target tokens: per token (online RL) and summed per sequence (DPO family, KL).

Pure tensor math: imports torch only. The causal shift happens here: position ``t`` of the logits
(or hidden states) predicts ``labels[t + 1]``, so ``labels`` are aligned with ``input_ids`` and
carry ``-100`` wherever no log-prob is taken (prompt, padding).

Memory: only target positions are scored, in chunks, as ``logit[label] - logsumexp(logits)``;
the log-softmax over the whole ``(N, T, V)`` tensor is never materialised.
:func:`sequence_logps_from_hidden` goes further and projects only the target positions through
the LM head, so prompt and padding positions never get logits at all.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from rlhf_lightning.losses.labels import IGNORE_INDEX


def _targets(labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(rows, cols, ids)`` of the shifted target positions: logit/hidden ``(rows, cols)`` predicts ``ids``."""
    shift_labels = labels[:, 1:]
    rows, cols = (shift_labels != IGNORE_INDEX).nonzero(as_tuple=True)
    return rows, cols, shift_labels[rows, cols]


def token_logps(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """``log softmax(logits / temperature)[targets]`` per position (online RL needs them per token).

    ``log p(y) = z[y] − logsumexp(z)`` with ``z = logits / temperature``, in float32 at least, without
    materialising the log-softmax.

    Args:
        logits: ``(..., V)`` logits that predict ``targets`` (already shifted: ``logits[..., t, :]``
            scores ``targets[..., t]``).
        targets: ``(...)`` token ids (padding positions get a value too; the caller masks them).
        temperature: the temperature the tokens were sampled with (PPO's ratio must use the
            distribution the rollout sampled from).
    Returns:
        ``(...)`` float32 (or float64) log-probabilities.
    """
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if temperature != 1.0:
        z = z / temperature
    return z.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)


def _sum_per_row(values: Tensor, rows: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    sums = torch.zeros(n_rows, dtype=values.dtype, device=values.device).index_add(0, rows, values)
    counts = torch.zeros(n_rows, dtype=torch.long, device=rows.device).index_add(0, rows, torch.ones_like(rows))
    return sums, counts


def sequence_logps(logits: Tensor, labels: Tensor, *, chunk_size: int = 4096) -> tuple[Tensor, Tensor]:
    """Sum of next-token log-probs over each sequence's target tokens.

    Args:
        logits: ``(N, T, V)`` raw LM logits (any float dtype; the log-softmax runs in float32).
        labels: ``(N, T)`` token ids aligned with the inputs, ``-100`` where no log-prob is taken.
        chunk_size: target positions scored at once (bounds the float32 temporaries to
            ``chunk_size x V``).
    Returns:
        ``(sum_logps, n_tokens)``: ``(N,)`` float32 sums of ``log p(labels[t+1] | <= t)`` over the
        target positions, and ``(N,)`` long counts of those positions. A row without targets gives
        ``(0.0, 0)``.
    """
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on (N, T)")
    rows, cols, ids = _targets(labels)
    parts = [token_logps(logits[rows[i:i + chunk_size], cols[i:i + chunk_size]], ids[i:i + chunk_size])
             for i in range(0, ids.numel(), chunk_size)]
    values = torch.cat(parts) if parts else logits.new_zeros(0, dtype=torch.float32)
    return _sum_per_row(values, rows, labels.shape[0])


def sequence_logps_from_hidden(hidden: Tensor, labels: Tensor, head: Callable[[Tensor], Tensor], *,
                               chunk_size: int = 4096) -> tuple[Tensor, Tensor]:
    """As :func:`sequence_logps`, from the last hidden states and the LM head.

    Only target positions go through ``head``, so a long prompt or heavy padding costs no LM-head
    FLOPs and no ``(N, T, V)`` logits.

    Args:
        hidden: ``(N, T, H)`` final hidden states (after the last norm).
        labels: ``(N, T)`` as in :func:`sequence_logps`.
        head: ``(M, H) -> (M, V)`` logits, e.g. the model's ``lm_head`` (with any logit scaling).
        chunk_size: target positions projected at once.
    Returns:
        ``(sum_logps (N,), n_tokens (N,))`` as :func:`sequence_logps`.
    """
    if hidden.shape[:2] != labels.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and labels {tuple(labels.shape)} disagree on (N, T)")
    rows, cols, ids = _targets(labels)
    selected = hidden[rows, cols]
    parts = [token_logps(head(selected[i:i + chunk_size]), ids[i:i + chunk_size])
             for i in range(0, ids.numel(), chunk_size)]
    values = torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)
    return _sum_per_row(values, rows, labels.shape[0])
