"""Supervised dataset formats: which columns each needs, how rows are checked, and how they become chats.

| format | required columns | optional |
|---|---|---|
| ``messages`` | ``messages``: a list of ``{"role", "content"}``, roles system/user/assistant/tool | ``tools`` |
| ``prompt_completion`` | ``prompt``, ``completion`` (TRL's naming) | |
| ``prompt_response`` | ``prompt``, ``response`` (the seed projects' CSV) | |
| ``alpaca`` | ``instruction``, ``output`` | ``input`` |
| ``dolly`` | ``instruction``, ``response`` (Dolly 15k) | ``context`` |
| ``sharegpt`` | ``conversations``: a list of ``{"from", "value"}`` (see :mod:`.public_formats`) | ``system`` |
| ``oasst`` | ``message_id``, ``parent_id``, ``role``, ``text``: OpenAssistant message trees, flattened by the data module (:mod:`.oasst`) | ``rank`` |
| ``text`` | ``text`` (plain language modelling, every token trained) | |

Detection: the formats whose required columns are all present; where one's columns contain another's
the larger wins, where two match side by side (``prompt``,
``completion`` and ``response``; ``messages`` and ``text``) it is an error listing both, and a ``text``
column is never picked beside another format's columns or OpenAssistant's message columns. A declared
``format:`` on the source chooses.

Row numbers in error messages are the 0-based index of the row in the loaded dataset ("row index 3"
is the fourth record; for a CSV file that is line 5, counting the header).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlhf_lightning.data import public_formats as public
from rlhf_lightning.data.tools import chat_messages, check_tool_calls, row_tools
from rlhf_lightning.errors import ConfigError, DataError

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "prompt_completion": ("prompt", "completion"),
    "prompt_response": ("prompt", "response"),
    "alpaca": ("instruction", "output"),
    "dolly": ("instruction", "response"),
    "oasst": public.OASST_COLUMNS,
    "text": ("text",),
}
FORMATS: tuple[str, ...] = tuple(REQUIRED_COLUMNS)
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

# (prompt field, completion field) of the two-field formats.
_PAIR_FIELDS: dict[str, tuple[str, str]] = {
    "prompt_completion": ("prompt", "completion"),
    "prompt_response": ("prompt", "response"),
    "alpaca": ("instruction", "output"),
    "dolly": ("instruction", "response"),
}
# Columns that mark another known shape (supervised or comparison): a ``text`` column beside one of
# them is not plain text.
_OTHER_SHAPES = frozenset(c for cols in REQUIRED_COLUMNS.values() for c in cols if c != "text") | {
    "chosen", "rejected", "responses", "completions"}


def _needs() -> str:
    return "; ".join(f"{fmt}: {', '.join(cols)}" for fmt, cols in REQUIRED_COLUMNS.items())


def _check_known(fmt: str) -> None:
    if fmt not in REQUIRED_COLUMNS:
        raise ConfigError(f"unknown data format {fmt!r}; known formats: {', '.join(FORMATS)}")


def detect_format(columns: Sequence[str], *, source: str) -> str:
    """The one format whose required columns are in ``columns`` (see the module docstring for ties)."""
    present = set(columns)
    matches = [f for f, req in REQUIRED_COLUMNS.items() if present.issuperset(req)]
    # Drop a match whose columns are a strict subset of another match's: the larger one is more specific.
    matches = [f for f in matches if not any(set(REQUIRED_COLUMNS[f]) < set(REQUIRED_COLUMNS[g]) for g in matches)]
    others = sorted(present & set(_OTHER_SHAPES))
    if matches == ["text"] and others:
        raise DataError(
            f"{source}: columns [{', '.join(columns)}] have a 'text' column beside {', '.join(map(repr, others))}, "
            f"which belong to other data shapes, so it is not safe to train 'text' alone; declare the format "
            f"(format: text, or another of {', '.join(FORMATS)}) or drop the extra columns"
        )
    if len(matches) > 1:
        raise DataError(
            f"{source}: columns [{', '.join(columns)}] match several formats: "
            + ", ".join(f"{f} (needs {', '.join(REQUIRED_COLUMNS[f])})" for f in matches)
            + "; declare the one to use with format: on the source, or drop or rename the other columns"
        )
    if matches:
        return matches[0]
    raise DataError(
        f"{source}: cannot detect the data format from columns [{', '.join(columns) or 'none'}]; "
        f"each format needs these columns ({_needs()}); rename columns with a column mapping or "
        f"declare the format"
    )


def check_format(fmt: str, columns: Sequence[str], *, source: str) -> None:
    """Check that a format the user declared has its required columns in ``columns``."""
    _check_known(fmt)
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in columns]
    if missing:
        raise DataError(
            f"{source}: format {fmt!r} needs column {missing[0]!r}, which is missing; "
            f"columns found: [{', '.join(columns) or 'none'}]"
        )


def _where(source: str, index: int) -> str:
    return f"{source} row index {index}"


def _check_text_field(row: Mapping, field: str, *, source: str, index: int) -> None:
    value = row.get(field)
    if value is None:
        raise DataError(f"{_where(source, index)}: field {field!r} is missing (null)")
    if not isinstance(value, str):
        raise DataError(
            f"{_where(source, index)}: field {field!r} must be a string, got {type(value).__name__} {value!r:.60}"
        )
    if not value.strip():
        raise DataError(f"{_where(source, index)}: field {field!r} is empty")


def _check_messages(value: Any, *, source: str, index: int) -> None:
    where = _where(source, index)
    if not isinstance(value, list) or not value:
        kind = "an empty list" if isinstance(value, list) else type(value).__name__
        raise DataError(f"{where}: field 'messages' must be a non-empty list of {{role, content}}, got {kind}")
    has_answer = False
    for turn, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise DataError(f"{where}: messages[{turn}] must be a dict with 'role' and 'content', got "
                            f"{type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in ROLES:
            raise DataError(f"{where}: messages[{turn}] has role {role!r}; known roles: {', '.join(ROLES)}")
        calls = message.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise DataError(f"{where}: messages[{turn}] ({role}) has tool_calls; only assistant turns call tools")
            check_tool_calls(calls, where=where, turn=turn)
        if not isinstance(content, str) and not (calls and content is None):
            raise DataError(f"{where}: messages[{turn}] ({role}) content must be a string, got "
                            f"{type(content).__name__}")
        if role == "assistant" and ((content or "").strip() or calls):
            has_answer = True
    if not has_answer:
        raise DataError(f"{where}: field 'messages' has no assistant turn with non-empty content, so nothing "
                        f"would be trained")


def validate_row(row: Mapping, fmt: str, *, source: str, index: int) -> None:
    """Raise :class:`DataError` naming ``source``, the row index and the field if ``row`` is unusable."""
    _check_known(fmt)
    if fmt == "oasst":
        raise DataError(f"{_where(source, index)}: {public.OASST_HINT}")
    if fmt == "messages":
        _check_messages(row.get("messages"), source=source, index=index)
        row_tools(row, where=_where(source, index))
        return
    if fmt == "sharegpt":
        messages = public.sharegpt_messages(row, source=source, index=index)
        try:
            _check_messages(messages, source=source, index=index)
        except DataError as e:  # same checks, named as the user's column
            raise DataError(str(e).replace("field 'messages'", "field 'conversations'")) from None
        row_tools(row, where=_where(source, index))
        return
    for field in REQUIRED_COLUMNS[fmt]:
        _check_text_field(row, field, source=source, index=index)
    if fmt == "alpaca":
        extra = row.get("input")
        if extra is not None and not isinstance(extra, str):
            raise DataError(f"{_where(source, index)}: field 'input' must be a string or empty, got "
                            f"{type(extra).__name__}")
    if fmt == "dolly":
        public.check_dolly_context(row, source=source, index=index)


def prompt_and_completion(row: Mapping, fmt: str) -> tuple[str, str]:
    """The (prompt, completion) strings of a two-field format row (alpaca: instruction + "\\n\\n" + input;
    dolly: instruction + "\\n\\n" + context)."""
    prompt_field, completion_field = _PAIR_FIELDS[fmt]
    prompt = row[prompt_field]
    if fmt == "alpaca" and row.get("input"):
        prompt = f"{prompt}\n\n{row['input']}"
    if fmt == "dolly":
        prompt = public.dolly_prompt(row)
    return prompt, row[completion_field]


def to_messages(row: Mapping, fmt: str) -> list[dict] | None:
    """The row as a chat (one user turn and one assistant turn for the two-field formats); ``None`` for text."""
    _check_known(fmt)
    if fmt == "text":
        return None
    if fmt == "messages":
        return chat_messages(row["messages"])
    if fmt == "sharegpt":
        return chat_messages(public.sharegpt_messages(row, source="data", index=-1))
    prompt, completion = prompt_and_completion(row, fmt)
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
