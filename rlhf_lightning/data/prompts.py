"""Prompt-only data: what generation consumes (SFT ``predict``, later RL rollouts).

A prompt row has a ``prompt`` string or a ``messages`` list that ends with a user turn. With a chat
template the prompt is rendered with ``add_generation_prompt=True``; without one the raw string is
used. Batches are LEFT-padded, as decoder-only generation needs.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from rlhf_lightning.errors import ConfigError, DataError


def prompt_messages(row: Mapping[str, Any], *, source: str, index: int) -> list[dict] | str:
    """The row's prompt as a message list (chat) or a plain string; DataError naming the row if bad."""
    if "messages" in row and row["messages"] is not None:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{source} row index {index}: field 'messages' must be a non-empty list")
        if messages[-1].get("role") == "assistant":  # drop a reference answer if the row has one
            messages = messages[:-1]
        if not messages:
            raise DataError(f"{source} row index {index}: 'messages' has no turn before the assistant's")
        return list(messages)
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        found = "missing" if prompt is None else ("empty" if isinstance(prompt, str) else f"a {type(prompt).__name__}")
        raise DataError(f"{source} row index {index}: field 'prompt' is {found} (needs a non-empty string)")
    return prompt


def render_prompt(tokenizer, prompt: list[dict] | str) -> str:
    """Text the model continues from: chat template + generation prompt, or the raw prompt."""
    if getattr(tokenizer, "chat_template", None):
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if isinstance(prompt, list):
        raise ConfigError("the tokenizer has no chat template, so prompts given as 'messages' cannot be rendered")
    return prompt


class PromptCollator:
    """Tokenise rendered prompts and left-pad them: ``input_ids``/``attention_mask`` ``(B, P)``.

    Rows are dicts with ``text`` (rendered prompt); every other key is passed through as a list.
    Prompts longer than ``max_prompt_length`` keep their LAST tokens (the generation prompt).
    """

    def __init__(self, tokenizer, max_prompt_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_prompt_length = max_prompt_length

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        # The same convention as training (data.encoding.encode): a chat template writes its own BOS;
        # a plain prompt gets the tokenizer's BOS in front.
        bos = [] if getattr(self.tokenizer, "chat_template", None) or self.tokenizer.bos_token_id is None \
            else [self.tokenizer.bos_token_id]
        encoded = [bos + self.tokenizer(r["text"], add_special_tokens=False)["input_ids"] for r in rows]
        if self.max_prompt_length:
            encoded = [ids[-self.max_prompt_length:] for ids in encoded]
        width = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, ids in enumerate(encoded):
            input_ids[i, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, width - len(ids):] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        for key in rows[0]:
            batch[key] = [r[key] for r in rows]
        return batch
