"""Prompt rows for generation: rendering, left padding, BOS convention shared with training."""

import pytest
from transformers import AutoTokenizer

from rlhf_lightning.data.encoding import encode
from rlhf_lightning.data.prompts import PromptCollator, prompt_messages, render_prompt
from rlhf_lightning.errors import DataError
from tests import tiny


def test_chat_prompt_is_a_prefix_of_the_training_text(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    text = render_prompt(tok, "写一首关于春天的诗")
    batch = PromptCollator(tok)([{"text": text}])
    train = encode({"prompt": "写一首关于春天的诗", "response": "春风"}, "prompt_response", tok)
    n = batch["input_ids"].shape[1]
    assert batch["input_ids"][0].tolist() == train["input_ids"][:n]


def test_plain_prompt_gets_bos_like_training(tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny.build_tokenizer(tmp_path / "t", chat_template=False))
    batch = PromptCollator(tok)([{"text": render_prompt(tok, "Explain gravity.")}])
    train = encode({"prompt": "Explain gravity.", "response": " It pulls."}, "prompt_response", tok)
    assert batch["input_ids"][0, 0].item() == tok.bos_token_id == train["input_ids"][0]


def test_left_padding_and_passthrough(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    rows = [{"text": render_prompt(tok, "hi"), "id": 0}, {"text": render_prompt(tok, "a much longer prompt here"), "id": 1}]
    batch = PromptCollator(tok)(rows)
    assert batch["id"] == [0, 1]
    short = batch["attention_mask"][0]
    assert short[0] == 0 and short[-1] == 1  # padding on the left
    assert (batch["input_ids"][0][short == 0] == tok.pad_token_id).all()
    assert PromptCollator(tok, max_prompt_length=3)(rows)["input_ids"].shape[1] == 3


def test_prompt_messages_validation():
    assert prompt_messages({"prompt": "x"}, source="f", index=0) == "x"
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert prompt_messages({"messages": msgs}, source="f", index=0) == msgs[:1]
    with pytest.raises(DataError, match="f row index 2: field 'prompt' is empty"):
        prompt_messages({"prompt": " "}, source="f", index=2)
    with pytest.raises(DataError, match="row index 1: field 'prompt' is a int"):
        prompt_messages({"prompt": 3}, source="f", index=1)
