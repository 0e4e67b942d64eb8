"""Tokenise comparisons and collate them so all responses of a batch go through ONE forward pass.

A response is encoded as prompt + response; its ``labels`` keep the response tokens (and the
template's end-of-turn / EOS) and mask the prompt with ``-100``. The label mask is what DPO sums
log-probs over; a reward model reads the score at the last non-padding token (decoders) or the
pooled first token (encoders).

Two encodings, which differ only for tokenizers without a chat template: ``causal`` (DPO: one
text ``prompt + response`` between BOS and EOS, as a language model continues it) and
``classifier`` (reward models: the text pair ``(prompt, response)`` with the tokenizer's own
special tokens and segment ids, exactly as :mod:`rlhf_lightning.data.reward_inputs` encodes it for
the ``classifier`` reward plugin). With a chat template both render the conversation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rlhf_lightning.data.encoding import tokenize_spans
from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.losses.labels import IGNORE_INDEX

Truncation = Literal["truncate", "drop", "error"]
Encoding = Literal["causal", "classifier"]


def render_response(tokenizer: Any, prompt: str | list[dict], response: str | list[dict]) -> tuple[str, int, bool]:
    """``(text, response_start_char, plain)``: the prompt+response text and where the response starts.

    With a chat template: the prompt (a string becomes one user turn) rendered with the generation
    prompt, then the conversation with the response (a string becomes one assistant turn); the
    first must be a prefix of the second. Without one: ``prompt + response`` (``plain=True``: BOS
    and EOS are added at tokenisation).
    """
    if getattr(tokenizer, "chat_template", None):
        p_msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        r_msgs = response if isinstance(response, list) else [{"role": "assistant", "content": response}]
        head = tokenizer.apply_chat_template(p_msgs, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(p_msgs + r_msgs, tokenize=False)
        if not full.startswith(head):
            raise ConfigError("the tokenizer's chat template is not prefix-stable: the rendered prompt (with the "
                              "generation prompt) is not a prefix of prompt + response, so the response tokens "
                              "cannot be located")
        return full, len(head), False
    if isinstance(prompt, list) or isinstance(response, list):
        raise ConfigError("the tokenizer has no chat template, so conversational comparisons cannot be rendered")
    return prompt + response, len(prompt), True


@dataclass
class ComparisonStats:
    """What :func:`encode_comparisons` did (a comparison is dropped whole if any response is)."""

    total: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_no_target: int = 0
    max_length: int = 0

    def summary(self) -> str:
        return (f"{self.kept}/{self.total} comparisons kept ({self.truncated} with a response truncated to "
                f"{self.max_length} tokens); dropped {self.dropped_too_long} longer than {self.max_length} and "
                f"{self.dropped_no_target} whose prompt left no response token within {self.max_length}")


def encode_text_pair(tokenizer: Any, prompt: str, response: str, *, max_length: int | None = None) -> dict:
    """``{"input_ids", "labels"[, "token_type_ids"]}`` of the text pair (prompt, response), labels on the response.

    ``max_length`` truncates the longer of the two texts first (the tokenizer's ``longest_first``)
    and keeps the pair's special tokens.
    """
    from rlhf_lightning.data.reward_inputs import encode_reward_inputs

    trunc = {"truncation": "longest_first", "max_length": max_length} if max_length else {}
    enc = encode_reward_inputs(tokenizer, [prompt], [response], chat_template=False, **trunc)
    ids = list(enc["input_ids"][0])
    out = {"input_ids": ids, "labels": [t if s == 1 else IGNORE_INDEX for t, s in zip(ids, enc.sequence_ids(0), strict=True)]}
    if "token_type_ids" in enc:
        out["token_type_ids"] = list(enc["token_type_ids"][0])
    return out


def encode_comparisons(comparisons: Sequence[Mapping[str, Any]], tokenizer: Any, *, max_length: int,
                       truncation: Truncation = "truncate", source: str = "data",
                       indices: Sequence[int] | None = None,
                       encoding: Encoding = "causal") -> tuple[list[dict], ComparisonStats]:
    """Encode normalised comparisons (see :mod:`rlhf_lightning.data.comparisons`).

    Returns rows ``{"responses": [{"input_ids", "labels"[, "token_type_ids"]}, ...] (best first),
    "scores", "margin"}``. ``encoding``: ``causal`` or ``classifier`` (see the module docstring).
    ``truncate`` keeps the first ``max_length`` tokens of each response (a text pair shortens its
    longer text and keeps its special tokens); a response left with no trained token (a prompt
    longer than the budget) drops its comparison (counted as ``no_target``). ``drop`` drops
    over-long comparisons; ``error`` raises naming the row.
    """
    if truncation not in ("truncate", "drop", "error"):
        raise ConfigError(f"truncation must be 'truncate', 'drop' or 'error', got {truncation!r}")
    if encoding not in ("causal", "classifier"):
        raise ConfigError(f"encoding must be 'causal' or 'classifier', got {encoding!r}")
    text_pairs = encoding == "classifier" and not getattr(tokenizer, "chat_template", None)
    stats = ComparisonStats(total=len(comparisons), max_length=max_length)
    rows = []
    for n, comp in enumerate(comparisons):
        index = indices[n] if indices is not None else n
        encoded, status = [], "kept"
        for response in comp["responses"]:
            if text_pairs:
                if isinstance(comp["prompt"], list) or isinstance(response, list):
                    raise ConfigError(f"{source} row index {index}: the tokenizer has no chat template, so "
                                      "conversational comparisons cannot be rendered")
                enc = encode_text_pair(tokenizer, comp["prompt"], response)
            else:
                text, start, plain = render_response(tokenizer, comp["prompt"], response)
                enc = tokenize_spans(tokenizer, text, [(start, len(text))], add_bos_eos=plain)
            if len(enc["input_ids"]) > max_length:
                if truncation == "error":
                    raise DataError(f"{source} row index {index}: {len(enc['input_ids'])} tokens, longer than "
                                    f"max_length={max_length} (truncation='error'; use 'truncate' or 'drop')")
                if truncation == "drop":
                    status = "too_long"
                    break
                if text_pairs:
                    enc = encode_text_pair(tokenizer, comp["prompt"], response, max_length=max_length)
                else:
                    enc = {k: v[:max_length] for k, v in enc.items()}
                status = "truncated"
            if all(label == IGNORE_INDEX for label in enc["labels"][1:]):
                status = "no_target"
                break
            encoded.append(enc)
        if status == "too_long":
            stats.dropped_too_long += 1
        elif status == "no_target":
            stats.dropped_no_target += 1
        else:
            stats.truncated += status == "truncated"
            rows.append({"responses": encoded, "scores": comp.get("scores"), "margin": comp.get("margin")})
    stats.kept = len(rows)
    if not rows:
        raise DataError(f"{source}: no comparisons left after encoding: {stats.summary()}")
    return rows, stats


class ComparisonCollator:
    """Collate B comparisons with up to K responses into one right-padded ``(B * K, T)`` batch.

    Row ``b * K + k`` is response ``k`` (best first) of comparison ``b``; comparisons with fewer
    responses are filled with one-token dummy rows marked invalid in ``response_mask``.

    Returns ``input_ids``, ``attention_mask``, ``labels`` ``(B*K, T)`` (and ``token_type_ids``
    when the rows have them: text pairs); ``response_mask`` ``(B, K)`` bool; ``scores`` ``(B, K)``
    float (NaN where absent); ``margins`` ``(B,)`` (0 where absent).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        if pad_token_id is None:
            raise ValueError("pad_token_id is None; set a pad token on the tokenizer")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        k = max(len(r["responses"]) for r in rows)
        seqs, valid = [], []
        for r in rows:
            for j in range(k):
                if j < len(r["responses"]):
                    seqs.append(r["responses"][j])
                    valid.append(True)
                else:
                    seqs.append({"input_ids": [self.pad_token_id], "labels": [IGNORE_INDEX]})
                    valid.append(False)
        width = max(len(s["input_ids"]) for s in seqs)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        n = len(seqs)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        with_types = any("token_type_ids" in s for s in seqs)
        token_type_ids = torch.zeros((n, width), dtype=torch.long) if with_types else None
        for i, s in enumerate(seqs):
            m = len(s["input_ids"])
            input_ids[i, :m] = torch.as_tensor(s["input_ids"])
            labels[i, :m] = torch.as_tensor(s["labels"])
            attention_mask[i, :m] = 1
            if with_types and "token_type_ids" in s:
                token_type_ids[i, :m] = torch.as_tensor(s["token_type_ids"])
        scores = torch.full((len(rows), k), math.nan)
        for b, r in enumerate(rows):
            if r.get("scores") is not None:
                scores[b, : len(r["scores"])] = torch.as_tensor(r["scores"], dtype=torch.float)
        margins = torch.tensor([r.get("margin") or 0.0 for r in rows], dtype=torch.float)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                 "response_mask": torch.tensor(valid).view(len(rows), k), "scores": scores, "margins": margins}
        if with_types:
            batch["token_type_ids"] = token_type_ids
        return batch
