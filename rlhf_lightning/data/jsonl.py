"""Writing JSONL outputs (predictions, scores) so a failure never leaves a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from rlhf_lightning.data.text_files import BOM


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``rows`` as UTF-8 JSON lines to a temporary sibling, then rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
