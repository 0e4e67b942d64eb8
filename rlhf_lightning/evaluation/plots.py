"""PNG plots of an evaluation report (matplotlib's Agg canvas; no pyplot, no display needed).

Each function writes one file and takes plain numbers (the ``report.json`` content, or a stage's
curves), so plots can be redrawn from a saved report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_win_rates(report: dict[str, Any], path: str | Path) -> None:
    """Win rate of every policy against the baseline, by reward, with its bootstrap interval."""
    policies = report["policies"]
    names = list(policies)
    rewards = report["reward_names"]
    fig = _figure(max(4.5, 1.2 * len(names) * max(1, len(rewards)) + 2), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / len(rewards)
    for k, reward in enumerate(rewards):
        xs = [i + (k - (len(rewards) - 1) / 2) * width for i in range(len(names))]
        rates = [policies[n]["win_rates"][reward]["win_rate"] for n in names]
        lo = [r - policies[n]["win_rates"][reward]["ci"][0] for n, r in zip(names, rates, strict=True)]
        hi = [policies[n]["win_rates"][reward]["ci"][1] - r for n, r in zip(names, rates, strict=True)]
        ax.bar(xs, rates, width=width * 0.9, yerr=[lo, hi], capsize=3, label=reward)
    ax.axhline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"win rate vs {report['baseline']}")
    ax.set_title(f"Win rate against {report['baseline']} ({report['settings']['confidence']:.0%} bootstrap interval)")
    ax.legend(title="reward", fontsize="small")
    fig.savefig(path)


def plot_reward_vs_kl(report: dict[str, Any], path: str | Path) -> None:
    """Mean primary reward against mean KL to the baseline, one point per policy (± standard errors)."""
    policies = report["policies"]
    reward = report["primary_reward"]
    draws = report["settings"]["samples_per_prompt"] * report["settings"]["prompts_count"]
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    for name, p in policies.items():
        r_err = p["rewards_std"][reward] / math.sqrt(draws)
        ax.errorbar(p["kl"], p["rewards"][reward], xerr=p["kl_stderr"], yerr=r_err, fmt="o", capsize=3)
        ax.annotate(name, (p["kl"], p["rewards"][reward]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel(f"KL to {report['baseline']} (nats per answer)")
    ax.set_ylabel(f"mean reward {reward}")
    ax.set_title("Reward against KL")
    ax.grid(alpha=0.3)
    fig.savefig(path)


def plot_curves(stage: str, series: dict[str, tuple[list[int], list[float]]], path: str | Path) -> None:
    """One panel per logged tag of a stage (``tag -> (steps, values)``, at least one)."""
    tags = list(series)
    cols = min(3, len(tags))
    rows = math.ceil(len(tags) / cols)
    fig = _figure(4.0 * cols, 3.0 * rows)
    for i, tag in enumerate(tags):
        ax = fig.add_subplot(rows, cols, i + 1)
        steps, values = series[tag]
        order = sorted(range(len(steps)), key=lambda j: (steps[j], j))
        ax.plot([steps[j] for j in order], [values[j] for j in order], marker="." if len(steps) < 30 else None)
        ax.set_title(tag, fontsize="medium")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{stage}: training curves")
    fig.savefig(path)
