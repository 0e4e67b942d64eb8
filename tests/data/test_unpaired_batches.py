"""Unpaired rows -> prompt/completion ids (the DPO encoding), and the collator's mismatched KL pairs."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.data.comparison_batches import encode_comparisons
from rlhf_lightning.data.unpaired_batches import UnpairedCollator, encode_unpaired

IGN = -100


def _row(p, c, label):
    return {"prompt_ids": p, "completion_ids": c, "label": label}


def test_collator_rotates_completions_within_the_batch():
    rows = [_row([1, 2], [10], True), _row([3], [11, 12], False), _row([4, 5, 6], [13], True)]
    b = UnpairedCollator(pad_token_id=0)(rows)
    # one width for both sets of rows (the longest is the third mismatched pair, 5 tokens)
    assert b["input_ids"].tolist() == [[1, 2, 10, 0, 0], [3, 11, 12, 0, 0], [4, 5, 6, 13, 0]]
    assert b["labels"].tolist() == [[IGN, IGN, 10, IGN, IGN], [IGN, 11, 12, IGN, IGN], [IGN, IGN, IGN, 13, IGN]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    # prompt i with completion i - 1 (row 0 with the last row's), as TRL builds KL_completion_ids
    assert b["KL_input_ids"].tolist() == [[1, 2, 13, 0, 0], [3, 10, 0, 0, 0], [4, 5, 6, 11, 12]]
    assert b["KL_labels"].tolist() == [[IGN, IGN, 13, IGN, IGN], [IGN, 10, IGN, IGN, IGN], [IGN, IGN, IGN, 11, 12]]
    assert b["KL_attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert b["label"].tolist() == [True, False, True] and b["label"].dtype == torch.bool


def test_collator_cuts_mismatched_pairs_to_max_length():
    rows = [_row([1, 2, 3], [10], True), _row([4], [11, 12, 13], False)]
    b = UnpairedCollator(pad_token_id=0, max_length=4)(rows)
    assert b["KL_input_ids"].tolist() == [[1, 2, 3, 11], [4, 10, 0, 0]]
    assert b["KL_labels"].tolist() == [[IGN, IGN, IGN, 11], [IGN, 10, IGN, IGN]]


def test_one_row_batch_pairs_the_row_with_itself():
    b = UnpairedCollator(pad_token_id=0)([_row([1], [2], True)])
    assert torch.equal(b["KL_input_ids"], b["input_ids"])  # the stage refuses such a batch where it needs KL


def test_encoding_is_the_dpo_encoding_split_at_the_completion(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    rows = [{"prompt": "Explain gravity.", "completion": "Gravity pulls.", "label": True},
            {"prompt": [{"role": "user", "content": "Say hello."}],
             "completion": [{"role": "assistant", "content": "Hello!"}], "label": False}]
    out, stats = encode_unpaired(rows, tok, max_length=128)
    ref, _ = encode_comparisons([{"prompt": r["prompt"], "responses": [r["completion"]]} for r in rows], tok,
                                max_length=128)
    assert stats.kept == 2 and [r["label"] for r in out] == [True, False]
    for mine, theirs in zip(out, ref, strict=True):
        ids, labels = theirs["responses"][0]["input_ids"], theirs["responses"][0]["labels"]
        assert mine["prompt_ids"] + mine["completion_ids"] == ids
        assert labels[len(mine["prompt_ids"]):] == mine["completion_ids"]
        assert all(label == IGN for label in labels[:len(mine["prompt_ids"])])


def test_a_prompt_filling_the_budget_drops_its_row_and_keeps_the_labels_aligned(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    rows = [{"prompt": "Explain gravity. " * 20, "completion": "No.", "label": True},
            {"prompt": "Hi.", "completion": "Hello.", "label": False}]
    out, stats = encode_unpaired(rows, tok, max_length=24)
    assert stats.dropped_no_target == 1 and [r["label"] for r in out] == [False]
    with pytest.raises(Exception, match="row index 0"):
        encode_unpaired(rows, tok, max_length=24, truncation="error")
