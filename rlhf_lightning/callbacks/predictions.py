"""Write ``predict`` results (one dict per generated sample) to a JSONL file, atomically."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Optional

from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


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
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".predictions-", dir=parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.written = path
        rank_zero_info(f"Wrote {len(rows)} predictions to {path}")
