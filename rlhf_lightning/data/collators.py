"""Batches of encoded rows -> tensors for a causal LM.

Both collators also return ``num_target_tokens``: the number of labels that count after the causal shift
(``labels[:, 1:] != -100``), so a stage can take a token-mean loss across micro-batches and devices and
report tokens per second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from rlhf_lightning.losses.labels import IGNORE_INDEX


def _padded_length(lengths: Sequence[int], multiple: int | None) -> int:
    longest = max(lengths)
    if multiple:
        longest = -(-longest // multiple) * multiple
    return longest


def _as_list(values) -> list[int]:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


def _num_targets(labels: torch.Tensor) -> torch.Tensor:
    return (labels[:, 1:] != IGNORE_INDEX).sum()


class PaddingCollator:
    """Right-pads ``input_ids`` / ``labels`` rows to the longest in the batch (rounded up to a multiple).

    Returns ``input_ids`` ``(B, T)`` (padding = ``pad_token_id``), ``attention_mask`` ``(B, T)`` (0 on
    padding), ``labels`` ``(B, T)`` (``-100`` on padding) and ``num_target_tokens`` (scalar).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            raise ValueError("pad_token_id is None; set tokenizer.pad_token (e.g. to the EOS token)")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        rows = [(_as_list(f["input_ids"]), _as_list(f["labels"])) for f in features]
        width = _padded_length([len(ids) for ids, _ in rows], self.pad_to_multiple_of)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (ids, labs) in enumerate(rows):
            n = len(ids)
            input_ids[b, :n] = torch.tensor(ids, dtype=torch.long)
            labels[b, :n] = torch.tensor(labs, dtype=torch.long)
            attention_mask[b, :n] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "num_target_tokens": _num_targets(labels),
        }


class PackedCollator:
    """Stacks packed rows (see :func:`~rlhf_lightning.data.packing.pack`) and pads them, without a mask.

    Returns ``input_ids``, ``labels`` and ``position_ids``, each ``(B, T)``, and ``num_target_tokens``. No
    ``attention_mask``: the model separates the examples from the ``position_ids`` resets (see
    :mod:`rlhf_lightning.data.packing`; call it with ``use_cache=False``). Padding is its own segment with
    positions 0, 1, ..., so it never joins the last example of a row.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            raise ValueError("pad_token_id is None; set tokenizer.pad_token (e.g. to the EOS token)")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        rows = [
            (_as_list(f["input_ids"]), _as_list(f["labels"]), _as_list(f["position_ids"])) for f in features
        ]
        width = _padded_length([len(ids) for ids, _, _ in rows], self.pad_to_multiple_of)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (ids, labs, pos) in enumerate(rows):
            n = len(ids)
            input_ids[b, :n] = torch.tensor(ids, dtype=torch.long)
            labels[b, :n] = torch.tensor(labs, dtype=torch.long)
            position_ids[b, :n] = torch.tensor(pos, dtype=torch.long)
            position_ids[b, n:] = torch.arange(width - n)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            "num_target_tokens": _num_targets(labels),
        }
