"""OpenAssistant message trees (``OpenAssistant/oasst1``, ``oasst2``: one message per row) flattened.

Each row is one message: ``message_id``, ``parent_id`` (null for a tree's first prompt), ``role``
(``prompter`` or ``assistant``), ``text`` and, among siblings that were ranked, ``rank`` (0 = best).

- :func:`oasst_conversations`: one conversation per tree, following the best-ranked reply from the root
  (lowest ``rank``; unranked replies after ranked ones, then file order), cut after its last assistant
  turn — as ``OpenAssistant/oasst_top1`` is built. Rows become ``{"messages": [...]}``.
- :func:`oasst_rankings`: one ranking per prompter message with two or more ranked assistant replies:
  the conversation up to that message is the prompt, the replies in rank order the responses
  (InstructGPT-style K-wise comparisons).

Messages marked ``deleted`` are left out with their subtrees. Errors name the source, the row and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rlhf_lightning.errors import DataError

ROLES = {"prompter": "user", "assistant": "assistant"}


def _index(rows: Iterable[Mapping], source: str) -> tuple[dict, dict, list]:
    """``(message by id, children by parent id, roots)``, each message as ``(row index, row)``."""
    by_id, children, roots = {}, {}, []
    for i, row in enumerate(rows):
        where = f"{source} row index {i}"
        mid, role, text = row.get("message_id"), row.get("role"), row.get("text")
        if not isinstance(mid, str) or not mid:
            raise DataError(f"{where}: field 'message_id' must be a non-empty string, got {mid!r}")
        if role not in ROLES:
            raise DataError(f"{where}: field 'role' is {role!r}; OpenAssistant roles: {', '.join(ROLES)}")
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
        if mid in by_id:
            raise DataError(f"{where}: field 'message_id' {mid!r} repeats row index {by_id[mid][0]}")
        by_id[mid] = (i, row)
        if row.get("deleted"):
            continue
        parent = row.get("parent_id")
        (roots if parent is None else children.setdefault(parent, [])).append((i, row))
    for parent, kids in children.items():
        if parent not in by_id:
            raise DataError(f"{source} row index {kids[0][0]}: field 'parent_id' {parent!r} names no message "
                            f"in the file (export whole trees)")
    return by_id, children, roots


def _rank_key(item: tuple[int, Mapping]) -> tuple:
    i, row = item
    rank = row.get("rank")
    return (rank is None, rank if rank is not None else 0, i)


def _message(row: Mapping) -> dict:
    return {"role": ROLES[row["role"]], "content": row["text"]}


def oasst_conversations(rows: Iterable[Mapping], *, source: str) -> list[dict]:
    """``[{"messages": [...]}, ...]``: each tree's best-ranked path, ending with an assistant turn."""
    _, children, roots = _index(rows, source)
    out = []
    for root in roots:
        path, node = [root[1]], root
        while children.get(node[1]["message_id"]):
            node = min(children[node[1]["message_id"]], key=_rank_key)
            path.append(node[1])
        while path and path[-1]["role"] != "assistant":
            path.pop()
        if path and path[0]["role"] == "prompter":
            out.append({"messages": [_message(m) for m in path]})
    if not out:
        raise DataError(f"{source}: no OpenAssistant tree has a prompt followed by an assistant reply")
    return out


def oasst_rankings(rows: Iterable[Mapping], *, source: str) -> list[dict]:
    """``[{"prompt": [messages], "responses": [texts, best first], "ranking": [0..K-1]}, ...]``."""
    by_id, children, _ = _index(rows, source)
    out = []
    for parent_id, kids in children.items():
        ranked = sorted((k for k in kids if k[1]["role"] == "assistant" and k[1].get("rank") is not None),
                        key=_rank_key)
        parent = by_id[parent_id][1]
        if len(ranked) < 2 or parent["role"] != "prompter":
            continue
        path, node = [], parent
        while node is not None:
            if len(path) > len(by_id):
                raise DataError(f"{source}: the parent_id links above message {parent_id!r} form a cycle")
            path.append(_message(node))
            up = node.get("parent_id")
            node = by_id[up][1] if up is not None else None
        out.append({"prompt": path[::-1], "responses": [k[1]["text"] for k in ranked],
                    "ranking": list(range(len(ranked)))})
    if not out:
        raise DataError(f"{source}: no OpenAssistant prompt has two or more ranked replies to compare")
    return out
