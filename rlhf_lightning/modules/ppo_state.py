"""What a PPO checkpoint and its logs need beyond tensors: the random state of rollouts, sample tables."""

from __future__ import annotations

import random
from typing import Any

import torch

from rlhf_lightning.algorithms.masked import masked_sum
from rlhf_lightning.modules.ppo_rollout import Rollout


def get_rng_state() -> dict[str, Any]:
    """Every random state a rollout draws from (sampling, minibatch order, dropout)."""
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # numpy's key array as a tensor: checkpoints stay loadable with torch.load(weights_only=True)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_states_of_all_ranks(world_size: int) -> list[dict[str, Any]]:
    """``[get_rng_state() of rank 0, of rank 1, ...]`` — a collective when ``world_size > 1`` (every
    rank builds the checkpoint; rank 0 writes it, so each rank's own stream must travel to it)."""
    state = get_rng_state()
    if world_size == 1:
        return [state]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, state)
    return gathered


def rng_state_for_rank(saved: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """This rank's saved random state (rank 0's when the checkpoint came from another world size)."""
    per_rank = saved.get("rng_per_rank")
    if per_rank and len(per_rank) == world_size:
        return per_rank[rank]
    if world_size > 1:
        from lightning.pytorch.utilities import rank_zero_warn

        rank_zero_warn("the checkpoint was written by a different number of processes: every process resumes "
                       "with rank 0's random state (sampling continues correctly but not bit-exactly)")
    return saved["rng"]


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def samples_table(r: Rollout, k: int) -> str:
    """A Markdown table of the first ``k`` samples: prompt, completion, mean advantage per token."""
    lines = ["| prompt | completion | advantage |", "|---|---|---|"]
    adv = masked_sum(r.advantages, r.mask, dim=-1) / r.mask.sum(-1).clamp(min=1)
    for i in range(min(k, len(r))):
        cells = [str(x).replace("|", "\\|").replace("\n", " ") for x in (r.prompts[i], r.completions[i])]
        lines.append(f"| {cells[0]} | {cells[1]} | {float(adv[i]):.3f} |")
    return "\n".join(lines)
