"""Advantage estimators (group ``rlhf_lightning.advantage_estimators``): GAE, GRPO, RLOO, REINFORCE++.

Math layer: imports torch only. Each estimator class holds only its hyperparameters and calls a
pure function of tensors defined here; see :class:`~rlhf_lightning.algorithms.base.AdvantageEstimator`
for the call contract. All functions treat their inputs as constants (they detach them) and return
float tensors (at least float32) that are exactly 0 where the mask is 0.

Time steps are the *set* entries of the mask, in order: for a right-padded completion that is the
usual ``0 … L−1``; a masked hole in the middle of a row (e.g. tool output that the policy did not
generate) is skipped, so the token after the hole is the "next" step of the token before it. After
a row's last set entry the bootstrap value is 0 (the episode ends with the completion).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlhf_lightning.algorithms.base import AdvantageEstimator
from rlhf_lightning.algorithms.masked import masked_sum, whiten
from rlhf_lightning.option_checks import in_range, positive


def _float(x: Tensor) -> Tensor:
    return x.detach().to(torch.promote_types(x.dtype, torch.float32))


def _check_gamma_lam(owner: object, gamma: float, lam: float = 1.0) -> None:
    in_range(owner, "gamma", gamma, 0.0, 1.0)
    in_range(owner, "lam", lam, 0.0, 1.0)


def gae_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float,
                   lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, "High-Dimensional Continuous Control
    Using GAE", eq. 11–16).

    Over the set entries ``t`` of each row (see the module docstring), with ``t'`` the next set
    entry and ``V(t') = 0`` after the last one::

        δ_t = r_t + γ·V(t') − V(t)              (eq. 11, TD residual)
        Â_t = δ_t + γλ·Â_{t'}                    (eq. 16, Â = Σ_l (γλ)^l δ_{t+l})
        returns_t = Â_t + V(t)                   (the λ-return, the critic's target)

    Computed by one reverse sweep over ``T`` (each step a ``(B,)`` vector operation).

    Args:
        rewards: ``(B, T)`` token-level rewards.
        values: ``(B, T)`` critic values ``V(t)`` of the states before each completion token.
        mask: ``(B, T)`` bool or 0/1, 1 on completion tokens.
        gamma: discount ``γ ∈ [0, 1]``.
        lam: GAE ``λ ∈ [0, 1]`` (``λ = 1``: Monte-Carlo returns minus ``V``; ``λ = 0``: one-step TD).
    Returns:
        ``(advantages, returns)``, both ``(B, T)``, 0 where ``mask`` is 0.
    """
    _check_gamma_lam(None, gamma, lam)
    keep = mask.to(torch.bool)
    r = torch.where(keep, _float(rewards), 0.0)
    v = torch.where(keep, _float(values).to(r.dtype), 0.0)
    advantages = torch.zeros_like(r)
    next_value = torch.zeros_like(r[:, 0])
    next_adv = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        m = keep[:, t]
        adv_t = r[:, t] + gamma * next_value - v[:, t] + gamma * lam * next_adv
        advantages[:, t] = torch.where(m, adv_t, 0.0)
        next_value = torch.where(m, v[:, t], next_value)  # holes carry the later step through
        next_adv = torch.where(m, adv_t, next_adv)
    returns = torch.where(keep, advantages + v, 0.0)
    return advantages, returns


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float = 1.0) -> Tensor:
    """Returns-to-go ``G_t = Σ_{k ≥ t} γ^{k−t} r_k`` over the set entries of each row.

    Args:
        rewards: ``(B, T)``; mask: ``(B, T)`` bool or 0/1; gamma: ``γ ∈ [0, 1]``.
    Returns:
        ``(B, T)``, 0 where ``mask`` is 0. Equal to :func:`gae_advantages` with ``V = 0`` and ``λ = 1``.
    """
    _check_gamma_lam(None, gamma)
    keep = mask.to(torch.bool)
    r = torch.where(keep, _float(rewards), 0.0)
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        m = keep[:, t]
        g_t = r[:, t] + gamma * running
        out[:, t] = torch.where(m, g_t, 0.0)
        running = torch.where(m, g_t, running)
    return out


