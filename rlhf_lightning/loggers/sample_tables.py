"""Sample tables (prompt, completion, scores) through whatever loggers the run has.

Lightning's ``log`` takes scalars only; generated text needs each logger's own API:

- ``TensorBoardLogger``: a Markdown table as text (``add_text``), under the TEXT tab;
- ``WandbLogger``: a ``wandb.Table`` (``log_text``);
- ``MLFlowLogger``: a JSON table artifact ``<key>/step_<step>.json`` (``MlflowClient.log_table``);
- ``CSVLogger``: rows appended to ``<log_dir>/<key>.jsonl``, one JSON object per sample with its step
  (CSV cannot hold free text well).

A run whose loggers take none of these gets one warning naming them, not an error. Only the global
rank 0 process writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

_warned: set[int] = set()


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """``| a | b |`` rows with pipes escaped and newlines folded (a cell stays one table cell)."""
    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _write(logger: Any, key: str, columns: list[str], rows: list[list[Any]], step: int) -> bool:
    """Log the table through ``logger``; ``False`` when the logger takes no tables."""
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_text(key, markdown_table(columns, rows), global_step=step)
    elif isinstance(logger, WandbLogger):
        logger.log_text(key=key, columns=columns, data=rows, step=step)
    elif isinstance(logger, MLFlowLogger):
        data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
        logger.experiment.log_table(run_id=logger.run_id, data=data, artifact_file=f"{key}/step_{step:08d}.json")
    elif isinstance(logger, CSVLogger):
        os.makedirs(logger.log_dir, exist_ok=True)
        with open(os.path.join(logger.log_dir, f"{key}.jsonl"), "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({"step": step, **dict(zip(columns, row, strict=True))}, ensure_ascii=False) + "\n")
    else:
        return False
    return True


def log_sample_table(trainer: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, key: str = "samples",
                     step: int | None = None) -> list[str]:
    """Write ``rows`` (each ``len(columns)`` values: text or numbers) to every logger of ``trainer`` that
    takes tables, at ``step`` (default: the trainer's global step). Returns the names of the logger classes
    written to; warns once per trainer when there are loggers but none takes tables."""
    if not trainer.is_global_zero or not trainer.loggers:
        return []
    columns, rows = list(columns), [list(row) for row in rows]
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"sample table {key!r}: every row needs {len(columns)} values ({', '.join(columns)})")
    step = trainer.global_step if step is None else step
    written = [type(lg).__name__ for lg in trainer.loggers if _write(lg, key, columns, rows, step)]
    if not written and id(trainer) not in _warned:
        _warned.add(id(trainer))
        names = ", ".join(type(lg).__name__ for lg in trainer.loggers)
        rank_zero_warn(f"sample tables ({key!r}) are not logged: none of the run's loggers ({names}) takes text or "
                       "tables; TensorBoardLogger, WandbLogger, MLFlowLogger and CSVLogger (as <log_dir>/"
                       f"{key}.jsonl) do")
    return written
