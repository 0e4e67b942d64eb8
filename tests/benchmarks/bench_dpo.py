"""DPO steps/s and peak memory: rlhf-lightning ``DPOModule`` vs TRL ``DPOTrainer``, in one run, as ratios.

Run from the repository root on a quiet machine (TRL: ``pip install "trl==1.16.*" --no-deps``)::

    python tests/benchmarks/bench_dpo.py                      # live and precomputed reference, ~4 min
    python tests/benchmarks/bench_dpo.py --steps 10 --warmup 2 --setups live   # quick look

Each (framework, setup) runs in a fresh subprocess with 2 torch threads, on the same model folder
(default: the demo SFT export, else the pre-training export, else a random Llama of the
demo architecture with the demo tokenizer), the same first ``--pairs`` rows of
``configs/demo/data/preference_train.jsonl`` (ChatML, identical token ids on both sides), batch 8
pairs, fp32, AdamW (fused) lr 1e-6 constant, grad-norm clip 1.0, no checkpoints, no gradient
checkpointing, no dropout. ``live``: a frozen reference copy runs every step (TRL loads a second copy
from disk, we deep-copy); ``precomputed``: reference log-probs computed once before training (not in
steps/s; its time is printed). steps/s is measured over ``--steps`` optimizer steps after ``--warmup``;
peak memory is the process's peak RSS (``ru_maxrss``), so it includes the framework's imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = ROOT / "configs" / "demo" / "data" / "preference_train.jsonl"
SETUPS = ("live", "precomputed")


def _default_model() -> str:
    for cand in ("runs/demo/sft/export", "runs/demo/pretrain/export"):
        if (ROOT / cand / "config.json").is_file():
            return str(ROOT / cand)
    return _random_demo_model(Path(tempfile.mkdtemp(prefix="bench_dpo_model_")))


def _random_demo_model(path: Path) -> str:
    """A random Llama of the demo architecture (4 layers, 256 wide, vocab 2048) with the demo tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(ROOT / "configs" / "demo" / "tokenizer")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _rows(n: int) -> list[dict]:
    with open(DATA, encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n), strict=False)]


def _extra(meter_result: dict, extra: dict) -> dict:
    """The figures this script prints, from the shared meter's result (steps/s over the measured window)."""
    steps, secs = meter_result["steps_measured"], meter_result["seconds"]
    return {"steps_per_s": steps / secs if secs > 0 else float("nan"), "peak_rss_mib": meter_result["peak_rss_mb"],
            **extra}


def run_ours(a) -> None:
    import lightning.pytorch as pl
    import torch

    from rlhf_lightning.datamodules.comparisons import ComparisonDataModule
    from rlhf_lightning.losses.preference import SigmoidLoss
    from rlhf_lightning.models.spec import ModelSpec
    from rlhf_lightning.modules.dpo import DPOModule
    from tests.benchmarks.meter import Meter

    meter = Meter(a.warmup, a.json_out)
    t0 = {}

    class Timer(pl.Callback):
        def on_fit_start(self, trainer, module):
            t0["fit"] = time.perf_counter()

        def on_train_start(self, trainer, module):
            t0["train"] = time.perf_counter()
            meter.attach(module.model, module.tokenizer.pad_token_id)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            meter.step_end(a.batch_size)

        def on_train_end(self, trainer, module):
            meter.info["precompute_s"] = t0["train"] - t0["fit"]
            meter.finish()

    tmp = Path(a.tmp)
    data = tmp / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(a.pairs)), encoding="utf-8")
    module = DPOModule(ModelSpec(name_or_path=a.model, dtype="float32", attn_implementation="sdpa"),
                       loss=SigmoidLoss(beta=0.1), precompute_reference=a.setup == "precomputed",
                       optimizer=lambda p: torch.optim.AdamW(p, lr=1e-6, weight_decay=0.0, fused=True))
    dm = ComparisonDataModule(train=str(data), tokenizer=a.model, max_length=a.max_length, batch_size=a.batch_size,
                              pairwise_only=True)
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=a.warmup + a.steps,
                         gradient_clip_val=1.0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Timer()], default_root_dir=str(tmp))
    trainer.fit(module, datamodule=dm)


def run_trl(a) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from tests.benchmarks.meter import Meter

    meter = Meter(a.warmup, a.json_out)
    tok = AutoTokenizer.from_pretrained(a.model)

    class StepCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            meter.attach(model, tok.pad_token_id)

        def on_step_end(self, args, state, control, **kwargs):
            meter.step_end(a.batch_size)

    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in _rows(a.pairs)]
    args = DPOConfig(output_dir=str(Path(a.tmp) / "trl"), per_device_train_batch_size=a.batch_size,
                     max_steps=a.warmup + a.steps, learning_rate=1e-6, optim="adamw_torch_fused",
                     lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0, beta=0.1, bf16=False,
                     gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                     logging_steps=10, disable_tqdm=True, max_length=a.max_length,
                     precompute_ref_log_probs=a.setup == "precomputed", dataloader_num_workers=0)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa")
    start = time.perf_counter()
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         callbacks=[StepCallback()])
    meter.info["precompute_s"] = time.perf_counter() - start
    trainer.train()
    meter.finish()


def worker(a) -> None:
    import torch

    torch.set_num_threads(a.threads)
    run_ours(a) if a.framework == "ours" else run_trl(a)
    out = Path(a.json_out)
    res = json.loads(out.read_text(encoding="utf-8"))
    out.write_text(json.dumps(dict(res, **_extra(res, {"precompute_s": res.get("precompute_s")}))), encoding="utf-8")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--setups", default=",".join(SETUPS))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write all results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--framework", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--setup", default="live", help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--pairs", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.pairs = a.pairs or a.batch_size * (a.steps + a.warmup)
    if a.worker:
        worker(a)
        return
    a.model = a.model or _default_model()
    print(f"model {a.model}; {a.pairs} pairs, batch {a.batch_size}, max_length {a.max_length}, "
          f"{a.warmup}+{a.steps} steps, {a.threads} threads")
    results: dict = {}
    for setup in a.setups.split(","):
        for framework in ("ours", "trl"):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "r.json"
                cmd = [sys.executable, __file__, "--worker", "--framework", framework, "--setup", setup, "--tmp", tmp,
                       "--json-out", str(out), "--model", a.model, "--steps", str(a.steps), "--warmup",
                       str(a.warmup), "--batch-size", str(a.batch_size), "--max-length", str(a.max_length),
                       "--threads", str(a.threads), "--pairs", str(a.pairs)]
                env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
                           OMP_NUM_THREADS=str(a.threads))
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
                if proc.returncode:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{framework}/{setup} failed")
                results[f"{framework}/{setup}"] = r = json.loads(out.read_text())
                print(f"{framework:4s} {setup:11s} {r['steps_per_s']:.3f} steps/s  peak RSS {r['peak_rss_mib']:.0f} MiB"
                      f"  (setup/precompute {r['precompute_s']:.1f} s)", flush=True)
        ours, trl = results[f"ours/{setup}"], results[f"trl/{setup}"]
        ratio = {"speed": ours["steps_per_s"] / trl["steps_per_s"], "memory": ours["peak_rss_mib"] / trl["peak_rss_mib"]}
        results[f"ratio/{setup}"] = ratio
        print(f"ratio {setup}: ours/TRL steps/s = {ratio['speed']:.2f}x, peak RSS = {ratio['memory']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
