"""Bad input through the CLI: a clear message naming the cause, a non-zero exit, no traceback, and
nothing earlier overwritten (an existing export is left byte-identical)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config


@pytest.fixture()
def previous_export(tmp_path: Path) -> Path:
    export = tmp_path / "export"
    export.mkdir()
    (export / "config.json").write_text('{"marker": "previous good export"}', encoding="utf-8")
    return export


def _run_fails(cfg: Path, capsys, *extra: str) -> str:
    code = main(["fit", "--config", str(cfg), *extra])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    return err


def _unchanged(export: Path) -> None:
    assert (export / "config.json").read_text(encoding="utf-8") == '{"marker": "previous good export"}'
    assert sorted(p.name for p in export.parent.iterdir() if p.name.startswith(".export")) == []


def test_missing_data_file(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": str(tmp_path / "nope.csv")})
    err = _run_fails(cfg, capsys)
    assert "nope.csv" in err and "not found" in err
    _unchanged(previous_export)


def test_missing_column_names_it_and_what_was_found(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n", encoding="utf-8")
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files,
                     **{"data.init_args.train": {"path": str(bad), "format": "prompt_response"}})
    err = _run_fails(cfg, capsys)
    assert "prompt" in err and "question" in err and "answer" in err
    _unchanged(previous_export)


def test_column_mapping_fixes_it(tmp_path, tiny_llama_dir, sft_files):
    src = tmp_path / "qa.jsonl"
    src.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"answer {i}"}) + "\n" for i in range(8)),
                   encoding="utf-8")
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{
        "data.init_args.train": {"path": str(src), "columns": {"question": "prompt", "answer": "response"}},
        "trainer.max_steps": 1, "export.enabled": False})
    assert main(["fit", "--config", str(cfg)]) == 0


def test_empty_dataset(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": str(empty)})
    err = _run_fails(cfg, capsys)
    assert "empty.jsonl" in err and ("no rows" in err or "empty" in err)
    _unchanged(previous_export)


@pytest.mark.parametrize("value,word", [("", "empty"), (12, "string")])
def test_bad_field_names_the_row(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys, value, word):
    rows = [{"prompt": "hi", "response": "hello"}] * 3 + [{"prompt": "p", "response": value}]
    bad = tmp_path / "rows.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": str(bad)})
    err = _run_fails(cfg, capsys)
    assert "rows.jsonl" in err and "row index 3" in err and "response" in err and word in err
    _unchanged(previous_export)


def test_example_longer_than_max_length(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files,
                     **{"data.init_args.max_length": 8, "data.init_args.truncation": "error"})
    err = _run_fails(cfg, capsys)
    assert "max_length=8" in err and "row index" in err
    _unchanged(previous_export)


def test_unknown_yaml_key(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"model.init_args.policy.no_such_option": 1})
    err = _run_fails(cfg, capsys)
    assert "no_such_option" in err
    _unchanged(previous_export)


def test_model_path_that_does_not_exist(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    cfg = sft_config(tmp_path, tmp_path / "no_model_here", sft_files)
    err = _run_fails(cfg, capsys)
    assert "no_model_here" in err
    _unchanged(previous_export)


def test_data_file_not_utf8_names_byte_and_line(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"prompt": "hi", "response": "hello"}\n{"prompt": "caf\xe9", "response": "x"}\n')
    err = _run_fails(sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": str(bad)}), capsys)
    assert "latin1.jsonl: not valid UTF-8 at byte 53 (line 2)" in err
    _unchanged(previous_export)


def test_malformed_jsonl_line_is_named(tmp_path, tiny_llama_dir, sft_files, previous_export, capsys):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "hi", "response": "hello"}\n{"prompt": "hi", "response": }\n', encoding="utf-8")
    err = _run_fails(sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": str(bad)}), capsys)
    assert "broken.jsonl: line 2: not valid JSON (Expecting value at column 30)" in err
    _unchanged(previous_export)


@pytest.mark.parametrize("command", ["fit", "pipeline", "score", "evaluate"])
def test_config_file_not_utf8(tmp_path, capsys, command):
    """Before: jsonargparse's UnicodeDecodeError traceback (fit), or a message with no position."""
    cfg = tmp_path / "run.yaml"
    cfg.write_bytes(b"seed_everything: 0\n# caf\xe9\n")
    assert main([command, "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: not valid UTF-8 at byte 24 (line 2): invalid continuation byte (byte 0xe9)" in err
    assert "Traceback" not in err


def test_console_script_exit_code_and_no_traceback(tmp_path, tiny_llama_dir, sft_files):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": str(tmp_path / "nope.csv")})
    exe = Path(sys.executable).parent / "rlhf-lightning"
    res = subprocess.run([str(exe), "fit", "--config", str(cfg)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "nope.csv" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([str(exe), "fit", "--config", str(cfg), "--traceback"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2 and "Traceback" in res.stderr and "nope.csv" in res.stderr
