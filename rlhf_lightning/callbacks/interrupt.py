"""SIGTERM or Ctrl-C (SIGINT) during ``fit``: finish the optimizer step, save a checkpoint, exit.

Lightning 2.6 on SIGTERM only sets ``trainer.received_sigterm``; its loops then raise
``SIGTERMException`` (a ``SystemExit`` with status 0) at the end of the current *batch*, inside a
gradient-accumulation window, and save nothing. Ctrl-C raises ``KeyboardInterrupt`` wherever the
process is, and Lightning exits with status 1, again saving nothing. A scheduler's SIGTERM before
the SIGKILL (Slurm, Kubernetes) or a user's Ctrl-C so loses everything since the last checkpoint.

:class:`GracefulInterrupt` (installed by the CLI for ``fit``) takes both signals over while training:

- The signal is noted; training goes on to the next safe point: the end of a batch that ended an
  optimizer step (with ``accumulate_grad_batches``, the last micro-batch of the window; with manual
  optimization — PPO — the end of the rollout iteration). That is where ModelCheckpoint saves too,
  so ``--ckpt_path last`` continues exactly as from any other checkpoint.
- There the checkpoint is written (``last.ckpt`` in the run's ModelCheckpoint folder) and the run
  stops with :class:`TrainingInterrupted`: exit status 128 + the signal (143 for SIGTERM, 130 for
  SIGINT), the conventional "stopped by a signal" status, so a pipeline or job script sees the
  stage did not finish. No export is written (the run did not end).
- With several processes the decision is reduced over all of them at each safe point (one process
  receiving the signal is enough), so every rank saves and stops at the same step.
- A second signal stops at once, without saving; one arriving within ``REPEAT_WINDOW`` seconds of
  the first is the same request delivered twice (Ctrl-C reaches every process of the terminal's
  group, and ``rlhf-lightning pipeline`` forwards it to its step too) and is ignored. A signal
  before training starts (while models load, during the sanity check) stops at once too: there is
  nothing new to save. A signal in the step that ends training lets the run finish normally.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Optional

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

SIGNALS = (signal.SIGTERM, signal.SIGINT)
REPEAT_WINDOW = 1.0  # seconds: a repeat within it is one request delivered twice, not "stop at once"


class TrainingInterrupted(SystemExit):
    """``fit`` stopped by a signal; ``code`` is 128 + the signal number, ``checkpoint`` the path saved
    (None when stopped at once)."""

    def __init__(self, signum: int, checkpoint: Optional[str] = None) -> None:
        super().__init__(128 + signum)
        self.signum, self.checkpoint = signum, checkpoint


class GracefulInterrupt(Callback):
    """Save a checkpoint at the next safe point after SIGTERM / SIGINT and exit 128 + signal (see the
    module docstring)."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._received_at = 0.0
        self._phase = "idle"  # "setup": before training (stop at once); "training": defer; "idle": not ours
        self._original: dict[int, Any] = {}  # the handlers before this callback's
        self._rank_zero = True

    # -- handlers --------------------------------------------------------------------------------
    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current != self._handle:
                if self._phase == "setup":
                    self._original[signum] = current
                signal.signal(signum, self._handle)

    def _restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._original.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._phase == "idle":  # left installed by Lightning's restoring its handlers: behave as before
            return _default(signum, frame, self._original.get(signum, signal.SIG_DFL))
        if self.received is not None and time.monotonic() - self._received_at < REPEAT_WINDOW:
            return
        if self._phase == "setup" or self.received is not None:
            self._phase = "idle"
            why = "before training started" if self.received is None else "a second time"
            self._say(f"rlhf-lightning: {name} received {why}: stopping at once, no checkpoint saved "
                      f"(exit status {128 + signum})\n")
            raise TrainingInterrupted(signum)
        self.received, self._received_at = signum, time.monotonic()
        self._say(f"\nrlhf-lightning: {name} received: stopping at the end of this optimizer step, after "
                  f"saving a checkpoint (send it again to stop at once, without saving)\n")

    def _say(self, text: str) -> None:
        if self._rank_zero:  # os.write: print() could re-enter a write that the signal interrupted
            os.write(2, text.encode())

    # -- hooks -----------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        self.received, self._phase, self._rank_zero = None, "setup", trainer.is_global_zero
        self._original = {}
        self._install()

    def on_train_start(self, trainer, pl_module) -> None:
        self._phase = "training"
        self._install()  # again: Lightning registered its own SIGTERM handler after setup

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._phase != "training" or not _ends_optimizer_step(trainer, pl_module):
            return
        if not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
            return  # this step ends training anyway: let the run finish (and export) normally
        signum = self.received or signal.SIGTERM  # another rank got it
        path, resume = _checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        self._phase = "idle"
        self._say(f"rlhf-lightning: stopped by {signal.Signals(signum).name} after optimizer step "
                  f"{trainer.global_step}; checkpoint saved to {path}; continue with --ckpt_path {resume} "
                  f"(exit status {128 + signum})\n")
        raise TrainingInterrupted(signum, path)

    def on_train_end(self, trainer, pl_module) -> None:
        self._phase = "idle"

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._phase = "idle"
        self._restore()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._phase = "idle"
            self._restore()


def _ends_optimizer_step(trainer, pl_module) -> bool:
    """True at the end of a batch after which no gradient is pending: manual optimization (a whole
    PPO iteration per batch), or the batch that closed an accumulation window."""
    if not pl_module.automatic_optimization:
        return True
    return not trainer.fit_loop.epoch_loop._should_accumulate()


def _checkpoint_path(trainer) -> tuple[str, str]:
    """Where to save, and what ``--ckpt_path`` finds it: ``last.ckpt`` in the folder of the first
    ModelCheckpoint (one with ``save_last`` first); without one, in ``default_root_dir``."""
    callbacks = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath]
    callbacks.sort(key=lambda cb: not cb.save_last)
    if not callbacks:
        path = os.path.join(trainer.default_root_dir, "last.ckpt")
        return path, path
    cb = callbacks[0]
    path = os.path.join(cb.dirpath, cb.CHECKPOINT_NAME_LAST + cb.FILE_EXTENSION)
    cb.last_model_path = path  # part of the checkpoint's ModelCheckpoint state, as when it saves last itself
    return path, "last" if cb.save_last else path


def _default(signum: int, frame: Any, previous: Any) -> None:
    """What ``previous`` (the handler before this callback's) would have done with the signal."""
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # SIG_DFL (or None): the default action, e.g. terminate
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
