"""The report folder: ``report.json``, ``report.md``, ``answers.jsonl`` and PNG plots, written atomically.

The folder is built in a hidden sibling, fsynced and swapped in whole (:mod:`rlhf_lightning.atomic_paths`),
so a failed run leaves the previous report exactly as it was. It only replaces a new or empty folder or
an earlier report (marked by ``.rlhf-lightning-report``, :mod:`rlhf_lightning.output_folders`).
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

from rlhf_lightning.atomic_paths import atomic_directory
from rlhf_lightning.evaluation.curves import StageCurves
from rlhf_lightning.evaluation.plots import plot_curves, plot_reward_vs_kl, plot_win_rates


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def plot_names(curves: list[StageCurves]) -> dict[str, Any]:
    """File names of the plots: ``win_rates``, ``reward_vs_kl`` and ``curves`` (stage -> file) for
    every stage that logged at least one plotted tag."""
    def safe(stage: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", stage)

    return {"win_rates": "win_rates.png", "reward_vs_kl": "reward_vs_kl.png",
            "curves": {c.stage: f"curves_{safe(c.stage)}.png" for c in curves if c.plotted()}}


def write_report(report: dict[str, Any], out: str | Path, curves: list[StageCurves],
                 answers: list[dict[str, Any]]) -> Path:
    """Write ``report`` (with ``report["plots"]`` from :func:`plot_names`), its plots and every answer
    (``answers.jsonl``, one JSON object a line) as the folder ``out``; returns its absolute path."""
    with atomic_directory(out, what="report") as tmp:
        with (tmp / "answers.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in answers)
        plots = report["plots"]
        plot_win_rates(report, tmp / plots["win_rates"])
        plot_reward_vs_kl(report, tmp / plots["reward_vs_kl"])
        for c in curves:
            if c.stage in plots["curves"]:
                plot_curves(c.stage, c.plotted(), tmp / plots["curves"][c.stage])
        (tmp / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "report.md").write_text(markdown(report), encoding="utf-8")
    return Path(out).expanduser().absolute()


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell (pipes escaped, line breaks as <br>)."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", "")
    return s.replace("\n", "<br>") if s.strip() else "*(empty)*"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: the policies' figures, win rates by reward, answers side by side, curves, settings."""
    base, primary, s = report["baseline"], report["primary_reward"], report["settings"]
    policies = report["policies"]
    lines = [f"# Evaluation against `{base}`", "",
             f"{s['prompts_count']} held-out prompts ({s['prompts']}) × {s['samples_per_prompt']} sampled answers, "
             f"seed {s['seed']}; win rates by `{primary}` with {s['confidence']:.0%} bootstrap intervals over prompts "
             f"({s['bootstrap_samples']} resamples); KL = mean over the policy's own answers of "
             f"log π(y|x) − log π_{base}(y|x), in nats.", ""]
    if s.get("kl_note"):
        lines += [f"**Note:** {s['kl_note']}.", ""]
    rewards, constraints = report["reward_names"], report["constraint_names"]
    header = ["policy", f"win rate vs {base}", "95% interval" if s["confidence"] == 0.95 else "interval",
              "KL (± s.e.)", *[f"reward {r}" for r in rewards], "length (tokens)", "length (words)",
              "distinct-1", "distinct-2", *[f"violations {c}" for c in constraints]]
    rows = []
    for name, p in policies.items():
        label = f"{name} (baseline)" if name == base else name
        rows.append([label, f"{p['win_rate']:.3f}", f"[{p['win_rate_ci'][0]:.3f}, {p['win_rate_ci'][1]:.3f}]",
                     f"{p['kl']:.3f} ± {p['kl_stderr']:.3f}", *[f"{p['rewards'][r]:.3f}" for r in rewards],
                     f"{p['mean_length']:.1f}", f"{p['mean_length_words']:.1f}", f"{p['distinct_1']:.3f}",
                     f"{p['distinct_2']:.3f}", *[f"{p['violation_rates'][c]:.3f}" for c in constraints]])
    lines += _table(header, rows) + [""]
    if len(rewards) > 1:
        lines += [f"## Win rate against `{base}` by reward", ""]
        lines += _table(["policy", *rewards], [[name, *[
            f"{p['win_rates'][r]['win_rate']:.3f} [{p['win_rates'][r]['ci'][0]:.3f}, {p['win_rates'][r]['ci'][1]:.3f}]"
            for r in rewards]] for name, p in policies.items()]) + [""]
    plots = report["plots"]
    lines += ["## Plots", "", f"![win rates]({plots['win_rates']})", "",
              f"![reward against KL]({plots['reward_vs_kl']})", ""]
    if report["examples"]:
        lines += [f"## Answers to held-out prompts (first sampled answer; `{primary}` in italics)", ""]
        names = list(policies)
        header = ["prompt", *[f"{n} (baseline)" if n == base else n for n in names]]
        lines += _table(header, [[_cell(e["prompt"]), *[f"{_cell(e['answers'][n])}<br>*{primary} {e['scores'][n]:.3f}*"
                                                       for n in names]] for e in report["examples"]]) + [""]
    if report["stages"]:
        lines += ["## Training", ""]
        for stage, info in report["stages"].items():
            lines.append(f"### {stage}")
            lines.append("")
            if info["log_dir"] is None:
                lines += [f"No TensorBoard event files under {info['folder']}.", ""]
                continue
            lines += [f"Latest run: `{info['log_dir']}`", ""]
            if stage in plots["curves"]:
                lines += [f"![{stage} curves]({plots['curves'][stage]})", ""]
            finals = info["final"]
            shown = {t: v for t, v in finals.items() if t in info["plotted"]} or finals
            lines += _table(["tag", "final value"], [[t, f"{v:.4g}"] for t, v in shown.items()]) + [""]
    lines += ["## Settings", "", "```json", json.dumps(s, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)
