"""Sequoia's tree dynamic program (spectheory.solvers.tree_dp) against brute force over all trees."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from spectheory.solvers import tree_dp

import spectheory as st
from spectheory import SpecTheoryValueError

mdp = st.solvers.mdp


@functools.cache
def plane_trees(n: int) -> tuple:
    """Every ordered (plane) rooted tree with n nodes, as nested tuples (a node = tuple of children)."""
    if n == 1:
        return ((),)
    return tuple(tuple(f) for f in forests(n - 1))


@functools.cache
def forests(n: int) -> tuple:
    """Every ordered sequence of plane trees with n nodes in total."""
    if n == 0:
        return ((),)
    out = []
    for first in range(1, n + 1):
        for t in plane_trees(first):
            for rest in forests(n - first):
                out.append((t,) + rest)
    return tuple(out)


def brute_value(tree, p):
    def rec(node, prob):
        return prob + sum(rec(c, prob * (p[b] if b < len(p) else 0.0)) for b, c in enumerate(node))
    return rec(tree, 1.0)


def brute_best(p, m, depth):
    """Best value over all plane trees with at most m nodes and depth ≤ depth."""
    best = -np.inf
    for n in range(1, m + 1):
        for t in plane_trees(n):
            if tree_dp.tree_depth(t) <= depth:
                best = max(best, brute_value(t, p))
    return best


P_VECTORS = [
    [0.7],
    [0.6, 0.2],
    [0.5, 0.3, 0.1],
    [0.2, 0.5, 0.1],      # not decreasing: rank order matters
    [0.0, 0.9],           # first sibling useless
    [0.4, 0.3, 0.2, 0.1],
    [1.0],
    [0.0],
]


def test_catalan_counts():
    assert [len(plane_trees(n)) for n in range(1, 7)] == [1, 1, 2, 5, 14, 42]


@pytest.mark.parametrize("p", P_VECTORS)
def test_dp_equals_brute_force_over_all_trees(p):
    tab = tree_dp.tree_table(p, 6, 5)
    for m in range(1, 7):
        for depth in range(6):
            want = brute_best(p, m, depth)
            got = tab.values[m, depth]
            if m > 1 and depth == 0:
                assert got == -np.inf and want == 1.0  # size exactly m impossible; the root alone is 1
                continue
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (p, m, depth)
            t = tab.tree(m, depth)
            assert t.size == m and t.depth <= depth
            assert tree_dp.tree_value(t.tree, p) == pytest.approx(got, rel=1e-12)
            assert len(t.parents) == m and t.parents[0] == -1
            # parents / ranks describe the same tree
            val = 0.0
            prob = [1.0] * m
            for i in range(1, m):
                prob[i] = prob[t.parents[i]] * (p[t.ranks[i] - 1] if t.ranks[i] <= len(p) else 0.0)
            val = sum(prob)
            assert val == pytest.approx(got, rel=1e-12)


def test_random_p_against_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(10):
        k = int(rng.integers(1, 5))
        p = rng.dirichlet(np.ones(k + 1))[:k]  # Σ p < 1
        m = int(rng.integers(2, 7))
        depth = int(rng.integers(1, m))
        assert tree_dp.best_tree(p, m, depth).expected_tokens == pytest.approx(brute_best(p, m, depth), rel=1e-12)


def test_chain_is_leviathan():
    for alpha in (0.3, 0.8, 1.0):
        for m in (1, 4, 9):
            for depth in (0, 2, 8):
                if m > 1 and depth == 0:
                    continue
                t = tree_dp.best_tree([alpha], m, depth)
                # with one sibling rank, extra nodes beyond the chain sit on rank 2 (p = 0)
                assert t.expected_tokens == pytest.approx(mdp.expected_tokens(alpha, min(m - 1, depth)), rel=1e-12)


def test_budget_equals_brute_force():
    p = [0.5, 0.3, 0.1]
    for costs in (mdp.Costs(0.05), mdp.Costs(0.2, 1.0, 0.05), mdp.Costs(0.8, 1.0, 0.3)):
        r = tree_dp.best_tree_budget(p, costs, max_size=6, max_depth=5)
        best = max(
            brute_best(p, m, l) / (costs.c_draft * l + costs.c0 + costs.c1 * (m - 1))
            for m in range(1, 7) for l in range(6)
        )
        assert r.tokens_per_cost == pytest.approx(best, rel=1e-12)
        assert r.speedup == pytest.approx(best * costs.c0)
        assert r.size <= 6 and r.depth <= 5
    # hopeless drafts: no speculation
    r = tree_dp.best_tree_budget([0.01], 0.5, max_size=8)
    assert r.size == 1 and r.speedup == pytest.approx(1.0)


def test_larger_sizes_are_consistent():
    p = [0.55, 0.2, 0.1, 0.05]
    tab = tree_dp.tree_table(p, 64, 10)
    v = tab.values
    assert np.all(np.diff(v[1:, 1:], axis=0) >= -1e-12)  # more nodes never hurt
    assert np.all(np.diff(v[2:, 1:], axis=1) >= -1e-12)  # deeper never hurts
    t = tab.tree(64, 10)
    assert t.size == 64 and t.depth <= 10
    assert tree_dp.tree_value(t.tree, p) == pytest.approx(v[64, 10], rel=1e-12)


def test_bad_input():
    bad = [
        lambda: tree_dp.best_tree([0.7, 0.5], 4),          # Σ p > 1
        lambda: tree_dp.best_tree([1.2], 4),
        lambda: tree_dp.best_tree([-0.1], 4),
        lambda: tree_dp.best_tree([], 4),
        lambda: tree_dp.best_tree([0.5], 0),
        lambda: tree_dp.best_tree([0.5], 3, depth=-1),
        lambda: tree_dp.tree_table([0.5], 10_000),
        lambda: tree_dp.best_tree_budget([0.5], 0.0),
        lambda: tree_dp.best_tree_budget([0.5], 0.1, (0.0, 0.0)),
        lambda: tree_dp.tree_table([0.5], 4, 3).tree(4, 0),
    ]
    for f in bad:
        with pytest.raises(SpecTheoryValueError):
            f()
