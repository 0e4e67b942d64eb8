"""Where PPO's options lived before issue #17; they are :mod:`rlhf_lightning.modules.ppo.config` now.

Re-exported so imports of this path keep working; checkpoints that pickled them under this path load
too (the old names are allowed globals, see the end of the new module).
"""

from rlhf_lightning.modules.ppo.config import ConstraintRule, CriticSpec, KLSpec, PPOLoopSpec, RewardShapingSpec

__all__ = ["ConstraintRule", "CriticSpec", "KLSpec", "PPOLoopSpec", "RewardShapingSpec"]
