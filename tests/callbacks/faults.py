"""Fault injection for tests, named by ``class_path`` in run configs: a SIGKILL after a checkpoint or
in the middle of writing one, a full disk, and a non-finite forward pass at a chosen step.

The console script cannot import ``tests`` from its own folder: run it with ``PYTHONPATH`` = repo root.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import Callback


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_group() -> None:
    """SIGKILL every process of this run (the launcher's process group: all ranks at once)."""
    os.killpg(os.getpgrp(), signal.SIGKILL)


class KillAfterStep(Callback):
    """SIGKILL this process when the batch after optimizer step ``step`` starts, i.e. right after the
    checkpoints of step ``step`` were written (ModelCheckpoint runs at the end of the step's batch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            _kill_self()


class KillGroupAfterStepIf(Callback):
    """Like :class:`KillAfterStep`, but SIGKILL the whole process group (a pipeline and the stage it
    runs) and only when the environment variable ``env`` is set: the same config then runs to the end
    without it, so a pipeline sees one unchanged step that was interrupted and resumes it."""

    def __init__(self, step: int, env: str = "RLHF_TEST_KILL") -> None:
        self.step = step
        self.env = env

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step and os.environ.get(self.env):
            _kill_group()


class _KillWhenPickledBeside:
    """Pickling it (``torch.save``) kills the process (or its whole group) if the temporary file or
    folder of ``target`` exists, i.e. while the atomic writer is writing ``target`` aside; elsewhere
    it pickles as ``None``."""

    def __init__(self, target: str, group: bool = False) -> None:
        self.target = target
        self.group = group

    def __reduce__(self):
        folder, name = os.path.split(self.target)
        if any(p.name.startswith(f".{name}.tmp-") for p in Path(folder).iterdir()):
            _kill_group() if self.group else _kill_self()
        return (type(None), ())


class KillDuringSave(Callback):
    """SIGKILL this process in the middle of writing ``last.ckpt`` for optimizer step ``step``; with
    ``group``, every process of the run (a sharded save: rank 0 dies writing the metadata after all
    shards were written aside)."""

    def __init__(self, step: int, group: bool = False) -> None:
        self.step = step
        self.group = group

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.global_step == self.step:
            target = os.path.join(trainer.checkpoint_callback.dirpath, "last.ckpt")
            checkpoint["zz_kill"] = _KillWhenPickledBeside(target, self.group)


class _Patch:
    """``monkeypatch``'s setattr, for good (the process ends with the test)."""

    setattr = staticmethod(setattr)


class DiskFullFromStep(Callback):
    """From the checkpoint of optimizer step ``step`` on, every write through ``open()`` under the
    checkpoint folder fails with ENOSPC (:func:`tests.disk_full.fill_disk`)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.global_step == self.step:
            from tests.disk_full import fill_disk

            fill_disk(_Patch(), Path(trainer.checkpoint_callback.dirpath))


class NaNAtStep(Callback):
    """Make the first embedding layer output NaN, in forward passes with gradients enabled, for the
    one optimizer step ``step`` (the training forward of SFT/RM/DPO, the first minibatch of PPO's
    update; PPO's rollout runs without gradients and stays finite)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self._handle = None

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step and self._handle is None:
            embedding = next(m for m in pl_module.modules() if isinstance(m, torch.nn.Embedding))
            self._handle = embedding.register_forward_hook(_nan_output)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._handle is not None:  # this step's forward passes have run
            self._handle.remove()
            self._handle = None


def _nan_output(module, args, output):
    return output * float("nan") if torch.is_grad_enabled() else None


class KillDuringExport(Callback):
    """SIGKILL this process inside the end-of-fit export, after the model's weights were written to
    the export's temporary folder and before the tokenizer is (the export writes the model first)."""

    def on_fit_end(self, trainer, pl_module) -> None:  # runs before the CLI's export callback
        pl_module.tokenizer.save_pretrained = lambda *args, **kwargs: _kill_self()


class PauseAtStep(Callback):
    """Once, when the batch after optimizer step ``step`` starts, create the file ``ready`` and wait
    (at most ``timeout`` seconds) until the file ``go`` exists: a test sends the process a signal
    from outside meanwhile, so the signal arrives at a known point (the first micro-batch of step
    ``step + 1``), whatever the machine's speed. With ``env``, only when that environment variable is
    set (the same config then runs through without pausing)."""

    def __init__(self, step: int, ready: str, go: str, timeout: float = 120.0, env: Optional[str] = None) -> None:
        self.step, self.ready, self.go, self.timeout, self.env = step, ready, go, timeout, env
        self.done = False

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if self.done or trainer.global_step != self.step or (self.env and not os.environ.get(self.env)):
            return
        self.done = True
        Path(self.ready).touch()
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(self.go) and time.monotonic() < deadline:
            time.sleep(0.02)
