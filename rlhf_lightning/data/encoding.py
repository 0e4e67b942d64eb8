"""Rows -> token ids and labels for causal-LM training, with the loss only where the model should learn.

Two steps keep the label mask exact:

1. :func:`render` turns a row into one string plus the character spans that are trained (each assistant
   turn, or the completion, or everything).
2. :func:`encode` tokenizes that string once with ``return_offsets_mapping=True``; a token is trained iff
   its first character lies in a trained span. Because the labels come from the very tokenization the
   model sees, there is no drift from tokenizing prompt and completion separately (merges across the
   boundary, a template's leading space, ...). A token that straddles a boundary belongs to the side it
   starts on.

Labels are aligned with ``input_ids`` (``labels[t] == input_ids[t]`` where trained, ``-100`` elsewhere); the
model shifts them, so ``labels[0]`` never counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import datasets

from rlhf_lightning.data.formats import check_format, prompt_and_completion, to_messages, validate_row
from rlhf_lightning.data.tools import row_tools
from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.losses.labels import IGNORE_INDEX

Span = tuple[int, int]
LossOn = Literal["completion", "all"]
Truncation = Literal["truncate", "drop", "error"]


def uses_chat_template(fmt: str, tokenizer: Any, *, use_chat_template: bool = True) -> bool:
    """Whether rows of ``fmt`` are rendered with the tokenizer's chat template."""
    return use_chat_template and fmt != "text" and bool(getattr(tokenizer, "chat_template", None))


def _template_name(tokenizer: Any) -> str:
    """The chat template as messages name it: where ``chat_template:`` took it from, else the tokenizer's."""
    return getattr(tokenizer, "chat_template_source", None) or "the tokenizer's chat template"


def _apply_template(tokenizer: Any, messages: list[dict], *, add_generation_prompt: bool,
                    tools: list[dict] | None = None) -> str:
    import jinja2

    try:
        return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"{_template_name(tokenizer)} does not parse: {e}") from e
    except jinja2.TemplateError as e:  # raise_exception(...) in a template, e.g. roles that do not alternate
        raise DataError(f"the chat template rejected this conversation: {e}") from e


