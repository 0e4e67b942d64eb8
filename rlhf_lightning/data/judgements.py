"""Judgements for ratings: pairwise and ranking rows read as (prompt, a, b, outcome, annotator).

Every comparison layout of :mod:`rlhf_lightning.data.comparisons` that compares answers is read
(``pairwise``, ``implicit_pairwise``, ``ranking``, ``ultrafeedback``, ``tldr``, LLaMA-Factory
``sharegpt``/``alpaca``), detected per row unless ``fmt`` is given; pointwise rows (``scored``,
``binary``) compare nothing and are refused. On top of those layouts:

- a ``ranking`` row (as ``rlhf-lightning sample`` writes ``ranking.jsonl``) gives its K(K−1)/2 pairs;
  answers with *equal* ``scores`` (and no explicit ``ranking``) are ties, which the data layer of the
  training stages refuses but a rating model can use;
- a pairwise row may say ``"tie": true`` (chosen and rejected judged equal);
- the annotator is the row's ``annotator_field`` (a string or an integer; absent or null: an
  anonymous judgement);
- with ``model_field`` set (items are models, not answers), a pairwise row names its answers' models
  in ``chosen_<field>`` and ``rejected_<field>``, a ranking row in ``<field>``: a list with one name
  per entry of ``responses`` (input order).

Pure Python. Errors name the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from rlhf_lightning.data.comparisons import (
    COMPARISON_FORMATS,
    check_comparison_format,
    detect_comparison_format,
    to_comparison,
)
from rlhf_lightning.errors import ConfigError, DataError

POINTWISE = ("scored", "binary")
__all__ = ["Judgement", "key_of", "read_judgements"]


@dataclass(frozen=True)
class Judgement:
    """``a`` was judged better than ``b`` (``outcome`` 1) or equal to it (0.5). ``prompt``, ``a``, ``b``
    are the row's values (strings or message lists); ``a_model``/``b_model`` their models (model items
    only); ``where`` is ``file:line``."""

    prompt: Any
    a: Any
    b: Any
    outcome: float
    annotator: Optional[str]
    where: str
    a_model: Optional[str] = None
    b_model: Optional[str] = None


def key_of(value: Any) -> str:
    """A hashable key of a prompt or answer (a string, or a message list as canonical JSON)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _annotator(row: dict, name: str, where: str) -> Optional[str]:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: field {name!r} (the annotator) must be a string or an integer, got "
                        f"{type(value).__name__} {json.dumps(value, ensure_ascii=False)[:60]}")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"{where}: field {name!r} (the annotator) is empty")
    return str(value)


def _model(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = "missing" if value is None else f"{type(value).__name__} {value!r:.60}"
        raise DataError(f"{where}: {what} must be a non-empty model name (string), got {shown}")
    return value


def _ranking_with_ties(row: dict) -> tuple[dict, Optional[list[float]]]:
    """A ranking row with tied ``scores`` and no ``ranking``: the row with a stable best-first ``ranking``
    added (so the data layer checks it as usual) and the scores that mark the ties; otherwise as is."""
    scores = row.get("scores")
    if row.get("ranking") is not None or not isinstance(scores, list):
        return row, None
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores) or len(set(scores)) == len(scores):
        return row, None
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    return {**row, "ranking": order}, [float(s) for s in scores]


def _row_judgements(row: dict, fmt: str, *, source: str, lineno: int, annotator_field: str,
                    model_field: Optional[str]) -> list[Judgement]:
    where = f"{source}:{lineno}"
    if fmt in POINTWISE:
        raise DataError(f"{where}: a {fmt!r} row (one answer with a score or label) compares nothing; ratings need "
                        f"pairwise or ranking rows")
    annotator = _annotator(row, annotator_field, where)
    checked, tie_scores = _ranking_with_ties(row) if fmt == "ranking" else (row, None)
    try:
        comp = to_comparison(checked, fmt, source=source, index=lineno - 1)
    except DataError as exc:  # the data layer names "row index i"; here the line is what the user sees
        raise DataError(str(exc).replace(f"{source} row index {lineno - 1}", where)) from None
    if comp is None:  # ultrafeedback row with fewer than two distinct scores
        return []
    prompt, responses = comp["prompt"], comp["responses"]
    if fmt == "ranking":
        order = list(checked["ranking"]) if checked.get("ranking") is not None else \
            sorted(range(len(responses)), key=lambda k: -float(row["scores"][k]))
    else:
        order = list(range(len(responses)))
    models: list[Optional[str]] = [None] * len(responses)
    if model_field is not None:
        if fmt == "ranking":
            names = row.get(model_field)
            if not isinstance(names, list) or len(names) != len(responses):
                got = "missing" if names is None else f"{len(names)} names" if isinstance(names, list) else repr(names)
                raise DataError(f"{where}: field {model_field!r} must list one model per response "
                                f"({len(responses)}), got {got}")
            models = [_model(names[k], f"{model_field}[{k}]", where) for k in order]
        elif fmt == "pairwise":
            models = [_model(row.get(f"{side}_{model_field}"), f"field '{side}_{model_field}'", where)
                      for side in ("chosen", "rejected")]
        else:
            raise DataError(f"{where}: a {fmt!r} row names no models; model items need pairwise rows with "
                            f"chosen_{model_field}/rejected_{model_field} or ranking rows with {model_field}")
        for p in range(len(models)):
            for q in range(p + 1, len(models)):
                if models[p] == models[q]:
                    raise DataError(f"{where}: a self-comparison: both answers come from model {models[p]!r}; "
                                    f"a model's rating needs comparisons with other models")
    tie = row.get("tie", False) if fmt == "pairwise" else False
    if not isinstance(tie, bool):
        raise DataError(f"{where}: field 'tie' must be true or false, got {tie!r}")
    out = []
    for p in range(len(responses)):
        for q in range(p + 1, len(responses)):
            tied = tie or (tie_scores is not None and tie_scores[order[p]] == tie_scores[order[q]])
            out.append(Judgement(prompt, responses[p], responses[q], 0.5 if tied else 1.0, annotator, where,
                                 models[p], models[q]))
    return out


def read_judgements(path: str, *, fmt: Optional[str] = None, annotator_field: str = "annotator",
                    model_field: Optional[str] = None) -> tuple[list[Judgement], int]:
    """``(judgements, rows read)`` from the JSONL file ``path``; DataError for an empty file or a bad row."""
    from rlhf_lightning.data.jsonl import read_jsonl_objects

    if fmt is not None and fmt not in COMPARISON_FORMATS:
        raise ConfigError(f"format: unknown comparison format {fmt!r}; known: {', '.join(COMPARISON_FORMATS)}")
    rows = read_jsonl_objects(path)
    if not rows:
        raise DataError(f"{path}: no rows (the file is empty); ratings need pairwise or ranking rows")
    judgements: list[Judgement] = []
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        if fmt is None:
            row_fmt = detect_comparison_format(list(row), source=where)
        else:
            check_comparison_format(fmt, list(row), source=where)
            row_fmt = fmt
        judgements += _row_judgements(row, row_fmt, source=path, lineno=lineno, annotator_field=annotator_field,
                                      model_field=model_field)
    if not judgements:
        raise DataError(f"{path}: {len(rows)} rows but no comparison in them")
    return judgements, len(rows)
