"""Unpaired preference rows (KTO): one completion per row, labelled desirable or undesirable.

Every supported layout is normalised to records ``{"prompt": str | list[message], "completion":
str | list[message], "label": bool}``:

| format | columns | becomes |
|---|---|---|
| ``unpaired`` | ``prompt``, ``completion``, ``label`` (TRL's unpaired preference layout; prompt and completion strings, or message lists: the conversational layout) | one row |
| ``binary`` | ``prompt``, ``response``, ``label`` (the comparison data's good/bad rows) | one row |
| ``pairwise``, ``implicit_pairwise``, ``tldr``, ``sharegpt``, ``alpaca`` (see :mod:`.comparisons`) | pairs | two rows: chosen desirable, rejected undesirable (TRL's ``unpair_preference_dataset``) |

A label is ``true``/``false`` (JSON booleans; ``1``/``0`` and the strings ``"true"``/``"false"`` as
CSV cells are read too); anything else, or a missing label, is an error naming the row.
Row numbers in errors are 0-based dataset indices ("row index 3").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlhf_lightning.data import comparisons
from rlhf_lightning.errors import ConfigError, DataError

UNPAIRED_COLUMNS: tuple[str, ...] = ("prompt", "completion", "label")
UNPAIRED_FORMATS: tuple[str, ...] = ("unpaired", "binary", *comparisons.PAIRWISE_FORMATS)


def detect_unpaired_format(columns: Sequence[str], *, source: str) -> str:
    """``unpaired`` when ``prompt``, ``completion`` and ``label`` are present, else a comparison format
    that has labels (``binary``) or pairs; other layouts raise :class:`DataError` saying what is needed."""
    present = set(columns)
    if present.issuperset(UNPAIRED_COLUMNS):
        return "unpaired"
    if {"prompt", "completion"} <= present:
        raise DataError(f"{source}: rows have 'prompt' and 'completion' but no 'label' column; unpaired preference "
                        f"rows need label: true (desirable) or false (undesirable); columns found: "
                        f"[{', '.join(columns)}]")
    try:
        fmt = comparisons.detect_comparison_format(columns, source=source)
    except DataError:
        raise DataError(f"{source}: cannot detect an unpaired preference format from columns "
                        f"[{', '.join(columns) or 'none'}]; give prompt, completion, label (unpaired), prompt, "
                        f"response, label (binary) or preference pairs (prompt, chosen, rejected)") from None
    check_unpaired_format(fmt, columns, source=source)
    return fmt


def check_unpaired_format(fmt: str, columns: Sequence[str], *, source: str) -> None:
    """A declared or detected format must be one this data has labels for, with its columns present."""
    if fmt not in UNPAIRED_FORMATS:
        known = comparisons.COMPARISON_FORMATS
        if fmt in known:
            raise ConfigError(f"{source}: format {fmt!r} has no desirable/undesirable labels; unpaired preference "
                              f"training reads {', '.join(UNPAIRED_FORMATS)}")
        raise ConfigError(f"unknown unpaired preference format {fmt!r}; known: {', '.join(UNPAIRED_FORMATS)}")
    if fmt == "unpaired":
        missing = [c for c in UNPAIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"{source}: format 'unpaired' needs column(s) {', '.join(missing)}; "
                            f"found [{', '.join(columns) or 'none'}]")
        return
    comparisons.check_comparison_format(fmt, columns, source=source)


def desirable(value: Any, where: str) -> bool:
    """A row's ``label`` as a bool: ``True`` desirable, ``False`` undesirable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if value is None:
        raise DataError(f"{where}: field 'label' is missing; each row needs label: true (desirable) or false "
                        f"(undesirable)")
    raise DataError(f"{where}: field 'label' must be true (desirable) or false (undesirable), got "
                    f"{type(value).__name__} {value!r:.60}")


def to_unpaired(row: Mapping, fmt: str, *, source: str, index: int) -> list[dict[str, Any]]:
    """Validate one row and normalise it to one (``unpaired``, ``binary``) or two (pairs) records."""
    where = f"{source} row index {index}"
    if fmt == "unpaired":
        prompt = comparisons._prompt(row, where)
        completion = comparisons._response(row, "completion", where)
        if isinstance(prompt, list) != isinstance(completion, list):
            raise DataError(f"{where}: prompt and completion must both be texts or both be message lists")
        return [{"prompt": prompt, "completion": completion, "label": desirable(row.get("label"), where)}]
    comp = comparisons.to_comparison(row, fmt, source=source, index=index)
    if fmt == "binary":
        return [{"prompt": comp["prompt"], "completion": comp["responses"][0], "label": comp["scores"][0] == 1.0}]
    if fmt not in comparisons.PAIRWISE_FORMATS:
        raise ConfigError(f"{source}: format {fmt!r} has no desirable/undesirable labels")
    chosen, rejected = comp["responses"]
    return [{"prompt": comp["prompt"], "completion": chosen, "label": True},
            {"prompt": comp["prompt"], "completion": rejected, "label": False}]
