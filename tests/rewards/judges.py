"""Judges for the judge-reward tests: a tiny local model whose next token is fixed by its output bias,
and an OpenAI-compatible chat-completions behaviour for the loopback server of ``judge_server.py``.

The local judge is a 1-layer ``PhiForCausalLM`` (its ``lm_head`` has a bias) whose final LayerNorm
has weight and bias 0: every hidden state becomes 0 there, so the logits at every position are the
``lm_head`` bias alone, ``logits[v] = b_v``. Setting ``b`` = ``LOW`` everywhere except a few tokens
makes the next-token distribution known in advance, whatever the input:
``p(v) = exp(b_v) / Σ_u exp(b_u)`` over the tokens whose bias is not ``LOW`` (``exp(LOW)`` is 0 in float32).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from tests.rewards.judge_server import send

LOW = -1e4


def build_judge_model(path: str | Path, tokenizer_dir: str | Path, logits: dict[str, float]) -> Path:
    """Save a tiny Phi folder (with the tokenizer) whose next token has logit ``logits[text]`` for the
    first token of each ``text`` and ``LOW`` for every other token."""
    import torch
    from transformers import AutoTokenizer, PhiConfig, PhiForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = PhiConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = PhiForCausalLM(config)
    with torch.no_grad():
        model.model.final_layernorm.weight.zero_()
        model.model.final_layernorm.bias.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.bias.fill_(LOW)
        for text, logit in logits.items():
            model.lm_head.bias[first_token(tokenizer, text)] = logit
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def first_token(tokenizer, text: str) -> int:
    return tokenizer.encode(text, add_special_tokens=False)[0]


def user_text(body: dict) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def between(text: str, start: str, end: str) -> str:
    """The text between two rubric markers (the judged answers)."""
    return re.search(re.escape(start) + r"\n(.*?)\n\n" + re.escape(end), text, flags=re.DOTALL).group(1)


def chat_behaviour(answer: Callable[[dict], str | None], path: str = "/v1/chat/completions"):
    """A ``behave`` for :class:`~tests.rewards.judge_server.Judge`: answers a chat-completions request to
    ``path`` with ``{"choices": [{"message": {"role": "assistant", "content": answer(body)}}]}``."""

    def behave(handler, n: int, body: bytes) -> bool:
        if handler.path != path:
            send(handler, 404, b'{"error": "not found"}')
            return True
        content = answer(json.loads(body))
        payload = {"id": f"c{n}", "object": "chat.completion",
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content}}]}
        send(handler, 200, json.dumps(payload).encode())
        return True

    return behave


def length_rater(body: dict) -> str:
    """Pointwise: rates an answer with its length in characters, capped at 10 (default rubric markers)."""
    return str(min(10, len(between(user_text(body), "[Answer]", "Reply"))))


def longer_wins(body: dict) -> str:
    """Pairwise: the longer answer wins; a tie goes to the first shown (a position bias)."""
    text = user_text(body)
    first, second = between(text, "[Answer A]", "[Answer B]"), between(text, "[Answer B]", "Reply")
    return "B" if len(second) > len(first) else "A"
