"""Ranking metrics for reward models, as torchmetrics ``Metric``s (states sum across processes).

Rewards come as ``(B, K)`` best first with a ``(B, K)`` validity mask, the layout of
:class:`~rlhf_lightning.losses.base.RewardLoss`. A pair ``(i, j)``, ``i < j``, is *correctly
ordered* when ``r_i > r_j`` strictly: a tie counts as wrong for accuracy and as neither concordant
nor discordant for Kendall's tau.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def _pairs(mask: Tensor) -> Tensor:
    k = mask.shape[-1]
    upper = torch.ones(k, k, dtype=torch.bool, device=mask.device).triu(diagonal=1)
    return upper & mask.unsqueeze(-1) & mask.unsqueeze(-2)


def _full(rewards: Tensor, mask: Tensor | None) -> Tensor:
    return torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask.to(torch.bool)


class PairwiseAccuracy(Metric):
    """Fraction of (chosen, rejected) pairs with ``r_chosen > r_rejected``. ``update(chosen (B,), rejected (B,))``."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, chosen: Tensor, rejected: Tensor) -> None:
        self.correct += (chosen > rejected).sum().float()
        self.total += chosen.numel()

    def compute(self) -> Tensor:
        return self.correct / self.total.clamp(min=1)


class MeanMargin(Metric):
    """Mean reward gap ``r_chosen - r_rejected`` over pairs. ``update(chosen (B,), rejected (B,))``."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("gap", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, chosen: Tensor, rejected: Tensor) -> None:
        self.gap += (chosen - rejected).double().sum()
        self.total += chosen.numel()

    def compute(self) -> Tensor:
        return (self.gap / self.total.clamp(min=1)).float()


class RankingAccuracy(Metric):
    """Fraction of correctly ordered pairs over all ``C(K_b, 2)`` pairs of every ranking (pairs pooled).

    ``update(rewards (B, K) best first, mask (B, K) | None)``; equals :class:`PairwiseAccuracy` for K = 2.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, rewards: Tensor, mask: Tensor | None = None) -> None:
        pairs = _pairs(_full(rewards, mask))
        gap = rewards.unsqueeze(-1) - rewards.unsqueeze(-2)
        self.correct += (pairs & (gap > 0)).sum().float()
        self.total += pairs.sum().float()

    def compute(self) -> Tensor:
        return self.correct / self.total.clamp(min=1)


class KendallTau(Metric):
    """Mean over prompts of Kendall's tau-a between the predicted and the true ranking.

    ``tau_a = (concordant - discordant) / C(K_b, 2)`` per prompt (Kendall 1938); ties in the
    predictions count as neither. 1 = every ranking reproduced, -1 = every ranking reversed.
    ``update(rewards (B, K) best first, mask (B, K) | None)``; prompts with fewer than 2 responses are skipped.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("tau_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("prompts", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, rewards: Tensor, mask: Tensor | None = None) -> None:
        pairs = _pairs(_full(rewards, mask))
        gap = rewards.unsqueeze(-1) - rewards.unsqueeze(-2)
        n = pairs.sum(dim=(-1, -2))
        score = (pairs & (gap > 0)).sum(dim=(-1, -2)) - (pairs & (gap < 0)).sum(dim=(-1, -2))
        keep = n > 0
        self.tau_sum += (score[keep].double() / n[keep].double()).sum()
        self.prompts += keep.sum().float()

    def compute(self) -> Tensor:
        return (self.tau_sum / self.prompts.clamp(min=1)).float()


class ConcordanceAccuracy(Metric):
    """Pointwise data: over all pairs of samples with different targets, the fraction the predictions order the same way.

    For scored responses (one per prompt) this is the pairwise accuracy a reward model would have
    on pairs built from the data ( = (1 + tau) / 2 without prediction ties). ``update(preds (N,), target (N,))``;
    the pairs are counted in blocks at ``compute`` (memory O(block · N)).
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, block: int = 1024, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block = block
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.preds.append(preds.detach().flatten().float())
        self.target.append(target.detach().flatten().float())

    def compute(self) -> Tensor:
        p, t = dim_zero_cat(self.preds), dim_zero_cat(self.target)
        right = total = 0.0
        for s in range(0, p.numel(), self.block):
            dt = t[s:s + self.block, None] - t[None, :]
            dp = p[s:s + self.block, None] - p[None, :]
            ordered = dt > 0  # each unordered pair with different targets once, from its better side
            total += float(ordered.sum())
            right += float((ordered & (dp > 0)).sum())
        return torch.tensor(right / total if total else 0.0)
