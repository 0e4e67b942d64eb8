"""Tests of the example plugin, through the registry and through the commands in a fresh process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from rlhf_lightning import registry


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("group", "name", "cls_name"), [
    ("rewards", "distinct_ngrams", "DistinctNgramReward"),
    ("constraints", "repeated_ngrams", "RepeatedNgramConstraint"),
    ("preference_losses", "dpop", "DPOPositiveLoss"),
])
def test_found_through_entry_points(group, name, cls_name):
    assert name in registry.names(group)
    assert registry.get(group, name).__name__ == cls_name
    info = next(i for i in registry.plugins(group) if i.name == name)
    assert info.distribution == "rlhf-plugin-example" and info.version == "0.1.0"
    assert info.description and not info.builtin


def test_distinct_ngrams_values():
    reward = registry.get("rewards", "distinct_ngrams")(n=2)
    # "a b a b": bigrams (a b)(b a)(a b) -> 2 distinct / 3; "x y z": 2/2; "x": no bigram -> short_score
    assert reward(["p"] * 3, ["a b a b", "x y z", "x"]) == pytest.approx([2 / 3, 1.0, 0.0])


def test_repeated_ngrams_values_and_violation():
    checker = registry.get("constraints", "repeated_ngrams")(n=2, threshold=1)
    costs = checker(["p"] * 3, ["a b a b a b", "a b a b", "a b c d"])
    # bigram (a b) occurs 3, 2, 1 times -> extra repeats 2, 1, 0; violation only above 1
    assert costs == [2.0, 1.0, 0.0]
    assert checker.violated(costs) == [True, False, False]


def test_dpop_loss_hand_values():
    """beta=0.5, lam=2.

    pair 0: r_w = -10-(-9) = -1 (penalty 1), r_l = -12-(-10) = -2 -> z = 0.5(-1+2-2) = -0.5, loss = log(1+e^0.5)
    pair 1: r_w = -5-(-6) = 1 (penalty 0), r_l = -8-(-7) = -1 -> z = 0.5(2) = 1, loss = log(1+e^-1)
    """
    loss = registry.get("preference_losses", "dpop")(beta=0.5, lam=2.0)
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    losses, metrics = loss(t(-10, -5), t(-12, -8), t(-9, -6), t(-10, -7), t(3, 3), t(4, 4))
    assert losses.tolist() == pytest.approx([math.log1p(math.exp(0.5)), math.log1p(math.exp(-1.0))])
    assert metrics["dpop/penalty"].tolist() == [1.0, 0.0]
    assert metrics["rewards/accuracies"].tolist() == [1.0, 1.0]
    # lam = 0 is plain DPO: -log sigmoid(beta * (r_w - r_l))
    dpo, _ = registry.get("preference_losses", "dpop")(beta=0.5, lam=0.0)(
        t(-10), t(-12), t(-9), t(-10), t(3), t(4))
    assert dpo.item() == pytest.approx(math.log1p(math.exp(-0.5)))


def test_listed_by_plugins_command_in_fresh_process():
    """``rlhf-lightning plugins --json`` in a new process (the CLI imports nothing of this package)."""
    out = run("-m", "rlhf_lightning.cli", "plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {(r["group"], r["name"]): r for r in json.loads(out.stdout)}
    for key in [("rewards", "distinct_ngrams"), ("constraints", "repeated_ngrams"), ("preference_losses", "dpop")]:
        assert rows[key]["distribution"] == "rlhf-plugin-example" and rows[key]["ok"]


def test_score_command_uses_plugin_by_name(tmp_path):
    """``rlhf-lightning score`` with entry-point and class names of this package in the YAML."""
    config = tmp_path / "scoring.yaml"
    config.write_text(
        "rewards:\n"
        "  - class_path: distinct_ngrams\n    init_args: {n: 1}\n"
        "  - class_path: length\n    init_args: {target: 4}\n"
        "weights: [2.0, 1.0]\n"
        "constraints:\n"
        "  - class_path: RepeatedNgramConstraint\n    init_args: {n: 1, threshold: 0}\n")
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"prompt": "Say hi", "completion": "hi hi hi hi"}) + "\n"
                    + json.dumps({"prompt": "Count", "completion": "one two three four"}) + "\n")
    out_path = tmp_path / "out.jsonl"
    out = run("-m", "rlhf_lightning.cli", "score", "--config", str(config), "--input", str(data),
              "--output", str(out_path))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    # distinct-1: 1/4 and 4/4; length at target 4 words: 1.0 both
    assert rows[0]["rewards"] == {"distinct_ngrams": 0.25, "length": 1.0}
    assert rows[0]["reward"] == pytest.approx(2 * 0.25 + 1.0)
    assert rows[1]["reward"] == pytest.approx(3.0)
    assert rows[0]["costs"] == {"repeated_ngrams": 3.0} and rows[0]["violated"] is True
    assert rows[1]["costs"] == {"repeated_ngrams": 0.0} and rows[1]["violated"] is False


def test_kill_switch_hides_plugin_in_fresh_process():
    out = run("-m", "rlhf_lightning.cli", "plugins", "--json", env={"RLHF_LIGHTNING_DISABLE_PLUGINS": "1"})
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows and all(r["distribution"] == "rlhf-lightning" for r in rows)


def test_rlhf_lightning_cli_lists_plugin():
    """Through the real console script, once the CLI dispatches ``plugins``."""
    pytest.importorskip("rlhf_lightning.cli")
    exe = os.path.join(os.path.dirname(sys.executable), "rlhf-lightning")
    out = subprocess.run([exe, "plugins"], capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and "plugins" in (out.stderr + out.stdout) and "invalid choice" in out.stderr:
        pytest.skip("the CLI does not dispatch `plugins` yet")
    assert out.returncode == 0, out.stderr
    assert "distinct_ngrams" in out.stdout and "rlhf-plugin-example" in out.stdout
