"""Put a finished folder in place of another in one step, and clear what killed writers left behind.

Writers build a new checkpoint or export in a hidden sibling (``.<name>.tmp-<pid>-<random>``, same
filesystem) and hand it to :func:`replace_directory`. On Linux that swaps the two paths with one
``renameat2(RENAME_EXCHANGE)`` call (ext4, xfs, btrfs, tmpfs; Linux >= 3.15, glibc >= 2.28), so at
every instant ``<name>`` is either the complete old folder or the complete new one; the old one is
then deleted from its hidden name. Where the exchange is not available (other systems, NFS), the old
folder is renamed aside to ``.<name>.old-<pid>-<random>`` and the new one renamed in: a kill between
those two renames leaves no ``<name>`` and the previous contents under the ``.old-`` name.

Leftovers of killed writers (``.tmp-`` and ``.old-`` siblings whose process no longer runs on this
host) are removed by the next writer of the same name (:func:`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_PathLike = Union[str, os.PathLike]


def staging_path(target: _PathLike, kind: str = "tmp") -> Path:
    """A fresh, absent sibling name ``.<name>.<kind>-<pid>-<random>`` for ``target``."""
    target = Path(target)
    made = tempfile.mkdtemp(prefix=f".{target.name}.{kind}-{os.getpid()}-", dir=target.parent)
    os.rmdir(made)  # only the unique name was wanted
    return Path(made)


def exchange(a: _PathLike, b: _PathLike) -> bool:
    """Atomically swap two existing paths; False where the system or filesystem cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # flag or call not supported here: the caller falls back to two renames
    raise OSError(err, f"cannot exchange {a} and {b}: {os.strerror(err)}")


def replace_directory(new: _PathLike, target: _PathLike) -> None:
    """Make the complete folder ``new`` appear as ``target`` (folder or file, or absent) and delete
    what ``target`` was. ``new`` and ``target`` must be on the same filesystem."""
    new, target = Path(new), Path(target)
    if not (target.exists() or target.is_symlink()):
        os.replace(new, target)
    elif exchange(new, target):
        _delete(new)  # ``new`` now names the previous contents
    else:
        old = staging_path(target, "old")
        os.replace(target, old)
        try:
            os.replace(new, target)
        except BaseException:
            os.replace(old, target)
            raise
        _delete(old)
    fsync_dir(target.parent)


def remove_leftovers(target: _PathLike) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>-*`` / ``.<name>.old-<pid>-*`` siblings of ``target`` whose process
    is gone (a writer killed mid-way); returns what was deleted."""
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for kind in ("tmp", "old"):
        prefix = f".{target.name}.{kind}-"
        for path in target.parent.iterdir():
            if not path.name.startswith(prefix):
                continue
            pid = path.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _process_running(int(pid)):
                _delete(path)
                removed.append(path)
    return removed


def fsync_dir(folder: _PathLike) -> None:
    """Make renames inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _process_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def atomic_directory(out_dir: _PathLike, what: str = "export") -> Iterator[Path]:
    """Yield a fresh staging folder that replaces ``out_dir`` when the block finishes cleanly.

    The staging folder is ``.<name>.tmp-<pid>-<random>`` beside ``out_dir`` (same filesystem); it
    replaces ``out_dir`` with :func:`replace_directory`, and leftovers of killed writers of the same
    ``out_dir`` are deleted first. If the block raises, the staging folder is removed, ``out_dir`` is
    left exactly as it was, and an ExportError naming ``what`` (``"export"``, ``"report"``),
    ``out_dir`` and the cause is raised.
    """
    from rlhf_lightning.errors import ExportError

    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"cannot write the {what} to {out_dir}: it exists and is not a folder")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir)
        tmp = staging_path(out_dir)
        tmp.mkdir()
    except OSError as exc:
        raise ExportError(f"cannot write the {what} to {out_dir}: {exc}") from exc
    try:
        yield tmp
        replace_directory(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ExportError) or not isinstance(exc, Exception):
            raise  # already explained, or KeyboardInterrupt / SystemExit
        raise ExportError(f"writing the {what} to {out_dir} failed, previous {what} kept: "
                          f"{type(exc).__name__}: {exc}") from exc
