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


NOT_UTF8 = {  # name -> (bytes, offset of the first bad byte, its line)
    "bad.csv": (b"prompt,response\nhi,there\n\xff bad,x\n", 25, 3),
    "bad.jsonl": (b'{"prompt": "a", "response": "b"}\n{"prompt": "\xc3(", "response": "b"}\n', 45, 2),
    "bad.json": (b'[{"prompt": "caf\xe9", "response": "b"}]', 16, 1),
}


@pytest.mark.parametrize("name", sorted(NOT_UTF8))
def test_not_utf8_names_file_byte_and_line(tmp_path, name):
    """Before: the JSON builder loaded a latin-1 'é' as nothing, silently; a CSV error named an offset
    into pandas' buffer. Now every text format stops at the first bad byte, with its file offset."""
    data, offset, line = NOT_UTF8[name]
    assert data[offset] >= 0x80 and data[:offset].count(b"\n") == line - 1
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError, match=rf"{name}: not valid UTF-8 at byte {offset} \(line {line}\)"):
        load_rows(str(path))


def test_not_utf8_offset_counts_across_read_chunks(tmp_path):
    """A character split between two reads is valid; the bad byte's offset is counted from the file start."""
    from rlhf_lightning.data.text_files import check_utf8

    path = tmp_path / "big.jsonl"
    good = "春".encode() * 5  # 3-byte characters straddle every 4-byte chunk boundary
    path.write_bytes(good + b"\n" + good + b"\xc3(")
    with pytest.raises(DataError, match=r"at byte 31 \(line 2\): invalid continuation byte \(byte 0xc3\)"):
        check_utf8(path, chunk_size=4)
    path.write_bytes(good + b"\xe6\x98")  # a truncated character at the end of the file
    with pytest.raises(DataError, match=r"at byte 15 \(line 1\): unexpected end of data"):
        check_utf8(path, chunk_size=4)
    path.write_bytes(good)
    check_utf8(path, chunk_size=4)


@pytest.mark.parametrize("name", ["bom.csv", "bom.json", "bom.jsonl"])
def test_utf8_byte_order_mark_is_accepted(tmp_path, name):
    path = tmp_path / name
    body = {"bom.csv": "prompt,response\n春,b\n", "bom.json": json.dumps([{"prompt": "春", "response": "b"}]),
            "bom.jsonl": json.dumps({"prompt": "春", "response": "b"}) + "\n"}[name]
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    rows = load_rows(str(path))
    assert rows.column_names == ["prompt", "response"] and rows[0] == {"prompt": "春", "response": "b"}


def test_malformed_jsonl_line_is_named_with_the_parse_error(tmp_path):
    """Before: "could not read the file (DatasetGenerationError: An error occurred while generating the dataset)"."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n\n{"prompt": "a", oops}\n{"prompt": "c"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: line 3: not valid JSON \(Expecting property name enclosed in "
                                        r"double quotes at column 17\)"):
        load_rows(str(path))
    path.write_text('{"prompt": "a", "response": "b"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: expected a JSON object .*got list"):
        load_rows(str(path))


def test_malformed_json_document_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"prompt": "a", "response": "b"},\n {"prompt": "a" "response": "b"}]', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.json: line 2, column 17: Expecting ',' delimiter"):
        load_rows(str(path))
