"""Tool messages, tool calls and the ``tools`` column: accepted shapes and the errors for bad ones."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning.data.formats import to_messages, validate_row
from rlhf_lightning.data.public_formats import sharegpt_messages
from rlhf_lightning.data.tools import chat_messages, drop_nulls, row_tools
from rlhf_lightning.errors import DataError

SCHEMA = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
CALL = {"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}


def _row(*messages, tools=None):
    row = {"messages": list(messages)}
    if tools is not None:
        row["tools"] = tools
    return row


def _check(row):
    validate_row(row, "messages", source="f.jsonl", index=3)


def test_tool_conversation_is_valid():
    _check(_row({"role": "user", "content": "Paris?"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "content": "18C"}, {"role": "assistant", "content": "It is 18C."}, tools=[SCHEMA]))


def test_a_tool_call_alone_is_something_to_train():
    _check(_row({"role": "user", "content": "Paris?"}, {"role": "assistant", "content": "", "tool_calls": [CALL]}))


def test_tools_column_as_json_string():
    assert row_tools({"tools": json.dumps([SCHEMA])}) == [SCHEMA]
    assert row_tools({"tools": ""}) is None and row_tools({"tools": None}) is None and row_tools({}) is None


def test_nulls_filled_in_by_columnar_loaders_are_dropped():
    # Parquet/Arrow give every message every key: tool_calls=None on a user turn would reach the template.
    messages = [{"role": "user", "content": "Hi", "tool_calls": None, "name": None},
                {"role": "assistant", "content": "Yo", "tool_calls": None, "name": None}]
    assert chat_messages(messages) == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    assert to_messages({"messages": messages}, "messages") == chat_messages(messages)
    assert drop_nulls({"a": [{"b": None, "c": 1}], "d": None}) == {"a": [{"c": 1}]}


@pytest.mark.parametrize("row, words", [
    (_row({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, tools="[{"),
     "row index 3: field 'tools' is a string but not JSON"),
    (_row({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, tools={"name": "x"}),
     "field 'tools' must be a list of function schemas"),
    (_row({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, tools=[{"type": "function"}]),
     "tools[0] has no function name"),
    (_row({"role": "user", "content": "Hi", "tool_calls": [CALL]}, {"role": "assistant", "content": "Yo"}),
     "messages[0] (user) has tool_calls; only assistant turns call tools"),
    (_row({"role": "user", "content": "Hi"}, {"role": "assistant", "content": None, "tool_calls": []}),
     "messages[1] (assistant) tool_calls must be a non-empty list"),
    (_row({"role": "user", "content": "Hi"},
          {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": {}}}]}),
     "messages[1].tool_calls[0] needs a function name"),
    (_row({"role": "user", "content": "Hi"},
          {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{x"}}]}),
     "messages[1].tool_calls[0] arguments is a string but not JSON"),
    (_row({"role": "user", "content": "Hi"}, {"role": "tool", "content": None}),
     "messages[1] (tool) content must be a string"),
    (_row({"role": "user", "content": "Hi"}, {"role": "tool", "content": "18C"}),
     "no assistant turn with non-empty content"),
    (_row({"role": "user", "content": "Hi"}, {"role": "function", "content": "18C"}),
     "known roles: system, user, assistant, tool"),
])
def test_bad_tool_rows_name_row_and_field(row, words):
    with pytest.raises(DataError) as info:
        _check(row)
    assert "f.jsonl row index 3" in str(info.value) and words in str(info.value)


def test_llama_factory_sharegpt_function_call_and_observation():
    row = {"conversations": [{"from": "human", "value": "Paris?"},
                             {"from": "function_call", "value": json.dumps({"name": "weather",
                                                                            "arguments": {"city": "Paris"}})},
                             {"from": "observation", "value": "18C"},
                             {"from": "gpt", "value": "It is 18C."}],
           "tools": json.dumps([SCHEMA])}
    assert sharegpt_messages(row, source="s", index=0) == [
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
    ]
    validate_row(row, "sharegpt", source="s", index=0)
    assert to_messages(row, "sharegpt")[1] == {"role": "assistant", "tool_calls": [CALL]}


def test_sharegpt_function_call_that_is_not_json():
    row = {"conversations": [{"from": "human", "value": "Paris?"}, {"from": "function_call", "value": "weather("}]}
    with pytest.raises(DataError, match=r"s row index 0: conversations\[1\] \(function_call\) value is not JSON"):
        sharegpt_messages(row, source="s", index=0)
