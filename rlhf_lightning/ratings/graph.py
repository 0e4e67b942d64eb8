"""The comparison graph: which ratings a set of comparisons can determine.

- Connected components of the undirected graph (an edge per compared pair): ratings in different
  components are not comparable at all — no comparison links them, only a prior's centring would.
- Strongly connected components of the win graph (``i → j`` when ``i`` won, or tied, against ``j``):
  the Bradley–Terry and Plackett–Luce maximum-likelihood estimates are finite iff it is strongly
  connected (Zermelo 1929; Ford 1957; Hunter 2004, Assumption 1). A *source* component — items that
  never lose to any item outside it — has ratings that grow without bound unless a prior holds them.

Pure Python; items are ``0 … n−1``.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["connected_components", "strongly_connected_components", "unbeaten_components"]


def connected_components(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Components of the undirected graph on ``n`` items, each sorted, largest first (ties: by the
    smallest item); an item in no pair is a component of its own."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for a in range(n):
        groups.setdefault(find(a), []).append(a)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def strongly_connected_components(n: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Strongly connected components of the directed graph (Tarjan 1972, iterative), each sorted,
    in order of their smallest item."""
    succ: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        succ[a].append(b)
    index, low, on_stack = [-1] * n, [0] * n, [False] * n
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        while work:
            v, k = work.pop()
            if k == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            if k < len(succ[v]):
                work.append((v, k + 1))
                u = succ[v][k]
                if index[u] < 0:
                    work.append((u, 0))
                elif on_stack[u]:
                    low[v] = min(low[v], index[u])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    u = stack.pop()
                    on_stack[u] = False
                    comp.append(u)
                    if u == v:
                        break
                out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return sorted(out, key=lambda c: c[0])


def unbeaten_components(n: int, wins: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Strongly connected components of the win graph (``(winner, loser)`` edges; a tie gives both)
    that no outside item ever beat, when there is more than one component; ``[]`` when the graph is
    strongly connected (the MLE exists, given connectivity)."""
    wins = list(wins)
    comps = strongly_connected_components(n, wins)
    if len(comps) <= 1:
        return []
    where = {item: c for c, comp in enumerate(comps) for item in comp}
    beaten = {where[b] for a, b in wins if where[a] != where[b]}
    return [comp for c, comp in enumerate(comps) if c not in beaten]
