"""Rendering and encoding: exact label masks for every format, with and without a chat template.

The masks are checked by decoding: the trained tokens of each contiguous run must decode to exactly one
assistant answer plus the template's end of turn (``<|im_end|>\\n`` in the tiny ChatML template), and the
untrained tokens must decode to everything else (system, user, the template's headers).
"""

from __future__ import annotations

import datasets
import pytest
from transformers import AutoTokenizer

from rlhf_lightning.data.encoding import EncodeStats, encode, encode_dataset, render
from rlhf_lightning.errors import ConfigError, DataError
from tests import tiny

END = "<|im_end|>\n"


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def plain_tok(tmp_path_factory):
    return AutoTokenizer.from_pretrained(tiny.build_tokenizer(tmp_path_factory.mktemp("plain"), chat_template=False))


def trained_runs(tokenizer, enc):
    """Decoded contiguous runs of trained tokens, and the decoded untrained tokens."""
    runs, current, untrained = [], [], []
    for token, label in zip(enc["input_ids"], enc["labels"], strict=True):
        if label == -100:
            untrained.append(token)
            if current:
                runs.append(current)
                current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs], tokenizer.decode(untrained)


MULTI_TURN = {
    "messages": [
        {"role": "system", "content": "You are a poet."},
        {"role": "user", "content": "写一首关于春天的诗"},
        {"role": "assistant", "content": "春风拂面，百花齐放。"},
        {"role": "user", "content": "Now in English."},
        {"role": "assistant", "content": "Spring wind brings flowers."},
    ]
}


def test_multi_turn_messages_train_every_assistant_turn_only(tok):
    enc = encode(MULTI_TURN, "messages", tok)
    runs, untrained = trained_runs(tok, enc)
    assert runs == ["春风拂面，百花齐放。" + END, "Spring wind brings flowers." + END]
    assert untrained == (
        "<s><|im_start|>system\nYou are a poet.<|im_end|>\n<|im_start|>user\n写一首关于春天的诗<|im_end|>\n"
        "<|im_start|>assistant\n<|im_start|>user\nNow in English.<|im_end|>\n<|im_start|>assistant\n"
    )
    # the whole sequence is the template's rendering, tokenized once, with no BOS/EOS added
    assert tok.decode(enc["input_ids"]) == tok.apply_chat_template(MULTI_TURN["messages"], tokenize=False)
    assert enc["input_ids"][0] == tok.bos_token_id and enc["input_ids"].count(tok.bos_token_id) == 1
    assert tok.eos_token_id not in enc["input_ids"]


def test_render_spans_are_the_assistant_turns(tok):
    text, spans = render(MULTI_TURN, "messages", tok, loss_on="completion")
    assert [text[a:b] for a, b in spans] == ["春风拂面，百花齐放。" + END, "Spring wind brings flowers." + END]


@pytest.mark.parametrize(
    "row,fmt,prompt,answer",
    [
        ({"prompt": "写一首关于春天的诗", "response": "春风拂面，绿意盎然。"}, "prompt_response", "写一首关于春天的诗", "春风拂面，绿意盎然。"),
        ({"prompt": "Explain gravity.", "completion": "Gravity pulls."}, "prompt_completion", "Explain gravity.", "Gravity pulls."),
        ({"instruction": "Translate to French:", "input": "good morning", "output": "Bonjour."}, "alpaca",
         "Translate to French:\n\ngood morning", "Bonjour."),
        ({"instruction": "Explain gravity.", "input": "", "output": "It pulls."}, "alpaca", "Explain gravity.", "It pulls."),
    ],
)
def test_pair_formats_with_chat_template(tok, row, fmt, prompt, answer):
    runs, untrained = trained_runs(tok, encode(row, fmt, tok))
    assert runs == [answer + END]
    assert untrained == f"<s><|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    "row,fmt,prompt,answer",
    [
        ({"prompt": "Explain gravity.", "response": " Gravity pulls."}, "prompt_response", "Explain gravity.", " Gravity pulls."),
        ({"prompt": "写一首诗：", "completion": "春风拂面"}, "prompt_completion", "写一首诗：", "春风拂面"),
        ({"instruction": "Translate:", "input": "good morning", "output": " Bonjour."}, "alpaca", "Translate:\n\ngood morning", " Bonjour."),
    ],
)
def test_pair_formats_without_chat_template(plain_tok, row, fmt, prompt, answer):
    enc = encode(row, fmt, plain_tok)
    ids = enc["input_ids"]
    assert ids[0] == plain_tok.bos_token_id and ids[-1] == plain_tok.eos_token_id
    assert ids[1:-1] == plain_tok(prompt + answer, add_special_tokens=False)["input_ids"]
    runs, untrained = trained_runs(plain_tok, enc)
    assert runs == [answer + "</s>"]  # the EOS is trained: the model learns to stop
    assert untrained == "<s>" + prompt


