"""JSONL files: outputs (predictions, scores) written so a failure never leaves a half-written file,
and inputs read with the line number of each object."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from rlhf_lightning.data.text_files import BOM


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict[str, Any]], what: str = "output") -> None:
    """Write ``rows`` as UTF-8 JSON lines to a staging sibling, fsync it and rename it onto ``path``
    (:func:`rlhf_lightning.atomic_paths.atomic_file`; ``what`` names the file in a disk-full error)."""
    from rlhf_lightning.atomic_paths import atomic_file

    with atomic_file(path, "w", what=what, encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl_objects(path: str, what: str = "input") -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a UTF-8 JSONL file (a leading byte-order
    mark is skipped); DataError naming the file and line for a missing file, invalid JSON or a line
    that is not a JSON object, and the byte offset of bytes that are not UTF-8. ``what`` names the
    file in the not-found message (``"input"``, ``"prompts"``)."""
    from rlhf_lightning.errors import DataError

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{what} file not found: {path}")
    rows = []
    offset = 0
    with file.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            start = len(BOM) if lineno == 1 and raw.startswith(BOM) else 0
            try:
                line = raw[start:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: not valid UTF-8 at byte {offset + start + exc.start} (line {lineno}): "
                                f"{exc.reason} (byte 0x{raw[start + exc.start]:02x}); save the file as UTF-8") from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows
