"""RL math (torch only): advantage estimators."""

from rlhf_lightning.algorithms.base import AdvantageEstimator

__all__ = ["AdvantageEstimator"]
