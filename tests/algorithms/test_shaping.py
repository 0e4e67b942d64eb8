"""Reward shaping: last-token index, score placement, per-token KL penalty, clipping, EOS penalty."""

from __future__ import annotations

import torch

from rlhf_lightning.algorithms.shaping import clip_scores, last_token_index, missing_eos_penalty, shape_rewards


def test_last_token_index_any_layout():
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert last_token_index(mask).tolist() == [2, 3, 2, -1]
    assert last_token_index(mask.bool()).tolist() == [2, 3, 2, -1]


def test_shape_rewards_hand_values():
    """Row 0: 3 tokens, KL [0.1, 0.2, 0.3], β = 0.5 → [−0.05, −0.1, −0.15 + 2]; row 1: 1 token → [−0.5·0.4 − 1];
    row 2: no token → all zeros (score dropped). Padding KL is inf/nan and must not leak."""
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    kl = torch.tensor([[0.1, 0.2, 0.3, float("inf")], [0.4, float("nan"), 9.0, 9.0], [float("nan")] * 4])
    scores = torch.tensor([2.0, -1.0, 5.0])
    out = shape_rewards(scores, mask, kl, kl_coef=0.5)
    expected = torch.tensor([[-0.05, -0.1, 1.85, 0.0], [-1.2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(out, expected)
    # without KL only the score on the last token
    torch.testing.assert_close(shape_rewards(scores, mask), torch.tensor(
        [[0.0, 0.0, 2.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert torch.isfinite(shape_rewards(scores, mask, kl, kl_coef=0.0)).all()


def test_shape_rewards_left_padded_and_no_grad():
    scores = torch.tensor([3.0], requires_grad=True)
    out = shape_rewards(scores, torch.tensor([[0, 1, 1]]), torch.tensor([[7.0, 1.0, 1.0]]), kl_coef=1.0)
    assert out.tolist() == [[0.0, -1.0, 2.0]] and not out.requires_grad


def test_clip_scores_and_missing_eos_penalty():
    s = torch.tensor([-5.0, 0.5, 5.0])
    assert clip_scores(s, None) is s
    assert clip_scores(s, 2.0).tolist() == [-2.0, 0.5, 2.0]
    has_eos = torch.tensor([True, False, True])
    assert missing_eos_penalty(s, has_eos, 1.0).tolist() == [-5.0, -0.5, 5.0]
    assert missing_eos_penalty(s, has_eos, None) is s
