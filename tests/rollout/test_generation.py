"""Batched rollout generation: stop tokens, and ``min_new_tokens`` forcing fixed-length completions."""

from __future__ import annotations

import re

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf_lightning.rollout import samples as ro
from rlhf_lightning.rollout.generation import GenerationSpec, generate, stop_token_ids
from rlhf_lightning.rollout.samples import completion_mask


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
    stops = stop_token_ids(tok)
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


def test_stop_strings_end_generation_and_are_cut_from_the_text(tiny_llama_dir):
    """Greedy decoding twice: with a stop string taken from the free run's text, each row's text is the
    free text up to (not including) the stop string's first occurrence, and that row's decoding ends there."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids, mask = _prompts(tok)
    free_ids, free = generate(model, tok, ids, mask, GenerationSpec(max_new_tokens=24))
    # two ASCII letters after the first characters (a random model also emits partial UTF-8 bytes)
    found = [re.search(r"[a-z]{2}", t[2:]) for t in free]
    stop = next((m.group(0) for m in found if m), None)
    assert stop, f"the random model produced too little text to pick a stop string from: {free!r}"
    cut_ids, cut = generate(model, tok, ids, mask, GenerationSpec(max_new_tokens=24, stop_strings=[stop]))
    assert cut == [t[:t.find(stop)] if stop in t else t for t in free]
    row = next(i for i, t in enumerate(free) if stop in t)
    real = lambda x: int((x != tok.pad_token_id).sum())  # noqa: E731 - new tokens before the padding
    assert real(cut_ids[row]) < real(free_ids[row]), "that row's decoding must end at the stop string"


def _unused_token(tok) -> int:
    """An ordinary token that is no stop token of the tokenizer (a word of the tiny corpus)."""
    tid = tok.convert_tokens_to_ids("hello")
    if not isinstance(tid, int) or tid == tok.unk_token_id:
        tid = tok("hello", add_special_tokens=False)["input_ids"][0]
    assert tid not in stop_token_ids(tok)
    return tid


def test_stop_ids_include_the_models_own_eos_ids(tiny_llama_dir):
    """A generation config with a list of EOS ids (Llama-3.1: ``<|end_of_text|>``, ``<|eom_id|>``,
    ``<|eot_id|>``) adds each of them, after the tokenizer's EOS and before the chat's end-of-turn."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    extra = _unused_token(tok)
    model.generation_config.eos_token_id = [tok.eos_token_id, extra]
    ids = stop_token_ids(tok, model)
    assert ids[0] == tok.eos_token_id and extra in ids and set(stop_token_ids(tok)) < set(ids)
    assert len(ids) == len(set(ids))
    model.generation_config.eos_token_id = extra  # a single int
    assert extra in stop_token_ids(tok, model)


def test_generation_and_rollouts_stop_on_the_models_eos_id(tiny_llama_dir):
    """The model always emits a token its generation config lists as EOS (but the tokenizer does not):
    before the fix generation ran to max_new_tokens (the fixed stop list replaced the model's own);
    now every completion is that one token, and the rollout marks it finished."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    extra = _unused_token(tok)
    model = _eos_loving_model(tiny_llama_dir, extra)
    model.generation_config.eos_token_id = [tok.eos_token_id, extra]
    ids, mask = _prompts(tok)
    completion_ids, _ = generate(model, tok, ids, mask, GenerationSpec(max_new_tokens=6))
    assert completion_ids.shape[1] == 1 and (completion_ids[:, 0] == extra).all()
    r = ro.sample(model, tok, {"input_ids": ids, "attention_mask": mask, "prompt": ["a", "b"]},
                  GenerationSpec(max_new_tokens=6))
    assert r.finished.all() and r.mask.sum(-1).tolist() == [1, 1]
