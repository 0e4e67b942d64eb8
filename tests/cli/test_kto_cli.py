"""KTO end to end through ``rlhf_lightning.cli.main`` on a tiny model: unpaired rows (plain and
conversational), pairs read as unpaired rows, losses by entry-point name, LoRA, export, and bad input
(missing or non-boolean labels, one-row batches, a paired loss on the KTO stage)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.conftest import write_config

ROWS = [
    ("Explain gravity.", "Gravity pulls objects toward each other.", True),
    ("Say hello.", "The moon.", False),
    ("Write a poem about spring.", "Spring wind brings flowers.", True),
    ("写一首关于春天的诗", "人工智能。", False),
    ("Translate to French: good morning", "Bonjour.", True),
    ("Explain the moon.", "Hello world thank you answer question", False),
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(conversational: bool = False) -> list[dict]:
    if conversational:
        return [{"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}],
                 "label": label} for p, c, label in ROWS]
    return [{"prompt": p, "completion": c, "label": label} for p, c, label in ROWS]


@pytest.fixture()
def kto_files(tmp_path):
    return {"train": _write(tmp_path / "train.jsonl", _rows() * 2), "val": _write(tmp_path / "val.jsonl", _rows())}


def kto_config(root: Path, model_dir: Path, files: dict, loss: dict | None = None, **overrides) -> Path:
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
            "class_path": "rlhf_lightning.modules.kto.KTOModule",
            "init_args": {
                "policy": {"name_or_path": str(model_dir)},
                "loss": loss or {"class_path": "kto", "init_args": {"beta": 0.5}},
                "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05}},
            },
        },
        "data": {
            "class_path": "rlhf_lightning.datamodules.unpaired.UnpairedDataModule",
            "init_args": {"train": str(files["train"]), "val": str(files["val"]), "max_length": 64, "batch_size": 2},
        },
    }
    return write_config(root / "kto.yaml", cfg, overrides)


def _metrics(root: Path) -> list[dict]:
    with open(next(root.glob("lightning_logs/version_*/metrics.csv")), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _col(rows, name):
    return [float(r[name]) for r in rows if r.get(name)]


def test_fit_kto_learns_logs_trl_metrics_and_exports(tmp_path, tiny_llama_dir, kto_files):
    assert main(["fit", "--config", str(kto_config(tmp_path, tiny_llama_dir, kto_files))]) == 0
    rows = _metrics(tmp_path)
    losses = _col(rows, "train/loss")
    # step 0: policy == reference, so r = 0 and the KL estimate is 0: every row costs 1 - σ(0) = 0.5
    assert len(losses) == 6 and abs(losses[0] - 0.5) < 1e-5
    for name in ("train/rewards/chosen", "train/rewards/rejected", "train/rewards/margins", "train/kl",
                 "train/logps/chosen", "train/logps/rejected", "val/loss", "val/kl", "val/rewards/chosen"):
        assert _col(rows, name), name
    assert _col(rows, "train/kl")[0] == 0.0 and min(_col(rows, "train/kl")) >= 0.0
    assert _col(rows, "val/rewards/margins")[-1] > 0  # desirable answers gained on undesirable ones
    export = tmp_path / "export"
    assert (export / "model.safetensors").is_file() and (export / "config.json").is_file()


def test_conversational_rows_and_apo_zero_by_name(tmp_path, tiny_llama_dir):
    files = {"train": _write(tmp_path / "train.jsonl", _rows(conversational=True) * 2),
             "val": _write(tmp_path / "val.jsonl", _rows(conversational=True))}
    cfg = kto_config(tmp_path, tiny_llama_dir, files, loss={"class_path": "apo_zero_unpaired",
                                                            "init_args": {"beta": 0.5}})
    assert main(["fit", "--config", str(cfg)]) == 0
    rows = _metrics(tmp_path)
    assert abs(_col(rows, "train/loss")[0] - 0.5) < 1e-5
    assert not _col(rows, "train/kl")  # APO-zero has no KL reference point: no mismatched forward


def test_pairs_are_read_as_desirable_and_undesirable_rows_with_lora(tmp_path, tiny_llama_dir, caplog):
    pairs = [{"prompt": p, "chosen": c, "rejected": ROWS[(i + 1) % len(ROWS)][1]}
             for i, (p, c, _) in enumerate(ROWS)]
    files = {"train": _write(tmp_path / "pairs.jsonl", pairs), "val": _write(tmp_path / "val.jsonl", pairs[:2])}
    cfg = kto_config(tmp_path, tiny_llama_dir, files, **{
        "model.init_args.policy.lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "trainer.max_steps": 3, "trainer.val_check_interval": 3})
    with caplog.at_level("INFO"):
        assert main(["fit", "--config", str(cfg)]) == 0
    assert "(pairwise): 12/12 rows kept (0 truncated to 64 tokens; 6 desirable, 6 undesirable)" in caplog.text


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Hi.", "completion": "Hello.", "label": "maybe"},
     "row index 6: field 'label' must be true (desirable) or false (undesirable), got str 'maybe'"),
    ({"prompt": "Hi.", "completion": "Hello.", "label": None}, "row index 6: field 'label' is missing"),
    ({"prompt": "Hi.", "completion": "", "label": True}, "row index 6: field 'completion' is empty"),
    ({"prompt": [{"role": "user", "content": "Hi."}], "completion": "Hello.", "label": True},
     "row index 6: prompt and completion must both be texts or both be message lists"),
])
def test_bad_rows_fail_naming_the_row_and_field(tmp_path, tiny_llama_dir, capsys, row, message):
    rows = [{**r, "label": str(r["label"]).lower()} if isinstance(row["label"], str) else r for r in _rows()]
    files = {"train": _write(tmp_path / "train.jsonl", rows + [row]), "val": _write(tmp_path / "val.jsonl", rows)}
    assert main(["fit", "--config", str(kto_config(tmp_path, tiny_llama_dir, files))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_rows_without_label_column(tmp_path, tiny_llama_dir, capsys):
    rows = [{"prompt": p, "completion": c} for p, c, _ in ROWS]
    files = {"train": _write(tmp_path / "train.jsonl", rows), "val": _write(tmp_path / "val.jsonl", rows)}
    assert main(["fit", "--config", str(kto_config(tmp_path, tiny_llama_dir, files))]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl: rows have 'prompt' and 'completion' but no 'label' column" in err


def test_a_ranking_has_no_labels(tmp_path, tiny_llama_dir, capsys):
    rows = [{"prompt": "Hi.", "responses": ["a", "b", "c"], "ranking": [0, 1, 2]}] * 2
    files = {"train": _write(tmp_path / "train.jsonl", rows), "val": _write(tmp_path / "val.jsonl", rows)}
    assert main(["fit", "--config", str(kto_config(tmp_path, tiny_llama_dir, files))]) == 2
    assert "format 'ranking' has no desirable/undesirable labels" in capsys.readouterr().err


def test_one_row_batches_are_refused_for_kto_but_not_apo_zero(tmp_path, tiny_llama_dir, kto_files, capsys):
    cfg = kto_config(tmp_path, tiny_llama_dir, kto_files, **{"data.init_args.batch_size": 1})
    assert main(["fit", "--config", str(cfg)]) == 2
    assert "data.init_args.batch_size must be at least 2: the KL reference point pairs each prompt" in \
        capsys.readouterr().err
    (tmp_path / "apo").mkdir()
    cfg = kto_config(tmp_path / "apo", tiny_llama_dir, kto_files, loss={"class_path": "apo_zero_unpaired"},
                     **{"data.init_args.batch_size": 1, "trainer.max_steps": 2})
    assert main(["fit", "--config", str(cfg)]) == 0


def test_a_last_batch_of_one_row_is_left_out(tmp_path, tiny_llama_dir, caplog):
    files = {"train": _write(tmp_path / "train.jsonl", _rows()[:5]), "val": _write(tmp_path / "val.jsonl", _rows())}
    cfg = kto_config(tmp_path, tiny_llama_dir, files, **{"trainer.max_steps": -1, "trainer.max_epochs": 2,
                                                         "trainer.val_check_interval": None})
    with caplog.at_level("INFO"):
        assert main(["fit", "--config", str(cfg)]) == 0
    assert "train: the last batch of each epoch would hold one row" in caplog.text
    assert len(_col(_metrics(tmp_path), "train/loss")) == 4  # 2 batches of 2 per epoch, the fifth row left out


def test_one_training_row_is_an_error(tmp_path, tiny_llama_dir, capsys):
    files = {"train": _write(tmp_path / "train.jsonl", _rows()[:1]), "val": _write(tmp_path / "val.jsonl", _rows())}
    assert main(["fit", "--config", str(kto_config(tmp_path, tiny_llama_dir, files))]) == 2
    assert "train: one row, so no batch has a mismatched prompt/completion pair" in capsys.readouterr().err


def test_a_paired_loss_is_refused_at_parse_time(tmp_path, tiny_llama_dir, kto_files, capsys):
    cfg = kto_config(tmp_path, tiny_llama_dir, kto_files, loss={"class_path": "sigmoid"})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "kto" in err and "Traceback" not in err


def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, tiny_llama_dir, kto_files):
    """Stopped after step 3 of an epoch of 6 and resumed with --ckpt_path last: the same data order (the
    shuffled epoch continues mid-way), the reference rebuilt from the initial weights, the same losses."""
    def cfg(root, steps):
        root.mkdir()
        return kto_config(root, tiny_llama_dir, kto_files, **{
            "trainer.max_steps": steps, "trainer.val_check_interval": None,
            "trainer.callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True,
                                                 "every_n_train_steps": 1}}]})

    assert main(["fit", "--config", str(cfg(tmp_path / "whole", 6))]) == 0
    part = cfg(tmp_path / "part", 3)
    assert main(["fit", "--config", str(part)]) == 0
    assert main(["fit", "--config", str(part), "--trainer.max_steps", "6", "--ckpt_path", "last"]) == 0
    whole = _col(_metrics(tmp_path / "whole"), "train/loss")
    with open(sorted((tmp_path / "part").glob("lightning_logs/version_*/metrics.csv"))[-1], encoding="utf-8") as f:
        resumed = _col(list(csv.DictReader(f)), "train/loss")
    assert len(whole) == 6 and len(resumed) == 3
    assert resumed == pytest.approx(whole[3:], rel=1e-6, abs=1e-7)


def test_ddp_two_cpu_processes_average_the_kl_estimate(tmp_path, tiny_llama_dir, kto_files):
    """Under DDP each process estimates the KL term on its own batch and the processes average it (TRL
    gathers it the same way): the run trains, logs a KL and exports."""
    import subprocess
    import sys

    cfg = kto_config(tmp_path, tiny_llama_dir, kto_files, **{"trainer.max_steps": 3, "trainer.val_check_interval": None})
    exe = str(Path(sys.executable).parent / "rlhf-lightning")
    res = subprocess.run([exe, "fit", "--config", str(cfg), "--trainer.strategy=ddp", "--trainer.devices=2"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    rows = _metrics(tmp_path)
    assert len(_col(rows, "train/kl")) == 3 and len(_col(rows, "train/loss")) == 3
    assert (tmp_path / "export" / "model.safetensors").is_file()
