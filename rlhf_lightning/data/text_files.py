"""Text input files checked before they are parsed: UTF-8 only (a byte-order mark is allowed), each
fault named by file, byte offset and line; a malformed JSON Lines file named by its first bad line.

Parsers report these faults badly or not at all: Python raises ``UnicodeDecodeError`` with an offset
into the buffer it happened to be decoding, ``datasets``' JSON builder silently drops undecodable
bytes or fails with "An error occurred while generating the dataset", and pandas reports a CSV's
position in its own chunk. So the file itself is read once more, in binary, by these functions.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from rlhf_lightning.errors import DataError

BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


def check_utf8(path: str | os.PathLike, *, error: type[Exception] = DataError, chunk_size: int = _CHUNK) -> None:
    """Raise ``error`` naming ``path``, the byte offset (from 0) and the line (from 1) of the first
    byte sequence that is not UTF-8. A leading UTF-8 byte-order mark is valid. Reads in chunks, so
    memory does not grow with the file."""
    offset, line, carry = 0, 1, b""
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk_size)
            buf = carry + block
            if not buf:
                return
            try:
                buf.decode("utf-8")
                valid, carry = len(buf), b""
            except UnicodeDecodeError as exc:
                if block and exc.reason == "unexpected end of data":  # a character split by the read
                    valid, carry = exc.start, buf[exc.start:]
                else:
                    at = offset + exc.start
                    line += buf.count(b"\n", 0, exc.start)
                    raise error(f"{os.fspath(path)}: not valid UTF-8 at byte {at} (line {line}): {exc.reason} "
                                f"(byte 0x{buf[exc.start]:02x}); save the file as UTF-8") from None
            line += buf.count(b"\n", 0, valid)
            offset += valid


def first_json_error(path: str | os.PathLike) -> Optional[str]:
    """Why ``path`` (UTF-8, checked first) is not JSON / JSON Lines, as ``"line N: reason"``, or None
    if it parses. A file whose first non-blank character is ``[`` or ``{`` and that parses as one JSON
    document is JSON; otherwise every non-blank line must be one JSON value (JSON Lines)."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            json.loads(text)
            return None
        except json.JSONDecodeError as whole:
            if stripped[:1] == "[" or "\n" not in stripped.rstrip():  # one document: report it as one
                return f"line {whole.lineno}, column {whole.colno}: {whole.msg}"
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            return f"line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
        if not isinstance(value, dict):
            return f"line {lineno}: expected a JSON object (one record per line), got {type(value).__name__}"
    return None
