"""Every random stream a training step may draw from, per process, for checkpoints that resume exactly.

A checkpoint is built on every process and written by rank 0, so each process's own streams are
gathered to it (:func:`rng_states_of_all_ranks`); a resumed process takes back its own
(:func:`rng_state_for_rank`).
"""

from __future__ import annotations

import random
from typing import Any

import torch


def get_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python random states (sampling, minibatch order, dropout)."""
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # numpy's key array as a tensor: checkpoints stay loadable with torch.load(weights_only=True)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_states_of_all_ranks(world_size: int) -> list[dict[str, Any]]:
    """``[get_rng_state() of rank 0, of rank 1, ...]`` — a collective when ``world_size > 1``."""
    state = get_rng_state()
    if world_size == 1:
        return [state]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, state)
    return gathered


def rng_state_for_rank(saved: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """This rank's state from ``{"rng": rank 0's, "rng_per_rank": [...]}`` (rank 0's, with a warning,
    when the checkpoint came from another number of processes)."""
    per_rank = saved.get("rng_per_rank")
    if per_rank and len(per_rank) == world_size:
        return per_rank[rank]
    if world_size > 1:
        from lightning.pytorch.utilities import rank_zero_warn

        rank_zero_warn("the checkpoint was written by a different number of processes: every process resumes "
                       "with rank 0's random state (training continues correctly but not bit-exactly)")
    return saved["rng"]
