"""Reward-model throughput and peak memory: rlhf-lightning (through its CLI) against TRL's ``RewardTrainer``.

    python tests/benchmarks/bench_reward.py                  # demo-shaped model, 30 measured steps
    python tests/benchmarks/bench_reward.py --quick          # smoke run, ~1 minute
    python tests/benchmarks/bench_reward.py --steps 50 --json /tmp/rm.json

Same setup on both sides: one ``LlamaForSequenceClassification`` folder (random weights, seed 0, the
demo model's shape) loaded with ``from_pretrained``; the demo preference pairs
(``configs/demo/data/preference_train.jsonl``) rendered with the demo tokenizer's chat template;
batch of 8 pairs (16 sequences, right padding, one forward); pairwise Bradley–Terry loss; AdamW
(fused, lr 2e-5, no weight decay), constant LR, grad-norm clip 1.0, fp32, no gradient checkpointing,
no checkpoint saving; 2 torch threads. Each run is a fresh subprocess, so its peak RSS
(``ru_maxrss``) is its own. The two runs follow each other in ONE invocation; the ratio is printed.

pairs/s = pairs in the measured steps / wall time from the end of the last warm-up step to the end
of the last step (data loading, forward, backward, clipping, optimizer, logging included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.benchmarks.meter import Meter, environment, fit_ours, worker_env  # noqa: E402

THREADS = 2
DATA = REPO / "configs/demo/data/preference_train.jsonl"
TOKENIZER = REPO / "configs/demo/tokenizer"
SHAPE = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=4)  # the demo model (configs/demo/pretrain.yaml)


def run_ours(a) -> None:
    work = Path(a.work)
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "precision": "32-true", "max_steps": a.warmup + a.steps,
            "default_root_dir": str(work), "enable_progress_bar": False, "enable_model_summary": False,
            "enable_checkpointing": False, "log_every_n_steps": 10, "gradient_clip_val": 1.0, "limit_val_batches": 0,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(work)}},
            "callbacks": [{"class_path": "tests.benchmarks.meter.LightningStepMeter",
                           "init_args": {"out": a.out, "units_per_step": a.batch_size, "warmup": a.warmup,
                                         "pad_token_id": a.pad_id}}],
        },
        "model": {"class_path": "rlhf_lightning.modules.reward.RewardModelModule", "init_args": {
            "backbone": {"name_or_path": a.model_dir, "dtype": "float32", "attn_implementation": "sdpa"},
            "loss": "pairwise",
            "optimizer": {"class_path": "torch.optim.AdamW",
                          "init_args": {"lr": 2e-5, "weight_decay": 0.0, "fused": True}}}},
        "data": {"class_path": "rlhf_lightning.datamodules.comparisons.ComparisonDataModule", "init_args": {
            "train": a.data_file or str(DATA), "max_length": a.max_length, "batch_size": a.batch_size}},
        "export": {"enabled": False},
    }
    fit_ours(work, cfg)


def run_trl(a) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    rows = [json.loads(line) for line in Path(a.data_file or DATA).read_text(encoding="utf-8").splitlines()
            if line.strip()]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                               "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(a.model_dir, num_labels=1, dtype=torch.float32,
                                                               attn_implementation="sdpa")
    meter = Meter(a.warmup, a.out)

    class StepCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            meter.attach(model, a.pad_id)

        def on_step_end(self, args, state, control, **kw):
            meter.step_end(a.batch_size)

    config = RewardConfig(
        output_dir=str(Path(a.work) / "trl"), max_steps=a.warmup + a.steps, per_device_train_batch_size=a.batch_size,
        learning_rate=2e-5, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch_fused", bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True, seed=0,
        max_length=a.max_length, logging_steps=10, report_to="none", save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0)
    trainer = RewardTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                            callbacks=[StepCallback()])
    trainer.train()
    meter.finish()


def prepare_model(work: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=max(2048, len(tok)), max_position_embeddings=512, tie_word_embeddings=False,
                         num_labels=1, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, **SHAPE)
    out = work / "model"
    LlamaForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--frameworks", default="ours,trl")
    p.add_argument("--quick", action="store_true", help="6 measured steps after 2 warm-up")
    p.add_argument("--json", help="write the results here")
    for flag in ("--worker", "--work", "--out", "--model-dir", "--data-file"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    p.add_argument("--pad-id", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        import torch

        torch.set_num_threads(THREADS)
        (run_ours if a.worker == "ours" else run_trl)(a)
        return 0
    if a.quick:
        a.steps, a.warmup = 6, 2

    env = environment(THREADS)
    print("environment:", json.dumps(env))
    work = Path(tempfile.mkdtemp(prefix="bench_reward_"))
    model_dir = prepare_model(work)
    results = {}
    for fw in a.frameworks.split(","):
        run_dir, out = work / fw, work / f"{fw}.json"
        run_dir.mkdir()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", fw, "--work", str(run_dir), "--out", str(out),
               "--model-dir", str(model_dir), "--steps", str(a.steps), "--warmup", str(a.warmup),
               "--batch-size", str(a.batch_size), "--max-length", str(a.max_length)]
        env_vars = worker_env(THREADS, REPO)
        load = os.getloadavg()[0]
        proc = subprocess.run(cmd, cwd=REPO, env=env_vars, capture_output=True, text=True)
        if proc.returncode or not out.is_file():
            print(f"{fw}: FAILED (exit {proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
            continue
        res = json.loads(out.read_text())
        res["pairs"], res["pairs_per_sec"] = res["units"], res["units_per_sec"]
        res["loadavg_1min_before"] = load
        results[fw] = res
        print(f"{fw}: {res['pairs_per_sec']:.1f} pairs/s, peak RSS {res['peak_rss_mb']:.0f} MB, "
              f"{res['steps_measured']} steps in {res['seconds']:.1f}s, load before {load:.1f}", flush=True)
    if "ours" in results and "trl" in results:
        o, t = results["ours"], results["trl"]
        line = (f"RM pairwise, batch {a.batch_size} pairs, fp32, {THREADS} threads: ours {o['pairs_per_sec']:.1f} "
                f"pairs/s / TRL {t['pairs_per_sec']:.1f} = {o['pairs_per_sec'] / t['pairs_per_sec']:.2f}x; peak RSS "
                f"ours {o['peak_rss_mb']:.0f} MB / TRL {t['peak_rss_mb']:.0f} MB = "
                f"{o['peak_rss_mb'] / t['peak_rss_mb']:.2f}x")
        print(line)
        results["summary"] = line
    if a.json:
        Path(a.json).write_text(json.dumps(dict(environment=env, settings=vars(a), results=results), indent=1))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0 if len([k for k in results if k != "summary"]) == len(a.frameworks.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
