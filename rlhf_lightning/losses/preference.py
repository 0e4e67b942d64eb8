"""Preference losses of the DPO family: pure functions, and the plugin classes that hold their
hyperparameters (entry-point group ``rlhf_lightning.preference_losses``).

Math layer: imports torch only. Every function takes ``(B,)`` tensors, one entry per (chosen,
rejected) pair, and returns the ``(B,)`` per-pair losses; the stage takes their mean.
Notation: ``logps`` are SUMS of completion-token log-probs, ``|y|`` completion lengths,
``r_w = log π(y_w|x) - log π_ref(y_w|x)`` and ``r_l`` the same for the rejected answer,
``h = r_w - r_l``.

Where TRL (1.16, ``DPOConfig.loss_type``) defines the same loss, the definition here is TRL's, so
the numbers agree: ``sigmoid`` (ε = 0), ``robust``, ``ipo``, ``hinge``; and the ``nll`` term with
``reduction="tokens"`` is TRL's ``sft`` loss type. Two label-smoothed variants are easy to confuse:

- **cDPO** (conservative DPO, Mitchell 2023, "A note on DPO with noisy preferences"): the label is
  flipped with probability ε and the *expected* loss is minimised,
  ``-(1-ε)·log σ(βh) - ε·log σ(-βh)``. It is ``sigmoid`` with ``label_smoothing = ε`` (TRL < 1.0's
  ``sigmoid`` + ``label_smoothing``; TRL 1.16's ``sigmoid`` ignores ``label_smoothing``). Its
  minimiser is a finite margin, so it is biased towards smaller rewards.
- **robust** (rDPO, Chowdhury et al. 2024, "Provably Robust DPO", Eq. 8): the *unbiased* estimator
  of the clean loss under ε-noise, ``(-(1-ε)·log σ(βh) + ε·log σ(-βh)) / (1-2ε)`` — TRL's ``robust``.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.losses.base import PreferenceLoss
from rlhf_lightning.option_checks import in_range, positive, require

# --------------------------------------------------------------------------- pure functions


def sigmoid_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float = 0.1,
                 label_smoothing: float = 0.0) -> Tensor:
    """DPO (Rafailov et al. 2023, Eq. 7) and, with ``label_smoothing = ε > 0``, cDPO (Mitchell 2023).

    ``loss = -(1-ε)·log σ(β·h) - ε·log σ(-β·h)``, ``h = r_w - r_l``. With ``h = 0`` (policy equal
    to reference) the loss is ``ln 2`` for every ε.
    """
    logits = beta * (chosen_logratios - rejected_logratios)
    losses = -F.logsigmoid(logits)
    if label_smoothing:
        losses = (1 - label_smoothing) * losses - label_smoothing * F.logsigmoid(-logits)
    return losses


def robust_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float = 0.1,
                label_smoothing: float = 0.1) -> Tensor:
    """Robust DPO (Chowdhury et al. 2024, Eq. 8): unbiased under preference flips of rate ε < 1/2.

    ``loss = (-(1-ε)·log σ(β·h) + ε·log σ(-β·h)) / (1 - 2ε)``.
    """
    logits = beta * (chosen_logratios - rejected_logratios)
    return (-(1 - label_smoothing) * F.logsigmoid(logits) + label_smoothing * F.logsigmoid(-logits)) / (
        1 - 2 * label_smoothing)


def ipo_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, chosen_lengths: Tensor,
             rejected_lengths: Tensor, beta: float = 0.1) -> Tensor:
    """IPO (Azar et al. 2023, Eq. 17) with TRL's length normalisation; ``beta`` is the paper's τ.

    ``loss = (r_w/|y_w| - r_l/|y_l| - 1/(2τ))²``: the log-ratios are averaged per completion token
    (lengths clamped to ≥ 1), which the IPO authors confirmed to TRL is the form their results use.
    """
    delta = chosen_logratios / chosen_lengths.clamp(min=1) - rejected_logratios / rejected_lengths.clamp(min=1)
    return (delta - 1 / (2 * beta)) ** 2


def hinge_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float = 0.1) -> Tensor:
    """SLiC-HF's calibration hinge (Zhao et al. 2023, Eq. 1) on DPO's log-ratios, as TRL defines it.

    ``loss = max(0, 1 - β·h)``: the margin ``δ`` of the paper is ``1/β``.
    """
    return torch.relu(1 - beta * (chosen_logratios - rejected_logratios))


def simpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, chosen_lengths: Tensor, rejected_lengths: Tensor,
               beta: float = 2.0, gamma: float = 1.0, label_smoothing: float = 0.0) -> Tensor:
    """SimPO (Meng et al. 2024, Eq. 6): reference-free, length-normalised, with a target margin γ.

    ``z = β·logπ(y_w)/|y_w| - β·logπ(y_l)/|y_l| - γ``; ``loss = -(1-ε)·log σ(z) - ε·log σ(-z)``.
    """
    z = beta * (chosen_logps / chosen_lengths.clamp(min=1) - rejected_logps / rejected_lengths.clamp(min=1)) - gamma
    losses = -F.logsigmoid(z)
    if label_smoothing:
        losses = (1 - label_smoothing) * losses - label_smoothing * F.logsigmoid(-z)
    return losses


def log_odds(mean_logps: Tensor) -> Tensor:
    """``log(p / (1 - p))`` for ``log p = mean_logps < 0``, stable near 0 via ``expm1``."""
    return mean_logps - torch.log(-torch.expm1(mean_logps))


def orpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, chosen_lengths: Tensor, rejected_lengths: Tensor,
              beta: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """ORPO (Hong et al. 2024, Eqs. 6-7): NLL on the chosen answer plus λ times an odds-ratio loss.

    With ``p = exp(logπ(y)/|y|)`` (the per-token average likelihood),
    ``L_OR = -log σ(log odds(p_w) - log odds(p_l))`` and ``loss = -logπ(y_w)/|y_w| + λ·L_OR``
    (``λ`` = ``beta``, as in TRL). Returns ``(losses, nll, log_odds_ratio)``, each ``(B,)``.
    """
    mean_w = chosen_logps / chosen_lengths.clamp(min=1)
    mean_l = rejected_logps / rejected_lengths.clamp(min=1)
    ratio = log_odds(mean_w) - log_odds(mean_l)
    nll = -mean_w
    return nll - beta * F.logsigmoid(ratio), nll, ratio


def nll_loss(chosen_logps: Tensor, chosen_lengths: Tensor,
             reduction: Literal["sequence", "tokens"] = "sequence") -> Tensor:
    """Negative log-likelihood of the chosen answers (RPO's term, Pang et al. 2024, Eq. 3).

    ``sequence``: ``-logπ(y_w)/|y_w|`` per pair, the paper's length-normalised NLL. ``tokens``: the
    batch's token mean ``-Σ logπ(y_w) / Σ|y_w|``, spread so that the mean over pairs equals it (TRL's
    ``sft`` loss type); that one depends on the batch, so only ``sequence`` is invariant to how a
    batch is split across devices or accumulation steps.
    """
    if reduction == "sequence":
        return -chosen_logps / chosen_lengths.clamp(min=1)
    if reduction == "tokens":
        return -chosen_logps * chosen_logps.shape[0] / chosen_lengths.sum().clamp(min=1)
    raise ConfigError(f"nll reduction must be 'sequence' or 'tokens', got {reduction!r}")


# --------------------------------------------------------------------------- plugin classes


def _check_beta(owner: object, beta: float) -> float:
    positive(owner, "beta", beta)
    return float(beta)


def _reward_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, Tensor]:
    """TRL's names: ``rewards/chosen`` = β·r_w, ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``."""
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    return {"rewards/chosen": chosen_rewards, "rewards/rejected": rejected_rewards,
            "rewards/margins": chosen_rewards - rejected_rewards,
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float()}


