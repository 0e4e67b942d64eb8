"""DPO end to end through ``rlhf_lightning.cli.main`` on a tiny model: built-in and third-party losses
by name, precomputed reference, LoRA, export, and bad preference data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from rlhf_lightning.cli import main
from tests.cli.conftest import write_config

PAIRS = [
    ("Explain gravity.", "Gravity pulls objects toward each other.", "Bonjour."),
    ("Say hello.", "Hello! How can I help you today?", "The moon."),
    ("Write a poem about spring.", "Spring wind brings flowers.", "Gravity pulls."),
    ("写一首关于春天的诗", "春风拂面，百花齐放。", "人工智能。"),
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def pref_files(tmp_path):
    rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]
    return {"train": _write(tmp_path / "train.jsonl", rows * 3), "val": _write(tmp_path / "val.jsonl", rows)}


def dpo_config(root: Path, model_dir: Path, files: dict, loss: dict | None = None, **overrides) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 6, "default_root_dir": str(root),
            "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
            "val_check_interval": 6, "num_sanity_val_steps": 0,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True}}],
        },
        "model": {
            "class_path": "rlhf_lightning.modules.dpo.DPOModule",
            "init_args": {
                "policy": {"name_or_path": str(model_dir)},
                "loss": loss or {"class_path": "sigmoid", "init_args": {"beta": 0.5}},
                "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05}},
            },
        },
        "data": {
            "class_path": "rlhf_lightning.datamodules.comparisons.ComparisonDataModule",
            "init_args": {"train": str(files["train"]), "val": str(files["val"]), "max_length": 64,
                          "batch_size": 2, "pairwise_only": True},
        },
    }
    return write_config(root / "dpo.yaml", cfg, overrides)


def _metrics(root: Path) -> list[dict]:
    with open(next(root.glob("lightning_logs/version_*/metrics.csv")), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _col(rows, name):
    return [float(r[name]) for r in rows if r.get(name)]


def test_fit_sigmoid_learns_and_exports(tmp_path, tiny_llama_dir, pref_files):
    assert main(["fit", "--config", str(dpo_config(tmp_path, tiny_llama_dir, pref_files))]) == 0
    rows = _metrics(tmp_path)
    losses = _col(rows, "train/loss")
    assert len(losses) == 6 and abs(losses[0] - 0.6931) < 1e-3  # ln 2: policy == reference at step 0
    assert losses[-1] < losses[0], losses
    for name in ("train/rewards/chosen", "train/rewards/rejected", "train/rewards/margins",
                 "train/rewards/accuracies", "train/logps/chosen", "train/logps/rejected",
                 "val/rewards/accuracies", "val/loss"):
        assert _col(rows, name), name
    assert _col(rows, "val/rewards/accuracies")[-1] > 0.5
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "export") is not None
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("loss", [
    {"class_path": "dpop", "init_args": {"beta": 0.5, "lam": 5.0}},       # the example plugin, by name
    {"class_path": "simpo"},
    {"class_path": "weighted", "init_args": {"losses": [{"class_path": "ipo"}, {"class_path": "nll"}],
                                             "weights": [1.0, 0.1]}},
], ids=["dpop", "simpo", "weighted"])
def test_losses_by_entry_point_name(tmp_path, tiny_llama_dir, pref_files, loss):
    cfg = dpo_config(tmp_path, tiny_llama_dir, pref_files, loss=loss, **{"trainer.max_steps": 3,
                                                                       "trainer.val_check_interval": 3})
    assert main(["fit", "--config", str(cfg)]) == 0
    losses = _col(_metrics(tmp_path), "train/loss")
    assert len(losses) == 3 and all(x == x for x in losses)
    resolved = yaml.safe_load(next(tmp_path.glob("lightning_logs/version_*/config.yaml")).read_text())
    path = resolved["model"]["init_args"]["loss"]["class_path"]
    assert path.split(".")[-1] in {"DPOPositiveLoss", "SimPOLoss", "WeightedLoss"}


def test_precomputed_reference_with_lora(tmp_path, tiny_llama_dir, pref_files):
    cfg = dpo_config(tmp_path, tiny_llama_dir, pref_files, **{
        "model.init_args.precompute_reference": True, "trainer.max_steps": 3, "trainer.val_check_interval": 3,
        "model.init_args.policy.lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "export.merge_lora": True})
    assert main(["fit", "--config", str(cfg)]) == 0
    assert abs(_col(_metrics(tmp_path), "train/loss")[0] - 0.6931) < 1e-3
    assert (tmp_path / "export" / "config.json").is_file()


def test_unknown_loss_lists_the_available_ones(tmp_path, tiny_llama_dir, pref_files, capsys):
    cfg = dpo_config(tmp_path, tiny_llama_dir, pref_files, loss={"class_path": "no_such_loss"})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "sigmoid" in err and "dpop" in err


@pytest.mark.parametrize("row,message", [
    ({"prompt": "Say hello.", "chosen": "Hello!", "rejected": "Hello!"}, "identical"),
    ({"prompt": "Say hello.", "chosen": "", "rejected": "Hi."}, "empty"),
], ids=["identical", "empty"])
def test_bad_pairs_fail_naming_the_row(tmp_path, tiny_llama_dir, pref_files, capsys, row, message):
    rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS] + [row]
    train = _write(tmp_path / "bad.jsonl", rows)
    cfg = dpo_config(tmp_path, tiny_llama_dir, {"train": train, "val": pref_files["val"]})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "row index 4" in err and message in err.lower()


def test_prompt_longer_than_budget_is_dropped_and_counted_or_an_error(tmp_path, tiny_llama_dir, pref_files, capsys):
    long_prompt = "Explain gravity and the moon and the earth. " * 40
    rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS] * 2
    rows.append({"prompt": long_prompt, "chosen": "Gravity.", "rejected": "Moon."})
    train = _write(tmp_path / "long.jsonl", rows)
    cfg = dpo_config(tmp_path, tiny_llama_dir, {"train": train, "val": pref_files["val"]},
                     **{"trainer.max_steps": 2, "trainer.val_check_interval": 2})
    with pytest.warns(UserWarning, match="8/9 comparisons kept.*dropped 0 longer than 64 and 1 whose prompt"):
        assert main(["fit", "--config", str(cfg)]) == 0
    cfg = dpo_config(tmp_path, tiny_llama_dir, {"train": train, "val": pref_files["val"]},
                     **{"data.init_args.truncation": "error"})
    assert main(["fit", "--config", str(cfg)]) == 2
    assert "row index 8" in capsys.readouterr().err
