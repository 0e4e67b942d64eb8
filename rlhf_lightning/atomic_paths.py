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

Every file and folder is fsynced before it is renamed into place (:func:`fsync_tree`,
:func:`atomic_file`), so after a power loss the target is the old or the new version, never a new
name pointing to empty files. A full disk (ENOSPC, EDQUOT, when writing or when fsync reports a
lost write) becomes a :class:`~rlhf_lightning.errors.DiskFullError` naming the path; the previous
version stays and the partial one is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional, Union

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_PathLike = Union[str, os.PathLike]
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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


def fsync_file(path: _PathLike) -> None:
    """Flush a written file's data to disk; raises what fsync reports (ENOSPC, EIO), except where the
    filesystem does not support fsync."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def fsync_tree(folder: _PathLike) -> None:
    """fsync every file under ``folder``, then every folder (deepest first), before it is renamed in."""
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                fsync_file(path)
        fsync_dir(root)


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


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from, or a failure it gathers) is a full disk or quota:
    an OSError with ENOSPC/EDQUOT, or a library error that only kept its message (safetensors)."""
    seen: set[int] = set()
    todo: list[Optional[BaseException]] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return True
        if any(os.strerror(code) in str(e) for code in _DISK_FULL):
            return True
        failures = getattr(e, "failures", None)  # torch.distributed.checkpoint's CheckpointException:
        failed = failures.values() if isinstance(failures, dict) else []  # rank -> (exception, traceback)
        todo += [e.__cause__, e.__context__, *(f[0] if isinstance(f, tuple) else f for f in failed)]
    return False


def disk_full_error(what: str, path: _PathLike, partial: str = "file"):
    """The user-facing error for a full disk while writing ``what`` (``"checkpoint"``) to ``path``."""
    from rlhf_lightning.errors import DiskFullError

    return DiskFullError(f"the disk is full (no space left on device or quota exceeded) while writing the {what} "
                         f"{path}: the partial {partial} was removed and any earlier {what} at that path is unchanged; "
                         "free some space and run again")


@contextlib.contextmanager
def atomic_file(path: _PathLike, mode: str = "wb", *, what: str = "file",
                encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a staging sibling of ``path`` for writing; when the block finishes cleanly it is flushed,
    fsynced and renamed onto ``path``, and the folder fsynced. If the block raises, the staging file
    is removed and ``path`` left as it was; a full disk raises DiskFullError naming ``what``."""
    from rlhf_lightning.errors import ConfigError

    target = Path(os.path.abspath(os.fspath(path)))
    if target.is_dir():
        raise ConfigError(f"cannot write the {what} to {path}: it is a folder; give a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)  # left by a process killed while writing this file
    tmp = staging_path(target)
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise disk_full_error(what, target) from exc
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_directory(out_dir: _PathLike, what: str = "export") -> Iterator[Path]:
    """Yield a fresh staging folder that replaces ``out_dir`` when the block finishes cleanly.

    ``out_dir`` must be absent, empty or an earlier output of kind ``what`` (``"export"``,
    ``"report"``), and not the current folder (:func:`~rlhf_lightning.output_folders.check_replaceable`,
    checked before and again just before the swap); otherwise ExportError, and nothing is touched.
    The staging folder is ``.<name>.tmp-<pid>-<random>`` beside ``out_dir`` (same filesystem); the
    block fills it, the marker of ``what`` is added, every file is fsynced and it replaces
    ``out_dir`` with :func:`replace_directory`; leftovers of killed writers of the same ``out_dir``
    are deleted first. If the block raises, the staging folder is removed, ``out_dir`` is left exactly
    as it was, and an ExportError naming ``what``, ``out_dir`` and the cause is raised (DiskFullError
    for a full disk).
    """
    from rlhf_lightning.errors import ExportError, RLHFError
    from rlhf_lightning.output_folders import check_replaceable, write_marker

    out_dir = check_replaceable(out_dir, what)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir)
        tmp = staging_path(out_dir)
        tmp.mkdir()
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(what, out_dir, "folder") from exc
        raise ExportError(f"cannot write the {what} to {out_dir}: {exc}") from exc
    try:
        yield tmp
        write_marker(tmp, what)
        fsync_tree(tmp)
        check_replaceable(out_dir, what)  # files may have been put there while the output was written
        replace_directory(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, RLHFError) or not isinstance(exc, Exception):
            raise  # already explained, or KeyboardInterrupt / SystemExit
        if is_disk_full(exc):
            raise disk_full_error(what, out_dir, "folder") from exc
        raise ExportError(f"writing the {what} to {out_dir} failed, previous {what} kept: "
                          f"{type(exc).__name__}: {exc}") from exc
