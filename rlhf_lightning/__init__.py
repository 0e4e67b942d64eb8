"""rlhf-lightning: a PyTorch Lightning trainer for the whole RLHF pipeline.

The top-level package stays light to import: stage modules and plugin base classes are loaded on
first attribute access, so ``import rlhf_lightning`` does not pull in transformers or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it (imported lazily)
_LAZY = {
    "RewardFunction": "rlhf_lightning.rewards.base",
    "ConstraintChecker": "rlhf_lightning.constraints.base",
    "PreferenceLoss": "rlhf_lightning.losses.base",
    "RewardLoss": "rlhf_lightning.losses.base",
    "UnpairedPreferenceLoss": "rlhf_lightning.losses.base",
    "AdvantageEstimator": "rlhf_lightning.algorithms.base",
    # stage modules and their data modules: ``class_path: rlhf_lightning.DPOModule`` works in YAML
    "SFTModule": "rlhf_lightning.modules.sft",
    "RewardModelModule": "rlhf_lightning.modules.reward",
    "DPOModule": "rlhf_lightning.modules.dpo",
    "KTOModule": "rlhf_lightning.modules.kto",
    "OnlineDPOModule": "rlhf_lightning.modules.online_dpo",
    "PPOModule": "rlhf_lightning.modules.ppo",
    "SFTDataModule": "rlhf_lightning.datamodules.sft",
    "ComparisonDataModule": "rlhf_lightning.datamodules.comparisons",
    "UnpairedDataModule": "rlhf_lightning.datamodules.unpaired",
    "PromptDataModule": "rlhf_lightning.datamodules.prompts",
    "ModelSpec": "rlhf_lightning.models.spec",
    "LoraSpec": "rlhf_lightning.models.spec",
    "QuantizationSpec": "rlhf_lightning.models.spec",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlhf_lightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
