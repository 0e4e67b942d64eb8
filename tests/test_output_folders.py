"""Which folders an export or report may replace (rlhf_lightning/output_folders.py)."""

from __future__ import annotations

import pytest

from rlhf_lightning.errors import ExportError
from rlhf_lightning.output_folders import check_replaceable, marker_name, write_marker


def _listing(folder):
    return sorted(p.name for p in folder.rglob("*"))


def test_absent_empty_and_earlier_outputs_are_replaceable(tmp_path):
    assert check_replaceable(tmp_path / "new" / "export") == tmp_path / "new" / "export"
    (tmp_path / "empty").mkdir()
    assert check_replaceable(tmp_path / "empty") == tmp_path / "empty"
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    write_marker(earlier, "export")
    (earlier / "config.json").write_text("{}")
    (earlier / "pipeline_step.json").write_text("{}")  # the pipeline adds its state to a finished export
    assert check_replaceable(earlier, "export") == earlier
    assert marker_name("export") == ".rlhf-lightning-export" and marker_name("report") == ".rlhf-lightning-report"


def test_a_folder_of_user_files_is_refused_naming_it_and_what_it_holds(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ["notes.txt", "a.py", "b.py", "c.py", "d.py", "e.py", "f.py"]:
        (folder / name).write_text("keep")
    before = _listing(tmp_path)
    with pytest.raises(ExportError) as info:
        check_replaceable(folder, "export")
    message = str(info.value)
    assert f"cannot write the export to {folder}" in message
    assert "a.py, b.py, c.py, d.py, e.py and 2 more" in message and "no .rlhf-lightning-export" in message
    assert _listing(tmp_path) == before


def test_an_output_of_another_kind_is_not_an_earlier_one(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    write_marker(report, "report")
    assert check_replaceable(report, "report") == report
    with pytest.raises(ExportError, match="not an earlier export .*holds .rlhf-lightning-report"):
        check_replaceable(report, "export")


def test_a_file_is_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        check_replaceable(tmp_path / "model.bin")


def test_the_current_folder_and_its_parents_are_refused_even_when_marked(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    write_marker(work, "export")
    write_marker(tmp_path / "a", "export")
    monkeypatch.chdir(work)
    with pytest.raises(ExportError, match="cannot write the export to \\.: it is the current folder"):
        check_replaceable(".")
    with pytest.raises(ExportError, match="a folder containing the current folder"):
        check_replaceable("..")


def test_a_folder_containing_a_protected_path_is_refused_even_when_marked(tmp_path):
    run = tmp_path / "runs" / "x"
    (run / "checkpoints").mkdir(parents=True)
    write_marker(run, "export")  # an export once written to the run folder while it was empty
    for target in (run, tmp_path / "runs"):
        with pytest.raises(ExportError, match=f"it is or contains {run}, which the export would delete"):
            check_replaceable(target, "export", protect=[run])
    assert check_replaceable(run / "export", "export", protect=[run]) == run / "export"
