"""Online RL stage: PPO with a critic (GAE) and its critic-free relatives (GRPO, RLOO, REINFORCE++).

One training step (``automatic_optimization = False``)::

    prompts → generate (n per prompt) → score (reward plugins, weighted; constraint plugins)
            → constraints (skip / penalize / lagrangian) → shape (clip, missing-EOS penalty,
              whitening, score on the last token, per-token KL penalty) → advantages (plugin)
            → ppo.epochs × ppo.num_minibatches optimizer steps (manual_backward)

The reference policy is the policy with its LoRA adapter switched off (no second copy), a separate
``reference:`` model or a frozen copy (:mod:`rlhf_lightning.models.reference`, shared with DPO);
reward models and the reference run without gradients. Experience making is
:mod:`~rlhf_lightning.modules.ppo.experience`; what a checkpoint keeps is
:mod:`~rlhf_lightning.modules.ppo.state`: the KL controller, Lagrange multipliers, plugin state, the
rollout random state and (through the data module) the position in the prompt data, so a resumed
run continues exactly.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn

from rlhf_lightning.algorithms.base import AdvantageEstimator
from rlhf_lightning.algorithms.kl import AdaptiveKLController, FixedKLController, kl_estimate
from rlhf_lightning.algorithms.lagrangian import LagrangeMultiplier
from rlhf_lightning.algorithms.masked import masked_count, masked_sum
from rlhf_lightning.errors import ConfigError, option_errors
from rlhf_lightning.losses.ppo import entropy_from_logits, policy_loss_terms, value_loss_terms
from rlhf_lightning.models.reference import build_reference, reference_forward
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.data_parallel import any_across, sum_across, world_size
from rlhf_lightning.modules.ppo.config import ConstraintRule, CriticSpec, KLSpec, PPOLoopSpec, RewardShapingSpec
from rlhf_lightning.modules.ppo.experience import Experience, make_experience
from rlhf_lightning.modules.ppo.state import load_stage_state, log_samples, save_stage_state
from rlhf_lightning.modules.stage import (
    check_generation_budget,
    configure_stage_optimizers,
    export_stage_model,
    generate_predictions,
    load_policy,
)
from rlhf_lightning.modules.value_head import ValueHead, disable_dropout_, hidden_size_of, separate_critic_values
from rlhf_lightning.optim.schedules import default_optimizer
from rlhf_lightning.option_checks import require
from rlhf_lightning.random_state import set_rng_state
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rollout import onednn
from rlhf_lightning.rollout.generation import GenerationSpec
from rlhf_lightning.rollout.samples import Rollout, forward_completion, sample
from rlhf_lightning.rollout.scoring import NamedPlugin, check_plugin_setup, plugin_names, score, weighted_total


class PPOModule(LightningModule):
    """Online RL from reward and constraint plugins.

    Args:
        policy: the model to train (usually an SFT export; LoRA/QLoRA as in every stage).
        rewards: reward plugins (``class_path`` = entry-point name, e.g. ``classifier``, ``length``).
        reward_weights: one weight per reward (default 1 each); the score is the weighted sum.
        reward_names: labels in logs (default: entry-point names).
        constraints: constraint plugins, each with a mode (see :class:`ConstraintRule`).
        advantage: an ``advantage_estimators`` plugin (``gae`` — the default, with a critic —,
            ``grpo``, ``rloo``, ``reinforce_pp``). A critic is built only when it says
            ``needs_critic``; ``needs_groups`` estimators need ``generation.num_return_sequences > 1``.
        critic: value head on the policy (default) or a separate value model (see :class:`CriticSpec`).
        reference: a separate reference model; default: the policy with its adapter disabled
            (LoRA), else a frozen copy of the policy's initial weights.
        kl, ppo, shaping: see :class:`KLSpec`, :class:`PPOLoopSpec`, :class:`RewardShapingSpec`.
        generation: rollout sampling (``num_return_sequences`` = samples per prompt).
        val_generation: how validation answers held-out prompts; default greedy, one answer each.
            With sampling, every validation draws the same random numbers (seeded by
            ``val_seed``, the process and the batch, in a forked random state that leaves training's
            stream untouched), so scores of successive validations differ only by the policy.
            ``predict`` answers ``data.predict`` prompts with it when it is set, else with ``generation``.
        optimizer, scheduler: injected by LightningCLI; the scheduler steps every optimizer step.
        log_samples_every_n_steps: write a table of sample generations to loggers that take text
            (TensorBoard) every N training steps (0: never); ``num_logged_samples`` rows.
    """

    def __init__(
        self,
        policy: ModelSpec,
        rewards: list[RewardFunction],
        reward_weights: Optional[list[float]] = None,
        reward_names: Optional[list[str]] = None,
        constraints: Optional[list[ConstraintRule]] = None,
        advantage: Optional[AdvantageEstimator] = None,
        critic: CriticSpec = CriticSpec(),
        reference: Optional[ModelSpec] = None,
        kl: KLSpec = KLSpec(),
        ppo: PPOLoopSpec = PPOLoopSpec(),
        shaping: RewardShapingSpec = RewardShapingSpec(),
        generation: GenerationSpec = GenerationSpec(max_new_tokens=64, do_sample=True),
        val_generation: Optional[GenerationSpec] = None,
        val_seed: int = 0,
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: Optional[LRSchedulerCallable] = None,
        log_samples_every_n_steps: int = 50,
        num_logged_samples: int = 8,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "rewards", "constraints", "advantage"])
        require(self, "rewards", bool(rewards), "must name at least one reward plugin", rewards)
        weights = list(reward_weights) if reward_weights is not None else [1.0] * len(rewards)
        require(self, "reward_weights", len(weights) == len(rewards),
                f"must give one weight per reward ({len(rewards)})", reward_weights)
        self.reward_plugins = [NamedPlugin(*p) for p in zip(plugin_names(rewards, reward_names), rewards, weights,
                                                                strict=True)]
        self.constraint_rules = list(constraints or [])
        self.constraint_names = plugin_names([c.checker for c in self.constraint_rules],
                                             [c.name for c in self.constraint_rules])
        self.lambdas = {name: LagrangeMultiplier(rule.lambda_init, rule.lambda_lr, rule.lambda_max)
                        for name, rule in zip(self.constraint_names, self.constraint_rules, strict=True)
                        if rule.mode == "lagrangian"}
        if advantage is None:
            from rlhf_lightning.algorithms.advantages import GAE

            advantage = GAE()
        self.estimator = advantage
        n = generation.num_return_sequences
        require(self, "generation.num_return_sequences", n >= 2 or not advantage.needs_groups,
                f"must be >= 2: {type(advantage).__name__} compares samples of one prompt", n)
        self.policy_spec, self.reference_spec, self.critic_spec = policy, reference, critic
        self.kl, self.ppo, self.shaping, self.generation = kl, ppo, shaping, generation
        self.val_generation = val_generation or replace(generation, do_sample=False, num_return_sequences=1)
        self.predict_generation = val_generation or generation
        self.kl_ctl = (AdaptiveKLController(kl.coef, kl.target, kl.horizon) if kl.target is not None
                       else FixedKLController(kl.coef))
        self.optimizer_fn, self.scheduler_fn = optimizer, scheduler
        self.model = self.tokenizer = self.reference_model = self.value_head = self.critic_model = None
        self.rollouts_done = 0
        self.optimizer_steps = 0
        self._pending_rng: Optional[dict] = None

    # -- models ----------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.model is not None:
            return
        from rlhf_lightning.models.loading import load_sequence_classifier

        self.tokenizer, self.model = load_policy(self.policy_spec)
        disable_dropout_(self.model)  # old, new and reference log-probs must be one distribution
        self.reference_model = build_reference(self.model, self.reference_spec, self.tokenizer)
        if self.estimator.needs_critic:
            if self.critic_spec.model is None:
                self.value_head = ValueHead(hidden_size_of(self.model))
            else:
                with option_errors("model.init_args.critic.model"):
                    self.critic_model = load_sequence_classifier(self.critic_spec.model, num_labels=1,
                                                                 tokenizer=self.tokenizer)
                disable_dropout_(self.critic_model)
        onednn.route_if((self.model, self.reference_model, self.critic_model), self.ppo.onednn)  # ppo.onednn

    @property
    def temperature(self) -> float:
        return self.generation.temperature if self.generation.do_sample else 1.0

    @property
    def ref_model(self) -> Optional[torch.nn.Module]:
        """The separate reference model, by its name before issue #17 (now ``reference_model``, as DPO's)."""
        return self.reference_model

    def train(self, mode: bool = True):  # keep the frozen reference in eval mode
        super().train(mode)
        if self.reference_model is not None:
            self.reference_model.eval()
        return self

    @contextlib.contextmanager
    def reference(self):
        """The module that computes reference log-probs (no gradients, eval mode)."""
        with reference_forward(self.model, self.reference_model) as ref:
            yield ref

    def critic_values(self, rollout: Rollout, rows=None, hidden=None) -> Optional[torch.Tensor]:
        """Values ``(n, C)`` of ``rows`` of ``rollout`` (``hidden``: the policy's, for a value head); None without critic."""
        if self.value_head is not None:
            return self.value_head(hidden).float()
        if self.critic_model is not None:
            idx = slice(None) if rows is None else rows
            return separate_critic_values(self.critic_model, rollout.input_ids[idx], rollout.attention_mask[idx],
                                          rollout.position_ids[idx], rollout.prompt_width)
        return None

    def on_fit_start(self) -> None:
        check_generation_budget(self)
        check_plugin_setup([p.plugin for p in self.reward_plugins] + [r.checker for r in self.constraint_rules],
                           self.device)

    def on_validation_start(self) -> None:
        if not self.trainer.training:
            self.on_fit_start()

    # -- experience ------------------------------------------------------------------------------
    def make_experience(self, batch: dict[str, Any]) -> tuple[Experience, dict[str, float]]:
        """Generate, score and shape one prompt batch (see :func:`~rlhf_lightning.modules.ppo.experience.
        make_experience`); returns the experience and its metrics."""
        return make_experience(self, batch)

    # -- update ----------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        r, logs = self.make_experience(batch)
        loss_mask = r.loss_mask
        logs["all_skipped"] = float(not bool(loss_mask.any()))
        if any_across(self._trainer, loss_mask.any()):  # processes must agree: the update has collectives
            logs.update(self.update(r))
        else:
            rank_zero_warn(f"training step {self.global_step}: every sample of the rollout was skipped "
                           "(constraint violations or invalid rewards); no update this step")
        self.rollouts_done += 1
        logs["optimizer_steps"] = float(self.optimizer_steps)
        self.log_dict({f"train/{k}" if not k.startswith("constraint/") else k: float(v) for k, v in logs.items()},
                      on_step=True, on_epoch=False, batch_size=len(r))
        self.log("train/reward_mean", logs["reward"], prog_bar=True, on_step=True, batch_size=len(r))
        every = self.hparams.log_samples_every_n_steps
        if every and self.rollouts_done % every == 1 % every:
            log_samples(self, r)

    def update(self, r: Experience) -> dict[str, float]:
        """``ppo.epochs × ppo.num_minibatches`` optimizer steps on one rollout; returns mean metrics."""
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        n, k = len(r), self.ppo.num_minibatches
        if k > n:
            raise ConfigError(f"ppo.num_minibatches={k} is more than the {n} samples of a rollout batch")
        sums: dict[str, float] = {}
        steps = skipped = 0
        loss_mask = r.loss_mask
        for _ in range(self.ppo.epochs):
            order = torch.randperm(n, device=r.input_ids.device)
            for rows in order.tensor_split(k):
                # all skipped (on every process): an Adam step on a zero gradient would still move
                if not any_across(self._trainer, loss_mask[rows].any()):
                    skipped += 1
                    continue
                for key, value in self._minibatch_step(r, rows, optimizer).items():
                    sums[key] = sums.get(key, 0.0) + value
                steps += 1
                if scheduler is not None:
                    scheduler.step()
        out = {key: value / max(steps, 1) for key, value in sums.items()}
        out["skipped_minibatches"] = float(skipped)
        return out

    def minibatch_loss(self, r: Experience, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of minibatch ``rows`` of rollout ``r``: clipped surrogate (+ value loss, KL, entropy)."""
        mask = r.loss_mask[rows]
        logps, logits, hidden = forward_completion(self.model, r, rows, temperature=self.temperature,
                                                   hidden=self.value_head is not None)
        p = self.ppo
        num, den, metrics = policy_loss_terms(logps, r.old_logps[rows], r.advantages[rows], mask, p.clip_eps,
                                              p.clip_eps_high, p.dual_clip, p.aggregation)
        loss = self._global_mean(num, den)
        out = {"policy_loss": float(num.detach() / den.clamp(min=1))}
        out.update({f"policy/{k}": float(v) for k, v in metrics.items()})
        with torch.set_grad_enabled(p.entropy_coef > 0):
            ent_sum = masked_sum(entropy_from_logits(logits / self.temperature), mask)
        n_tok = masked_count(mask, like=logps)
        out["entropy"] = float(ent_sum.detach() / n_tok.clamp(min=1))
        if p.entropy_coef > 0:
            loss = loss - p.entropy_coef * self._global_mean(ent_sum, n_tok)
        if r.values is not None:
            values = self.critic_values(r, rows, hidden)
            v_num, v_den, v_metrics = value_loss_terms(values, r.values[rows], r.returns[rows], mask,
                                                       self.critic_spec.value_clip, p.aggregation)
            loss = loss + self.critic_spec.coef * self._global_mean(v_num, v_den)
            out["value_loss"] = float(v_num.detach() / v_den.clamp(min=1))
            out.update({f"value/{k}": float(v) for k, v in v_metrics.items()})
        if self.kl.apply_to == "loss":
            kl_sum = masked_sum(kl_estimate(logps, r.ref_logps[rows], self.kl.estimator), mask)
            loss = loss + self.kl_ctl.value * self._global_mean(kl_sum, n_tok)
            out["kl_loss"] = float(kl_sum.detach() / n_tok.clamp(min=1))
        out["loss"] = float(loss.detach())
        return loss, out

    def _global_mean(self, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
        """``numerator / Σ_ranks denominator``, times the number of processes whose gradients are
        averaged: the gradient is that of the minibatch mean over all processes' rows."""
        total = sum_across(self._trainer, denominator).clamp(min=1)
        return numerator * world_size(self._trainer) / total

    def _minibatch_step(self, r: Experience, rows: torch.Tensor, optimizer) -> dict[str, float]:
        loss, out = self.minibatch_loss(r, rows)
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.ppo.max_grad_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.ppo.max_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        self.optimizer_steps += 1
        return out

    def configure_optimizers(self):
        policy = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("critic_model.")
                  and not n.startswith("value_head.")]
        critic = [p for n, p in self.named_parameters() if p.requires_grad and (n.startswith("critic_model.")
                                                                                 or n.startswith("value_head."))]
        groups: Any = policy + critic
        if critic and self.critic_spec.lr is not None:
            groups = [{"params": policy}, {"params": critic, "lr": self.critic_spec.lr}]
        return configure_stage_optimizers(self, self.optimizer_fn, self.scheduler_fn, params=groups,
                                          steps_per_batch=self.ppo.epochs * self.ppo.num_minibatches)

    # -- validation ------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Completions of held-out prompts (``val_generation``): rewards, costs, KL to the reference, length."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.hparams.val_seed + 1_000_003 * self.global_rank + batch_idx)
            r = sample(self.model, self.tokenizer, batch, self.val_generation)
        components, _ = score(self.reward_plugins, r)
        total = weighted_total(components, self.reward_plugins, len(r), r.input_ids.device)
        logps, _, _ = forward_completion(self.model, r)
        with self.reference() as ref:
            ref_logps, _, _ = forward_completion(ref, r)
        bs = len(r)
        self.log("val/reward", total.mean(), batch_size=bs, prog_bar=True)
        for name, values in components.items():
            self.log(f"val/reward/{name}", values.mean(), batch_size=bs)
        self.log("val/kl", masked_sum(logps - ref_logps, r.mask, dim=-1).mean(), batch_size=bs)
        self.log("val/response_length", r.mask.sum(-1).float().mean(), batch_size=bs)
        if self.constraint_rules:
            named = list(zip(self.constraint_names, self.constraint_rules, strict=True))
            costs, _ = score([NamedPlugin(nm, rule.checker) for nm, rule in named], r, what="cost")
            for nm, rule in named:
                rate = torch.tensor(rule.checker.violated(costs[nm].tolist()), dtype=torch.float32).mean()
                self.log(f"val/constraint/{nm}/violation_rate", rate, batch_size=bs)

    # -- prediction ------------------------------------------------------------------------------
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Answers to ``data.predict`` prompts, decoded with ``val_generation`` if set, else ``generation``."""
        return generate_predictions(self.model, self.tokenizer, batch, self.predict_generation)

    # -- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_stage_state(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_stage_state(self, checkpoint)

    # -- export ----------------------------------------------------------------------------------
    def export_hf(self, dirpath: str, *, merge_lora: bool = False) -> Optional[str]:
        """Write the policy (not the critic) as a Hugging Face folder."""
        return export_stage_model(self, dirpath, merge_lora=merge_lora)

