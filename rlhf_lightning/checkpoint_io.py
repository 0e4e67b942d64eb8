"""Checkpoint files written aside, flushed to disk and renamed into place.

Lightning 2.6's ``TorchCheckpointIO`` serialises the whole checkpoint into memory and commits it
through an fsspec transaction: the bytes go to a ``tempfile.mkstemp()`` file in the system
temporary folder, then ``shutil.move`` puts it in place. That is an atomic rename only when the
temporary folder and the checkpoint folder share a filesystem; across filesystems (a node-local
``/tmp``, checkpoints on NFS or Lustre) ``shutil.move`` copies into the final path, so a kill during
the copy leaves a truncated ``last.ckpt`` in place of the good one. Nothing is fsynced, and a kill
leaves a checkpoint-sized orphan in ``/tmp``.

:class:`AtomicCheckpointIO` writes beside the target in the same folder
(``.last.ckpt.tmp-<pid>-<random>``), fsyncs it, ``os.replace``-s it over the target and fsyncs the
folder (``atomic_paths.atomic_file``), so the target is always either the previous complete
checkpoint or the new complete one; the next save removes what a killed writer left. A full disk
stops the run with a DiskFullError naming the checkpoint; the previous one stays loadable. Remote paths
(``s3://`` …) keep Lightning's behaviour. The CLI installs it unless the run configures its own
``CheckpointIO``.

Sharded checkpoints do not go through a ``CheckpointIO``: :class:`~rlhf_lightning.strategies.fsdp2.
FSDP2Strategy` writes its folder aside and swaps it in itself (:mod:`rlhf_lightning.atomic_paths`);
Lightning's own ``ModelParallelStrategy`` and DeepSpeed write their folders in place (not covered).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from rlhf_lightning.atomic_paths import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic and durable (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, os.fspath(path))


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` so that ``path`` never holds a partial file (a full disk: DiskFullError,
    the previous checkpoint kept)."""
    with atomic_file(path, "wb", what="checkpoint") as f:
        torch.save(obj, f)  # streamed: no second in-memory copy of the checkpoint


def use_atomic_checkpoints(trainer) -> bool:
    """Give ``trainer``'s strategy an :class:`AtomicCheckpointIO` unless the run chose a CheckpointIO
    (in ``trainer.plugins`` or on the strategy). Returns whether it did."""
    if trainer._accelerator_connector.checkpoint_io is not None:
        return False
    current = getattr(trainer.strategy, "_checkpoint_io", None)
    if current is not None and type(current) is not TorchCheckpointIO:
        return False
    trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return True


class NoResaveOnResume(Callback):
    """After ``--ckpt_path``, keep ModelCheckpoint from saving the step it was resumed from again.

    Lightning 2.6 does not checkpoint ModelCheckpoint's "step last saved", so a run resumed at step
    ``s`` with ``every_n_train_steps`` dividing ``s`` saves again at the end of its first batch. With
    gradient accumulation that batch is inside an accumulation window, and the new ``last.ckpt``
    (whose accumulated gradient is not stored) replaces the exact one it was resumed from.
    """

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.ckpt_path is None:
            return
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback._last_global_step_saved = trainer.global_step
