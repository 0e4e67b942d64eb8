"""Reading judge verdicts: template fields, numbers and labels in text, expected values over label
probabilities and win rates of pairwise judgments, each against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from rlhf_lightning.rewards.judge_scores import (
    REFERENCE,
    Verdict,
    expected_choice,
    group_by_prompt,
    preference,
    reference_scores,
    round_robin,
    template_fields,
    win_rates,
)


def test_template_fields_in_order_once_each_and_literal_braces_ignored():
    assert template_fields("Q: {prompt}\nA: {completion} {{json}} {prompt}") == ["prompt", "completion"]


@pytest.mark.parametrize("template, message", [
    ("score {}", "positional field"),
    ("score {0}", "positional field"),
    ("score {completion.upper}", "{completion.upper}"),
    ("score {completion!r}", "{completion!r}"),
    ("score {completion:>10}", "{completion:>10}"),
])
def test_template_fields_refuses_anything_but_plain_names(template, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        template_fields(template)


def test_template_fields_refuses_an_unmatched_brace():
    with pytest.raises(ValueError):
        template_fields("Rate {completion")


@pytest.mark.parametrize("answer, expected", [
    ("7", 6 / 9),                      # (7 - 1) / (10 - 1)
    ("  Score: 10/10", 1.0),           # the first number
    ("1", 0.0),
    ("5.5", 0.5),
    ("11", None),                      # out of range: unreadable, not clipped
    ("0", None),
    ("great answer", None),
    ("", None),
])
def test_number_is_normalised_into_0_1_or_unreadable(answer, expected):
    assert Verdict(scale=(1.0, 10.0)).read(answer) == (None if expected is None else pytest.approx(expected))


def test_pattern_group_is_read_instead_of_the_first_number():
    verdict = Verdict(scale=(1.0, 10.0), pattern=r"\[\[(\d+)\]\]")
    assert verdict.read("On a scale of 1 to 10 I give [[4]].") == pytest.approx(3 / 9)
    assert verdict.read("On a scale of 1 to 10 I give 4.") is None  # the pattern does not match


@pytest.mark.parametrize("answer, expected", [
    ("A", 1.0), ("B", 0.0), ("tie", 0.5), (" B.", 0.0), ("**A**", 1.0),
    ("I prefer B: it is clearer.", 0.0),     # one label, as a word
    ("A is better than B", None),             # two different labels: ambiguous
    ("a", None),                              # case-sensitive: "a" is a word, not the label
    ("AB", None), ("neither", None),
])
def test_label_is_read_alone_or_as_the_only_label_word(answer, expected):
    assert Verdict(choices={"A": 1.0, "B": 0.0, "tie": 0.5}).read(answer) == expected


def test_verdict_needs_exactly_one_of_scale_and_choices():
    with pytest.raises(ValueError):
        Verdict()
    with pytest.raises(ValueError):
        Verdict(scale=(0, 1), choices={"A": 1})


def test_expected_choice_renormalises_over_the_labels():
    # p(A) = 0.3, p(B) = 0.1, the rest (0.6) elsewhere: EV = (0.3·1 + 0.1·0) / 0.4 = 0.75, mass 0.4
    value, mass = expected_choice({"A": 0.3, "B": 0.1}, {"A": 1.0, "B": 0.0})
    assert value == pytest.approx(0.75) and mass == pytest.approx(0.4)
    # five grades: (0.5·4 + 0.25·5 + 0.25·2) / 1 = 3.75
    grades = {str(k): float(k) for k in range(1, 6)}
    value, _ = expected_choice({"1": 0, "2": 0.25, "3": 0, "4": 0.5, "5": 0.25}, grades)
    assert value == pytest.approx(3.75)
    value, mass = expected_choice({"A": 0.0, "B": 0.0}, {"A": 1.0, "B": 0.0})
    assert math.isnan(value) and mass == 0.0


def test_groups_and_round_robin_orders():
    assert group_by_prompt(["p", "q", "p", "r", "q"]) == [[0, 2], [1, 4], [3]]
    assert round_robin([3, 5, 7], both_orders=False) == [(3, 5), (3, 7), (5, 7)]
    assert round_robin([3, 5, 7], both_orders=True) == [(3, 5), (3, 7), (5, 7), (5, 3), (7, 3), (7, 5)]


def test_both_orders_cancel_a_constant_position_bias():
    # true preferences q(0>1) = 0.8, q(0>2) = 0.6, q(1>2) = 0.3; the judge adds +0.1 for the first position:
    # v(i, j) = q(i>j) + 0.1 and v(j, i) = 1 - q(i>j) + 0.1, so p_ij = (v(i,j) + 1 - v(j,i)) / 2 = q(i>j).
    q = {(0, 1): 0.8, (0, 2): 0.6, (1, 2): 0.3}
    verdicts = {}
    for (i, j), p in q.items():
        verdicts[(i, j)] = p + 0.1
        verdicts[(j, i)] = 1 - p + 0.1
    scores = win_rates([0, 1, 2], verdicts)
    # s0 = (0.8 + 0.6) / 2 = 0.7; s1 = (0.2 + 0.3) / 2 = 0.25; s2 = (0.4 + 0.7) / 2 = 0.55; sum = K/2 = 1.5
    assert scores == {0: pytest.approx(0.7), 1: pytest.approx(0.25), 2: pytest.approx(0.55)}
    assert sum(scores.values()) == pytest.approx(1.5)


def test_one_order_uses_the_complement_for_the_other():
    scores = win_rates([0, 1, 2], {(0, 1): 1.0, (0, 2): 1.0, (1, 2): 0.0})
    # 0 beats both: 1; 1 loses to 0 and 2: 0; 2 loses to 0, beats 1: 0.5
    assert scores == {0: 1.0, 1: 0.0, 2: 0.5}
    with pytest.raises(KeyError):
        preference(0, 1, {})
    with pytest.raises(ValueError):
        win_rates([4], {})


def test_reference_scores_average_both_orders():
    # answer 0: v(0, ref) = 1, v(ref, 0) = 0 -> 1; answer 1: v(1, ref) = 1 (position bias), v(ref, 1) = 1 -> 0.5
    verdicts = {(0, REFERENCE): 1.0, (REFERENCE, 0): 0.0, (1, REFERENCE): 1.0, (REFERENCE, 1): 1.0}
    assert reference_scores(2, verdicts) == [1.0, 0.5]
    assert reference_scores(1, {(0, REFERENCE): 0.25}) == [0.25]
