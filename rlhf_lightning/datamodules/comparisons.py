"""Comparison data (pairs, K-wise rankings, scored or good/bad responses) for reward models and DPO."""

from __future__ import annotations

from typing import Literal, Optional

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from rlhf_lightning.data.spec import DataSource, SourcesArg
from rlhf_lightning.datamodules.predict import load_predict_rows, predict_loader
from rlhf_lightning.datamodules.resumable import ResumableTrainData
from rlhf_lightning.datamodules.splits import encode_train_val
from rlhf_lightning.errors import ConfigError, DataError


class ComparisonDataModule(ResumableTrainData, LightningDataModule):
    """Comparisons for :class:`RewardModelModule` and :class:`DPOModule`.

    Args:
        train, val: sources (a path or hub id, or a mapping with ``path``, ``split``, ``format``,
            ``columns``, ``subset``, ``revision``; ``weight`` on every training source samples them as a
            seeded, resumable mixture, :mod:`rlhf_lightning.data.mixture`). Formats (detected from the
            columns or declared):
            ``pairwise``, ``implicit_pairwise``, ``ranking``, ``scored``, ``binary``,
            ``ultrafeedback``, ``tldr``, ``sharegpt`` and ``alpaca`` (LLaMA-Factory preference rows),
            ``oasst`` (message trees: rankings of sibling replies) — see
            :mod:`rlhf_lightning.data.comparisons`.
        val_fraction: hold out part of ``train`` when ``val`` is empty.
        predict: prompt rows (``prompt`` or ``messages``) for ``rlhf-lightning predict``, as
            :mod:`~rlhf_lightning.datamodules.predict` reads them: DPO answers them; a reward model
            scores each row's ``completion`` (or ``response``).
        tokenizer: linked from the model by the CLI.
        chat_template: replaces the tokenizer's chat template (a built-in name, a ``.jinja`` file or inline
            Jinja; :mod:`rlhf_lightning.data.chat_templates`); linked from the model's ``chat_template``.
        max_length: token budget of prompt + response.
        truncation: ``truncate`` / ``drop`` / ``error`` (a prompt that leaves no response token is
            always dropped and counted under ``truncate``).
        batch_size: comparisons per batch (each brings its K responses); eval_batch_size: for
            validation and ``predict`` (default ``batch_size``).
        max_prompt_length: prompt budget of ``predict`` generation (the last tokens are kept).
        seed: seed of the validation split and of the training order (resumable mid-epoch, see
            :mod:`~rlhf_lightning.datamodules.resumable`).
        pairwise_only: refuse formats with K != 2 (DPO).
        encoding: ``causal`` (prompt + response as one text, for DPO) or ``classifier`` (reward
            models: text pairs when the tokenizer has no chat template, as the ``classifier``
            reward plugin scores them); default: the model's ``comparison_encoding``, else causal.
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
        pairwise_only: bool = False,
        encoding: Optional[Literal["causal", "classifier"]] = None,
    ) -> None:
        super().__init__()
        if max_length < 2:
            raise ConfigError(f"data.max_length must be at least 2, got {max_length}")
        self.save_hyperparameters()
        self.init_sources(train, val, predict, tokenizer, chat_template)

    def _encode(self, sources: list[DataSource], role: str, *, holdout: float = 0.0):
        from rlhf_lightning.data.comparison_batches import encode_comparisons
        from rlhf_lightning.data.comparisons import (
            PAIRWISE_FORMATS,
            check_comparison_format,
            detect_comparison_format,
            to_comparison,
        )
        from rlhf_lightning.data.sources import load_source, split_validation

        hp = self.hparams
        parts: dict[str, list] = {role: [], "val": []}
        if role == "train":
            self.train_sizes = []
        for src in sources:
            table = load_source(src)
            fmt = src.format or detect_comparison_format(table.column_names, source=src.path)
            check_comparison_format(fmt, table.column_names, source=src.path)
            if fmt == "oasst":  # message trees -> one ranking per prompt with ranked sibling replies
                import datasets

                from rlhf_lightning.data.oasst import oasst_rankings

                table, fmt = datasets.Dataset.from_list(oasst_rankings(table, source=src.path)), "ranking"
            if hp.pairwise_only and fmt not in PAIRWISE_FORMATS:
                raise ConfigError(f"{src.path}: format {fmt!r} is not pairwise; this stage trains on "
                                  f"prompt/chosen/rejected pairs")
            splits = dict(zip((role, "val"), split_validation(table, holdout, hp.seed), strict=True)) if holdout else {role: table}
            for part, rows in splits.items():
                comps = [to_comparison(r, fmt, source=src.path, index=i) for i, r in enumerate(rows)]
                if None in comps:  # ultrafeedback rows whose completions all share one score
                    rank_zero_info(f"{part} data {src.path}: {comps.count(None)} rows skipped (fewer than two "
                                   f"distinct scores: nothing to compare)")
                    comps = [c for c in comps if c is not None]
                encoded, stats = encode_comparisons(comps, self._load_tokenizer(), max_length=hp.max_length,
                                                    truncation=hp.truncation, source=src.path,
                                                    encoding=self._input_encoding())
                self.stats[f"{part}:{src.path}"] = stats
                report = rank_zero_warn if stats.kept < stats.total or stats.truncated else rank_zero_info
                report(f"{part} data {src.path} ({fmt}): {stats.summary()}")
                parts[part].extend(encoded)
                if part == "train":
                    self.train_sizes.append(len(encoded))
        return (parts[role], parts["val"]) if holdout else parts[role]

    def _input_encoding(self) -> str:
        if self.hparams.encoding:
            return self.hparams.encoding
        module = self.trainer.lightning_module if self.trainer is not None else None
        return getattr(module, "comparison_encoding", "causal")

    def setup(self, stage: str) -> None:
        if stage == "predict":
            if self.predict_data is None:
                self.predict_data = load_predict_rows(self.predict_sources, self._load_tokenizer())
            return
        if self.train_data is not None or self.val_data is not None:
            return
        if stage == "fit" and not self.train_sources:
            raise ConfigError("data.train is empty: give at least one comparison file or dataset id")
        self.train_data, self.val_data = encode_train_val(self._encode, self.train_sources, self.val_sources,
                                                          self.hparams.val_fraction)
        if stage in ("validate", "test") and not self.val_data:
            raise DataError("no validation comparisons: set data.val or data.val_fraction")

    def _loader(self, rows, batch_size: int) -> DataLoader:
        from rlhf_lightning.data.comparison_batches import ComparisonCollator

        return self.eval_loader(rows, batch_size=batch_size, num_workers=self.hparams.num_workers,
                                collate_fn=ComparisonCollator(self._load_tokenizer().pad_token_id))

    def train_dataloader(self) -> DataLoader:
        from rlhf_lightning.data.comparison_batches import ComparisonCollator

        return self.resumable_loader(self.train_data, shuffle=True, num_workers=self.hparams.num_workers,
                                     collate_fn=ComparisonCollator(self._load_tokenizer().pad_token_id))

    def val_dataloader(self):
        if not self.val_data:
            return []
        return self._loader(self.val_data, self.hparams.eval_batch_size or self.hparams.batch_size)

    def test_dataloader(self):
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return predict_loader(self, self.predict_data, self.hparams.max_prompt_length)
