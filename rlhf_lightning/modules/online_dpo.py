"""Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"): DPO on
pairs the current policy samples and reward plugins rank, made afresh for every prompt batch.

The stage is :class:`~rlhf_lightning.modules.dpo.DPOModule` fed from
:class:`~rlhf_lightning.datamodules.prompts.PromptDataModule` (as PPO): it loads the policy and the
reference as DPO does (LoRA with the adapter disabled, a separate ``reference:``, or a frozen copy of
the initial weights), takes its preference loss plugins, exports and predicts the same way. Per step:

1. ``generation.num_return_sequences`` (``n >= 2``) sampled answers per prompt from the current
   policy (eval mode, no grad);
2. their scores: ``Σ_k w_k · reward_k`` over the ``rewards`` plugins (the list PPO takes);
3. best vs worst answer per prompt (:func:`~rlhf_lightning.rollout.online_pairs.select_pairs`);
   prompts whose scores tie (within ``min_margin``) are dropped and counted;
4. the ``(2B', T)`` comparison batch of those pairs (the sampled tokens, collated as offline
   comparisons), one policy forward, one reference forward, the preference loss.

A batch where every prompt ties makes no update (a warning). Logged besides DPO's metrics:
``score/mean`` (the weighted score, after ``missing_eos_penalty``), ``score/<plugin>``, ``score/chosen``,
``score/rejected``, ``score/margin`` (scores of the pairs), ``pairs`` (kept), ``ties``, ``invalid_samples``,
``response_length``, ``finished`` (fraction of answers that ended with EOS or a stop string).
TRL's ``OnlineDPOTrainer`` is the peer (it pairs two samples per prompt by a reward model or a judge).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn

from rlhf_lightning.losses.base import PreferenceLoss
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.dpo import DPOModule
from rlhf_lightning.modules.stage import check_generation_budget
from rlhf_lightning.optim.schedules import default_optimizer
from rlhf_lightning.option_checks import require
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rollout.generation import GenerationSpec
from rlhf_lightning.rollout.online_pairs import pair_batch, select_pairs
from rlhf_lightning.rollout.samples import Rollout, sample
from rlhf_lightning.rollout.scoring import NamedPlugin, check_plugin_setup, plugin_names, score, weighted_total

STATE_KEY = "online_dpo_rewards"


class OnlineDPOModule(DPOModule):
    """DPO on pairs sampled from the current policy and ranked by reward plugins, per prompt batch.

    Args:
        policy: the model to train (hub id / local folder, dtype, LoRA, QLoRA, checkpointing).
        rewards: reward plugins (``class_path`` = entry-point name, e.g. ``classifier``, ``judge``).
        reward_weights: one weight per reward (default 1 each); the score is the weighted sum.
        reward_names: log labels of the rewards (default: entry-point names).
        loss: a :class:`PreferenceLoss` plugin; default DPO's sigmoid loss with ``beta = 0.1``.
        reference: a separate reference model (see :class:`DPOModule`).
        generation: sampling options; ``num_return_sequences >= 2`` answers per prompt, ``do_sample``
            true (greedy answers are all the same). Also used by ``predict``.
        min_margin: a pair is kept when best - worst score > ``min_margin``.
        missing_eos_penalty: subtracted from the score of answers cut by ``max_new_tokens`` (no EOS or stop
            string), as TRL's online DPO option of that name; 0: off.
        val_seed: validation samples with this seed (+ the batch index) in a forked RNG, so it
            neither depends on nor moves the training RNG.
        optimizer: ``params -> Optimizer`` (default AdamW, lr 2e-5); scheduler: per-step LR schedule.
        targets_only_head: project only completion positions through the LM head (see DPOModule).
    """

    def __init__(
        self,
        policy: ModelSpec,
        rewards: list[RewardFunction],
        reward_weights: Optional[list[float]] = None,
        reward_names: Optional[list[str]] = None,
        loss: Optional[PreferenceLoss] = None,
        reference: Optional[ModelSpec] = None,
        generation: GenerationSpec = GenerationSpec(max_new_tokens=64, do_sample=True, num_return_sequences=2),
        min_margin: float = 0.0,
        missing_eos_penalty: float = 0.0,
        val_seed: int = 0,
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: Optional[LRSchedulerCallable] = None,
        targets_only_head: bool = True,
    ) -> None:
        super().__init__(policy, loss=loss, reference=reference, precompute_reference=False, optimizer=optimizer,
                         scheduler=scheduler, targets_only_head=targets_only_head, generation=generation)
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "loss", "rewards"])
        require(self, "rewards", bool(rewards), "must name at least one reward plugin (they rank the samples)",
                rewards)
        weights = list(reward_weights) if reward_weights is not None else [1.0] * len(rewards)
        require(self, "reward_weights", len(weights) == len(rewards),
                f"must give one weight per reward ({len(rewards)})", reward_weights)
        require(self, "generation.num_return_sequences", generation.num_return_sequences >= 2,
                "must be >= 2: online DPO pairs answers to the same prompt", generation.num_return_sequences)
        require(self, "generation.do_sample", generation.do_sample,
                "must be true: greedy decoding gives every answer to a prompt the same text, so no pair",
                generation.do_sample)
        require(self, "min_margin", min_margin >= 0, "must be >= 0", min_margin)
        require(self, "missing_eos_penalty", missing_eos_penalty >= 0, "must be >= 0", missing_eos_penalty)
        self.reward_plugins = [NamedPlugin(*p) for p in zip(plugin_names(rewards, reward_names), rewards, weights,
                                                                strict=True)]
        self.min_margin = min_margin
        self.missing_eos_penalty = missing_eos_penalty
        self.val_seed = val_seed

    # -- set-up ----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        check_generation_budget(self)
        check_plugin_setup([p.plugin for p in self.reward_plugins], self.device)

    def on_validation_start(self) -> None:
        if not self.trainer.training:
            self.on_fit_start()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[STATE_KEY] = {name: p.state_dict() for name, p, _ in self.reward_plugins
                                 if hasattr(p, "state_dict")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get(STATE_KEY) or {}
        for name, p, _ in self.reward_plugins:
            if state.get(name) and hasattr(p, "load_state_dict"):
                p.load_state_dict(state[name])

    # -- pairs -----------------------------------------------------------------------------------
    def rollout(self, batch: dict[str, Any]) -> Rollout:
        """``n`` answers per prompt from the current policy, in eval mode (no dropout), without gradients."""
        was_training = self.model.training
        self.model.eval()
        try:
            return sample(self.model, self.tokenizer, batch, self.generation)
        finally:
            self.model.train(was_training)

    def make_pairs(self, batch: dict[str, Any]) -> tuple[Optional[dict[str, torch.Tensor]], dict[str, float]]:
        """Sample, score and pair one prompt batch: ``(pair batch or None when no prompt gave a pair, metrics)``."""
        r = self.rollout(batch)
        values, invalid = score(self.reward_plugins, r, skip_invalid=True)
        total = weighted_total(values, self.reward_plugins, len(r), r.input_ids.device)
        if self.missing_eos_penalty:
            total = total - self.missing_eos_penalty * (~r.finished).float()
        picked = select_pairs(total, r.group_ids, ~invalid, min_margin=self.min_margin)
        n_pairs = int(picked.chosen.numel())
        valid = ~invalid
        logs = {"score/mean": float(total[valid].mean()) if valid.any() else float("nan"),
                "pairs": float(n_pairs), "ties": float(picked.ties), "invalid_samples": float(invalid.sum()),
                "response_length": float(r.mask.sum(-1).float().mean()),
                "finished": float(r.finished.float().mean())}
        logs.update({f"score/{name}": float(v[valid].mean()) if valid.any() else float("nan")
                     for name, v in values.items()})
        if not n_pairs:
            return None, logs
        chosen, rejected = total[picked.chosen], total[picked.rejected]
        logs.update({"score/chosen": float(chosen.mean()), "score/rejected": float(rejected.mean()),
                     "score/margin": float((chosen - rejected).mean())})
        pairs = pair_batch(r, picked, total, self.tokenizer.pad_token_id)
        return {k: v.to(self.device) for k, v in pairs.items()}, logs

    def _online_step(self, batch: dict[str, Any], stage: str) -> Optional[torch.Tensor]:
        pairs, logs = self.make_pairs(batch)
        n_prompts = len(batch["input_ids"])
        for name, value in logs.items():
            self.log(f"{stage}/{name}", value, batch_size=n_prompts, sync_dist=stage != "train",
                     prog_bar=name == "score/mean")
        if pairs is None:
            if stage == "train":
                rank_zero_warn(f"training step {self.global_step}: no prompt of the batch gave a pair (every "
                               f"best-worst score difference <= min_margin={self.min_margin}); no update")
            return None
        return self._shared_step(pairs, stage)

    # -- steps -----------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        return self._online_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.val_seed + batch_idx)
            self._online_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.val_seed + batch_idx)
            self._online_step(batch, "test")
