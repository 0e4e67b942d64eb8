"""Atomic checkpoint files: written aside in the target's folder, renamed over the target; a run's own
CheckpointIO is kept; the CLI installs ours by default."""

from __future__ import annotations

import os

import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning.pytorch.plugins.io import AsyncCheckpointIO

from rlhf_lightning.checkpoint_io import AtomicCheckpointIO, atomic_torch_save, use_atomic_checkpoints


class Boom:
    def __reduce__(self):
        raise RuntimeError("serialisation failed half-way")


def test_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "ckpts" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    AtomicCheckpointIO().save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    assert torch.load(target, weights_only=True)["step"] == 2
    assert os.listdir(target.parent) == ["last.ckpt"]


def test_a_failed_save_keeps_the_previous_file_and_cleans_up(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, str(target))
    with pytest.raises(RuntimeError, match="half-way"):
        atomic_torch_save({"step": 2, "w": torch.ones(1000), "zz": Boom()}, str(target))
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_a_killed_writer_s_temporary_file_is_removed_by_the_next_save(tmp_path):
    (tmp_path / ".last.ckpt.tmp-99999").write_bytes(b"PK\x03partial")
    (tmp_path / ".other.ckpt.tmp-99999").write_bytes(b"another checkpoint's")
    atomic_torch_save({"step": 3}, str(tmp_path / "last.ckpt"))
    assert sorted(os.listdir(tmp_path)) == [".other.ckpt.tmp-99999", "last.ckpt"]


def _trainer(**kwargs):
    return Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, **kwargs)


def test_installed_unless_the_run_chose_a_checkpoint_io():
    default = _trainer()
    assert use_atomic_checkpoints(default) and isinstance(default.strategy.checkpoint_io, AtomicCheckpointIO)
    own = _trainer(plugins=[TorchCheckpointIO()])  # asked for by name: kept
    assert not use_atomic_checkpoints(own) and type(own.strategy.checkpoint_io) is TorchCheckpointIO
    wrapped = _trainer(plugins=[AsyncCheckpointIO()])
    assert not use_atomic_checkpoints(wrapped) and isinstance(wrapped.strategy.checkpoint_io, AsyncCheckpointIO)
