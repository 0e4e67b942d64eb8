"""Experience making: one prompt batch → one :class:`Experience`, the record the PPO update reads.

:func:`make_experience` runs the steps in order and builds the record once, at the end:

1. sample ``n`` completions per prompt (the policy, KV-cached generation);
2. old log-probs of the completion tokens under the policy (and the critic's values);
3. reference log-probs (frozen copy, separate model, or the policy with its adapter disabled);
4. score: reward plugins, weighted; NaN/inf samples skipped or refused (``shaping.on_invalid``);
5. constraints: ``skip`` / ``penalize`` / ``lagrangian`` (λ ascends on the global mean cost);
6. shape: clip, missing-EOS penalty, whitening, score on the last token, per-token KL penalty;
7. advantages and returns (the ``advantage`` plugin; batch statistics pooled over processes);
8. the KL controller sees the global batch's KL.

Shapes: ``N`` samples (prompts × samples per prompt), ``C`` the completion width. No Lightning here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from rlhf_lightning.algorithms.kl import kl_estimate
from rlhf_lightning.algorithms.lagrangian import lagrangian_scores
from rlhf_lightning.algorithms.masked import masked_mean, masked_sum, masked_var, pooled_statistics, whiten
from rlhf_lightning.algorithms.shaping import clip_scores, missing_eos_penalty, shape_rewards
from rlhf_lightning.modules.data_parallel import mean_across, sum_across
from rlhf_lightning.rollout.samples import Rollout, forward_completion, sample
from rlhf_lightning.rollout.scoring import NamedPlugin, score, weighted_total


@dataclass(kw_only=True)
class Experience(Rollout):
    """The sampled completions (the :class:`~rlhf_lightning.rollout.samples.Rollout` fields) and what the
    update needs about them; built once by :func:`make_experience`."""

    old_logps: Tensor             # (N, C) policy log-probs at sampling time (temperature-scaled)
    ref_logps: Tensor             # (N, C) reference log-probs
    values: Optional[Tensor]      # (N, C) critic values of the states before each token; None without critic
    valid: Tensor                 # (N,) bool: takes part in the update (constraints, invalid rewards)
    advantages: Tensor            # (N, C)
    returns: Optional[Tensor]     # (N, C) value targets; None without critic

    @property
    def loss_mask(self) -> Tensor:
        """Tokens that take part in the update: real tokens of valid samples ``(N, C)``."""
        return self.mask & self.valid[:, None]


def total_reward(plugins: Sequence[NamedPlugin], rollout: Rollout, *,
                 skip_invalid: bool) -> tuple[Tensor, Tensor, dict[str, float]]:
    """The weighted reward ``(N,)``, the invalid samples ``(N,)`` bool (see :func:`~rlhf_lightning.rollout.
    scoring.score`) and the means of each plugin over valid samples. Invalid samples get the valid samples'
    mean reward, so group baselines and whitening stay sane (they are kept out of the update by the caller)."""
    components, invalid = score(plugins, rollout, skip_invalid=skip_invalid)
    total = weighted_total(components, plugins, len(rollout), rollout.input_ids.device)
    ok = ~invalid
    if invalid.any():
        total = torch.where(invalid, total[ok].mean() if ok.any() else 0.0, total)

    def mean(values: Tensor) -> float:
        return float(values[ok].mean()) if ok.any() else float("nan")

    logs = {"reward": mean(total), **{f"reward/{name}": mean(v) for name, v in components.items()},
            "reward/invalid": float(invalid.sum())}
    return total, invalid, logs


def apply_constraints(rules: Sequence[Any], names: Sequence[str], lambdas: dict[str, Any], rollout: Rollout,
                      total: Tensor, valid: Tensor, global_mean) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Apply each :class:`~rlhf_lightning.modules.ppo.config.ConstraintRule`: ``skip`` drops violators
    from ``valid``, ``penalize`` subtracts ``coef · cost`` from ``total``, ``lagrangian`` ascends λ on
    the global mean cost (``global_mean(sum, count)``) and prices the cost with it.
    Returns the new ``(total (N,), valid (N,), logs)``."""
    logs: dict[str, float] = {}
    if not rules:
        return total, valid, logs
    costs, _ = score([NamedPlugin(name, rule.checker) for name, rule in zip(names, rules, strict=True)], rollout,
                     what="cost")
    for name, rule in zip(names, rules, strict=True):
        cost = costs[name]
        violated = torch.tensor(rule.checker.violated(cost.tolist()), dtype=torch.bool, device=cost.device)
        logs[f"constraint/{name}/cost"] = float(cost.mean())
        logs[f"constraint/{name}/violation_rate"] = float(violated.float().mean())
        if rule.mode == "skip":
            valid = valid & ~violated
        elif rule.mode == "penalize":
            total = total - rule.coef * cost
        else:  # lagrangian
            mean_cost = global_mean(cost.sum(), torch.tensor(float(cost.numel())))
            lam = lambdas[name].update(float(mean_cost), rule.checker.threshold)
            total = lagrangian_scores(total, cost, lam, normalize=rule.normalize)
            logs[f"constraint/{name}/lambda"] = lam
    return total, valid, logs


