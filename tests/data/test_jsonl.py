"""JSONL outputs (rlhf_lightning/data/jsonl.py): fsynced before the rename; a full disk keeps the old file."""

from __future__ import annotations

import json
import os

import pytest

from rlhf_lightning.data.jsonl import write_jsonl_atomic
from rlhf_lightning.errors import DiskFullError
from tests.disk_full import fill_disk


def test_written_fsynced_and_renamed(tmp_path, monkeypatch):
    out = tmp_path / "scored.jsonl"
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    write_jsonl_atomic(out, [{"prompt": "春", "score": 1.5}], what="scores")
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == [{"prompt": "春", "score": 1.5}]
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / ".scored.jsonl.tmp-")) and synced[1] == str(tmp_path)


def test_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "predictions.jsonl"
    out.write_text('{"old": 1}\n', encoding="utf-8")
    fill_disk(monkeypatch, tmp_path, budget=20)
    with pytest.raises(DiskFullError, match=f"while writing the predictions {out}: the partial file was removed"):
        write_jsonl_atomic(out, [{"completion": "x" * 50}] * 3, what="predictions")
    monkeypatch.undo()
    assert out.read_text(encoding="utf-8") == '{"old": 1}\n' and os.listdir(tmp_path) == ["predictions.jsonl"]
