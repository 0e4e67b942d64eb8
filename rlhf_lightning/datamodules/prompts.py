"""Prompt data for online RL (:class:`~rlhf_lightning.modules.ppo.PPOModule`), resumable mid-epoch.

Each row becomes ``{"text": rendered prompt, "prompt": the raw user prompt, other scalar columns}``.
Reward and constraint plugins receive the raw ``prompt`` and the other columns (``reference``,
``topic`` …); generation continues from ``text`` (chat template + generation prompt).

Exact resumption (also under data parallelism): see :mod:`rlhf_lightning.datamodules.resumable`.
"""

from __future__ import annotations

from typing import Literal, Optional

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from rlhf_lightning.data.spec import SourcesArg
from rlhf_lightning.datamodules.predict import load_predict_rows, predict_loader
from rlhf_lightning.datamodules.resumable import ResumableTrainData
from rlhf_lightning.errors import ConfigError, DataError, option_errors

#: columns the collator turns into tensors or that are not passed to plugins as a column
RESERVED = ("text", "prompt", "messages", "input_ids", "attention_mask")


class PromptDataModule(ResumableTrainData, LightningDataModule):
    """Prompt rows (``prompt`` string or ``messages`` ending with a user turn) for rollouts.

    Args:
        train: prompt sources (a path or hub id, or a mapping with ``path``, ``split``,
            ``columns`` …, as :class:`~rlhf_lightning.data.spec.DataSource`); ``weight`` on every
            source samples them as a seeded, resumable mixture (:mod:`rlhf_lightning.data.mixture`).
        val: held-out prompts; validation generates greedily and logs the rewards.
        predict: prompt rows for ``rlhf-lightning predict``, read as every data module reads them
            (:mod:`~rlhf_lightning.datamodules.predict`: no length check; longer prompts keep their
            last ``max_prompt_length`` tokens).
        tokenizer: tokenizer folder or hub id; linked from the model's ``policy`` by the CLI.
        chat_template: replaces the tokenizer's chat template (a built-in name, a ``.jinja`` file or inline
            Jinja; :mod:`rlhf_lightning.data.chat_templates`); linked from the policy's ``chat_template``.
        max_prompt_length: prompt budget in tokens (chat template and BOS included).
        truncation: what to do with a longer prompt: ``drop`` it (counted and reported),
            ``error`` (a DataError naming the row), or ``keep_end`` (keep its last tokens).
        batch_size: prompts per rollout (each sampled ``num_return_sequences`` times).
        eval_batch_size: prompts per validation batch (default ``batch_size``).
        shuffle: shuffle the training prompts each epoch (order depends on ``seed`` and the epoch).
        seed: seed of the prompt order.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        train: Optional[SourcesArg] = None,
        val: Optional[SourcesArg] = None,
        predict: Optional[SourcesArg] = None,
        tokenizer: Optional[str] = None,
        chat_template: Optional[str] = None,
        max_prompt_length: int = 256,
        truncation: Literal["drop", "error", "keep_end"] = "drop",
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if max_prompt_length < 1 or batch_size < 1:
            raise ConfigError(f"data.max_prompt_length and data.batch_size must be >= 1 "
                              f"(got {max_prompt_length}, {batch_size})")
        self.save_hyperparameters()
        self.init_sources(train, val, predict, tokenizer, chat_template)

    def load_prompts(self, sources, role: str) -> list[dict]:
        """Read, validate, render and length-check every row of ``sources``."""
        from rlhf_lightning.data.prompts import prompt_messages, render_prompt
        from rlhf_lightning.data.sources import load_source

        tokenizer = self._load_tokenizer()
        limit, mode = self.hparams.max_prompt_length, self.hparams.truncation
        rows: list[dict] = []
        if role == "train":
            self.train_sizes = []
        for src in sources:
            table = load_source(src)
            if "prompt" not in table.column_names and "messages" not in table.column_names:
                raise DataError(f"{src.path}: prompt rows need a 'prompt' (string) or 'messages' (chat list ending "
                                f"with a user turn) column; found columns {table.column_names}")
            stats = {"rows": len(table), "dropped_too_long": 0, "truncated": 0}
            for i, row in enumerate(table):
                prompt = prompt_messages(row, source=src.path, index=i)
                text = render_prompt(tokenizer, prompt)
                n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) + (
                    0 if getattr(tokenizer, "chat_template", None) or tokenizer.bos_token_id is None else 1)
                if n_tokens > limit:
                    if mode == "error":
                        raise DataError(f"{src.path} row index {i}: the prompt has {n_tokens} tokens, more than "
                                        f"data.max_prompt_length={limit} (set data.truncation to drop or keep_end)")
                    if mode == "drop":
                        stats["dropped_too_long"] += 1
                        continue
                    stats["truncated"] += 1
                # scalar columns go to the plugins; others (lists, dicts) become None, so rows keep one shape
                out = {k: v if isinstance(v, (str, int, float, bool)) else None
                       for k, v in row.items() if k not in RESERVED}
                out["prompt"] = prompt if isinstance(prompt, str) else str(prompt[-1].get("content", ""))
                out["text"] = text
                rows.append(out)
            self.stats[f"{role}:{src.path}"] = stats
            if role == "train":
                self.train_sizes.append(len(rows) - sum(self.train_sizes))
            if stats["dropped_too_long"] or stats["truncated"]:
                rank_zero_warn(f"{role} prompts {src.path}: {stats['dropped_too_long']} of {stats['rows']} dropped, "
                               f"{stats['truncated']} cut to their last {limit} tokens (longer than "
                               f"max_prompt_length={limit})")
        keys = {k for r in rows for k in r}
        rows = [{k: r.get(k) for k in sorted(keys)} for r in rows]  # sources with different columns
        if not rows and sources:
            raise DataError(f"no {role} prompts left: every row of {[s.path for s in sources]} is longer than "
                            f"max_prompt_length={limit} tokens")
        return rows

    def setup(self, stage: str) -> None:
        if stage == "fit" and not self.train_sources:
            raise ConfigError("data.train is empty: give a prompt file (rows with 'prompt' or 'messages')")
        if stage == "fit" and self.train_data is None:
            with option_errors("data.init_args.train"):  # what datasets/the tokenizer refuse: the user's data
                self.train_data = self.load_prompts(self.train_sources, "train")
        if stage in ("fit", "validate") and self.val_data is None and self.val_sources:
            with option_errors("data.init_args.val"):
                self.val_data = self.load_prompts(self.val_sources, "val")
        if stage == "predict" and self.predict_data is None:
            self.predict_data = load_predict_rows(self.predict_sources, self._load_tokenizer())

    def _collator(self):
        from rlhf_lightning.data.prompts import PromptCollator

        return PromptCollator(self._load_tokenizer(), self.hparams.max_prompt_length)

    def train_dataloader(self) -> DataLoader:
        return self.resumable_loader(self.train_data, shuffle=self.hparams.shuffle, collate_fn=self._collator(),
                                     num_workers=self.hparams.num_workers)

    def val_dataloader(self):
        if not self.val_data:
            return []
        return self.eval_loader(self.val_data, batch_size=self.hparams.eval_batch_size or self.hparams.batch_size,
                                collate_fn=self._collator(), num_workers=self.hparams.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return predict_loader(self, self.predict_data, self.hparams.max_prompt_length)