class _RatioLoss(PreferenceLoss):
    """A loss on the log-ratios ``r_w``, ``r_l`` (needs the reference); rewards are ``β·r``."""

    def __init__(self, beta: float = 0.1) -> None:
        super().__init__()
        self.beta = _check_beta(self, beta)

    def losses(self, r_w: Tensor, r_l: Tensor, len_w: Tensor, len_l: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths,
                 rejected_lengths, **kwargs) -> tuple[Tensor, dict[str, Tensor]]:
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError(f"{type(self).__name__} needs reference log-probs")
        r_w, r_l = chosen_logps - ref_chosen_logps, rejected_logps - ref_rejected_logps
        return self.losses(r_w, r_l, chosen_lengths, rejected_lengths), _reward_metrics(self.beta * r_w,
                                                                                        self.beta * r_l)


class SigmoidLoss(_RatioLoss):
    """DPO (``sigmoid``); ``label_smoothing = ε > 0`` makes it cDPO. See :func:`sigmoid_loss`."""

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0) -> None:
        super().__init__(beta)
        in_range(self, "label_smoothing", label_smoothing, 0.0, 0.5)
        self.label_smoothing = float(label_smoothing)

    def losses(self, r_w, r_l, len_w, len_l):
        return sigmoid_loss(r_w, r_l, self.beta, self.label_smoothing)


class CDPOLoss(SigmoidLoss):
    """cDPO (Mitchell 2023): :class:`SigmoidLoss` with the label-flip rate ε = ``label_smoothing`` (default 0.1)."""

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.1) -> None:
        super().__init__(beta, label_smoothing)


class RobustLoss(_RatioLoss):
    """Robust DPO (Chowdhury et al. 2024); ``label_smoothing`` = ε in [0, 0.5). See :func:`robust_loss`."""

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.1) -> None:
        super().__init__(beta)
        in_range(self, "label_smoothing", label_smoothing, 0.0, 0.5, high_open=True)
        self.label_smoothing = float(label_smoothing)

    def losses(self, r_w, r_l, len_w, len_l):
        return robust_loss(r_w, r_l, self.beta, self.label_smoothing)


