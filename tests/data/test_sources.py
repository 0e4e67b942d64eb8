"""Loading rows from local files (json, jsonl, csv, parquet) and the errors users see for bad input."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning.data.sources import load_rows, split_validation
from rlhf_lightning.errors import ConfigError, DataError

ROWS = [
    {"prompt": "写一首关于春天的诗", "response": "春风拂面，百花齐放。"},
    {"prompt": "Explain gravity.", "response": "Gravity pulls objects together."},
]


def _write(tmp_path, name, rows=ROWS):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    elif name.endswith(".json"):
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    elif name.endswith(".parquet"):
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


@pytest.mark.parametrize("name", ["rows.json", "rows.jsonl", "rows.parquet"])
def test_load_structured_files(tmp_path, name):
    ds = load_rows(str(_write(tmp_path, name)))
    assert ds.column_names == ["prompt", "response"]
    assert ds.to_list() == ROWS


def test_json_lines_in_a_dot_json_file(tmp_path):
    path = tmp_path / "lines.json"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS), encoding="utf-8")
    assert load_rows(str(path)).to_list() == ROWS


def test_csv_utf8_chinese_round_trips_and_cells_stay_strings(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        'prompt,response\n写一首关于春天的诗,"春风拂面，百花齐放。"\nWhat is 6*7?,42\nSay NA,NA\n', encoding="utf-8"
    )
    ds = load_rows(str(path))
    assert ds.to_list() == [
        {"prompt": "写一首关于春天的诗", "response": "春风拂面，百花齐放。"},
        {"prompt": "What is 6*7?", "response": "42"},  # not int64
        {"prompt": "Say NA", "response": "NA"},  # not a missing value
    ]


def test_column_mapping_renames(tmp_path):
    rows = [{"question": "q1", "answer": "a1", "id": 1}]
    ds = load_rows(str(_write(tmp_path, "qa.jsonl", rows)), columns={"question": "prompt", "answer": "response"})
    assert sorted(ds.column_names) == ["id", "prompt", "response"]
    assert ds[0]["prompt"] == "q1" and ds[0]["response"] == "a1"


def test_missing_mapped_column_names_column_file_and_found(tmp_path):
    path = _write(tmp_path, "qa.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as err:
        load_rows(str(path), columns={"query": "prompt"})
    message = str(err.value)
    assert "'query'" in message and str(path) in message and "question, answer" in message


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="data file not found: .*nope.csv"):
        load_rows(str(missing))


@pytest.mark.parametrize("name,content", [("empty.json", "[]"), ("empty.jsonl", ""), ("header.csv", "prompt,response\n")])
def test_empty_files_say_no_rows(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.|header\.") as err:
        load_rows(str(path))
    assert "no rows" in str(err.value)


def test_empty_parquet_says_no_rows(tmp_path):
    import datasets

    path = tmp_path / "empty.parquet"
    datasets.Dataset.from_dict({"text": []}, features=datasets.Features({"text": datasets.Value("string")})).to_parquet(str(path))
    with pytest.raises(DataError, match="no rows"):
        load_rows(str(path))


def test_hub_failure_is_a_data_error_naming_the_id():
    # conftest sets HF_HUB_OFFLINE=1, so any hub id fails without touching the network.
    with pytest.raises(DataError) as err:
        load_rows("some-org/some-dataset")
    assert "some-org/some-dataset" in str(err.value) and "hub access failed" in str(err.value)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"prompt": "a", ', encoding="utf-8")
    with pytest.raises(DataError, match="bad.json"):
        load_rows(str(path))


def test_split_validation_is_deterministic_and_disjoint():
    import datasets

    ds = datasets.Dataset.from_dict({"i": list(range(20))})
    train, val = split_validation(ds, 0.25, seed=3)
    assert len(train) == 15 and len(val) == 5
    train_i, val_i = list(train["i"]), list(val["i"])
    assert sorted(train_i + val_i) == list(range(20))
    assert train_i == sorted(train_i)  # data order kept
    assert list(split_validation(ds, 0.25, seed=3)[1]["i"]) == val_i
    assert list(split_validation(ds, 0.25, seed=4)[1]["i"]) != val_i


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_validation_bad_fraction(fraction):
    import datasets

    with pytest.raises(ConfigError):
        split_validation(datasets.Dataset.from_dict({"i": [1, 2, 3]}), fraction, seed=0)


def test_split_validation_needs_a_row_each_side():
    import datasets

    with pytest.raises(DataError, match="at least one"):
        split_validation(datasets.Dataset.from_dict({"i": [1]}), 0.5, seed=0)
