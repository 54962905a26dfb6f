"""Sequoia's dynamic program for the best draft tree (Chen et al. 2024, arXiv 2402.12374; REFERENCE §4).

Model (positional acceptance): the drafts hanging off a node are ranked b = 1, 2, ...; the b-th
child is the accepted continuation with probability p[b] given that its parent was accepted
(Σ_b p[b] ≤ 1: at most one child is accepted). A node is accepted iff every edge on its path is, so
the expected number of tokens a tree yields is

    f(tree) = Σ_{nodes v} Π_{edges e on root→v} p[rank(e)],

the root (the last verified token; it stands for the correction/bonus token) contributing 1. A chain
of K drafts with p = [α] gives Leviathan's E[L] = (1 − α^{K+1})/(1 − α).

Size m counts the root (m − 1 drafted tokens); depth is the number of edges on the longest root–leaf
path (draft steps). With T[m][l][b] the best tree of size m, depth ≤ l whose root has b children:

    T[1][l][0] = 1,
    T[m][l][b] = max_{b ≤ y < m} ( T[y][l][b−1] + p[b] · max_b' T[m−y][l−1][b'] ),

(the first b − 1 children with their subtrees form a tree of size y, the b-th child's subtree has
m − y nodes and depth ≤ l − 1; for b = 1 this is REFERENCE's T[m][l][1] = 1 + p[1]·max T[m−1][l−1]).
Cost O(M³ L) time and O(M² L) memory for all m ≤ M, l ≤ L (vectorised over y and b).

Tree budget: one round with a tree of size m and depth l costs c_draft·l (one draft step per level)
+ c_target(m − 1) = c0 + c1·(m − 1) (verifying m − 1 drafts); :func:`best_tree_budget` maximises
expected tokens per unit cost over m ≤ M, l ≤ L. Speedup = tokens per unit cost · c0.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from spectheory._validation import SpecTheoryValueError

from ._mdp_policy import Costs, as_costs

#: Largest tree size the DP accepts (memory O(M² L) for the reconstruction tables).
MAX_TREE_SIZE = 512


def _check_p(p) -> np.ndarray:
    try:
        a = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecTheoryValueError(f"p: not a numeric array: {p!r}") from None
    if a.ndim != 1 or a.size == 0:
        raise SpecTheoryValueError(f"p: expected a non-empty 1-D array of positional acceptance rates, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise SpecTheoryValueError("p: acceptance probabilities must lie in [0, 1]")
    if a.sum() > 1 + 1e-9:
        raise SpecTheoryValueError(
            f"p: positional acceptance rates sum to {a.sum():.6g} > 1; p[b] is the probability that the "
            "b-th sibling is the accepted one, so at most one sibling is accepted and Σ p ≤ 1"
        )
    return a


def _check_int(x, name: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not float(x).is_integer():
        raise SpecTheoryValueError(f"{name}: must be an integer >= {minimum}, got {x!r}")
    x = int(x)
    if x < minimum:
        raise SpecTheoryValueError(f"{name}: must be an integer >= {minimum}, got {x}")
    return x


def tree_value(tree, p) -> float:
    """Expected tokens f(tree) = Σ_v Π_{path} p[rank] of a tree given as nested tuples: a node is
    the tuple of its children in rank order, a leaf is ``()``, the root is the outer tuple.

    Examples
    --------
    >>> from spectheory.solvers.tree_dp import tree_value
    >>> tree_value(((),), [0.8]), round(tree_value(((), ()), [0.6, 0.3]), 12)
    (1.8, 1.9)
    """
    p = _check_p(p)

    def rec(node, prob):
        total = prob
        for b, child in enumerate(node, start=1):
            pb = p[b - 1] if b <= p.shape[0] else 0.0
            total += rec(child, prob * pb)
        return total

    return float(rec(tuple(tree), 1.0))


def tree_size(tree) -> int:
    """Number of nodes (root included) of a nested-tuple tree.

    Examples
    --------
    >>> from spectheory.solvers.tree_dp import tree_size, tree_depth
    >>> tree_size(((), ((),))), tree_depth(((), ((),)))
    (4, 2)
    """
    return 1 + sum(tree_size(c) for c in tree)


def tree_depth(tree) -> int:
    """Number of edges on the longest root–leaf path of a nested-tuple tree (see :func:`tree_size`)."""
    return 0 if not tree else 1 + max(tree_depth(c) for c in tree)


def _parents(tree):
    parents, ranks = [-1], [0]

    def rec(node, me):
        for b, child in enumerate(node, start=1):
            idx = len(parents)
            parents.append(me)
            ranks.append(b)
            rec(child, idx)

    rec(tree, 0)
    return tuple(parents), tuple(ranks)


@dataclass(frozen=True)
class BestTree:
    """A draft tree and its expected tokens.

    ``tree`` is the nested-tuple form (:func:`tree_value`); ``parents[i]`` / ``ranks[i]`` give node
    i's parent and its rank among its siblings (node 0 is the root: parent −1, rank 0), in depth-first
    order.
    """

    expected_tokens: float
    size: int
    depth: int
    tree: tuple = field(repr=False)
    parents: tuple = field(repr=False)
    ranks: tuple = field(repr=False)


@dataclass(frozen=True, eq=False)
class TreeTable:
    """All DP optima: ``values[m, l]`` = best expected tokens of a tree of size m (root included)
    and depth ≤ l (−inf when infeasible: m ≥ 2 and l = 0; row 0 unused)."""

    p: np.ndarray
    values: np.ndarray
    _best_b: np.ndarray = field(repr=False)
    _arg_y: np.ndarray = field(repr=False)

    @property
    def max_size(self) -> int:
        return self.values.shape[0] - 1

    @property
    def max_depth(self) -> int:
        return self.values.shape[1] - 1

    def tree(self, m: int, l: int) -> BestTree:
        """Reconstruct the optimal tree of size m and depth ≤ l."""
        m = _check_int(m, "m", 1)
        l = _check_int(l, "depth", 0)
        if m > self.max_size or l > self.max_depth:
            raise SpecTheoryValueError(f"m, depth: the table covers m <= {self.max_size}, depth <= {self.max_depth}")
        if not np.isfinite(self.values[m, l]):
            raise SpecTheoryValueError(f"m, depth: no tree of size {m} has depth <= {l}")

        def node(size, depth):
            return tuple(children(size, depth, int(self._best_b[size, depth])))

        def children(size, depth, b):
            out = []
            while b > 0:  # peel off the last child, then the tree of the first b − 1
                y = int(self._arg_y[size, depth, b])
                out.append(node(size - y, depth - 1))
                size, b = y, b - 1
            return out[::-1]

        t = node(m, l)
        parents, ranks = _parents(t)
        return BestTree(float(self.values[m, l]), tree_size(t), tree_depth(t), t, parents, ranks)


def tree_table(p, max_size: int, max_depth: int | None = None) -> TreeTable:
    """Sequoia's DP for every size m ≤ ``max_size`` and depth l ≤ ``max_depth`` (default max_size − 1,
    i.e. unconstrained). O(M³ L) time, O(M² L) memory.

    Examples
    --------
    >>> from spectheory.solvers.tree_dp import tree_table
    >>> tab = tree_table([0.6, 0.2], 4)
    >>> tab.values[4].round(4).tolist()
    [-inf, 1.8, 2.16, 2.176]
    """
    p = _check_p(p)
    M = _check_int(max_size, "max_size", 1)
    if M > MAX_TREE_SIZE:
        raise SpecTheoryValueError(f"max_size: at most {MAX_TREE_SIZE}, got {M}")
    L = M - 1 if max_depth is None else _check_int(max_depth, "max_depth", 0)
    L = min(L, M - 1) if M > 1 else L
    pe = np.zeros(M + 1)
    k = min(p.shape[0], M)
    pe[1:k + 1] = p[:k]
    best = np.full((M + 1, L + 1), -np.inf)
    best_b = np.zeros((M + 1, L + 1), dtype=np.int32)
    arg_y = np.zeros((M + 1, L + 1, M), dtype=np.int32)
    best[1, :] = 1.0
    for l in range(1, L + 1):
        T = np.full((M + 1, M), -np.inf)  # T[y, b] at this depth bound
        T[1, 0] = 1.0
        prev = best[:, l - 1]
        for m in range(2, M + 1):
            A = T[1:m, 0:m - 1]                          # rows y = 1..m−1, cols b − 1 = 0..m−2
            sub = prev[m - 1:0:-1]                        # Best[m − y, l − 1] for y = 1..m−1
            pb = pe[1:m]                                  # p[b] for b = 1..m−1
            contrib = np.where(np.isfinite(sub)[:, None], pb[None, :] * np.where(np.isfinite(sub), sub, 0.0)[:, None], -np.inf)
            cand = A + contrib
            j = np.argmax(cand, axis=0)
            T[m, 1:m] = cand[j, np.arange(m - 1)]
            arg_y[m, l, 1:m] = j + 1
            bb = int(np.argmax(T[m]))
            best[m, l] = T[m, bb]
            best_b[m, l] = bb
    return TreeTable(p, best, best_b, arg_y)


def best_tree(p, m: int, depth: int | None = None) -> BestTree:
    """The tree of size m (root included, so m − 1 drafts) and depth ≤ ``depth`` (default
    unconstrained) with the most expected tokens under positional acceptance ``p`` (Sequoia's DP).

    Parameters
    ----------
    p : array_like
        p[b − 1] = probability that the b-th ranked sibling is accepted (Σ p ≤ 1).
    m : int
        Tree size ≥ 1.
    depth : int, optional
        Largest number of draft steps (edges on a root–leaf path).

    Examples
    --------
    >>> from spectheory.solvers.tree_dp import best_tree
    >>> t = best_tree([0.6, 0.2], 4)
    >>> round(t.expected_tokens, 4), t.tree, t.depth
    (2.176, ((((),),),), 3)
    >>> best_tree([0.6, 0.2], 4, depth=1).tree
    ((), (), ())
    """
    m = _check_int(m, "m", 1)
    l = m - 1 if depth is None else _check_int(depth, "depth", 0)
    l = min(l, max(m - 1, 0))
    tab = tree_table(p, m, l)
    return tab.tree(m, l)


@dataclass(frozen=True)
class TreeBudget:
    """The tree size and depth maximising expected tokens per unit cost (see :func:`best_tree_budget`)."""

    tree: BestTree
    size: int
    depth: int
    expected_tokens: float
    cost: float
    tokens_per_cost: float
    speedup: float
    speedups: np.ndarray = field(repr=False)  # [m, l] speedup of the best tree of size m, depth ≤ l


def best_tree_budget(p, c_draft=None, c_target=None, *, costs: Costs | None = None, max_size: int = 64,
                     max_depth: int | None = None) -> TreeBudget:
    """The tree budget (size m, depth l) maximising expected tokens per unit cost,
    f*(m, l) / (c_draft·l + c0 + c1·(m − 1)), over m ≤ ``max_size`` and l ≤ ``max_depth``.
    m = 1 (no drafts) is speedup 1. Costs as in :func:`spectheory.solvers.mdp.optimal_policy`.

    Examples
    --------
    >>> from spectheory.solvers.tree_dp import best_tree_budget
    >>> r = best_tree_budget([0.6, 0.2, 0.1], 0.05, (1.0, 0.01), max_size=32)
    >>> r.size, r.depth, round(r.speedup, 4)
    (22, 4, 2.484)
    """
    costs = as_costs(c_draft, c_target, costs)
    tab = tree_table(p, max_size, max_depth)
    M, L = tab.max_size, tab.max_depth
    m = np.arange(M + 1)[:, None]
    l = np.arange(L + 1)[None, :]
    cost = costs.c_draft * l + costs.c0 + costs.c1 * (m - 1)
    with np.errstate(invalid="ignore"):
        ratio = np.where(np.isfinite(tab.values), tab.values / cost, -np.inf)
    ratio[0, :] = -np.inf
    i = int(np.argmax(ratio))
    ms, ls = divmod(i, L + 1)
    t = tab.tree(ms, ls)
    c = costs.c_draft * t.depth + costs.c0 + costs.c1 * (t.size - 1)
    speedups = np.where(np.isfinite(ratio), ratio * costs.c0, np.nan)
    return TreeBudget(t, t.size, t.depth, t.expected_tokens, c, t.expected_tokens / c,
                      t.expected_tokens / c * costs.c0, speedups)
