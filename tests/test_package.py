"""The top-level package: every stage and data module is exported (lazily), and importing it stays light."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import rlhf_lightning


def _defined_classes(package: str, base: type) -> set[type]:
    found = set()
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, f"{package}."):
        module = importlib.import_module(info.name)
        found |= {obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, base) and obj.__module__ == module.__name__}
    return found


def test_every_stage_and_data_module_is_a_top_level_name():
    from lightning.pytorch import LightningDataModule, LightningModule

    classes = _defined_classes("rlhf_lightning.modules", LightningModule)
    classes |= _defined_classes("rlhf_lightning.datamodules", LightningDataModule)
    assert {c.__name__ for c in classes} >= {"SFTModule", "DPOModule", "PPOModule", "SFTDataModule"}
    missing = sorted(c.__name__ for c in classes if getattr(rlhf_lightning, c.__name__, None) is not c)
    assert not missing, f"add to rlhf_lightning._LAZY: {missing}"
    assert set(rlhf_lightning.__all__) >= {c.__name__ for c in classes}


def test_importing_the_package_loads_neither_lightning_nor_transformers():
    code = ("import sys, rlhf_lightning; "
            "print(sorted(m for m in ('lightning', 'transformers', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
