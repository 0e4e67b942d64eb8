"""Pipeline files: validation, references, plan order and step selection (no model is run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.pipeline.spec import Step, load_pipeline, plan_order, select, substitute


def write(tmp_path: Path, steps: list[dict], **top) -> Path:
    (tmp_path / "stage.yaml").write_text("seed_everything: 0\n", encoding="utf-8")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({**top, "steps": steps}), encoding="utf-8")
    return path


def step(name: str, **kw) -> dict:
    return {"name": name, "config": "stage.yaml", **kw}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_references_make_dependencies_and_order_follows_them(tmp_path):
    """'c' is listed first but refers to b's export; b comes after a: plan a, b, c, then d (after c)."""
    path = write(tmp_path, [step("c", set={"model.x": "${b.export}"}), step("a"),
                            step("b", set={"m": {"n": ["${a.dir}/x"]}}), step("d", after="c")])
    pipeline = load_pipeline(path)
    assert [s.name for s in pipeline.steps] == ["a", "b", "c", "d"]
    c = next(s for s in pipeline.steps if s.name == "c")
    assert c.dependencies() == ["b"]
    assert pipeline.log_dir == "runs/pipeline"


def test_substitute_replaces_every_reference_inside_nested_values():
    folders = {"a": {"export": "runs/a/export", "dir": "runs/a"}}
    value = {"k": ["${a.export}", {"z": "x-${a.dir}-y"}], "n": 3}
    assert substitute(value, folders) == {"k": ["runs/a/export", {"z": "x-runs/a-y"}], "n": 3}


@pytest.mark.parametrize("steps, message", [
    ([step("a", after="b"), step("b", after="a")], "cycle: a -> b -> a"),
    ([step("a", set={"x": "${nope.export}"})], "depends on 'nope', which is not a step"),
    ([step("a"), step("a")], "two steps are named 'a'"),
    ([step("a", after="a")], "depends on itself"),
    ([{"name": "a", "config": "missing.yaml"}], "config file not found: missing.yaml"),
    ([step("a", command="train")], "command must be one of"),
    ([step("a", extra=1)], "unknown key(s) ['extra']"),
    ([step("a b")], "'name' must be a word"),
    ([step("e", command="evaluate"), step("f", set={"x": "${e.export}"})],
     "whose command is 'evaluate' (only fit, sample and constitution steps have folders)"),
])
def test_bad_pipelines_name_the_cause(tmp_path, steps, message):
    with pytest.raises(ConfigError) as err:
        load_pipeline(write(tmp_path, steps))
    assert message in str(err.value)


def test_a_sample_steps_output_folder_may_be_referred_to(tmp_path):
    steps = load_pipeline(write(tmp_path, [step("f", set={"x": "${s.export}/pairs.jsonl"}),
                                           step("s", command="sample")])).steps
    assert [(s.name, s.command) for s in steps] == [("s", "sample"), ("f", "fit")]


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_pipeline(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_pipeline(write(tmp_path, [step("a")], stages=[]))
    (tmp_path / "empty.yaml").write_text("steps: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="non-empty list under 'steps'"):
        load_pipeline(tmp_path / "empty.yaml")


def test_select_from_until_only():
    steps = plan_order([Step(n, "fit", ["x"]) for n in "abcd"])
    names = lambda chosen: [s.name for s in chosen]  # noqa: E731
    assert names(select(steps)) == ["a", "b", "c", "d"]
    assert names(select(steps, start="b")) == ["b", "c", "d"]
    assert names(select(steps, until="b")) == ["a", "b"]
    assert names(select(steps, start="b", until="c")) == ["b", "c"]
    assert names(select(steps, only=["d", "a"])) == ["a", "d"]
    with pytest.raises(ConfigError, match="--from x: no such step"):
        select(steps, start="x")
    with pytest.raises(ConfigError, match="comes after --until"):
        select(steps, start="c", until="a")
    with pytest.raises(ConfigError, match="cannot be combined"):
        select(steps, only=["a"], start="b")
