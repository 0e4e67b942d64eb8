"""Prompt templates: a row's ``prompt`` built from its columns, e.g. ``"Summarize:\\n{text}\\n\\nTL;DR:"``.

A template is a Python format string whose fields are column names (``{text}``, ``{title}``; a
template may use ``{prompt}`` itself and so wrap an existing prompt). ``{{`` and ``}}`` are literal
braces. The filled string becomes the row's ``prompt`` column; the other columns stay (a summary's
``reference`` still reaches the ``rouge`` reward). Conversational rows (``messages``) are refused: a
template builds a plain prompt. Positional fields (``{}``, ``{0}``), attribute or
index access (``{a.b}``, ``{a[0]}``) and format specs are refused: a column is inserted as it is.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from rlhf_lightning.errors import ConfigError, DataError


def template_fields(template: str, *, option: str = "prompt_template") -> list[str]:
    """The column names ``template`` uses, in order (each once); ConfigError naming ``option`` if malformed."""
    if not isinstance(template, str) or not template:
        raise ConfigError(f"{option}: must be a non-empty string, got {template!r}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc} in {template!r} (write {{{{ and }}}} for literal braces)") from exc
    names: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ConfigError(f"{option}: field {{{name}}} in {template!r} is not a column name (use {{column}}; "
                              "positional, attribute and index fields are not supported)")
        if spec or conversion:
            raise ConfigError(f"{option}: field {{{name}}} in {template!r} has a format spec or conversion; "
                              "columns are inserted as they are")
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"{option}: {template!r} uses no column (write e.g. \"Summarize:\\n{{text}}\\n\\nTL;DR:\")")
    return names


def fill_template(template: str, row: Mapping[str, Any], *, source: str, index: int) -> str:
    """``template`` with each ``{column}`` replaced by the row's value (a string or a number)."""
    if row.get("messages") is not None:
        raise DataError(f"{source} row index {index}: prompt_template builds a plain prompt, but the row is "
                        "conversational ('messages'); drop the template or the messages column")
    values = {}
    for name in template_fields(template):
        value = row.get(name)
        if name not in row or value is None:
            raise DataError(f"{source} row index {index}: prompt_template needs column {name!r}, which the row "
                            f"{'lacks' if name not in row else 'has empty'}; columns present: {', '.join(row) or 'none'}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise DataError(f"{source} row index {index}: prompt_template column {name!r} must be a string or a "
                            f"number, got {type(value).__name__}")
        values[name] = value
    return template.format_map(values)