def test_messages_without_chat_template_is_a_config_error(plain_tok):
    with pytest.raises(ConfigError, match="no chat template; the messages format needs one"):
        encode(MULTI_TURN, "messages", plain_tok)


@pytest.mark.parametrize("use_template_tok", [True, False])
def test_text_format_trains_everything(tok, plain_tok, use_template_tok):
    tokenizer = tok if use_template_tok else plain_tok
    enc = encode({"text": "春风拂面，百花齐放。Spring wind."}, "text", tokenizer)
    # every token is a target; labels[0] (the BOS) is never one after the causal shift
    assert enc["labels"] == [-100] + enc["input_ids"][1:]
    assert tokenizer.decode(enc["input_ids"]) == "<s>春风拂面，百花齐放。Spring wind.</s>"


def test_loss_on_all(tok, plain_tok):
    enc = encode(MULTI_TURN, "messages", tok, loss_on="all")
    assert enc["labels"] == enc["input_ids"]
    enc = encode({"prompt": "Explain gravity.", "response": " It pulls."}, "prompt_response", plain_tok, loss_on="all")
    assert enc["labels"] == enc["input_ids"]


def test_use_chat_template_false_ignores_the_template(tok):
    enc = encode({"prompt": "Explain gravity.", "response": " It pulls."}, "prompt_response", tok, use_chat_template=False)
    runs, untrained = trained_runs(tok, enc)
    assert runs == [" It pulls.</s>"] and untrained == "<s>Explain gravity."


