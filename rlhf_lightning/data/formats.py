"""Supervised dataset formats: which columns each needs, how rows are checked, and how they become chats.

| format | required columns | optional |
|---|---|---|
| ``messages`` | ``messages``: a list of ``{"role", "content"}``, roles system/user/assistant | |
| ``prompt_completion`` | ``prompt``, ``completion`` (TRL's naming) | |
| ``prompt_response`` | ``prompt``, ``response`` (the seed projects' CSV) | |
| ``alpaca`` | ``instruction``, ``output`` | ``input`` |
| ``text`` | ``text`` (plain language modelling, every token trained) | |

Row numbers in error messages are the 0-based index of the row in the loaded dataset ("row index 3"
is the fourth record; for a CSV file that is line 5, counting the header).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlhf_lightning.errors import ConfigError, DataError

# Detection order: the most specific column sets first, ``text`` last (many datasets carry a ``text``
# column beside their real fields).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "prompt_response": ("prompt", "response"),
    "alpaca": ("instruction", "output"),
    "text": ("text",),
}
FORMATS: tuple[str, ...] = tuple(REQUIRED_COLUMNS)
ROLES: tuple[str, ...] = ("system", "user", "assistant")

# (prompt field, completion field) of the two-field formats.
_PAIR_FIELDS: dict[str, tuple[str, str]] = {
    "prompt_completion": ("prompt", "completion"),
    "prompt_response": ("prompt", "response"),
    "alpaca": ("instruction", "output"),
}


def _needs() -> str:
    return "; ".join(f"{fmt}: {', '.join(cols)}" for fmt, cols in REQUIRED_COLUMNS.items())


def _check_known(fmt: str) -> None:
    if fmt not in REQUIRED_COLUMNS:
        raise ConfigError(f"unknown data format {fmt!r}; known formats: {', '.join(FORMATS)}")


def detect_format(columns: Sequence[str], *, source: str) -> str:
    """The first format (in :data:`FORMATS` order) whose required columns are all in ``columns``."""
    present = set(columns)
    for fmt, required in REQUIRED_COLUMNS.items():
        if present.issuperset(required):
            return fmt
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
        if not isinstance(content, str):
            raise DataError(f"{where}: messages[{turn}] ({role}) content must be a string, got "
                            f"{type(content).__name__}")
        if role == "assistant" and content.strip():
            has_answer = True
    if not has_answer:
        raise DataError(f"{where}: field 'messages' has no assistant turn with non-empty content, so nothing "
                        f"would be trained")


def validate_row(row: Mapping, fmt: str, *, source: str, index: int) -> None:
    """Raise :class:`DataError` naming ``source``, the row index and the field if ``row`` is unusable."""
    _check_known(fmt)
    if fmt == "messages":
        _check_messages(row.get("messages"), source=source, index=index)
        return
    for field in REQUIRED_COLUMNS[fmt]:
        _check_text_field(row, field, source=source, index=index)
    if fmt == "alpaca":
        extra = row.get("input")
        if extra is not None and not isinstance(extra, str):
            raise DataError(f"{_where(source, index)}: field 'input' must be a string or empty, got "
                            f"{type(extra).__name__}")


def prompt_and_completion(row: Mapping, fmt: str) -> tuple[str, str]:
    """The (prompt, completion) strings of a two-field format row (alpaca: instruction + "\\n\\n" + input)."""
    prompt_field, completion_field = _PAIR_FIELDS[fmt]
    prompt = row[prompt_field]
    if fmt == "alpaca" and row.get("input"):
        prompt = f"{prompt}\n\n{row['input']}"
    return prompt, row[completion_field]


def to_messages(row: Mapping, fmt: str) -> list[dict] | None:
    """The row as a chat (one user turn and one assistant turn for the two-field formats); ``None`` for text."""
    _check_known(fmt)
    if fmt == "text":
        return None
    if fmt == "messages":
        return row["messages"]
    prompt, completion = prompt_and_completion(row, fmt)
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
