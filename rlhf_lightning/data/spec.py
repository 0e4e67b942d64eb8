"""Typed data-source options, as written in YAML (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


@dataclass
class DataSource:
    """One dataset: a local json/jsonl/csv/parquet file or a hub dataset id.

    Args:
        path: file path or hub id.
        split: the split to read (hub datasets; local files are one ``train`` split).
        format: declared format (``text``, ``prompt_response``, ``prompt_completion``, ``alpaca``,
            ``messages``, or a stage-specific one); detected from the columns when omitted.
        columns: renames ``{column_in_file: column_we_expect}``, e.g. ``{question: prompt}``.
        subset: hub dataset configuration name.
        revision: hub revision.
    """

    path: str
    split: str = "train"
    format: Optional[str] = None
    columns: Optional[dict[str, str]] = None
    subset: Optional[str] = None
    revision: Optional[str] = None


SourcesArg = Union[str, DataSource, list[Union[str, DataSource]]]


def as_sources(value: Optional[SourcesArg]) -> list[DataSource]:
    """Normalise a YAML value (a path, a DataSource, or a list of either) to a list of DataSource."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [DataSource(path=v) if isinstance(v, str) else v for v in items]
