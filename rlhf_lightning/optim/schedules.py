"""Learning-rate schedules that learn their length from the trainer.

LightningCLI injects a scheduler as a callable ``optimizer -> scheduler``; the total number of steps
is only known once the trainer has seen the data, so :class:`WarmupCosineLR` takes
``total_steps=None`` and the stage fills it in from ``trainer.estimated_stepping_batches``.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch.optim.lr_scheduler import LambdaLR


class WarmupCosineLR(LambdaLR):
    """Linear warm-up for ``warmup_steps`` (or ``warmup_ratio`` of the run), then cosine decay to
    ``min_lr_ratio`` × the base LR at ``total_steps``; ``decay="constant"`` keeps the LR flat after
    warm-up, ``decay="linear"`` decays linearly.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int = 0,
        warmup_ratio: float = 0.0,
        total_steps: Optional[int] = None,
        min_lr_ratio: float = 0.0,
        decay: Literal["cosine", "linear", "constant"] = "cosine",
    ) -> None:
        if decay not in ("cosine", "linear", "constant"):
            raise ValueError(f"decay must be 'cosine', 'linear' or 'constant', got {decay!r}")
        self.warmup_steps = warmup_steps
        self.warmup_ratio = warmup_ratio
        self.total_steps = total_steps
        self.min_lr_ratio = min_lr_ratio
        self.decay = decay
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        total = self.total_steps
        warmup = self.warmup_steps or (int(self.warmup_ratio * total) if total else 0)
        if warmup and step < warmup:
            return (step + 1) / warmup
        if self.decay == "constant" or not total or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if self.decay == "cosine" else 1.0 - progress
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * shape


def default_optimizer(params) -> torch.optim.Optimizer:
    """AdamW at a fine-tuning learning rate (2e-5, no weight decay): the default of every stage.

    ``fused=True``: one kernel for all parameters instead of a Python loop over them (CPU and CUDA).
    """
    return torch.optim.AdamW(params, lr=2e-5, weight_decay=0.0, fused=True)
