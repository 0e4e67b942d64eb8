"""The committed demo tokenizer: reproducible, lossless on Chinese, ChatML template as documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_lightning.demo.tokenizer import SPECIAL_TOKENS, demo_texts, train_tokenizer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "configs" / "demo" / "data"
TOKENIZER = ROOT / "configs" / "demo" / "tokenizer"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER)


def test_retraining_gives_the_committed_files(tmp_path):
    out = train_tokenizer(demo_texts(DATA), tmp_path / "tok")
    fresh = sorted(p.name for p in out.iterdir())
    assert fresh == sorted(p.name for p in TOKENIZER.iterdir())
    for name in fresh:
        assert (out / name).read_bytes() == (TOKENIZER / name).read_bytes(), (
            f"{name} differs from a fresh run: regenerate with `python -m rlhf_lightning.demo` and commit"
        )


@pytest.mark.parametrize("text", [
    "写一首关于春天的诗",
    "春风拂面，百花齐放，燕子呢喃，绿意盎然。",
    "Translate into Chinese: I like the warm wind. 我喜欢暖风。",
    "龘 never seen: ünïcödé, emoji 🌙, tabs\tand\nnewlines  double  spaces",
])
def test_round_trip(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_special_tokens(tok):
    assert tok.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS)))) == SPECIAL_TOKENS
    assert (tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token) == ("<pad>", "<s>", "</s>", "<unk>")
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert len(tok) == 2048
    assert tok("hello", add_special_tokens=True)["input_ids"] == tok("hello", add_special_tokens=False)["input_ids"]


def test_chat_template_renders_chatml(tok):
    messages = [
        {"role": "system", "content": "你是一个乐于助人的助手。"},
        {"role": "user", "content": "写一首关于春天的诗"},
        {"role": "assistant", "content": "春风拂面，百花齐放。"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<s><|im_start|>system\n你是一个乐于助人的助手。<|im_end|>\n"
        "<|im_start|>user\n写一首关于春天的诗<|im_end|>\n"
        "<|im_start|>assistant\n春风拂面，百花齐放。<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True)
    assert prompt == "<s><|im_start|>user\n写一首关于春天的诗<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert ids[:2] == [tok.bos_token_id, start] and ids.count(start) == 2 and ids.count(end) == 1


def test_chinese_is_not_absurdly_long(tok):
    with open(DATA / "sft_val.jsonl", encoding="utf-8") as f:
        zh = [r["response"] for r in map(json.loads, f) if "\u4e00" <= r["response"][0] <= "\u9fff"]
    chars = sum(map(len, zh))
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in zh)
    assert tokens < 0.9 * chars  # byte-level would be 3 tokens per character without merges
