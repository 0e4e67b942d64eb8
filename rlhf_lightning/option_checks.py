"""Range checks for option dataclasses (``__post_init__``) and plugin constructors (``__init__``).

Each raises :class:`~rlhf_lightning.errors.InvalidOption` naming the option, the allowed range and the
value given; ``owner`` is the object being built (``self``), so the CLI can name the config path.
"""

from __future__ import annotations

import math
from typing import Optional

from rlhf_lightning.errors import InvalidOption


def require(owner: object, option: str, ok: bool, rule: str, value: object, message: Optional[str] = None) -> None:
    """Raise ``InvalidOption(owner, option, rule, value, message)`` unless ``ok`` (``message``: the text
    outside the CLI, where it differs from ``"<option>: <rule>, got <value>"``)."""
    if not ok:
        raise InvalidOption(owner, option, rule, value, message)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def positive(owner: object, option: str, value: Optional[float], *, optional: bool = False) -> None:
    """``value > 0`` (``None`` allowed when ``optional``)."""
    if optional and value is None:
        return
    require(owner, option, _number(value) and value > 0, "must be > 0", value)


def non_negative(owner: object, option: str, value: Optional[float], *, optional: bool = False) -> None:
    """``value >= 0`` (``None`` allowed when ``optional``)."""
    if optional and value is None:
        return
    require(owner, option, _number(value) and value >= 0, "must be >= 0", value)


def at_least(owner: object, option: str, value: Optional[float], low: float, *, optional: bool = False) -> None:
    """``value >= low`` (``None`` allowed when ``optional``)."""
    if optional and value is None:
        return
    require(owner, option, _number(value) and value >= low, f"must be >= {low}", value)


def in_range(owner: object, option: str, value: Optional[float], low: float, high: float, *,
             high_open: bool = False, low_open: bool = False) -> None:
    """``value`` in ``[low, high]``; ``low_open``/``high_open`` exclude an end."""
    ok = _number(value) and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    rule = f"must be in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    require(owner, option, ok, rule, value)
