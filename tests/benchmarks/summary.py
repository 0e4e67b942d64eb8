"""The runner's arithmetic and tables: medians over runs, ours/TRL ratios, shares of the matmul peak,
the identical-tokens assertion, and the Markdown report. Standard library only (unit-tested on canned runs).

A *run* is the JSON one worker wrote (:class:`tests.benchmarks.meter.Meter`), plus ``side`` and ``repeat``.
Sides: ``trl`` (the peer), ``ours-stock`` (PyTorch's stock kernels), ``ours-shipped`` (the kernel
options we ship, by default) and ``ours-onednn`` (the oneDNN option switched on, where a stage has it);
a stage where ours-shipped is the same configuration as ours-stock reuses its runs and says why
(``same_as_stock``).
"""

from __future__ import annotations

import statistics
from typing import Optional

SIDES = ("trl", "ours-stock", "ours-shipped", "ours-onednn")
KERNELS = {"trl": "stock", "ours-stock": "stock", "ours-shipped": "shipped", "ours-onednn": "oneDNN (onednn: true)"}


class TokenMismatch(AssertionError):
    """The two sides of a stage (or two runs of one side) did not process identical tokens."""


def identity(run: dict, kind: str) -> tuple:
    """What must match between runs: ``trained`` — the multiset of sequences fed to training forwards;
    ``generation`` — the multiset of prompts at generation prefill and the number of generated tokens."""
    fp = run.get("fingerprint")
    if not fp:
        raise TokenMismatch(f"{run.get('side')} run {run.get('repeat')}: no token fingerprint (no pad id given)")
    if kind == "trained":
        t = fp["trained"]
        return ("trained", t["sequences"], t["tokens"], t["sha256"])
    p = fp["prompts"]
    return ("generation", p["sequences"], p["tokens"], p["sha256"], fp["generated_tokens"])


def assert_identical_tokens(stage: str, runs: list[dict], kind: str) -> tuple:
    """Raise :class:`TokenMismatch` unless every run of every side processed the same tokens (and some)."""
    if not runs:
        raise TokenMismatch(f"{stage}: no runs")
    ref = identity(runs[0], kind)
    if ref[1] == 0:
        raise TokenMismatch(f"{stage}: {runs[0]['side']} run {runs[0]['repeat']} fed no {kind} sequences")
    for run in runs[1:]:
        got = identity(run, kind)
        if got != ref:
            raise TokenMismatch(f"{stage}: {run['side']} run {run['repeat']} processed {got[1:]} "
                                f"(sequences, tokens, hash[, generated]) but {runs[0]['side']} run "
                                f"{runs[0]['repeat']} processed {ref[1:]}")
    return ref


def median_of(runs: list[dict], key: str) -> Optional[float]:
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def summarize_stage(stage: dict, runs: dict[str, list[dict]], peak_flops: Optional[float]) -> dict:
    """Medians per side, ours/TRL ratios and shares of the fp32 peak for one stage.

    ``stage``: ``name``, ``rate`` (the key of the headline rate: ``tokens_per_sec`` or ``units_per_sec``),
    ``kind`` (:func:`identity`), ``flops_per_token_per_param`` (6 = forward + backward of the trained model,
    8 = plus a reference forward; ``None``: not computable), ``same_as_stock`` (why ours-shipped is ours-stock,
    or ``None``). ``runs``: side -> runs. Raises :class:`TokenMismatch` as :func:`assert_identical_tokens`.
    """
    if stage.get("same_as_stock") and "ours-stock" in runs:
        runs = dict(runs, **{"ours-shipped": runs["ours-stock"]})
    everything = [r for side in SIDES for r in runs.get(side, [])]
    tokens = assert_identical_tokens(stage["name"], everything, stage["kind"])
    rate, out = stage["rate"], {}
    for side in SIDES:
        rs = runs.get(side, [])
        if not rs:
            continue
        med = {k: median_of(rs, k) for k in (rate, "tokens_per_sec", "units_per_sec", "peak_rss_mb",
                                              "units_per_cpu_sec", "median_step_s")}
        params = median_of(rs, "matmul_parameters")
        factor = stage.get("flops_per_token_per_param")
        if factor and peak_flops and params and med["tokens_per_sec"]:
            med["flops_per_sec"] = factor * params * med["tokens_per_sec"]
            med["share_of_fp32_peak"] = med["flops_per_sec"] / peak_flops
        med["runs"] = len(rs)
        med["rates"] = [r.get(rate) for r in rs]
        out[side] = med
    trl = out.get("trl")
    for side in SIDES[1:]:
        if side in out and trl and trl.get(rate) and trl.get("peak_rss_mb"):
            out[side]["speed_vs_trl"] = out[side][rate] / trl[rate]
            out[side]["rss_vs_trl"] = out[side]["peak_rss_mb"] / trl["peak_rss_mb"]
    return dict(name=stage["name"], rate=rate, sides=out, tokens=list(tokens), same_as_stock=stage.get("same_as_stock"))


