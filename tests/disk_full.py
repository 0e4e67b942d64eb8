"""A full disk, simulated at the I/O primitives (not in the code under test).

* :func:`fill_disk`: files opened for writing with Python's ``open`` under a folder accept ``budget``
  more bytes in all, then a write stores what fits and raises ``OSError(ENOSPC)``, as ``write(2)``
  does on a full filesystem. Writers in compiled code (safetensors) are not affected.
* :func:`fail_fsync`: ``os.fsync`` of a regular file raises ``OSError(ENOSPC)``, as it does when
  delayed allocation finds no space for data the writes had accepted.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import stat
from pathlib import Path


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FillingFile:
    def __init__(self, file, left: list[int]) -> None:
        self._file = file
        self._left = left

    def write(self, data):
        if len(data) > self._left[0]:
            self._file.write(data[:self._left[0]])
            self._left[0] = 0
            raise _enospc()
        self._left[0] -= len(data)
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def fill_disk(monkeypatch, under: Path, budget: int = 0) -> None:
    """Writes through ``open()`` to files under ``under`` fail once ``budget`` bytes are written."""
    real_open, left, root = builtins.open, [budget], Path(under).absolute()

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            path = Path(os.fspath(file)).absolute()
            if path == root or root in path.parents:
                return _FillingFile(f, left)
        return f

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


def fail_fsync(monkeypatch) -> None:
    """``os.fsync`` of regular files raises ENOSPC (folders still sync)."""
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise _enospc()
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def make_disk_full(how: str, monkeypatch, under: Path, budget: int = 0) -> None:
    """``how`` = ``"write"`` (:func:`fill_disk`) or ``"fsync"`` (:func:`fail_fsync`)."""
    fill_disk(monkeypatch, under, budget) if how == "write" else fail_fsync(monkeypatch)
