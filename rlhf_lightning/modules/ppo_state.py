"""Where PPO's checkpoint state lived before issue #17; it is :mod:`rlhf_lightning.modules.ppo.state` now.

Re-exported so imports of this path keep working.
"""

from rlhf_lightning.modules.ppo.state import load_stage_state, log_samples, samples_table, save_stage_state

__all__ = ["load_stage_state", "log_samples", "samples_table", "save_stage_state"]
