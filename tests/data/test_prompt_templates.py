"""Prompt templates: fields parsed and checked at option time, filled per row, errors naming row and column."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning.data.prompt_templates import fill_template, template_fields
from rlhf_lightning.data.sources import load_source
from rlhf_lightning.data.spec import as_sources
from rlhf_lightning.errors import ConfigError, DataError

TLDR = "Summarize:\n{text}\n\nTL;DR:"


def test_fields_in_order_once_and_literal_braces():
    assert template_fields(TLDR) == ["text"]
    assert template_fields("{title}: {text} ({title}) {{literal}}") == ["title", "text"]


@pytest.mark.parametrize("template, match", [
    ("", "non-empty"), ("no fields", "uses no column"), ("{}", "not a column name"), ("{0}", "not a column name"),
    ("{a.b}", "not a column name"), ("{a[0]}", "not a column name"), ("{a:>10}", "format spec"),
    ("{a!r}", "conversion"), ("{a", "literal braces"), ("a}", "literal braces"),
])
def test_malformed_templates_name_the_option(template, match):
    with pytest.raises(ConfigError, match=f"data.train\\[0\\].prompt_template: .*{match}"):
        as_sources({"path": "x.jsonl", "prompt_template": template}, option="data.train")


def test_fill_and_row_errors():
    assert fill_template("Q: {q} ({n})", {"q": "why?", "n": 3, "other": [1]}, source="f", index=0) == "Q: why? (3)"
    with pytest.raises(DataError, match="f row index 4: prompt_template needs column 'text', which the row lacks; "
                                        "columns present: body"):
        fill_template(TLDR, {"body": "x"}, source="f", index=4)
    with pytest.raises(DataError, match="row index 1: .*'text', which the row has empty"):
        fill_template(TLDR, {"text": None}, source="f", index=1)
    with pytest.raises(DataError, match="column 'text' must be a string or a number, got list"):
        fill_template(TLDR, {"text": ["a"]}, source="f", index=0)


def test_load_source_fills_the_prompt_column_and_keeps_the_others(tmp_path):
    path = tmp_path / "articles.jsonl"
    rows = [{"text": "The moon rises.", "reference": "Moon.", "prompt": "old"}, {"text": "Rain falls.", "reference": "Rain."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (src,) = as_sources({"path": str(path), "prompt_template": TLDR})
    ds = load_source(src)
    assert ds["prompt"] == ["Summarize:\nThe moon rises.\n\nTL;DR:", "Summarize:\nRain falls.\n\nTL;DR:"]
    assert ds["reference"] == ["Moon.", "Rain."]
    renamed = as_sources({"path": str(path), "columns": {"text": "article"}, "prompt_template": "{article} TL;DR:"})
    assert load_source(renamed[0])["prompt"][1] == "Rain falls. TL;DR:"  # after renaming


def test_conversational_rows_are_refused(tmp_path):
    with pytest.raises(DataError, match="row index 2: prompt_template builds a plain prompt, but the row is "
                                        "conversational"):
        fill_template(TLDR, {"text": "x", "messages": [{"role": "user", "content": "hi"}]}, source="f", index=2)
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"text": "x", "messages": [{"role": "user", "content": "hi"}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="chat.jsonl: prompt_template builds a plain prompt"):
        load_source(as_sources({"path": str(path), "prompt_template": TLDR})[0])
