"""Per-token and sequence log-probs: temperature, dtype, causal shift, masks, chunking, and the hidden-state path agree with a naive log_softmax."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.losses.logprobs import sequence_logps, sequence_logps_from_hidden, token_logps


def test_hand_derived_uniform_and_peaked():
    """V = 4. Row 0: uniform logits, 2 targets -> 2·ln(1/4). Row 1: logit 0 at the target and -inf
    elsewhere -> log p = 0 for its 1 target. Position t predicts labels[t+1]; t = 0 is a prompt label."""
    logits = torch.zeros(2, 3, 4)
    logits[1] = float("-inf")
    logits[1, 1, 3] = 0.0   # position 1 predicts labels[1, 2] = 3
    labels = torch.tensor([[-100, 1, 2], [-100, -100, 3]])
    sums, n = sequence_logps(logits, labels)
    assert n.tolist() == [2, 1]
    assert sums[0].item() == pytest.approx(2 * math.log(0.25))
    assert sums[1].item() == pytest.approx(0.0)


def test_token_logps_hand_derived_with_temperature_and_bf16():
    """V = 2, logits (0, ln 3): p(1) = 3/4, p(0) = 1/4. At temperature 2 the logits halve:
    p(1) = √3 / (1 + √3). bf16 logits come back as float32 (no bf16 log-softmax)."""
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    targets = torch.tensor([[1, 0]])
    assert token_logps(logits, targets)[0].tolist() == pytest.approx([math.log(0.75), math.log(0.25)])
    s3 = math.sqrt(3.0)
    assert token_logps(logits, targets, temperature=2.0)[0, 0].item() == pytest.approx(math.log(s3 / (1 + s3)))
    out = token_logps(logits.bfloat16(), targets)
    assert out.dtype == torch.float32
    assert out[0, 0].item() == pytest.approx(math.log(0.75), abs=1e-2)


def _naive(logits, labels):
    logp = logits[:, :-1].float().log_softmax(-1)
    tgt = labels[:, 1:]
    mask = tgt != -100
    tok = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return tok.sum(-1), mask.sum(-1)


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_matches_naive_with_padding_and_chunks(chunk):
    torch.manual_seed(0)
    logits = torch.randn(4, 7, 11, requires_grad=True)
    labels = torch.randint(0, 11, (4, 7))
    labels[:, :2] = -100      # prompt
    labels[1, 5:] = -100      # padding
    labels[3, :] = -100       # a row without targets
    sums, n = sequence_logps(logits, labels, chunk_size=chunk)
    ref_sums, ref_n = _naive(logits, labels)
    torch.testing.assert_close(sums, ref_sums)
    assert n.tolist() == ref_n.tolist() and n[3] == 0 and sums[3] == 0
    g1, = torch.autograd.grad(sums.sum(), logits)
    g2, = torch.autograd.grad(ref_sums.sum(), logits)
    torch.testing.assert_close(g1, g2)


def test_hidden_path_equals_logits_path():
    torch.manual_seed(1)
    head = torch.nn.Linear(8, 13, bias=False)
    hidden = torch.randn(3, 6, 8, requires_grad=True)
    labels = torch.randint(0, 13, (3, 6))
    labels[:, :3] = -100
    labels[2, 4:] = -100
    a, na = sequence_logps(head(hidden), labels)
    b, nb = sequence_logps_from_hidden(hidden, labels, head, chunk_size=2)
    torch.testing.assert_close(a, b)
    assert na.tolist() == nb.tolist()
    ga = torch.autograd.grad(a.sum(), [hidden, head.weight])
    gb = torch.autograd.grad(b.sum(), [hidden, head.weight])
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y)


def test_bf16_logits_are_scored_in_float32():
    logits = torch.randn(2, 5, 7).to(torch.bfloat16)
    labels = torch.randint(0, 7, (2, 5))
    sums, _ = sequence_logps(logits, labels)
    assert sums.dtype == torch.float32
    torch.testing.assert_close(sums, _naive(logits.float(), labels)[0])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="disagree"):
        sequence_logps(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
