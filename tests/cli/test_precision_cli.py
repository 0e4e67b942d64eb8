"""``--trainer.precision auto`` through ``rlhf_lightning.cli.main``: the trainer runs with the resolved
precision, the saved config.yaml keeps ``auto``, and a run resumed from that config continues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from rlhf_lightning import precision, trainer
from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config


class RecordPrecision(Callback):
    """Writes the precision the trainer fits with, and its precision plugin, to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_fit_start(self, trainer, pl_module) -> None:
        Path(self.path).write_text(json.dumps({"precision": trainer.precision,
                                               "plugin": type(trainer.precision_plugin).__name__}))


def _config(tmp_path: Path, model_dir: Path, files: dict, **overrides) -> Path:
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(tmp_path / "checkpoints"), "save_last": True}},
                 {"class_path": f"{__name__}.RecordPrecision", "init_args": {"path": str(tmp_path / "precision.json")}}]
    return sft_config(tmp_path, model_dir, files, **{"trainer.max_steps": 2, "export.enabled": False,
                                                    "trainer.callbacks": callbacks, **overrides})


@pytest.mark.parametrize("flags, expected, plugin", [
    (frozenset({"avx2", "avx512_bf16"}), "bf16-mixed", "MixedPrecision"),
    (frozenset({"avx2", "avx512f"}), "32-true", "Precision"),
], ids=["native-bf16-cpu", "cpu-without-bf16"])
def test_fit_with_precision_auto(tmp_path, tiny_llama_dir, sft_files, monkeypatch, flags, expected, plugin):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    logged: list[str] = []
    monkeypatch.setattr(trainer, "rank_zero_info", logged.append)
    cfg = _config(tmp_path, tiny_llama_dir, sft_files)
    assert main(["fit", "--config", str(cfg), "--trainer.precision", "auto"]) == 0
    ran = json.loads((tmp_path / "precision.json").read_text())
    assert ran == {"precision": expected, "plugin": plugin}
    assert len(logged) == 1 and logged[0].startswith(f"precision auto -> {expected}: ")
    saved = next(tmp_path.glob("lightning_logs/version_*/config.yaml"))
    assert yaml.safe_load(saved.read_text(encoding="utf-8"))["trainer"]["precision"] == "auto"


def test_saved_auto_config_resumes(tmp_path, tiny_llama_dir, sft_files, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    cfg = _config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.precision": "auto"})
    assert main(["fit", "--config", str(cfg)]) == 0
    saved = next(tmp_path.glob("lightning_logs/version_*/config.yaml"))
    # resumed on a machine that decides differently: the saved config is re-resolved there
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())
    assert main(["fit", "--config", str(saved), "--trainer.max_steps=4", "--ckpt_path=last"]) == 0
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4
    assert json.loads((tmp_path / "precision.json").read_text())["precision"] == "32-true"


def test_preset_overrides_auto(tmp_path, tiny_llama_dir, sft_files, monkeypatch):
    """A precision preset stacked after a config with ``auto`` wins, and nothing is probed."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: pytest.fail("probed the CPU for an explicit precision"))
    cfg = _config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.precision": "auto"})
    preset = Path(__file__).resolve().parents[2] / "configs" / "precision" / "bf16-mixed.yaml"
    assert main(["fit", "--config", str(cfg), "--config", str(preset)]) == 0
    assert json.loads((tmp_path / "precision.json").read_text())["precision"] == "bf16-mixed"
