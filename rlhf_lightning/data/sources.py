"""Where rows come from: a local file or a Hugging Face Hub dataset, loaded as a ``datasets.Dataset``.

Every failure here is the user's (a missing file, a misspelt column, an empty file, no hub access), so
each raises :class:`~rlhf_lightning.errors.DataError` naming the source and what was found instead.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import datasets

from rlhf_lightning.data.prompt_templates import fill_template
from rlhf_lightning.data.spec import DataSource
from rlhf_lightning.data.text_files import check_utf8, first_json_error
from rlhf_lightning.errors import ConfigError, DataError

# File extension -> ``datasets`` builder. ``.json`` holds either one JSON list or JSON lines; the json
# builder reads both.
FILE_BUILDERS: dict[str, str] = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def _is_local(source: str) -> bool:
    return os.path.exists(source) or Path(source).suffix.lower() in FILE_BUILDERS


def _csv_header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def _load_local(path: str) -> datasets.Dataset:
    ext = Path(path).suffix.lower()
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    if os.path.isdir(path):
        builder, kwargs = None, {}
    elif ext not in FILE_BUILDERS:
        raise DataError(f"{path}: unsupported file type {ext!r}; use one of {', '.join(FILE_BUILDERS)}")
    else:
        builder, kwargs = FILE_BUILDERS[ext], {"data_files": path}
    if builder in ("csv", "json"):
        check_utf8(path)  # the json builder drops undecodable bytes silently; pandas names no offset
    if builder == "csv":
        header = _csv_header(path)
        if not header:
            raise DataError(f"{path}: no rows (the CSV file is empty)")
        # Every CSV cell is read as a string: without this, a response column of numbers would become
        # int64 and the string check would reject it; and pandas' default NA parsing would turn the
        # literal answers "NA" / "None" / "null" into missing values.
        kwargs.update(
            encoding="utf-8",
            keep_default_na=False,
            features=datasets.Features({name: datasets.Value("string") for name in header}),
        )
    try:
        with _builder_errors_not_logged():
            if builder is None:
                return datasets.load_dataset(path, split="train")
            return datasets.load_dataset(builder, split="train", **kwargs)
    except DataError:
        raise
    except Exception as e:  # the builders raise many types; the user needs the file and the reason
        if _looks_empty(path, e):
            raise DataError(f"{path}: no rows (the file holds no records)") from e
        reason = first_json_error(path) if builder == "json" else None
        if reason:  # the builder says only "An error occurred while generating the dataset"
            raise DataError(f"{path}: {reason}") from e
        raise DataError(f"{path}: could not read the file ({type(e).__name__}: {_brief(e)})") from e


@contextlib.contextmanager
def _builder_errors_not_logged() -> Iterator[None]:
    """The builders log a parse failure ("Failed to load JSON ... in row 1", rows counted from 0)
    before raising; the DataError raised from it says it better, so the log line is left out."""
    logger = logging.getLogger("datasets.packaged_modules")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _looks_empty(path: str, e: BaseException) -> bool:
    # An empty file or a header-only CSV surfaces as an exception from the builder, not as zero rows.
    if "corresponds to no data" in str(e) or isinstance(e, StopIteration):
        return True
    if os.path.isfile(path) and os.path.getsize(path) < 64:
        with open(path, "rb") as f:
            return f.read().strip() in (b"", b"[]")
    return False


def _load_hub(name: str, split: str, subset: str | None, revision: str | None) -> datasets.Dataset:
    try:
        return datasets.load_dataset(name, subset, split=split, revision=revision)
    except Exception as e:
        raise DataError(
            f"{name!r} is not a local file, and hub access failed for dataset {name!r} "
            f"(split={split!r}, subset={subset!r}, revision={revision!r}): {type(e).__name__}: {_brief(e)}"
        ) from e


def _brief(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_rows(
    source: str,
    *,
    split: str = "train",
    columns: Mapping[str, str] | None = None,
    subset: str | None = None,
    revision: str | None = None,
) -> datasets.Dataset:
    """Load ``source`` as a ``datasets.Dataset``, with columns renamed by ``columns``.

    ``source`` is a local ``.json`` (a list or JSON lines), ``.jsonl``, ``.csv`` (UTF-8, every cell a
    string) or ``.parquet`` file, a local dataset folder, or otherwise a Hugging Face Hub dataset id.
    For local files all rows are returned and ``split``, ``subset`` and ``revision`` are not used.
    ``columns`` maps ``{source_column: our_column}``, e.g. ``{"question": "prompt"}``.
    """
    source = str(source)
    if _is_local(source):
        ds = _load_local(source)
    else:
        ds = _load_hub(source, split, subset, revision)
    if columns:
        found = list(ds.column_names)
        missing = [c for c in columns if c not in found]
        if missing:
            raise DataError(
                f"{source}: column {missing[0]!r} (mapped to {columns[missing[0]]!r}) not found; "
                f"columns found: {', '.join(found) or '(none)'}"
            )
        renames = {src: dst for src, dst in columns.items() if src != dst}
        clashes = [dst for dst in renames.values() if dst in found and dst not in renames]
        if clashes:
            raise DataError(
                f"{source}: cannot rename a column to {clashes[0]!r}: the file already has a column "
                f"{clashes[0]!r}; columns found: {', '.join(found)}"
            )
        if renames:
            ds = ds.rename_columns(renames)
    if len(ds) == 0:
        raise DataError(f"{source}: no rows (the dataset is empty; columns found: {', '.join(ds.column_names) or '(none)'})")
    return ds


def split_validation(ds: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split ``ds`` into ``(train, validation)`` with ``ceil(fraction * len(ds))`` validation rows.

    Deterministic for a given ``seed``; both sides keep the original row order (packing is greedy in data
    order, so the order is worth keeping).
    """
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction!r}")
    import numpy as np

    n = len(ds)
    n_val = math.ceil(fraction * n)
    if n_val < 1 or n - n_val < 1:
        raise DataError(
            f"cannot split {n} rows with validation fraction {fraction}: need at least one training row "
            f"and one validation row"
        )
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])
    return ds.select(train_idx.tolist()), ds.select(val_idx.tolist())


def load_source(src: DataSource) -> datasets.Dataset:
    """:func:`load_rows` with a :class:`DataSource`'s options, its ``prompt_template`` (if any) filled
    into each row's ``prompt`` column (replacing one the file has)."""
    ds = load_rows(src.path, split=src.split, columns=src.columns, subset=src.subset, revision=src.revision)
    if src.prompt_template is None:
        return ds
    if "messages" in ds.column_names:
        raise DataError(f"{src.path}: prompt_template builds a plain prompt, but the rows are conversational "
                        "('messages'); drop the template or the messages column")
    prompts = [fill_template(src.prompt_template, row, source=src.path, index=i) for i, row in enumerate(ds)]
    if "prompt" in ds.column_names:
        ds = ds.remove_columns("prompt")
    return ds.add_column("prompt", prompts)
