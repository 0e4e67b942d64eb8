"""Comparison rows: every layout normalised, bad rows named, tokens masked exactly, one-batch collation."""

import math

import pytest
from transformers import AutoTokenizer

from rlhf_lightning.data.comparison_batches import ComparisonCollator, encode_comparisons, render_response
from rlhf_lightning.data.comparisons import detect_comparison_format, to_comparison
from rlhf_lightning.errors import DataError
from tests import tiny


def test_detection_order():
    assert detect_comparison_format(["prompt", "chosen", "rejected"], source="f") == "pairwise"
    assert detect_comparison_format(["chosen", "rejected"], source="f") == "implicit_pairwise"
    assert detect_comparison_format(["prompt", "responses", "ranking"], source="f") == "ranking"
    assert detect_comparison_format(["prompt", "response", "score"], source="f") == "scored"
    assert detect_comparison_format(["prompt", "response", "label"], source="f") == "binary"
    with pytest.raises(DataError, match=r"columns \[prompt, answer\]"):
        detect_comparison_format(["prompt", "answer"], source="f")


def test_pairwise_and_margin():
    c = to_comparison({"prompt": "p", "chosen": "good", "rejected": "bad", "margin": 2}, "pairwise", source="f", index=0)
    assert c == {"prompt": "p", "responses": ["good", "bad"], "scores": None, "margin": 2.0}


def test_conversational_pairwise():
    row = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}]}
    c = to_comparison(row, "pairwise", source="f", index=0)
    assert c["responses"][0] == [{"role": "assistant", "content": "a"}]


def test_implicit_prompt_hh_layout():
    row = {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello, how can I help?",
           "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."}
    c = to_comparison(row, "implicit_pairwise", source="f", index=0)
    assert c["prompt"] == "\n\nHuman: Hi there\n\nAssistant:"
    assert c["responses"] == [" Hello, how can I help?", " Go away."]


def test_ranking_from_indices_and_from_scores():
    row = {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]}
    assert to_comparison(row, "ranking", source="f", index=0)["responses"] == ["c", "a", "b"]
    row = {"prompt": "p", "responses": ["a", "b", "c"], "scores": [0.1, 0.9, 0.5]}
    c = to_comparison(row, "ranking", source="f", index=0)
    assert c["responses"] == ["b", "c", "a"] and c["scores"] == [0.9, 0.5, 0.1]


@pytest.mark.parametrize("row,fmt,message", [
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "pairwise", "chosen is identical to rejected"),
    ({"prompt": "p", "responses": ["a"], "ranking": [0]}, "ranking", "K >= 2"),
    ({"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 0, 2]}, "ranking", "not a permutation"),
    ({"prompt": "p", "responses": ["a", "b"], "scores": [1.0, float("nan")]}, "ranking", "must be finite"),
    ({"prompt": "p", "responses": ["a", "b"], "scores": [1.0, 1.0]}, "ranking", "tied scores"),
    ({"prompt": "p", "responses": ["a", "b"]}, "ranking", "needs 'ranking' or one score"),
    ({"prompt": "p", "response": "r", "score": None}, "scored", "'score' is missing"),
    ({"prompt": "p", "response": "r", "score": "high"}, "scored", "not a number"),
    ({"prompt": "p", "response": "r", "label": "maybe"}, "binary", "'label' must be"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, "pairwise", "'prompt' is empty"),
])
def test_bad_rows_name_the_row(row, fmt, message):
    with pytest.raises(DataError, match=f"prefs.jsonl row index 7: .*{message}"):
        to_comparison(row, fmt, source="prefs.jsonl", index=7)


def test_encoding_masks_exactly_the_response(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    comp = to_comparison({"prompt": "写一首诗", "chosen": "春风拂面", "rejected": "我不知道"}, "pairwise", source="f", index=0)
    rows, stats = encode_comparisons([comp], tok, max_length=64)
    assert stats.kept == 1
    for enc, answer in zip(rows[0]["responses"], ["春风拂面", "我不知道"], strict=True):
        trained = [t for t, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab != -100]
        assert tok.decode(trained) == answer + "<|im_end|>\n"
        prompt_part = tok.decode([t for t, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab == -100])
        assert prompt_part == "<s><|im_start|>user\n写一首诗<|im_end|>\n<|im_start|>assistant\n"


def test_plain_rendering_without_template(tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny.build_tokenizer(tmp_path / "t", chat_template=False))
    text, start, plain = render_response(tok, "Q: hi\nA:", " hello")
    assert (text, start, plain) == ("Q: hi\nA: hello", 8, True)
    rows, _ = encode_comparisons([{"prompt": "Q: hi\nA:", "responses": [" hello", " bye"]}], tok, max_length=64)
    enc = rows[0]["responses"][0]
    assert enc["input_ids"][0] == tok.bos_token_id and enc["input_ids"][-1] == tok.eos_token_id
    assert enc["labels"][-1] == tok.eos_token_id and enc["labels"][0] == -100


def test_truncation_policies(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    long_prompt = {"prompt": "gravity " * 40, "responses": ["yes", "no"]}
    short = {"prompt": "hi", "responses": ["hello there friend", "no"]}
    # budget: the short prompt's "hello there friend" answer is cut, "no" fits whole
    budget = len(encode_comparisons([short], tok, max_length=999)[0][0]["responses"][0]["input_ids"]) - 2
    rows, stats = encode_comparisons([long_prompt, short], tok, max_length=budget)
    assert (stats.kept, stats.dropped_no_target, stats.truncated) == (1, 1, 1)
    assert [len(r["input_ids"]) for r in rows[0]["responses"]][0] == budget
    rows, stats = encode_comparisons([long_prompt, short], tok, max_length=budget + 2, truncation="drop")
    assert (stats.kept, stats.dropped_too_long) == (1, 1)
    with pytest.raises(DataError, match="no comparisons left"):
        encode_comparisons([long_prompt], tok, max_length=budget)
    with pytest.raises(DataError, match=f"row index 0: .* longer than max_length={budget}"):
        encode_comparisons([long_prompt], tok, max_length=budget, truncation="error")


def test_collator_one_batch_for_all_responses(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    comps = [{"prompt": "a", "responses": ["x", "yy", "zzz"], "scores": [3.0, 2.0, 1.0]},
             {"prompt": "b", "responses": ["u", "v"], "margin": 0.5}]
    rows, _ = encode_comparisons(comps, tok, max_length=64)
    batch = ComparisonCollator(tok.pad_token_id)(rows)
    assert batch["input_ids"].shape[0] == 6  # B=2 x K=3
    assert batch["response_mask"].tolist() == [[True, True, True], [True, True, False]]
    assert batch["scores"][0].tolist() == [3.0, 2.0, 1.0] and all(math.isnan(x) for x in batch["scores"][1].tolist())
    assert batch["margins"].tolist() == [0.0, 0.5]
    assert (batch["labels"][5] == -100).all()  # the dummy row trains nothing
    assert batch["attention_mask"][0].sum() == len(rows[0]["responses"][0]["input_ids"])
