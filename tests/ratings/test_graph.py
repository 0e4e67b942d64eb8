"""Connectivity of comparison graphs, on graphs drawn by hand."""

from __future__ import annotations

from rlhf_lightning.ratings.graph import connected_components, strongly_connected_components, unbeaten_components


def test_connected_components_largest_first_and_isolated_items():
    # 0-1-2 linked, 3-4 linked, 5 alone
    assert connected_components(6, [(0, 1), (2, 1), (4, 3)]) == [[0, 1, 2], [3, 4], [5]]
    assert connected_components(3, [(0, 1), (1, 2), (2, 0)]) == [[0, 1, 2]]


def test_strongly_connected_components():
    # 0→1→2→0 is a cycle; 2→3, 3→4, 4→3: {3, 4} a second component; 5 alone
    edges = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 3)]
    assert strongly_connected_components(6, edges) == [[0, 1, 2], [3, 4], [5]]
    assert strongly_connected_components(3, [(0, 1), (1, 2)]) == [[0], [1], [2]]


def test_unbeaten_components():
    # a chain of wins 0 beats 1 beats 2: 0 was never beaten
    assert unbeaten_components(3, [(0, 1), (1, 2)]) == [[0]]
    # add 2 beats 0: a cycle, strongly connected, the MLE exists
    assert unbeaten_components(3, [(0, 1), (1, 2), (2, 0)]) == []
    # {0, 1} beat each other and both beat 2 and 3, which beat each other: {0, 1} unbeaten from outside
    assert unbeaten_components(4, [(0, 1), (1, 0), (0, 2), (1, 3), (2, 3), (3, 2)]) == [[0, 1]]


def test_long_chains_need_no_recursion():
    """10 000 items in a chain of wins (deeper than Python's recursion limit), then closed into a cycle."""
    n = 10_000
    chain = [(k, k + 1) for k in range(n - 1)]
    assert len(strongly_connected_components(n, chain)) == n
    assert unbeaten_components(n, chain) == [[0]]
    assert strongly_connected_components(n, [*chain, (n - 1, 0)]) == [list(range(n))]
    assert connected_components(n, chain) == [list(range(n))]
