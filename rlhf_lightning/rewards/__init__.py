"""Reward plugins. Light to import: the model-based and remote rewards load their heavy parts on use."""

from rlhf_lightning.rewards.base import RewardFunction

__all__ = ["RewardFunction"]
