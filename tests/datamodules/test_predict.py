"""``predict`` data (rlhf_lightning/datamodules/predict.py), the same rows and batches in every data module."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning.data.spec import as_sources
from rlhf_lightning.datamodules.comparisons import ComparisonDataModule
from rlhf_lightning.datamodules.predict import load_predict_rows
from rlhf_lightning.datamodules.prompts import PromptDataModule
from rlhf_lightning.datamodules.sft import SFTDataModule
from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.models.loading import load_tokenizer

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": "Hello!"}]


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_rows_keep_their_columns_and_get_the_rendered_prompt(tiny_tokenizer_dir, tmp_path):
    a = write(tmp_path / "a.jsonl", [{"prompt": "Explain gravity.", "id": 0, "meta": {"x": 1}}])
    b = write(tmp_path / "b.jsonl", [{"messages": CHAT, "topic": "greeting"}])
    rows = load_predict_rows(as_sources([a, b]), load_tokenizer(str(tiny_tokenizer_dir)))
    # sources with different columns: every row has every key; non-scalar columns other than messages dropped
    assert [sorted(r) for r in rows] == [["id", "messages", "prompt", "text", "topic"]] * 2
    assert rows[0]["prompt"] == "Explain gravity." and rows[0]["messages"] is None and rows[0]["topic"] is None
    assert rows[1]["messages"] == CHAT and rows[1]["topic"] == "greeting"
    # the prompt ends with the generation prompt; the reference answer in messages is not part of it
    assert rows[1]["text"].endswith("<|im_start|>assistant\n") and "Be brief." in rows[1]["text"]
    assert "Hello!" not in rows[1]["text"]


def test_no_sources_is_a_config_error(tiny_tokenizer_dir):
    with pytest.raises(ConfigError, match="data.predict is empty"):
        load_predict_rows([], load_tokenizer(str(tiny_tokenizer_dir)))


def test_missing_prompt_column_and_bad_rows_are_data_errors(tiny_tokenizer_dir, tmp_path):
    tok = load_tokenizer(str(tiny_tokenizer_dir))
    no_prompt = write(tmp_path / "q.jsonl", [{"question": "What?"}])
    with pytest.raises(DataError, match=r"q\.jsonl.*'prompt' or 'messages'.*question"):
        load_predict_rows(as_sources(no_prompt), tok)
    empty = write(tmp_path / "e.jsonl", [{"prompt": "fine"}, {"prompt": " "}])
    with pytest.raises(DataError, match=r"e\.jsonl row index 1"):
        load_predict_rows(as_sources(empty), tok)


@pytest.mark.parametrize("make", [
    lambda tok, src: SFTDataModule(train="missing.csv", predict=src, tokenizer=tok, batch_size=8, eval_batch_size=2,
                                   max_prompt_length=4),
    lambda tok, src: ComparisonDataModule(train="missing.jsonl", predict=src, tokenizer=tok, batch_size=8,
                                          eval_batch_size=2, max_prompt_length=4),
    lambda tok, src: PromptDataModule(train="missing.jsonl", predict=src, tokenizer=tok, batch_size=8,
                                      eval_batch_size=2, max_prompt_length=4),
], ids=["sft", "comparisons", "prompts"])
def test_every_data_module_predicts_the_same_batches(tiny_tokenizer_dir, tmp_path, make):
    """Predict touches no training data (the train paths do not exist), batches rows in order with
    eval_batch_size, left-pads, and keeps the last max_prompt_length tokens of a longer prompt."""
    src = write(tmp_path / "p.jsonl", [{"prompt": f"Explain gravity {i}. " * (1 + 5 * i), "id": i} for i in range(3)])
    dm = make(str(tiny_tokenizer_dir), src)
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert [b["id"] for b in batches] == [[0, 1], [2]]
    first = batches[0]
    assert first["input_ids"].shape == (2, 4) and first["attention_mask"].tolist() == [[1, 1, 1, 1]] * 2
    tok = load_tokenizer(str(tiny_tokenizer_dir))
    assert first["input_ids"][1].tolist() == tok(first["text"][1], add_special_tokens=False)["input_ids"][-4:]
