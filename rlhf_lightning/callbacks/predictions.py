"""Write ``predict`` results (one dict per generated sample) to a JSONL file, atomically."""

from __future__ import annotations

import os
from typing import Any, Optional

from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from rlhf_lightning.data.jsonl import write_jsonl_atomic


class JSONLPredictionWriter(BasePredictionWriter):
    """Collect prediction rows and write them as UTF-8 JSONL at the end of ``predict``.

    Args:
        output: the JSONL path; default ``<trainer.default_root_dir>/predictions.jsonl``.
    """

    def __init__(self, output: Optional[str] = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.written: Optional[str] = None

    def write_on_epoch_end(self, trainer, pl_module, predictions: Any, batch_indices: Any) -> None:
        rows = [row for batch in predictions for row in batch]
        path = self.output or os.path.join(trainer.default_root_dir, "predictions.jsonl")
        if trainer.world_size > 1:
            path = f"{path}.rank{trainer.global_rank}"
        write_jsonl_atomic(path, rows, what="predictions")
        self.written = path
        rank_zero_info(f"Wrote {len(rows)} predictions to {path}")
