"""Fixtures for end-to-end CLI runs: a tiny model folder and small SFT data files on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

# Lightning is imported before any test captures stderr: it binds its log handler to the sys.stderr of
# import time, which capsys would later close.
import lightning.pytorch  # noqa: F401
import pytest
import yaml

ROWS = [
    ("写一首关于春天的诗", "春风拂面，百花齐放，燕子呢喃，绿意盎然。"),
    ("Write a poem about the moon.", "The silver moon rises over quiet hills."),
    ("Explain gravity.", "Gravity pulls objects toward each other."),
    ("请解释什么是人工智能", "人工智能是让机器学习和推理的技术。"),
    ("Translate to French: good morning", "Bonjour."),
    ("Say hello.", "Hello! How can I help you today?"),
]


@pytest.fixture()
def sft_files(tmp_path: Path) -> dict[str, Path]:
    train = tmp_path / "train.csv"
    with open(train, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "response"])
        for _ in range(4):
            w.writerows(ROWS)
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"prompt": p, "response": r}, ensure_ascii=False) + "\n" for p, r in ROWS),
                   encoding="utf-8")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "id": i}, ensure_ascii=False) + "\n"
                               for i, (p, _) in enumerate(ROWS[:3])), encoding="utf-8")
    return {"train": train, "val": val, "prompts": prompts}


def sft_config(root: Path, model_dir: Path, files: dict[str, Path], **overrides) -> Path:
    """Write a complete SFT run config under ``root`` and return its path."""
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 12, "default_root_dir": str(root),
            "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True}}],
        },
        "model": {
            "class_path": "rlhf_lightning.modules.sft.SFTModule",
            "init_args": {
                "policy": {"name_or_path": str(model_dir)},
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
                "generation": {"max_new_tokens": 8},
            },
        },
        "data": {
            "class_path": "rlhf_lightning.datamodules.sft.SFTDataModule",
            "init_args": {"train": str(files["train"]), "val": str(files["val"]), "predict": str(files["prompts"]),
                          "max_length": 64, "batch_size": 4},
        },
    }
    return write_config(root / "run.yaml", cfg, overrides)


def write_config(path: Path, cfg: dict, overrides: dict) -> Path:
    """Apply dotted ``overrides`` (``{"data.init_args.max_length": 8}``) to ``cfg`` and write it as YAML."""
    for dotted, value in overrides.items():
        node = cfg
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path
