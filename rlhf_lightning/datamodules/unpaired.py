"""Unpaired preference data (desirable / undesirable completions) for :class:`~rlhf_lightning.modules.kto.KTOModule`."""

from __future__ import annotations

import math
from typing import Literal, Optional

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from rlhf_lightning.data.spec import DataSource, SourcesArg
from rlhf_lightning.datamodules.predict import load_predict_rows, predict_loader
from rlhf_lightning.datamodules.resumable import ResumableTrainData, _data_parallel_rank
from rlhf_lightning.datamodules.splits import encode_train_val
from rlhf_lightning.errors import ConfigError, DataError


class UnpairedDataModule(ResumableTrainData, LightningDataModule):
    """Rows of one completion each, labelled desirable or undesirable (KTO).

    Args:
        train, val: sources (a path or hub id, or a mapping with ``path``, ``split``, ``format``,
            ``columns``, ``subset``, ``revision``; ``weight`` on every training source samples them as a
            seeded, resumable mixture, :mod:`rlhf_lightning.data.mixture`). Formats (detected from the
            columns or declared):
            ``unpaired`` (``prompt``, ``completion``, ``label``; strings or message lists),
            ``binary`` (``prompt``, ``response``, ``label``), or preference pairs (``pairwise`` and the
            other pairwise comparison formats), each pair read as a desirable and an undesirable row —
            see :mod:`rlhf_lightning.data.unpaired`.
        val_fraction: hold out part of ``train`` when ``val`` is empty (split before pairs are unpaired).
        predict: prompt rows for ``rlhf-lightning predict`` (:mod:`~rlhf_lightning.datamodules.predict`).
        tokenizer: linked from the model by the CLI.
        chat_template: replaces the tokenizer's chat template (a built-in name, a ``.jinja`` file or inline
            Jinja; :mod:`rlhf_lightning.data.chat_templates`); linked from the policy's ``chat_template``.
        max_length: token budget of prompt + completion (and of each mismatched KL pair).
        truncation: ``truncate`` / ``drop`` / ``error``; a prompt that leaves no completion token is
            always dropped and counted.
        batch_size: rows per batch; KTO's KL reference point pairs each prompt with another row's
            completion in the same batch, so it must be at least 2, and an epoch whose last batch would
            hold one row drops that row (a different one each epoch: the order is shuffled).
        eval_batch_size: for validation and ``predict`` (default ``batch_size``).
        max_prompt_length: prompt budget of ``predict`` generation (the last tokens are kept).
        seed: seed of the validation split and of the training order (resumable mid-epoch).
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
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        max_prompt_length: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if max_length < 2:
            raise ConfigError(f"data.max_length must be at least 2, got {max_length}")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ConfigError(f"data.batch_size and data.eval_batch_size must be at least 1, got {batch_size} and "
                              f"{eval_batch_size}")
        self.save_hyperparameters()
        self.init_sources(train, val, predict, tokenizer, chat_template)

    def _encode(self, sources: list[DataSource], role: str, *, holdout: float = 0.0):
        from rlhf_lightning.data.sources import load_source, split_validation
        from rlhf_lightning.data.unpaired import check_unpaired_format, detect_unpaired_format, to_unpaired
        from rlhf_lightning.data.unpaired_batches import encode_unpaired

        hp = self.hparams
        parts: dict[str, list] = {role: [], "val": []}
        if role == "train":
            self.train_sizes = []
        for src in sources:
            table = load_source(src)
            fmt = src.format or detect_unpaired_format(table.column_names, source=src.path)
            check_unpaired_format(fmt, table.column_names, source=src.path)
            splits = dict(zip((role, "val"), split_validation(table, holdout, hp.seed), strict=True)) if holdout \
                else {role: table}
            for part, rows in splits.items():
                records = [r for i, row in enumerate(rows) for r in to_unpaired(row, fmt, source=src.path, index=i)]
                encoded, stats = encode_unpaired(records, self._load_tokenizer(), max_length=hp.max_length,
                                                 truncation=hp.truncation, source=src.path)
                self.stats[f"{part}:{src.path}"] = stats
                n_good = sum(r["label"] for r in encoded)
                report = rank_zero_warn if stats.kept < stats.total or stats.truncated else rank_zero_info
                report(f"{part} data {src.path} ({fmt}): {stats.kept}/{stats.total} rows kept ({stats.truncated} "
                       f"truncated to {hp.max_length} tokens; {n_good} desirable, {len(encoded) - n_good} undesirable); "
                       f"dropped {stats.dropped_too_long} longer than {hp.max_length} tokens and "
                       f"{stats.dropped_no_target} whose prompt left no completion token")
                parts[part].extend(encoded)
                if part == "train":
                    self.train_sizes.append(len(encoded))
        return (parts[role], parts["val"]) if holdout else parts[role]

    def setup(self, stage: str) -> None:
        if stage == "predict":
            if self.predict_data is None:
                self.predict_data = load_predict_rows(self.predict_sources, self._load_tokenizer())
            return
        if self.train_data is not None or self.val_data is not None:
            return
        if stage == "fit" and not self.train_sources:
            raise ConfigError("data.train is empty: give at least one file or dataset id of unpaired preference rows")
        self.train_data, self.val_data = encode_train_val(self._encode, self.train_sources, self.val_sources,
                                                          self.hparams.val_fraction)
        if stage in ("validate", "test") and not self.val_data:
            raise DataError("no validation rows: set data.val or data.val_fraction")

    # -- loaders ---------------------------------------------------------------------------------
    def _needs_pairs(self) -> bool:
        """Whether the stage's loss estimates the KL term from mismatched pairs within a batch."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        return bool(getattr(module, "needs_kl_pairs", True))

    def _drop_single(self, n_rows: int, batch_size: int, option: str, role: str) -> bool:
        """Refuse one-row batches where the loss needs mismatched pairs; drop a last batch of one row."""
        if not self._needs_pairs():
            return False
        if batch_size < 2:
            raise ConfigError(f"{option} must be at least 2: the KL reference point pairs each prompt with another "
                              f"row's completion in the same batch, got {batch_size}")
        replicas, _ = _data_parallel_rank(self.trainer)
        per_rank = math.ceil(n_rows / replicas)  # Lightning splits validation rows over ranks too
        if per_rank == 1:
            where = "data.train" if role == "train" else "data.val (or data.val_fraction)"
            raise DataError(f"{role}: one row{' per process' if replicas > 1 else ''}, so no batch has a mismatched "
                            f"prompt/completion pair for the KL estimate; give at least two rows in {where}")
        if per_rank % batch_size == 1:
            rank_zero_info(f"{role}: the last batch of each epoch would hold one row, which has no mismatched pair "
                           f"for the KL estimate: that row is left out ({per_rank} rows, batches of {batch_size})")
            return True
        return False

    def _collator(self):
        from rlhf_lightning.data.unpaired_batches import UnpairedCollator

        return UnpairedCollator(self._load_tokenizer().pad_token_id, max_length=self.hparams.max_length)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        drop = self._drop_single(len(self.train_data), hp.batch_size, "data.init_args.batch_size", "train")
        return self.resumable_loader(self.train_data, shuffle=True, num_workers=hp.num_workers,
                                     collate_fn=self._collator(), drop_last=drop)

    def val_dataloader(self):
        if not self.val_data:
            return []
        hp = self.hparams
        size = hp.eval_batch_size or hp.batch_size
        option = "data.init_args.eval_batch_size" if hp.eval_batch_size else "data.init_args.batch_size"
        drop = self._drop_single(len(self.val_data), size, option, "val")
        return self.eval_loader(self.val_data, batch_size=size, num_workers=hp.num_workers,
                                collate_fn=self._collator(), drop_last=drop)

    def test_dataloader(self):
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return predict_loader(self, self.predict_data, self.hparams.max_prompt_length)
