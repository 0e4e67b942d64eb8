"""What every stage module shares, as functions (no base-class hierarchy)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from rlhf_lightning.models.spec import LoraSpec, ModelSpec, QuantizationSpec
from rlhf_lightning.optim.schedules import WarmupCosineLR
from rlhf_lightning.rollout.generation import GenerationSpec

# Stage hyperparameters hold these option dataclasses and are saved in every checkpoint; Lightning
# resumes (--ckpt_path) with torch.load(weights_only=True), which refuses classes not allowed here.
torch.serialization.add_safe_globals([ModelSpec, LoraSpec, QuantizationSpec, GenerationSpec])


def configure_stage_optimizers(module, optimizer_fn: Callable, scheduler_fn: Optional[Callable]):
    """Build the injected optimizer over trainable parameters and, if given, a per-step scheduler.

    Frozen parameters (a LoRA base, a reference model) are left out so the optimizer holds no state
    for them. A :class:`WarmupCosineLR` without ``total_steps`` gets the trainer's estimate.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = optimizer_fn(params)
    if scheduler_fn is None:
        return optimizer
    scheduler = scheduler_fn(optimizer)
    if isinstance(scheduler, WarmupCosineLR) and scheduler.total_steps is None:
        scheduler.total_steps = int(module.trainer.estimated_stepping_batches)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def export_stage_model(module, dirpath: str | Path, *, merge_lora: bool = False, model=None) -> str:
    """Export ``module.model`` (or ``model``) and ``module.tokenizer`` as a Hugging Face folder."""
    from rlhf_lightning.models.export import export_pretrained

    spec = getattr(module, "policy_spec", None)
    out = export_pretrained(model if model is not None else module.model, module.tokenizer, dirpath,
                            merge_lora=merge_lora, base_spec=spec)
    return str(out)
