"""Sampled completions of a prompt batch, and the one forward pass that scores their tokens (no Lightning).

Shapes: ``B`` prompts, ``n`` samples per prompt, ``N = B·n`` samples, ``P`` the (left-padded) prompt
width, ``C`` the completion width. Used by the online-RL stage (:mod:`rlhf_lightning.modules.ppo`),
``evaluate`` and ``sample``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from rlhf_lightning.algorithms.shaping import last_token_index
from rlhf_lightning.losses.logprobs import token_logps
from rlhf_lightning.rollout.generation import GenerationSpec, generate, stop_token_ids

#: batch keys that are not dataset columns for the plugins
NOT_COLUMNS = ("text", "prompt", "input_ids", "attention_mask")


@dataclass
class Rollout:
    """Sampled completions of one prompt batch: token ids, masks and texts."""

    input_ids: Tensor        # (N, P + C) prompt + completion
    attention_mask: Tensor   # (N, P + C)
    position_ids: Tensor     # (N, P + C)
    prompt_width: int        # P
    completion_ids: Tensor   # (N, C)
    mask: Tensor             # (N, C) bool: real completion tokens (EOS included)
    finished: Tensor         # (N,) bool: ended with EOS or a stop string
    group_ids: Tensor        # (N,) the prompt each sample answers
    prompts: list[str]       # (N,) raw prompts, repeated n times
    completions: list[str]   # (N,) decoded completions
    columns: dict[str, list] = field(default_factory=dict)  # other dataset columns, repeated n times

    def __len__(self) -> int:
        return self.completion_ids.shape[0]


def position_ids_of(attention_mask: Tensor) -> Tensor:
    """Positions counted from each row's first real token (what ``generate`` uses with left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def completion_mask(completion_ids: Tensor, stop_ids: Sequence[int], pad_id: Optional[int]) -> tuple[Tensor, Tensor]:
    """Which completion tokens are real, and which completions finished.

    A completion ends at its first stop (EOS / end-of-turn) token, included; generation pads
    after it. A completion cut by a stop string ends with pad tokens instead (when the pad token is
    not a stop token). Returns ``mask`` ``(N, C)`` bool and ``finished`` ``(N,)`` bool.
    """
    stops = torch.tensor(list(stop_ids), device=completion_ids.device, dtype=completion_ids.dtype)
    is_stop = torch.isin(completion_ids, stops)
    after_stop = (is_stop.long().cumsum(-1) - is_stop.long()) > 0
    mask = ~after_stop
    finished = is_stop.any(-1)
    if pad_id is not None and pad_id not in stop_ids:
        last_real = last_token_index(completion_ids != pad_id)
        positions = torch.arange(completion_ids.shape[1], device=completion_ids.device)
        mask &= positions[None, :] <= last_real[:, None]
        finished |= last_real < completion_ids.shape[1] - 1
    return mask, finished


def plugin_columns(batch: dict[str, Any], n: int) -> dict[str, list]:
    """The batch's dataset columns (lists), each value repeated for the ``n`` samples of its prompt."""
    return {k: [x for x in v for _ in range(n)] for k, v in batch.items()
            if k not in NOT_COLUMNS and isinstance(v, list)}


@torch.no_grad()
def sample(model, tokenizer, batch: dict[str, Any], spec: GenerationSpec) -> Rollout:
    """Generate ``spec.num_return_sequences`` completions per prompt (KV cache, left padding)."""
    prompt_ids, prompt_mask = batch["input_ids"], batch["attention_mask"]
    n = spec.num_return_sequences
    completion_ids, texts = generate(model, tokenizer, prompt_ids, prompt_mask, spec)
    mask, finished = completion_mask(completion_ids, stop_token_ids(tokenizer, model), tokenizer.pad_token_id)
    prompt_ids = prompt_ids.repeat_interleave(n, dim=0)
    prompt_mask = prompt_mask.repeat_interleave(n, dim=0)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, mask.to(prompt_mask.dtype)], dim=1)
    raw = batch.get("prompt") or batch.get("text")
    return Rollout(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids_of(attention_mask),
        prompt_width=prompt_ids.shape[1], completion_ids=completion_ids, mask=mask, finished=finished,
        group_ids=torch.arange(len(raw), device=input_ids.device).repeat_interleave(n),
        prompts=[p for p in raw for _ in range(n)], completions=list(texts), columns=plugin_columns(batch, n),
    )


def forward_completion(model, rollout: Rollout, rows: Optional[Tensor] = None, *, temperature: float = 1.0,
                       hidden: bool = False) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """One forward pass over prompt + completion: per-token log-probs of the completion tokens.

    Only the ``C + 1`` last positions get logits (``logits_to_keep``), the ones that predict the
    completion. Returns ``(logps (n, C), logits (n, C, V), hidden (n, C, H) or None)``.
    """
    idx = slice(None) if rows is None else rows
    c = rollout.completion_ids.shape[1]
    out = model(input_ids=rollout.input_ids[idx], attention_mask=rollout.attention_mask[idx],
                position_ids=rollout.position_ids[idx], use_cache=False, logits_to_keep=c + 1,
                output_hidden_states=hidden)
    logits = out.logits[:, :-1]
    logps = token_logps(logits, rollout.completion_ids[idx], temperature)
    h = out.hidden_states[-1][:, rollout.prompt_width - 1:-1] if hidden else None
    return logps, logits, h
