"""Shared builders for the PPO tests: a tiny policy, prompt files and a Trainer, all on CPU in seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer

from rlhf_lightning.datamodules.prompts import PromptDataModule
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.ppo import PPOModule
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rollout.generation import GenerationSpec

PROMPTS = ["Write a poem about spring.", "Explain gravity.", "Say hello.", "Translate to French: good morning",
           "写一首关于春天的诗", "请解释什么是人工智能", "Write about the moon.", "Thank you!"]


def write_prompts(path: Path, n: int = 8, **extra: Any) -> Path:
    path.write_text("".join(json.dumps({"prompt": PROMPTS[i % len(PROMPTS)], "id": i, **extra}, ensure_ascii=False)
                            + "\n" for i in range(n)), encoding="utf-8")
    return path


class CharCount(RewardFunction):
    """Score = number of characters 'e' (a cheap, learnable, deterministic signal)."""

    def __call__(self, prompts, completions, **columns):
        return [float(c.count("e")) for c in completions]


def make_module(model_dir: Path, rewards=None, **kwargs: Any) -> PPOModule:
    kwargs.setdefault("generation", GenerationSpec(max_new_tokens=6, do_sample=True))
    import torch

    kwargs.setdefault("optimizer", lambda params: torch.optim.AdamW(params, lr=1e-2))
    kwargs.setdefault("log_samples_every_n_steps", 0)
    return PPOModule(policy=kwargs.pop("policy", ModelSpec(name_or_path=str(model_dir))),
                     rewards=rewards if rewards is not None else [CharCount()], **kwargs)


def make_data(model_dir: Path, prompts: Path, **kwargs: Any) -> PromptDataModule:
    kwargs.setdefault("batch_size", 2)
    kwargs.setdefault("max_prompt_length", 64)
    return PromptDataModule(train=str(prompts), tokenizer=str(model_dir), **kwargs)


def make_trainer(root: Path, max_steps: int, **kwargs: Any) -> Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return Trainer(accelerator="cpu", devices=1, max_steps=max_steps, default_root_dir=str(root),
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


class CharLength(RewardFunction):
    """Score = completion length in characters / 10 (varies between random completions)."""

    def __call__(self, prompts, completions, **columns):
        return [len(c) / 10.0 for c in completions]


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