def _f(x, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "-"


def markdown(report: dict) -> str:
    """The report as Markdown: machine, peaks, the table (one row per stage and side), notes."""
    env, peak = report["environment"], report.get("peak_gemm", {})
    lines = [f"# rlhf-lightning vs TRL, every stage — {env.get('date', '?')}", "",
             f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} cores); flags: "
             + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env.get("cpu_flags", {}).items()),
             f"- torch threads {env.get('torch_threads')}; torch {env.get('torch')}, lightning {env.get('lightning')}, "
             f"transformers {env.get('transformers')}, trl {env.get('trl')}"]
    for threads, p in sorted(peak.items()):
        lines.append(f"- peak GEMM (1024³ matmul), {threads} thread(s): fp32 stock {_f(p.get('fp32_stock'), '.0f')}, "
                     f"fp32 oneDNN {_f(p.get('fp32_onednn'), '.0f')}, bf16 {_f(p.get('bf16'), '.0f')} GFLOP/s")
    if report.get("shipped_kernels"):
        lines.append(f"- kernel options we ship: {report['shipped_kernels']}")
    if report.get("onednn_auto") is not None:
        lines.append(f"- `onednn: auto` would choose {'oneDNN' if report['onednn_auto']['used'] else 'stock'} "
                     f"on this CPU (GEMM probe: oneDNN {_f(report['onednn_auto'].get('speedup'), '.2f')}x stock)")
    lines += ["", "| stage | side | kernels | rate | tokens/s | peak RSS MB | ours/TRL speed | ours/TRL RSS "
              "| % fp32 peak | runs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for st in report["stages"]:
        if st.get("error"):
            lines.append(f"| {st['name']} | - | - | **{st['error']}** | | | | | | |")
            continue
        unit = "ep/s" if st["rate"] == "units_per_sec" else "tok/s"
        for side in SIDES:
            s = st["sides"].get(side)
            if s is None:
                why = st.get("missing", {}).get(side)
                if why is None:  # a side the stage does not have (ours-onednn without a kernel option)
                    continue
                lines.append(f"| {st['name']} | {side} | - | {why} | | | | | | |")
                continue
            kernels = KERNELS[side]
            if side == "ours-shipped" and st.get("same_as_stock"):
                kernels = f"= stock ({st['same_as_stock']})"
            lines.append(
                f"| {st['name']} | {side} | {kernels} | {_f(s.get(st['rate']), '.2f')} {unit} | "
                f"{_f(s.get('tokens_per_sec'), '.0f')} | {_f(s.get('peak_rss_mb'), '.0f')} | "
                f"{_f(s.get('speed_vs_trl'), '.2f')} | {_f(s.get('rss_vs_trl'), '.2f')} | "
                + (f"{100 * s['share_of_fp32_peak']:.0f}%" if s.get("share_of_fp32_peak") else "n/a")
                + f" | {s['runs']} |")
    lines += ["", *report.get("notes", [])]
    return "\n".join(lines) + "\n"
