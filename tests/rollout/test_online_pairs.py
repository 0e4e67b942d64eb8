"""select_pairs and pair_batch on hand-built scores and rollouts."""

from __future__ import annotations

import torch

from rlhf_lightning.losses.labels import IGNORE_INDEX
from rlhf_lightning.rollout.online_pairs import pair_batch, select_pairs
from rlhf_lightning.rollout.samples import Rollout, position_ids_of


def test_best_vs_worst_ties_and_invalid_samples():
    # prompt 0: scores 1, 3, 3, 0 -> best index 1 (first max), worst 3; prompt 1: all 2 -> tie;
    # prompt 2: 5 valid, the others invalid -> no pair
    scores = torch.tensor([1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 2.0, 5.0, 9.0, -9.0, 1.0])
    groups = torch.arange(3).repeat_interleave(4)
    usable = torch.ones(12, dtype=torch.bool)
    usable[9:] = False
    got = select_pairs(scores, groups, usable)
    assert got.chosen.tolist() == [1] and got.rejected.tolist() == [3]
    assert got.ties == 1 and got.no_valid == 1


def test_min_margin_drops_close_pairs():
    scores = torch.tensor([1.0, 1.5, 0.0, 4.0])
    groups = torch.tensor([0, 0, 1, 1])
    got = select_pairs(scores, groups, torch.ones(4, dtype=torch.bool), min_margin=0.5)
    assert got.chosen.tolist() == [3] and got.rejected.tolist() == [2] and got.ties == 1


def test_pair_batch_rows_hold_the_sampled_tokens():
    pad = 0
    # two samples of one left-padded prompt [7, 8] (width 3), completions [5, 2(eos)] and [6, pad]
    prompt = torch.tensor([[pad, 7, 8], [pad, 7, 8]])
    pmask = torch.tensor([[0, 1, 1], [0, 1, 1]])
    comp = torch.tensor([[5, 2], [6, pad]])
    mask = torch.tensor([[True, True], [True, False]])
    am = torch.cat([pmask, mask.long()], 1)
    r = Rollout(input_ids=torch.cat([prompt, comp], 1), attention_mask=am, position_ids=position_ids_of(am),
                prompt_width=3, completion_ids=comp, mask=mask, finished=torch.tensor([True, False]),
                group_ids=torch.tensor([0, 0]), prompts=["p", "p"], completions=["a", "b"])
    scores = torch.tensor([0.5, 2.0])
    picked = select_pairs(scores, r.group_ids, torch.ones(2, dtype=torch.bool))
    batch = pair_batch(r, picked, scores, pad)
    assert batch["input_ids"].tolist() == [[7, 8, 6, pad], [7, 8, 5, 2]]  # chosen (score 2) first, right-padded
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    x = IGNORE_INDEX
    assert batch["labels"].tolist() == [[x, x, 6, x], [x, x, 5, 2]]
    assert batch["scores"].tolist() == [[2.0, 0.5]]
