"""The end-of-fit export (rlhf_lightning/callbacks/export.py) through the CLI: it never deletes what it
did not write, and says so before training rather than after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config, sft_files  # noqa: F401 - fixture


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pretrain(tmp_path, model_dir, files, **overrides) -> Path:
    """A 2-step whole-text (pre-training) run, as the demo's ``pretrain`` step."""
    return sft_config(tmp_path, model_dir, files, **{
        "trainer.max_steps": 2, "trainer.num_sanity_val_steps": 0, "data.init_args.loss_on": "all",
        **overrides})


def test_a_folder_of_user_files_is_refused_before_training_and_kept(tmp_path, tiny_llama_dir, sft_files,  # noqa: F811
                                                                     capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    cfg = _pretrain(tmp_path, tiny_llama_dir, sft_files, **{"export.dirpath": str(mine)})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("rlhf-lightning: error:") == 1 and "Traceback" not in err, err
    assert (f"cannot write the export to {mine}: the folder is not empty and is not an earlier export "
            "(no .rlhf-lightning-export file); it holds notes.txt. Nothing was changed") in err
    assert _tree(mine) == {"notes.txt": b"my notes"}
    assert not (tmp_path / "checkpoints").exists()  # refused at fit start: no training was spent


@pytest.mark.parametrize("where", ["run folder", "parent of the run folder", "current folder"])
def test_an_export_that_would_contain_the_run_is_refused_even_when_marked(tmp_path, tiny_llama_dir,
                                                                          sft_files, monkeypatch, capsys,  # noqa: F811
                                                                          where):
    """Even a folder that holds an earlier export's marker (exported once while it was empty) is not
    replaced if the run's checkpoints and logs are in it, or it is where the command runs."""
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    target = {"run folder": run, "parent of the run folder": tmp_path / "runs", "current folder": Path(".")}[where]
    monkeypatch.chdir(run if where == "current folder" else tmp_path)
    (tmp_path / "runs" / ".rlhf-lightning-export").write_text("")
    (run / ".rlhf-lightning-export").write_text("")
    cfg = _pretrain(run, tiny_llama_dir, sft_files, **{"export.dirpath": str(target)})
    before = _tree(tmp_path)
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    expected = ("it is the current folder" if where == "current folder"
                else f"it is or contains {run}, which the export would delete")
    assert f"cannot write the export to {target}: {expected}" in err, err
    after = _tree(tmp_path)
    assert {name: after.get(name) for name in before} == before  # the run only added its config.yaml
    assert not (run / "checkpoints").exists()


def test_the_next_run_replaces_its_own_earlier_export(tmp_path, tiny_llama_dir, sft_files):  # noqa: F811
    cfg = _pretrain(tmp_path, tiny_llama_dir, sft_files)
    assert main(["fit", "--config", str(cfg)]) == 0
    export = tmp_path / "export"
    assert (export / ".rlhf-lightning-export").is_file()
    first = (export / "model.safetensors").read_bytes()
    assert main(["fit", "--config", str(cfg), "--trainer.max_steps=3"]) == 0
    assert (export / "model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".export")) == []
    assert os.path.isfile(export / ".rlhf-lightning-export")
