"""Preference rows from sampled answers: hand-worked rankings, pairs, best-of-N, and that the rows
are read unchanged by the comparison and supervised data layers."""

from __future__ import annotations

import math

import pytest

from rlhf_lightning.data.comparisons import detect_comparison_format, to_comparison
from rlhf_lightning.data.formats import detect_format, validate_row
from rlhf_lightning.data.sampled_preferences import best_of_n_row, distinct_ranked, pair_rows, ranking_row

ANSWERS = ["b", "a", "c", "a", "d", " "]
SCORES = [0.5, 2.0, -1.0, 7.0, math.nan, 9.0]  # the 2nd "a" is a duplicate, "d" has no finite score, " " is empty


def test_distinct_ranked_merges_duplicates_drops_empty_and_nan_and_sorts_best_first():
    assert distinct_ranked(ANSWERS, SCORES) == [("a", 2.0), ("b", 0.5), ("c", -1.0)]
    assert distinct_ranked(["x", "y"], [1.0, 1.0]) == [("x", 1.0), ("y", 1.0)]  # ties keep sampling order
    with pytest.raises(ValueError, match="2 answers but 1 scores"):
        distinct_ranked(["x", "y"], [1.0])


def test_best_worst_pair_and_margin():
    assert pair_rows("p", ANSWERS, SCORES) == [
        {"prompt": "p", "chosen": "a", "rejected": "c", "chosen_score": 2.0, "rejected_score": -1.0}]
    assert pair_rows("p", ANSWERS, SCORES, min_margin=3.0) == []  # 2 - (-1) = 3 is not more than 3
    assert pair_rows("p", ["same", "same"], [1.0, 1.0]) == []  # one distinct answer: no pair


def test_all_pairs_past_the_margin_in_rank_order():
    rows = pair_rows("p", ANSWERS, SCORES, mode="all", min_margin=1.0)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    rows = pair_rows("p", ANSWERS, SCORES, mode="all", min_margin=1.6)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("a", "c")]  # a-b: 1.5, b-c: 1.5
    with pytest.raises(ValueError, match="unknown pair mode"):
        pair_rows("p", ANSWERS, SCORES, mode="best")


def test_chat_prompts_give_conversational_rows():
    prompt = [{"role": "user", "content": "hi"}]
    pair = pair_rows(prompt, ["x", "y"], [1.0, 0.0])[0]
    assert pair["chosen"] == [{"role": "assistant", "content": "x"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "y"}]
    assert best_of_n_row(prompt, ["x", "y"], [0.0, 1.0]) == {
        "messages": [*prompt, {"role": "assistant", "content": "y"}], "score": 1.0}


def test_ranking_and_best_of_n():
    assert ranking_row("p", ANSWERS, SCORES) == {"prompt": "p", "responses": ["a", "b", "c"],
                                                 "scores": [2.0, 0.5, -1.0]}
    assert ranking_row("p", ["x"], [1.0]) is None
    assert best_of_n_row("p", ANSWERS, SCORES) == {"prompt": "p", "completion": "a", "score": 2.0}
    assert best_of_n_row("p", ANSWERS, SCORES, min_score=2.5) is None
    assert best_of_n_row("p", ["d"], [math.nan]) is None


@pytest.mark.parametrize("prompt", ["p", [{"role": "user", "content": "p"}]])
def test_rows_are_read_unchanged_by_the_stages_data_layers(prompt):
    pair = pair_rows(prompt, ANSWERS, SCORES)[0]
    assert detect_comparison_format(list(pair), source="pairs.jsonl") == "pairwise"
    comparison = to_comparison(pair, "pairwise", source="pairs.jsonl", index=0)
    assert comparison["responses"] == [pair["chosen"], pair["rejected"]] and comparison["margin"] is None

    ranking = ranking_row(prompt, ANSWERS, SCORES)
    assert detect_comparison_format(list(ranking), source="ranking.jsonl") == "ranking"
    comparison = to_comparison(ranking, "ranking", source="ranking.jsonl", index=0)
    assert comparison["responses"] == ranking["responses"]  # already best first

    best = best_of_n_row(prompt, ANSWERS, SCORES)
    fmt = detect_format(list(best), source="best_of_n.jsonl")
    assert fmt == ("prompt_completion" if isinstance(prompt, str) else "messages")
    validate_row(best, fmt, source="best_of_n.jsonl", index=0)
