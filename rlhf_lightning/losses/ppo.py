"""PPO policy and value losses, and the entropy of token distributions.

Math layer: imports torch only (and the masked reductions / KL estimators of the same layer).

Every loss comes in two forms:

- ``*_terms(...) -> (numerator, denominator, metrics)``: the summed loss and its normaliser, so the
  stage can add numerators and denominators over gradient-accumulation micro-batches and
  data-parallel ranks and divide once (DESIGN style rule 7): the update then does not depend on
  how the global batch was split.
- ``policy_loss`` / ``value_loss``: ``numerator / max(denominator, 1)`` for one (micro-)batch.

Aggregations (``aggregation``), with ``ℓ_{i,t}`` the per-token loss and ``L_i`` sample ``i``'s
number of completion tokens:

- ``"token_mean"``: ``Σ_{i,t} ℓ_{i,t} / Σ_i L_i`` — numerator the token sum, denominator the
  token count (DAPO's token-level loss, Yu et al. 2025 §3.3).
- ``"seq_mean_token_mean"``: ``mean_i (Σ_t ℓ_{i,t} / L_i)`` — numerator the sum of per-sequence
  means, denominator the number of sequences (GRPO's original form, Shao et al. 2024 eq. 3).
- ``"seq_mean_token_sum"``: ``mean_i Σ_t ℓ_{i,t}`` — numerator the sum of per-sequence sums,
  denominator the number of sequences.

Sequences with no completion token are not counted (they contribute 0 to both terms).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from rlhf_lightning.algorithms.kl import kl_estimate
from rlhf_lightning.algorithms.masked import masked_mean, masked_sum

Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"]
AGGREGATIONS: tuple[str, ...] = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum")

#: log-ratios are clamped to ±this before ``exp`` so a far-drifted token cannot overflow to inf.
LOG_RATIO_CLAMP = 20.0


def aggregate_terms(per_token: Tensor, mask: Tensor, aggregation: Aggregation = "token_mean") -> tuple[Tensor, Tensor]:
    """``(numerator, denominator)`` of a per-token loss ``(B, T)`` under ``aggregation`` (see module docstring).

    Returns two scalar tensors; the denominator is a float count (token or sequence count) and
    carries no gradient.
    """
    keep = mask.to(torch.bool)
    lengths = keep.sum(dim=-1)
    if aggregation == "token_mean":
        return masked_sum(per_token, keep), lengths.sum().to(per_token.dtype)
    has_tokens = lengths > 0
    n_seqs = has_tokens.sum().to(per_token.dtype)
    seq_sums = masked_sum(per_token, keep, dim=-1)
    if aggregation == "seq_mean_token_sum":
        return seq_sums.sum(), n_seqs
    if aggregation == "seq_mean_token_mean":
        return (seq_sums / lengths.clamp(min=1).to(per_token.dtype)).sum(), n_seqs
    raise ValueError(f"Unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}")


def _mean(numerator: Tensor, denominator: Tensor) -> Tensor:
    return numerator / denominator.clamp(min=1)


def policy_loss_terms(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float = 0.2,
                      clip_eps_high: float | None = None, dual_clip: float | None = None,
                      aggregation: Aggregation = "token_mean") -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate as ``(numerator, denominator, metrics)`` (Schulman et al. 2017, eq. 7).

    Per completion token, with ``ρ = exp(logps − old_logps)`` and advantage ``A``::

        ℓ = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high))          (eq. 7, negated)
        ℓ = min(ℓ, −c·A)   where A < 0, if dual_clip = c          (Ye et al. 2020, eq. 5)

    - ``ε_low = clip_eps``; ``ε_high = clip_eps_high`` if given, else ``clip_eps``. A larger
      ``ε_high`` is DAPO's "clip-higher" (Yu et al. 2025, §3.1): low-probability tokens with
      ``A > 0`` may grow further before the gradient stops.
    - Dual clip (``c > 1``): for ``A < 0`` the plain surrogate's loss ``−A·ρ`` is unbounded as
      ``ρ → ∞``; Ye et al. bound the objective below by ``c·A``, i.e. the loss above by
      ``−c·A = c·|A|``. Where the bound is active the loss is constant in ``ρ`` (no gradient). It
      never touches ``A ≥ 0`` tokens.

    Log-ratios are clamped to ±20 before ``exp`` (overflow guard), and padding positions are
    selected away before any arithmetic, so ``-inf``/``nan`` log-probs at padding are harmless.

    Args:
        logps: ``(B, T)`` log-probs of the sampled tokens under the current policy (with grad).
        old_logps: ``(B, T)`` the same under the policy that generated them (no grad).
        advantages: ``(B, T)`` (no grad).
        mask: ``(B, T)`` bool or 0/1, 1 on completion tokens.
        clip_eps: ``ε_low`` (and ``ε_high`` when ``clip_eps_high`` is None), ``> 0``.
        clip_eps_high: ``ε_high`` (DAPO clip-higher) or None.
        dual_clip: ``c > 1`` or None.
        aggregation: see the module docstring.
    Returns:
        ``(numerator, denominator, metrics)``: scalars; the loss is ``numerator / denominator``.
        ``metrics`` (detached scalars, means over this batch's masked tokens):
        ``clipfrac`` (share of tokens where the ratio clip is active, i.e. the clipped term is
        strictly the larger loss), ``dual_clipfrac`` (share where the dual clip is active; 0
        without it), ``approx_kl`` (k3 estimate of ``KL(π_old ‖ π)`` from the sampled tokens,
        :func:`~rlhf_lightning.algorithms.kl.kl_estimate`), ``ratio_mean``.
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    if clip_eps <= 0 or eps_high <= 0:
        raise ValueError(f"clip_eps and clip_eps_high must be > 0, got {clip_eps}, {clip_eps_high}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (Ye et al. 2020), got {dual_clip}")
    keep = mask.to(torch.bool)
    dtype = torch.promote_types(logps.dtype, torch.float32)
    log_ratio = torch.where(keep, logps.to(dtype) - old_logps.detach().to(dtype), 0.0)
    log_ratio = log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    adv = torch.where(keep, advantages.detach().to(dtype), 0.0)

    loss_unclipped = -adv * ratio
    loss_clipped = -adv * ratio.clamp(1.0 - clip_eps, 1.0 + eps_high)
    per_token = torch.maximum(loss_unclipped, loss_clipped)
    clipped = loss_clipped > loss_unclipped
    if dual_clip is not None:
        bound = -dual_clip * adv
        dual_active = (adv < 0) & (per_token > bound)
        per_token = torch.where(dual_active, bound, per_token)
    else:
        dual_active = torch.zeros_like(keep)

    numerator, denominator = aggregate_terms(per_token, keep, aggregation)
    with torch.no_grad():
        metrics = {
            "clipfrac": masked_mean(clipped.to(dtype), keep),
            "dual_clipfrac": masked_mean(dual_active.to(dtype), keep),
            # k3 with r = π/π_old (log r = log_ratio): KL(π_old ‖ π) from the tokens π_old sampled.
            "approx_kl": masked_mean(kl_estimate(torch.zeros_like(log_ratio), log_ratio, "k3"), keep),
            "ratio_mean": masked_mean(ratio, keep),
        }
    return numerator, denominator, metrics


def policy_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float = 0.2,
                clip_eps_high: float | None = None, dual_clip: float | None = None,
                aggregation: Aggregation = "token_mean") -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped-surrogate loss of one (micro-)batch: :func:`policy_loss_terms`'s ``numerator / denominator``.

    Shapes, arguments and metrics as in :func:`policy_loss_terms`; returns ``(loss scalar, metrics)``.
    """
    numerator, denominator, metrics = policy_loss_terms(logps, old_logps, advantages, mask, clip_eps,
                                                        clip_eps_high, dual_clip, aggregation)
    return _mean(numerator, denominator), metrics