def test_prefix_unstable_template_is_a_config_error(tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    # Renders the last message differently from earlier ones, so a prefix is not a prefix of the whole.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if loop.last %}[last]{% endif %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    with pytest.raises(ConfigError, match="not prefix-stable"):
        encode({"prompt": "a", "response": "b"}, "prompt_response", tokenizer)


def test_template_raising_is_a_data_error(tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tokenizer.chat_template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(DataError, match="roles must alternate"):
        encode({"prompt": "a", "response": "b"}, "prompt_response", tokenizer)


# ---------------------------------------------------------------- encode_dataset: truncation and counts


def _pairs(tok, n_short=3):
    rows = [{"prompt": "Explain gravity.", "response": "Gravity pulls."} for _ in range(n_short)]
    rows.append({"prompt": "Explain gravity.", "response": "Gravity pulls objects toward each other. " * 4})
    rows.append({"prompt": "Explain gravity. " * 10, "response": "It pulls."})  # prompt alone is too long
    return datasets.Dataset.from_list(rows)


def _lengths(ds, tok):
    return [len(encode(r, "prompt_response", tok)["input_ids"]) for r in ds]


def test_truncate_counts_and_no_target(tok):
    ds = _pairs(tok)
    lengths = _lengths(ds, tok)
    max_length = 40
    assert lengths[0] < max_length < lengths[3] and lengths[4] > max_length
    prompt_len_4 = len(tok.apply_chat_template(
        [{"role": "user", "content": ds[4]["prompt"]}], tokenize=False, add_generation_prompt=True))
    assert prompt_len_4 > max_length  # no trained token survives truncation of row 4 (a byte-level BPE: tokens <= chars)
    out, stats = encode_dataset(ds, "prompt_response", tok, max_length=max_length, source="qa.csv")
    assert (stats.total, stats.kept, stats.truncated, stats.dropped_too_long, stats.dropped_no_target) == (5, 4, 1, 0, 1)
    assert out.column_names == ["input_ids", "labels"]
    assert [len(x) for x in out["input_ids"]] == lengths[:3] + [max_length]
    assert list(out["input_ids"])[0] == encode(ds[0], "prompt_response", tok)["input_ids"]
    assert "4/5 rows kept (1 truncated to 40 tokens)" in stats.summary()


def test_drop_counts(tok):
    ds = _pairs(tok)
    out, stats = encode_dataset(ds, "prompt_response", tok, max_length=40, truncation="drop", source="qa.csv")
    assert stats == EncodeStats(total=5, kept=3, truncated=0, dropped_too_long=2, dropped_no_target=0, max_length=40)
    assert len(out) == 3


def test_error_names_row_length_and_limit(tok):
    ds = _pairs(tok)
    length = _lengths(ds, tok)[3]
    with pytest.raises(DataError) as err:
        encode_dataset(ds, "prompt_response", tok, max_length=40, truncation="error", source="qa.csv")
    message = str(err.value)
    assert message.startswith("qa.csv row index 3: ") and f"{length} tokens" in message and "max_length=40" in message


def test_invalid_row_is_reported_with_its_index(tok):
    ds = datasets.Dataset.from_list([
        {"prompt": "a", "response": "b"}, {"prompt": "a", "response": ""}, {"prompt": "", "response": "b"}])
    with pytest.raises(DataError, match=r"^train.csv row index 1: field 'response' is empty \(and 1 more invalid rows\)"):
        encode_dataset(ds, "prompt_response", tok, max_length=64, source="train.csv")


def test_non_string_field_is_reported(tok):
    ds = datasets.Dataset.from_list([{"text": "hello"}, {"text": None}])
    with pytest.raises(DataError, match=r"^c.jsonl row index 1: field 'text'"):
        encode_dataset(ds, "text", tok, max_length=64, source="c.jsonl")


def test_nothing_kept_says_why(tok):
    ds = _pairs(tok, n_short=0).select([0])
    with pytest.raises(DataError, match=r"no rows left after encoding: 0/1 rows kept .* dropped 1 longer"):
        encode_dataset(ds, "prompt_response", tok, max_length=10, truncation="drop", source="qa.csv")


def test_declared_format_missing_column(tok):
    ds = datasets.Dataset.from_list([{"prompt": "a", "answer": "b"}])
    with pytest.raises(DataError, match="needs column 'response'"):
        encode_dataset(ds, "prompt_response", tok, max_length=64, source="qa.csv")


def test_encode_dataset_multi_turn_and_chinese_text(tok):
    ds = datasets.Dataset.from_list([MULTI_TURN, MULTI_TURN])
    out, stats = encode_dataset(ds, "messages", tok, max_length=256, source="chat.jsonl")
    assert stats.kept == 2 and out[0] == encode(MULTI_TURN, "messages", tok)
    ds = datasets.Dataset.from_list([{"text": "春风拂面，百花齐放。"}])
    out, _ = encode_dataset(ds, "text", tok, max_length=256, source="zh.txt")
    assert tok.decode(out[0]["input_ids"]) == "<s>春风拂面，百花齐放。</s>"


def test_encode_dataset_num_proc_matches(tok):
    ds = _pairs(tok)
    serial, s1 = encode_dataset(ds, "prompt_response", tok, max_length=40, source="qa.csv")
    parallel, s2 = encode_dataset(ds, "prompt_response", tok, max_length=40, source="qa.csv", num_proc=2)
    assert s1 == s2 and serial.to_list() == parallel.to_list()
