"""The non-finite guard is on by default in the CLI: a NaN forward pass at a known step is skipped
(counted in the logs) or stops the run with a message naming the step, in SFT and in PPO's manual loop."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config
from tests.cli.test_ppo_cli import ppo_config, prompt_file

NAN_AT_2 = {"class_path": "tests.callbacks.faults.NaNAtStep", "init_args": {"step": 2}}


def skipped_counts(root: Path) -> list[float]:
    with open(next(root.glob("lightning_logs/version_*/metrics.csv")), encoding="utf-8") as f:
        return [float(r["train/skipped_nonfinite_steps"]) for r in csv.DictReader(f)
                if r.get("train/skipped_nonfinite_steps")]


def final_weights(root: Path) -> dict:
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def callbacks(root: Path) -> list[dict]:
    return [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
             "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True}}, NAN_AT_2]


def sft(tmp_path, model_dir, files, *args):
    cfg = sft_config(tmp_path, model_dir, files, **{"trainer.max_steps": 4, "export.enabled": False,
                                                    "trainer.callbacks": callbacks(tmp_path)})
    return main(["fit", "--config", str(cfg), *args])


def test_sft_skips_the_nan_step_by_default(tmp_path, tiny_llama_dir, sft_files):
    assert sft(tmp_path, tiny_llama_dir, sft_files) == 0
    assert skipped_counts(tmp_path) == [0, 0, 1, 1]  # logged every step; step index 2 was skipped
    assert all(torch.isfinite(w).all() for w in final_weights(tmp_path).values())


def test_sft_stop_names_the_step(tmp_path, tiny_llama_dir, sft_files, capsys):
    assert sft(tmp_path, tiny_llama_dir, sft_files, "--nonfinite.action=stop") == 2
    err = capsys.readouterr().err
    assert "non-finite training step at global step 2 (epoch 0, batch index 2)" in err, err
    assert "loss = nan" in err and "first in parameter 'model.model.embed_tokens.weight'" in err, err


def test_ppo_manual_loop_skips_one_minibatch_step(tmp_path, tiny_llama_dir):
    """2 optimizer steps per rollout; the first of rollout 2 (global step 2) sees a NaN forward."""
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{
        "trainer.max_steps": 4, "export.enabled": False, "trainer.callbacks": callbacks(tmp_path)})
    assert main(["fit", "--config", str(cfg)]) == 0
    assert skipped_counts(tmp_path) == [0, 1]  # logged once per rollout
    assert all(torch.isfinite(w).all() for w in final_weights(tmp_path).values())
