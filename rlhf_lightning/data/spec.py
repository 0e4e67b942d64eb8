"""Typed data-source options, as written in YAML (no heavy imports)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Optional, Union

from rlhf_lightning.data.prompt_templates import template_fields
from rlhf_lightning.errors import ConfigError


@dataclass
class DataSource:
    """One dataset: a local json/jsonl/csv/parquet file or a hub dataset id.

    Args:
        path: file path or hub id.
        split: the split to read (hub datasets; local files are one ``train`` split).
        format: declared format (``text``, ``prompt_response``, ``prompt_completion``, ``alpaca``,
            ``dolly``, ``messages``, ``sharegpt``, ``oasst``, or a stage-specific one); detected from
            the columns when omitted, and required where the columns fit several formats.
        columns: renames ``{column_in_file: column_we_expect}``, e.g. ``{question: prompt}``.
        prompt_template: builds each row's ``prompt`` from its columns (after renaming), e.g.
            ``"Summarize:\\n{text}\\n\\nTL;DR:"`` (:mod:`rlhf_lightning.data.prompt_templates`).
        subset: hub dataset configuration name.
        revision: hub revision.
        weight: sampling probability of this training source in a mixture, normalised over the
            sources (:mod:`rlhf_lightning.data.mixture`): give every training source a weight or none
            (none: the sources are concatenated). An epoch stays the size of the concatenation.
    """

    path: str
    split: str = "train"
    format: Optional[str] = None
    columns: Optional[dict[str, str]] = None
    prompt_template: Optional[str] = None
    subset: Optional[str] = None
    revision: Optional[str] = None
    weight: Optional[float] = None


# Typed as plain str/dict on purpose: with a dataclass in the annotation, jsonargparse would try to
# read a string value as a config file, and a data file such as ``rows.json`` would be parsed as
# options (an empty ``.jsonl`` silently became "no sources"). ``as_sources`` validates the dicts.
SourcesArg = Union[str, dict[str, Any], list[Union[str, dict[str, Any]]]]


def as_sources(value: Optional[Union[SourcesArg, DataSource, list[DataSource]]], *, option: str = "data",
               weighted: bool = False) -> list[DataSource]:
    """Normalise a YAML value (a path, a ``DataSource`` mapping, or a list of either) to DataSources.

    ``weighted``: the sources may carry mixture weights (training sources); each must then be a
    positive finite number, and either every source has one or none does."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    known = {f.name for f in fields(DataSource)}
    sources = []
    for i, item in enumerate(items):
        if isinstance(item, DataSource):
            sources.append(item)
        elif isinstance(item, str):
            sources.append(DataSource(path=item))
        elif isinstance(item, dict):
            unknown = sorted(set(item) - known)
            if unknown or "path" not in item:
                problem = f"unknown key(s) {unknown}" if unknown else "no 'path'"
                raise ConfigError(f"{option}[{i}]: {problem}; a data source takes {sorted(known)}")
            sources.append(DataSource(**item))
        else:
            raise ConfigError(f"{option}[{i}]: expected a path or a mapping with 'path', got {type(item).__name__}")
        if sources[-1].prompt_template is not None:
            template_fields(sources[-1].prompt_template, option=f"{option}[{i}].prompt_template")
        _check_weight(sources[-1].weight, f"{option}[{i}].weight", weighted)
    given = [s.weight is not None for s in sources]
    if any(given) and not all(given):
        i = given.index(False)
        raise ConfigError(f"{option}[{i}].weight is missing: give every source a weight or none (weights are "
                          f"sampling probabilities, normalised over the sources)")
    return sources


def _check_weight(weight: Any, where: str, weighted: bool) -> None:
    if weight is None:
        return
    if not weighted:
        raise ConfigError(f"{where}: weights mix training sources (data.train); these sources are read whole")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"{where} must be a positive finite number (a sampling probability before "
                          f"normalisation), got {weight!r}")
