"""Statistics over all data-parallel processes, for the places where a stage's math needs the
global batch rather than the local one (whitening, KL controller and λ updates, loss denominators).

With one process every function returns its input's value unchanged, so single-process results are
bit-identical with or without this module. Each function is a collective: all ranks must call it.
"""

from __future__ import annotations

import torch


def world_size(trainer) -> int:
    """Processes of the run (1 without a trainer, e.g. a module used on its own)."""
    return int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1


def sum_across(trainer, x: torch.Tensor) -> torch.Tensor:
    """``Σ_ranks x`` (a new tensor, no gradient)."""
    x = x.detach()
    if world_size(trainer) == 1:
        return x
    return trainer.strategy.reduce(x.clone(), reduce_op="sum")


def mean_across(trainer, total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``Σ total / Σ count`` over ranks (``count`` clamped to 1)."""
    both = sum_across(trainer, torch.stack([total.detach().double(), count.detach().double().to(total.device)]))
    return (both[0] / both[1].clamp(min=1)).to(total.dtype)


def any_across(trainer, flag: bool | torch.Tensor) -> bool:
    """True if ``flag`` is true on any rank (so every rank takes the same branch around collectives)."""
    local = torch.as_tensor(flag, dtype=torch.float32).reshape(())
    dev = trainer.strategy.root_device if world_size(trainer) > 1 else local.device
    return bool(sum_across(trainer, local.to(dev)) > 0)