def value_loss_terms(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float | None = 0.2,
                     aggregation: Aggregation = "token_mean") -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Clipped value loss as ``(numerator, denominator, metrics)`` (PPO2 value clipping).

    Per completion token, with ``V`` the new value, ``V_old`` the rollout's value and ``G`` the
    return target::

        V_clip = V_old + clip(V − V_old, −clip, clip)
        ℓ = ½ · max((V − G)², (V_clip − G)²)          (clip=None: ℓ = ½ (V − G)²)

    Taking the larger error means a value that moved more than ``clip`` away from ``V_old`` gets
    no gradient pulling it further (the PPO2 baselines' trust region for the critic).

    Args:
        values: ``(B, T)`` current critic values (with grad). old_values: ``(B, T)`` rollout values.
        returns: ``(B, T)`` targets (e.g. from :func:`~rlhf_lightning.algorithms.advantages.gae_advantages`).
        mask: ``(B, T)``. clip: clip range (> 0) or None. aggregation: see the module docstring.
    Returns:
        ``(numerator, denominator, metrics)``; ``metrics["vf_clipfrac"]``: share of masked tokens where
        the clipped error is strictly the larger one.
    """
    keep = mask.to(torch.bool)
    dtype = torch.promote_types(values.dtype, torch.float32)
    v = torch.where(keep, values.to(dtype), 0.0)
    v_old = torch.where(keep, old_values.detach().to(dtype), 0.0)
    target = torch.where(keep, returns.detach().to(dtype), 0.0)
    err_unclipped = (v - target).square()
    if clip is None:
        per_token = 0.5 * err_unclipped
        clipped = torch.zeros_like(keep)
    else:
        if clip <= 0:
            raise ValueError(f"value clip must be > 0 or None, got {clip}")
        v_clipped = v_old + (v - v_old).clamp(-clip, clip)
        err_clipped = (v_clipped - target).square()
        per_token = 0.5 * torch.maximum(err_unclipped, err_clipped)
        clipped = err_clipped > err_unclipped
    numerator, denominator = aggregate_terms(per_token, keep, aggregation)
    return numerator, denominator, {"vf_clipfrac": masked_mean(clipped.to(dtype), keep).detach()}


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float | None = 0.2,
               aggregation: Aggregation = "token_mean") -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss of one (micro-)batch: :func:`value_loss_terms`'s ``numerator / denominator``."""
    numerator, denominator, metrics = value_loss_terms(values, old_values, returns, mask, clip, aggregation)
    return _mean(numerator, denominator), metrics


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution at each position: ``H = logsumexp(z) − Σ_v softmax(z)_v · z_v``.

    The identity ``−Σ p log p = logsumexp(z) − Σ p z`` avoids ``log`` of underflowed
    probabilities; it is evaluated on ``z − max(z)`` (shift-invariant), so large logits lose no
    precision to cancellation. ``-inf`` logits (tokens
    excluded by top-k / top-p masks) have ``p = 0`` and are replaced by 0 inside the sum, so they
    give neither ``nan`` values nor ``nan`` gradients. Computed in at least float32.

    Args:
        logits: ``(B, T, V)``.
    Returns:
        ``(B, T)`` entropies in nats.
    """
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))
    # Shift by the (constant) max first: H is shift-invariant, and with z ≈ 1e4 the difference
    # logsumexp(z) − Σ p z would otherwise cancel catastrophically in float32.
    z = z - z.amax(dim=-1, keepdim=True).detach()
    probs = torch.softmax(z, dim=-1)
    z_finite = torch.where(torch.isfinite(z), z, 0.0)
    return torch.logsumexp(z, dim=-1) - (probs * z_finite).sum(dim=-1)
