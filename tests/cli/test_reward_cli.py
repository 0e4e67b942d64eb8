"""Reward models end to end through ``rlhf_lightning.cli.main``: train, checkpoint, export, load the
export with plain transformers and with the ``classifier`` reward plugin; losses by entry-point name;
bad comparison data named by row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.conftest import write_config
from tests.rewards.classifiers import build_tiny_classifier

PROMPTS = ["Write a poem about spring.", "Explain gravity.", "请解释什么是人工智能", "Say hello.",
           "Translate to French: good morning", "写一首关于春天的诗", "Tell me about the moon.", "What is rain?"]
GOOD = "Thank you, here is the answer: spring wind brings flowers."
BAD = "no"
HELD_OUT = ["Explain the sun.", "写一首关于月亮的诗"]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clf_dir(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("rm_clf"))


@pytest.fixture()
def rm_files(tmp_path):
    return {
        "train": _write(tmp_path / "train.jsonl", [{"prompt": p, "chosen": GOOD, "rejected": BAD} for p in PROMPTS]),
        "val": _write(tmp_path / "val.jsonl", [{"prompt": p, "chosen": GOOD, "rejected": BAD} for p in HELD_OUT]),
        "ranking": _write(tmp_path / "rank.jsonl", [
            {"prompt": p, "responses": [BAD, GOOD, "The answer is rain."], "ranking": [1, 2, 0]} for p in PROMPTS]),
    }


def rm_config(root: Path, model_dir: Path, files: dict, loss=None, **overrides) -> Path:
    """Write a complete reward-model run config under ``root`` and return its path."""
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_epochs": 4, "default_root_dir": str(root),
            "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
            "num_sanity_val_steps": 0,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True,
                                         "monitor": "val/accuracy", "mode": "max"}}],
        },
        "model": {
            "class_path": "rlhf_lightning.modules.reward.RewardModelModule",
            "init_args": {
                "backbone": {"name_or_path": str(model_dir)},
                "loss": loss or {"class_path": "pairwise", "init_args": {"center_rewards_coefficient": 0.01}},
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.03}},
            },
        },
        "data": {
            "class_path": "rlhf_lightning.datamodules.comparisons.ComparisonDataModule",
            "init_args": {"train": str(files["train"]), "val": str(files["val"]), "max_length": 96,
                          "batch_size": 4},
        },
    }
    return write_config(root / "run.yaml", cfg, overrides)


def _metrics(root: Path) -> list[dict]:
    (path,) = root.rglob("metrics.csv")
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_fit_exports_a_reward_model_that_ranks_held_out_pairs(tmp_path, clf_dir, rm_files):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_lightning.rewards.model import ClassifierReward

    assert main(["fit", "--config", str(rm_config(tmp_path, clf_dir, rm_files))]) == 0
    val_acc = [float(r["val/accuracy"]) for r in _metrics(tmp_path) if r.get("val/accuracy")]
    assert len(val_acc) == 4 and val_acc[-1] == 1.0  # validated every epoch
    assert any(r.get("train/tokens_per_sec") for r in _metrics(tmp_path))  # the CLI's TokenThroughput callback
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    export = tmp_path / "export"
    assert (export / "model.safetensors").is_file() and (export / "chat_template.jinja").is_file()

    # plain transformers: a scalar head, pad token set, scores chosen above rejected
    config = json.loads((export / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and config["pad_token_id"] is not None
    model = AutoModelForSequenceClassification.from_pretrained(export).eval()
    tok = AutoTokenizer.from_pretrained(export)
    assert model.config.num_labels == 1
    texts = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                     tokenize=False) for p in HELD_OUT for r in (GOOD, BAD)]
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = model(**enc).logits[:, 0].view(-1, 2)
    assert (scores[:, 0] > scores[:, 1]).all()

    # the model-based reward plugin (what the PPO stage uses) agrees
    reward = ClassifierReward(str(export))
    chosen, rejected = reward(HELD_OUT, [GOOD] * 2), reward(HELD_OUT, [BAD] * 2)
    assert all(c > r for c, r in zip(chosen, rejected, strict=True))
    torch.testing.assert_close(torch.tensor(chosen), scores[:, 0], atol=1e-4, rtol=1e-4)


def test_kwise_loss_by_entry_point_name_on_rankings(tmp_path, clf_dir, rm_files):
    files = dict(rm_files, train=rm_files["ranking"], val=rm_files["ranking"])
    cfg = rm_config(tmp_path, clf_dir, files, loss="kwise", **{"trainer.max_epochs": 3})
    assert main(["fit", "--config", str(cfg)]) == 0
    rows = [r for r in _metrics(tmp_path) if r.get("val/kendall_tau")]
    assert rows and float(rows[-1]["val/accuracy"]) == 1.0 and float(rows[-1]["val/kendall_tau"]) == 1.0
    assert (tmp_path / "export" / "config.json").is_file()


def _fails(cfg: Path, capsys) -> str:
    code = main(["fit", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("rows,expected", [
    ([{"prompt": "a", "chosen": "x", "rejected": "y"}, {"prompt": "b", "chosen": "same", "rejected": "same"}],
     ["row index 1", "chosen is identical to rejected"]),
    ([{"prompt": "a", "responses": ["only one"], "ranking": [0]}], ["row index 0", "K >= 2"]),
    ([{"prompt": "a", "responses": ["x", "y", "z"], "ranking": [0, 0, 2]}], ["row index 0", "not a permutation"]),
    ([{"prompt": "a", "responses": ["x", "y"], "scores": [1.0, float("nan")]}], ["row index 0", "scores[1]"]),
    ([{"prompt": "a", "response": "x", "score": 1.0}, {"prompt": "b", "response": "y", "score": None}],
     ["row index 1", "'score' is missing"]),
    ([{"prompt": "a", "answer": "x"}], ["cannot detect a comparison format", "answer"]),
], ids=["identical", "k_lt_2", "not_permutation", "nan_score", "missing_score", "missing_columns"])
def test_bad_comparison_data_is_named_by_row(tmp_path, clf_dir, rm_files, capsys, rows, expected):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    err = _fails(rm_config(tmp_path, clf_dir, dict(rm_files, train=bad)), capsys)
    for text in expected:
        assert text in err, err
    assert str(bad) in err or "cannot detect" in err
    assert not (tmp_path / "export").exists()


def test_declared_format_with_missing_columns(tmp_path, clf_dir, rm_files, capsys):
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "a", "chosen": "x"}])
    cfg = rm_config(tmp_path, clf_dir, dict(rm_files, train={"path": str(bad), "format": "pairwise"}))
    err = _fails(cfg, capsys)
    assert "rejected" in err and "bad.jsonl" in err


def test_pairwise_loss_on_scored_data_says_which_loss_fits(tmp_path, clf_dir, rm_files, capsys):
    scored = _write(tmp_path / "scored.jsonl", [{"prompt": p, "response": GOOD, "score": 1.0} for p in PROMPTS])
    err = _fails(rm_config(tmp_path, clf_dir, dict(rm_files, train=scored, val=scored)), capsys)
    assert "pointwise" in err and "'mse'" in err


def test_unknown_loss_name_lists_the_reward_losses(tmp_path, clf_dir, rm_files, capsys):
    code = main(["fit", "--config", str(rm_config(tmp_path, clf_dir, rm_files, loss="nope"))])
    err = capsys.readouterr().err
    assert code == 2 and "kwise" in err and "plackett_luce" in err
