"""Reward-model losses: pairwise Bradley–Terry, K-wise rankings (InstructGPT, Plackett–Luce), pointwise.

Math layer: torch only. Every loss takes rewards ``(B, K)`` ordered **best first** (K = 2 for
chosen/rejected pairs; K > 2 for InstructGPT-style rankings; K = 1 for scored / good-bad responses)
with a ``(B, K)`` validity mask (valid responses first), and returns one loss per prompt ``(B,)``.
The stage reduces by the mean over prompts, so data-parallel sharding and gradient accumulation with
equal-sized micro-batches leave the update unchanged.

The pure functions come first; the plugin classes below them only hold hyperparameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rlhf_lightning.losses.base import RewardLoss
from rlhf_lightning.option_checks import non_negative, require

__all__ = [
    "pairwise_logistic_loss", "ranking_pairs", "kwise_ranking_loss", "plackett_luce_loss", "pointwise_mse_loss",
    "binary_logistic_loss", "PairwiseLoss", "KWiseRankingLoss", "PlackettLuceLoss", "MSELoss", "BinaryLoss",
]


# --------------------------------------------------------------------------------------------- #
# Pure functions
# --------------------------------------------------------------------------------------------- #

def pairwise_logistic_loss(chosen: Tensor, rejected: Tensor, margins: Tensor | None = None,
                           center_coefficient: float | None = None) -> Tensor:
    """Bradley–Terry negative log-likelihood of preferring ``chosen`` over ``rejected``, per pair.

    ``loss = -log σ(r_w - r_l - m) + c · (r_w + r_l)²``

    - Bradley & Terry (1952): ``P(w ≻ l) = σ(r_w - r_l)``; as a reward-model loss in Stiennon et
      al. (2020) eq. 1 and Ouyang et al. (2022, InstructGPT) eq. 1 with K = 2.
    - ``m`` (``margins``, ``(B,)``): Llama 2 (Touvron et al. 2023, eq. 2) margin, the preference
      strength the reward gap must exceed; 0 = no margin.
    - ``c`` (``center_coefficient``): the auxiliary term of Eisenstein et al. (2023, "Helping or
      herding?") that keeps rewards centred on 0; TRL's ``center_rewards_coefficient`` (0.01 in
      their paper). ``None`` or 0 = off.

    Shapes: ``chosen``, ``rejected``, ``margins``: ``(B,)`` → ``(B,)``. Uses ``F.logsigmoid`` (stable).
    """
    diff = chosen - rejected
    if margins is not None:
        diff = diff - margins
    loss = -F.logsigmoid(diff)
    if center_coefficient:
        loss = loss + center_coefficient * (chosen + rejected) ** 2
    return loss


def ranking_pairs(mask: Tensor, labels: Tensor | None = None) -> Tensor:
    """Which ordered pairs ``(i, j)``, ``i < j`` (i ranked above j), of each prompt take part: ``(B, K, K)`` bool.

    A pair counts when both responses are valid; with ``labels`` (scores behind the ranking), pairs
    whose labels are equal (ties) are left out: a tie states no preference.
    """
    k = mask.shape[-1]
    upper = torch.ones(k, k, dtype=torch.bool, device=mask.device).triu(diagonal=1)
    pairs = upper & mask.unsqueeze(-1) & mask.unsqueeze(-2)
    if labels is not None:
        tied = labels.unsqueeze(-1) == labels.unsqueeze(-2)  # NaN == NaN is False: unknown scores are no tie
        pairs = pairs & ~tied
    return pairs


def kwise_ranking_loss(rewards: Tensor, mask: Tensor, margins: Tensor | None = None,
                       center_coefficient: float | None = None, labels: Tensor | None = None) -> Tensor:
    """InstructGPT's K-wise loss: the mean pairwise loss over all ``C(K, 2)`` pairs of a ranking.

    ``loss = -1/C(K,2) · Σ_{i<j} log σ(r_{y_i} - r_{y_j} - m) (+ c · (r_{y_i} + r_{y_j})²)``

    Ouyang et al. (2022) eq. 1, with ``y_1 ≻ … ≻ y_K`` (columns best first). Each prompt averages
    over its own pairs (``K_b`` valid responses → ``C(K_b, 2)`` pairs, fewer when ``labels`` tie),
    so one prompt weighs as one comparison, as in the paper; with K = 2 this is exactly
    :func:`pairwise_logistic_loss`. The margin ``m`` of a prompt applies to each of its pairs.

    Shapes: ``rewards``, ``mask``, ``labels``: ``(B, K)``; ``margins``: ``(B,)`` → ``(B,)``. A prompt
    with no pair (one valid response, or all tied) gets loss 0.
    """
    pairs = ranking_pairs(mask, labels)
    hi, lo = rewards.unsqueeze(-1), rewards.unsqueeze(-2)  # (B, K, 1), (B, 1, K): entry (i, j) = r_i vs r_j
    m = margins.view(-1, 1, 1) if margins is not None else None
    per_pair = pairwise_logistic_loss(hi, lo, m, center_coefficient)  # (B, K, K)
    count = pairs.sum(dim=(-1, -2))
    total = torch.where(pairs, per_pair, torch.zeros_like(per_pair)).sum(dim=(-1, -2))
    return total / count.clamp(min=1)


def plackett_luce_loss(rewards: Tensor, mask: Tensor) -> Tensor:
    """Plackett–Luce negative log-likelihood of a full ranking, per prompt.

    ``P(y_1 ≻ … ≻ y_K) = Π_{i=1}^{K-1} exp(r_{y_i}) / Σ_{j ≥ i} exp(r_{y_j})`` (Plackett 1975, Luce
    1959; ListMLE, Xia et al. 2008), so ``loss = -Σ_{i<K} [r_{y_i} - logsumexp_{j≥i} r_{y_j}]``.
    Responses are chosen best first, each against all not yet chosen. For K = 2 it equals
    :func:`pairwise_logistic_loss`. Valid responses must come first (the mask is a prefix).

    Shapes: ``rewards``, ``mask``: ``(B, K)`` → ``(B,)`` (a sum of ``K_b - 1`` stage terms).
    """
    # absent responses get a reward far below every real one (exp underflows to 0): -inf would give
    # NaN gradients through logcumsumexp
    floor = rewards.detach().min() - 1e4
    masked = torch.where(mask, rewards, floor)
    # logsumexp over the suffix j >= i: a reversed cumulative logsumexp
    suffix = torch.logcumsumexp(masked.flip(-1), dim=-1).flip(-1)
    # stage i counts when response i is valid and at least one valid response follows it
    stage = mask & torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=-1)
    terms = torch.where(stage, suffix - rewards, torch.zeros_like(rewards))
    return terms.sum(dim=-1)


def pointwise_mse_loss(rewards: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Regression of rewards on numeric labels (human scores): mean over a prompt's responses of ``(r - y)²``.

    Shapes: ``(B, K)`` → ``(B,)``. Every valid response must have a finite label.
    """
    _check_labels(labels, mask)
    sq = torch.where(mask, (rewards - torch.nan_to_num(labels)) ** 2, torch.zeros_like(rewards))
    return sq.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


