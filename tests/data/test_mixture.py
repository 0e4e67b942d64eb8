"""Mixture orders: the weights' ratio within sampling error, each pass over a source a permutation,
and the order a function of (sizes, weights, seed, epoch) only."""

from __future__ import annotations

import math

import pytest

from rlhf_lightning.data.mixture import mixture_order, normalised


def source_of(index: int, sizes: list[int]) -> int:
    offset = 0
    for s, n in enumerate(sizes):
        if index < offset + n:
            return s
        offset += n
    raise AssertionError(index)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_weights_0_8_0_2_give_that_ratio_within_4_sigma(seed):
    """5000 draws with p = 0.8: the count of source 0 is Binomial(5000, 0.8), mean 4000, sigma
    sqrt(5000 * 0.8 * 0.2) = 28.3; the test allows 4 sigma (113), a false alarm about once in 16000.
    The source sizes (1000 and 4000) are the reverse of the weights, so concatenation would give 0.2."""
    sizes = [1000, 4000]
    order = mixture_order(sizes, [0.8, 0.2], seed=seed, epoch=0)
    assert len(order) == 5000
    n0 = sum(source_of(i, sizes) == 0 for i in order)
    assert abs(n0 - 4000) <= 4 * math.sqrt(5000 * 0.8 * 0.2), n0


def test_each_pass_over_a_source_is_a_permutation_of_its_rows():
    """Source 0 (3 rows) is drawn ~ 0.9 * 40 = 36 times: 12 passes, each using every row once before
    any repeats; source 1 (37 rows) is drawn ~ 4 times: no row twice."""
    sizes = [3, 37]
    order = mixture_order(sizes, [9, 1], seed=5, epoch=2)
    small = [i for i in order if i < 3]
    for p in range(len(small) // 3):
        assert sorted(small[3 * p:3 * p + 3]) == [0, 1, 2]
    large = [i for i in order if i >= 3]
    assert len(set(large)) == len(large) and all(3 <= i < 40 for i in large)


def test_order_depends_on_seed_and_epoch_and_not_on_the_weights_scale():
    sizes, w = [10, 20], [0.5, 0.5]
    a = mixture_order(sizes, w, seed=3, epoch=1)
    assert a == mixture_order(sizes, [2.0, 2.0], seed=3, epoch=1)  # normalised over the sources
    assert a != mixture_order(sizes, w, seed=3, epoch=2)
    assert a != mixture_order(sizes, w, seed=4, epoch=1)
    assert normalised([3, 1]) == [0.75, 0.25]


def test_without_shuffle_each_source_is_read_in_file_order():
    sizes = [4, 6]
    order = mixture_order(sizes, [1, 1], seed=0, epoch=0, shuffle=False)
    first = [i for i in order if i < 4]
    second = [i - 4 for i in order if i >= 4]
    assert first == [k % 4 for k in range(len(first))]
    assert second == [k % 6 for k in range(len(second))]
    assert len(first) + len(second) == 10


def test_an_empty_source_or_mismatched_weights_is_refused():
    with pytest.raises(ValueError, match="needs rows"):
        mixture_order([0, 3], [1, 1], seed=0, epoch=0)
    with pytest.raises(ValueError, match="weights"):
        mixture_order([2, 3], [1], seed=0, epoch=0)
