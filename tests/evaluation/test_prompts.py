"""Held-out prompt files: errors naming the cause, rendering as the stages do, left-padded batches."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning.errors import DataError
from rlhf_lightning.evaluation.prompts import prepare_rows, prompt_batches, read_prompt_rows
from rlhf_lightning.models.loading import load_tokenizer


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("content, match", [
    (None, "prompts file not found"),
    ([], "no prompts"),
    (["", "   "], "no prompts"),
    (["{not json"], r":1: not valid JSON"),
    (["[1, 2]"], "expected a JSON object"),
    ([{"question": "hi"}], "needs 'prompt'.*fields present: question"),
])
def test_read_prompt_rows_errors(tmp_path, content, match):
    path = tmp_path / "p.jsonl"
    if content is not None:
        _write(path, content)
    with pytest.raises(DataError, match=match):
        read_prompt_rows(str(path))


def test_rows_rendered_with_the_chat_template_and_columns_kept(tmp_path, tiny_tokenizer_dir):
    tokenizer = load_tokenizer(str(tiny_tokenizer_dir), padding_side="left")
    path = _write(tmp_path / "p.jsonl", [
        {"prompt": "Explain gravity.", "topic": "physics", "tags": ["a"]},
        {"messages": [{"role": "user", "content": "写一首诗"}, {"role": "assistant", "content": "reference"}],
         "lang": "zh"},
    ])
    rows = prepare_rows(read_prompt_rows(path), tokenizer, source=path)
    assert [r["prompt"] for r in rows] == ["Explain gravity.", "写一首诗"]
    assert rows[0]["text"] == tokenizer.apply_chat_template([{"role": "user", "content": "Explain gravity."}],
                                                            tokenize=False, add_generation_prompt=True)
    assert "reference" not in rows[1]["text"]  # the assistant turn (a reference answer) is dropped
    # every row has every column; non-scalar values become None
    assert rows[0]["topic"] == "physics" and rows[0]["lang"] is None and rows[0]["tags"] is None
    assert rows[1]["lang"] == "zh" and rows[1]["topic"] is None

    batches, cut = prompt_batches(rows, tokenizer, batch_size=1, max_prompt_length=512)
    assert len(batches) == 2 and cut == 0
    assert batches[0]["topic"] == ["physics"]
    lengths = [len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) for r in rows]
    (batch,) = prompt_batches(rows, tokenizer, batch_size=2, max_prompt_length=512)[0]
    assert batch["input_ids"].shape == (2, max(lengths))
    short = lengths.index(min(lengths))
    assert batch["attention_mask"][short, 0] == 0 and batch["attention_mask"][short, -1] == 1  # left padding

    limit = min(lengths)
    batches, cut = prompt_batches(rows, tokenizer, batch_size=2, max_prompt_length=limit)
    assert lengths[0] != lengths[1] and cut == 1 and batches[0]["input_ids"].shape[1] == limit
