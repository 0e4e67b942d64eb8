"""The offline demo as a newcomer runs it: ``rlhf-lightning pipeline --config configs/demo/pipeline.yaml``.

Slow (minutes): run with ``RUN_SLOW=1``. The pipeline runs in a scratch directory that links the
repository's ``configs/``, so the configs' relative paths (``runs/demo/...``) resolve there and a
developer's own ``runs/`` is never touched. The thresholds are the README's claims less a margin for
the CPU-dependent numerics (bf16 on CPUs that have it, fp32 elsewhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "rlhf-lightning")

pytestmark = pytest.mark.slow


def pipeline(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    res = subprocess.run([EXE, "pipeline", "--config", "configs/demo/pipeline.yaml", *args], cwd=workdir,
                         capture_output=True, text=True, timeout=3600, env=env)
    assert res.returncode == 0, f"pipeline failed:\n{res.stdout[-3000:]}\n{res.stderr[-4000:]}"
    return res


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict, str]:
    work = tmp_path_factory.mktemp("demo")
    (work / "configs").symlink_to(ROOT / "configs")
    started = time.monotonic()
    res = pipeline(work)
    print(res.stdout)
    print(f"demo pipeline: {time.monotonic() - started:.0f} s")
    folder = Path(work / res.stdout.strip().splitlines()[-1])
    return work, json.loads((folder / "report.json").read_text(encoding="utf-8")), res.stdout


def test_the_last_line_is_the_report_folder_with_every_artifact(demo):
    work, report, out = demo
    folder = work / out.strip().splitlines()[-1]
    assert folder == work / "runs/demo/report"
    for name in ("report.json", "report.md", "win_rates.png", "reward_vs_kl.png", "curves_ppo.png", "answers.jsonl"):
        assert (folder / name).is_file(), name
    assert set(report["policies"]) == {"sft", "dpo", "grpo", "ppo"} and report["baseline"] == "sft"
    assert report["policies"]["sft"]["win_rate"] == 0.5 and report["policies"]["sft"]["kl"] == 0.0


def test_the_reward_model_ranks_held_out_pairs(demo):
    """Held-out pairwise accuracy of the exported reward model >= 0.9, scored through the plugin."""
    work, report, _ = demo
    from rlhf_lightning.rewards.model import ClassifierReward

    rows = [json.loads(line) for line in
            (ROOT / "configs/demo/data/preference_val.jsonl").read_text(encoding="utf-8").splitlines()]
    reward = ClassifierReward(str(work / "runs/demo/reward/export"), batch_size=64)
    chosen = reward([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    rejected = reward([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(rows)
    print(f"held-out pairwise accuracy of the exported demo reward model: {accuracy:.3f}")
    assert accuracy >= 0.9, accuracy
    assert report["stages"]["reward"]["final"]["val/accuracy"] >= 0.9


@pytest.mark.parametrize("policy, reward, threshold, ci_low", [("dpo", "rm", 0.53, 0.45), ("ppo", "rm", 0.45, 0.40),
                                                               ("grpo", "rule", 0.70, 0.5)])
def test_aligned_policies_against_the_sft_policy(demo, policy, reward, threshold, ci_low):
    """Win rate against the SFT policy (draw by draw, 54 held-out prompts x 4 samples) and the lower end
    of its 95% interval. Measured on an AMD Zen 5 (bf16 SFT / float32 SFT, the README's table): dpo
    0.560 / 0.586, ppo 0.521 / 0.509 (PPO does not measurably beat SFT on this demo), grpo 0.762 / 0.870."""
    _, report, _ = demo
    figures = report["policies"][policy]
    win = figures["win_rates"][reward]
    print(f"{policy}: win rate by {reward} {win['win_rate']:.3f} {win['ci']}, KL {figures['kl']:.3f}")
    assert win["win_rate"] >= threshold, win
    assert win["ci"][0] > ci_low, win
    assert 0.0 < figures["kl"] < 20.0, figures["kl"]


def test_sft_answers_held_out_prompts_on_topic_and_dpo_predicts_from_its_config(demo):
    """Greedy SFT answers: >= 45% on topic (the README: 70% with bf16, 50% in float32); DPO's own config
    generates too."""
    work, _, _ = demo
    from rlhf_lightning.demo.evaluate import on_topic_rate

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    for stage in ("sft", "dpo_sampled"):
        out = work / f"runs/demo/{stage}_heldout.jsonl"
        res = subprocess.run([EXE, "predict", "--config", f"configs/demo/{stage}.yaml", "--model.init_args.policy."
                              f"name_or_path=runs/demo/{stage}/export", "--predictions.output", str(out),
                              "--trainer.callbacks=[]"], cwd=work, capture_output=True, text=True, env=env,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 54 and all(r["completion"].strip() for r in rows)
        if stage == "sft":
            rate = on_topic_rate(rows)
            print(f"held-out on-topic rate after SFT: {rate:.0%}")
            assert rate >= 0.45, rate


def test_rerunning_only_reevaluates(demo):
    work, _, _ = demo
    started = time.monotonic()
    res = pipeline(work)
    took = time.monotonic() - started
    for i, stage in enumerate(("pretrain", "sft", "reward", "samples", "dpo", "grpo", "ppo"), 1):
        assert f"[{i}/8] {stage}: done" in res.stdout, res.stdout
    assert "[8/8] evaluate: running" in res.stdout
    assert took < 180, took  # resolving 7 configs and one evaluation, not minutes of training
