"""Atomic checkpoint files: written aside in the target's folder, renamed over the target; a run's own
CheckpointIO is kept; the CLI installs ours by default."""

from __future__ import annotations

import os

import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.plugins.io import AsyncCheckpointIO

from rlhf_lightning.checkpoint_io import AtomicCheckpointIO, NoResaveOnResume, atomic_torch_save, use_atomic_checkpoints
from rlhf_lightning.errors import DiskFullError
from tests.cli.conftest import sft_config, sft_files  # noqa: F401 - fixture
from tests.disk_full import make_disk_full
from tests.test_atomic_paths import _dead_pid


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
    dead = _dead_pid()  # a process this test started and reaped (a fixed number may be running)
    (tmp_path / f".last.ckpt.tmp-{dead}-x").write_bytes(b"PK\x03partial")
    (tmp_path / f".other.ckpt.tmp-{dead}-x").write_bytes(b"another checkpoint's")
    atomic_torch_save({"step": 3}, str(tmp_path / "last.ckpt"))
    assert sorted(os.listdir(tmp_path)) == [f".other.ckpt.tmp-{dead}-x", "last.ckpt"]


@pytest.mark.parametrize("how", ["write", "fsync"])
def test_disk_full_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch, how):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    make_disk_full(how, monkeypatch, tmp_path, budget=100)
    with pytest.raises(DiskFullError, match=f"the disk is full .* while writing the checkpoint {target}: the partial "
                                            "file was removed and any earlier checkpoint at that path is unchanged"):
        AtomicCheckpointIO().save_checkpoint({"step": 2, "w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["step"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]


def _trainer(**kwargs):
    return Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, **kwargs)


def test_installed_unless_the_run_chose_a_checkpoint_io():
    default = _trainer()
    assert use_atomic_checkpoints(default) and isinstance(default.strategy.checkpoint_io, AtomicCheckpointIO)
    own = _trainer(plugins=[TorchCheckpointIO()])  # asked for by name: kept
    assert not use_atomic_checkpoints(own) and type(own.strategy.checkpoint_io) is TorchCheckpointIO
    wrapped = _trainer(plugins=[AsyncCheckpointIO()])
    assert not use_atomic_checkpoints(wrapped) and isinstance(wrapped.strategy.checkpoint_io, AsyncCheckpointIO)


class _Saves(Callback):
    def __init__(self):
        self.steps = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.steps.append(trainer.global_step)


def test_resumed_run_does_not_save_its_resume_step_again_mid_accumulation(tmp_path):
    """Resumed at step 2 with 2 batches per step: without the callback Lightning saves step 2 again
    after the first (mid-window) batch, replacing the exact checkpoint with an inexact one."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from tests.callbacks.test_nonfinite import Regression

    data = DataLoader([torch.randn(2, 3) for _ in range(8)], batch_size=None)

    def fit(max_steps, callbacks, ckpt_path=None):
        saves = _Saves()
        trainer = _trainer(max_steps=max_steps, accumulate_grad_batches=2, enable_model_summary=False,
                           callbacks=[ModelCheckpoint(tmp_path, save_last=True, every_n_train_steps=2), saves,
                                      *callbacks])
        trainer.fit(Regression(), data, ckpt_path=ckpt_path)
        return saves.steps

    assert fit(2, []) == [2, 2]  # the top-k file and last.ckpt
    assert fit(3, [], ckpt_path=str(tmp_path / "last.ckpt")) == [2, 2]  # Lightning's re-save, mid-window
    # with it: no save until the end of training (save_last's final save at step 3)
    assert fit(3, [NoResaveOnResume()], ckpt_path=str(tmp_path / "last.ckpt")) == [3]


def test_fit_on_a_full_disk_stops_with_one_message_and_keeps_the_last_checkpoint(tmp_path, tiny_llama_dir,
                                                                                 sft_files, monkeypatch, capsys):  # noqa: F811
    """Resumed from step 2, the step-4 checkpoint hits a full disk: exit 2 naming the file, step 2's
    ``last.ckpt`` still loads, no partial file is left, and nothing was exported."""
    from rlhf_lightning.cli import main

    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.max_steps": 2, "trainer.num_sanity_val_steps": 0,
                                                             "export.enabled": False})
    assert main(["fit", "--config", str(cfg)]) == 0
    folder = tmp_path / "checkpoints"
    before = sorted(os.listdir(folder))
    capsys.readouterr()
    make_disk_full("write", monkeypatch, folder, budget=0)
    assert main(["fit", "--config", str(cfg), "--trainer.max_steps=4", "--ckpt_path=last"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.count("rlhf-lightning: error:") == 1 and "Traceback" not in err, err
    assert f"the disk is full (no space left on device or quota exceeded) while writing the checkpoint {folder}" in err
    assert sorted(os.listdir(folder)) == before
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 2