def _render_chat(messages: list[dict], tokenizer: Any, loss_on: LossOn,
                 tools: list[dict] | None = None) -> tuple[str, list[Span]]:
    """The conversation rendered once, and the character spans of its assistant turns.

    An assistant turn's span runs from the end of the conversation before it (rendered with the generation
    prompt) to the end of the conversation through it: its content, its tool calls and its end-of-turn text.
    ``tool`` turns and everything else are context. ``tools`` (function schemas) go to every rendering.
    """
    full = _apply_template(tokenizer, messages, add_generation_prompt=False, tools=tools)
    if loss_on == "all":
        return full, [(0, len(full))]
    spans: list[Span] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _apply_template(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        through = _apply_template(tokenizer, messages[: i + 1], add_generation_prompt=False, tools=tools)
        if not (through.startswith(before) and full.startswith(through)):
            raise ConfigError(
                f"{_template_name(tokenizer)} is not prefix-stable: rendering the first "
                f"{i} message(s) (with the generation prompt) or the first {i + 1} is not a prefix of the "
                "whole conversation, so assistant turns cannot be located for the loss mask. Use a template "
                "that renders earlier turns the same way whatever follows, or loss_on='all'"
            )
        # The span is the assistant content plus the template's end-of-turn text, so the model learns to stop.
        if len(through) > len(before):
            spans.append((len(before), len(through)))
    return full, spans


def render(
    row: Mapping, fmt: str, tokenizer: Any, *, loss_on: LossOn = "completion", use_chat_template: bool = True
) -> tuple[str, list[Span]]:
    """The row's full training text and its trained character spans ``[(start, end), ...]``, sorted.

    With a chat template (and ``fmt != "text"``), the text is the rendered conversation and the spans are
    the assistant turns. Without one, a two-field row is ``prompt + completion`` with the completion
    trained (BOS and EOS are added by :func:`encode`). ``text`` rows are trained everywhere, and so is
    every row when ``loss_on="all"``. ``use_chat_template=False`` ignores a tokenizer's template.
    """
    if loss_on not in ("completion", "all"):
        raise ConfigError(f"loss_on must be 'completion' or 'all', got {loss_on!r}")
    if uses_chat_template(fmt, tokenizer, use_chat_template=use_chat_template):
        return _render_chat(to_messages(row, fmt), tokenizer, loss_on, tools=row_tools(row))
    if fmt == "text":
        text = row["text"]
        return text, [(0, len(text))]
    if fmt in ("messages", "sharegpt"):
        raise ConfigError(
            f"tokenizer has no chat template; the {fmt} format needs one (set tokenizer.chat_template "
            "or use a prompt/completion format)"
        )
    prompt, completion = prompt_and_completion(row, fmt)
    text = prompt + completion
    return text, [(0 if loss_on == "all" else len(prompt), len(text))]


def trained_token_mask(offsets: list[Span], spans: list[Span]) -> list[bool]:
    """Per token: does its first character lie in one of the (sorted) trained character ``spans``?"""
    mask, s = [], 0
    for start, _ in offsets:  # offsets are non-decreasing in start, spans sorted: one pass
        while s < len(spans) and spans[s][1] <= start:
            s += 1
        mask.append(s < len(spans) and spans[s][0] <= start)
    return mask


def encode(
    row: Mapping, fmt: str, tokenizer: Any, *, loss_on: LossOn = "completion", use_chat_template: bool = True
) -> dict[str, list[int]]:
    """``{"input_ids", "labels"}`` of one row (untruncated); ``labels`` is ``-100`` where not trained.

    Chat-rendered text is tokenized with ``add_special_tokens=False`` (the template writes its own BOS and
    end-of-turn tokens). Plain text gets the tokenizer's BOS (if it has one) in front and EOS at the end;
    the EOS is trained when the text's end is trained, so the model learns to stop.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("encoding needs a fast tokenizer (offset mappings); load it with use_fast=True")
    text, spans = render(row, fmt, tokenizer, loss_on=loss_on, use_chat_template=use_chat_template)
    plain = not uses_chat_template(fmt, tokenizer, use_chat_template=use_chat_template)
    return tokenize_spans(tokenizer, text, spans, add_bos_eos=plain, train_bos=loss_on == "all")


def tokenize_spans(tokenizer: Any, text: str, spans: list[Span], *, add_bos_eos: bool,
                   train_bos: bool = False) -> dict[str, list[int]]:
    """Tokenise ``text`` once and label the tokens that start inside ``spans`` (others ``-100``).

    ``add_bos_eos`` (text not rendered by a chat template): BOS in front (trained iff ``train_bos``)
    and EOS at the end, trained when the last span reaches the end of the text.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    trained = trained_token_mask(enc["offset_mapping"], spans)
    if add_bos_eos:
        if tokenizer.bos_token_id is not None:
            ids.insert(0, tokenizer.bos_token_id)
            trained.insert(0, train_bos)
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
            trained.append(bool(spans) and spans[-1][1] == len(text))
    labels = [t if keep else IGNORE_INDEX for t, keep in zip(ids, trained, strict=True)]
    return {"input_ids": ids, "labels": labels}


@dataclasses.dataclass
class EncodeStats:
    """What :func:`encode_dataset` did to the rows (``kept`` includes the ``truncated`` ones)."""

    total: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_no_target: int = 0
    max_length: int | None = None

    def summary(self) -> str:
        limit = f"{self.max_length} tokens" if self.max_length is not None else "max_length"
        return (
            f"{self.kept}/{self.total} rows kept ({self.truncated} truncated to {limit}); dropped "
            f"{self.dropped_too_long} longer than {limit} and {self.dropped_no_target} with no trained token "
            f"within {limit}"
        )


# Per-row outcome codes, stored in a temporary column so the counts survive ``map(num_proc=...)``.
_KEPT, _TRUNCATED, _TOO_LONG, _NO_TARGET, _INVALID = range(5)


def _encode_row(row, index, *, fmt, tokenizer, max_length, truncation, loss_on, use_chat_template, source):
    empty = {"input_ids": [], "labels": [], "_length": 0}
    try:
        validate_row(row, fmt, source=source, index=index)
        enc = encode(row, fmt, tokenizer, loss_on=loss_on, use_chat_template=use_chat_template)
    except DataError as e:
        message = str(e)
        if not message.startswith(f"{source} row index"):
            message = f"{source} row index {index}: {message}"
        return {**empty, "_status": _INVALID, "_error": message}
    ids, labels = enc["input_ids"], enc["labels"]
    length, status = len(ids), _KEPT
    if length > max_length:
        if truncation != "truncate":
            return {**empty, "_length": length, "_status": _TOO_LONG, "_error": ""}
        ids, labels, status = ids[:max_length], labels[:max_length], _TRUNCATED
    # labels[0] is never a target after the causal shift, so it does not count.
    if all(label == IGNORE_INDEX for label in labels[1:]):
        return {**empty, "_length": length, "_status": _NO_TARGET, "_error": ""}
    return {"input_ids": ids, "labels": labels, "_length": length, "_status": status, "_error": ""}


def encode_dataset(
    ds: datasets.Dataset,
    fmt: str,
    tokenizer: Any,
    *,
    max_length: int,
    truncation: Truncation = "truncate",
    loss_on: LossOn = "completion",
    source: str,
    num_proc: int | None = None,
    use_chat_template: bool = True,
) -> tuple[datasets.Dataset, EncodeStats]:
    """Validate and encode every row of ``ds``; returns a dataset of ``input_ids`` and ``labels`` and the counts.

    ``truncation``: ``"truncate"`` keeps the first ``max_length`` tokens (a row left with no trained token
    is dropped as ``no_target``); ``"drop"`` drops longer rows; ``"error"`` raises naming the first one.
    An invalid row raises :class:`DataError` naming ``source``, its row index and the field.
    """
    if truncation not in ("truncate", "drop", "error"):
        raise ConfigError(f"truncation must be 'truncate', 'drop' or 'error', got {truncation!r}")
    if not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"max_length must be an integer >= 2, got {max_length!r}")
    check_format(fmt, ds.column_names, source=source)
    if len(ds) == 0:
        raise DataError(f"{source}: no rows to encode")
    encoded = ds.map(
        _encode_row,
        with_indices=True,
        remove_columns=ds.column_names,
        num_proc=num_proc,
        fn_kwargs=dict(fmt=fmt, tokenizer=tokenizer, max_length=max_length, truncation=truncation,
                       loss_on=loss_on, use_chat_template=use_chat_template, source=source),
        desc=f"encoding {source}",
    )
    status = list(encoded["_status"])
    invalid = [i for i, s in enumerate(status) if s == _INVALID]
    if invalid:
        more = f" (and {len(invalid) - 1} more invalid rows)" if len(invalid) > 1 else ""
        raise DataError(encoded[invalid[0]]["_error"] + more)
    too_long = [i for i, s in enumerate(status) if s == _TOO_LONG]
    if too_long and truncation == "error":
        i = too_long[0]
        raise DataError(
            f"{source} row index {i}: {encoded[i]['_length']} tokens, longer than max_length={max_length} "
            f"({len(too_long)} such rows; truncation='error' — use 'truncate' or 'drop', or raise max_length)"
        )
    stats = EncodeStats(
        total=len(status),
        kept=sum(s in (_KEPT, _TRUNCATED) for s in status),
        truncated=status.count(_TRUNCATED),
        dropped_too_long=len(too_long),
        dropped_no_target=status.count(_NO_TARGET),
        max_length=max_length,
    )
    if stats.kept == 0:
        raise DataError(f"{source}: no rows left after encoding: {stats.summary()}")
    keep = [i for i, s in enumerate(status) if s in (_KEPT, _TRUNCATED)]
    if len(keep) < len(status):
        encoded = encoded.select(keep)
    return encoded.remove_columns(["_length", "_status", "_error"]), stats
