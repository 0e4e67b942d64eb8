"""Memory per process under FSDP2 vs DDP, and 2-process vs 1-process throughput (SFT, ~30M Llama).

    python tests/benchmarks/bench_fsdp.py                     # 1 process, DDP x2, FSDP2 x2; ~5 min
    python tests/benchmarks/bench_fsdp.py --steps 10 --json /tmp/fsdp.json

Every run is `rlhf-lightning fit` (the console script; Lightning launches the second process) on the
same random Llama (bench_sft's "30m" shape), the same demo SFT rows, the same global batch (8 rows of
<= 256 tokens: 8 in one process, 4 per process with two), fp32, AdamW. A probe callback in each
process records, after the first optimizer step:

* model state held by this process: parameters, gradients and AdamW moments, counted from the local
  tensors (a DTensor shard's local part under FSDP2) — the quantity sharding divides;
* peak RSS of the process (``ru_maxrss``: includes Python, torch, the tokenised data and activations,
  which sharding does not divide, and the moment each process holds the whole model after loading it,
  before ``fully_shard`` splits it) and RSS at the end of training;
* rows and tokens per second of the whole run (all processes) after ``--warmup`` steps.

On the 2-core CPU box the two processes share the cores (1 torch thread each vs 2 threads for the
single process), so the throughput ratio measures the cost of the communication and of splitting the
batch, not a speed-up; on GPUs each process has its own device.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lightning.pytorch import Callback  # noqa: E402

from tests.benchmarks.meter import rss_now_mb  # noqa: E402


def _local_bytes(t) -> int:
    local = t.to_local() if hasattr(t, "to_local") else t
    return local.numel() * local.element_size()


class MemoryProbe(Callback):
    """Writes ``<out>/rank<r>.json``: model-state bytes of this process, peak RSS, step stamps."""

    def __init__(self, out: str, warmup: int = 2) -> None:
        self.out, self.warmup = out, warmup
        self.stamps: list[float] = []
        self.tokens: list[int] = []
        self.state: dict = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import torch

        self.stamps.append(time.perf_counter())
        self.tokens.append(int(batch["attention_mask"].sum()) if "attention_mask" in batch
                           else int(batch["input_ids"].numel()))
        if len(self.stamps) == 1:
            params = [p for p in pl_module.parameters()]
            opt = trainer.optimizers[0]
            moments = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
            self.state = {
                "parameters_mb": sum(_local_bytes(p) for p in params) / 2**20,
                "gradients_mb": sum(_local_bytes(p.grad) for p in params if p.grad is not None) / 2**20,
                "optimizer_mb": sum(_local_bytes(v) for v in moments) / 2**20,
                "parameter_count": sum(p.numel() for p in params),
            }

    def on_train_end(self, trainer, pl_module) -> None:
        import torch

        w = self.warmup
        window = self.stamps[-1] - self.stamps[w - 1] if len(self.stamps) > w else float("nan")
        out = {**self.state, "rank": trainer.global_rank, "world_size": trainer.world_size,
               "torch_threads": torch.get_num_threads(), "steps": len(self.stamps) - w, "seconds": window,
               "rows": (len(self.stamps) - w) * trainer.datamodule.hparams.batch_size,
               "tokens": sum(self.tokens[w:]),
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "rss_end_mb": rss_now_mb()}
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(out))


def _config(work: Path, name: str, model: Path, data: Path, per_process: int, steps: int, warmup: int) -> Path:
    import yaml

    root = work / name
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": steps, "precision": "32-true",
                    "default_root_dir": str(root), "logger": False, "enable_checkpointing": False,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "callbacks": [{"class_path": "tests.benchmarks.bench_fsdp.MemoryProbe",
                                   "init_args": {"out": str(root / "probe"), "warmup": warmup}}]},
        "model": {"class_path": "rlhf_lightning.modules.sft.SFTModule",
                  "init_args": {"policy": {"name_or_path": str(model)},
                                "optimizer": {"class_path": "torch.optim.AdamW",
                                              "init_args": {"lr": 2e-5, "weight_decay": 0.0}}}},
        "data": {"class_path": "rlhf_lightning.datamodules.sft.SFTDataModule",
                 "init_args": {"train": str(data), "max_length": 256, "batch_size": per_process}},
        "export": {"enabled": False},
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


RUNS = {  # name: (processes, extra CLI arguments)
    "1 process": (1, []),
    "DDP x2": (2, ["--config", str(REPO / "configs/strategies/ddp.yaml"), "--trainer.devices", "2"]),
    "FSDP2 x2": (2, ["--config", str(REPO / "configs/strategies/fsdp.yaml"), "--trainer.devices", "2"]),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8, help="global rows per optimizer step")
    p.add_argument("--model", default="30m", help="a shape of bench_sft.MODELS")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)

    from tests.benchmarks.bench_sft import prepare_data, prepare_model

    work = Path(tempfile.mkdtemp(prefix="bench_fsdp_"))
    tok, data, _ = prepare_data(work, "auto")
    model, n_params, _ = prepare_model(work, a.model, tok)
    exe = str(Path(sys.executable).parent / "rlhf-lightning")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    results = {}
    for name, (procs, extra) in RUNS.items():
        slug = name.replace(" ", "_")
        cfg = _config(work, slug, model, data, a.batch_size // procs, a.steps, a.warmup)
        t0 = time.perf_counter()
        res = subprocess.run([exe, "fit", "--config", str(cfg), *extra], capture_output=True, text=True, env=env,
                             cwd=work)
        if res.returncode:
            print(res.stderr[-3000:], file=sys.stderr)
            return 1
        ranks = [json.loads(f.read_text()) for f in sorted((work / slug / "probe").glob("rank*.json"))]
        secs = max(r["seconds"] for r in ranks)
        results[name] = {
            "processes": procs, "wall_s": time.perf_counter() - t0, "per_rank": ranks,
            "model_state_mb": max(r["parameters_mb"] + r["gradients_mb"] + r["optimizer_mb"] for r in ranks),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ranks), "rss_end_mb": max(r["rss_end_mb"] for r in ranks),
            "rows_per_s": sum(r["rows"] for r in ranks) / secs, "tokens_per_s": sum(r["tokens"] for r in ranks) / secs,
        }

    print(f"\nSFT, random Llama '{a.model}' ({n_params / 1e6:.1f}M parameters), fp32, AdamW, global batch "
          f"{a.batch_size} x <=256 tokens, {a.steps - a.warmup} measured steps; work dir {work}")
    print(f"{'run':<10} {'threads':>7} {'params MB':>9} {'grads MB':>8} {'AdamW MB':>8} {'state MB':>8} "
          f"{'peak RSS MB':>11} {'RSS end MB':>10} {'rows/s':>7} {'tokens/s':>8}   (per process; max over processes)")
    for name, r in results.items():
        k = r["per_rank"][0]
        print(f"{name:<10} {k['torch_threads']:>7} {k['parameters_mb']:>9.1f} {k['gradients_mb']:>8.1f} "
              f"{k['optimizer_mb']:>8.1f} {r['model_state_mb']:>8.1f} {r['peak_rss_mb']:>11.0f} "
              f"{r['rss_end_mb']:>10.0f} {r['rows_per_s']:>7.2f} {r['tokens_per_s']:>8.0f}")
    ddp, fsdp, one = results["DDP x2"], results["FSDP2 x2"], results["1 process"]
    print(f"\nFSDP2/DDP per process: model state {fsdp['model_state_mb'] / ddp['model_state_mb']:.2f}x, "
          f"peak RSS {fsdp['peak_rss_mb'] / ddp['peak_rss_mb']:.2f}x, RSS at the end {fsdp['rss_end_mb'] / ddp['rss_end_mb']:.2f}x")
    print(f"2 processes / 1 process throughput: DDP {ddp['rows_per_s'] / one['rows_per_s']:.2f}x, "
          f"FSDP2 {fsdp['rows_per_s'] / one['rows_per_s']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
