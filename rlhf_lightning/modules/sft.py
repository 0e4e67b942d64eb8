"""Supervised fine-tuning (and pre-training) of a causal LM.

The labels come from the data module: completion tokens only by default, every token with
``loss_on: all`` (pre-training). The loss is the token mean of next-token cross-entropy over the
target tokens of the whole optimizer step — all processes and accumulated micro-batches together
(:class:`~rlhf_lightning.modules.token_mean.GlobalTokenMean`), so the update does not depend on how
the global batch is split.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics.text import Perplexity

from rlhf_lightning.data.packing import block_causal_mask
from rlhf_lightning.losses.labels import IGNORE_INDEX
from rlhf_lightning.losses.language_model import token_nll
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.stage import (
    configure_stage_optimizers,
    export_stage_model,
    generate_predictions,
    load_policy,
)
from rlhf_lightning.modules.token_mean import GlobalTokenMean
from rlhf_lightning.optim.schedules import default_optimizer
from rlhf_lightning.rollout.generation import GenerationSpec


class SFTModule(LightningModule):
    """Causal-LM training on prompt/completion, chat or plain-text data.

    Args:
        policy: the model to train (hub id / local folder / config for training from scratch,
            dtype, LoRA, QLoRA, gradient checkpointing).
        optimizer: ``params -> Optimizer``, injected by LightningCLI (default AdamW, lr 2e-5).
        scheduler: ``optimizer -> LRScheduler``, stepped every optimizer step; a
            :class:`~rlhf_lightning.optim.schedules.WarmupCosineLR` gets its length from the trainer.
        generation: decoding options for ``predict``.
    """

    def __init__(
        self,
        policy: ModelSpec,
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: Optional[LRSchedulerCallable] = None,
        generation: GenerationSpec = GenerationSpec(),
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.policy_spec = policy
        self.optimizer_fn = optimizer
        self.scheduler_fn = scheduler
        self.generation = generation
        self.model = None
        self.tokenizer = None
        self.val_perplexity = Perplexity(ignore_index=IGNORE_INDEX)
        self.token_mean = GlobalTokenMean()

    # -- model -----------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load tokenizer and model here (not in ``__init__``) so strategies can shard them."""
        if self.model is not None:
            return
        self.tokenizer, self.model = load_policy(self.policy_spec)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        attention_mask, position_ids = batch.get("attention_mask"), batch.get("position_ids")
        if position_ids is not None and attention_mask is None:
            attention_mask = self._packed_mask(position_ids)
        out = self.model(input_ids=batch["input_ids"], attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False)
        return out.logits

    def _packed_mask(self, position_ids: torch.Tensor) -> Optional[torch.Tensor]:
        """An explicit block-diagonal causal mask for packed rows (faster than transformers' own; see
        data/packing.py); flash-attention and other kernels read the boundaries from position_ids."""
        impl = getattr(self.model.config, "_attn_implementation", None) or "eager"
        if impl == "sdpa":
            return block_causal_mask(position_ids)
        if impl == "eager":
            return block_causal_mask(position_ids, dtype=self.model.get_input_embeddings().weight.dtype)
        return None

    # -- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch)
        nll_sum, n_tokens = token_nll(logits, batch["labels"])
        loss = nll_sum / n_tokens.clamp(min=1)
        bs = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/target_tokens", n_tokens.float(), reduce_fx="sum", batch_size=bs)
        if not GlobalTokenMean.applies(self.trainer):
            return loss
        self.token_mean.count(n_tokens)  # the step's gradient becomes the token mean over all ranks and micro-batches
        return nll_sum

    def on_before_optimizer_step(self, optimizer) -> None:
        if GlobalTokenMean.applies(self.trainer):
            self.token_mean.rescale(self, optimizer)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self(batch)
        nll_sum, n_tokens = token_nll(logits, batch["labels"])
        bs = batch["input_ids"].shape[0]
        # token-weighted mean over the whole validation set (weights = target tokens per batch)
        self.log("val/loss", nll_sum / n_tokens.clamp(min=1), batch_size=int(n_tokens.clamp(min=1)), sync_dist=True)
        self.val_perplexity.update(logits[:, :-1].float(), batch["labels"][:, 1:])
        self.log("val/perplexity", self.val_perplexity, batch_size=bs)

    def configure_optimizers(self):
        return configure_stage_optimizers(self, self.optimizer_fn, self.scheduler_fn)

    # -- prediction ------------------------------------------------------------------------------
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Generate completions (``generation``) for each prompt; returns rows for the JSONL prediction writer."""
        return generate_predictions(self.model, self.tokenizer, batch, self.generation)

    # -- export ----------------------------------------------------------------------------------
    def export_hf(self, dirpath: str, *, merge_lora: bool = False) -> Optional[str]:
        """Write a Hugging Face folder (weights, config, tokenizer, chat template) atomically."""
        return export_stage_model(self, dirpath, merge_lora=merge_lora)
