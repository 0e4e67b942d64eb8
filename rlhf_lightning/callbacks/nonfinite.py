"""Catch a non-finite loss or gradient before the optimizer step: skip that step, or stop.

Works for every stage: automatic optimisation (SFT, reward model, DPO) and PPO's manual loop both
reach the optimizer through Lightning's precision plugin, which calls ``on_before_optimizer_step``
after the backward pass (and after gradient unscaling) and before gradient clipping and the step.

A skipped step removes every gradient (``grad = None``), so ``optimizer.step()`` leaves each
parameter and its optimizer state alone — no weight decay, no moment or step-count update (torch's
optimizers skip parameters without a gradient). The trainer still counts the step (``global_step``,
a per-step LR schedule), as mixed-precision loss scaling does with its skipped steps. Under data
parallelism the decision is taken on all ranks together, so they skip (or stop) the same step.

With fp16 loss scaling (``precision: 16-mixed``) the scaler already skips steps with overflowing
gradients while it calibrates; there only the loss is checked.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Optional

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_warn

from rlhf_lightning.errors import RLHFError


class NonFiniteError(RLHFError):
    """Training met a non-finite loss or gradient and ``nonfinite.action`` is ``stop``."""


def first_nonfinite(named_grads: Iterable[tuple[str, torch.Tensor]]) -> Optional[str]:
    """The name of the first gradient holding a NaN or an infinity, else ``None``.

    One device synchronisation for the common all-finite case; DTensor gradients (FSDP2) are
    checked on their local shard.
    """
    items = [(name, g.to_local() if hasattr(g, "to_local") else g) for name, g in named_grads]
    if not items:
        return None
    if bool(torch.stack([torch.isfinite(g).all() for _, g in items]).all()):
        return None
    return next(name for name, g in items if not bool(torch.isfinite(g).all()))


class NonFiniteGuard(Callback):
    """Skip or stop on a non-finite loss or gradient; counts skips as ``train/skipped_nonfinite_steps``.

    Args:
        action: ``skip`` the optimizer step (a warning names it), ``stop`` with a
            :class:`NonFiniteError` naming it, or ``off``.
    """

    def __init__(self, action: Literal["skip", "stop", "off"] = "skip") -> None:
        self.action = action
        self.skipped = 0
        self._batch_idx = -1
        self._bad_loss: Optional[tuple[int, float]] = None  # (batch index, value): first in this step

    @property
    def state_key(self) -> str:
        return "NonFiniteGuard"

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if self.action != "off" and self._bad_loss is None and not bool(torch.isfinite(loss.detach()).all()):
            self._bad_loss = (self._batch_idx, float(loss.detach().float().flatten()[0]))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.action == "off":
            return
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = [(n, p.grad) for n, p in pl_module.named_parameters() if id(p) in params and p.grad is not None]
        bad_grad = None if _scaler_checks_grads(trainer) else first_nonfinite(named)
        local = self._bad_loss is not None or bad_grad is not None
        if not trainer.strategy.reduce_boolean_decision(local, all=False):
            return
        where = (f"global step {trainer.global_step} (epoch {trainer.current_epoch}, batch index {self._batch_idx}"
                 f"{f', rank {trainer.global_rank}' if trainer.world_size > 1 else ''})")
        causes = []
        if self._bad_loss is not None:
            batch_idx, value = self._bad_loss
            causes.append(f"loss = {value}" + (f" at batch index {batch_idx}" if batch_idx != self._batch_idx else ""))
        if bad_grad is not None:
            causes.append(f"non-finite gradient, first in parameter {bad_grad!r}")
        what = "; ".join(causes) or "non-finite loss or gradient on another rank"
        self._bad_loss = None
        if self.action == "stop":
            raise NonFiniteError(f"non-finite training step at {where}: {what} (set nonfinite.action=skip "
                                 "to skip such steps)")
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        self.skipped += 1
        rank_zero_warn(f"skipped the optimizer step at {where}: {what} ({self.skipped} skipped so far)")

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.action != "off":
            pl_module.log("train/skipped_nonfinite_steps", float(self.skipped), on_step=True, on_epoch=False,
                          batch_size=1)


def _scaler_checks_grads(trainer) -> bool:
    """fp16 loss scaling skips overflowing steps itself (and needs them while it calibrates)."""
    return getattr(trainer.precision_plugin, "scaler", None) is not None

