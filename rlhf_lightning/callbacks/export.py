"""Export a Hugging Face folder at the end of ``fit``."""

from __future__ import annotations

import os
from typing import Optional

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_info

from rlhf_lightning.models.sharding import is_sharded


class HFExport(Callback):
    """After training, write the stage's model as a Hugging Face folder (see ``export_hf``).

    The folder is written aside and renamed into place, so a failure never replaces a good export.

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

    def resolve_dir(self, trainer) -> str:
        return self.dirpath or os.path.join(trainer.default_root_dir, "export")

    def on_fit_end(self, trainer, pl_module) -> None:
        if not self.enabled or not hasattr(pl_module, "export_hf"):
            return
        if trainer.interrupted:  # a Ctrl-C / killed run keeps the previous export
            return
        out = self.resolve_dir(trainer)
        if trainer.is_global_zero or is_sharded(pl_module):  # a sharded model is gathered by every rank
            written = pl_module.export_hf(out, merge_lora=self.merge_lora)
            if trainer.is_global_zero:
                self.written = written
                rank_zero_info(f"Exported Hugging Face model to {self.written}")
        trainer.strategy.barrier("hf_export")
