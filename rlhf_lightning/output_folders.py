"""Which folders an output (a model export, an evaluation report) may replace.

Writing an output replaces its folder whole (:func:`rlhf_lightning.atomic_paths.atomic_directory`),
so it may only replace what an earlier output of the same kind wrote. Each output puts a marker file
in its folder (``.rlhf-lightning-export``, ``.rlhf-lightning-report``); a target is replaceable when it
is absent, an empty folder, or a folder holding that marker (files added later by the pipeline, such
as ``pipeline_step.json``, go with it). Anything else is refused with the folder's name and a few of
the names in it, before anything is written or deleted.

Never replaceable, even when marked: the current folder or one that contains it, and a folder that is
or contains one of the caller's ``protect`` paths (the run's own folder, its checkpoints, its logs):
an export once written into an empty run folder would otherwise delete the checkpoints written there
later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

from rlhf_lightning.errors import ExportError

_PathLike = Union[str, os.PathLike]
SHOWN_NAMES = 5


def marker_name(what: str) -> str:
    """The marker file an output of kind ``what`` (``"export"``, ``"report"``) leaves in its folder."""
    return f".rlhf-lightning-{what}"


def write_marker(folder: _PathLike, what: str) -> Path:
    """Put the marker of kind ``what`` into ``folder`` (a folder being built); returns its path."""
    path = Path(folder) / marker_name(what)
    path.write_text(f"Written by rlhf-lightning: this {what} folder is replaced whole by the next {what} "
                    "written to it. Keep your own files elsewhere.\n", encoding="utf-8")
    return path


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_replaceable(target: _PathLike, what: str = "export", protect: Iterable[_PathLike] = ()) -> Path:
    """Raise ExportError unless the output ``target`` may be replaced (see the module docstring);
    return its absolute path. Reads the filesystem, changes nothing."""
    given = Path(target).expanduser()
    absolute = given.absolute()
    real = Path(os.path.realpath(absolute))
    head = f"cannot write the {what} to {given}"
    cwd = Path(os.path.realpath(os.getcwd()))
    if _is_within(cwd, real):
        where = "the current folder" if real == cwd else f"a folder containing the current folder ({cwd})"
        raise ExportError(f"{head}: it is {where}, which the {what} would replace; give a folder of its own")
    for path in protect:
        kept = Path(os.path.realpath(Path(path).expanduser().absolute()))
        if _is_within(kept, real):
            raise ExportError(f"{head}: it is or contains {path}, which the {what} would delete; "
                              f"give the {what} a folder of its own")
    if not (absolute.exists() or absolute.is_symlink()):
        return absolute
    if not absolute.is_dir():
        raise ExportError(f"{head}: it exists and is not a folder")
    names = sorted(os.listdir(absolute))
    if not names or marker_name(what) in names:
        return absolute
    shown = ", ".join(names[:SHOWN_NAMES]) + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES
                                             else "")
    raise ExportError(f"{head}: the folder is not empty and is not an earlier {what} (no {marker_name(what)} "
                      f"file); it holds {shown}. Nothing was changed: choose an empty or new folder, or move "
                      "those files away")
