"""A per-token mean loss over a whole optimizer step, however the step is split.

A token-mean loss computed per micro-batch and averaged (what gradient accumulation and data
parallelism do) weights a short micro-batch's tokens more than a long one's: the update then depends
on how the global batch was split across processes and accumulation steps. Instead, each micro-batch
backpropagates the *sum* of its token losses and counts its tokens; before the optimizer step the
gradients are multiplied by ``W * k / T`` — ``W`` processes whose gradients are averaged, ``k``
accumulation steps Lightning divides the loss by, ``T`` the target tokens of the whole step summed
over every process — so the step follows ``sum of all token losses / T`` exactly.
(The same fix as "gradient accumulation and loss normalisation", Hugging Face blog, Oct 2024.)
"""

from __future__ import annotations

import torch

from rlhf_lightning.modules.data_parallel import sum_across


class GlobalTokenMean:
    """Counts target tokens over one optimizer step and rescales the accumulated gradients.

    Use: in ``training_step`` return ``loss_sum`` (``()``, summed over this micro-batch's target
    tokens) after ``count(n_tokens)``; in ``on_before_optimizer_step`` call
    ``rescale(module, optimizer)``.
    """

    def __init__(self) -> None:
        self.tokens = 0.0

    @staticmethod
    def applies(trainer) -> bool:
        """False under DeepSpeed, whose engine owns (and partitions) the gradients: no rescaling
        hook sees them there, so a stage falls back to the per-micro-batch token mean."""
        return "DeepSpeed" not in type(trainer.strategy).__name__

    def count(self, n_tokens: torch.Tensor | int) -> None:
        self.tokens += float(n_tokens)

    def rescale(self, module, optimizer: torch.optim.Optimizer) -> float:
        """Divide the step's gradients by its global token count (all ranks); returns that count."""
        trainer = module.trainer
        total = float(sum_across(trainer, torch.tensor(self.tokens, dtype=torch.float64, device=module.device)))
        self.tokens = 0.0
        factor = trainer.world_size * trainer.accumulate_grad_batches / max(total, 1.0)
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(factor)
        return total
