"""Per-policy figures of an evaluation: win rates against the baseline, KL, rewards, length, diversity.

Turns each policy's :class:`~rlhf_lightning.evaluation.sampling.PolicySamples` into the plain
numbers ``report.json`` holds (see :func:`policy_figures` for the keys).
"""

from __future__ import annotations

from typing import Any

import torch

from rlhf_lightning.evaluation.metrics import distinct_n, mean_std_stderr, win_rate, words
from rlhf_lightning.evaluation.sampling import PolicySamples


def _grid(values: list[float], draws: int) -> torch.Tensor:
    """``(P·N,)`` prompt-major values as ``(P, N)``."""
    return torch.tensor(values, dtype=torch.float64).view(-1, draws)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def policy_figures(samples: PolicySamples, baseline: PolicySamples, *, draws: int, primary: str,
                   bootstrap_samples: int, seed: int, confidence: float = 0.95) -> dict[str, Any]:
    """The figures of one policy against the baseline (``samples is baseline`` for the baseline itself).

    Keys: ``win_rate`` / ``win_rate_ci`` (by the ``primary`` reward), ``win_rates`` (every reward:
    ``{"win_rate", "ci"}``), ``kl`` / ``kl_std`` / ``kl_stderr`` (per-answer sequence log-ratio to the
    baseline), ``rewards`` / ``rewards_std`` (means and standard deviations over answers),
    ``mean_length`` (completion tokens, EOS included), ``mean_length_words``, ``finished_rate``
    (answers that ended before ``max_new_tokens``), ``distinct_1`` / ``distinct_2``,
    ``violation_rates`` and ``mean_costs`` per constraint.
    """
    wins = {}
    for name, scores in samples.rewards.items():
        w = win_rate(_grid(scores, draws), _grid(baseline.rewards[name], draws), samples=bootstrap_samples,
                     seed=seed, confidence=confidence)
        wins[name] = {"win_rate": w.rate, "ci": [w.lo, w.hi]}
    kl, kl_std, kl_stderr = mean_std_stderr(torch.tensor(samples.log_ratios, dtype=torch.float64))
    reward_stats = {name: mean_std_stderr(torch.tensor(v, dtype=torch.float64)) for name, v in samples.rewards.items()}
    return {
        "win_rate": wins[primary]["win_rate"],
        "win_rate_ci": list(wins[primary]["ci"]),
        "win_rates": wins,
        "kl": kl,
        "kl_std": kl_std,
        "kl_stderr": kl_stderr,
        "rewards": {name: s[0] for name, s in reward_stats.items()},
        "rewards_std": {name: s[1] for name, s in reward_stats.items()},
        "mean_length": _mean([float(n) for n in samples.lengths]),
        "mean_length_words": _mean([float(len(words(t))) for t in samples.completions]),
        "finished_rate": _mean([float(f) for f in samples.finished]),
        "distinct_1": distinct_n(samples.completions, 1),
        "distinct_2": distinct_n(samples.completions, 2),
        "violation_rates": {name: _mean([float(v) for v in flags]) for name, flags in samples.violations.items()},
        "mean_costs": {name: _mean(costs) for name, costs in samples.costs.items()},
    }


def examples(prompts: list[str], samples: dict[str, PolicySamples], *, draws: int, count: int,
             primary: str) -> list[dict[str, Any]]:
    """The first ``count`` prompts with every policy's first answer (draw 0) and its ``primary`` reward."""
    out = []
    for i, prompt in enumerate(prompts[:count]):
        row = i * draws
        out.append({"prompt": prompt,
                    "answers": {name: s.completions[row] for name, s in samples.items()},
                    "scores": {name: s.rewards[primary][row] for name, s in samples.items()}})
    return out


def answer_rows(prompts: list[str], samples: dict[str, PolicySamples], *, draws: int) -> list[dict[str, Any]]:
    """One row per policy and answer (``answers.jsonl``): the prompt, draw, text, completion tokens,
    log-ratio to the baseline, every reward, cost and violation flag — enough to recompute the report."""
    rows = []
    for name, s in samples.items():
        for k, completion in enumerate(s.completions):
            rows.append({"policy": name, "prompt_index": k // draws, "draw": k % draws, "prompt": prompts[k // draws],
                         "completion": completion, "tokens": s.lengths[k], "finished": s.finished[k],
                         "log_ratio": s.log_ratios[k], "rewards": {r: v[k] for r, v in s.rewards.items()},
                         "costs": {c: v[k] for c, v in s.costs.items()},
                         "violations": {c: v[k] for c, v in s.violations.items()}})
    return rows
