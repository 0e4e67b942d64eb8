"""Reward-model training: a scalar-head sequence classifier scored on K responses per prompt.

Each batch from :class:`~rlhf_lightning.datamodules.comparisons.ComparisonDataModule` holds B
comparisons × K responses as ONE right-padded ``(B*K, T)`` batch, so all responses go through a
single forward pass. The classifier (``AutoModelForSequenceClassification``, ``num_labels=1``)
reads each row's score at its last non-pad token (decoders) or its pooled first token (encoders);
the scores are reshaped to ``(B, K)`` best first and handed to the pluggable
:class:`~rlhf_lightning.losses.base.RewardLoss`. A sample is encoded as the ``classifier`` reward
plugin scores it (:mod:`rlhf_lightning.data.reward_inputs`): the chat template when the tokenizer
has one, else the text pair ``(prompt, response)`` (``[CLS] p [SEP] r [SEP]`` for BERT).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from jsonargparse import lazy_instance
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics.classification import BinaryAccuracy
from torchmetrics.regression import MeanSquaredError, SpearmanCorrCoef

from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.losses.base import RewardLoss
from rlhf_lightning.losses.reward import PairwiseLoss
from rlhf_lightning.metrics.ranking import ConcordanceAccuracy, KendallTau, MeanMargin, RankingAccuracy
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.stage import configure_stage_optimizers, export_stage_model, predict_rows
from rlhf_lightning.optim.schedules import default_optimizer

#: names of the classification head in transformers' sequence classifiers (Llama/Qwen/…: score; BERT/…: classifier)
HEAD_NAMES = ("score", "classifier", "pooler")


class RewardModelModule(LightningModule):
    """Train a reward model from pairs, K-wise rankings, scores or good/bad labels.

    Args:
        backbone: the model (decoder or encoder; hub id / local folder, dtype, LoRA / QLoRA,
            gradient checkpointing) loaded as ``AutoModelForSequenceClassification(num_labels=1)``.
        loss: a ``rlhf_lightning.reward_losses`` plugin: ``pairwise`` (default), ``kwise``,
            ``plackett_luce`` (rankings), ``mse`` (scores), ``binary`` (good/bad labels).
        optimizer: ``params -> Optimizer`` (default AdamW, lr 2e-5), injected by LightningCLI.
        scheduler: ``optimizer -> LRScheduler``, stepped every optimizer step.
        freeze_backbone: train only the classification head (a linear probe on frozen features).

    Logged: ``train/loss``, ``train/accuracy``; ``val/loss``, ``val/accuracy`` (the fraction of
    correctly ordered pairs: pairwise accuracy for pairs, ranking accuracy for K-wise rankings,
    label accuracy for good/bad data, pair concordance for scored data), ``val/margin``
    (chosen - rejected), ``val/kendall_tau`` (rankings with K > 2), ``val/mse`` and
    ``val/spearman`` (scored / labelled data).
    """

    #: asked by ComparisonDataModule: encode samples as the ``classifier`` reward plugin scores them
    comparison_encoding = "classifier"

    def __init__(
        self,
        backbone: ModelSpec,
        loss: RewardLoss = lazy_instance(PairwiseLoss),
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: Optional[LRSchedulerCallable] = None,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        # the loss is a plugin object (its YAML is in the run's config.yaml); only its name goes here
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "loss"])
        self.hparams["loss_class"] = f"{type(loss).__module__}.{type(loss).__qualname__}"
        self.backbone_spec = backbone
        self.loss_fn = loss
        self.optimizer_fn = optimizer
        self.scheduler_fn = scheduler
        self.freeze_backbone = freeze_backbone
        self.model = None
        self.tokenizer = None
        self.val_accuracy = RankingAccuracy()
        self.val_margin = MeanMargin()
        self.val_kendall = KendallTau()
        self.val_mse = MeanSquaredError()
        self.val_spearman = SpearmanCorrCoef()
        self.val_concordance = ConcordanceAccuracy()
        self.val_label_accuracy = BinaryAccuracy()

    # -- model -----------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load tokenizer and classifier here (not in ``__init__``) so strategies can shard them."""
        if self.model is not None:
            return
        from rlhf_lightning.errors import option_errors
        from rlhf_lightning.models.loading import load_sequence_classifier, load_tokenizer

        with option_errors("model.init_args.backbone"):  # what transformers/peft refuse is the user's option
            self.tokenizer = load_tokenizer(self.backbone_spec)
            self.model = load_sequence_classifier(self.backbone_spec, num_labels=1, tokenizer=self.tokenizer)
        if self.freeze_backbone:
            head = [p for n, p in self.model.named_parameters() if _is_head(n)]
            if not head:
                raise ConfigError("freeze_backbone: no classification head parameters found "
                                  f"(looked for modules named {', '.join(HEAD_NAMES)})")
            for name, param in self.model.named_parameters():
                param.requires_grad_(_is_head(name))
        if hasattr(self.model.config, "use_cache"):
            self.model.config.use_cache = False  # a classifier never generates: build no KV cache

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scalar reward per row: ``(N, T)`` → ``(N,)`` (float32); ``token_type_ids`` for text pairs (BERT)."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        return logits[:, 0].float()

    def rewards(self, batch: dict[str, Any]) -> torch.Tensor:
        """Rewards ``(B, K)`` best first (invalid slots hold the score of a dummy row; see ``response_mask``)."""
        mask = batch["response_mask"]
        return self(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")).view(mask.shape)

    # -- loss ------------------------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any], stage: str):
        mask = batch["response_mask"].bool()
        scores = batch.get("scores")
        labels = scores if scores is not None and bool(torch.isfinite(scores[mask]).any()) else None
        k = mask.shape[-1]
        name = type(self.loss_fn).__name__
        if self.loss_fn.needs_labels and labels is None:
            raise ConfigError(f"reward loss {name} needs scores or labels per response (scored, binary or "
                              "ranking data with 'scores'), but this batch has none; use 'pairwise' or 'kwise'")
        if not self.loss_fn.needs_labels and k < 2:
            raise ConfigError(f"reward loss {name} compares responses, but the {stage} data is pointwise "
                              "(one response per prompt: scored or good/bad); use the 'mse' or 'binary' loss")
        rewards = self.rewards(batch)
        margins = batch.get("margins")
        losses, metrics = self.loss_fn(rewards, mask, labels, margins)
        return rewards, mask, labels, losses.mean(), metrics

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        _, _, _, loss, metrics = self._loss(batch, "train")
        bs = batch["response_mask"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if "accuracy" in metrics:
            self.log("train/accuracy", metrics["accuracy"].float().mean(), prog_bar=True, batch_size=bs)
        if "margin" in metrics:
            self.log("train/margin", metrics["margin"].float().mean(), batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        rewards, mask, labels, loss, _ = self._loss(batch, "val")
        rewards = rewards.detach()
        bs = mask.shape[0]
        self.log("val/loss", loss, batch_size=bs, sync_dist=True)
        if mask.shape[-1] >= 2:
            self.val_accuracy.update(rewards, mask)
            self.log("val/accuracy", self.val_accuracy, prog_bar=True, batch_size=bs)
            both = mask[:, 0] & mask[:, 1]
            self.val_margin.update(rewards[both, 0], rewards[both, 1])
            self.log("val/margin", self.val_margin, batch_size=bs)
            if mask.shape[-1] > 2:
                self.val_kendall.update(rewards, mask)
                self.log("val/kendall_tau", self.val_kendall, batch_size=bs)
            return
        self._pointwise_metrics(rewards[:, 0], labels[:, 0], bs)

    def _pointwise_metrics(self, preds: torch.Tensor, target: torch.Tensor, bs: int) -> None:
        self.val_mse.update(preds, target)
        self.log("val/mse", self.val_mse, batch_size=bs)
        self.val_spearman.update(preds, target)
        self.log("val/spearman", self.val_spearman, batch_size=bs)
        if getattr(self.loss_fn, "binary_labels", False):
            # good/bad: a reward > 0 says "good"
            self.val_label_accuracy.update((preds > 0).long(), (target > 0.5).long())
            self.log("val/accuracy", self.val_label_accuracy, prog_bar=True, batch_size=bs)
        else:
            self.val_concordance.update(preds, target)
            self.log("val/accuracy", self.val_concordance, prog_bar=True, batch_size=bs)

    def configure_optimizers(self):
        return configure_stage_optimizers(self, self.optimizer_fn, self.scheduler_fn)

    # -- prediction ------------------------------------------------------------------------------
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Score each ``data.predict`` row: its prompt and its ``completion`` (else ``response``); returns
        the rows plus ``score``, for the JSONL prediction writer.

        A sample is encoded as in training and as the ``classifier`` reward plugin scores the export
        (:mod:`rlhf_lightning.data.reward_inputs`); one longer than the data's ``max_length`` keeps its
        last tokens, where the score is read (the plugin's default truncation side).
        """
        from rlhf_lightning.data.prompts import prompt_messages
        from rlhf_lightning.data.reward_inputs import encode_reward_inputs

        rows = predict_rows(batch)
        prompts = [prompt_messages(row, source="data.predict", index=i) for i, row in enumerate(rows)]
        responses = [_response(row, f"data.predict batch {batch_idx}, row {i} of the batch")
                     for i, row in enumerate(rows)]
        max_length = getattr(getattr(getattr(self._trainer, "datamodule", None), "hparams", None), "max_length", None)
        side, self.tokenizer.truncation_side = self.tokenizer.truncation_side, "left"
        try:
            enc = encode_reward_inputs(self.tokenizer, prompts, responses, padding=True, padding_side="right",
                                       truncation=max_length is not None, max_length=max_length, return_tensors="pt")
        finally:
            self.tokenizer.truncation_side = side
        enc = {k: v.to(self.device) for k, v in enc.items()}
        scores = self(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
        return [{**row, "score": float(score)} for row, score in zip(rows, scores.tolist(), strict=True)]

    # -- export ----------------------------------------------------------------------------------
    def export_hf(self, dirpath: str, *, merge_lora: bool = False) -> Optional[str]:
        """Write a Hugging Face sequence-classification folder (weights, config with ``pad_token_id``,
        tokenizer, chat template) atomically; ``transformers`` and the ``classifier`` reward plugin load it."""
        return export_stage_model(self, dirpath, merge_lora=merge_lora, base_spec=self.backbone_spec)


def _response(row: dict[str, Any], where: str) -> str:
    for key in ("completion", "response"):
        if isinstance(row.get(key), str):
            return row[key]
    raise DataError(f"{where}: a reward model scores the row's 'completion' or 'response' (a string); the row has "
                    f"columns {sorted(row)}")


def _is_head(name: str) -> bool:
    parts = name.split(".")
    return any(p in HEAD_NAMES for p in parts)

