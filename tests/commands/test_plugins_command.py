"""``rlhf-lightning plugins``: every group, built-ins and the example package, broken ones reported."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning import registry
from rlhf_lightning.commands import plugins as plugins_command
from tests.plugin_mocks import FakeEntryPoint, M, install_fake_entry_points


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reset()
    yield
    registry.reset()


def test_table_lists_all_groups_builtins_and_example(capsys):
    assert plugins_command.main([]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["GROUP", "NAME", "CLASS", "DISTRIBUTION", "VERSION", "DESCRIPTION"]
    for group in registry.GROUPS:
        assert any(line.startswith(group + " ") for line in lines), group
    row = next(line for line in lines if " length " in line)
    assert "rlhf_lightning.rewards.rules.LengthReward" in row and "rlhf-lightning" in row
    for name in ("distinct_ngrams", "repeated_ngrams", "dpop"):
        row = next(line for line in lines if f" {name} " in line)
        assert "rlhf-plugin-example" in row and "0.1.0" in row


def test_json_and_group_filter(capsys):
    assert plugins_command.main(["--json", "--group", "constraints"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["group"] for r in rows} == {"constraints"}
    names = {r["name"]: r for r in rows}
    assert {"max_length", "banned_patterns", "classifier", "repeated_ngrams"} <= set(names)
    assert names["max_length"]["class_path"] == "rlhf_lightning.constraints.rules.MaxLengthConstraint"
    assert names["max_length"]["description"].startswith("Cost = how far")


def test_broken_plugins_are_reported_exit_zero_unless_strict(monkeypatch, capsys):
    install_fake_entry_points(monkeypatch, [
        FakeEntryPoint("acme_broken", "acme_not_installed_xyz:R", "rlhf_lightning.rewards", dist="acme-broken"),
        FakeEntryPoint("acme_plain", f"{M}:NotAReward", "rlhf_lightning.rewards", dist="acme-plain"),
    ])
    assert plugins_command.main([]) == 0
    captured = capsys.readouterr()
    assert "BROKEN" in captured.out and "2 broken plugin(s)" in captured.err
    assert "'acme_broken' (acme_not_installed_xyz:R) from acme-broken" in captured.err
    assert "ModuleNotFoundError" in captured.err and "not a subclass" in captured.err
    assert " length " in captured.out  # the rest still listed
    assert plugins_command.main(["--strict"]) == 1
    capsys.readouterr()
    assert plugins_command.main(["--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["acme_broken"]["ok"] is False and "ModuleNotFoundError" in rows["acme_broken"]["error"]


def test_kill_switch_is_announced(monkeypatch, capsys):
    monkeypatch.setenv(registry.DISABLE_ENV, "1")
    assert plugins_command.main([]) == 0
    out = capsys.readouterr().out
    assert "Third-party plugins are off" in out and "distinct_ngrams" not in out and " length " in out