class IPOLoss(_RatioLoss):
    """IPO (Azar et al. 2023) with per-token log-ratios; ``beta`` is τ. See :func:`ipo_loss`."""

    def losses(self, r_w, r_l, len_w, len_l):
        return ipo_loss(r_w, r_l, len_w, len_l, self.beta)


class HingeLoss(_RatioLoss):
    """SLiC hinge (Zhao et al. 2023) on log-ratios. See :func:`hinge_loss`."""

    def losses(self, r_w, r_l, len_w, len_l):
        return hinge_loss(r_w, r_l, self.beta)


class SimPOLoss(PreferenceLoss):
    """SimPO (Meng et al. 2024): reference-free; rewards are ``β·logπ(y)/|y|``. See :func:`simpo_loss`."""

    reference_free = True

    def __init__(self, beta: float = 2.0, gamma: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.beta = _check_beta(self, beta)
        in_range(self, "label_smoothing", label_smoothing, 0.0, 0.5)
        self.gamma, self.label_smoothing = float(gamma), float(label_smoothing)

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths,
                 rejected_lengths, **kwargs):
        losses = simpo_loss(chosen_logps, rejected_logps, chosen_lengths, rejected_lengths, self.beta, self.gamma,
                            self.label_smoothing)
        return losses, _reward_metrics(self.beta * chosen_logps / chosen_lengths.clamp(min=1),
                                       self.beta * rejected_logps / rejected_lengths.clamp(min=1))


class ORPOLoss(PreferenceLoss):
    """ORPO (Hong et al. 2024): reference-free NLL + ``beta``·odds-ratio loss. See :func:`orpo_loss`."""

    reference_free = True

    def __init__(self, beta: float = 0.1) -> None:
        super().__init__()
        self.beta = _check_beta(self, beta)

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths,
                 rejected_lengths, **kwargs):
        losses, nll, ratio = orpo_loss(chosen_logps, rejected_logps, chosen_lengths, rejected_lengths, self.beta)
        metrics = _reward_metrics(self.beta * chosen_logps / chosen_lengths.clamp(min=1),
                                  self.beta * rejected_logps / rejected_lengths.clamp(min=1))
        metrics.update({"orpo/nll": nll.detach(), "orpo/log_odds_ratio": ratio.detach()})
        return losses, metrics


class NLLLoss(PreferenceLoss):
    """NLL of the chosen answer (reference-free), to add to another loss (RPO). See :func:`nll_loss`."""

    reference_free = True

    def __init__(self, reduction: Literal["sequence", "tokens"] = "sequence") -> None:
        super().__init__()
        require(self, "reduction", reduction in ("sequence", "tokens"), "must be 'sequence' or 'tokens'", reduction)
        self.reduction = reduction

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths,
                 rejected_lengths, **kwargs):
        losses = nll_loss(chosen_logps, chosen_lengths, self.reduction)
        return losses, {"nll": losses.detach()}


class WeightedLoss(PreferenceLoss):
    """``Σ_k weights[k] · losses[k]``, per pair (TRL's multi-loss ``loss_type`` + ``loss_weights``, e.g. MPO).

    Reference-free only if every component is. Metrics: each component's (the first one's win on
    a name clash, so ``rewards/*`` follow the first loss) plus ``loss/<k>_<class>`` per component.
    """

    def __init__(self, losses: list[PreferenceLoss], weights: Optional[list[float]] = None) -> None:
        super().__init__()
        require(self, "losses", bool(losses), "must name at least one loss", losses)
        require(self, "weights", weights is None or len(weights) == len(losses),
                f"must give one weight per loss ({len(losses)})", weights)
        self.components = list(losses)
        self.weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        self.reference_free = all(getattr(c, "reference_free", False) for c in self.components)

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths,
                 rejected_lengths, **kwargs):
        total, metrics = None, {}
        for k, (loss, weight) in enumerate(zip(self.components, self.weights, strict=True)):
            refs = (None, None) if loss.reference_free else (ref_chosen_logps, ref_rejected_logps)
            part, part_metrics = loss(chosen_logps, rejected_logps, *refs, chosen_lengths, rejected_lengths, **kwargs)
            total = weight * part if total is None else total + weight * part
            for name, value in part_metrics.items():
                metrics.setdefault(name, value)
            metrics[f"loss/{k}_{type(loss).__name__}"] = part.detach()
        return total, metrics


class RPOLoss(WeightedLoss):
    """RPO (Pang et al. 2024, Eq. 3): DPO plus ``alpha`` × the chosen answer's NLL."""

    def __init__(self, beta: float = 0.1, alpha: float = 1.0,
                 nll_reduction: Literal["sequence", "tokens"] = "sequence") -> None:
        _check_beta(self, beta)  # named here: the config node is this class, not its SigmoidLoss
        require(self, "nll_reduction", nll_reduction in ("sequence", "tokens"), "must be 'sequence' or 'tokens'",
                nll_reduction)
        super().__init__([SigmoidLoss(beta), NLLLoss(nll_reduction)], [1.0, alpha])
        self.beta, self.alpha = self.components[0].beta, float(alpha)

