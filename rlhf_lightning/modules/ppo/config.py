"""Typed options of :class:`~rlhf_lightning.modules.ppo.PPOModule`, as they appear in YAML.

Plain dataclasses (LightningCLI turns them into nested, validated config sections); no heavy imports,
so configs parse fast. Until issue #17 they lived in ``rlhf_lightning.modules.ppo_config`` (still
importable there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch

from rlhf_lightning.constraints.base import ConstraintChecker
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.option_checks import at_least, non_negative, positive, require


@dataclass
class KLSpec:
    """KL regularisation towards the reference policy.

    Args:
        coef: the coefficient β (the start value when ``target`` is set).
        estimator: per-token estimator (Schulman 2020): ``k1`` (log-ratio, unbiased, can be
            negative; the classic reward penalty), ``k2`` or ``k3`` (non-negative; GRPO's).
        target: set it for the adaptive controller of Ziegler et al. 2019 (KL per completion, in
            nats, that β steers towards); ``None`` keeps β fixed.
        horizon: samples over which the adaptive controller corrects its error.
        apply_to: ``reward`` (per-token penalty in the shaped reward, PPO/InstructGPT) or ``loss``
            (β·KL of the current policy added to the loss, GRPO; the reward then has no KL term).
    """

    coef: float = 0.05
    estimator: Literal["k1", "k2", "k3"] = "k1"
    target: Optional[float] = None
    horizon: int = 10000
    apply_to: Literal["reward", "loss"] = "reward"

    def __post_init__(self) -> None:
        non_negative(self, "coef", self.coef)
        positive(self, "target", self.target, optional=True)
        at_least(self, "horizon", self.horizon, 1)


@dataclass
class ConstraintRule:
    """One constraint plugin and what the stage does with its costs.

    Args:
        checker: a :class:`~rlhf_lightning.ConstraintChecker` plugin (its ``threshold`` says where a
            cost is a violation and, for ``lagrangian``, the expected cost to stay under).
        mode: ``skip`` (violating samples take no part in the update), ``penalize`` (``coef × cost``
            is subtracted from the score) or ``lagrangian`` (PPO-Lagrangian: ``λ × cost`` is
            subtracted, and λ ≥ 0 is learned so that the mean cost stays ≤ threshold).
        coef: penalty per unit cost (``penalize``).
        lambda_init, lambda_lr, lambda_max: start value, step size and optional cap of λ.
        normalize: ``lagrangian`` only: divide the combined score by ``1 + λ`` (Safe RLHF, §3.3).
        name: label in logs (default: the plugin's entry-point name).
    """

    checker: ConstraintChecker
    mode: Literal["skip", "penalize", "lagrangian"] = "skip"
    coef: float = 1.0
    lambda_init: float = 0.0
    lambda_lr: float = 0.05
    lambda_max: Optional[float] = None
    normalize: bool = True
    name: Optional[str] = None

    def __post_init__(self) -> None:
        non_negative(self, "coef", self.coef)
        non_negative(self, "lambda_init", self.lambda_init)
        positive(self, "lambda_lr", self.lambda_lr)
        if self.lambda_max is not None:
            require(self, "lambda_max", self.lambda_max >= self.lambda_init,
                    f"must be >= lambda_init ({self.lambda_init})", self.lambda_max)


@dataclass
class CriticSpec:
    """The value function, built only when the advantage estimator needs one (``gae``).

    Args:
        model: ``None``: a scalar value head on the policy backbone's last hidden state (shares the
            policy's weights); or a separate value model, loaded as a 1-label sequence classifier
            (e.g. the reward-model export, so the critic starts from the reward model).
        coef: weight of the value loss in the total loss.
        value_clip: clip range of the value-loss clipping around the rollout values (``None``: off).
        lr: learning rate of the critic's parameters (default: the optimizer's).
    """

    model: Optional[ModelSpec] = None
    coef: float = 0.1
    value_clip: Optional[float] = 0.2
    lr: Optional[float] = None

    def __post_init__(self) -> None:
        non_negative(self, "coef", self.coef)
        positive(self, "value_clip", self.value_clip, optional=True)
        positive(self, "lr", self.lr, optional=True)


@dataclass
class PPOLoopSpec:
    """The optimisation loop over one rollout batch.

    Args:
        epochs: passes over the rollout batch (PPO epochs).
        num_minibatches: minibatches per pass; one optimizer step each, so a training step makes
            ``epochs × num_minibatches`` optimizer steps.
        clip_eps: PPO ratio clip ε; ``clip_eps_high``: a larger upper bound (DAPO's clip-higher).
        dual_clip: dual-clip constant c > 1 bounding the loss of negative advantages (Ye et al. 2020).
        aggregation: ``token_mean`` (every token of the minibatch weighs the same),
            ``seq_mean_token_mean`` (mean per sequence, then over sequences) or
            ``seq_mean_token_sum`` (sum per sequence, mean over sequences; Dr. GRPO).
        max_grad_norm: clip the gradient norm before each step (``None``: off).
        entropy_coef: bonus for the policy's entropy (0: off; entropy is logged either way).
        onednn: run the stage's own models' fp32 ``nn.Linear`` layers (policy, reference, critic;
            forward, backward and activation-checkpointing recompute) through oneDNN: ``false`` (default:
            PyTorch's stock kernels), ``true``, or ``auto`` (where a one-time GEMM probe finds oneDNN
            faster). Off by default because tests/benchmarks/run_all.py measured it slower end to end
            on AMD Zen 5 (GRPO 0.96x, PPO 0.97x, +5-10 % peak RSS) although its GEMMs are 1.26x faster
            there; on Intel Xeons without AVX512-BF16 the GEMMs are no faster. Generation has its own
            ``generation.onednn``.
    """

    epochs: int = 1
    num_minibatches: int = 1
    clip_eps: float = 0.2
    clip_eps_high: Optional[float] = None
    dual_clip: Optional[float] = None
    aggregation: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"] = "token_mean"
    max_grad_norm: Optional[float] = 1.0
    entropy_coef: float = 0.0
    onednn: Union[bool, Literal["auto"]] = False

    def __post_init__(self) -> None:
        at_least(self, "epochs", self.epochs, 1)
        require(self, "onednn", isinstance(self.onednn, bool) or self.onednn == "auto", "must be true, false or auto",
                self.onednn)
        at_least(self, "num_minibatches", self.num_minibatches, 1)
        positive(self, "clip_eps", self.clip_eps)
        positive(self, "clip_eps_high", self.clip_eps_high, optional=True)
        if self.dual_clip is not None:
            require(self, "dual_clip", self.dual_clip > 1, "must be > 1", self.dual_clip)
        positive(self, "max_grad_norm", self.max_grad_norm, optional=True)
        non_negative(self, "entropy_coef", self.entropy_coef)


@dataclass
class RewardShapingSpec:
    """What happens to the sequence score before it becomes token rewards.

    Args:
        clip: clamp the score to ``[-clip, clip]`` (``None``: off).
        missing_eos_penalty: subtracted from completions that hit ``max_new_tokens`` without EOS.
        whiten: normalise the scores of the batch to zero mean and unit variance.
        on_invalid: ``error`` (default): a reward returning NaN/inf stops training with an error
            naming the plugin and sample; ``skip``: such samples take no part in the update (counted
            in ``reward/invalid``).
    """

    clip: Optional[float] = None
    missing_eos_penalty: Optional[float] = None
    whiten: bool = False
    on_invalid: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        positive(self, "clip", self.clip, optional=True)


# A stage built in Python keeps these among its checkpoint's hyperparameters, pickled under their import
# path; Lightning resumes (--ckpt_path) with torch.load(weights_only=True), which refuses classes not
# allowed here — under today's path and under the one checkpoints written before issue #17 name.
_SAVED = (KLSpec, PPOLoopSpec, CriticSpec, RewardShapingSpec)
torch.serialization.add_safe_globals([*_SAVED, *((c, f"rlhf_lightning.modules.ppo_config.{c.__name__}") for c in _SAVED)])
