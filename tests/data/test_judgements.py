"""Reading pairwise and ranking rows as judgements: ties, annotators, models, and bad rows by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_lightning.data.judgements import read_judgements
from rlhf_lightning.errors import ConfigError, DataError


def _write(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def test_pairwise_and_ranking_rows(tmp_path):
    path = _write(tmp_path / "j.jsonl", [
        {"prompt": "p", "chosen": "a", "rejected": "b", "annotator": "ann1"},
        {"prompt": "p", "chosen": "a", "rejected": "c", "tie": True, "annotator": 7},
        {"prompt": "q", "responses": ["x", "y", "z"], "ranking": [2, 0, 1]},
    ])
    judgements, rows = read_judgements(path)
    assert rows == 3
    got = [(j.prompt, j.a, j.b, j.outcome, j.annotator, j.where.rsplit(":", 1)[1]) for j in judgements]
    assert got == [("p", "a", "b", 1.0, "ann1", "1"), ("p", "a", "c", 0.5, "7", "2"),
                   ("q", "z", "x", 1.0, None, "3"), ("q", "z", "y", 1.0, None, "3"), ("q", "x", "y", 1.0, None, "3")]


def test_sampled_ranking_with_tied_scores_gives_ties(tmp_path):
    """``rlhf-lightning sample`` writes answers best first with their scores; equal scores are ties."""
    path = _write(tmp_path / "ranking.jsonl", [{"prompt": "p", "responses": ["a", "b", "c"], "scores": [2.0, 1.0, 1.0]}])
    judgements, _ = read_judgements(path)
    assert [(j.a, j.b, j.outcome) for j in judgements] == [("a", "b", 1.0), ("a", "c", 1.0), ("b", "c", 0.5)]


def test_conversational_rows_keep_their_messages(tmp_path):
    prompt = [{"role": "user", "content": "hi"}]
    chosen, rejected = [{"role": "assistant", "content": "hello"}], [{"role": "assistant", "content": "go"}]
    path = _write(tmp_path / "c.jsonl", [{"prompt": prompt, "chosen": chosen, "rejected": rejected}])
    (j,), _ = read_judgements(path)
    assert (j.prompt, j.a, j.b) == (prompt, chosen, rejected)


def test_models(tmp_path):
    path = _write(tmp_path / "m.jsonl", [
        {"prompt": "p", "chosen": "a", "rejected": "b", "chosen_model": "m1", "rejected_model": "m2"},
        {"prompt": "q", "responses": ["x", "y"], "scores": [0.0, 1.0], "model": ["m1", "m3"]},
    ])
    judgements, _ = read_judgements(path, model_field="model")
    assert [(j.a_model, j.b_model) for j in judgements] == [("m1", "m2"), ("m3", "m1")]


@pytest.mark.parametrize("rows,kwargs,expected", [
    ([], {}, ["no rows", "empty"]),
    (["", "  "], {}, ["no rows"]),
    ([{"prompt": "p", "chosen": "a", "rejected": "b", "annotator": {"id": 1}}], {},
     ["j.jsonl:1", "'annotator'", "string or an integer", "dict"]),
    ([{"prompt": "p", "chosen": "a", "rejected": "b", "annotator": 1.5}], {}, ["j.jsonl:1", "float"]),
    ([{"prompt": "p", "chosen": "a", "rejected": "b", "annotator": True}], {}, ["j.jsonl:1", "bool"]),
    ([{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "a", "rejected": "a"}], {},
     ["j.jsonl:2", "chosen is identical to rejected"]),
    ([{"prompt": "p", "response": "a", "score": 1.0}], {}, ["j.jsonl:1", "compares nothing"]),
    ([{"prompt": "p", "chosen": "a", "rejected": "b", "tie": "yes"}], {}, ["j.jsonl:1", "'tie'"]),
    ([{"prompt": "p", "chosen": "a", "rejected": "b", "chosen_model": "m", "rejected_model": "m"}],
     {"model_field": "model"}, ["j.jsonl:1", "self-comparison", "'m'"]),
    ([{"prompt": "p", "chosen": "a", "rejected": "b", "chosen_model": "m"}], {"model_field": "model"},
     ["j.jsonl:1", "rejected_model"]),
    ([{"prompt": "p", "responses": ["a", "b"], "ranking": [0, 1], "model": ["m"]}], {"model_field": "model"},
     ["j.jsonl:1", "one model per response"]),
    ([{"prompt": "p", "responses": ["a", "b"], "ranking": [0, 0]}], {}, ["j.jsonl:1", "not a permutation"]),
    ([{"text": "x"}], {}, ["j.jsonl:1", "cannot detect a comparison format"]),
], ids=["empty", "blank", "annotator_dict", "annotator_float", "annotator_bool", "identical", "pointwise", "tie_type",
        "model_self", "model_missing", "model_count", "bad_ranking", "unknown_layout"])
def test_bad_rows_are_named_by_line(tmp_path, rows, kwargs, expected):
    path = _write(tmp_path / "j.jsonl", rows)
    with pytest.raises(DataError) as info:
        read_judgements(path, **kwargs)
    for text in expected:
        assert text in str(info.value), str(info.value)


def test_unknown_declared_format(tmp_path):
    path = _write(tmp_path / "j.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    with pytest.raises(ConfigError, match="unknown comparison format 'pairs'"):
        read_judgements(path, fmt="pairs")
