"""Each process's random state in every checkpoint, so dropout (and any sampling) resumes exactly."""

from __future__ import annotations

from typing import Any, Optional

from lightning.pytorch import Callback

from rlhf_lightning.random_state import rng_state_for_rank, rng_states_of_all_ranks, set_rng_state


class RandomStateCheckpoint(Callback):
    """Saves the torch/CUDA/numpy/Python random states of every process with each checkpoint and, in
    a run resumed from it, restores this process's right before its first training batch — the point
    where the uninterrupted run continued from those states (the training loaders draw from their own
    generators, so fetching the batch in between draws nothing). The CLI adds it to every run."""

    def __init__(self) -> None:
        self._trainer = None
        self._saved: Optional[dict[str, Any]] = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        world = self._trainer.world_size if self._trainer is not None else 1
        states = rng_states_of_all_ranks(world)  # every process builds the checkpoint: a collective
        return {"rng": states[0], "rng_per_rank": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = state_dict or None

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if self._saved is not None:
            set_rng_state(rng_state_for_rank(self._saved, trainer.global_rank, trainer.world_size))
            self._saved = None
