"""Preference pairs from a policy's own scored samples, as one DPO batch (no Lightning).

Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback") samples
``n`` answers per prompt from the current policy, scores them, and trains on the best against the
worst. Shapes: ``B`` prompts, ``n`` samples per prompt, ``N = B·n``; the pair batch is ``(2B', T)``
for the ``B' <= B`` prompts that gave a pair (row ``2b`` chosen, ``2b+1`` rejected), collated by
:class:`~rlhf_lightning.data.comparison_batches.ComparisonCollator` exactly as offline comparisons
are: right-padded, ``labels`` on the answer tokens (``-100`` on the prompt and padding).

The rows hold the tokens the policy sampled (prompt as the prompt collator encoded it, answer up to
and including its stop token), not a re-tokenisation of the decoded text, so the log-probs are of
what was sampled; an answer cut by ``max_new_tokens`` has no EOS, as generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rlhf_lightning.data.comparison_batches import ComparisonCollator
from rlhf_lightning.losses.labels import IGNORE_INDEX
from rlhf_lightning.rollout.samples import Rollout


@dataclass
class PairSelection:
    """Chosen / rejected sample indices ``(B',)`` and what was dropped."""

    chosen: Tensor      # (B',) long: index into the N samples of the best answer of each kept prompt
    rejected: Tensor    # (B',) long: the worst answer of the same prompt
    ties: int           # prompts whose best and worst scores differ by no more than min_margin
    no_valid: int       # prompts with fewer than two usable samples (invalid scores)


def select_pairs(scores: Tensor, group_ids: Tensor, usable: Tensor, *, min_margin: float = 0.0) -> PairSelection:
    """Best vs worst usable sample of each prompt (``scores``, ``group_ids``, ``usable``: ``(N,)``).

    Ties in the argmax / argmin go to the earlier sample. A prompt is dropped as a tie when
    ``best - worst <= min_margin`` (with ``min_margin = 0``: equal scores, e.g. identical answers).
    """
    chosen, rejected = [], []
    ties = no_valid = 0
    for g in torch.unique(group_ids, sorted=True).tolist():
        idx = torch.nonzero((group_ids == g) & usable, as_tuple=False).flatten()
        if idx.numel() < 2:
            no_valid += 1
            continue
        s = scores[idx]
        best, worst = int(idx[int(torch.argmax(s))]), int(idx[int(torch.argmin(s))])
        if float(scores[best] - scores[worst]) <= min_margin:
            ties += 1
            continue
        chosen.append(best)
        rejected.append(worst)
    as_long = dict(dtype=torch.long, device=scores.device)
    return PairSelection(torch.tensor(chosen, **as_long), torch.tensor(rejected, **as_long), ties, no_valid)


def sample_tokens(rollout: Rollout, i: int) -> dict[str, list[int]]:
    """``{"input_ids", "labels"}`` of sample ``i``: its prompt tokens (padding removed) and answer tokens."""
    p = rollout.prompt_width
    prompt = rollout.input_ids[i, :p][rollout.attention_mask[i, :p].bool()].tolist()
    answer = rollout.completion_ids[i][rollout.mask[i]].tolist()
    return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}


def pair_batch(rollout: Rollout, selection: PairSelection, scores: Tensor, pad_token_id: int) -> dict[str, Tensor]:
    """The ``(2B', T)`` comparison batch of the selected pairs (see the module docstring), with
    ``scores`` ``(B', 2)`` the (chosen, rejected) scores."""
    rows = [{"responses": [sample_tokens(rollout, c), sample_tokens(rollout, r)],
             "scores": [float(scores[c]), float(scores[r])]}
            for c, r in zip(selection.chosen.tolist(), selection.rejected.tolist(), strict=True)]
    return ComparisonCollator(pad_token_id)(rows)
