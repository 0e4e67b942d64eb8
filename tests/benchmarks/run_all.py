"""Every stage against its TRL peer in one run: a Markdown + JSON table of speed, peak memory and ratios.

    python tests/benchmarks/run_all.py --quick --out /tmp/bench       # all stages, 3 alternating runs, < 10 min
    python tests/benchmarks/run_all.py --out /tmp/bench               # longer windows (~40 min on 2 cores)
    python tests/benchmarks/run_all.py --stages grpo,ppo --repeat 5

Stages (workers are the ``bench_*.py`` scripts' worker modes; their docstrings give each side's settings):
SFT padded and packed (``bench_sft``), reward model (``bench_reward``), DPO with a live and with a
precomputed reference (``bench_dpo``), GRPO, RLOO and PPO (``bench_online``; PPO's peer is TRL 1.12 from
``$TRL112_DIR`` or ``/tmp/trl112``, see ``bench_online``; when it is absent the table says so).

Sides: ``trl``; ``ours-stock`` (PyTorch's stock kernels: ``ppo.onednn`` and ``generation.onednn``
false); ``ours-shipped`` (the stages' defaults); ``ours-onednn`` (both options true). Only the online
stages have a kernel option; elsewhere, and wherever the defaults are the stock kernels (today: false,
see ``rlhf_lightning/rollout/onednn.py``), ours-shipped is ours-stock and the table says so. Each figure is the median of ``--repeat`` (>= 3) runs,
the sides alternating, each run a fresh subprocess with ``--threads`` torch threads (so peak RSS is the
run's own). Both sides train one epoch over the same rows (the first N rows of the demo data, N fitting
the steps), so they must feed their models identical tokens: the runner asserts it from each worker's
fingerprint (training forwards for SFT/RM/DPO; prompts at generation prefill and generated tokens for
online RL) and a stage whose sides differ is reported as failed.

Rates: tokens/s (non-padding tokens fed to the trained model in the measured steps / their wall time) for
SFT/RM/DPO, episodes/s for online RL. % fp32 peak = (6 x matmul weights x tokens/s; 8 x for DPO with a
live reference, whose forward is a third of the trained model's work) / the stock fp32 GEMM peak measured
in this run (1024³ ``torch.mm``, best of 20, at the same thread count, the better of a measurement
before and one after the stages). Matmul weights = every
``nn.Linear`` weight of the trained model (LM / score head included; embeddings are lookups); attention
score FLOPs are not counted. Online RL has no such figure: its sides run different passes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.benchmarks.summary import SIDES, markdown, summarize_stage  # noqa: E402

BENCH = Path(__file__).resolve().parent
DATA = REPO / "configs/demo/data"
TRL112 = Path(os.environ.get("TRL112_DIR", "/tmp/trl112"))
FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
# name: (worker script, kind, rate, FLOPs per token per matmul weight, kernel option?, peer)
STAGES = {
    "sft-padded": ("bench_sft", "trained", "tokens_per_sec", 6, False, "TRL 1.16 SFTTrainer"),
    "sft-packed": ("bench_sft", "trained", "tokens_per_sec", 6, False, "TRL 1.16 SFTTrainer (bfd, padding-free)"),
    "reward": ("bench_reward", "trained", "tokens_per_sec", 6, False, "TRL 1.16 RewardTrainer"),
    "dpo-live": ("bench_dpo", "trained", "tokens_per_sec", 8, False, "TRL 1.16 DPOTrainer"),
    "dpo-precomputed": ("bench_dpo", "trained", "tokens_per_sec", 6, False, "TRL 1.16 DPOTrainer (precomputed)"),
    "grpo": ("bench_online", "generation", "units_per_sec", None, True, "TRL 1.16 GRPOTrainer"),
    "rloo": ("bench_online", "generation", "units_per_sec", None, True, "TRL 1.16 RLOOTrainer"),
    "ppo": ("bench_online", "generation", "units_per_sec", None, True, "TRL 1.12 PPOTrainer"),
}


# ----------------------------------------------------------------------------------------- machine
def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
                 platform.processor())
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return dict(cpu=model, cpu_flags={f: f in flags for f in FLAGS})


def peak_worker(out: str, threads: int) -> None:
    """GFLOP/s of a 1024³ matmul: fp32 ``torch.mm`` (stock), fp32 through oneDNN, bf16; best of 20."""
    import torch

    torch.set_num_threads(threads)
    n, gen = 1024, torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)

    def gflops(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(20):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return 2 * n**3 / best / 1e9

    res = {"fp32_stock": gflops(lambda: torch.mm(a, b))}
    from rlhf_lightning.rollout import onednn

    if onednn.available():
        res["fp32_onednn"] = gflops(lambda: onednn._gemm(a, b))  # a · bᵀ: the same FLOPs
        res["onednn_auto"] = dict(onednn.probe(), used=onednn.resolve("auto"))
    a16, b16 = a.bfloat16(), b.bfloat16()
    res["bf16"] = gflops(lambda: torch.mm(a16, b16))
    Path(out).write_text(json.dumps(res))


# ----------------------------------------------------------------------------------------- preparation
def _subset(src: Path, dst: Path, n: int, header: bool) -> Path:
    """The first ``n`` rows of ``src`` (cycled when it has fewer), so both sides read the same file."""
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    head, rows = (lines[:1], lines[1:]) if header else ([], lines)
    rows = [r for r in rows if r.strip()]
    dst.write_text("".join(head + [rows[i % len(rows)] for i in range(n)]), encoding="utf-8")
    return dst


def prepare(work: Path, a) -> dict:
    """Model folders and data files shared by the sides: {family: {...}}."""
    from tests.benchmarks import bench_dpo, bench_online, bench_reward, bench_sft

    w, s, b = a.warmup, a.steps, a.batch_size
    tok_dir, sft_csv, _ = bench_sft.prepare_data(work, "demo")
    sft_model, _, sft_pad = bench_sft.prepare_model(work, "demo", tok_dir)
    rm_model = bench_reward.prepare_model(work)
    policy, rm, _ = bench_online.prepare_models(work, "demo")
    from transformers import AutoTokenizer

    pad = AutoTokenizer.from_pretrained(rm_model).pad_token_id
    prompts = {n: _subset(DATA / "ppo_prompts.jsonl", work / f"prompts-{n}.jsonl", n, False)
               for n in {a.prompts * (a.online_warmup + a.online_steps),
                         a.prompts * a.samples * (a.online_warmup + a.online_steps)}}
    return dict(
        sft=dict(model=sft_model, pad=sft_pad, padded=_subset(sft_csv, work / "sft-padded.csv", b * (w + s), True),
                 packed=_subset(sft_csv, work / "sft-packed.csv", b * (w + s) * 6, True)),
        reward=dict(model=rm_model, pad=pad, data=_subset(DATA / "preference_train.jsonl", work / "pairs.jsonl",
                                                          b * (w + s), False)),
        dpo=dict(model=bench_dpo._random_demo_model(work / "dpo-model"), pairs=b * (w + s)),
        online=dict(policy=policy, rm=rm, prompts=prompts))


def command(stage: str, side: str, a, prep: dict, run_dir: Path, out: Path) -> tuple[list[str], dict]:
    """The worker command line and environment of one run."""
    from tests.benchmarks.meter import worker_env

    fw = "trl" if side == "trl" else "ours"
    script = str(BENCH / f"{STAGES[stage][0]}.py")
    common = ["--steps", str(a.steps), "--warmup", str(a.warmup), "--batch-size", str(a.batch_size),
              "--max-length", str(a.max_length)]
    env, first = None, None
    if stage.startswith("sft"):
        p = prep["sft"]
        cmd = [script, "--worker", fw, "--work", str(run_dir), "--out", str(out), "--model-dir", str(p["model"]),
               "--pad-id", str(p["pad"]), "--data-file", str(p[stage.split("-")[1]]), "--epoch", *common]
        cmd += ["--packed"] if stage == "sft-packed" else []
    elif stage == "reward":
        p = prep["reward"]
        cmd = [script, "--worker", fw, "--work", str(run_dir), "--out", str(out), "--model-dir", str(p["model"]),
               "--pad-id", str(p["pad"]), "--data-file", str(p["data"]), *common]
    elif stage.startswith("dpo"):
        p = prep["dpo"]
        cmd = [script, "--worker", "--framework", fw, "--setup", stage.split("-")[1], "--tmp", str(run_dir),
               "--json-out", str(out), "--model", str(p["model"]), "--threads", str(a.threads),
               "--pairs", str(p["pairs"]), *common]
    else:
        p = prep["online"]
        samples = 1 if stage == "ppo" else a.samples
        prompts = a.prompts * a.samples // samples
        cmd = [script, "--worker", fw, "--setup", stage, "--work", str(run_dir), "--out", str(out),
               "--model-dir", str(p["policy"]), "--rm-dir", str(p["rm"]), "--steps", str(a.online_steps),
               "--warmup", str(a.online_warmup), "--prompts-per-step", str(prompts), "--samples", str(samples),
               "--max-new-tokens", str(a.max_new_tokens), "--minibatches", "2", "--lr", "1e-5",
               "--onednn", {"ours-stock": "off", "ours-onednn": "on"}.get(side, "default"),
               "--data-file", str(p["prompts"][prompts * (a.online_warmup + a.online_steps)])]
        first = str(TRL112) if (stage == "ppo" and fw == "trl") else None
    env = worker_env(a.threads, REPO, first)
    return [sys.executable, *cmd], env


def run_one(stage: str, side: str, r: int, a, prep: dict, work: Path) -> dict:
    tag = f"{stage}-{side}-{r}"
    run_dir, out = work / tag, work / f"{tag}.json"
    run_dir.mkdir()
    cmd, env = command(stage, side, a, prep, run_dir, out)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    (work / f"{tag}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode or not out.is_file():
        raise RuntimeError(f"{tag}: worker exited {proc.returncode}; last lines:\n{proc.stderr[-1500:]}")
    res = dict(json.loads(out.read_text()), side=side, repeat=r, wall_s=time.perf_counter() - started)
    print(f"{tag}: {res[STAGES[stage][2]]:.2f} {'ep' if stage in ('grpo', 'rloo', 'ppo') else 'tok'}/s, "
          f"peak {res['peak_rss_mb']:.0f} MB, run {res['wall_s']:.0f} s", flush=True)
    return res


# ----------------------------------------------------------------------------------------- driver
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma list of {', '.join(STAGES)}")
    p.add_argument("--repeat", type=int, default=3, help="runs per side, alternating (>= 3; the median is reported)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every worker")
    p.add_argument("--steps", type=int, default=20, help="SFT/RM/DPO: measured optimizer steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--online-steps", type=int, default=8, help="online RL: measured rollouts")
    p.add_argument("--online-warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8, help="SFT rows / RM and DPO pairs per step")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--prompts", type=int, default=8, help="online RL: prompts per rollout (PPO: x samples, 1 each)")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="short windows (SFT/RM/DPO 4 steps after 1, online 2 "
                   "rollouts after 1, 16 new tokens): every stage, 3 runs per side, under 10 minutes on 2 cores")
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "rlhf_lightning_bench"),
                   help="folder for report.md, report.json and worker logs")
    p.add_argument("--peak-worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.peak_worker:
        peak_worker(a.peak_worker, a.threads)
        return 0
    if a.repeat < 3:
        p.error("--repeat must be >= 3 (each figure is a median)")
    if a.quick:
        a.steps, a.warmup, a.online_steps, a.online_warmup, a.max_new_tokens = 4, 1, 2, 1, 16
    stages = a.stages.split(",")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run_all_", dir=out_dir))
    t_start = time.perf_counter()

    from tests.benchmarks.meter import environment, worker_env

    env = dict(environment(a.threads), **cpu_info(), date=datetime.datetime.now().isoformat(timespec="seconds"))
    def measure_peak(peak: dict) -> dict:
        """Per thread count, the best of this and any earlier measurement (other work only slows a GEMM)."""
        for threads in sorted({a.threads} if a.quick else {1, a.threads}):
            f = work / f"peak-{threads}.json"
            subprocess.run([sys.executable, __file__, "--peak-worker", str(f), "--threads", str(threads)], cwd=REPO,
                           env=worker_env(threads, REPO), check=True)
            new, old = json.loads(f.read_text()), peak.get(threads, {})
            peak[threads] = {k: max(v, old[k]) if isinstance(v, float) and k in old else v for k, v in new.items()}
        return peak

    peak = measure_peak({})
    auto = peak[a.threads].get("onednn_auto")
    print("environment:", json.dumps(env), "\npeak GEMM GFLOP/s:", json.dumps(peak), flush=True)
    prep = prepare(work, a)
    trl112 = (TRL112 / "trl/experimental/ppo/ppo_trainer.py").is_file()
    from rlhf_lightning.modules.ppo.config import PPOLoopSpec
    from rlhf_lightning.rollout.generation import GenerationSpec

    shipped = (PPOLoopSpec().onednn, GenerationSpec().onednn)
    report = dict(environment=env, peak_gemm=peak, onednn_auto=auto, settings=vars(a), stages=[], notes=[],
                  shipped_kernels=f"`ppo.onednn: {shipped[0]}`, `generation.onednn: {shipped[1]}` (stage defaults)")
    failed, pending = 0, []
    for stage in stages:
        script, kind, rate, flops, kernel_option, peer = STAGES[stage]
        same = None
        if not kernel_option:
            same = "no kernel option in this stage"
        elif shipped == (False, False) or (shipped == ("auto", "auto") and auto is not None and not auto["used"]):
            same = "the defaults are the stock kernels"
        sides = [s for s in SIDES if not (s == "ours-shipped" and same) and (kernel_option or s != "ours-onednn")]
        missing = {}
        if stage == "ppo" and not trl112:
            sides.remove("trl")
            missing["trl"] = f"TRL 1.12 absent ({TRL112}): pip install --no-deps --target {TRL112} trl==1.12.0"
        runs: dict = {s: [] for s in sides}
        entry = dict(name=stage, peer=peer, worker=script, missing=missing)
        try:
            for r in range(a.repeat):  # the sides alternate, so a change in machine load hits all of them
                for side in sides:
                    runs[side].append(run_one(stage, side, r, a, prep, work))
        except Exception as exc:  # noqa: BLE001 - one failed stage is reported, the rest run
            failed += 1
            entry["error"] = f"FAILED: {type(exc).__name__}: {exc}".replace("\n", " ")[:400]
            print(entry["error"], flush=True)
        entry["runs"] = runs
        pending.append((entry, dict(name=stage, kind=kind, rate=rate, flops_per_token_per_param=flops,
                                    same_as_stock=same)))
    measure_peak(peak)  # again at the end: the better of the two is the machine's peak
    for entry, spec in pending:
        if "error" not in entry:
            try:
                entry.update(summarize_stage(spec, entry["runs"], peak[a.threads]["fp32_stock"] * 1e9))
            except AssertionError as exc:  # TokenMismatch: the sides did not process identical tokens
                failed += 1
                entry["error"] = f"FAILED: {type(exc).__name__}: {exc}".replace("\n", " ")[:400]
                print(entry["error"], flush=True)
        report["stages"].append(entry)
    report["notes"] = [
        f"Run with `python tests/benchmarks/run_all.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
        f"in {time.perf_counter() - t_start:.0f} s; medians of {a.repeat} alternating runs per side.",
        f"SFT/RM/DPO: batch {a.batch_size}, max_length {a.max_length}, fp32, fused AdamW, {a.steps} measured steps "
        f"after {a.warmup}; online: {a.prompts} prompts x {a.samples} samples (PPO {a.prompts * a.samples} x 1), "
        f"{a.max_new_tokens} forced new tokens, {a.online_steps} measured rollouts after {a.online_warmup}; demo-shaped "
        "random Llama models and the demo tokenizer; settings of each side: the bench_*.py docstrings and README.",
        "Identical tokens: asserted per stage over every run of every side (trained sequences, or generation prompts "
        "and generated tokens); a stage that fails it is marked FAILED.",
    ]
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    text = markdown(report)
    (out_dir / "report.md").write_text(text, encoding="utf-8")
    print("\n" + text + f"\nwritten: {out_dir / 'report.md'}, {out_dir / 'report.json'}; worker logs in {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
