"""Export a Hugging Face folder at the end of ``fit``."""

from __future__ import annotations

import os
from typing import Optional

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_info

from rlhf_lightning.models.sharding import is_sharded
from rlhf_lightning.output_folders import check_replaceable


def run_folders(trainer) -> list[str]:
    """The run's own folders (root, logs, checkpoints), which an export folder must never contain.
    ``trainer.log_dir`` is a collective under some strategies: call this on every rank."""
    folders = [trainer.default_root_dir, trainer.log_dir]
    folders += [getattr(cb, "dirpath", None) for cb in trainer.checkpoint_callbacks]
    return [str(f) for f in folders if f]


class HFExport(Callback):
    """After training, write the stage's model as a Hugging Face folder (see ``export_hf``).

    The folder is written aside and renamed into place, so a failure never replaces a good export.
    It must be new, empty or an earlier export (it holds ``.rlhf-lightning-export``), and must not be
    the current folder or contain the run's own folders: checked when ``fit`` starts, before any
    training, and again before writing (:mod:`rlhf_lightning.output_folders`).

    Args:
        dirpath: where to write; default ``<trainer.default_root_dir>/export``.
        merge_lora: with LoRA, also merge the adapter into a full model (the adapter then goes to
            ``<dirpath>/adapter``); without, the folder holds the PEFT adapter.
        enabled: set ``false`` to skip the export.
    """

    def __init__(self, dirpath: Optional[str] = None, merge_lora: bool = False, enabled: bool = True) -> None:
        self.dirpath = dirpath
        self.merge_lora = merge_lora
        self.enabled = enabled
        self.written: Optional[str] = None
        self._protect: list[str] = []

    def resolve_dir(self, trainer) -> str:
        return self.dirpath or os.path.join(trainer.default_root_dir, "export")

    def _active(self, pl_module) -> bool:
        return self.enabled and hasattr(pl_module, "export_hf")

    def on_fit_start(self, trainer, pl_module) -> None:
        if self._active(pl_module):  # fail before training, not after it
            self._protect = run_folders(trainer)
            check_replaceable(self.resolve_dir(trainer), "export", self._protect)
            model = getattr(pl_module, "model", None)
            if model is not None:
                from rlhf_lightning.models.export import check_exportable

                check_exportable(model, self.merge_lora)

    def on_fit_end(self, trainer, pl_module) -> None:
        if not self._active(pl_module):
            return
        if trainer.interrupted:  # a Ctrl-C / killed run keeps the previous export
            return
        out = self.resolve_dir(trainer)
        check_replaceable(out, "export", self._protect)  # every rank: a sharded export is a collective
        if trainer.is_global_zero or is_sharded(pl_module):  # a sharded model is gathered by every rank
            written = pl_module.export_hf(out, merge_lora=self.merge_lora)
            if trainer.is_global_zero:
                self.written = written
                rank_zero_info(f"Exported Hugging Face model to {self.written}")
        trainer.strategy.barrier("hf_export")
