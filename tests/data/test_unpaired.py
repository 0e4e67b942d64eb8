"""Unpaired preference rows: format detection, labels, pairs unpaired, errors naming row and field."""

from __future__ import annotations

import pytest

from rlhf_lightning.data.unpaired import check_unpaired_format, desirable, detect_unpaired_format, to_unpaired
from rlhf_lightning.errors import ConfigError, DataError


@pytest.mark.parametrize("columns, fmt", [
    (["prompt", "completion", "label"], "unpaired"),
    (["prompt", "completion", "label", "score"], "unpaired"),
    (["prompt", "response", "label"], "binary"),
    (["prompt", "chosen", "rejected"], "pairwise"),
    (["chosen", "rejected"], "implicit_pairwise"),
])
def test_detection(columns, fmt):
    assert detect_unpaired_format(columns, source="f.jsonl") == fmt


def test_detection_errors_say_what_is_needed():
    with pytest.raises(DataError, match="f.jsonl: rows have 'prompt' and 'completion' but no 'label' column"):
        detect_unpaired_format(["prompt", "completion"], source="f.jsonl")
    with pytest.raises(DataError, match=r"cannot detect an unpaired preference format from columns \[text\]"):
        detect_unpaired_format(["text"], source="f.jsonl")
    with pytest.raises(ConfigError, match="format 'ranking' has no desirable/undesirable labels"):
        detect_unpaired_format(["prompt", "responses", "ranking"], source="f.jsonl")
    with pytest.raises(ConfigError, match="unknown unpaired preference format 'kto'"):
        check_unpaired_format("kto", ["prompt"], source="f.jsonl")
    with pytest.raises(DataError, match="format 'unpaired' needs column"):
        check_unpaired_format("unpaired", ["prompt", "completion"], source="f.jsonl")


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), (1.0, True), ("true", True), ("False", False), (" 1 ", True),
])
def test_labels(value, expected):
    assert desirable(value, "f row index 0") is expected


@pytest.mark.parametrize("value, message", [
    (None, "f row index 3: field 'label' is missing"),
    ("maybe", "field 'label' must be true (desirable) or false (undesirable), got str 'maybe'"),
    (0.5, "got float 0.5"), (2, "got int 2"), ([True], "got list"),
])
def test_bad_labels(value, message):
    with pytest.raises(DataError) as info:
        desirable(value, "f row index 3")
    assert message in str(info.value)


def test_unpaired_row_plain_and_conversational():
    assert to_unpaired({"prompt": "Hi.", "completion": "Hello.", "label": False}, "unpaired", source="f",
                       index=0) == [{"prompt": "Hi.", "completion": "Hello.", "label": False}]
    conv = {"prompt": [{"role": "user", "content": "Hi."}], "completion": [{"role": "assistant", "content": "Yo."}],
            "label": True}
    assert to_unpaired(conv, "unpaired", source="f", index=0) == [{**conv}]


def test_pairs_become_a_desirable_and_an_undesirable_row():
    rows = to_unpaired({"prompt": "Hi.", "chosen": "Hello.", "rejected": "Go away."}, "pairwise", source="f", index=0)
    assert rows == [{"prompt": "Hi.", "completion": "Hello.", "label": True},
                    {"prompt": "Hi.", "completion": "Go away.", "label": False}]
    rows = to_unpaired({"prompt": "Hi.", "response": "Hello.", "label": "false"}, "binary", source="f", index=0)
    assert rows == [{"prompt": "Hi.", "completion": "Hello.", "label": False}]


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Hi.", "completion": "  ", "label": True}, "f row index 5: field 'completion' is empty"),
    ({"prompt": None, "completion": "a", "label": True}, "f row index 5: field 'prompt' is missing"),
    ({"prompt": "Hi.", "completion": 3, "label": True}, "field 'completion' must be a string, got int"),
    ({"prompt": [{"role": "user", "content": "Hi."}], "completion": "a", "label": True},
     "prompt and completion must both be texts or both be message lists"),
    ({"prompt": "Hi.", "completion": "a", "label": "yes"}, "field 'label' must be true (desirable)"),
])
def test_bad_rows_name_row_and_field(row, message):
    with pytest.raises(DataError) as info:
        to_unpaired(row, "unpaired", source="f", index=5)
    assert message in str(info.value)
