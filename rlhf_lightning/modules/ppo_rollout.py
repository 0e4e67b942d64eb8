"""Where PPO's experience making lived before issue #17. Re-exported so imports of this path keep working:

- sampling and the token log-prob forward: :mod:`rlhf_lightning.rollout.samples`;
- calling reward / constraint plugins: :mod:`rlhf_lightning.rollout.scoring`;
- the PPO-only steps (weighted reward, constraints) and the :class:`Experience` record:
  :mod:`rlhf_lightning.modules.ppo.experience`.
"""

from rlhf_lightning.modules.ppo.experience import Experience, apply_constraints, total_reward
from rlhf_lightning.rollout.samples import (
                                            NOT_COLUMNS,
                                            Rollout,
                                            completion_mask,
                                            forward_completion,
                                            plugin_columns,
                                            position_ids_of,
                                            sample,
)
from rlhf_lightning.rollout.scoring import NamedPlugin, check_plugin_setup, plugin_names, score, weighted_total

__all__ = ["NOT_COLUMNS", "Experience", "NamedPlugin", "Rollout", "apply_constraints", "check_plugin_setup",
           "completion_mask", "forward_completion", "plugin_columns", "plugin_names", "position_ids_of", "sample",
           "score", "total_reward", "weighted_total"]
