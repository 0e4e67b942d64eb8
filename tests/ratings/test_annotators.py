"""Majority and agreement-weighted votes on a hand-made panel.

Units 1-4: A, B, C, F vote 1; D, E vote 0. Unit 5: A votes 1; D, E vote 0 (majority: 0).
One pass (leave-one-out against the plain majority of the others):
- A: units 1-4, others 3 (B, C, F) vs 2 → 1, agrees; unit 5, others D, E → 0, disagrees: 4/5 = 0.8.
- B, C, F: units 1-4, agree: 1.0.  D, E: units 1-4, disagree; unit 5, others A vs E (D) → tied,
  not counted: 0/4 = 0.0.
Weighted: unit 5 = sign(0.8·(+1) + 0·(−1) + 0·(−1)) → 1. Second pass: A on unit 5 sees D, E at weight
0 → tied, not counted → A = 4/4 = 1.0; D on unit 5 sees A (1.0) vs E (0) → 1, disagrees → 0/5. Stable.
"""

from __future__ import annotations

import pytest

from rlhf_lightning.ratings.annotators import Vote, aggregate_votes, consensus


def panel() -> list[Vote]:
    votes = []
    for unit in (1, 2, 3, 4):
        votes += [Vote(unit, name, 1.0) for name in "ABCF"] + [Vote(unit, name, 0.0) for name in "DE"]
    return votes + [Vote(5, "A", 1.0), Vote(5, "D", 0.0), Vote(5, "E", 0.0)]


def test_majority_and_one_pass_agreement():
    outcomes, stats = aggregate_votes(panel(), "majority")
    assert outcomes == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 0.0}
    assert stats["A"].agreement == pytest.approx(0.8) and stats["A"].compared == 5 and stats["A"].votes == 5
    assert stats["B"].agreement == 1.0 and stats["D"].agreement == 0.0 and stats["D"].compared == 4
    assert all(s.weight == 1.0 for s in stats.values())


@pytest.mark.parametrize("iterations,weight_a", [(1, 0.8), (10, 1.0)])
def test_agreement_weighting_overrules_the_unreliable_majority(iterations, weight_a):
    outcomes, stats = aggregate_votes(panel(), "weighted", iterations=iterations)
    assert outcomes[5] == 1.0
    assert stats["A"].weight == pytest.approx(weight_a)
    assert stats["A"].agreement == pytest.approx(0.8)  # the reported agreement is the one-pass one
    assert stats["D"].weight == 0.0 and stats["E"].weight == 0.0


def test_ties_and_anonymous_votes():
    assert consensus([1.0, 0.0], [1.0, 1.0]) == 0.5
    assert consensus([1.0, 0.0, 0.5], [1.0, 2.0, 5.0]) == 0.0
    votes = [Vote("u", "A", 1.0), Vote("u", ("anonymous", 1), 0.0, named=False), Vote("u", "B", 1.0)]
    outcomes, stats = aggregate_votes(votes, "majority")
    assert outcomes == {"u": 1.0} and set(stats) == {"A", "B"}
    with pytest.raises(ValueError, match="iterations"):
        aggregate_votes(votes, "weighted", iterations=0)
