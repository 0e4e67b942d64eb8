"""Loss math (torch only): preference losses and reward-model losses."""

from rlhf_lightning.losses.base import PreferenceLoss, RewardLoss, UnpairedPreferenceLoss

__all__ = ["PreferenceLoss", "RewardLoss", "UnpairedPreferenceLoss"]
