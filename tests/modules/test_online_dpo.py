"""Online DPO end to end through ``rlhf_lightning.cli.main`` (reward plugins by entry-point name), one
batch's pairs checked by hand against the scores, checkpoint/resume, and bad options (exit 2)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from rlhf_lightning.cli import main
from rlhf_lightning.losses.labels import IGNORE_INDEX
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.online_dpo import OnlineDPOModule
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rollout.generation import GenerationSpec
from tests.cli.conftest import write_config

PROMPTS = ["Write a poem about spring.", "Explain gravity.", "Say hello.", "写一首关于春天的诗"]


def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "id": i}, ensure_ascii=False) + "\n"
                            for i, p in enumerate(PROMPTS)), encoding="utf-8")
    return path


def config(root: Path, model_dir: Path, prompts: Path, **overrides) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 4, "default_root_dir": str(root),
            "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
            "num_sanity_val_steps": 0, "val_check_interval": 2, "check_val_every_n_epoch": None,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True,
                                         "save_top_k": -1, "every_n_train_steps": 2}}],
        },
        "model": {
            "class_path": "rlhf_lightning.modules.online_dpo.OnlineDPOModule",
            "init_args": {
                "policy": {"name_or_path": str(model_dir)},
                "rewards": [{"class_path": "length", "init_args": {"target": 6, "unit": "chars"}},
                            {"class_path": "keyword", "init_args": {"keywords": ["a"]}}],
                "reward_weights": [1.0, 0.5],
                "generation": {"max_new_tokens": 6, "do_sample": True, "num_return_sequences": 4},
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
            },
        },
        "data": {
            "class_path": "rlhf_lightning.datamodules.prompts.PromptDataModule",
            "init_args": {"train": str(prompts), "val": str(prompts), "max_prompt_length": 64, "batch_size": 2},
        },
    }
    return write_config(root / "online_dpo.yaml", cfg, overrides)


def metrics(root: Path) -> list[dict]:
    rows = []
    for f in sorted(root.glob("lightning_logs/version_*/metrics.csv")):
        with open(f, encoding="utf-8") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def test_fit_logs_pairs_and_dpo_metrics_and_exports(tmp_path, tiny_llama_dir):
    assert main(["fit", "--config", str(config(tmp_path, tiny_llama_dir, prompt_file(tmp_path)))]) == 0
    train = [r for r in metrics(tmp_path) if r.get("train/loss")]
    assert train, "no training step made a pair"
    for r in train:
        assert math.isfinite(float(r["train/loss"]))
        assert float(r["train/score/chosen"]) > float(r["train/score/rejected"])
        assert float(r["train/score/margin"]) > 0
        assert 1 <= float(r["train/pairs"]) + float(r["train/ties"]) <= 2
        for key in ("train/rewards/margins", "train/logps/chosen", "train/score/length", "train/score/keyword"):
            assert r.get(key) not in (None, ""), key
    assert any(r.get("val/score/mean") for r in metrics(tmp_path))
    assert (tmp_path / "export" / "config.json").is_file()


class Chars(RewardFunction):
    """Score = completion length in characters."""

    def __call__(self, prompts, completions, **columns):
        return [float(len(c)) for c in completions]


def test_pairs_are_best_and_worst_by_hand(tiny_llama_dir):
    from transformers import AutoTokenizer

    from rlhf_lightning.data.prompts import PromptCollator

    m = OnlineDPOModule(ModelSpec(name_or_path=str(tiny_llama_dir)), rewards=[Chars()],
                        generation=GenerationSpec(max_new_tokens=8, do_sample=True, num_return_sequences=4))
    m.configure_model()
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    batch = PromptCollator(tok)([{"text": p, "prompt": p} for p in PROMPTS[:3]])
    torch.manual_seed(3)
    pairs, logs = m.make_pairs(batch)
    torch.manual_seed(3)
    r = m.rollout(batch)
    scores = [float(len(c)) for c in r.completions]
    want = []
    for g in range(3):  # best = first max, worst = first min, ties dropped
        s = scores[4 * g: 4 * g + 4]
        if max(s) > min(s):
            want.append((4 * g + s.index(max(s)), 4 * g + s.index(min(s))))
    assert len(want) == logs["pairs"] == pairs["input_ids"].shape[0] // 2 and logs["ties"] == 3 - len(want)
    for b, (c, w) in enumerate(want):
        for row, i in ((2 * b, c), (2 * b + 1, w)):
            labels = pairs["labels"][row]
            answer = pairs["input_ids"][row][labels != IGNORE_INDEX].tolist()
            assert answer == r.completion_ids[i][r.mask[i]].tolist()
            prompt = batch["input_ids"][i // 4][batch["attention_mask"][i // 4].bool()].tolist()
            assert pairs["input_ids"][row][: len(prompt)].tolist() == prompt
        assert scores[c] > scores[w]
    assert logs["score/chosen"] == pytest.approx(sum(scores[c] for c, _ in want) / len(want))
    assert logs["score/rejected"] == pytest.approx(sum(scores[w] for _, w in want) / len(want))


@pytest.mark.parametrize("overrides, needle", [
    ({"model.init_args.rewards": []}, "rewards"),
    ({"model.init_args.generation": {"max_new_tokens": 4, "do_sample": True, "num_return_sequences": 1}},
     "generation.num_return_sequences"),
    ({"model.init_args.generation": {"max_new_tokens": 4, "do_sample": False, "num_return_sequences": 2}},
     "generation.do_sample"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, tiny_llama_dir, capsys, overrides, needle):
    cfg = config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **overrides)
    assert main(["fit", "--config", str(cfg)]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("rlhf-lightning: error:")]
    assert len(errors) == 1 and f"model.init_args.{needle}" in errors[0], errors


def test_kill_and_resume_ends_bit_for_bit_where_an_uninterrupted_run_ends(tmp_path, tiny_llama_dir):
    """4 prompts, batch 2: 2 steps an epoch; SIGKILLed after step 4 (epochs counted from 0: the data
    module's state is in epoch 1; shuffled prompt order and sampling RNG in flight), resumed with
    --ckpt_path last."""
    from tests.cli.test_resume_cli import kill_and_resume

    prompts = prompt_file(tmp_path)

    def make(root, callbacks):
        return config(root, tiny_llama_dir, prompts, **{
            "trainer.max_steps": 6, "trainer.callbacks": callbacks, "export.enabled": False})

    killed, end = kill_and_resume(tmp_path, make, every=2, kill_at=4)
    assert killed["PromptDataModule"]["epoch"] == 1 and end["global_step"] == 6
