"""Preference data from a policy's own answers: pairs, K-wise rankings and best-of-N SFT rows.

Input, per prompt: the prompt (a string, or a chat message list ending with a user turn), ``N``
sampled answers and their scores (higher is better; a reward plugin's or a weighted sum of several).
Output: rows in the layouts the stages read unchanged (:mod:`rlhf_lightning.data.comparisons`,
:mod:`rlhf_lightning.data.formats`):

- pairwise ``{prompt, chosen, rejected, chosen_score, rejected_score}``: the best answer against the worst
  (``best_worst``, one pair per prompt, as in on-policy/iterative DPO recipes — Xu et al. 2023,
  "Some things are more CRINGE than others"; Dong et al. 2024, "RLHF Workflow"), or every pair
  whose scores differ by more than ``min_margin`` (``all``);
- ranking ``{prompt, responses, scores}``: the distinct answers best first, for K-wise reward
  models (InstructGPT);
- prompt/completion (or ``messages``) rows of the best answer: rejection sampling / best-of-N
  fine-tuning (Touvron et al. 2023, Llama 2 §3.2.3; Dong et al. 2023, RAFT).

The scores are written as ``chosen_score``/``rejected_score``, not as ``margin`` (which the reward
loss would add to its target). Identical answers are merged first (a pair of two equal texts teaches nothing) and empty ones
dropped. Chat prompts give
conversational rows (answers as one assistant message), as TRL's conversational layout.
Pure Python: no torch.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Sequence, Union

Prompt = Union[str, list[dict[str, Any]]]
PairMode = Literal["best_worst", "all"]


def distinct_ranked(answers: Sequence[str], scores: Sequence[float]) -> list[tuple[str, float]]:
    """The distinct answers with their scores, best first (ties keep the order of sampling); an
    answer drawn twice keeps its first score. Empty answers (the stages' data layers refuse them)
    and answers with a non-finite score are dropped."""
    if len(answers) != len(scores):
        raise ValueError(f"{len(answers)} answers but {len(scores)} scores")
    seen: dict[str, float] = {}
    for answer, score in zip(answers, scores, strict=True):
        if answer.strip() and answer not in seen and math.isfinite(score):
            seen[answer] = float(score)
    return sorted(seen.items(), key=lambda item: -item[1])


def _response(prompt: Prompt, answer: str) -> Union[str, list[dict[str, str]]]:
    return answer if isinstance(prompt, str) else [{"role": "assistant", "content": answer}]


def pair_rows(prompt: Prompt, answers: Sequence[str], scores: Sequence[float], *, mode: PairMode = "best_worst",
              min_margin: float = 0.0) -> list[dict[str, Any]]:
    """Pairwise rows whose chosen answer scores more than ``min_margin`` above the rejected one.

    ``best_worst``: at most one row, best vs worst. ``all``: every such pair, ``K(K-1)/2`` at most
    for ``K`` distinct answers, ordered by the chosen answer's rank then the rejected one's."""
    ranked = distinct_ranked(answers, scores)
    if len(ranked) < 2:
        return []
    if mode == "best_worst":
        candidates = [(ranked[0], ranked[-1])]
    elif mode == "all":
        candidates = [(ranked[i], ranked[j]) for i in range(len(ranked)) for j in range(i + 1, len(ranked))]
    else:
        raise ValueError(f"unknown pair mode {mode!r} (best_worst, all)")
    return [{"prompt": prompt, "chosen": _response(prompt, good), "rejected": _response(prompt, bad),
             "chosen_score": good_score, "rejected_score": bad_score}
            for (good, good_score), (bad, bad_score) in candidates if good_score - bad_score > min_margin]


def ranking_row(prompt: Prompt, answers: Sequence[str], scores: Sequence[float]) -> Optional[dict[str, Any]]:
    """One ranking row (distinct answers best first, with their scores), or None with fewer than two."""
    ranked = distinct_ranked(answers, scores)
    if len(ranked) < 2:
        return None
    return {"prompt": prompt, "responses": [_response(prompt, a) for a, _ in ranked],
            "scores": [s for _, s in ranked]}


def best_of_n_row(prompt: Prompt, answers: Sequence[str], scores: Sequence[float], *,
                  min_score: Optional[float] = None) -> Optional[dict[str, Any]]:
    """The best answer as a supervised row (``prompt``/``completion``, or ``messages`` for a chat
    prompt), or None when no answer scores at least ``min_score``."""
    ranked = distinct_ranked(answers, scores)
    if not ranked or (min_score is not None and ranked[0][1] < min_score):
        return None
    best, score = ranked[0]
    if isinstance(prompt, str):
        return {"prompt": prompt, "completion": best, "score": score}
    return {"messages": [*prompt, {"role": "assistant", "content": best}], "score": score}
