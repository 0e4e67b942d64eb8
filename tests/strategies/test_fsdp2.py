"""FSDP2Strategy's sharded checkpoint on a full disk (rlhf_lightning/strategies/fsdp2.py), in one gloo
process: the same folder of shards and metadata as with more processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.cli.conftest import sft_config, sft_files  # noqa: F401 - fixture
from tests.cli.test_resume_cli import checkpoints, fault

REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "rlhf-lightning")


def test_disk_full_while_writing_shards_keeps_the_previous_checkpoint(tmp_path, tiny_llama_dir,
                                                                      sft_files):  # noqa: F811
    """Step 4's sharded checkpoint hits a full disk: exit 2 with one message naming the checkpoint,
    step 2's ``last.ckpt`` folder is untouched and no staging folder is left."""
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{
        "trainer.max_steps": 6, "trainer.num_sanity_val_steps": 0, "export.enabled": False,
        "trainer.callbacks": [checkpoints(tmp_path, 2), fault("DiskFullFromStep", 4)]})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([EXE, "fit", "--config", str(cfg), "--config", str(REPO / "configs/strategies/fsdp.yaml"),
                          "--trainer.devices", "1"], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 2, res.stderr[-3000:]
    folder = tmp_path / "checkpoints"
    assert res.stderr.count("rlhf-lightning: error:") == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert (f"the disk is full (no space left on device or quota exceeded) while writing the checkpoint {folder}/"
            in res.stderr), res.stderr[-3000:]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]
    meta = torch.load(folder / "last.ckpt" / "meta.pt", map_location="cpu", weights_only=True)
    assert meta["global_step"] == 2 and (folder / "last.ckpt" / ".metadata").is_file()
