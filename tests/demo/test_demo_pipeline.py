"""The offline demo, end to end, as a newcomer runs it: every stage through the console script.

Slow (minutes): run with ``RUN_SLOW=1``. The stages run in order in one scratch directory that
links the repository's ``configs/``, so the configs' relative paths (``runs/demo/...``) resolve
there and a developer's own ``runs/`` is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "rlhf-lightning")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("demo")
    (work / "configs").symlink_to(ROOT / "configs")
    return work


def run(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    res = subprocess.run([EXE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == 0, f"rlhf-lightning {' '.join(args)} failed:\n{res.stderr[-4000:]}"
    return res


def scalars(logdir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    version = sorted(logdir.glob("lightning_logs/version_*"))[-1]
    acc = EventAccumulator(str(version))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def test_pretrain_from_scratch(workdir):
    run(workdir, "fit", "--config", "configs/demo/pretrain.yaml")
    out = workdir / "runs/demo/pretrain"
    losses = scalars(out, "train/loss")
    assert losses[-1] < losses[0] - 2.0, losses  # from ~ln(2048) = 7.6 down to a few nats
    assert (out / "export/config.json").is_file() and (out / "checkpoints/last.ckpt").is_file()


def test_sft_then_on_topic_answers_to_held_out_prompts(workdir):
    run(workdir, "fit", "--config", "configs/demo/sft.yaml")
    out = workdir / "runs/demo/sft"
    val = scalars(out, "val/loss")
    assert val[-1] < val[0], val
    pred = out / "heldout.jsonl"
    run(workdir, "predict", "--config", "configs/demo/sft.yaml", "--model.init_args.policy.name_or_path",
        "runs/demo/sft/export", "--predictions.output", str(pred))
    rows = [json.loads(line) for line in pred.read_text(encoding="utf-8").splitlines()]
    from rlhf_lightning.demo.evaluate import on_topic_rate

    rate = on_topic_rate(rows)
    print(f"held-out on-topic rate after SFT: {rate:.0%}")
    assert rate >= 0.5, rate

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "export")
    tok = AutoTokenizer.from_pretrained(out / "export")
    ids = tok.apply_chat_template([{"role": "user", "content": "写一首关于月亮的诗"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    text = tok.decode(model.generate(**ids, max_new_tokens=30, do_sample=False)[0, ids["input_ids"].shape[1]:],
                      skip_special_tokens=True)
    assert text.strip()


def test_reward_model_ranks_held_out_pairs(workdir):
    """Held-out pairwise accuracy >= 0.9 (the issue's target; see the config header for the figures)."""
    run(workdir, "fit", "--config", "configs/demo/reward.yaml")
    from rlhf_lightning.rewards.model import ClassifierReward

    rows = [json.loads(line) for line in
            (ROOT / "configs/demo/data/preference_val.jsonl").read_text(encoding="utf-8").splitlines()]
    reward = ClassifierReward(str(workdir / "runs/demo/reward/export"), batch_size=64)
    chosen = reward([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    rejected = reward([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    accuracy = sum(c > r for c, r in zip(chosen, rejected)) / len(rows)
    print(f"held-out pairwise accuracy of the exported demo reward model: {accuracy:.3f}")
    assert accuracy >= 0.9, accuracy


def test_dpo_separates_held_out_pairs(workdir):
    run(workdir, "fit", "--config", "configs/demo/dpo.yaml")
    out = workdir / "runs/demo/dpo"
    acc = scalars(out, "val/rewards/accuracies")
    loss = scalars(out, "val/loss")
    print(f"DPO held-out reward accuracy {acc}, loss {loss}")
    assert acc[-1] >= 0.85 and loss[-1] < 0.5  # ln 2 = 0.693 at the start
    assert (out / "export/config.json").is_file()

    # The reward model prefers the DPO policy's answers to held-out prompts over the SFT policy's.
    from rlhf_lightning.rewards.model import ClassifierReward

    reward = ClassifierReward(str(workdir / "runs/demo/reward/export"), batch_size=64)
    means = {}
    for name in ("sft", "dpo"):
        pred = workdir / f"runs/demo/{name}_heldout.jsonl"
        run(workdir, "predict", "--config", "configs/demo/sft.yaml", "--model.init_args.policy.name_or_path",
            f"runs/demo/{name}/export", "--predictions.output", str(pred), "--trainer.callbacks", "[]")
        rows = [json.loads(line) for line in pred.read_text(encoding="utf-8").splitlines()]
        scores = reward([r["prompt"] for r in rows], [r["completion"] for r in rows])
        means[name] = sum(scores) / len(scores)
    print(f"reward-model score of held-out generations: {means}")
    assert means["dpo"] > means["sft"], means


def _baseline_and_run(workdir: Path, config: str, root: str) -> tuple[float, list[float], list[float]]:
    """The SFT policy's held-out val/reward (``validate``), then ``fit`` and its val/reward, val/kl."""
    run(workdir, "validate", "--config", config, "--trainer.default_root_dir", f"runs/demo/{root}_baseline",
        "--trainer.callbacks", "[]")
    baseline = scalars(workdir / f"runs/demo/{root}_baseline", "val/reward")[-1]
    run(workdir, "fit", "--config", config)
    out = workdir / f"runs/demo/{root}"
    return baseline, scalars(out, "val/reward"), scalars(out, "val/kl")


def test_grpo_raises_its_rule_reward(workdir):
    baseline, rewards, kls = _baseline_and_run(workdir, "configs/demo/grpo.yaml", "grpo")
    print(f"GRPO held-out rule reward: SFT {baseline:.3f} -> {rewards}, KL {kls}")
    assert rewards[-1] > baseline + 0.05, (baseline, rewards)


def test_ppo_raises_the_reward_model_score_with_bounded_kl(workdir):
    baseline, rewards, kls = _baseline_and_run(workdir, "configs/demo/ppo.yaml", "ppo")
    print(f"PPO held-out RM score: SFT {baseline:.3f} -> {rewards}, KL {kls}")
    assert rewards[-1] > baseline + 0.05, (baseline, rewards)
    assert max(kls) < 1.0, kls
    assert (workdir / "runs/demo/ppo/export/config.json").is_file()
