"""What PPO logs beyond scalars: tables of sample generations (random states: :mod:`rlhf_lightning.random_state`)."""

from __future__ import annotations

from rlhf_lightning.algorithms.masked import masked_sum
from rlhf_lightning.modules.ppo_rollout import Rollout


def samples_table(r: Rollout, k: int) -> str:
    """A Markdown table of the first ``k`` samples: prompt, completion, mean advantage per token."""
    lines = ["| prompt | completion | advantage |", "|---|---|---|"]
    adv = masked_sum(r.advantages, r.mask, dim=-1) / r.mask.sum(-1).clamp(min=1)
    for i in range(min(k, len(r))):
        cells = [str(x).replace("|", "\\|").replace("\n", " ") for x in (r.prompts[i], r.completions[i])]
        lines.append(f"| {cells[0]} | {cells[1]} | {float(adv[i]):.3f} |")
    return "\n".join(lines)