def binary_logistic_loss(rewards: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Good/bad labels: binary cross-entropy of ``σ(r)`` against ``y ∈ {0, 1}``, mean over a prompt's responses.

    ``loss = -[y log σ(r) + (1 - y) log σ(-r)]`` (a logistic regression on the reward; KTO-style
    unpaired feedback as a reward model). Via ``F.binary_cross_entropy_with_logits`` (stable).
    Shapes: ``(B, K)`` → ``(B,)``.
    """
    _check_labels(labels, mask)
    bad = mask & (labels != 0) & (labels != 1)
    if bool(bad.any()):
        raise ValueError(f"binary labels must be 0 or 1; got {labels[bad][:5].tolist()}")
    bce = F.binary_cross_entropy_with_logits(rewards, torch.nan_to_num(labels).to(rewards.dtype), reduction="none")
    return torch.where(mask, bce, torch.zeros_like(bce)).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


def _check_labels(labels: Tensor | None, mask: Tensor) -> None:
    if labels is None:
        raise ValueError("this reward loss needs labels (scores per response); the data has none")
    missing = mask & ~torch.isfinite(labels)
    if bool(missing.any()):
        rows = missing.any(dim=-1).nonzero().flatten().tolist()
        raise ValueError(f"labels missing or not finite for valid responses in batch rows {rows[:10]}")


# --------------------------------------------------------------------------------------------- #
# Plugins (entry-point group rlhf_lightning.reward_losses)
# --------------------------------------------------------------------------------------------- #

def _check_k(rewards: Tensor, mask: Tensor, name: str) -> None:
    if rewards.dim() != 2:
        raise ValueError(f"{name}: rewards must be (B, K), got shape {tuple(rewards.shape)}")
    if rewards.shape[-1] < 2 or bool((mask.sum(dim=-1) < 2).any()):
        raise ValueError(f"{name} compares responses: every prompt needs K >= 2 valid responses "
                         f"(pointwise data — scored or good/bad — trains with 'mse' or 'binary')")


def _ordered_pair_metrics(rewards: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Per prompt: fraction of its pairs ordered right (``accuracy``) and mean reward gap (``margin``)."""
    pairs = ranking_pairs(mask)
    gap = rewards.unsqueeze(-1) - rewards.unsqueeze(-2)
    n = pairs.sum(dim=(-1, -2)).clamp(min=1)
    right = (pairs & (gap > 0)).sum(dim=(-1, -2))
    margin = torch.where(pairs, gap, torch.zeros_like(gap)).sum(dim=(-1, -2))
    return {"accuracy": right.float() / n, "margin": margin.detach() / n}


class PairwiseLoss(RewardLoss):
    """Bradley–Terry pairwise loss ``-log σ(r_w - r_l - m)`` with optional reward centering (TRL's conventions).

    Args:
        use_margins: subtract the data's per-pair ``margin`` column (Llama 2); off = ignore it.
        center_rewards_coefficient: weight of ``(r_w + r_l)²`` (Eisenstein et al. 2023); ``None`` = off.

    Takes ``(B, 2)`` rewards (chosen, rejected). K-wise data needs ``kwise`` or ``plackett_luce``.
    """

    def __init__(self, use_margins: bool = True, center_rewards_coefficient: float | None = None) -> None:
        super().__init__()
        non_negative(self, "center_rewards_coefficient", center_rewards_coefficient, optional=True)
        self.use_margins = use_margins
        self.center_rewards_coefficient = center_rewards_coefficient

    def __call__(self, rewards, mask=None, labels=None, margins=None):
        mask = self.full_mask(rewards, mask)
        _check_k(rewards, mask, "pairwise loss")
        if rewards.shape[-1] != 2:
            raise ValueError(f"pairwise loss takes chosen/rejected pairs (K = 2), got K = {rewards.shape[-1]}; "
                             "for rankings use the 'kwise' or 'plackett_luce' loss")
        losses = pairwise_logistic_loss(rewards[:, 0], rewards[:, 1], margins if self.use_margins else None,
                                        self.center_rewards_coefficient)
        return losses, _ordered_pair_metrics(rewards, mask)


class KWiseRankingLoss(RewardLoss):
    """InstructGPT K-wise ranking loss: mean Bradley–Terry loss over all C(K, 2) ordered pairs per prompt.

    Args:
        use_margins: subtract the prompt's ``margin`` from every pair's reward gap.
        center_rewards_coefficient: reward-centering weight, per pair as in :class:`PairwiseLoss`.
        skip_ties: with ``labels`` (the scores behind a ranking), pairs of equal score are left out.

    Equals :class:`PairwiseLoss` for K = 2; prompts may have different K (the mask).
    """

    def __init__(self, use_margins: bool = True, center_rewards_coefficient: float | None = None,
                 skip_ties: bool = True) -> None:
        super().__init__()
        non_negative(self, "center_rewards_coefficient", center_rewards_coefficient, optional=True)
        self.use_margins = use_margins
        self.center_rewards_coefficient = center_rewards_coefficient
        self.skip_ties = skip_ties

    def __call__(self, rewards, mask=None, labels=None, margins=None):
        mask = self.full_mask(rewards, mask)
        _check_k(rewards, mask, "kwise loss")
        losses = kwise_ranking_loss(rewards, mask, margins if self.use_margins else None,
                                    self.center_rewards_coefficient, labels if self.skip_ties else None)
        return losses, _ordered_pair_metrics(rewards, mask)


class PlackettLuceLoss(RewardLoss):
    """Plackett–Luce (ListMLE) negative log-likelihood of each full ranking; equals the pairwise loss for K = 2.

    Args:
        normalize: divide each prompt's loss by its number of choice stages ``K_b - 1`` (so prompts
            with more responses do not weigh more).

    It has no margin term: non-zero margins raise rather than being ignored silently.
    """

    def __init__(self, normalize: bool = False) -> None:
        super().__init__()
        self.normalize = normalize

    def __call__(self, rewards, mask=None, labels=None, margins=None):
        mask = self.full_mask(rewards, mask)
        _check_k(rewards, mask, "plackett_luce loss")
        if margins is not None and bool((margins != 0).any()):
            raise ValueError("plackett_luce has no margin term, but the data has non-zero margins; "
                             "use 'pairwise' or 'kwise', or drop the margin column")
        losses = plackett_luce_loss(rewards, mask)
        if self.normalize:
            losses = losses / (mask.sum(dim=-1) - 1).clamp(min=1)
        return losses, _ordered_pair_metrics(rewards, mask)


class MSELoss(RewardLoss):
    """Pointwise regression of the reward on numeric scores (``prompt/response/score`` data): MSE.

    Args:
        scale: targets are ``scale · score`` (put scores on a convenient reward scale).
    """

    needs_labels = True

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        require(self, "scale", isinstance(scale, (int, float)) and math.isfinite(scale) and scale != 0,
                "must be finite and non-zero", scale)
        self.scale = scale

    def __call__(self, rewards, mask=None, labels=None, margins=None):
        mask = self.full_mask(rewards, mask)
        _check_labels(labels, mask)
        losses = pointwise_mse_loss(rewards, labels * self.scale, mask)
        return losses, {"mse": losses.detach()}


class BinaryLoss(RewardLoss):
    """Good/bad labels (``prompt/response/label`` data): logistic loss on ``σ(r)``; reward > 0 means good."""

    needs_labels = True
    binary_labels = True

    def __call__(self, rewards, mask=None, labels=None, margins=None):
        mask = self.full_mask(rewards, mask)
        losses = binary_logistic_loss(rewards, labels, mask)
        right = (rewards > 0) == (torch.nan_to_num(labels) > 0.5)
        acc = torch.where(mask, right.float(), torch.zeros_like(rewards)).sum(-1) / mask.sum(-1).clamp(min=1)
        return losses, {"accuracy": acc}
