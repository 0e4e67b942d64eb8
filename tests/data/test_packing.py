"""Packing: row boundaries, position ids, the masked first label of each example, and no cross-attention.

The leakage test is the one that matters: with no attention_mask, transformers builds a block-diagonal
causal mask from the position-id resets, so each example's logits inside a packed row must equal its
logits when run alone.
"""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.data.collators import PackedCollator
from rlhf_lightning.data.packing import block_causal_mask, pack


def ex(ids, n_prompt=0):
    return {"input_ids": list(ids), "labels": [-100] * n_prompt + list(ids[n_prompt:])}


def test_pack_greedy_in_order_with_positions_and_first_labels_masked():
    examples = [ex([11, 12, 13], 1), ex([21, 22]), ex([31, 32, 33, 34], 2), ex([41]), ex([51, 52, 53, 54, 55, 56])]
    rows = pack(examples, max_length=6)
    assert [r["seq_lengths"] for r in rows] == [[3, 2], [4, 1], [6]]
    assert rows[0] == {
        "input_ids": [11, 12, 13, 21, 22],
        "labels": [-100, 12, 13, -100, 22],
        "position_ids": [0, 1, 2, 0, 1],
        "seq_lengths": [3, 2],
    }
    assert rows[1] == {
        "input_ids": [31, 32, 33, 34, 41],
        "labels": [-100, -100, 33, 34, -100],
        "position_ids": [0, 1, 2, 3, 0],
        "seq_lengths": [4, 1],
    }
    assert rows[2]["position_ids"] == list(range(6)) and rows[2]["labels"] == [-100, 52, 53, 54, 55, 56]
    assert examples[0]["labels"] == [-100, 12, 13]  # inputs are not modified


def test_pack_is_next_fit_never_reordering():
    # a later short example does not jump into an earlier row with room
    rows = pack([ex([1] * 4), ex([2] * 3), ex([3] * 2)], max_length=5)
    assert [r["seq_lengths"] for r in rows] == [[4], [3, 2]]


def test_pack_rejects_too_long_and_mismatched():
    with pytest.raises(ValueError, match="example 1 has 4 tokens, more than max_length=3"):
        pack([ex([1]), ex([1, 2, 3, 4])], max_length=3)
    with pytest.raises(ValueError, match="labels"):
        pack([{"input_ids": [1, 2], "labels": [1]}], max_length=3)


@pytest.mark.parametrize("explicit_mask", [False, True], ids=["detected-mask", "block_causal_mask"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_separate_logits(tiny_llama_dir, attn, explicit_mask):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation=attn).eval()
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    lengths = [7, 3, 1, 9, 5, 4]
    examples = [ex(torch.randint(3, vocab, (n,), generator=g).tolist()) for n in lengths]
    rows = pack(examples, max_length=16)
    assert [r["seq_lengths"] for r in rows] == [[7, 3, 1], [9, 5], [4]]
    # batch of 3 packed rows, right-padded: the padding is its own segment
    batch = PackedCollator(pad_token_id=0)(rows)
    assert "attention_mask" not in batch
    with torch.no_grad():
        mask = None
        if explicit_mask:  # sdpa takes the bool mask, eager an additive one
            mask = block_causal_mask(batch["position_ids"], dtype=None if attn == "sdpa" else torch.float32)
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=mask,
                       use_cache=False).logits
        alone = [model(input_ids=torch.tensor([e["input_ids"]]), use_cache=False).logits[0] for e in examples]
    k = 0
    for b, row in enumerate(rows):
        start = 0
        for n in row["seq_lengths"]:
            torch.testing.assert_close(packed[b, start:start + n], alone[k], atol=1e-5, rtol=0)
            start += n
            k += 1
    assert k == len(examples)


def test_a_two_d_mask_would_leak(tiny_llama_dir):
    """Control for the test above: with an all-ones attention_mask the second example sees the first."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa").eval()
    row = pack([ex([5, 6, 7, 8]), ex([9, 10, 11])], max_length=8)[0]
    ids, pos = torch.tensor([row["input_ids"]]), torch.tensor([row["position_ids"]])
    with torch.no_grad():
        leaky = model(input_ids=ids, position_ids=pos, attention_mask=torch.ones_like(ids), use_cache=False).logits
        alone = model(input_ids=torch.tensor([[9, 10, 11]]), use_cache=False).logits
    assert not torch.allclose(leaky[0, 4:], alone[0], atol=1e-5)


def test_block_causal_mask_by_hand():
    # two examples (lengths 2 and 1) then one padding token: segments [1, 1, 2, 3]
    mask = block_causal_mask(torch.tensor([[0, 1, 0, 0]]))
    assert mask.shape == (1, 1, 4, 4)
    assert mask[0, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    additive = block_causal_mask(torch.tensor([[0, 1, 0, 0]]), dtype=torch.float32)
    assert torch.equal(additive == 0, mask) and additive.min() == torch.finfo(torch.float32).min
