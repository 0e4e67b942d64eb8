"""Constitutional AI's supervised stage (SL-CAI): principles, critique/revision conversations, output rows.

Bai et al. 2022, "Constitutional AI: Harmlessness from AI Feedback", §3.1 and Appendix C: a model
answers a prompt, then, for a principle drawn at random from the constitution, critiques its answer
("Identify specific ways in which the assistant's last response is harmful...") and rewrites it
("Please rewrite the assistant response to remove..."); the revision replaces the answer and the
next principle critiques the revision. The final revision is the supervised target. Few-shot
examples of the whole exchange may precede each conversation (the paper's Appendix E).

One step's two conversations, as chat turns (``few_shot`` turns first, after any system turn)::

    critique: [*prompt turns, assistant: <current answer>, user: <critique_request>]
    revision: [*critique conversation, assistant: <critique>, user: <revision_request>]

Each step starts again from the prompt and the current answer (the previous steps' critiques are not
kept), so a conversation's length does not grow with the number of steps. Without a chat template the
turns are written as the paper's plain transcript (:func:`plain_transcript`). Pure Python: no torch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence, Union

from rlhf_lightning.errors import ConfigError

Prompt = Union[str, list[dict[str, Any]]]
PRINCIPLE_FIELDS = ("name", "critique_request", "revision_request")
FEW_SHOT_FIELDS = ("prompt", "answer", "critique_request", "critique", "revision_request", "revision")
SEED_STRIDE = 1_000_003  # a prime: (seed, prompt) pairs map to distinct draw seeds


@dataclass(frozen=True)
class Principle:
    """One constitutional principle: a critique request and the matching revision request."""

    name: str
    critique_request: str
    revision_request: str


def _checked_fields(item: Any, fields: Sequence[str], where: str) -> dict[str, str]:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with fields {', '.join(fields)}; got {type(item).__name__}")
    unknown = sorted(set(item) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(fields)})")
    for name in fields:
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            state = "missing" if value is None else ("empty" if isinstance(value, str) else f"a {type(value).__name__}")
            raise ConfigError(f"{where}: field {name!r} is {state} (needs a non-empty string)")
    return {name: item[name] for name in fields}


def parse_principles(items: Any) -> list[Principle]:
    """The ``principles`` option as :class:`Principle` objects; ConfigError naming the entry and field
    for an empty list, a missing/empty/unknown field or a name used twice."""
    if not isinstance(items, list) or not items:
        raise ConfigError("principles is empty: give a list of {name, critique_request, revision_request}")
    principles, seen = [], set()
    for i, item in enumerate(items):
        label = f" ({item['name']!r})" if isinstance(item, dict) and isinstance(item.get("name"), str) else ""
        principle = Principle(**_checked_fields(item, PRINCIPLE_FIELDS, f"principles[{i}]{label}"))
        if principle.name in seen:
            raise ConfigError(f"principles[{i}]: name {principle.name!r} is used twice; principle names must differ")
        seen.add(principle.name)
        principles.append(principle)
    return principles


def few_shot_turns(items: Any) -> list[dict[str, str]]:
    """The ``few_shot`` examples as chat turns: per example user prompt, assistant answer, user critique
    request, assistant critique, user revision request, assistant revision. ConfigError naming the
    example and field when one is incomplete."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(f"few_shot must be a list of examples, got {type(items).__name__}")
    turns: list[dict[str, str]] = []
    for i, item in enumerate(items):
        ex = _checked_fields(item, FEW_SHOT_FIELDS, f"few_shot[{i}]")
        for role, key in zip(("user", "assistant") * 3, FEW_SHOT_FIELDS, strict=True):
            turns.append({"role": role, "content": ex[key]})
    return turns


