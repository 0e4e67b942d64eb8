"""Folder swaps and leftover clean-up (rlhf_lightning/atomic_paths.py) on the real filesystem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_lightning import atomic_paths
from rlhf_lightning.atomic_paths import exchange, remove_leftovers, replace_directory, staging_path


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
