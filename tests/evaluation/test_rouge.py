"""ROUGE by hand: n-gram overlaps, the LCS, F from P and R, tokenisation, several references."""

from __future__ import annotations

import pytest

from rlhf_lightning.evaluation.rouge import lcs_length, rouge, rouge_l, rouge_n, tokenize


def test_tokenize_lowercases_drops_punctuation_and_splits_cjk():
    assert tokenize("The cat, the HAT!") == ["the", "cat", "the", "hat"]
    assert tokenize("春风拂面，百花齐放。") == ["春", "风", "拂", "面", "百", "花", "齐", "放"]
    assert tokenize("GPT-4 costs $20") == ["gpt", "4", "costs", "20"]
    assert tokenize("") == []


def test_rouge_1_and_2_counts_clip_at_the_reference():
    """c = "the the cat sat", r = "the cat sat on the mat".
    Unigrams: the: min(2, 2) = 2, cat 1, sat 1 -> overlap 4; P = 4/4 = 1, R = 4/6; F = 2·(2/3)/(5/3) = 0.8.
    Bigrams of c: (the the) (the cat) (cat sat); of r: (the cat) (cat sat) (sat on) (on the) (the mat)
    -> overlap 2; P = 2/3, R = 2/5; F = 2·(4/15)/(16/15) = 0.5."""
    c, r = tokenize("the the cat sat"), tokenize("the cat sat on the mat")
    one = rouge_n(c, r, 1)
    assert (one.precision, one.recall, one.f1) == pytest.approx((1.0, 2 / 3, 0.8))
    two = rouge_n(c, r, 2)
    assert (two.precision, two.recall, two.f1) == pytest.approx((2 / 3, 2 / 5, 0.5))


def test_lcs_and_rouge_l():
    """LCS("a b c d e", "a c e b") = 3 (a c e); P = 3/5, R = 3/4, F = 2·(9/20)/(27/20) = 2/3."""
    a, b = "a b c d e".split(), "a c e b".split()
    assert lcs_length(a, b) == lcs_length(b, a) == 3
    s = rouge_l(a, b)
    assert (s.precision, s.recall, s.f1) == pytest.approx((0.6, 0.75, 2 / 3))
    assert lcs_length([], b) == 0 and rouge_l([], b).f1 == 0.0


def test_rouge_takes_the_best_reference_and_the_chosen_measure():
    """Against "a b" the candidate "a b c" has ROUGE-1 P 2/3, R 1, F 0.8; against "x" 0. Best: 0.8."""
    assert rouge("a b c", ["x", "a b"], "rouge1") == pytest.approx(0.8)
    assert rouge("a b c", "a b", "rouge1", "recall") == pytest.approx(1.0)
    assert rouge("a b c", "a b", "rouge1", "precision") == pytest.approx(2 / 3)
    assert rouge("", "a b") == 0.0 and rouge("a", "a") == 1.0
    with pytest.raises(ValueError, match="rouge3"):
        rouge("a", "a", "rouge3")
