"""Batched rollout generation: stop tokens, and ``min_new_tokens`` forcing fixed-length completions."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf_lightning.modules.ppo_rollout import completion_mask
from rlhf_lightning.rollout.generation import GenerationSpec, _stop_token_ids, generate


def _eos_loving_model(model_dir, stop_id: int):
    """The tiny Llama with an LM-head bias of +20 on one stop token: greedy decoding emits it first."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    head = model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[stop_id] = 20.0
    model.lm_head = biased
    return model


def _prompts(tokenizer):
    tokenizer.padding_side = "left"
    enc = tokenizer(["hello there", "a longer prompt than the first one"], return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def test_generate_kwargs_pass_min_new_tokens_only_when_set(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert "min_new_tokens" not in GenerationSpec(max_new_tokens=8).generate_kwargs(tok)
    assert GenerationSpec(max_new_tokens=8, min_new_tokens=8).generate_kwargs(tok)["min_new_tokens"] == 8


def test_min_new_tokens_suppresses_every_stop_token(tiny_llama_dir):
    """Without it the biased model stops at once (1 real token); with it every row has all 6 tokens, no stop."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    stops = _stop_token_ids(tok)
    assert len(stops) >= 2  # EOS and ChatML's <|im_end|>: both must be suppressed
    model = _eos_loving_model(tiny_llama_dir, stops[-1])
    ids, mask = _prompts(tok)

    free, _ = generate(model, tok, ids, mask, GenerationSpec(max_new_tokens=6))
    m, finished = completion_mask(free, stops, tok.pad_token_id)
    assert finished.all() and m.sum(-1).tolist() == [1, 1]

    fixed, _ = generate(model, tok, ids, mask, GenerationSpec(max_new_tokens=6, min_new_tokens=6))
    m, finished = completion_mask(fixed, stops, tok.pad_token_id)
    assert fixed.shape == (2, 6)
    assert not finished.any() and m.sum(-1).tolist() == [6, 6]
    assert not torch.isin(fixed, torch.tensor(stops)).any()
