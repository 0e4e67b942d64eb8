"""Comparison data: several responses to one prompt and which is better (reward models, DPO family).

Every supported layout is normalised to one record, a *comparison*::

    {"prompt": str | list[message], "responses": [best, ..., worst], "scores": [float] | None,
     "margin": float | None}

| format | columns | becomes |
|---|---|---|
| ``pairwise`` | ``prompt``, ``chosen``, ``rejected`` (strings, or message lists: TRL's conversational layout) | K = 2 |
| ``implicit_pairwise`` | ``chosen``, ``rejected`` full texts or conversations sharing a prompt prefix (Anthropic HH) | K = 2 |
| ``ranking`` | ``prompt``, ``responses`` (K ≥ 2), ``ranking`` (indices best → worst) or ``scores`` (higher is better) | K-wise, InstructGPT |
| ``scored`` | ``prompt``, ``response``, ``score`` | pointwise, K = 1 |
| ``binary`` | ``prompt``, ``response``, ``label`` (true/false, 1/0: good/bad) | pointwise, K = 1, score 1.0 / 0.0 |
| ``ultrafeedback`` | ``instruction``, ``completions`` (``openbmb/UltraFeedback``: ``response`` + ``overall_score``) | K-wise ranking with scores |
| ``sharegpt`` / ``alpaca`` | LLaMA-Factory preference rows: ``conversations`` or ``instruction`` (+ ``input``), with ``chosen``, ``rejected`` | K = 2 |
| ``tldr`` | ``info``, ``summaries``, ``choice`` (``openai/summarize_from_feedback`` comparisons) | K = 2, prompt ``SUBREDDIT: ... TL;DR:`` |
| ``oasst`` | OpenAssistant message rows (``message_id``, ``parent_id``, ``role``, ``text``, ``rank``) | K-wise rankings of sibling replies (the data module flattens the trees) |

An optional ``margin`` column (pairwise) is carried along (TRL's reward-margin convention), and so are
per-pair scores (``score_chosen``/``score_rejected``, or argilla's ``chosen-rating``/``rejected-rating``).
``pairwise`` rows whose ``chosen``/``rejected`` are whole conversations repeating the prompt
(UltraFeedback binarized) have the shared turns moved into the prompt. See
:mod:`~rlhf_lightning.data.public_formats`.
Row numbers in errors are 0-based dataset indices ("row index 3").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rlhf_lightning.data import public_formats as public
from rlhf_lightning.errors import ConfigError, DataError

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "oasst": public.OASST_COLUMNS,
    "ultrafeedback": ("instruction", "completions"),
    "tldr": ("info", "summaries", "choice"),
    "ranking": ("prompt", "responses"),
    "pairwise": ("prompt", "chosen", "rejected"),
    "sharegpt": ("conversations", "chosen", "rejected"),
    "alpaca": ("instruction", "chosen", "rejected"),
    "implicit_pairwise": ("chosen", "rejected"),
    "scored": ("prompt", "response", "score"),
    "binary": ("prompt", "response", "label"),
}
COMPARISON_FORMATS: tuple[str, ...] = tuple(REQUIRED_COLUMNS)
PAIRWISE_FORMATS: tuple[str, ...] = ("pairwise", "implicit_pairwise", "tldr", "sharegpt", "alpaca")
ASSISTANT_MARKERS = ("\n\nAssistant:", "\nAssistant:", "Assistant:")


def detect_comparison_format(columns: Sequence[str], *, source: str) -> str:
    """The first format whose required columns are present (in :data:`COMPARISON_FORMATS` order)."""
    present = set(columns)
    for fmt, required in REQUIRED_COLUMNS.items():
        if present.issuperset(required):
            return fmt
    needs = "; ".join(f"{f}: {', '.join(c)}" for f, c in REQUIRED_COLUMNS.items())
    raise DataError(f"{source}: cannot detect a comparison format from columns [{', '.join(columns) or 'none'}]; "
                    f"each format needs these columns ({needs})")


def check_comparison_format(fmt: str, columns: Sequence[str], *, source: str) -> None:
    if fmt not in REQUIRED_COLUMNS:
        raise ConfigError(f"unknown comparison format {fmt!r}; known: {', '.join(COMPARISON_FORMATS)}")
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in columns]
    if fmt == "ranking" and "ranking" not in columns and "scores" not in columns:
        missing.append("ranking (or scores)")
    if missing:
        raise DataError(f"{source}: format {fmt!r} needs column(s) {', '.join(missing)}; "
                        f"found [{', '.join(columns) or 'none'}]")


def _where(source: str, index: int) -> str:
    return f"{source} row index {index}"


def _text(row: Mapping, field: str, where: str) -> str:
    value = row.get(field)
    if value is None:
        raise DataError(f"{where}: field {field!r} is missing")
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field {field!r} is empty")
    return value


def _messages(value: Any, field: str, where: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field {field!r} must be a non-empty list of messages")
    for j, m in enumerate(value):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: {field}[{j}] must be a {{role, content}} message with string values")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _response(row: Mapping, field: str, where: str) -> str | list[dict]:
    """A response: a string, or a message list (TRL's conversational preference layout)."""
    value = row.get(field)
    if isinstance(value, list):
        msgs = _messages(value, field, where)
        if not any(m["content"].strip() for m in msgs):
            raise DataError(f"{where}: field {field!r} is empty")
        return msgs
    return _text(row, field, where)


def _prompt(row: Mapping, where: str) -> str | list[dict]:
    value = row.get("prompt")
    if isinstance(value, list):
        return _messages(value, "prompt", where)
    return _text(row, "prompt", where)


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = "missing" if value is None else f"not a number ({value!r})"
        raise DataError(f"{where}: {what} is {shown}")
    if not math.isfinite(float(value)):
        raise DataError(f"{where}: {what} is {value} (must be finite)")
    return float(value)


def _split_implicit(chosen: str, rejected: str, where: str) -> tuple[str, str, str]:
    """Split two full texts into (shared prompt, chosen tail, rejected tail).

    The prompt ends at the last assistant marker (``\\n\\nAssistant:``) inside the common prefix,
    so ``Human: ... Assistant:`` stays with the prompt; without a marker, at the last whitespace.
    """
    n = 0
    for a, b in zip(chosen, rejected, strict=False):  # the common prefix of two strings
        if a != b:
            break
        n += 1
    common = chosen[:n]
    cut = -1
    for marker in ASSISTANT_MARKERS:
        i = common.rfind(marker)
        if i >= 0:
            cut = i + len(marker)
            break
    if cut < 0:
        cut = max(common.rfind(" "), common.rfind("\n")) + 1
    prompt, c_tail, r_tail = chosen[:cut], chosen[cut:], rejected[cut:]
    if not prompt.strip():
        raise DataError(f"{where}: chosen and rejected share no prompt prefix (implicit_pairwise layout)")
    if not c_tail.strip() or not r_tail.strip():
        raise DataError(f"{where}: after the shared prompt, chosen or rejected is empty")
    return prompt, c_tail, r_tail


def _split_implicit_messages(chosen: list[dict], rejected: list[dict], where: str):
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    if n == 0:
        raise DataError(f"{where}: chosen and rejected conversations share no prompt turns")
    return chosen[:n], chosen[n:], rejected[n:]


def to_comparison(row: Mapping, fmt: str, *, source: str, index: int) -> dict[str, Any] | None:
    """Validate one row and normalise it; every problem raises ``DataError`` naming the row.

    ``None`` for an ``ultrafeedback`` row with fewer than two distinct scores (nothing to compare).
    """
    where = _where(source, index)
    margin = None
    if row.get("margin") is not None:
        margin = _number(row["margin"], "field 'margin'", where)
    if fmt == "oasst":
        raise DataError(f"{where}: {public.OASST_HINT}")
    if fmt == "ultrafeedback":
        ranked = public.ultrafeedback_ranking(row, source=source, index=index)
        return None if ranked is None else {**ranked, "margin": None}
    scores = public.pair_scores(row, where)
    if fmt in ("tldr", "sharegpt", "alpaca"):
        row, fmt = public.pairwise_row(row, fmt, source=source, index=index), "pairwise"
    if fmt == "pairwise":
        prompt = _prompt(row, where)
        stripped = public.strip_repeated_prompt(prompt, row.get("chosen"), row.get("rejected"), where)
        if stripped:
            prompt = _messages(stripped[0], "prompt", where)
            row = {"chosen": stripped[1], "rejected": stripped[2]}
        responses = [_response(row, "chosen", where), _response(row, "rejected", where)]
    elif fmt == "implicit_pairwise":
        chosen, rejected = _response(row, "chosen", where), _response(row, "rejected", where)
        if isinstance(chosen, list) != isinstance(rejected, list):
            raise DataError(f"{where}: chosen and rejected must both be texts or both be conversations")
        split = _split_implicit_messages if isinstance(chosen, list) else _split_implicit
        prompt, c, r = split(chosen, rejected, where)
        responses = [c, r]
    elif fmt == "ranking":
        prompt = _prompt(row, where)
        raw = row.get("responses")
        if not isinstance(raw, list):
            raise DataError(f"{where}: field 'responses' must be a list of responses")
        if len(raw) < 2:
            raise DataError(f"{where}: a ranking needs K >= 2 responses, got {len(raw)}")
        items = [_response({"r": r}, "r", f"{where} responses[{j}]") for j, r in enumerate(raw)]
        order = _ranking_order(row, len(items), where)
        responses = [items[j] for j in order]
        scores = row.get("scores")
        sorted_scores = [_number(scores[j], f"scores[{j}]", where) for j in order] if scores is not None else None
        _check_distinct(responses, where)
        return {"prompt": prompt, "responses": responses, "scores": sorted_scores, "margin": margin}
    elif fmt in ("scored", "binary"):
        prompt, response = _prompt(row, where), _response(row, "response", where)
        if fmt == "scored":
            score = _number(row.get("score"), "field 'score'", where)
        else:
            score = _binary_label(row.get("label"), where)
        return {"prompt": prompt, "responses": [response], "scores": [score], "margin": None}
    else:
        raise ConfigError(f"unknown comparison format {fmt!r}; known: {', '.join(COMPARISON_FORMATS)}")
    _check_distinct(responses, where)
    return {"prompt": prompt, "responses": responses, "scores": scores, "margin": margin}


def _check_distinct(responses: list, where: str) -> None:
    seen = {}
    for j, r in enumerate(responses):
        key = repr(r)
        if key in seen:
            what = "chosen is identical to rejected" if len(responses) == 2 else \
                f"responses {seen[key]} and {j} (in rank order) are identical"
            raise DataError(f"{where}: {what}; a comparison needs different responses")
        seen[key] = j


def _binary_label(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and value in (0, 1):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "good", "bad", "1", "0"):
        return 1.0 if value.strip().lower() in ("true", "good", "1") else 0.0
    raise DataError(f"{where}: field 'label' must be true/false or 1/0, got {value!r}")


def _ranking_order(row: Mapping, k: int, where: str) -> list[int]:
    """Indices of ``responses`` from best to worst, from ``ranking`` or else from ``scores``."""
    ranking = row.get("ranking")
    if ranking is not None:
        if not isinstance(ranking, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in ranking):
            raise DataError(f"{where}: field 'ranking' must be a list of response indices (best first)")
        if sorted(ranking) != list(range(k)):
            raise DataError(f"{where}: ranking {ranking} is not a permutation of 0..{k - 1} "
                            f"(one index per response, best first)")
        return list(ranking)
    scores = row.get("scores")
    if not isinstance(scores, list) or len(scores) != k:
        got = "missing" if scores is None else f"{len(scores)} values" if isinstance(scores, list) else repr(scores)
        raise DataError(f"{where}: needs 'ranking' or one score per response in 'scores' ({k}), got {got}")
    values = [_number(s, f"scores[{j}]", where) for j, s in enumerate(scores)]
    if len(set(values)) < len(values):
        raise DataError(f"{where}: tied scores {values} do not induce a ranking; give 'ranking' explicitly")
    return sorted(range(k), key=lambda j: -values[j])