def sequence_rewards(rewards: Tensor, mask: Tensor) -> Tensor:
    """Undiscounted return of each completion: ``(B, T)`` token rewards → ``(B,)`` sums over the mask."""
    return masked_sum(_float(rewards), mask, dim=-1)


def group_mean_std(x: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample mean, std and size of the sample's group.

    Args:
        x: ``(B,)`` float.
        group_ids: ``(B,)`` integer id per sample (any values, any order; equal id = same prompt).
    Returns:
        ``(mean, std, count)``, each ``(B,)``: the statistics of the group each sample belongs to.
        ``std`` is the sample (Bessel-corrected, ``n − 1``) standard deviation, 0 for a group of one.
    """
    if group_ids.shape != x.shape:
        raise ValueError(f"group_ids must have shape {tuple(x.shape)} (one id per sample), "
                         f"got {tuple(group_ids.shape)}")
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    counts = counts.to(x.dtype)
    sums = torch.zeros_like(counts).index_add_(0, inverse, x)
    mean = (sums / counts)[inverse]
    sq = torch.zeros_like(counts).index_add_(0, inverse, (x - mean).square())
    std = (sq / (counts - 1).clamp(min=1)).sqrt()[inverse]
    return mean, std, counts[inverse]


def _require_groups(name: str, group_ids: Tensor | None) -> Tensor:
    if group_ids is None:
        raise ValueError(f"{name} needs group_ids (the prompt id of each sample); the stage must sample "
                         "several completions per prompt and pass them")
    return group_ids


def grpo_advantages(rewards: Tensor, mask: Tensor, group_ids: Tensor, scale_by_std: bool = True,
                    eps: float = 1e-4) -> Tensor:
    """Group-relative advantages with outcome supervision (Shao et al. 2024, DeepSeekMath §4.1.2).

    ``R_i = Σ_t r_{i,t}`` (the sequence reward), then over the samples of ``i``'s group (same
    prompt)::

        Â_i = (R_i − mean_group(R)) / (std_group(R) + eps)    (scale_by_std=True, GRPO)
        Â_i =  R_i − mean_group(R)                             (scale_by_std=False, Dr. GRPO,
                                                                 Liu et al. 2025 §3.1)

    broadcast to every completion token of sample ``i``. ``std`` is the Bessel-corrected sample
    std. A group of size 1 gets advantage 0 (``R_i`` is its own mean: no learning signal), as does
    a group whose rewards are all equal.

    Args:
        rewards: ``(B, T)`` token rewards (usually just the score on the last token; GRPO puts the
            KL term in the loss, not the reward). mask: ``(B, T)``. group_ids: ``(B,)`` int.
    Returns:
        ``(B, T)`` advantages, 0 where ``mask`` is 0.
    """
    seq = sequence_rewards(rewards, mask)
    mean, std, _ = group_mean_std(seq, group_ids)
    adv = seq - mean
    if scale_by_std:
        adv = adv / (std + eps)
    return torch.where(mask.to(torch.bool), adv.unsqueeze(-1), 0.0)


def rloo_advantages(rewards: Tensor, mask: Tensor, group_ids: Tensor) -> Tensor:
    """REINFORCE leave-one-out advantages (Kool et al. 2019; Ahmadian et al. 2024, eq. 9).

    With ``R_i = Σ_t r_{i,t}`` and ``n`` the size of ``i``'s group::

        Â_i = R_i − 1/(n−1) · Σ_{j≠i} R_j  =  n/(n−1) · (R_i − mean_group(R))

    broadcast to every completion token of sample ``i``.

    Args:
        rewards: ``(B, T)`` token rewards (the KL penalty included, as in Ahmadian et al.).
        mask: ``(B, T)``. group_ids: ``(B,)`` int.
    Returns:
        ``(B, T)`` advantages, 0 where ``mask`` is 0.
    Raises:
        ValueError: a group has a single sample (the leave-one-out baseline needs ≥ 2 samples per
            prompt).
    """
    seq = sequence_rewards(rewards, mask)
    mean, _, n = group_mean_std(seq, group_ids)
    if bool((n < 2).any()):
        lonely = torch.unique(group_ids[n < 2]).tolist()
        raise ValueError(f"RLOO needs >= 2 samples per prompt (group), but group(s) {lonely[:10]} have one; "
                         "sample several completions per prompt")
    adv = n / (n - 1) * (seq - mean)
    return torch.where(mask.to(torch.bool), adv.unsqueeze(-1), 0.0)


def reinforce_pp_advantages(rewards: Tensor, mask: Tensor, gamma: float = 1.0,
                            whiten_advantages: bool = True) -> Tensor:
    """REINFORCE++ advantages (Hu 2025, "REINFORCE++", §3): whitened returns-to-go, no critic.

    ``r_t`` already holds the per-token KL penalty ``−β·KL_t`` and the score at the last token
    (:func:`~rlhf_lightning.algorithms.shaping.shape_rewards`); then::

        G_t = Σ_{k ≥ t} γ^{k−t} r_k
        Â_t = (G_t − μ) / σ     (μ, σ over all completion tokens of the batch)

    Args:
        rewards: ``(B, T)``; mask: ``(B, T)``; gamma: ``γ ∈ [0, 1]``;
        whiten_advantages: batch-normalise (the paper's "global advantage normalisation").
    Returns:
        ``(B, T)`` advantages, 0 where ``mask`` is 0.
    """
    returns = discounted_returns(rewards, mask, gamma)
    return whiten(returns, mask) if whiten_advantages else returns


class GAE(AdvantageEstimator):
    """PPO with a critic: generalised advantage estimation (Schulman et al. 2016), batch-whitened advantages.

    Returns ``(advantages, returns)``: ``returns`` (the critic's targets) are computed from the
    advantages *before* whitening.
    """

    needs_critic = True
    needs_groups = False

    def __init__(self, gamma: float = 1.0, lam: float = 0.95, whiten: bool = True) -> None:
        super().__init__()
        _check_gamma_lam(self, gamma, lam)
        self.gamma = gamma
        self.lam = lam
        self.whiten = whiten

    def __call__(self, rewards: Tensor, mask: Tensor, values: Tensor | None = None,
                 group_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if values is None:
            raise ValueError("GAE needs critic values (needs_critic = True); got values=None")
        advantages, returns = gae_advantages(rewards, values, mask, self.gamma, self.lam)
        if self.whiten:
            advantages = whiten(advantages, mask)
        return advantages, returns


class GRPO(AdvantageEstimator):
    """Group-relative advantages (DeepSeekMath GRPO; ``scale_by_std=False`` is Dr. GRPO), no critic."""

    needs_critic = False
    needs_groups = True

    def __init__(self, scale_by_std: bool = True, eps: float = 1e-4) -> None:
        super().__init__()
        positive(self, "eps", eps)
        self.scale_by_std = scale_by_std
        self.eps = eps

    def __call__(self, rewards: Tensor, mask: Tensor, values: Tensor | None = None,
                 group_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        group_ids = _require_groups("GRPO", group_ids)
        return grpo_advantages(rewards, mask, group_ids, self.scale_by_std, self.eps), None


class RLOO(AdvantageEstimator):
    """REINFORCE leave-one-out: each sample's baseline is the mean reward of the other samples of its prompt."""

    needs_critic = False
    needs_groups = True

    def __call__(self, rewards: Tensor, mask: Tensor, values: Tensor | None = None,
                 group_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        group_ids = _require_groups("RLOO", group_ids)
        return rloo_advantages(rewards, mask, group_ids), None


class ReinforcePlusPlus(AdvantageEstimator):
    """REINFORCE++: discounted token-level returns (KL penalty in the reward), batch-whitened; no critic."""

    needs_critic = False
    needs_groups = False

    def __init__(self, gamma: float = 1.0, whiten: bool = True) -> None:
        super().__init__()
        _check_gamma_lam(self, gamma)
        self.gamma = gamma
        self.whiten = whiten

    def __call__(self, rewards: Tensor, mask: Tensor, values: Tensor | None = None,
                 group_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        return reinforce_pp_advantages(rewards, mask, self.gamma, self.whiten), None
