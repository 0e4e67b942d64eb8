"""Public dataset shapes (Dolly, ShareGPT, OpenAssistant, UltraFeedback) mapped onto our records.

Pure functions on one row (or one column list); :mod:`~rlhf_lightning.data.formats` and
:mod:`~rlhf_lightning.data.comparisons` call them. Errors name the source, the row index and the field.

| shape | columns | becomes |
|---|---|---|
| Dolly (``databricks-dolly-15k``) | ``instruction``, ``response``; optional ``context`` | user: instruction + "\\n\\n" + context; assistant: response |
| ShareGPT (LLaMA-Factory, Vicuna) | ``conversations``: ``[{"from", "value"}]``; optional ``system``, ``tools`` | ``messages`` (from human/user → user, gpt/assistant → assistant, system → system, function_call → assistant tool call, observation → tool) |
| OpenAssistant message rows (``oasst1``/``oasst2``) | ``message_id``, ``parent_id``, ``role``, ``text`` | flattened by :mod:`~rlhf_lightning.data.oasst` (never plain text) |
| UltraFeedback binarized (``HuggingFaceH4/ultrafeedback_binarized``) | ``prompt`` + ``chosen``/``rejected`` whole conversations | the repeated prompt turns stripped: conversational pairwise |
| UltraFeedback with scores (``openbmb/UltraFeedback``) | ``instruction``, ``completions``: ``[{"response", "overall_score", ...}]`` | ranking with scores |
| LLaMA-Factory preference rows | ``conversations`` + ``chosen``/``rejected`` as ``{"from", "value"}``; or ``instruction`` (+ ``input``) + ``chosen``/``rejected`` | pairwise |
| TL;DR comparisons (``openai/summarize_from_feedback``, ``comparisons``) | ``info`` (``subreddit``, ``title``, ``post``; or ``article``), ``summaries``: ``[{"text"}, {"text"}]``, ``choice`` | pairwise; prompt in TRL's ``tldr-preference`` layout |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlhf_lightning.errors import DataError

# ShareGPT ``from`` values -> chat roles (LLaMA-Factory's defaults plus the names seen in ShareGPT dumps).
SHAREGPT_ROLES: dict[str, str] = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
    "system": "system",
    "observation": "tool", "tool": "tool",  # LLaMA-Factory's tool output turn
    "function_call": "assistant",  # LLaMA-Factory's tool call turn: value is the call(s) as JSON
}
OASST_COLUMNS: tuple[str, ...] = ("message_id", "parent_id", "role", "text")
OASST_HINT = (
    "these are OpenAssistant message rows (one message of a tree per row: message_id, parent_id, role, text), "
    "not plain text; the SFT and comparison data modules flatten them (format: oasst; see "
    "rlhf_lightning.data.oasst): best-ranked conversations, or rankings of sibling replies"
)
# Per-completion score fields of UltraFeedback, in order of preference.
SCORE_FIELDS: tuple[str, ...] = ("overall_score", "fine-grained_score", "score", "rating")
# Per-pair score columns: HuggingFaceH4 / trl-lib (score_*) and argilla's cleaned release (*-rating).
PAIR_SCORE_COLUMNS: tuple[tuple[str, str], ...] = (("score_chosen", "score_rejected"),
                                                    ("chosen-rating", "rejected-rating"))


def _where(source: str, index: int) -> str:
    return f"{source} row index {index}"


def dolly_prompt(row: Mapping) -> str:
    """Dolly's user turn: the instruction, then the context (if any) after a blank line (as Alpaca's input)."""
    context = row.get("context")
    return f"{row['instruction']}\n\n{context}" if context else row["instruction"]


def check_dolly_context(row: Mapping, *, source: str, index: int) -> None:
    context = row.get("context")
    if context is not None and not isinstance(context, str):
        raise DataError(f"{_where(source, index)}: field 'context' must be a string or empty, got "
                        f"{type(context).__name__}")


def sharegpt_messages(row: Mapping, *, source: str, index: int) -> list[dict]:
    """The ``conversations`` of a ShareGPT row as ``{role, content}`` messages (a ``system`` column first)."""
    where = _where(source, index)
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        kind = "an empty list" if isinstance(turns, list) else type(turns).__name__
        raise DataError(f"{where}: field 'conversations' must be a non-empty list of {{from, value}}, got {kind}")
    messages = []
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise DataError(f"{where}: field 'system' must be a string, got {type(system).__name__}")
    if system and system.strip():
        messages.append({"role": "system", "content": system})
    for j, turn in enumerate(turns):
        if isinstance(turn, Mapping) and "from" not in turn and {"role", "content"} <= set(turn):
            turn = {"from": turn["role"], "value": turn["content"]}  # a conversations column in OpenAI layout
        if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
            raise DataError(f"{where}: conversations[{j}] must be a dict with 'from' and 'value', got "
                            f"{turn!r:.80}")
        sender, value = turn["from"], turn["value"]
        role = SHAREGPT_ROLES.get(sender.strip().lower()) if isinstance(sender, str) else None
        if role is None:
            raise DataError(f"{where}: conversations[{j}] has from={sender!r}; known values: "
                            f"{', '.join(SHAREGPT_ROLES)}")
        if not isinstance(value, str):
            raise DataError(f"{where}: conversations[{j}] ({sender}) value must be a string, got "
                            f"{type(value).__name__}")
        if sender.strip().lower() == "function_call":
            messages.append(_function_call_message(value, where=f"{where}: conversations[{j}]"))
        else:
            messages.append({"role": role, "content": value})
    return messages


def _function_call_message(value: str, *, where: str) -> dict:
    """A LLaMA-Factory ``function_call`` turn (``{"name", "arguments"}`` or a list of them, as JSON) as an
    assistant message with ``tool_calls``."""
    import json

    try:
        calls = json.loads(value)
    except json.JSONDecodeError as e:
        raise DataError(f"{where} (function_call) value is not JSON ({e.msg})") from e
    calls = calls if isinstance(calls, list) else [calls]
    return {"role": "assistant", "content": None,
            "tool_calls": [{"type": "function", "function": c} for c in calls]}


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, Mapping) and "role" in m for m in value)


def strip_repeated_prompt(prompt: str | list[dict], chosen: Any, rejected: Any, where: str):
    """UltraFeedback-binarized rows: ``chosen``/``rejected`` are whole conversations that begin with the prompt.

    Returns ``(prompt_messages, chosen_tail, rejected_tail)`` with the turns both conversations share
    (which must end with the prompt as a user turn) moved into the prompt; ``None`` when the row is not
    in that shape (TRL's conversational layout, whose responses hold assistant turns only).
    """
    if not (_is_message_list(chosen) and _is_message_list(rejected)):
        return None
    if chosen[0].get("role") == "assistant" and rejected[0].get("role") == "assistant":
        return None
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    head = [{"role": m["role"], "content": m["content"]} for m in chosen[:n]]
    users = [m for m in head if m["role"] == "user"]
    if isinstance(prompt, str):
        repeats = bool(users) and users[-1]["content"].strip() == prompt.strip()
    else:
        repeats = head[-len(prompt):] == [{"role": m["role"], "content": m["content"]} for m in prompt] \
            if prompt and len(head) >= len(prompt) else False
    if not head or not repeats:
        first = chosen[0]
        raise DataError(
            f"{where}: field 'chosen' is a whole conversation (it starts with a {first.get('role')!r} turn) but "
            f"its turns shared with 'rejected' do not end with the prompt; expected chosen and rejected to "
            f"repeat the prompt as their last shared user turn (UltraFeedback-binarized layout), or to hold "
            f"assistant turns only (TRL's conversational layout)"
        )
    return head, chosen[n:], rejected[n:]


def pair_scores(row: Mapping, where: str) -> list[float] | None:
    """``[chosen score, rejected score]`` from UltraFeedback's per-pair rating columns, if the row has them."""
    for c_col, r_col in PAIR_SCORE_COLUMNS:
        if c_col in row and r_col in row and row[c_col] is not None and row[r_col] is not None:
            values = [row[c_col], row[r_col]]
            for col, v in zip((c_col, r_col), values, strict=True):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise DataError(f"{where}: field {col!r} must be a number, got {v!r:.40}")
            return [float(v) for v in values]
    return None


def ultrafeedback_ranking(row: Mapping, *, source: str, index: int) -> dict | None:
    """An ``openbmb/UltraFeedback`` row as a ranking row ``{prompt, responses, scores}`` (best first).

    Completions whose score ties an earlier one are left out (a ranking needs a strict order);
    ``None`` when fewer than two distinct scores remain (nothing to compare).
    """
    where = _where(source, index)
    prompt = row.get("instruction")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{where}: field 'instruction' must be a non-empty string")
    completions = row.get("completions")
    if not isinstance(completions, list):
        raise DataError(f"{where}: field 'completions' must be a list of {{response, overall_score}}")
    scored = []
    for j, c in enumerate(completions):
        if not isinstance(c, Mapping) or not isinstance(c.get("response"), str):
            raise DataError(f"{where}: completions[{j}] must be a dict with a string 'response'")
        field = next((f for f in SCORE_FIELDS if c.get(f) is not None), None)
        if field is None:
            raise DataError(f"{where}: completions[{j}] has no score (one of {', '.join(SCORE_FIELDS)})")
        score = c[field]
        if isinstance(score, str):
            try:
                score = float(score)
            except ValueError:
                raise DataError(f"{where}: completions[{j}].{field} is not a number ({c[field]!r})") from None
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise DataError(f"{where}: completions[{j}].{field} is not a number ({score!r})")
        if c["response"].strip():
            scored.append((float(score), c["response"]))
    best: dict[float, str] = {}
    for score, response in scored:  # first completion of each score, in file order
        best.setdefault(score, response)
    if len(best) < 2:
        return None
    ranked = sorted(best.items(), key=lambda kv: -kv[0])
    return {"prompt": prompt, "responses": [r for _, r in ranked], "scores": [s for s, _ in ranked]}


def tldr_prompt(info: Mapping) -> str:
    """The post as TRL's ``trl-lib/tldr-preference`` writes it (a CNN/DM article: the article, then ``TL;DR:``)."""
    if info.get("post"):
        subreddit, title = info.get("subreddit") or "", info.get("title") or ""
        return f"SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {info['post']}\n\nTL;DR:"
    return f"{info['article']}\n\nTL;DR:"


def tldr_pair(row: Mapping, *, source: str, index: int) -> dict:
    """An ``openai/summarize_from_feedback`` comparison as ``{prompt, chosen, rejected}`` (chosen = ``choice``)."""
    where = _where(source, index)
    info = row.get("info")
    if not isinstance(info, Mapping) or not any(isinstance(info.get(k), str) and info[k].strip()
                                                for k in ("post", "article")):
        raise DataError(f"{where}: field 'info' must hold the text to summarise ('post' or 'article')")
    summaries, choice = row.get("summaries"), row.get("choice")
    if not isinstance(summaries, list) or len(summaries) != 2 or not all(
            isinstance(x, Mapping) and isinstance(x.get("text"), str) for x in summaries):
        raise DataError(f"{where}: field 'summaries' must be two {{text, ...}} summaries")
    if choice not in (0, 1) or isinstance(choice, bool):
        raise DataError(f"{where}: field 'choice' must be 0 or 1 (the preferred summary), got {choice!r}")
    return {"prompt": tldr_prompt(info), "chosen": summaries[choice]["text"],
            "rejected": summaries[1 - choice]["text"]}


def _sharegpt_reply(row: Mapping, field: str, where: str) -> list[dict]:
    reply = row.get(field)
    if not isinstance(reply, Mapping) or not isinstance(reply.get("value"), str):
        raise DataError(f"{where}: field {field!r} must be a {{from, value}} reply, got {reply!r:.60}")
    role = SHAREGPT_ROLES.get(str(reply.get("from", "gpt")).strip().lower())
    if role != "assistant":
        raise DataError(f"{where}: field {field!r} has from={reply.get('from')!r}; a reply is from gpt or assistant")
    return [{"role": "assistant", "content": reply["value"]}]


def pairwise_row(row: Mapping, fmt: str, *, source: str, index: int) -> dict:
    """A ``tldr``, ``sharegpt`` or ``alpaca`` preference row as a ``pairwise`` row ``{prompt, chosen, rejected}``."""
    where = _where(source, index)
    if fmt == "tldr":
        return tldr_pair(row, source=source, index=index)
    if fmt == "sharegpt":
        prompt = sharegpt_messages(row, source=source, index=index)
        if prompt[-1]["role"] != "user":
            raise DataError(f"{where}: field 'conversations' must end with a human turn (the prompt of chosen "
                            f"and rejected), got a {prompt[-1]['role']} turn")
        return {"prompt": prompt, "chosen": _sharegpt_reply(row, "chosen", where),
                "rejected": _sharegpt_reply(row, "rejected", where)}
    if fmt == "alpaca":
        extra = row.get("input")
        if extra is not None and not isinstance(extra, str):
            raise DataError(f"{where}: field 'input' must be a string or empty, got {type(extra).__name__}")
        prompt = row.get("instruction")
        if isinstance(prompt, str) and extra:
            prompt = f"{prompt}\n\n{extra}"
        return {"prompt": prompt, "chosen": row.get("chosen"), "rejected": row.get("rejected")}
    raise ValueError(f"not a pairwise shape: {fmt!r}")
