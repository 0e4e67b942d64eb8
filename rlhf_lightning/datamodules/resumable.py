"""Training data that a resumed run continues mid-epoch, under one process or data parallelism.

Lightning 2.6 saves a data module's ``state_dict`` in every checkpoint but does not fast-forward a
map-style DataLoader: a run resumed mid-epoch would start the epoch's data over. Here the order of
an epoch is a function of ``(seed, epoch)`` only (:class:`ResumableSampler`) and the data module's
state records how many samples of that epoch the trainer has consumed, so the resumed run draws the
very next batch.

Data parallelism: each of ``W`` processes takes every ``W``-th index of the (padded) epoch order, so
after ``k`` processed batches of ``B`` rows per process the first ``k * B * W`` indices of the order
are used. The sampler skips that global count *before* splitting by rank, which is the same split an
uninterrupted run makes. It splits by rank itself (it is a ``DistributedSampler`` so Lightning does
not wrap it in ``DistributedSamplerWrapper``, whose padding would be computed on the shortened order).

Mixtures: when the training sources carry weights, the epoch's order is
:func:`~rlhf_lightning.data.mixture.mixture_order` (also a function of seed and epoch only), so the
same position resumes it; the data module records the rows each source kept in ``train_sizes``.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, DistributedSampler

from rlhf_lightning.data.mixture import mixture_order, normalised
from rlhf_lightning.errors import DataError


class ResumableSampler(DistributedSampler):
    """A seeded per-epoch permutation of ``range(n)``, split over ranks, that can start mid-epoch.

    The order of epoch ``e`` is ``randperm(n)`` from a generator seeded with ``seed + e`` (``range(n)``
    without shuffling), independent of the global random state; it is padded with its own head to a
    multiple of ``num_replicas`` (as ``DistributedSampler`` does) and rank ``r`` takes positions
    ``r, r + W, r + 2W, ...``. ``resume(epoch, skip)`` makes the next iteration of that epoch drop
    the first ``skip`` positions of the padded order (all ranks together) before splitting.
    With ``mixture=(sizes, weights)`` (``sum(sizes) == n``) the unpadded order is
    :func:`~rlhf_lightning.data.mixture.mixture_order` instead of a permutation.
    """

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0, mixture: Optional[tuple[list[int], list[float]]] = None) -> None:
        # No DistributedSampler.__init__: it wants a dataset and an initialised process group; the
        # class is only the marker that tells Lightning this sampler already splits by rank.
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, False
        self.mixture = mixture
        self.epoch = 0
        self._resume: Optional[tuple[int, int]] = None

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it at the start of every epoch
        self.epoch = epoch

    def resume(self, epoch: int, skip: int) -> None:
        self._resume = (epoch, skip)

    def order(self, epoch: int) -> list[int]:
        """The whole epoch's order, padded to a multiple of ``num_replicas``."""
        if self.mixture is not None:
            base = mixture_order(*self.mixture, seed=self.seed, epoch=epoch, shuffle=self.shuffle)
        elif self.shuffle:
            base = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        else:
            base = list(range(self.n))
        total = len(self) * self.num_replicas
        return (base * math.ceil(total / max(self.n, 1)))[:total] if self.n else []

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1]:]
            self._resume = None
        return iter(order[self.rank::self.num_replicas])

    def __len__(self) -> int:  # per rank, for a whole epoch (Lightning counts the epoch's batches with it)
        return math.ceil(self.n / self.num_replicas)


