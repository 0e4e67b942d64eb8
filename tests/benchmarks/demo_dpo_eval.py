"""The DPO demo's claim, measured: held-out preference accuracy and reward-model score of generations,
SFT model vs DPO model. Composes the CLI commands a user would run (no new command)::

    rlhf-lightning validate --config configs/demo/dpo.yaml --model.init_args.policy.name_or_path <policy>
        -> val/logps/accuracies: share of held-out pairs where the policy gives the chosen answer
           more probability than the rejected one (independent of the reference)
    rlhf-lightning predict --config configs/demo/sft.yaml --model.init_args.policy.name_or_path <policy>
        -> greedy answers to configs/demo/data/prompts_heldout.jsonl
    rlhf-lightning score --config <classifier reward = runs/demo/reward/export> --input ... --output ...
        -> mean reward-model score

Run from the repository root after the SFT, reward and DPO demos::

    python tests/benchmarks/demo_dpo_eval.py [--sft runs/demo/sft/export] [--dpo runs/demo/dpo/export]
                                             [--reward runs/demo/reward/export] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
from pathlib import Path

from rlhf_lightning.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


def preference_accuracy(policy: str, work: Path) -> dict[str, float]:
    root = work / "validate"
    code = cli(["validate", "--config", str(ROOT / "configs/demo/dpo.yaml"),
                "--model.init_args.policy.name_or_path", policy, "--trainer.default_root_dir", str(root),
                "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                "--trainer.logger.init_args.save_dir", str(root), "--trainer.callbacks", "[]",
                "--model.init_args.precompute_reference", "false", "--export.enabled", "false"])
    assert code == 0, f"validate failed for {policy}"
    metrics = next(root.glob("lightning_logs/version_*/metrics.csv"))
    with open(metrics, encoding="utf-8") as f:
        row = [r for r in csv.DictReader(f) if r.get("val/logps/accuracies")][-1]
    return {"accuracy": float(row["val/logps/accuracies"]),
            "accuracy_per_token": float(row["val/logps/accuracies_per_token"])}


def rm_score(policy: str, reward: str, work: Path) -> float:
    gens, scored = work / "generations.jsonl", work / "scored.jsonl"
    assert cli(["predict", "--config", str(ROOT / "configs/demo/sft.yaml"), "--model.init_args.policy.name_or_path",
                policy, "--predictions.output", str(gens), "--trainer.callbacks", "[]"]) == 0
    cfg = work / "scoring.yaml"
    cfg.write_text(f"rewards:\n  - class_path: classifier\n    init_args: {{model: {reward}}}\n", encoding="utf-8")
    assert cli(["score", "--config", str(cfg), "--input", str(gens), "--output", str(scored)]) == 0
    rows = [json.loads(line) for line in scored.read_text(encoding="utf-8").splitlines()]
    return statistics.fmean(r["reward"] for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sft", default="runs/demo/sft/export")
    p.add_argument("--dpo", default="runs/demo/dpo/export")
    p.add_argument("--reward", default="runs/demo/reward/export")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    results = {}
    for name, policy in (("sft", a.sft), ("dpo", a.dpo)):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            results[name] = {**preference_accuracy(policy, work), "rm_score": rm_score(policy, a.reward, work)}
        print(f"{name}: held-out preference accuracy {results[name]['accuracy']:.3f} "
              f"(per token {results[name]['accuracy_per_token']:.3f}), RM score of generations "
              f"{results[name]['rm_score']:.3f}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
