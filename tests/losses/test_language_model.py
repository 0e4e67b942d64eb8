"""token_nll against hand-derived values.

Vocabulary of 2, one row of 3 positions. Position 0 has logits [0, 0] -> p = [1/2, 1/2]; position 1
has logits [ln 3, 0] -> p = [3/4, 1/4]. Position t predicts labels[t + 1].
"""

import math

import torch

from rlhf_lightning.losses.language_model import token_nll

LOGITS = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])


def test_sum_and_count_with_shift():
    # pos0 -> label 0: -ln(1/2) = ln 2; pos1 -> label 1: -ln(1/4) = ln 4; total ln 8 over 2 tokens
    nll, n = token_nll(LOGITS, torch.tensor([[-100, 0, 1]]))
    assert n.item() == 2
    assert math.isclose(nll.item(), math.log(8.0), rel_tol=1e-6)


def test_masked_positions_are_ignored():
    # only pos1 -> label 1 counts: ln 4; the first label is never predicted (nothing precedes it)
    nll, n = token_nll(LOGITS, torch.tensor([[7, -100, 1]]))
    assert n.item() == 1
    assert math.isclose(nll.item(), math.log(4.0), rel_tol=1e-6)


def test_all_masked_gives_zero_tokens():
    nll, n = token_nll(LOGITS, torch.full((1, 3), -100))
    assert n.item() == 0 and nll.item() == 0.0
