"""Offline preference optimisation (DPO family) with a pluggable :class:`PreferenceLoss`.

Each batch from :class:`~rlhf_lightning.datamodules.comparisons.ComparisonDataModule` holds B pairs
as ONE ``(2B, T)`` batch (row ``2b`` chosen, ``2b+1`` rejected), so the policy runs one forward per
step, and the reference (when the loss needs one) one more, under ``no_grad`` in eval mode.

The reference, in order of preference:

- none at all when ``loss.reference_free`` (SimPO, ORPO, NLL);
- with a LoRA policy: the same model with its adapter disabled (no second copy of the weights);
- ``reference:`` a separately loaded, frozen model;
- otherwise a frozen copy of the policy's initial weights.

(built, run and checkpointed by :mod:`rlhf_lightning.models.reference`, as PPO's)

``precompute_reference: true`` runs the reference once over the train and val data before the first
step and keeps the ``(chosen, rejected)`` log-probs per pair (keyed by a hash of the pair's tokens,
saved in checkpoints); training then runs one model, and without LoRA or ``reference:`` no copy
is made at all: the policy itself, before its first update, is the reference.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Iterator, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.losses.base import PreferenceLoss
from rlhf_lightning.losses.labels import IGNORE_INDEX
from rlhf_lightning.losses.logprobs import sequence_logps, sequence_logps_from_hidden
from rlhf_lightning.models.reference import (
    build_reference,
    drop_reference_weights,
    reference_forward,
    restore_reference_weights,
)
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.stage import (
    configure_stage_optimizers,
    export_stage_model,
    generate_predictions,
    load_policy,
)
from rlhf_lightning.optim.schedules import default_optimizer
from rlhf_lightning.rollout.generation import GenerationSpec

CACHE_KEY = "dpo_reference_logps"


def pair_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> list[int]:
    """A stable 63-bit key per pair of rows ``(2b, 2b+1)``: blake2b of both rows' tokens and label masks."""
    keys = []
    for b in range(input_ids.shape[0] // 2):
        h = hashlib.blake2b(digest_size=8)
        for row in (2 * b, 2 * b + 1):
            n = int(attention_mask[row].sum())
            h.update(input_ids[row, :n].cpu().numpy().tobytes())
            h.update((labels[row, :n] != IGNORE_INDEX).cpu().numpy().tobytes())
            h.update(b"|")
        keys.append(int.from_bytes(h.digest(), "little") >> 1)
    return keys


class DPOModule(LightningModule):
    """Preference optimisation of a causal LM on (prompt, chosen, rejected) pairs.

    Args:
        policy: the model to train (hub id / local folder, dtype, LoRA, QLoRA, checkpointing).
        loss: a :class:`PreferenceLoss` plugin (``class_path: sigmoid | robust | ipo | ...``);
            default DPO's sigmoid loss with ``beta = 0.1``.
        reference: a separate reference model; default: the policy's initial weights (adapter
            disabled with LoRA, else a frozen copy). Ignored by reference-free losses.
        precompute_reference: compute reference log-probs once before training and reuse them.
        optimizer: ``params -> Optimizer`` (default AdamW, lr 2e-5); scheduler: per-step LR schedule.
        targets_only_head: project only completion positions through the LM head (fewer FLOPs, no
            ``(2B, T, V)`` logits); falls back to full logits for models with logit scaling and under FSDP.
        generation: decoding options for ``predict`` (answers to ``data.predict`` prompts).
    """

    def __init__(
        self,
        policy: ModelSpec,
        loss: Optional[PreferenceLoss] = None,
        reference: Optional[ModelSpec] = None,
        precompute_reference: bool = False,
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: Optional[LRSchedulerCallable] = None,
        targets_only_head: bool = True,
        generation: GenerationSpec = GenerationSpec(),
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "loss"])
        if loss is None:
            from rlhf_lightning.losses.preference import SigmoidLoss

            loss = SigmoidLoss()
        if not isinstance(loss, PreferenceLoss):
            raise ConfigError(f"loss must be a PreferenceLoss, got {type(loss).__name__}")
        self.loss_fn = loss
        self.policy_spec = policy
        self.reference_spec = reference
        self.precompute_reference = precompute_reference
        self.optimizer_fn = optimizer
        self.scheduler_fn = scheduler
        self.targets_only_head = targets_only_head
        self.generation = generation
        self.model = None
        self.tokenizer = None
        self.reference_model = None
        self.reference_calls = 0  # reference forwards run (tests check reference-free losses run none)
        self.ref_cache: dict[int, tuple[float, float]] = {}

    @property
    def needs_reference(self) -> bool:
        return not getattr(self.loss_fn, "reference_free", False)

    # -- models ----------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load the policy (and, if one is needed, the reference) here so strategies can shard them."""
        if self.model is not None:
            return
        self.tokenizer, self.model = load_policy(self.policy_spec)
        if self.needs_reference:  # precomputing: the not-yet-updated policy itself, no copy
            self.reference_model = build_reference(self.model, self.reference_spec, self.tokenizer,
                                                   copy_policy=not self.precompute_reference)

    def train(self, mode: bool = True):  # keep the frozen reference in eval mode (no dropout)
        super().train(mode)
        if self.reference_model is not None:
            self.reference_model.eval()
        return self

    @contextlib.contextmanager
    def _reference(self) -> Iterator[torch.nn.Module]:
        """The reference model, in eval mode, without gradients (see :func:`reference_forward`)."""
        from rlhf_lightning.models.lora import has_adapter

        self.reference_calls += 1
        if self.reference_model is None and not has_adapter(self.model) and self.global_step > 0:
            raise DataError("reference log-probs missing from the precomputed cache after training started; "
                            "the policy is no longer the reference (was the data changed on resume?)")
        with reference_forward(self.model, self.reference_model) as ref:
            yield ref

    def sequence_logps(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum_logps, n_tokens)`` ``(2B,)`` of each row's completion tokens under ``model``."""
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
        split = self._backbone_and_head(model) if self.targets_only_head else None
        if split is None:
            return sequence_logps(model(**kwargs).logits, batch["labels"])
        backbone, head = split
        hidden = backbone(**kwargs).last_hidden_state
        return sequence_logps_from_hidden(hidden, batch["labels"], head)

    @staticmethod
    def _backbone_and_head(model: torch.nn.Module):
        """``(decoder, lm_head)`` of a plain HF causal LM (or its peft wrapper), or None if logits are post-processed."""
        from rlhf_lightning.models.sharding import is_sharded

        if is_sharded(model):  # FSDP gathers weights in the model's forward hooks: call the model itself
            return None
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = getattr(inner, "config", None)
        prefix = getattr(inner, "base_model_prefix", None)
        backbone = getattr(inner, prefix, None) if prefix else None
        head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
        if backbone is None or head is None or config is None:
            return None
        for name in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"):
            if getattr(config, name, None) not in (None, 1.0):
                return None
        return backbone, head

    # -- reference cache -------------------------------------------------------------------------
    def _reference_logps(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ref_chosen, ref_rejected)`` ``(B,)``: from the cache when precomputing, else a reference forward."""
        if not self.precompute_reference:
            with self._reference() as ref:
                sums, _ = self.sequence_logps(ref, batch)
            return sums[0::2], sums[1::2]
        keys = pair_keys(batch["input_ids"], batch["attention_mask"], batch["labels"])
        missing = [k for k in keys if k not in self.ref_cache]
        if missing:
            with self._reference() as ref:
                sums, _ = self.sequence_logps(ref, batch)
            for b, k in enumerate(keys):
                self.ref_cache[k] = (float(sums[2 * b]), float(sums[2 * b + 1]))
        values = torch.tensor([self.ref_cache[k] for k in keys], dtype=torch.float32, device=self.device)
        return values[:, 0], values[:, 1]

    def fill_reference_cache(self, loaders) -> int:
        """Run the reference once over ``loaders`` (eval mode, no grad); returns the pairs cached."""
        before = len(self.ref_cache)
        for loader in loaders:
            for batch in loader:
                batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
                self._reference_logps(batch)
        return len(self.ref_cache) - before

    def on_fit_start(self) -> None:
        if not (self.precompute_reference and self.needs_reference) or self.ref_cache:
            return
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return  # dataloaders passed to fit(): filled lazily (valid with LoRA or a reference model)
        from lightning.pytorch.utilities.model_helpers import is_overridden

        loaders = [dm.train_dataloader()]
        if is_overridden("val_dataloader", dm):
            val = dm.val_dataloader()
            loaders += val if isinstance(val, (list, tuple)) else [val]
        self.fill_reference_cache(loaders)
        if self.reference_model is not None:  # a loaded reference is no longer needed
            self.reference_model = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the reference is rebuilt from its spec (or the policy's initial weights) on load: don't store it
        drop_reference_weights(checkpoint.get("state_dict", {}), self.reference_model)
        if self.ref_cache:
            keys = torch.tensor(list(self.ref_cache), dtype=torch.long)
            checkpoint[CACHE_KEY] = {"keys": keys, "values": torch.tensor(list(self.ref_cache.values()))}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_reference_weights(checkpoint, self.reference_model)
        cache = checkpoint.get(CACHE_KEY)
        if cache:
            self.ref_cache = {int(k): (float(v[0]), float(v[1])) for k, v in zip(cache["keys"], cache["values"], strict=True)}

    # -- steps -----------------------------------------------------------------------------------
    def _shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        n_rows = batch["input_ids"].shape[0]
        if n_rows % 2 or ("response_mask" in batch and batch["response_mask"].shape[-1] != 2):
            raise DataError("DPO needs pairwise batches (row 2b chosen, 2b+1 rejected); set data pairwise_only: true")
        sums, counts = self.sequence_logps(self.model, batch)
        chosen, rejected = sums[0::2], sums[1::2]
        chosen_len, rejected_len = counts[0::2], counts[1::2]
        refs = self._reference_logps(batch) if self.needs_reference else (None, None)
        losses, metrics = self.loss_fn(chosen, rejected, refs[0], refs[1], chosen_len, rejected_len)
        loss = losses.mean()
        bs = n_rows // 2
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value.detach().float().mean(), batch_size=bs, sync_dist=stage != "train",
                     prog_bar=stage == "val" and name == "rewards/accuracies")
        self.log(f"{stage}/logps/chosen", chosen.detach().mean(), batch_size=bs, sync_dist=stage != "train")
        self.log(f"{stage}/logps/rejected", rejected.detach().mean(), batch_size=bs, sync_dist=stage != "train")
        # the policy's own preference: does it give the chosen answer more probability (sum / per token)?
        self.log(f"{stage}/logps/accuracies", (chosen > rejected).float().mean(), batch_size=bs,
                 sync_dist=stage != "train")
        per_tok = (chosen / chosen_len.clamp(min=1) > rejected / rejected_len.clamp(min=1)).float().mean()
        self.log(f"{stage}/logps/accuracies_per_token", per_tok, batch_size=bs, sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def configure_optimizers(self):
        return configure_stage_optimizers(self, self.optimizer_fn, self.scheduler_fn)

    # -- prediction ------------------------------------------------------------------------------
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Generate completions (``generation``) for each prompt; returns rows for the JSONL prediction writer."""
        return generate_predictions(self.model, self.tokenizer, batch, self.generation)

    # -- export ----------------------------------------------------------------------------------
    def export_hf(self, dirpath: str, *, merge_lora: bool = False) -> Optional[str]:
        """Write the policy as a Hugging Face folder (weights, config, tokenizer) atomically."""
        return export_stage_model(self, dirpath, merge_lora=merge_lora)
