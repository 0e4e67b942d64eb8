"""Collators: shapes, padding values, position ids of padding, and num_target_tokens."""

from __future__ import annotations

import torch

from rlhf_lightning.data.collators import PackedCollator, PaddingCollator
from rlhf_lightning.data.packing import pack

FEATURES = [
    {"input_ids": [1, 10, 11, 12, 2], "labels": [-100, -100, 11, 12, 2]},
    {"input_ids": [1, 20, 21], "labels": [-100, -100, 21]},
]


def test_padding_collator():
    batch = PaddingCollator(pad_token_id=0)(FEATURES)
    assert batch["input_ids"].tolist() == [[1, 10, 11, 12, 2], [1, 20, 21, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 11, 12, 2], [-100, -100, 21, -100, -100]]
    assert batch["num_target_tokens"].item() == 4 and batch["num_target_tokens"].dim() == 0
    assert all(t.dtype == torch.long for t in batch.values())


def test_padding_collator_multiple_and_tensor_inputs():
    features = [{k: torch.tensor(v) for k, v in f.items()} for f in FEATURES]
    batch = PaddingCollator(pad_token_id=7, pad_to_multiple_of=4)(features)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][1, 3:].tolist() == [7] * 5 and batch["labels"][0, 5:].tolist() == [-100] * 3


def test_num_target_tokens_ignores_the_first_position():
    # labels[:, 0] is never a target after the causal shift, even when it is set
    batch = PaddingCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}])
    assert batch["num_target_tokens"].item() == 2


def test_packed_collator():
    rows = pack([{"input_ids": [1, 10, 11], "labels": [-100, 10, 11]},
                 {"input_ids": [1, 20], "labels": [-100, 20]},
                 {"input_ids": [1, 30, 31, 32], "labels": [-100, -100, 31, 32]}], max_length=5)
    assert [r["seq_lengths"] for r in rows] == [[3, 2], [4]]
    batch = PackedCollator(pad_token_id=0, pad_to_multiple_of=4)(rows)
    assert set(batch) == {"input_ids", "labels", "position_ids", "num_target_tokens"}  # no attention_mask
    assert batch["input_ids"].tolist() == [[1, 10, 11, 1, 20, 0, 0, 0], [1, 30, 31, 32, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 10, 11, -100, 20, -100, -100, -100],
                                        [-100, -100, 31, 32, -100, -100, -100, -100]]
    # padding restarts at 0: a separate segment that no real token attends to
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2], [0, 1, 2, 3, 0, 1, 2, 3]]
    assert batch["num_target_tokens"].item() == 5


def test_packed_and_padded_count_the_same_targets():
    feats = [{"input_ids": [1, 10, 11, 12, 2], "labels": [-100, -100, 11, 12, 2]},
             {"input_ids": [1, 20, 21], "labels": [-100, 20, 21]}]
    padded = PaddingCollator(pad_token_id=0)(feats)
    packed = PackedCollator(pad_token_id=0)(pack(feats, max_length=8))
    assert padded["num_target_tokens"].item() == packed["num_target_tokens"].item() == 5
