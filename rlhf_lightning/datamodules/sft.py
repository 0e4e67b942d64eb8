"""Data for SFT / pre-training: load, validate, tokenise with label masks, optionally pack."""

from __future__ import annotations

from typing import Literal, Optional

import datasets
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from rlhf_lightning.data.spec import DataSource, SourcesArg
from rlhf_lightning.datamodules.predict import load_predict_rows, predict_loader
from rlhf_lightning.datamodules.resumable import ResumableTrainData
from rlhf_lightning.datamodules.splits import encode_train_val
from rlhf_lightning.errors import ConfigError


class SFTDataModule(ResumableTrainData, LightningDataModule):
    """Training/validation data for :class:`~rlhf_lightning.modules.sft.SFTModule`.

    Args:
        train: one or more sources: a path or hub id, or a mapping with the keys of
            :class:`~rlhf_lightning.data.spec.DataSource` (``path``, ``split``, ``format``,
            ``columns``, ``subset``, ``revision``, ``weight``); rows of all sources are concatenated,
            each source in its own (detected or declared) format, or with a ``weight`` on every source
            sampled as a seeded, resumable mixture (:mod:`rlhf_lightning.data.mixture`).
        val: validation sources; or set ``val_fraction`` to hold out part of ``train``.
        val_fraction: fraction of ``train`` held out for validation when ``val`` is empty.
        predict: prompt rows (``prompt`` or ``messages``) for ``rlhf-lightning predict``.
        tokenizer: tokenizer folder or hub id; linked from the model's ``policy`` by the CLI.
        chat_template: replaces the tokenizer's chat template (a built-in name, a ``.jinja`` file or inline
            Jinja; :mod:`rlhf_lightning.data.chat_templates`); linked from the policy's ``chat_template``.
        max_length: longest tokenised example (and packed row).
        truncation: ``truncate`` (keep the first ``max_length`` tokens), ``drop``, or ``error``;
            counts are reported either way.
        loss_on: ``completion`` (assistant/response tokens) or ``all`` (pre-training).
        packing: pack several examples per row without attention or position leakage.
        batch_size, eval_batch_size: rows per batch (``eval_batch_size`` defaults to ``batch_size``).
        max_prompt_length: prompt budget for ``predict`` (the last tokens are kept).
        num_workers: DataLoader workers. num_proc: processes for tokenisation (``datasets.map``).
        seed: seed of the validation split and of the training order (a function of seed and epoch,
            so a resumed run continues mid-epoch; see :mod:`~rlhf_lightning.datamodules.resumable`).
    """

    def __init__(
        self,
        train: Optional[SourcesArg] = None,
        val: Optional[SourcesArg] = None,
        val_fraction: float = 0.0,
        predict: Optional[SourcesArg] = None,
        tokenizer: Optional[str] = None,
        chat_template: Optional[str] = None,
        max_length: int = 1024,
        truncation: Literal["truncate", "drop", "error"] = "truncate",
        loss_on: Literal["completion", "all"] = "completion",
        packing: bool = False,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        max_prompt_length: Optional[int] = None,
        num_workers: int = 0,
        num_proc: Optional[int] = None,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if max_length < 2:
            raise ConfigError(f"data.max_length must be at least 2, got {max_length}")
        self.save_hyperparameters()
        self.init_sources(train, val, predict, tokenizer, chat_template)

    # -- loading ---------------------------------------------------------------------------------
    def _encode(self, sources: list[DataSource], role: str, *, holdout: float = 0.0):
        """Load, validate and tokenise every source; with ``holdout`` also return a validation part
        split from each source's rows before encoding (so no example straddles the split)."""
        from rlhf_lightning.data.encoding import encode_dataset
        from rlhf_lightning.data.formats import check_format, detect_format
        from rlhf_lightning.data.sources import load_source, split_validation

        hp = self.hparams
        tokenizer = self._load_tokenizer()
        parts: dict[str, list] = {role: [], "val": []}
        for src in sources:
            rows = load_source(src)
            fmt = src.format or detect_format(rows.column_names, source=src.path)
            if src.format:
                check_format(fmt, rows.column_names, source=src.path)
            if fmt == "oasst":  # message trees -> one best-ranked conversation per tree
                from rlhf_lightning.data.oasst import oasst_conversations

                rows, fmt = datasets.Dataset.from_list(oasst_conversations(rows, source=src.path)), "messages"
            splits = dict(zip((role, "val"), split_validation(rows, holdout, hp.seed), strict=True)) if holdout else {role: rows}
            for part, table in splits.items():
                encoded, stats = encode_dataset(table, fmt, tokenizer, max_length=hp.max_length,
                                                truncation=hp.truncation, loss_on=hp.loss_on, source=src.path,
                                                num_proc=hp.num_proc)
                self.stats[f"{part}:{src.path}"] = stats
                report = rank_zero_warn if (stats.truncated or stats.dropped_too_long or stats.dropped_no_target) \
                    else rank_zero_info
                report(f"{part} data {src.path} ({fmt}): {stats.summary()}")
                parts[part].append(encoded.select_columns(["input_ids", "labels"]))
        out = {k: self._finish(v, train=k == "train") for k, v in parts.items() if v}
        return (out[role], out.get("val")) if holdout else out[role]

    def _finish(self, parts: list[datasets.Dataset], *, train: bool = False):
        """One table of the sources' rows (packed if asked); for training, the rows of each source are
        recorded in ``train_sizes`` (the mixture's sizes). With mixture weights each source is packed
        on its own, so a packed row holds one source's examples and the weights apply to packed rows."""
        merged = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
        if not self.hparams.packing:
            if train:
                self.train_sizes = [len(p) for p in parts]
            return merged
        from rlhf_lightning.data.packing import pack

        if train and self.train_sources and self.train_sources[0].weight is not None:
            packed = [pack(p, self.hparams.max_length) for p in parts]
            self.train_sizes = [len(p) for p in packed]
            return [row for p in packed for row in p]
        rows = pack(merged, self.hparams.max_length)
        if train:
            self.train_sizes = [len(rows)]  # one packed stream: no per-source sizes (and no weights)
        return rows

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate", "test") and self.train_data is None and self.val_data is None:
            if stage == "fit" and not self.train_sources:
                raise ConfigError("data.train is empty: give at least one training file or dataset id")
            self.train_data, self.val_data = encode_train_val(self._encode, self.train_sources, self.val_sources,
                                                              self.hparams.val_fraction)
        if stage == "predict" and self.predict_data is None:
            self.predict_data = load_predict_rows(self.predict_sources, self._load_tokenizer())

    # -- loaders ---------------------------------------------------------------------------------
    def _collator(self):
        from rlhf_lightning.data.collators import PackedCollator, PaddingCollator

        pad = self._load_tokenizer().pad_token_id
        return PackedCollator(pad) if self.hparams.packing else PaddingCollator(pad)

    def train_dataloader(self) -> DataLoader:
        return self.resumable_loader(self.train_data, shuffle=True, collate_fn=self._collator(),
                                     num_workers=self.hparams.num_workers)

    def val_dataloader(self):
        if not self.val_data:
            return []
        return self.eval_loader(self.val_data, batch_size=self.hparams.eval_batch_size or self.hparams.batch_size,
                                collate_fn=self._collator(), num_workers=self.hparams.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return predict_loader(self, self.predict_data, self.hparams.max_prompt_length)
