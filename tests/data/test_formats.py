"""Format detection, declared-format checks, row validation and conversion to chat messages."""

from __future__ import annotations

import pytest

from rlhf_lightning.data.formats import FORMATS, check_format, detect_format, to_messages, validate_row
from rlhf_lightning.errors import ConfigError, DataError


@pytest.mark.parametrize(
    "columns,expected",
    [
        (["messages", "id"], "messages"),
        (["prompt", "completion"], "prompt_completion"),
        (["prompt", "response", "id"], "prompt_response"),
        (["instruction", "input", "output"], "alpaca"),
        (["instruction", "output"], "alpaca"),
        (["instruction", "context", "response", "category"], "dolly"),
        (["id", "conversations"], "sharegpt"),
        (["conversations", "system", "tools"], "sharegpt"),
        (["text", "meta"], "text"),
    ],
)
def test_detect_format(columns, expected):
    assert detect_format(columns, source="f.jsonl") == expected


@pytest.mark.parametrize(
    "columns,candidates",
    [
        (["messages", "text"], ["messages (needs messages)", "text (needs text)"]),
        (["prompt", "completion", "response"], ["prompt_completion", "prompt_response"]),
        (["instruction", "output", "response"], ["alpaca", "dolly"]),
        (["messages", "conversations"], ["messages", "sharegpt"]),
    ],
)
def test_ambiguous_columns_list_the_candidates(columns, candidates):
    with pytest.raises(DataError) as err:
        detect_format(columns, source="mixed.jsonl")
    message = str(err.value)
    assert message.startswith("mixed.jsonl: columns [") and "match several formats" in message
    assert all(c in message for c in candidates) and "format:" in message


@pytest.mark.parametrize("columns", [["text", "chosen", "rejected"], ["text", "prompt"], ["instruction", "text"]])
def test_text_beside_another_shape_is_not_plain_text(columns):
    with pytest.raises(DataError, match="'text' column beside .*declare the format"):
        detect_format(columns, source="f.jsonl")


def test_openassistant_message_rows_are_not_text():
    columns = ["message_id", "parent_id", "user_id", "created_date", "text", "role", "lang", "rank", "message_tree_id"]
    assert detect_format(columns, source="oasst.jsonl") == "oasst"
    with pytest.raises(DataError, match="oasst.jsonl row index 0: .*OpenAssistant message rows.*flatten"):
        validate_row(dict.fromkeys(columns, "x"), "oasst", source="oasst.jsonl", index=0)


def test_formats_tuple():
    assert FORMATS == ("messages", "sharegpt", "prompt_completion", "prompt_response", "alpaca", "dolly", "oasst",
                       "text")


def test_no_detectable_format_lists_found_and_needed():
    with pytest.raises(DataError) as err:
        detect_format(["question", "answer"], source="qa.csv")
    message = str(err.value)
    assert "qa.csv" in message and "question, answer" in message
    for needed in ("messages", "prompt, completion", "prompt, response", "instruction, output", "text"):
        assert needed in message


def test_check_format_names_missing_column():
    check_format("alpaca", ["instruction", "output"], source="a.json")
    with pytest.raises(DataError) as err:
        check_format("prompt_response", ["prompt", "answer"], source="a.json")
    assert "'response'" in str(err.value) and "prompt, answer" in str(err.value) and "a.json" in str(err.value)
    with pytest.raises(ConfigError, match="unknown data format"):
        check_format("chatml", ["messages"], source="a.json")


@pytest.mark.parametrize(
    "row,field,problem",
    [
        ({"prompt": "hi", "response": ""}, "response", "is empty"),
        ({"prompt": "hi", "response": "   "}, "response", "is empty"),
        ({"prompt": None, "response": "x"}, "prompt", "missing"),
        ({"prompt": "hi", "response": 42}, "response", "must be a string"),
    ],
)
def test_validate_row_names_row_and_field(row, field, problem):
    with pytest.raises(DataError) as err:
        validate_row(row, "prompt_response", source="train.csv", index=3)
    message = str(err.value)
    assert message.startswith("train.csv row index 3: ")
    assert f"field '{field}'" in message and problem in message


def test_alpaca_input_optional_but_must_be_text():
    validate_row({"instruction": "a", "output": "b"}, "alpaca", source="s", index=0)
    validate_row({"instruction": "a", "input": None, "output": "b"}, "alpaca", source="s", index=0)
    with pytest.raises(DataError, match="'input'"):
        validate_row({"instruction": "a", "input": 3, "output": "b"}, "alpaca", source="s", index=0)


GOOD = [{"role": "system", "content": ""}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


@pytest.mark.parametrize(
    "messages,problem",
    [
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        (["hello"], "messages[0] must be a dict"),
        ([{"role": "bot", "content": "x"}], "role 'bot'"),
        ([{"role": "user", "content": 5}], "content must be a string"),
        ([{"role": "user", "content": "q"}], "no assistant turn"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}], "no assistant turn"),
    ],
)
def test_validate_messages(messages, problem):
    validate_row({"messages": GOOD}, "messages", source="chat.jsonl", index=0)
    with pytest.raises(DataError) as err:
        validate_row({"messages": messages}, "messages", source="chat.jsonl", index=7)
    assert "chat.jsonl row index 7" in str(err.value) and problem in str(err.value)


def test_to_messages():
    pair = [{"role": "user", "content": "P"}, {"role": "assistant", "content": "C"}]
    assert to_messages({"prompt": "P", "response": "C"}, "prompt_response") == pair
    assert to_messages({"prompt": "P", "completion": "C"}, "prompt_completion") == pair
    assert to_messages({"instruction": "P", "input": "", "output": "C"}, "alpaca") == pair
    assert to_messages({"instruction": "Do", "input": "this", "output": "C"}, "alpaca")[0]["content"] == "Do\n\nthis"
    assert to_messages({"messages": GOOD}, "messages") == GOOD
    assert to_messages({"text": "t"}, "text") is None
