"""configs/demo/iterative_dpo.yaml: two rounds of sample -> DPO, planned through ``rlhf-lightning pipeline
--dry-run``; round 2 samples from and trains round 1's export, each round in its own folders."""

from __future__ import annotations

from pathlib import Path

from rlhf_lightning.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_two_rounds_plan_in_order_with_round_two_on_round_one(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the config's paths are relative to the repository root
    assert main(["pipeline", "--config", "configs/demo/iterative_dpo.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    heads = [ln.split(" [")[0] for ln in lines if ln[:1].isdigit()]
    assert heads == ["1. samples1", "2. dpo1", "3. samples2", "4. dpo2"]
    commands = {h.split(". ")[1]: lines[lines.index(next(ln for ln in lines if ln.startswith(h))) + 1]
                for h in heads}
    dpo1_export = next(ln for ln in lines if ln.startswith("2. dpo1")).split(" -> ")[1]
    assert dpo1_export.endswith("runs/demo/iterative/dpo1/export")
    assert f"policy={dpo1_export}" in commands["samples2"].replace("'", "")
    assert f"name_or_path={dpo1_export}" in commands["dpo2"].replace("'", "")
    assert "runs/demo/iterative/samples2/pairs.jsonl" in commands["dpo2"]
    assert "runs/demo/iterative/samples1/pairs.jsonl" in commands["dpo1"]
    assert "runs/demo/sft/export" in commands["samples1"] and "runs/demo/sft/export" in commands["dpo1"]
