"""``train/tokens_per_sec``: tokens in each training batch over the wall time of its step.

One callback for every stage that trains on token batches (SFT, reward model, DPO family, KTO): a
batch counts when it is a mapping with ``input_ids`` and ``labels``; its tokens are the
``attention_mask`` ones (padding excluded), or every position of a packed batch without a mask.
Online-RL batches (prompts only, no ``labels``) log their own rollout figures instead. The time runs
from ``on_train_batch_start`` to ``on_train_batch_end`` of the same batch: forward, backward and, on
the last micro-batch of an accumulation, the optimizer step. The CLI adds it to every run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Optional

import torch
from lightning.pytorch import Callback


def batch_tokens(batch: Any) -> Optional[torch.Tensor]:
    """Non-padding tokens of a token batch (``input_ids`` and ``labels``) as a 0-d float tensor on the
    batch's device (no host sync), else ``None``."""
    if not isinstance(batch, Mapping) or "input_ids" not in batch or "labels" not in batch:
        return None
    mask = batch.get("attention_mask")
    ids = batch["input_ids"]
    return mask.sum().float() if mask is not None else torch.tensor(float(ids.numel()), device=ids.device)


class TokenThroughput(Callback):
    """Logs ``train/tokens_per_sec`` (progress bar too) for each training batch of tokens."""

    def __init__(self) -> None:
        self._started: Optional[float] = None

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        tokens = batch_tokens(batch)
        if self._started is None or tokens is None:
            return
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._started = None
        pl_module.log("train/tokens_per_sec", tokens / elapsed, prog_bar=True,
                      batch_size=int(batch["input_ids"].shape[0]))
