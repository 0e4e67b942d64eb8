"""KTO (Ethayarajh et al. 2024): preference optimisation from unpaired desirable / undesirable
completions, with a pluggable :class:`~rlhf_lightning.losses.base.UnpairedPreferenceLoss`.

The stage is :class:`~rlhf_lightning.modules.dpo.DPOModule` with another step: it loads the policy
and the reference exactly as DPO does (LoRA with the adapter disabled, a separate ``reference:``,
or a frozen copy of the initial weights), exports and predicts the same way. Each batch from
:class:`~rlhf_lightning.datamodules.unpaired.UnpairedDataModule` holds ``B`` rows ``(x_i, y_i)``
and the mismatched pairs ``(x_i, y_{i-1})``; per step:

- the policy's log-probs of ``y_i`` (with gradients);
- when the loss needs the KL reference point: the policy's log-probs of the mismatched pairs, in a
  second forward under ``no_grad`` (in the first one they would double the backward pass's work);
- the reference's log-probs of both sets of rows, in ONE forward of ``2B`` rows under ``no_grad``;
- ``z0``: the mismatched pairs' mean log-ratio, averaged over data-parallel ranks (TRL gathers it
  the same way), clamped at 0 by the loss.

Metrics as TRL's ``KTOTrainer`` logs them: ``rewards/chosen`` (mean ``β·r`` over the batch's
desirable rows), ``rewards/rejected``, ``rewards/margins``, ``kl`` (``z0``), ``logps/chosen``,
``logps/rejected`` (mean log-prob sums), ``loss``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.losses.base import UnpairedPreferenceLoss
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.dpo import DPOModule
from rlhf_lightning.optim.schedules import default_optimizer
from rlhf_lightning.rollout.generation import GenerationSpec


class KTOModule(DPOModule):
    """KTO on unpaired rows ``(prompt, completion, desirable?)``.

    Args:
        policy: the model to train (hub id / local folder, dtype, LoRA, QLoRA, checkpointing).
        loss: an :class:`UnpairedPreferenceLoss` plugin (``class_path: kto | apo_zero_unpaired``);
            default KTO with ``beta = 0.1`` and both weights 1.
        reference: a separate reference model; default: the policy's initial weights (adapter
            disabled with LoRA, else a frozen copy).
        optimizer: ``params -> Optimizer`` (default AdamW, lr 2e-5); scheduler: per-step LR schedule.
        targets_only_head: project only completion positions through the LM head (see DPOModule).
        generation: decoding options for ``predict`` (default: :class:`GenerationSpec`'s defaults).
    """

    def __init__(
        self,
        policy: ModelSpec,
        loss: Optional[UnpairedPreferenceLoss] = None,
        reference: Optional[ModelSpec] = None,
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: Optional[LRSchedulerCallable] = None,
        targets_only_head: bool = True,
        generation: Optional[GenerationSpec] = None,
    ) -> None:
        super().__init__(policy, loss=None, reference=reference, precompute_reference=False, optimizer=optimizer,
                         scheduler=scheduler, targets_only_head=targets_only_head,
                         generation=generation if generation is not None else GenerationSpec())
        if loss is None:
            from rlhf_lightning.losses.kto import KTOLoss

            loss = KTOLoss()
        if not isinstance(loss, UnpairedPreferenceLoss):
            raise ConfigError(f"loss must be an UnpairedPreferenceLoss (kto, apo_zero_unpaired), got "
                              f"{type(loss).__name__}")
        self.loss_fn = loss

    @property
    def needs_reference(self) -> bool:
        return True

    @property
    def needs_kl_pairs(self) -> bool:
        """Whether batches need mismatched pairs (the data module then refuses one-row batches)."""
        return bool(getattr(self.loss_fn, "needs_kl", True))

    @staticmethod
    def _rows(batch: dict[str, Any], kl: bool) -> dict[str, torch.Tensor]:
        """The matched rows, followed by the mismatched ones when ``kl`` (``(2B, T)``, one width)."""
        keys = ("input_ids", "attention_mask", "labels")
        if not kl:
            return {k: batch[k] for k in keys}
        return {k: torch.cat([batch[k], batch[f"KL_{k}"]]) for k in keys}

    @staticmethod
    def _kl_rows(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {k: batch[f"KL_{k}"] for k in ("input_ids", "attention_mask", "labels")}

    def _kl(self, kl_logps: torch.Tensor, ref_kl_logps: torch.Tensor) -> torch.Tensor:
        from rlhf_lightning.losses.kto import kl_estimate

        kl = kl_estimate(kl_logps, ref_kl_logps)
        if self._trainer is not None and self._trainer.world_size > 1:  # z0 averaged over ranks, as TRL gathers it
            kl = self.all_gather(kl).mean()
        return kl

    def _shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        if "label" not in batch:
            raise DataError("KTO needs unpaired batches (input_ids, labels, label, KL_*): use "
                            "rlhf_lightning.datamodules.unpaired.UnpairedDataModule")
        labels = batch["label"].to(torch.bool)
        n = labels.shape[0]
        use_kl = self.needs_kl_pairs
        if use_kl and n < 2:
            raise DataError("a KTO batch of one row has no mismatched prompt/completion pair for the KL reference "
                            "point; use batches of at least two rows")
        logps, _ = self.sequence_logps(self.model, self._rows(batch, False))
        with self._reference() as ref:  # matched and mismatched rows in one forward
            ref_sums, _ = self.sequence_logps(ref, self._rows(batch, use_kl))
        kl = None
        if use_kl:
            with torch.no_grad():  # a separate forward: the mismatched rows take no part in the backward pass
                kl_logps, _ = self.sequence_logps(self.model, self._kl_rows(batch))
            kl = self._kl(kl_logps, ref_sums[n:])
        losses, metrics = self.loss_fn(logps, ref_sums[:n], labels, kl=kl)
        loss = losses.mean()
        self._log_metrics(stage, loss, logps.detach(), labels, metrics)
        return loss

    def _log_metrics(self, stage: str, loss: torch.Tensor, logps: torch.Tensor, labels: torch.Tensor,
                     metrics: dict[str, torch.Tensor]) -> None:
        sync = stage != "train"
        n = labels.shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=n, sync_dist=sync)
        n_good, n_bad = int(labels.sum()), int((~labels).sum())
        means = {}
        for name, value in {**metrics, "logps": logps}.items():
            value = value.detach().float()
            if value.ndim == 0:
                self.log(f"{stage}/{name}", value, batch_size=n, sync_dist=sync)
                continue
            for tag, mask, count in (("chosen", labels, n_good), ("rejected", ~labels, n_bad)):
                if count:  # Lightning weights each step's mean by its count: the epoch mean is per row
                    means[(name, tag)] = value[mask].mean()
                    self.log(f"{stage}/{name}/{tag}", means[(name, tag)], batch_size=count, sync_dist=sync)
        if ("rewards", "chosen") in means and ("rewards", "rejected") in means:
            margin = means[("rewards", "chosen")] - means[("rewards", "rejected")]
            self.log(f"{stage}/rewards/margins", margin, batch_size=n, sync_dist=sync)