@torch.no_grad()
def make_experience(stage: Any, batch: dict[str, Any]) -> tuple[Experience, dict[str, float]]:
    """Steps 1-8 above for a :class:`~rlhf_lightning.modules.ppo.PPOModule` ``stage`` on one prompt batch;
    returns the experience and its metrics (means over this process's samples)."""
    trainer, shaping, kl = stage._trainer, stage.shaping, stage.kl
    # 1. sample
    r = sample(stage.model, stage.tokenizer, batch, stage.generation)
    # 2. old log-probs (+ values)
    old_logps, _, hidden = forward_completion(stage.model, r, temperature=stage.temperature,
                                              hidden=stage.value_head is not None)
    values = stage.critic_values(r, hidden=hidden)
    # 3. reference log-probs
    with stage.reference() as ref:
        ref_logps, _, _ = forward_completion(ref, r, temperature=stage.temperature)
    # 4. score
    total, invalid, logs = total_reward(stage.reward_plugins, r, skip_invalid=shaping.on_invalid == "skip")
    # 5. constraints
    total, valid, constraint_logs = apply_constraints(
        stage.constraint_rules, stage.constraint_names, stage.lambdas, r, total, ~invalid,
        lambda s, c: mean_across(trainer, s, c))
    logs.update(constraint_logs)
    # 6. shape
    scores = missing_eos_penalty(clip_scores(total, shaping.clip), r.finished, shaping.missing_eos_penalty)
    kl_tok = kl_estimate(old_logps, ref_logps, kl.estimator)
    seq_kl = masked_sum(kl_estimate(old_logps, ref_logps, "k1"), r.mask, dim=-1)
    in_reward = kl_tok if kl.apply_to == "reward" else None
    # 7. advantages; batch statistics (whitening in shaping and in the estimators) over the global batch
    with pooled_statistics(lambda t: sum_across(trainer, t)):
        if shaping.whiten:
            scores = whiten(scores, valid)
        token_rewards = shape_rewards(scores, r.mask, in_reward, stage.kl_ctl.value)
        advantages, returns = stage.estimator(token_rewards, r.mask, values=values, group_ids=r.group_ids)
    exp = Experience(**{f.name: getattr(r, f.name) for f in fields(r)}, old_logps=old_logps, ref_logps=ref_logps,
                     values=values, valid=valid, advantages=advantages.detach(), returns=returns)
    logs.update(experience_metrics(exp, scores, seq_kl, stage.kl_ctl.value))
    # 8. the controller sees the global batch, so every process keeps the same coefficient
    kl_sum, count = sum_across(trainer, torch.stack([seq_kl.sum().double(),
                                                     torch.tensor(float(len(exp)), device=seq_kl.device).double()]))
    stage.kl_ctl.update(float((kl_sum / count.clamp(min=1)).to(seq_kl.dtype)), int(count))
    return exp, logs


def experience_metrics(exp: Experience, scores: Tensor, seq_kl: Tensor, kl_coef: float) -> dict[str, float]:
    """Scalars to log about one experience: score ``(N,)``, sequence KL ``(N,)``, lengths, advantages, critic fit."""
    lengths = exp.mask.sum(-1).float()
    logs = {"score": float(scores.mean()), "kl": float(seq_kl.mean()), "kl_coef": kl_coef,
            "response_length": float(lengths.mean()), "finished_rate": float(exp.finished.float().mean()),
            "empty_rate": float((lengths <= 1).float().mean()),
            "advantage_mean": float(masked_mean(exp.advantages, exp.mask)),
            "skipped_samples": float((~exp.valid).sum())}
    if exp.values is not None and exp.returns is not None:
        var_ret = masked_var(exp.returns, exp.mask)
        logs["explained_variance"] = float(1 - masked_var(exp.returns - exp.values, exp.mask) / var_ret.clamp(min=1e-8))
        logs["value_mean"] = float(masked_mean(exp.values, exp.mask))
    return logs
