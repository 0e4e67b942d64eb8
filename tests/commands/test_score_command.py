"""``rlhf-lightning score``: YAML-configured rewards and constraints over a JSONL, written atomically."""

from __future__ import annotations

import json
import textwrap

import pytest

from rlhf_lightning import registry
from rlhf_lightning.commands import score
from rlhf_lightning.errors import ConfigError, DataError, PluginError, RLHFError

ROWS = [
    {"prompt": "Say thanks", "completion": "thanks a lot my friend", "answer": "x", "id": 1},
    {"prompt": "Count", "completion": "one two three four five six seven", "answer": "y", "id": 2},
    {"prompt": "Answer", "completion": "<think>hm</think><answer>y</answer>", "answer": "y", "id": 3},
]


@pytest.fixture()
def files(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return tmp_path, data, tmp_path / "out" / "scored.jsonl"


def write(tmp_path, text):
    path = tmp_path / "scoring.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_scores_rows_with_names_weights_and_constraints(files, capsys):
    tmp_path, data, out = files
    config = write(tmp_path, """
        rewards:
          - class_path: length
            init_args: {target: 5, scale: 5}
          - class_path: KeywordReward
            init_args: {keywords: [thanks]}
          - class_path: rlhf_lightning.rewards.rules.MatchReward
            init_args: {extract: "<answer>(.*)</answer>"}
        weights: [1.0, 2.0, 3.0]
        constraints:
          - class_path: max_length
            init_args: {max_length: 5}
          - class_path: banned_patterns
            init_args: {words: [seven]}
    """)
    assert score.main(["--config", config, "--input", str(data), "--output", str(out), "--batch_size", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3] and rows[0]["answer"] == "x"  # input columns kept
    # lengths 5, 7, 1 words: 1 - |n-5|/5 = 1, 0.6, 0.2
    assert [r["rewards"]["length"] for r in rows] == pytest.approx([1.0, 0.6, 0.2])
    assert [r["rewards"]["keyword"] for r in rows] == [1.0, 0.0, 0.0]
    assert [r["rewards"]["match"] for r in rows] == [0.0, 0.0, 1.0]
    assert [r["reward"] for r in rows] == pytest.approx([3.0, 0.6, 3.2])
    assert [r["costs"] for r in rows] == [{"max_length": 0.0, "banned_patterns": 0.0},
                                          {"max_length": 2.0, "banned_patterns": 1.0},
                                          {"max_length": 0.0, "banned_patterns": 0.0}]
    assert [r["violated"] for r in rows] == [False, True, False]
    assert rows[1]["violations"] == {"max_length": True, "banned_patterns": True}
    assert "scored 3 rows" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["scored.jsonl"]  # no temp file left


def test_third_party_plugin_and_weighted_sum_by_name(files):
    tmp_path, data, out = files
    config = write(tmp_path, """
        rewards:
          - class_path: weighted_sum
            init_args:
              rewards:
                - {class_path: distinct_ngrams, init_args: {n: 1}}
                - {class_path: length, init_args: {target: 5}}
              weights: [1.0, 1.0]
        reward_names: [combo]
    """)
    assert score.main(["--config", config, "--input", str(data), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["rewards"] == {"combo": pytest.approx(2.0)} and rows[0]["costs"] == {}


def test_bad_plugin_output_names_plugin_and_global_sample(files):
    tmp_path, data, out = files
    config = write(tmp_path, """
        rewards:
          - class_path: rlhf_lightning.rewards.rules.RegexReward
            init_args: {pattern: "seven", match_score: .nan}
    """)
    with pytest.raises(PluginError, match=r"reward 'regex' returned a non-finite score \(nan\) for sample 1 "
                                          r"\(prompt 'Count'\)"):
        score.main(["--config", config, "--input", str(data), "--output", str(out), "--batch_size", "1"])
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))


def test_failed_run_keeps_previous_output(files, monkeypatch):
    tmp_path, data, out = files
    out.parent.mkdir()
    out.write_text("previous\n")
    monkeypatch.setattr(score, "score_rows", lambda *a, **k: [{"ok": 1}, {"bad": object()}])
    config = write(tmp_path, "rewards: [{class_path: length}]\n")
    with pytest.raises(TypeError):
        score.main(["--config", config, "--input", str(data), "--output", str(out)])
    assert out.read_text() == "previous\n" and [p.name for p in out.parent.iterdir()] == ["scored.jsonl"]


@pytest.mark.parametrize(("yaml", "error", "match"), [
    ("rewards: [{class_path: nope}]\n", ConfigError, r"Unknown plugin 'nope'\. Available rewards: .*length"),
    ("rewards: [{class_path: length}, {class_path: keyword, init_args: {keywords: [a]}}]\nweights: [1.0]\n",
     ConfigError, r"2 rewards but 1 weights"),
    ("rewards: [{class_path: length, init_args: {target: 0}}]\n", ConfigError, r"target must be > 0"),
    ("constraints: []\n", ConfigError, r"nothing to score"),
])
def test_config_errors(files, yaml, error, match):
    tmp_path, data, out = files
    with pytest.raises(error, match=match):
        score.main(["--config", write(tmp_path, yaml), "--input", str(data), "--output", str(out)])


def test_data_errors(tmp_path):
    config = write(tmp_path, "rewards: [{class_path: length}]\n")
    cases = {
        "missing.jsonl": None,
        "bad.jsonl": '{"prompt": "a", "completion": "b"}\n{oops\n',
        "nocomp.jsonl": '{"prompt": "a", "response": "b"}\n',
        "clash.jsonl": '{"prompt": "a", "completion": "b", "reward": 3}\n',
        "empty.jsonl": "\n",
    }
    messages = {"missing.jsonl": "not found", "bad.jsonl": r"bad.jsonl:2: not valid JSON",
                "nocomp.jsonl": r"field 'completion' must be a string", "clash.jsonl": r"output field\(s\) \['reward'\]",
                "empty.jsonl": "no rows"}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(DataError, match=messages[name]):
            score.main(["--config", config, "--input", str(path), "--output", str(tmp_path / "o.jsonl")])
    assert issubclass(DataError, RLHFError)


def test_module_entry_point_prints_user_errors_without_traceback(tmp_path):
    import subprocess
    import sys

    config = write(tmp_path, "rewards: [{class_path: nope}]\n")
    result = subprocess.run([sys.executable, "-m", "rlhf_lightning.commands.score", "--config", config,
                             "--input", "x", "--output", "y"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Unknown plugin 'nope'" in result.stderr
    registry.reset()


def test_input_not_utf8_is_a_user_error_naming_byte_and_line(tmp_path, capsys):
    """Before: a UnicodeDecodeError traceback from ``rlhf-lightning score``."""
    from rlhf_lightning.cli import main

    config = write(tmp_path, "rewards: [{class_path: length}]\n")
    data = tmp_path / "latin1.jsonl"
    data.write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9", "completion": "b"}\n')
    assert main(["score", "--config", config, "--input", str(data), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{data}: not valid UTF-8 at byte 50 (line 2): invalid continuation byte (byte 0xe9)" in err
    assert "Traceback" not in err and not (tmp_path / "o.jsonl").exists()


def test_input_with_a_byte_order_mark(files):
    tmp_path, data, out = files
    data.write_bytes(b"\xef\xbb\xbf" + data.read_bytes())
    config = write(tmp_path, "rewards: [{class_path: length}]\n")
    assert score.main(["--config", config, "--input", str(data), "--output", str(out)]) == 0
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [1, 2, 3]
