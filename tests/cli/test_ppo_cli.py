"""PPO/GRPO end to end through ``rlhf_lightning.cli.main``: entry-point names in YAML, checkpoints,
resumption with --ckpt_path, export, and user errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rlhf_lightning.cli import main
from tests.cli.conftest import write_config

PROMPTS = ["Write a poem about spring.", "Explain gravity.", "Say hello.", "写一首关于春天的诗"]


def ppo_config(root: Path, model_dir: Path, prompts: Path, **overrides) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 4, "default_root_dir": str(root),
            "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
            "num_sanity_val_steps": 0,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True,
                                         "every_n_train_steps": 2}}],
        },
        "model": {
            "class_path": "rlhf_lightning.modules.ppo.PPOModule",
            "init_args": {
                "policy": {"name_or_path": str(model_dir)},
                "rewards": [{"class_path": "length", "init_args": {"target": 3, "unit": "chars"}},
                            {"class_path": "keyword", "init_args": {"keywords": ["spring"]}}],
                "reward_weights": [1.0, 0.5],
                "constraints": [{"checker": {"class_path": "max_length", "init_args": {"max_length": 2}},
                                 "mode": "lagrangian", "lambda_lr": 0.1}],
                "advantage": {"class_path": "grpo"},
                "kl": {"coef": 0.05, "estimator": "k3", "apply_to": "loss"},
                "ppo": {"epochs": 1, "num_minibatches": 2},
                "generation": {"max_new_tokens": 4, "do_sample": True, "num_return_sequences": 2},
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
            },
        },
        "data": {
            "class_path": "rlhf_lightning.datamodules.prompts.PromptDataModule",
            "init_args": {"train": str(prompts), "val": str(prompts), "max_prompt_length": 64, "batch_size": 2},
        },
    }
    return write_config(root / "ppo.yaml", cfg, overrides)


def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "id": i}, ensure_ascii=False) + "\n"
                            for i, p in enumerate(PROMPTS)), encoding="utf-8")
    return path


def metrics(root: Path) -> list[dict]:
    files = sorted(root.glob("lightning_logs/version_*/metrics.csv"))
    rows = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def test_grpo_fit_validates_checkpoints_resumes_and_exports(tmp_path, tiny_llama_dir):
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path))
    assert main(["fit", "--config", str(cfg)]) == 0
    rows = metrics(tmp_path)
    train = [r for r in rows if r.get("train/reward")]
    assert len(train) == 2  # 4 optimizer steps = 2 rollouts × 1 epoch × 2 minibatches
    for key in ("train/reward/length", "train/reward/keyword", "train/kl", "train/entropy",
                "train/policy/clipfrac", "train/policy/approx_kl", "train/response_length",
                "constraint/max_length/violation_rate", "constraint/max_length/lambda"):
        assert key in train[-1] and train[-1][key] != "", key
    assert any(r.get("val/reward") for r in rows)
    assert (tmp_path / "export" / "config.json").is_file()
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    # resumption through the CLI (Lightning loads the checkpoint with weights_only=True)
    assert main(["fit", "--config", str(cfg), "--trainer.max_steps", "8", "--ckpt_path", str(ckpt)]) == 0
    train = [r for r in metrics(tmp_path) if r.get("train/reward")]
    assert len(train) == 4


def test_ppo_with_critic_from_the_cli(tmp_path, tiny_llama_dir):
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{
        "model.init_args.advantage": {"class_path": "gae", "init_args": {"lam": 0.9}},
        "model.init_args.kl": {"coef": 0.05, "target": 1.0, "horizon": 100},
        "model.init_args.generation": {"max_new_tokens": 4, "do_sample": True},
        "model.init_args.constraints": [{"checker": {"class_path": "banned_patterns",
                                                     "init_args": {"words": ["gravity"]}}, "mode": "skip"}],
        "trainer.max_steps": 2})
    assert main(["fit", "--config", str(cfg)]) == 0
    train = [r for r in metrics(tmp_path) if r.get("train/reward")]
    assert train and train[-1]["train/value_loss"] != "" and train[-1]["train/explained_variance"] != ""


def test_wrong_prompt_format_is_one_clear_error(tmp_path, tiny_llama_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "What?"}) + "\n", encoding="utf-8")
    cfg = ppo_config(tmp_path, tiny_llama_dir, bad)
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'prompt'" in err and "question" in err and "Traceback" not in err


def test_unknown_estimator_name_lists_the_available_ones(tmp_path, tiny_llama_dir, capsys):
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{"model.init_args.advantage":
                                                                         {"class_path": "ppo_magic"}})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "grpo" in err and "rloo" in err
