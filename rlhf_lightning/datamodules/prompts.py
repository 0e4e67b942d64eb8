"""Prompt data for online RL (:class:`~rlhf_lightning.modules.ppo.PPOModule`), resumable mid-epoch.

Each row becomes ``{"text": rendered prompt, "prompt": the raw user prompt, other scalar columns}``.
Reward and constraint plugins receive the raw ``prompt`` and the other columns (``reference``,
``topic`` …); generation continues from ``text`` (chat template + generation prompt).

Exact resumption: the order of the prompts is a function of ``(seed, epoch)`` only
(:class:`ResumableSampler`), and this data module's ``state_dict`` — which Lightning writes into
every checkpoint — records the epoch and how many batches of it the trainer has processed, so a
resumed run continues with the very next prompt batch.
"""

from __future__ import annotations

from typing import Any, Iterator, Literal, Optional

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Sampler

from rlhf_lightning.data.spec import SourcesArg, as_sources
from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.datamodules.tokenizer import linked_tokenizer

#: columns the collator turns into tensors or that are not passed to plugins as a column
RESERVED = ("text", "prompt", "messages", "input_ids", "attention_mask")


class ResumableSampler(Sampler[int]):
    """A (seeded, per-epoch) permutation of ``range(n)`` that can start mid-epoch.

    The order of epoch ``e`` is ``randperm(n)`` from a generator seeded with ``seed + e`` (or
    ``range(n)`` without shuffling), independent of any global random state. ``resume(epoch,
    skip)`` makes the next iteration of that epoch start after its first ``skip`` indices.
    """

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch = 0
        self._resume: Optional[tuple[int, int]] = None

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it at the start of every epoch
        self.epoch = epoch

    def resume(self, epoch: int, skip: int) -> None:
        self._resume = (epoch, skip)

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        gen = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1]:]
            self._resume = None
        return iter(order)

    def __len__(self) -> int:
        return self.n


class PromptDataModule(LightningDataModule):
    """Prompt rows (``prompt`` string or ``messages`` ending with a user turn) for rollouts.

    Args:
        train: prompt sources (a path or hub id, or a mapping with ``path``, ``split``,
            ``columns`` …, as :class:`~rlhf_lightning.data.spec.DataSource`).
        val: held-out prompts; validation generates greedily and logs the rewards.
        tokenizer: tokenizer folder or hub id; linked from the model's ``policy`` by the CLI.
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
        tokenizer: Optional[str] = None,
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
        self.train_sources = as_sources(train, option="data.train")
        self.val_sources = as_sources(val, option="data.val")
        self.tokenizer_path = tokenizer
        self.tokenizer = None
        self.train_data: Optional[list[dict]] = None
        self.val_data: Optional[list[dict]] = None
        self.sampler: Optional[ResumableSampler] = None
        self.stats: dict[str, dict[str, int]] = {}
        self._resume: Optional[tuple[int, int]] = None

    def _load_tokenizer(self):
        return linked_tokenizer(self)

    def load_prompts(self, sources, role: str) -> list[dict]:
        """Read, validate, render and length-check every row of ``sources``."""
        from rlhf_lightning.data.prompts import prompt_messages, render_prompt
        from rlhf_lightning.data.sources import load_rows

        tokenizer = self._load_tokenizer()
        limit, mode = self.hparams.max_prompt_length, self.hparams.truncation
        rows: list[dict] = []
        for src in sources:
            table = load_rows(src.path, split=src.split, columns=src.columns, subset=src.subset, revision=src.revision)
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
            self.train_data = self.load_prompts(self.train_sources, "train")
        if stage in ("fit", "validate") and self.val_data is None and self.val_sources:
            self.val_data = self.load_prompts(self.val_sources, "val")

    def _collator(self):
        from rlhf_lightning.data.prompts import PromptCollator

        return PromptCollator(self._load_tokenizer(), self.hparams.max_prompt_length)

    def train_dataloader(self) -> DataLoader:
        self.sampler = ResumableSampler(len(self.train_data), shuffle=self.hparams.shuffle, seed=self.hparams.seed)
        if self._resume is not None:
            self.sampler.resume(*self._resume)
            self._resume = None
        return DataLoader(self.train_data, batch_size=self.hparams.batch_size, sampler=self.sampler,
                          collate_fn=self._collator(), num_workers=self.hparams.num_workers)

    def val_dataloader(self):
        if not self.val_data:
            return []
        return DataLoader(self.val_data, batch_size=self.hparams.eval_batch_size or self.hparams.batch_size,
                          shuffle=False, collate_fn=self._collator(), num_workers=self.hparams.num_workers)

    # -- exact resumption ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The epoch and the prompts of it already used (written into every Lightning checkpoint)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.sampler is None:
            return {}
        # A checkpoint is written after the training step of the batch (on_train_batch_end or later),
        # when the epoch loop has counted that batch as processed.
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": trainer.current_epoch, "samples_done": done * self.hparams.batch_size,
                "seed": self.hparams.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if state.get("seed", self.hparams.seed) != self.hparams.seed:
            rank_zero_warn("data.seed differs from the checkpoint's: the prompt order will not be the same")
        self._resume = (int(state["epoch"]), int(state["samples_done"]))
