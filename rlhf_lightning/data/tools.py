"""Tool use in chat rows: ``tool`` messages, assistant ``tool_calls`` and a ``tools`` column.

The shapes are the ones ``transformers``' ``apply_chat_template`` and TRL take:

* a ``tools`` column: a list of JSON function schemas (``{"type": "function", "function": {"name",
  "description", "parameters"}}``), or that list as a JSON string; it is passed to
  ``apply_chat_template(tools=...)``, and the template decides where the schemas appear (usually the
  system turn);
* an assistant message may carry ``tool_calls``: ``[{"type": "function", "function": {"name",
  "arguments"}}]`` with ``arguments`` a dict or a JSON string; its ``content`` may then be empty;
* a ``tool`` message holds a tool's output in ``content`` (optionally ``name`` / ``tool_call_id``).

What is trained: the assistant turns, tool calls included (the model must learn to call); tool outputs are
context only, never trained (the model cannot predict what a tool returns). This is TRL's
``assistant_only_loss`` and LLaMA-Factory's choice.

Keys whose value is null are dropped from messages, schemas and arguments before rendering: a dataset
loaded from Parquet or Arrow fills the keys one message lacks with null (``tool_calls: null`` on a
user turn), which templates would otherwise render.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rlhf_lightning.errors import DataError

TOOLS_COLUMN = "tools"


def drop_nulls(value: Any) -> Any:
    """``value`` with null-valued keys removed from every dict inside it (lists and dicts are copied)."""
    if isinstance(value, Mapping):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [drop_nulls(v) for v in value]
    return value


def chat_messages(messages: list[Mapping]) -> list[dict]:
    """The messages as plain dicts without null-valued keys, ready for ``apply_chat_template``."""
    return [drop_nulls(m) for m in messages]


def row_tools(row: Mapping, *, where: str = "row") -> list[dict] | None:
    """The row's ``tools`` column as a list of schema dicts, or ``None`` when absent or empty.

    Raises :class:`DataError` naming ``where`` and the field for a JSON string that does not parse or a
    value that is not a list of objects.
    """
    value = row.get(TOOLS_COLUMN)
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: field 'tools' is a string but not JSON ({e.msg} at character {e.pos})") from e
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise DataError(f"{where}: field 'tools' must be a list of function schemas (objects), got "
                        f"{type(value).__name__} {value!r:.80}")
    for i, tool in enumerate(value):
        fn = tool.get("function", tool)
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataError(f"{where}: tools[{i}] has no function name (expected {{'type': 'function', "
                            f"'function': {{'name': ..., 'parameters': ...}}}})")
    return drop_nulls(value) or None


def check_tool_calls(calls: Any, *, where: str, turn: int) -> None:
    """Check an assistant message's ``tool_calls``: a list of ``{"function": {"name", "arguments"}}``."""
    if not isinstance(calls, list) or not calls:
        raise DataError(f"{where}: messages[{turn}] (assistant) tool_calls must be a non-empty list, got "
                        f"{calls!r:.80}")
    for k, call in enumerate(calls):
        fn = call.get("function", call) if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataError(f"{where}: messages[{turn}].tool_calls[{k}] needs a function name "
                            f"({{'type': 'function', 'function': {{'name': ..., 'arguments': ...}}}})")
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                json.loads(args)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: messages[{turn}].tool_calls[{k}] arguments is a string but not JSON "
                                f"({e.msg})") from e
        elif args is not None and not isinstance(args, Mapping):
            raise DataError(f"{where}: messages[{turn}].tool_calls[{k}] arguments must be an object or a JSON "
                            f"string, got {type(args).__name__}")
