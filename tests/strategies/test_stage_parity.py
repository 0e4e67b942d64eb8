"""Every stage under DDP and FSDP2 with 2 CPU processes ends with the single-process weights.

Each run goes through the console script (Lightning's launcher re-executes it once per process)
with the presets a user stacks (configs/strategies/ddp.yaml, fsdp.yaml). The global batch is the
same in every run: 4 rows in one process, 2 rows in each of 2 processes (the resumable sampler
gives process r every other row of the same order). Losses are reduced over the global batch
(token means over all processes; batch whitening, KL controller and λ over all processes), so the
updates agree up to float summation order: the tolerance is 1e-5 after 3-4 SGD steps at lr 0.5.

PPO runs greedy decoding with GAE and one minibatch per rollout: sampled tokens depend on each
process's random stream and per-process minibatches are drawn from local rows, so with sampling or
several minibatches a 2-process run equals a 1-process run in distribution only.
GRPO (sampled groups) is checked to train and export under each strategy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.cli.conftest import ROWS, write_config
from tests.rewards.classifiers import build_tiny_classifier

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "rlhf-lightning")
PRESETS = {"ddp": ROOT / "configs" / "strategies" / "ddp.yaml", "fsdp": ROOT / "configs" / "strategies" / "fsdp.yaml"}
ATOL = 1e-5

PAIRS = [(p, r, "I don't know.") for p, r in ROWS] + [(p, "Sorry, no.", r) for p, r in ROWS[:2]]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _trainer(root: Path, max_steps: int) -> dict:
    return {"accelerator": "cpu", "devices": 1, "max_steps": max_steps, "default_root_dir": str(root),
            "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
            "num_sanity_val_steps": 0, "limit_val_batches": 0, "logger": False,
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True}}]}


def _sgd(lr: float = 0.5) -> dict:
    # plain SGD: Adam divides each gradient by its own magnitude, which turns float-rounding noise in
    # near-zero gradients into lr-sized steps and would hide real reduction errors behind that noise
    return {"class_path": "torch.optim.SGD", "init_args": {"lr": lr}}


def sft(root: Path, models: dict, per_process: int) -> dict:
    train = _jsonl(root.parent / "sft.jsonl", [{"prompt": p, "response": r} for p, r in ROWS * 2])
    return {"trainer": _trainer(root, 3),
            "model": {"class_path": "rlhf_lightning.modules.sft.SFTModule",
                      "init_args": {"policy": {"name_or_path": str(models["llama"])}, "optimizer": _sgd()}},
            "data": {"class_path": "rlhf_lightning.datamodules.sft.SFTDataModule",
                     "init_args": {"train": str(train), "max_length": 64, "batch_size": per_process}}}


def _pairs(root: Path) -> Path:
    return _jsonl(root.parent / "pairs.jsonl", [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS * 2])


def reward(root: Path, models: dict, per_process: int) -> dict:
    return {"trainer": _trainer(root, 3),
            "model": {"class_path": "rlhf_lightning.modules.reward.RewardModelModule",
                      "init_args": {"backbone": {"name_or_path": str(models["classifier"])}, "optimizer": _sgd(),
                                    "loss": {"class_path": "pairwise", "init_args": {"center_rewards_coefficient": 0.01}}}},
            "data": {"class_path": "rlhf_lightning.datamodules.comparisons.ComparisonDataModule",
                     "init_args": {"train": str(_pairs(root)), "max_length": 64, "batch_size": per_process}}}


def dpo(root: Path, models: dict, per_process: int) -> dict:
    return {"trainer": _trainer(root, 3),
            "model": {"class_path": "rlhf_lightning.modules.dpo.DPOModule",
                      "init_args": {"policy": {"name_or_path": str(models["llama"])}, "optimizer": _sgd(),
                                    "loss": {"class_path": "sigmoid", "init_args": {"beta": 0.5}}}},
            "data": {"class_path": "rlhf_lightning.datamodules.comparisons.ComparisonDataModule",
                     "init_args": {"train": str(_pairs(root)), "max_length": 64, "batch_size": per_process,
                                   "pairwise_only": True}}}


def _prompts(root: Path) -> Path:
    return _jsonl(root.parent / "prompts.jsonl", [{"prompt": p} for p, _ in ROWS] + [{"prompt": "Name a colour."},
                                                                                     {"prompt": "Count to three."}])


def ppo(root: Path, models: dict, per_process: int, *, estimator: str = "gae", sample: bool = False) -> dict:
    return {"trainer": _trainer(root, 4),  # 2 rollouts x 2 PPO epochs x 1 minibatch
            "model": {"class_path": "rlhf_lightning.modules.ppo.PPOModule",
                      "init_args": {
                          "policy": {"name_or_path": str(models["llama"])}, "optimizer": _sgd(),
                          "rewards": [{"class_path": "length", "init_args": {"target": 6, "unit": "chars"}},
                                      {"class_path": "keyword", "init_args": {"keywords": ["a", "e"]}}],
                          "constraints": [{"checker": {"class_path": "max_length", "init_args": {"max_length": 3}},
                                           "mode": "lagrangian", "lambda_lr": 0.1}],
                          "advantage": {"class_path": estimator},
                          "kl": {"coef": 0.05, "target": 0.01, "horizon": 10, "estimator": "k3"},
                          "ppo": {"epochs": 2, "num_minibatches": 1},
                          "generation": {"max_new_tokens": 6, "do_sample": sample,
                                         "num_return_sequences": 2 if sample else 1}}},
            "data": {"class_path": "rlhf_lightning.datamodules.prompts.PromptDataModule",
                     "init_args": {"train": str(_prompts(root)), "max_prompt_length": 48, "batch_size": per_process}}}


def grpo(root: Path, models: dict, per_process: int) -> dict:
    return ppo(root, models, per_process, estimator="grpo", sample=True)


STAGES = {"sft": sft, "reward": reward, "dpo": dpo, "ppo": ppo, "grpo": grpo}


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_llama_dir):
    return {"llama": tiny_llama_dir, "classifier": build_tiny_classifier(tmp_path_factory.mktemp("clf"))}


def _fit(root: Path, cfg: dict, strategy: str | None) -> dict[str, torch.Tensor]:
    root.mkdir(parents=True, exist_ok=True)
    cfg = {"seed_everything": 0, **cfg}
    path = write_config(root / "run.yaml", cfg, {})
    args = [EXE, "fit", "--config", str(path)]
    if strategy:
        args += ["--config", str(PRESETS[strategy]), "--trainer.devices", "2"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=root)
    assert res.returncode == 0, res.stderr[-4000:]
    state = torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False) \
        if (root / "checkpoints" / "last.ckpt").is_file() else None
    if state is not None:
        assert state["global_step"] == cfg["trainer"]["max_steps"]
    return load_file(root / "export" / "model.safetensors")


_SINGLE: dict[str, dict[str, torch.Tensor]] = {}


def _single(stage: str, tmp_path_factory, models) -> dict[str, torch.Tensor]:
    if stage not in _SINGLE:
        root = tmp_path_factory.mktemp(f"{stage}_single") / "run"
        _SINGLE[stage] = _fit(root, STAGES[stage](root, models, 4), None)
    return _SINGLE[stage]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


CASES = [pytest.param(stage, strategy, marks=() if (stage, strategy) == ("sft", "fsdp") else pytest.mark.slow)
         for stage in ("sft", "reward", "dpo", "ppo") for strategy in ("ddp", "fsdp")]


@pytest.mark.parametrize("stage,strategy", CASES)
def test_two_processes_end_with_the_single_process_weights(stage, strategy, tmp_path, tmp_path_factory, models):
    single = _single(stage, tmp_path_factory, models)
    root = tmp_path / "run"
    two = _fit(root, STAGES[stage](root, models, 2), strategy)
    initial = load_file(Path(models["classifier" if stage == "reward" else "llama"]) / "model.safetensors")
    assert _max_diff(single, {k: initial[k] for k in single}) > 1e-3, "the runs must actually train"
    assert _max_diff(single, two) < ATOL


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_grpo_trains_and_exports_under_each_strategy(strategy, tmp_path, models):
    root = tmp_path / "run"
    two = _fit(root, grpo(root, models, 2), strategy)
    initial = load_file(Path(models["llama"]) / "model.safetensors")
    assert _max_diff(two, {k: initial[k] for k in two}) > 1e-4


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_gradient_accumulation_gives_the_same_update(stage, tmp_path, tmp_path_factory, models):
    """2 micro-batches of 2 rows accumulated == 1 batch of 4 rows (SFT: token mean over the window)."""
    single = _single(stage, tmp_path_factory, models)
    root = tmp_path / "run"
    cfg = STAGES[stage](root, models, 2)
    cfg["trainer"]["accumulate_grad_batches"] = 2
    assert _max_diff(single, _fit(root, cfg, None)) < ATOL


@pytest.mark.slow
def test_fsdp_with_activation_checkpointing(tmp_path, tmp_path_factory, models):
    single = _single("sft", tmp_path_factory, models)
    root = tmp_path / "run"
    cfg = sft(root, models, 2)
    cfg["model"]["init_args"]["policy"]["gradient_checkpointing"] = True
    assert _max_diff(single, _fit(root, cfg, "fsdp")) < ATOL
