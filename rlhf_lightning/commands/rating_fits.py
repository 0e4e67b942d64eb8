"""From judgements to ratings: annotator votes, rating groups, graph checks and the fits.

Items are the answers within each prompt (``item="answer"``: one group per prompt) or the models
across prompts (``item="model"``: one group). A judged *unit* is (prompt, answer a, answer b) — with the
models in model mode — so several annotators' votes on it can be aggregated before fitting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional

from rlhf_lightning.data.judgements import Judgement, key_of
from rlhf_lightning.errors import ConfigError, DataError

SHOWN = 5


@dataclass
class Group:
    """One set of items rated together: ``items`` (display values), comparisons ``(i, j, y)``."""

    prompt: Any
    items: list[Any] = field(default_factory=list)
    index: dict[Hashable, int] = field(default_factory=dict)
    i: list[int] = field(default_factory=list)
    j: list[int] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    rankings: list[list[int]] = field(default_factory=list)  # whole rankings, best first (plackett_luce)

    def item(self, key: Hashable, value: Any) -> int:
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append(value)
        return self.index[key]


def _unit(j: Judgement, model_items: bool) -> tuple[Hashable, Hashable, Hashable, bool]:
    """(prompt key, first item key, second item key, flipped): the unit in a canonical orientation."""
    a = (j.a_model, key_of(j.a)) if model_items else key_of(j.a)
    b = (j.b_model, key_of(j.b)) if model_items else key_of(j.b)
    return (key_of(j.prompt), a, b, False) if a <= b else (key_of(j.prompt), b, a, True)


def aggregate(judgements: list[Judgement], method: str, *, model_items: bool, iterations: int):
    """``(comparisons, annotator report, anonymous votes)``; comparisons are ``(prompt key, a, b, a_model,
    b_model, outcome)`` with ``a`` the winner or tied. ``method = "none"`` keeps every judgement."""
    from rlhf_lightning.ratings.annotators import Vote, aggregate_votes, agreement

    votes, first = [], {}
    for n, j in enumerate(judgements):
        prompt, ka, kb, flipped = _unit(j, model_items)
        unit = (prompt, ka, kb)
        if unit not in first:
            first[unit] = (j.b, j.a, j.b_model, j.a_model) if flipped else (j.a, j.b, j.a_model, j.b_model)
        named = j.annotator is not None
        votes.append(Vote(unit, j.annotator if named else ("anonymous", n), 1 - j.outcome if flipped else j.outcome,
                          named))
    if method == "none":
        stats = {k: s for k, s in agreement(votes, {}).items() if isinstance(k, str)}
        outcomes = [(v.unit, v.outcome) for v in votes]
    else:
        by_unit, stats = aggregate_votes(votes, method, iterations=iterations)
        outcomes = list(by_unit.items())
    comparisons = []
    for unit, outcome in outcomes:
        a, b, a_model, b_model = first[unit]
        if outcome < 0.5:  # b won: put the winner first
            a, b, a_model, b_model, outcome = b, a, b_model, a_model, 1 - outcome
        comparisons.append((unit[0], a, b, a_model, b_model, outcome))
    report = {str(k): {"votes": s.votes, "compared": s.compared, "agreement": s.agreement,
                       "weight": s.weight if method == "weighted" else 1.0} for k, s in sorted(stats.items())}
    anonymous = sum(1 for v in votes if not v.named)
    return comparisons, report, anonymous


def build_groups(judgements: list[Judgement], comparisons: list, *, model_items: bool) -> list[Group]:
    prompts = {key_of(j.prompt): j.prompt for j in judgements}
    groups: dict[Hashable, Group] = {}
    for prompt_key, a, b, a_model, b_model, outcome in comparisons:
        group_key = None if model_items else prompt_key
        g = groups.get(group_key)
        if g is None:
            g = groups[group_key] = Group(None if model_items else prompts[prompt_key])
        if model_items:
            ia, ib = g.item(a_model, a_model), g.item(b_model, b_model)
        else:
            ia, ib = g.item(key_of(a), a), g.item(key_of(b), b)
        g.i.append(ia)
        g.j.append(ib)
        g.y.append(outcome)
    return list(groups.values())


def build_ranking_groups(judgements: list[Judgement], *, model_items: bool) -> list[Group]:
    """Groups holding each row's whole ranking (Plackett–Luce): a row's judgements are its pairs in
    rank order, so its ranking is the best answer followed by every answer it beat."""
    rows: dict[str, list[Judgement]] = {}
    for j in judgements:
        if j.outcome != 1.0:
            raise DataError(f"{j.where}: a tie; plackett_luce ranks without ties (use method bradley_terry)")
        rows.setdefault(j.where, []).append(j)
    groups: dict[Hashable, Group] = {}
    for pairs in rows.values():
        first = pairs[0]
        key = None if model_items else key_of(first.prompt)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(None if model_items else first.prompt)
        if model_items:
            ranked = [g.item(first.a_model, first.a_model)] + \
                [g.item(p.b_model, p.b_model) for p in pairs if p.a_model == first.a_model]
        else:
            ranked = [g.item(key_of(first.a), first.a)] + \
                [g.item(key_of(p.b), p.b) for p in pairs if key_of(p.a) == key_of(first.a)]
        g.rankings.append(ranked)
        for p in range(len(ranked)):
            for q in range(p + 1, len(ranked)):
                g.i.append(ranked[p])
                g.j.append(ranked[q])
                g.y.append(1.0)
    return list(groups.values())

def _show(value: Any) -> str:
    text = value if isinstance(value, str) else key_of(value)
    text = " ".join(text.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _names(items: list[Any], members: list[int]) -> str:
    shown = ", ".join(_show(items[m]) for m in members[:SHOWN])
    return shown + (f" and {len(members) - SHOWN} more" if len(members) > SHOWN else "")


def components(group: Group, policy: str, source: str) -> list[list[int]]:
    """The connected components to fit; DataError naming the items cut off unless ``policy = "separate"``."""
    from rlhf_lightning.ratings.graph import connected_components

    comps = connected_components(len(group.items), zip(group.i, group.j, strict=True))
    if len(comps) > 1 and policy != "separate":
        where = "the models" if group.prompt is None else f"the answers to prompt {_show(group.prompt)}"
        cut = "; ".join(f"[{_names(group.items, c)}]" for c in comps[1:])
        raise DataError(f"{source}: the comparison graph of {where} is disconnected: {len(comps)} groups that no "
                        f"comparison links; the largest is [{_names(group.items, comps[0])}], cut off: {cut}. Their "
                        "ratings cannot be compared: add comparisons between the groups, or pass --components "
                        "separate to rate each group on its own (each centred at 0)")
    return comps


def check_finite(group: Group, members: list[int], i: list[int], j: list[int], y: list[float], source: str) -> None:
    """Without a prior: DataError naming items that never lost to the rest (their MLE is infinite)."""
    from rlhf_lightning.ratings.graph import unbeaten_components

    wins = [(a, b) for a, b, o in zip(i, j, y, strict=True) if o > 0] + \
           [(b, a) for a, b, o in zip(i, j, y, strict=True) if o < 1]
    unbeaten = unbeaten_components(len(members), wins)
    if unbeaten:
        where = "models" if group.prompt is None else f"answers to prompt {_show(group.prompt)}"
        top = [members[m] for m in unbeaten[0]]
        raise DataError(f"{source}: with prior 0 (maximum likelihood) the ratings of the {where} are infinite: "
                        f"[{_names(group.items, top)}] never lost a comparison to the other items, so the win graph "
                        "is not strongly connected (Hunter 2004); set --prior > 0 (e.g. 0.1) for finite ratings")


@dataclass
class Rated:
    rating: list[float]
    se: list[Optional[float]]
    elo: list[float]
    component: list[int]
    fits: list[dict]


def fit_group(group: Group, settings: Any, source: str) -> Rated:
    """Fit every component of ``group`` with ``settings.method`` (bradley_terry, elo, plackett_luce)."""
    from rlhf_lightning.ratings.bradley_terry import fit_bradley_terry
    from rlhf_lightning.ratings.elo import elo_ratings, elo_shuffled, elo_to_log_odds
    from rlhf_lightning.ratings.plackett_luce import fit_plackett_luce

    n = len(group.items)
    out = Rated([0.0] * n, [None] * n, [0.0] * n, [0] * n, [])
    for c, members in enumerate(components(group, settings.components, source)):
        local = {m: k for k, m in enumerate(members)}
        idx = [k for k, a in enumerate(group.i) if a in local]
        i, j = [local[group.i[k]] for k in idx], [local[group.j[k]] for k in idx]
        y = [group.y[k] for k in idx]
        info: dict[str, Any] = {"component": c, "items": len(members), "comparisons": len(idx)}
        if settings.method == "elo":
            if settings.elo_shuffles:
                elo, spread = elo_shuffled(len(members), i, j, y, shuffles=settings.elo_shuffles, seed=settings.seed,
                                           k=settings.elo_k)
                se = [float(s) for s in spread]
            else:
                elo, se = elo_ratings(len(members), i, j, y, k=settings.elo_k), [None] * len(members)
            rating = elo_to_log_odds(elo)
        else:
            if settings.prior == 0:
                check_finite(group, members, i, j, y, source)
            if settings.method == "plackett_luce":
                rankings = [[local[a] for a in r] for r in group.rankings if r[0] in local]
                fit = fit_plackett_luce(len(members), rankings, prior=settings.prior)
            elif settings.ties == "davidson" and all(o == 0.5 for o in y):
                where = "the models" if group.prompt is None else f"the answers to prompt {_show(group.prompt)}"
                raise DataError(f"{source}: every comparison of {where} is a tie, so Davidson's tie parameter has "
                                "no finite estimate; use --ties half (all ratings then equal)")
            else:
                fit = fit_bradley_terry(len(members), i, j, y, prior=settings.prior, ties=settings.ties)
            rating, se = fit.ratings, [float(s) for s in fit.se]
            elo = 1500.0 + rating * (400.0 / math.log(10.0))
            info.update(log_likelihood=fit.log_likelihood, iterations=fit.iterations, converged=fit.converged)
            if fit.nu is not None:
                info["nu"] = fit.nu
        for k, m in enumerate(members):
            out.rating[m], out.se[m], out.elo[m], out.component[m] = float(rating[k]), se[k], float(elo[k]), c
        out.fits.append(info)
    return out


def check_settings(init: Any) -> None:
    if init.prior < 0 or not math.isfinite(init.prior):
        raise ConfigError(f"prior must be a finite number >= 0, got {init.prior}")
    if init.elo_k <= 0 or not math.isfinite(init.elo_k):
        raise ConfigError(f"elo_k must be a finite number > 0, got {init.elo_k}")
    if init.elo_shuffles < 0:
        raise ConfigError(f"elo_shuffles must be >= 0 (0: the file order), got {init.elo_shuffles}")
    if init.agreement_iterations < 1:
        raise ConfigError(f"agreement_iterations must be >= 1, got {init.agreement_iterations}")
    if init.ties == "davidson" and init.method != "bradley_terry":
        raise ConfigError(f"ties: davidson is a Bradley-Terry model; method is {init.method!r}")
    if not init.annotator_field.strip():
        raise ConfigError("annotator_field must name a field")
    if init.item == "model" and not (init.model_field or "").strip():
        raise ConfigError("item: model needs model_field (the field naming each answer's model)")