def draw_principles(principles: Sequence[Principle], count: int, *, seed: int, index: int) -> list[Principle]:
    """``count`` distinct principles for prompt ``index``, in random order: a function of
    ``(seed, index)`` only, so a rerun with the same seed draws the same ones."""
    if not 1 <= count <= len(principles):
        raise ValueError(f"count must be in [1, {len(principles)}], got {count}")
    return random.Random(seed * SEED_STRIDE + index).sample(list(principles), count)


def prompt_turns(prompt: Prompt) -> list[dict[str, Any]]:
    """A prompt (string, or chat turns ending with a user turn) as chat turns."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(t) for t in prompt]


def critique_conversation(prompt: Prompt, answer: str, principle: Principle,
                          few_shot: Sequence[dict[str, str]] = ()) -> list[dict[str, Any]]:
    """The turns the critique is generated from (few-shot examples after the prompt's system turns)."""
    turns = prompt_turns(prompt)
    system = 0
    while system < len(turns) and turns[system].get("role") == "system":
        system += 1
    return [*turns[:system], *few_shot, *turns[system:], {"role": "assistant", "content": answer},
            {"role": "user", "content": principle.critique_request}]


def revision_conversation(critique_turns: Sequence[dict[str, Any]], critique: str,
                          principle: Principle) -> list[dict[str, Any]]:
    """The turns the revision is generated from: the critique conversation, the critique, the request."""
    return [*critique_turns, {"role": "assistant", "content": critique},
            {"role": "user", "content": principle.revision_request}]


def plain_transcript(turns: Sequence[dict[str, Any]]) -> str:
    """Turns as the paper's plain dialogue, for tokenizers without a chat template::

        Human: <user turn>\\n\\nAssistant: <assistant turn>\\n\\n...Human: <request>\\n\\nAssistant:

    (a system turn is written as ``System: ...``); the model continues after the last ``Assistant:``."""
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    parts = [f"{names.get(t.get('role'), str(t.get('role')).title())}: {str(t.get('content', '')).strip()}"
             for t in turns]
    return "\n\n".join(parts) + "\n\nAssistant:"


def render_turns(tokenizer, turns: Sequence[dict[str, Any]]) -> str:
    """The text a critique or revision is generated from: the tokenizer's chat template with the
    generation prompt, or :func:`plain_transcript` when it has none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(turns), tokenize=False, add_generation_prompt=True)
    return plain_transcript(turns)


def _response(prompt: Prompt, text: str) -> Union[str, list[dict[str, str]]]:
    return text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]


def uniform_prompts(prompts: Sequence[Prompt]) -> list[Prompt]:
    """The prompts in one layout for the output files: unchanged when all are strings; otherwise every
    string becomes a one-user-turn chat, since the stages detect one format per file (a file mixing
    ``prompt``/``completion`` rows with ``messages`` rows matches two formats)."""
    if all(isinstance(p, str) for p in prompts):
        return list(prompts)
    return [prompt_turns(p) for p in prompts]


def sft_row(prompt: Prompt, revision: str) -> dict[str, Any]:
    """The supervised row of the final revision: ``prompt``/``completion``, or ``messages`` for a chat
    prompt (the layouts the SFT stage reads)."""
    if isinstance(prompt, str):
        return {"prompt": prompt, "completion": revision}
    return {"messages": [*prompt, {"role": "assistant", "content": revision}]}


def pair_row(prompt: Prompt, revision: str, answer: str) -> dict[str, Any]:
    """The preference row: the revision chosen over the original answer (the DPO/reward layout)."""
    return {"prompt": prompt, "chosen": _response(prompt, revision), "rejected": _response(prompt, answer)}


def pair_problem(revision: str, answer: str) -> str | None:
    """Why the (revision, answer) pair teaches nothing: ``"empty"`` (either side blank; the stages'
    data layers refuse empty responses) or ``"identical"`` (the same text up to surrounding
    whitespace); None for a usable pair."""
    if not revision.strip() or not answer.strip():
        return "empty"
    if revision.strip() == answer.strip():
        return "identical"
    return None
