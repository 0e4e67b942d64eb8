"""Weighted training mixtures through the real CLI: an SFT fit killed mid-epoch and resumed sees the
same rows, batch for batch, as an uninterrupted run; bad weights exit 2 naming the option."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.conftest import ROWS, sft_config
from tests.cli.test_resume_cli import kill_and_resume


@pytest.fixture()
def two_sources(tmp_path: Path) -> dict[str, Path]:
    """Source A: the 6 shared rows twice (12 rows); source B: 12 other rows."""
    a = tmp_path / "a.csv"
    with open(a, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "response"])
        w.writerows(ROWS * 2)
    b = tmp_path / "b.jsonl"
    b.write_text("".join(json.dumps({"prompt": f"Count to {i}.", "response": " ".join(map(str, range(i + 1)))}) + "\n"
                         for i in range(12)), encoding="utf-8")
    val = tmp_path / "val.jsonl"
    val.write_text(json.dumps({"prompt": "Say hello.", "response": "Hello."}) + "\n", encoding="utf-8")
    return {"a": a, "b": b, "train": a, "val": val, "prompts": val}


def mixture(files, wa=0.8, wb=0.2) -> list[dict]:
    return [{"path": str(files["a"]), "weight": wa}, {"path": str(files["b"]), "weight": wb}]


def test_sft_mixture_killed_mid_epoch_resumes_the_same_rows(tmp_path, tiny_llama_dir, two_sources):
    """24 rows (12 + 12) at weights 0.8/0.2, batch 4: an epoch is 24 samples, 6 steps. Killed right
    after the checkpoint of step 8 (2 batches into epoch 1) and resumed: the batches recorded by the
    killed and the resumed run together equal the uninterrupted run's, and so do the final weights."""
    def config(root, callbacks):
        rec = {"class_path": "tests.callbacks.batches.RecordBatches", "init_args": {"path": str(root / "rows.jsonl")}}
        return sft_config(root, tiny_llama_dir, two_sources, **{
            "data.init_args.train": mixture(two_sources), "trainer.max_steps": 10,
            "trainer.callbacks": [*callbacks, rec], "trainer.num_sanity_val_steps": 0, "export.enabled": False})

    killed, full = kill_and_resume(tmp_path, config, every=2, kill_at=8)
    assert killed["SFTDataModule"]["epoch"] == 1 and killed["SFTDataModule"]["samples_done"] == 8
    assert killed["SFTDataModule"]["mixture"] == {"sizes": [12, 12], "weights": [0.8, 0.2]}

    def rows(root):
        return [json.loads(line) for line in (root / "rows.jsonl").read_text().splitlines()]

    seen_full, seen_resumed = rows(tmp_path / "full"), rows(tmp_path / "resumed")
    assert [r["step"] for r in seen_full] == list(range(1, 11))
    assert seen_resumed == seen_full


@pytest.mark.parametrize(("train", "message"), [
    ([{"weight": -1.0}, {"weight": 1.0}], "data.train[0].weight must be a positive finite number"),
    ([{"weight": 0}, {"weight": 1.0}], "data.train[0].weight must be a positive finite number"),
    ([{"weight": 1.0}, {"weight": float("nan")}], "data.train[1].weight must be a positive finite number"),
    ([{"weight": 1.0}, {"weight": "lots"}], "data.train[1].weight must be a positive finite number"),
    ([{"weight": 1.0}, {}], "data.train[1].weight is missing: give every source a weight or none"),
    ([{}, {"weight": 2.0}], "data.train[0].weight is missing"),
])
def test_bad_weights_exit_2_naming_the_source(tmp_path, tiny_llama_dir, two_sources, capsys, train, message):
    sources = [{"path": str(two_sources[k]), **extra} for k, extra in zip("ab", train, strict=True)]
    cfg = sft_config(tmp_path, tiny_llama_dir, two_sources, **{"data.init_args.train": sources})
    assert main(["fit", "--config", str(cfg)]) == 2
    assert message in capsys.readouterr().err


def test_a_weight_on_a_validation_source_exits_2(tmp_path, tiny_llama_dir, two_sources, capsys):
    cfg = sft_config(tmp_path, tiny_llama_dir, two_sources, **{
        "data.init_args.val": [{"path": str(two_sources["val"]), "weight": 1.0}]})
    assert main(["fit", "--config", str(cfg)]) == 2
    assert "data.val[0].weight: weights mix training sources" in capsys.readouterr().err
