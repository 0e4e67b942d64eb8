"""Held-out prompts for evaluation: read a JSONL, render each prompt as the stages do, batch left-padded.

A row has a ``prompt`` string or a ``messages`` list ending with a user turn (a trailing assistant
turn, a reference answer, is dropped); its other scalar columns reach reward and constraint plugins
as keyword columns, exactly as :class:`~rlhf_lightning.datamodules.prompts.PromptDataModule` passes
them during PPO.
"""

from __future__ import annotations

from typing import Any, Optional

from rlhf_lightning.data.jsonl import read_jsonl_objects
from rlhf_lightning.data.prompt_templates import fill_template
from rlhf_lightning.data.prompts import PromptCollator, prompt_messages, render_prompt
from rlhf_lightning.errors import DataError

#: keys of a prepared row that are not plugin columns
RESERVED = ("text", "prompt", "messages", "input_ids", "attention_mask")


def read_prompt_rows(path: str, template: Optional[str] = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; DataError naming the file (and line) if missing, bad or empty.
    ``template`` (a prompt template) builds each row's ``prompt`` from its columns."""
    rows = []
    for lineno, row in read_jsonl_objects(path, what="prompts"):
        if template is not None:
            row["prompt"] = fill_template(template, row, source=path, index=len(rows))
        if "prompt" not in row and "messages" not in row:
            raise DataError(f"{path}:{lineno}: a prompt row needs 'prompt' (string) or 'messages' (chat list "
                            f"ending with a user turn); fields present: {', '.join(row) or 'none'}")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no prompts (the file holds no rows)")
    return rows


def prepare_rows(rows: list[dict[str, Any]], tokenizer, *, source: str) -> list[dict[str, Any]]:
    """Rows as generation and the plugins need them: ``text`` (the rendered prompt: chat template
    with generation prompt, or the raw string), ``prompt`` (the user's text) and the other scalar
    columns (non-scalar values become ``None``; every row gets every key)."""
    out = []
    for i, row in enumerate(rows):
        prompt = prompt_messages(row, source=source, index=i)
        item = {k: v if isinstance(v, (str, int, float, bool)) else None for k, v in row.items() if k not in RESERVED}
        item["prompt"] = prompt if isinstance(prompt, str) else str(prompt[-1].get("content", ""))
        item["text"] = render_prompt(tokenizer, prompt)
        out.append(item)
    keys = sorted({k for r in out for k in r})
    return [{k: r.get(k) for k in keys} for r in out]


def prompt_batches(rows: list[dict[str, Any]], tokenizer, *, batch_size: int,
                   max_prompt_length: int) -> tuple[list[dict[str, Any]], int]:
    """Consecutive batches of ``batch_size`` prepared rows, tokenised and LEFT-padded by the stages'
    :class:`~rlhf_lightning.data.prompts.PromptCollator` (``input_ids``/``attention_mask`` ``(B, P)``
    plus the rows' columns as lists). A prompt longer than ``max_prompt_length`` tokens keeps its
    last ones (the generation prompt). Returns the batches and how many prompts were cut."""
    collate = PromptCollator(tokenizer, max_prompt_length)
    batches = [collate(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]
    bos = 0 if getattr(tokenizer, "chat_template", None) or tokenizer.bos_token_id is None else 1
    cut = sum(len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) + bos > max_prompt_length
              for r in rows)
    return batches, cut
