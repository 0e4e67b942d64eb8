"""Padding-free packing: several encoded examples share one row, and never attend to each other.

How the examples are kept apart: a packed row carries ``position_ids`` that restart at 0 for each example
and NO ``attention_mask``. In transformers 5.23 (``masking_utils._preprocess_mask_arguments`` and
``find_packed_sequence_indices``), when ``attention_mask is None``, ``position_ids`` is given and there is
no KV cache, the model finds the sequence boundaries where the position ids do not step by +1 and builds a
block-diagonal causal mask (sdpa and eager; flash-attention derives its varlen boundaries from the same
position ids). Therefore:

- never pass an ``attention_mask`` with a packed batch (a 2-D mask of ones would switch the detection off
  and let examples attend across boundaries);
- call the model with ``use_cache=False`` (a cache also switches the detection off);
- padding added by :class:`~rlhf_lightning.data.collators.PackedCollator` is its own segment, starting at
  position 0, so no real token attends to it.

Speed: transformers builds that mask through its generic mask functions, which made a packed training
step ~1.5-3x slower than an unpacked one on CPU (sdpa). :func:`block_causal_mask` builds the same mask
directly as a ``(B, 1, T, T)`` bool tensor, which transformers passes to sdpa/eager unchanged, at the cost
of an unpacked step. Flash-attention takes no 4-D mask: there, pass ``position_ids`` alone.

``tests/data/test_packing.py`` checks this: the logits of a packed row equal those of each example run
alone. The loss side: the first label of each example is ``-100``, otherwise the logit at the last token
of the previous example would be trained to predict the first token of the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from rlhf_lightning.losses.labels import IGNORE_INDEX


def pack(examples: Iterable[Mapping[str, list[int]]], max_length: int) -> list[dict]:
    """Greedily pack ``examples`` (``input_ids``, ``labels``), in data order, into rows of <= ``max_length``.

    An example goes into the current row if it fits, else it starts a new row (next-fit: the data order is
    kept, so no example moves ahead of another). Each row is a dict of lists: ``input_ids``, ``labels``
    (first label of every example set to ``-100``), ``position_ids`` (0, 1, ... per example) and
    ``seq_lengths`` (the example lengths, in order). An example longer than ``max_length`` raises
    ``ValueError``: encoding truncates or drops those first.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    rows: list[dict] = []
    row: dict | None = None
    for n_example, example in enumerate(examples):
        ids, labels = list(example["input_ids"]), list(example["labels"])
        n = len(ids)
        if n != len(labels):
            raise ValueError(f"example {n_example}: {n} input_ids but {len(labels)} labels")
        if n == 0:
            raise ValueError(f"example {n_example} is empty")
        if n > max_length:
            raise ValueError(
                f"example {n_example} has {n} tokens, more than max_length={max_length}; truncate or drop "
                f"it when encoding"
            )
        if row is None or len(row["input_ids"]) + n > max_length:
            row = {"input_ids": [], "labels": [], "position_ids": [], "seq_lengths": []}
            rows.append(row)
        row["input_ids"].extend(ids)
        row["labels"].append(IGNORE_INDEX)
        row["labels"].extend(labels[1:])
        row["position_ids"].extend(range(n))
        row["seq_lengths"].append(n)
    return rows


def block_causal_mask(position_ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Causal attention within each packed example, none across: ``(B, T)`` -> ``(B, 1, T, T)``.

    Examples are the runs of ``position_ids`` that start at 0 (padding is its own run). Token ``q``
    may attend to ``k`` iff ``k <= q`` and both lie in the same run. Returns a bool mask (``True`` =
    attend; what sdpa takes), or with ``dtype`` an additive mask (0 / dtype's minimum; what eager
    attention adds to its scores).
    """
    segment = (position_ids == 0).cumsum(-1)
    same = segment[:, :, None] == segment[:, None, :]
    t = position_ids.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=position_ids.device).tril()
    allowed = (same & causal)[:, None]
    if dtype is None:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
