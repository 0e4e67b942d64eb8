"""Online RL: PPO with a critic (GAE) and its critic-free relatives (GRPO, RLOO, REINFORCE++).

Where to find what:

- :mod:`~rlhf_lightning.modules.ppo.loop` — :class:`PPOModule`, the LightningModule: one training
  step = make experience, then ``ppo.epochs × ppo.num_minibatches`` optimizer steps; validation,
  prediction, export.
- :mod:`~rlhf_lightning.modules.ppo.experience` — experience making, step by step, into one
  :class:`~rlhf_lightning.modules.ppo.experience.Experience` record (rewards, constraints, shaping,
  advantages).
- :mod:`~rlhf_lightning.modules.ppo.config` — the typed options (``kl``, ``ppo``, ``critic``,
  ``shaping``, constraint rules) as they appear in YAML.
- :mod:`~rlhf_lightning.modules.ppo.state` — what a checkpoint keeps beyond weights and optimizer.

Below this package (no Lightning): :mod:`rlhf_lightning.rollout.samples` (generation, token
log-probs), :mod:`rlhf_lightning.rollout.scoring` (reward / constraint plugins),
:mod:`rlhf_lightning.models.reference` (the frozen reference, shared with DPO),
:mod:`rlhf_lightning.modules.value_head` (critics), ``algorithms/`` and ``losses/ppo.py`` (the math).

``rlhf_lightning.modules.ppo.PPOModule`` is the class path configs name; the modules
``ppo_config``, ``ppo_rollout`` and ``ppo_state`` beside this package are the homes of these
pieces before issue #17 and still re-export them.
"""

from __future__ import annotations

from typing import Any

from rlhf_lightning.modules.ppo.config import ConstraintRule, CriticSpec, KLSpec, PPOLoopSpec, RewardShapingSpec


def __getattr__(name: str) -> Any:  # the LightningModule (Lightning imports) only when asked for
    if name == "PPOModule":
        from rlhf_lightning.modules.ppo.loop import PPOModule

        return PPOModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PPOModule", "ConstraintRule", "CriticSpec", "KLSpec", "PPOLoopSpec", "RewardShapingSpec"]
