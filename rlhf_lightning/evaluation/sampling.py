"""Sample a policy's answers with common random numbers, score them, and measure its KL to the baseline.

Common random numbers: before generating batch ``b`` the global random state is reseeded from
``(seed, b)`` inside a forked random state, so every policy draws from the same stream for the same
prompts (the same batches in the same order), whatever was evaluated before it. Identical models
therefore give identical answers, and differences between policies are not sampling noise of the
stream. Generation and the per-token log-probs are the PPO stage's own
(:mod:`rlhf_lightning.rollout.samples`, which imports no Lightning).

Shapes: ``B`` prompts per batch, ``N`` draws per prompt, ``C`` completion width; a policy's answers
are in prompt-major order, answer ``j`` to prompt ``i`` at row ``i·N + j``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from rlhf_lightning.algorithms.masked import masked_sum
from rlhf_lightning.plugin_output import checked_scores
from rlhf_lightning.rollout.generation import GenerationSpec
from rlhf_lightning.rollout.samples import Rollout, forward_completion, sample

SEED_STRIDE = 1_000_003  # a prime: (seed, batch) pairs map to distinct seeds for any realistic batch count


def batch_seed(seed: int, index: int) -> int:
    """The seed of batch ``index``: a function of ``(seed, index)`` only, never of the policy."""
    return (seed * SEED_STRIDE + index) % 2**63


@dataclass
class PolicySamples:
    """One policy's answers to ``P`` prompts × ``N`` draws (rows in prompt-major order)."""

    completions: list[str] = field(default_factory=list)     # (P·N,) decoded answers
    lengths: list[int] = field(default_factory=list)         # (P·N,) completion tokens, EOS included
    finished: list[bool] = field(default_factory=list)       # (P·N,) ended with a stop token / string
    log_ratios: list[float] = field(default_factory=list)    # (P·N,) log π(y|x) − log π_base(y|x)
    rewards: dict[str, list[float]] = field(default_factory=dict)      # name -> (P·N,)
    costs: dict[str, list[float]] = field(default_factory=dict)        # name -> (P·N,)
    violations: dict[str, list[bool]] = field(default_factory=dict)    # name -> (P·N,)


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def sample_batch(model, tokenizer, batch: dict[str, Any], spec: GenerationSpec, *, seed: int,
                 index: int) -> Rollout:
    """``spec.num_return_sequences`` answers per prompt of a left-padded prompt batch, drawn with the
    global random state reseeded to :func:`batch_seed` ``(seed, index)`` in a forked state (the
    caller's random stream is left as it was)."""
    device = _device_of(model)
    batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(batch_seed(seed, index))
        return sample(model, tokenizer, batch, spec)


@torch.no_grad()
def sequence_logps(model, rollout: Rollout) -> Tensor:
    """``(N,)`` float64 ``Σ_t log π(y_t | x, y_<t)`` over each answer's completion tokens (EOS
    included, padding after it excluded), at temperature 1 whatever the answers were sampled with."""
    logps, _, _ = forward_completion(model, rollout)
    return masked_sum(logps.double(), rollout.mask, dim=-1)


def check_generation(spec: GenerationSpec) -> Optional[str]:
    """None when answers are plain samples from π (``do_sample``, temperature 1, no top-k / top-p,
    no repetition penalty, no minimum length); otherwise why they are not, for the report — the
    KL estimate then averages over answers that π itself would not draw with these frequencies."""
    reasons = []
    if not spec.do_sample:
        reasons.append("greedy decoding (do_sample false)")
    else:
        if spec.temperature != 1.0:
            reasons.append(f"temperature {spec.temperature}")
        if spec.top_k not in (0, None):
            reasons.append(f"top_k {spec.top_k}")
        if spec.top_p != 1.0:
            reasons.append(f"top_p {spec.top_p}")
    if spec.repetition_penalty != 1.0:
        reasons.append(f"repetition_penalty {spec.repetition_penalty}")
    if spec.min_new_tokens:
        reasons.append(f"min_new_tokens {spec.min_new_tokens}")
    if not reasons:
        return None
    return ("answers were not sampled from the policy at temperature 1 (" + ", ".join(reasons) + "), so the KL "
            "figures average the temperature-1 log-ratio over a different distribution than the policy's")


def evaluate_policy(model, tokenizer, batches: Sequence[dict[str, Any]], spec: GenerationSpec, *, seed: int,
                    baseline=None, rewards: Sequence[tuple[str, Any]] = (),
                    constraints: Sequence[tuple[str, Any]] = ()) -> PolicySamples:
    """Sample, score and compare one policy over all prompt ``batches``.

    Args:
        model: the policy (eval mode); ``baseline``: the baseline model, or None when ``model`` IS
            the baseline (its log-ratio to itself is 0 by definition, so no forward pass is spent).
        spec: generation settings; ``num_return_sequences`` = draws per prompt.
        rewards, constraints: ``(name, plugin)`` pairs; every plugin scores every answer
            (through :func:`~rlhf_lightning.plugin_output.checked_scores`: bad output names the plugin).
    """
    out = PolicySamples(rewards={n: [] for n, _ in rewards}, costs={n: [] for n, _ in constraints},
                        violations={n: [] for n, _ in constraints})
    offset = 0
    for index, batch in enumerate(batches):
        r = sample_batch(model, tokenizer, batch, spec, seed=seed, index=index)
        if baseline is None:
            ratio = torch.zeros(len(r), dtype=torch.float64)
        else:
            ratio = sequence_logps(model, r) - sequence_logps(baseline, r)
        out.completions.extend(r.completions)
        out.lengths.extend(r.mask.sum(-1).tolist())
        out.finished.extend(r.finished.tolist())
        out.log_ratios.extend(ratio.tolist())
        for name, plugin in rewards:
            out.rewards[name].extend(checked_scores(plugin, r.prompts, r.completions, r.columns,
                                                    name=f"reward {name!r}", offset=offset))
        for name, checker in constraints:
            costs = checked_scores(checker, r.prompts, r.completions, r.columns, name=f"constraint {name!r}",
                                   what="cost", offset=offset)
            out.costs[name].extend(costs)
            out.violations[name].extend(bool(v) for v in checker.violated(costs))
        offset += len(r)
    return out


def with_draws(spec: GenerationSpec, samples_per_prompt: int) -> GenerationSpec:
    """``spec`` with ``num_return_sequences = samples_per_prompt``."""
    return dataclasses.replace(spec, num_return_sequences=samples_per_prompt)
