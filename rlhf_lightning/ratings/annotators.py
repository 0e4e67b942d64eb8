"""Several annotators' votes on the same comparison: majority and agreement-weighted votes.

A *unit* is one judged comparison (a prompt and two answers, in a fixed orientation ``(a, b)``); a vote
on it is ``1`` (a better), ``0`` (b better) or ``0.5`` (tie), with sign ``s = +1, −1, 0``. The
consensus of a set of votes with weights ``w`` is the sign of ``Σ w·s`` (a tie, 0.5, when it is 0).

- ``majority``: every vote weighs 1.
- ``weighted``: each annotator's weight is their *agreement*: the share of their votes that equal the
  consensus of the **other** voters on the same unit (leave-one-out, so an annotator never agrees with
  themself; units where the others are tied or absent do not count). The first pass measures it
  against the plain majority of the others; later passes against the others' weighted consensus
  using the previous weights, until the weights change by less than ``1e-9`` or ``iterations`` passes
  (``iterations = 1``: one pass). A voter with nothing to compare (a sole or anonymous voter, or one
  whose units all had the others tied) keeps weight 1, as in the plain majority. This is a one-parameter-per-annotator simplification
  of Dawid & Skene (1979, Appl. Statist. 28:20), which would also model per-class confusion.

Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Literal, Optional, Sequence

Aggregate = Literal["majority", "weighted"]
__all__ = ["AnnotatorStats", "Vote", "consensus", "agreement", "aggregate_votes"]


@dataclass(frozen=True)
class Vote:
    """One vote on a unit. ``voter`` identifies who cast it (an annotator name, or a unique id for an
    anonymous vote); ``named`` says whether it is an annotator to report."""

    unit: Hashable
    voter: Hashable
    outcome: float
    named: bool = True


@dataclass
class AnnotatorStats:
    votes: int = 0
    compared: int = 0
    agreed: int = 0
    weight: float = 1.0

    @property
    def agreement(self) -> Optional[float]:
        return self.agreed / self.compared if self.compared else None


def _sign(outcome: float) -> int:
    return 1 if outcome > 0.5 else -1 if outcome < 0.5 else 0


def consensus(outcomes: Sequence[float], weights: Sequence[float]) -> float:
    """The weighted-vote outcome: 1, 0, or 0.5 when the weighted signs cancel (|Σ| <= 1e-12)."""
    total = sum(w * _sign(o) for o, w in zip(outcomes, weights, strict=True))
    return 1.0 if total > 1e-12 else 0.0 if total < -1e-12 else 0.5


def agreement(votes: Sequence[Vote], weights: dict[Hashable, float]) -> dict[Hashable, AnnotatorStats]:
    """Per voter: votes cast, votes compared (others present and not tied), and agreed with the
    weighted consensus of the others on the same unit (leave-one-out)."""
    by_unit: dict[Hashable, list[Vote]] = {}
    for v in votes:
        by_unit.setdefault(v.unit, []).append(v)
    stats: dict[Hashable, AnnotatorStats] = {}
    for unit_votes in by_unit.values():
        for k, v in enumerate(unit_votes):
            s = stats.setdefault(v.voter, AnnotatorStats())
            s.votes += 1
            others = [u for m, u in enumerate(unit_votes) if m != k and u.voter != v.voter]
            if not others:
                continue
            other = consensus([u.outcome for u in others], [weights.get(u.voter, 1.0) for u in others])
            if other == 0.5:
                continue
            s.compared += 1
            s.agreed += int(_sign(v.outcome) == _sign(other))
    return stats


def _weights(stats: dict[Hashable, AnnotatorStats]) -> dict[Hashable, float]:
    return {voter: s.agreement if s.agreement is not None else 1.0 for voter, s in stats.items()}


def aggregate_votes(votes: Sequence[Vote], method: Aggregate = "majority", *,
                    iterations: int = 10) -> tuple[dict[Hashable, float], dict[Hashable, AnnotatorStats]]:
    """``(outcome per unit, stats per named voter)``. The stats' ``agreement`` is always the
    one-pass agreement with the plain majority of the others; ``weight`` is the weight used (1 for
    ``majority``)."""
    if method not in ("majority", "weighted"):
        raise ValueError(f"unknown aggregation {method!r} (majority, weighted)")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    first = agreement(votes, {})
    weights = {voter: 1.0 for voter in first}
    if method == "weighted":
        weights = _weights(first)
        for _ in range(iterations - 1):
            new = _weights(agreement(votes, weights))
            done = max(abs(new[k] - weights[k]) for k in new) < 1e-9
            weights = new
            if done:
                break
    by_unit: dict[Hashable, list[Vote]] = {}
    for v in votes:
        by_unit.setdefault(v.unit, []).append(v)
    outcomes = {unit: consensus([v.outcome for v in vs], [weights[v.voter] for v in vs]) for unit, vs in by_unit.items()}
    named = {v.voter for v in votes if v.named}
    for voter, s in first.items():
        s.weight = weights[voter]
    return outcomes, {voter: s for voter, s in first.items() if voter in named}