class ResumableTrainData:
    """Mix into a LightningDataModule: a resumable training loader plus the checkpointed position.

    The data module calls :meth:`init_sources` in ``__init__`` (sources, tokenizer link, empty data,
    no sampler or resume position yet), builds its training loader with :meth:`resumable_loader`, and has ``hparams.batch_size`` and
    ``hparams.seed``; for mixtures, ``train_sources`` and ``train_sizes`` (rows each training source
    kept, in the order of the training rows). Lightning writes :meth:`state_dict` into every checkpoint and calls
    :meth:`load_state_dict` before the loaders are built.
    """

    sampler: Optional[ResumableSampler]
    _resume: Optional[tuple[int, int]]

    def init_sources(self, train: Any, val: Any, predict: Any, tokenizer: Optional[str],
                     chat_template: Optional[str]) -> None:
        """The state every source-reading data module starts from: its ``data.train`` (weighted),
        ``data.val`` and ``data.predict`` sources checked, the tokenizer and chat template the CLI links
        from the model, no rows loaded, no sampler and no resume position yet."""
        from rlhf_lightning.data.spec import as_sources

        self.train_sources = as_sources(train, option="data.train", weighted=True)
        self.val_sources = as_sources(val, option="data.val")
        self.predict_sources = as_sources(predict, option="data.predict")
        self.tokenizer_path = tokenizer
        self.chat_template = chat_template
        self.tokenizer = None
        self.train_data: Optional[list[dict]] = None
        self.val_data: Optional[list[dict]] = None
        self.predict_data: Optional[list[dict]] = None
        self.stats: dict[str, Any] = {}
        self.sampler = None
        self._resume = None
        self.train_sizes: list[int] = []

    def _load_tokenizer(self):
        """The linked tokenizer, loaded once (:func:`~rlhf_lightning.datamodules.tokenizer.linked_tokenizer`)."""
        from rlhf_lightning.datamodules.tokenizer import linked_tokenizer

        return linked_tokenizer(self)

    def resumable_loader(self, rows, *, shuffle: bool, collate_fn, num_workers: int,
                         drop_last: bool = False) -> DataLoader:
        replicas, rank = _data_parallel_rank(getattr(self, "trainer", None))
        self.sampler = ResumableSampler(len(rows), shuffle=shuffle, seed=self.hparams.seed,
                                        num_replicas=replicas, rank=rank, mixture=self.train_mixture(len(rows)))
        if self._resume is not None:
            mix = self.sampler.mixture
            if getattr(self, "_resumed_mixture", None) != (None if mix is None else
                                                           {"sizes": list(mix[0]), "weights": list(mix[1])}):
                rank_zero_warn("the data mixture (weights, or rows per training source) differs from the "
                               "checkpoint's: the resumed run will not draw the samples the interrupted one would")
            self.sampler.resume(*self._resume)
            self._resume = None
        # A loader's iterator draws its workers' base seed from `generator` (default: the global
        # stream, once per epoch): with its own generator, starting an epoch leaves the global random
        # state alone, so a run resumed at an epoch boundary draws the same samples as one that was not.
        generator = torch.Generator().manual_seed(self.hparams.seed + 1_000_003 * rank)
        return DataLoader(rows, batch_size=self.hparams.batch_size, sampler=self.sampler, collate_fn=collate_fn,
                          num_workers=num_workers, generator=generator, drop_last=drop_last)

    def train_mixture(self, n_rows: int) -> Optional[tuple[list[int], list[float]]]:
        """``(rows per source, normalised weights)`` when the training sources carry weights, else None."""
        sources = getattr(self, "train_sources", None) or []
        if not sources or sources[0].weight is None:
            return None
        sizes = list(getattr(self, "train_sizes", None) or [])
        if len(sizes) != len(sources) or sum(sizes) != n_rows:
            raise RuntimeError(f"{type(self).__name__} recorded training rows per source {sizes} that do not "
                               f"add up to its {n_rows} rows from {len(sources)} sources")
        for i, (src, n) in enumerate(zip(sources, sizes, strict=True)):
            if n == 0:
                raise DataError(f"data.train[{i}] ({src.path}): no training rows left after encoding, but it has "
                                f"weight {src.weight} in the mixture")
        return sizes, normalised([s.weight for s in sources])

    def eval_loader(self, rows, *, batch_size: int, collate_fn, num_workers: int, drop_last: bool = False) -> DataLoader:
        """Rows in order, for validation and prediction. Its own generator too: a validation during
        training then draws nothing from the global random stream, so dropout and rollouts see the
        same numbers whatever the validation schedule."""
        return DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=num_workers,
                          generator=torch.Generator().manual_seed(self.hparams.seed), drop_last=drop_last)

    def state_dict(self) -> dict[str, Any]:
        """The epoch and how many of its samples (all ranks together) the trainer has consumed."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.sampler is None:
            return {}
        # A checkpoint is written after the training step of the batch (on_train_batch_end or later),
        # when the epoch loop has counted that batch as processed.
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        accumulate = trainer.accumulate_grad_batches
        if accumulate > 1 and done % accumulate and done < trainer.num_training_batches:
            rank_zero_warn(f"checkpoint inside a gradient-accumulation window ({done % accumulate} of {accumulate} "
                           "batches): gradients are not checkpointed, so a run resumed from it is not exact; "
                           "checkpoint on optimizer steps (ModelCheckpoint every_n_train_steps)")
        state = {"epoch": trainer.current_epoch,
                 "samples_done": done * self.hparams.batch_size * self.sampler.num_replicas,
                 "seed": self.hparams.seed}
        if self.sampler.mixture is not None:
            state["mixture"] = {"sizes": list(self.sampler.mixture[0]), "weights": list(self.sampler.mixture[1])}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if state.get("seed", self.hparams.seed) != self.hparams.seed:
            rank_zero_warn("data.seed differs from the checkpoint's: the data order will not be the same")
        self._resumed_mixture = state.get("mixture")
        self._resume = (int(state["epoch"]), int(state["samples_done"]))


def _data_parallel_rank(trainer) -> tuple[int, int]:
    """``(number of data-parallel replicas, this process's replica index)``; ``(1, 0)`` without DP."""
    if trainer is None or not trainer._accelerator_connector.use_distributed_sampler:
        return 1, 0
    kwargs = trainer.distributed_sampler_kwargs or {}  # ModelParallelStrategy: the data-parallel group only
    return int(kwargs.get("num_replicas", 1)), int(kwargs.get("rank", 0))
