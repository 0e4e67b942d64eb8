"""Batched generation from left-padded prompts (no Lightning): SFT's ``predict`` and RL rollouts.

Decoder-only models need left padding so every prompt ends at the same column and new tokens are
appended right after it; the KV cache is on (``use_cache=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import torch

from rlhf_lightning.option_checks import at_least, in_range, non_negative, positive, require
from rlhf_lightning.rollout import onednn


@dataclass
class GenerationSpec:
    """Sampling options (``do_sample=False`` is greedy decoding).

    ``min_new_tokens``: stop tokens are suppressed until a completion has this many tokens
    (0: off); ``min_new_tokens = max_new_tokens`` gives fixed-length completions (benchmarks).
    ``onednn``: run the model's fp32 ``nn.Linear`` layers through oneDNN while it generates (``false``,
    the default: stock kernels, measured faster end to end; ``true``; ``auto``: where a one-time GEMM
    probe finds oneDNN faster), see :mod:`rlhf_lightning.rollout.onednn`.
    """

    max_new_tokens: int = 64
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    num_return_sequences: int = 1
    stop_strings: list[str] = field(default_factory=list)
    onednn: Union[bool, Literal["auto"]] = False

    def __post_init__(self) -> None:
        require(self, "onednn", onednn.valid(self.onednn), "must be true, false or auto", self.onednn)
        at_least(self, "max_new_tokens", self.max_new_tokens, 1)
        require(self, "min_new_tokens", 0 <= self.min_new_tokens <= self.max_new_tokens,
                f"must be in [0, max_new_tokens ({self.max_new_tokens})]", self.min_new_tokens)
        if self.do_sample:  # greedy decoding ignores the sampling knobs
            positive(self, "temperature", self.temperature)
            in_range(self, "top_p", self.top_p, 0.0, 1.0, low_open=True)
        non_negative(self, "top_k", self.top_k)
        positive(self, "repetition_penalty", self.repetition_penalty)
        at_least(self, "num_return_sequences", self.num_return_sequences, 1)

    def generate_kwargs(self, tokenizer, model=None) -> dict:
        """Keyword arguments of ``model.generate``; the stop ids are :func:`stop_token_ids`
        (``eos_token_id`` replaces the model's own generation config, so its ids are included)."""
        kwargs = dict(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            num_return_sequences=self.num_return_sequences,
            repetition_penalty=self.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stop_token_ids(tokenizer, model),
            use_cache=True,
        )
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:  # silence transformers' warnings about sampling knobs that greedy decoding ignores
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.min_new_tokens:
            kwargs.update(min_new_tokens=self.min_new_tokens)
        if self.stop_strings:
            kwargs.update(stop_strings=list(self.stop_strings), tokenizer=tokenizer)
        return kwargs


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """The ids that end a completion: the tokenizer's EOS, the model's own end-of-sequence ids
    (``generation_config.eos_token_id``, an int or a list, e.g. Llama-3.1's ``<|eot_id|>`` and
    ``<|eom_id|>``), and a chat template's end-of-turn token (``<|im_end|>``, ``<|eot_id|>``,
    ``<end_of_turn>``) when the tokenizer has one; each once, in that order."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for tid in _model_eos_ids(model):
        if tid not in ids:
            ids.append(tid)
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


def _model_eos_ids(model) -> list[int]:
    """``model.generation_config.eos_token_id`` (else ``model.config``'s) as a list of ints."""
    if model is None:
        return []
    for holder in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        eos = getattr(holder, "eos_token_id", None)
        if eos is not None:
            return [int(t) for t in (eos if isinstance(eos, (list, tuple)) else [eos])]
    return []


@torch.no_grad()
def generate(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             spec: GenerationSpec) -> tuple[torch.Tensor, list[str]]:
    """Generate completions for a left-padded prompt batch.

    Args:
        input_ids, attention_mask: ``(B, P)`` left-padded prompts.
    Returns:
        ``completion_ids`` ``(B * n, C)`` — the new tokens only, padded with the pad id after EOS —
        and their decoded texts (special tokens removed, stop strings cut off).
    """
    was_training = model.training
    model.eval()
    try:
        kwargs = spec.generate_kwargs(tokenizer, model)
        if _needs_sync(model):  # sharded weights: every rank must run as many forwards as the longest
            kwargs["synced_gpus"] = True
        with onednn.routed(model, spec.onednn):
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    finally:
        model.train(was_training)
    completion_ids = out[:, input_ids.shape[1]:]
    texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    texts = [_cut_at_stop(t, spec.stop_strings) for t in texts]
    return completion_ids, texts


def _needs_sync(model) -> bool:
    """True for a model sharded over several processes (FSDP2): each decoding step gathers weights,
    a collective, so a rank whose sequences are finished keeps stepping until all ranks are."""
    import torch.distributed as dist

    from rlhf_lightning.models.sharding import is_sharded

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    first = next(iter(model.parameters()), None)
    return is_sharded(model) or hasattr(first, "ds_id")  # FSDP2, or DeepSpeed ZeRO-3 partitioned weights


def _cut_at_stop(text: str, stop_strings: list[str]) -> str:
    cut: Optional[int] = None
    for s in stop_strings:
        i = text.find(s)
        if i >= 0 and (cut is None or i < cut):
            cut = i
    return text if cut is None else text[:cut]
