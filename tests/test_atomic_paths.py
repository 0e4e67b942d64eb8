"""Folder swaps, leftover clean-up, fsync before rename and full disks (rlhf_lightning/atomic_paths.py) on the
real filesystem."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_lightning import atomic_paths
from rlhf_lightning.atomic_paths import (
    atomic_directory,
    atomic_file,
    exchange,
    is_disk_full,
    remove_leftovers,
    replace_directory,
    staging_path,
)
from rlhf_lightning.errors import ConfigError, DiskFullError
from tests.disk_full import make_disk_full


def _folder(path: Path, **files: str) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _contents(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in path.iterdir()}


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_exchange_swaps_two_folders(tmp_path):
    a, b = _folder(tmp_path / "a", x="a"), _folder(tmp_path / "b", y="b")
    if not exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not available here")
    assert _contents(a) == {"y": "b"} and _contents(b) == {"x": "a"}


@pytest.mark.parametrize("exchange_available", [True, False], ids=["exchange", "two-renames"])
@pytest.mark.parametrize("before", ["folder", "file", "absent"])
def test_replace_directory_leaves_only_the_new_folder(tmp_path, monkeypatch, before, exchange_available):
    if not exchange_available:
        monkeypatch.setattr(atomic_paths, "exchange", lambda a, b: False)
    target = tmp_path / "last.ckpt"
    if before == "folder":
        _folder(target, old="1", shard="old")
    elif before == "file":
        target.write_text("old checkpoint")
    new = staging_path(target)
    assert new.parent == tmp_path and new.name.startswith(f".last.ckpt.tmp-{os.getpid()}-") and not new.exists()
    _folder(new, shard="new")
    replace_directory(new, target)
    assert _contents(target) == {"shard": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # the old one and the staging name gone


def test_failed_second_rename_restores_the_old_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_paths, "exchange", lambda a, b: False)
    target = _folder(tmp_path / "export", old="1")
    new = _folder(tmp_path / ".export.tmp-1-x", new="2")
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the new folder into place
            raise OSError("disk gone")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_paths.os, "replace", replace)
    with pytest.raises(OSError, match="disk gone"):
        replace_directory(new, target)
    assert _contents(target) == {"old": "1"} and _contents(new) == {"new": "2"}


def test_remove_leftovers_deletes_only_dead_writers_of_that_name(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    names = [f".export.tmp-{dead}-a", f".export.old-{dead}-b", f".export.tmp-{alive}-c",
             f".exports.tmp-{dead}-d", f".other.tmp-{dead}-e", "export"]
    for name in names:
        _folder(tmp_path / name, f="x")
    (tmp_path / f".export.tmp-{dead}-file").write_text("a file left by a killed writer")
    removed = remove_leftovers(tmp_path / "export")
    assert sorted(p.name for p in removed) == sorted([f".export.tmp-{dead}-a", f".export.old-{dead}-b",
                                                      f".export.tmp-{dead}-file"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {f".export.tmp-{dead}-a",
                                                                           f".export.old-{dead}-b"})
    assert remove_leftovers(tmp_path / "missing" / "export") == []


def _record_fsyncs(monkeypatch) -> list[str]:
    """Paths passed to os.fsync, in order."""
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_atomic_directory_fsyncs_every_file_and_folder_before_the_swap(tmp_path, monkeypatch):
    synced, swapped = _record_fsyncs(monkeypatch), {}
    real_replace = atomic_paths.replace_directory

    def replace(new, target):
        swapped["new"] = Path(new)
        swapped["synced"] = list(synced)
        real_replace(new, target)

    monkeypatch.setattr(atomic_paths, "replace_directory", replace)
    with atomic_directory(tmp_path / "export") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "config.json").write_text("{}")
        (tmp / "sub" / "adapter.bin").write_bytes(b"w" * 100)
    new = swapped["new"]
    expected = {new / "config.json", new / "sub" / "adapter.bin", new / ".rlhf-lightning-export", new / "sub", new}
    assert {str(p) for p in expected} <= set(swapped["synced"])
    assert str(tmp_path) in synced[len(swapped["synced"]):]  # the rename itself made durable
    assert (tmp_path / "export" / "config.json").read_text() == "{}"


def test_atomic_file_fsyncs_before_the_rename_and_replaces_a_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "scores.jsonl"
    synced = _record_fsyncs(monkeypatch)
    with atomic_file(target, "w", encoding="utf-8") as f:
        f.write("one\n")
        staging = Path(f.name)
    assert synced == [str(staging), str(target.parent)]  # the data, then the folder after the rename
    with atomic_file(target, "w", encoding="utf-8") as f:
        f.write("two\n")
    assert target.read_text() == "two\n" and os.listdir(target.parent) == ["scores.jsonl"]


def test_atomic_file_refuses_a_folder(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match="cannot write the predictions to .*out: it is a folder"):
        with atomic_file(tmp_path / "out", "w", what="predictions"):
            pass


@pytest.mark.parametrize("how", ["write", "fsync"])
def test_disk_full_in_atomic_file_keeps_the_previous_file(tmp_path, monkeypatch, how):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"previous")
    make_disk_full(how, monkeypatch, tmp_path, budget=3)
    with pytest.raises(DiskFullError) as info:
        with atomic_file(target, "wb", what="checkpoint") as f:
            f.write(b"new checkpoint bytes")
    assert f"the disk is full (no space left on device or quota exceeded) while writing the checkpoint {target}: " \
           "the partial file was removed and any earlier checkpoint at that path is unchanged" in str(info.value)
    monkeypatch.undo()
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["last.ckpt"]


@pytest.mark.parametrize("how", ["write", "fsync"])
def test_disk_full_in_atomic_directory_keeps_the_previous_folder(tmp_path, monkeypatch, how):
    target = tmp_path / "report"
    with atomic_directory(target, what="report") as tmp:
        (tmp / "report.json").write_text('{"old": true}')
    make_disk_full(how, monkeypatch, tmp_path, budget=10)
    with pytest.raises(DiskFullError, match=f"while writing the report {target}: the partial folder was removed"):
        with atomic_directory(target, what="report") as tmp:
            (tmp / "report.json").write_text('{"new": "a longer report"}')
    monkeypatch.undo()
    assert _contents(target) == {".rlhf-lightning-report": _contents(target)[".rlhf-lightning-report"],
                                 "report.json": '{"old": true}'}
    assert os.listdir(tmp_path) == ["report"]


def test_is_disk_full_sees_through_wrapping_errors():
    def raised(make):
        try:
            make()
        except Exception as exc:  # noqa: BLE001
            return exc

    def torch_like():  # torch.save re-raises a failed write as a RuntimeError
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            # implicit chaining (__context__), as torch does: no ``from``
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")  # noqa: B904

    from torch.distributed.checkpoint.api import CheckpointException

    gathered = CheckpointException("rank 1 failed", {1: (raised(torch_like), None), 0: (ValueError("x"), None)})

    assert is_disk_full(raised(torch_like))
    assert is_disk_full(Exception("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert is_disk_full(gathered)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
