"""A test callback that writes the rows of every training batch to a JSON-lines file, appending, so a
run killed and resumed into the same file leaves the sequence an uninterrupted run would."""

from __future__ import annotations

import json
from typing import Any

from lightning.pytorch import Callback


class RecordBatches(Callback):
    """After each training step, append ``{"step", "epoch", "input_ids"}`` (the batch's rows, padding
    included) to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": trainer.global_step, "epoch": trainer.current_epoch,
                                "input_ids": batch["input_ids"].tolist()}) + "\n")
