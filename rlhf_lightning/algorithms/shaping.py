"""Reward shaping for online RL: sequence scores → token-level rewards with a per-token KL penalty.

Math layer: imports torch only.

Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences", §2.2, eq. 2) and
InstructGPT (Ouyang et al. 2022, eq. 2) optimise ``R(x, y) = r(x, y) − β·log(π(y|x) / π_ref(y|x))``.
Spread over the completion tokens, the log-ratio term becomes a per-token penalty ``−β·KL_t`` and
the reward model's score ``r(x, y)`` lands on the last completion token.
"""

from __future__ import annotations

import torch
from torch import Tensor


def last_token_index(mask: Tensor) -> Tensor:
    """Index of the last set entry of each row of ``mask``.

    Works for any mask layout (right padding, left padding, holes): it is the largest ``t`` with
    ``mask[b, t] = 1``.

    Args:
        mask: ``(B, T)`` bool or 0/1.
    Returns:
        ``(B,)`` long; **−1** for a row with no set entry (no error: checking would need a device
        sync; :func:`shape_rewards` drops the score of such a row).
    """
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    return torch.where(mask.to(torch.bool), positions, -1).amax(dim=-1)


def shape_rewards(scores: Tensor, mask: Tensor, kl: Tensor | None = None, kl_coef: float | Tensor = 0.0) -> Tensor:
    """Token-level rewards ``r_t = −kl_coef·kl_t + [t = last]·score`` on completion tokens, 0 on padding.

    Args:
        scores: ``(B,)`` sequence scores (reward model / reward functions, after clipping and
            penalties), added at each row's last completion token (:func:`last_token_index`).
        mask: ``(B, T)`` bool or 0/1, 1 on completion tokens.
        kl: ``(B, T)`` per-token KL estimates (:func:`rlhf_lightning.algorithms.kl.kl_estimate`) or
            ``None`` for no penalty. Values at padding are ignored (may be ``inf``/``nan``).
        kl_coef: the penalty coefficient ``β`` (from a KL controller).
    Returns:
        ``(B, T)`` float rewards (at least float32, no gradient); exactly 0 where ``mask`` is 0. A
        row with no completion token gets all zeros (its score is dropped).
    """
    keep = mask.to(torch.bool)
    dtype = torch.promote_types(scores.dtype, torch.float32)
    rewards = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    if kl is not None and (isinstance(kl_coef, Tensor) or kl_coef != 0.0):
        penalty = -kl_coef * kl.detach().to(dtype)
        rewards = torch.where(keep, penalty, rewards)
    last = last_token_index(keep)
    has_token = last >= 0
    add = torch.where(has_token, scores.detach().to(dtype), torch.zeros((), dtype=dtype, device=mask.device))
    return rewards.scatter_add(1, last.clamp(min=0).unsqueeze(1), add.unsqueeze(1))


def clip_scores(scores: Tensor, clip: float | None) -> Tensor:
    """Clamp scores to ``[−clip, clip]`` (``None``: unchanged). ``scores``: ``(B,)`` → ``(B,)``."""
    if clip is None:
        return scores
    if clip <= 0:
        raise ValueError(f"score clip must be > 0, got {clip}")
    return scores.clamp(-clip, clip)


def missing_eos_penalty(scores: Tensor, has_eos: Tensor, penalty: float | None) -> Tensor:
    """Subtract ``penalty`` from the score of each completion that generated no EOS token.

    Truncated completions (hit ``max_new_tokens``) are otherwise scored as if finished; a fixed
    penalty discourages rambling (the "missing EOS penalty" of common PPO recipes).

    Args:
        scores: ``(B,)`` float.
        has_eos: ``(B,)`` bool, ``True`` where the completion ended with EOS.
        penalty: amount to subtract (``None``: unchanged).
    Returns:
        ``(B,)``: ``scores − penalty·[not has_eos]``.
    """
    if penalty is None:
        return scores
    return scores - penalty * (~has_eos.to(torch.bool)).to(scores.dtype)
