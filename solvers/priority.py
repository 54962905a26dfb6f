"""Optimal verifiers built from priority rules: an optimal selection law r* and a sampler inducing it.

The mathematics and the proofs are on the theory page :doc:`/theory/priority`.

Khisti et al.'s canonical decomposition (arXiv 2410.18234) turns any lossless multi-draft verifier into
(1) a selection rule picking one draft, inducing a law r on Ω, then (2) single-draft speculative sampling
from r to p, with acceptance Σ min(p, r). With F(A) = P(some draft ∈ A) = 1 − C(Ω ∖ A) (C the containment
probability), the achievable r are the base polytope of the submodular F,

    B(F) = {r ≥ 0 : r(A) ≤ F(A) for all A, r(Ω) = 1}   (equivalently r(H) ≥ C(H) for all H),

whose vertices are *priority rules* v_σ (select the drafted token ranked highest in an order σ;
v_σ(σ_k) = F({σ_1..σ_k}) − F({σ_1..σ_{k−1}})). An optimal verifier is a random priority order with
induced law r* ∈ B(F) and Σ min(p, r*) = α*, followed by speculative sampling from r* to p.

The optimal selection law
-------------------------
Let H* minimise p(H) + 1 − C(H) (the subset dual, α* = p(H*) + F(U), U = Ω ∖ H*). Then r ∈ B(F) is
optimal iff r(U) = F(U), r ≤ p on U and r ≥ p on H* (then Σ min(p, r) = F(U) + p(H*) = α*). A set
with r(U) = F(U) is tight, so such r are exactly B(F|U) × B(F/U): a law on U inside the restriction
F|U and a law on H* inside the contraction F/U(A) = F(A ∪ U) − F(U) — the rule ranks every token of U
above every token of H*.

* **i.i.d. and without replacement** (``method="threshold"``; any V): H* is a prefix of the p/q order
  (the sorted-prefix theorem) and

      r*(x) = min(p(x), c_U q(x))  on U,        r*(x) = max(p(x), c_H q(x))  on H*,

  with the levels c_U, c_H fixed by r*(U) = F(U) and r*(H*) = C(H*). *Proof* (for every scheme whose C
  depends on the token masses alone and satisfies Lemmas A and B of the sorted-prefix theorem,
  :doc:`/theory/wor_prefix_proof`; written out in :doc:`/theory/priority`): r* ∈ B(F|U) iff min over
  H ⊇ H* of r*(H) − C(H) is attained at H*; by the
  constrained exchange argument (Lemma C holds with a fixed set G) a minimiser is H* plus a prefix of
  U in the order of r*/q = min(p/q, c_U), plus any part of a tie class; along any chain through a tie
  class the increments of C per unit of mass grow (Lemma C), so the part of a tie class is all or
  nothing; on the tokens with p/q < c_U the values are those of p, where H* is optimal, and on the
  tie class {p/q ≥ c_U} the end points are H* (value 0 by construction) and the whole of U. The same
  argument with r* − C on subsets of H* gives r* ∈ B(F/U). Cost: the prefix dual (O(V log V) for iid,
  O(V·n·M) for without replacement, M ≈ 40–90 quadrature nodes) plus O(V log V) for the two levels.
* **greedy** and **hub** (``method="fixed set"``; any V): the drafts always contain a fixed set T (the
  n−1 likeliest tokens; the hub) and one free draft x ∉ T with law q' (q off T, renormalised). Then
  r* = min(p, q') off T (select x with probability min(1, p(x)/q'(x))) and the rejected mass L =
  Σ (q' − p)+ ≥ p(T) goes to T as r*_T = p_T + (L − p(T))/|T|. O(V).
* **topk** (deterministic top-n drafts T): r*_T = p_T + (1 − p(T))/|T|. O(V).
* **independent** drafters, or any scheme at small V (``method="greedy"``): the greedy algorithm on
  F_p(A) = min_{B ⊆ A} F(B) + p(A ∖ B) = p(A) + min_{H ⊇ Ω∖A} [p(H) − C(H)] along the descending p/q
  order gives x ≤ p in the polymatroid of F with x(Ω) = α*, extended to a base r* ≥ x by adding each
  token's exchange capacity min_{A ∋ i} F(A) − r(A). O(V·2^V) over all subsets, V ≤ 12.

Sampling the selection
----------------------
:func:`priority_mixture` writes r* as an explicit mixture of at most V + 1 priority orders by walking
down the faces of B(F): take a vertex v of the smallest face containing the current point r (an order
in which every tight set of r is a prefix-closed union: tokens sorted by the smallest tight set
containing them), move r away from v as far as B(F) allows, r ← (r − λv)/(1 − λ) with
λ = min over A not tight for v of (F(A) − r(A))/(F(A) − v(A)); the new point is tight on one more set,
so the face dimension drops at each step. Cost O(V²·2^V): V ≤ :data:`MAX_PRIORITY_V`. The sampler's
selection law is recomputed from the orders and weights it actually uses, so speculative sampling
from it is exactly lossless; its acceptance equals α* up to rounding (checked against the LP).
For greedy, hub and topk :class:`FixedSetSelector` samples r* directly at any V.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectheory._validation import SpecTheoryValueError, check_single_pair
from spectheory.schemes import get_scheme

from .brute_dual import _subset_sums, containment_table
from .exponential_race import wor_containment_prefixes

#: Largest vocabulary for which :func:`priority_mixture` writes r* as an explicit mixture of priority
#: orders (it walks over all 2^V subsets V times).
MAX_PRIORITY_V = 12

@dataclass(frozen=True)
class SelectionLaw:
    """An optimal selection law of the canonical decomposition.

    Attributes
    ----------
    law : numpy.ndarray, shape (V,)
        r*: P(the selected draft is x). It lies in the base polytope of F (r*(H) ≥ C(H) for all H).
    acceptance : float
        Σ_x min(p(x), r*(x)) = α*.
    first : numpy.ndarray of bool, shape (V,)
        U = Ω ∖ H*: the tokens every optimal priority order of this law ranks above the others
        (r* ≤ p there, r* ≥ p on H*; empty for the fixed-set and greedy methods).
    method : str
        ``"threshold"``, ``"fixed set"`` or ``"greedy"`` (see the module docstring).
    """

    law: np.ndarray
    acceptance: float
    first: np.ndarray
    method: str


@dataclass(frozen=True)
class PriorityMixture:
    """A random priority order: select the drafted token ranked highest in order ``orders[k]``
    (token ids, highest priority first), drawn with probability ``weights[k]``.

    Attributes
    ----------
    orders : numpy.ndarray of int, shape (K, V)
    weights : numpy.ndarray, shape (K,)
    law : numpy.ndarray, shape (V,)
        The selection law the mixture induces, Σ_k weights[k]·v_{orders[k]} (computed exactly from
        the scheme's containment table, not copied from the target).
    acceptance : float
        Σ min(p, law).
    target : SelectionLaw
        The optimal law the mixture was built for (``law`` equals ``target.law`` up to rounding).
    """

    orders: np.ndarray
    weights: np.ndarray
    law: np.ndarray
    acceptance: float
    target: SelectionLaw


# --------------------------------------------------------------------------------------------
# levels of the threshold law
# --------------------------------------------------------------------------------------------
def _level_min(p: np.ndarray, q: np.ndarray, target: float) -> np.ndarray:
    """min(p, c·q) with c ≥ 0 chosen so that it sums to ``target`` (≤ Σ p); tokens with q = 0 get 0."""
    out = np.zeros_like(p)
    pos = q > 0
    pp, qq = p[pos], q[pos]
    if pp.size == 0 or target <= 0:
        return out
    ratio = pp / qq
    order = np.argsort(ratio, kind="stable")
    rs, ps, qs = ratio[order], pp[order], qq[order]
    below_p = np.concatenate([[0.0], np.cumsum(ps)])  # Σ p over the j smallest ratios
    above_q = np.concatenate([np.cumsum(qs[::-1])[::-1], [0.0]])  # Σ q over the rest
    g = below_p[:-1] + rs * above_q[:-1]  # value at c = rs[j]: nondecreasing in j
    j = int(np.searchsorted(g, target, side="right"))  # g[j-1] <= target < g[j]
    if j >= len(rs):
        out[pos] = pp
        return out
    c = (target - below_p[j]) / above_q[j]
    out[pos] = np.minimum(pp, c * qq)
    return out


def _level_max(p: np.ndarray, q: np.ndarray, target: float) -> np.ndarray:
    """max(p, c·q) on q > 0 (0 where q = 0) with c ≥ 0 chosen so that it sums to ``target`` (≥ Σ p)."""
    out = np.zeros_like(p)
    pos = q > 0
    pp, qq = p[pos], q[pos]
    if pp.size == 0:
        return out
    ratio = pp / qq
    order = np.argsort(ratio, kind="stable")
    rs, ps, qs = ratio[order], pp[order], qq[order]
    below_q = np.concatenate([[0.0], np.cumsum(qs)])  # Σ q over the j smallest ratios
    above_p = np.concatenate([np.cumsum(ps[::-1])[::-1], [0.0]])  # Σ p over the rest
    g = rs * below_q[:-1] + above_p[:-1]  # value at c = rs[j]: nondecreasing in j
    j = int(np.searchsorted(g, target, side="right"))
    if j == 0:
        out[pos] = pp
        return out
    # c in [rs[j-1], rs[j]): c·Σ_{i<j} q + Σ_{i≥j} p = target
    c = (target - above_p[j]) / below_q[j]
    out[pos] = np.maximum(pp, c * qq)
    return out


# --------------------------------------------------------------------------------------------
# the optimal selection law, per scheme
# --------------------------------------------------------------------------------------------
def _ratio_order(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    if q.ndim == 2:  # independent drafters: any order serves the greedy algorithm
        q = q.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(q > 0, p / np.where(q > 0, q, 1.0), np.inf)
    return np.argsort(ratio, kind="stable")


def _threshold_law(p, q, n, sampling, table=None) -> SelectionLaw:
    V = p.shape[0]
    order = _ratio_order(p, q)
    k = get_scheme(sampling).effective_n(q, n)
    if table is not None:  # exact containment from the tuple law (small V)
        masks = np.concatenate([[0], np.cumsum(np.left_shift(np.int64(1), order))])
        C = table[masks]
    elif sampling == "iid":
        C = np.concatenate([[0.0], np.cumsum(q[order])]) ** k
        C[-1] = 1.0
    else:
        C = wor_containment_prefixes(q, n, order)
    P = np.concatenate([[0.0], np.cumsum(p[order])])
    i = int(np.argmin(P + 1.0 - C))
    H, U = order[:i], order[i:]
    r = np.zeros(V)
    r[U] = _level_min(p[U], q[U], 1.0 - C[i])
    r[H] = _level_max(p[H], q[H], C[i])
    first = np.zeros(V, dtype=bool)
    first[U] = True
    return SelectionLaw(r, float(np.minimum(p, r).sum()), first, "threshold")


def fixed_set_part(q: np.ndarray, n: int, sampling: str):
    """(T, q'): the tokens every draft tuple contains, and the law of the one free draft (None when
    every draft is fixed, as for topk). Used by the greedy, hub and topk schemes."""
    scheme = get_scheme(sampling)
    k = scheme.effective_n(q, n)
    if sampling == "greedy":
        T = scheme.deterministic_part(q, k)
    elif sampling == "hub":
        T = np.array([scheme.hub(q)]) if k == 2 else np.zeros(0, dtype=np.int64)
    else:  # topk: every draft is fixed
        return np.asarray(scheme.tuple_law(q, n).tuples[0], dtype=np.int64), None
    rest = q.copy()
    rest[T] = 0.0
    return np.asarray(T, dtype=np.int64), rest / rest.sum()


def _fixed_set_law(p, q, n, sampling) -> SelectionLaw:
    V = p.shape[0]
    T, q_free = fixed_set_part(q, n, sampling)
    r = np.zeros(V)
    if q_free is None:
        r[T] = p[T] + max(0.0, 1.0 - p[T].sum()) / len(T)
    elif len(T) == 0:
        r = q_free.copy()
    else:
        off = np.ones(V, dtype=bool)
        off[T] = False
        r[off] = np.minimum(p[off], q_free[off])
        L = float(np.maximum(q_free[off] - p[off], 0.0).sum())
        r[T] = p[T] + max(0.0, L - p[T].sum()) / len(T)
        total = r[T].sum()
        if total > 0:  # = L, up to rounding
            r[T] *= L / total
    return SelectionLaw(r, float(np.minimum(p, r).sum()), np.zeros(V, dtype=bool), "fixed set")


def _full_mask(V: int) -> int:
    return (1 << V) - 1


def _greedy_law(p, q, n, sampling, table) -> SelectionLaw:
    """Greedy on F_p along the descending p/q order, then extension to a base (all 2^V subsets)."""
    V = p.shape[0]
    full = _full_mask(V)
    masks = np.arange(1 << V)
    F = 1.0 - table[full ^ masks]
    Pm = np.zeros(1 << V)
    Pm[np.left_shift(1, np.arange(V))] = p
    Pm = _subset_sums(Pm, V)
    G = Pm - table  # p(H) − C(H)
    for i in range(V):  # superset minimum: G[M] = min over H ⊇ M of p(H) − C(H)
        view = G.reshape(-1, 2, 1 << i)
        np.minimum(view[:, 0, :], view[:, 1, :], out=view[:, 0, :])
    Fp = Pm + G[full ^ masks]
    order = _ratio_order(p, q)[::-1]
    prefix = np.concatenate([[0], np.cumsum(np.left_shift(np.int64(1), order))])
    x = np.zeros(V)
    x[order] = np.diff(Fp[prefix])
    # extend to a base: add each token's exchange capacity min_{A ∋ i} F(A) − r(A)
    R = _law_sums(x, V)
    for i in order:
        has = (masks >> i) & 1 == 1
        cap = max(0.0, float((F[has] - R[has]).min()))
        x[i] += cap
        R[has] += cap
    return SelectionLaw(x, float(np.minimum(p, x).sum()), np.zeros(V, dtype=bool), "greedy")


def _law_sums(r: np.ndarray, V: int) -> np.ndarray:
    out = np.zeros(1 << V)
    out[np.left_shift(1, np.arange(V))] = r
    return _subset_sums(out, V)


def optimal_selection_law(p, q, n, sampling: str = "iid") -> SelectionLaw:
    """An optimal selection law r* of the canonical decomposition for the draft scheme ``sampling``.

    r* lies in the base polytope of F(A) = P(some draft ∈ A) (every containment inequality
    r*(H) ≥ C(H) holds) and Σ min(p, r*) = α*(p, Q) (Khisti et al., arXiv 2410.18234; the closed forms
    and their proofs are in :mod:`spectheory.solvers.priority`).

    Parameters
    ----------
    p : array_like, shape (V,)
        Target distribution.
    q : array_like, shape (V,), or (n, V) for ``sampling="independent"``
        Draft distribution(s).
    n : int
        Number of drafts (2 for ``"hub"``).
    sampling : str
        Draft scheme (:mod:`spectheory.schemes`).

    Returns
    -------
    SelectionLaw

    Notes
    -----
    Cost: iid O(V log V); without replacement O(V·n·M) (the exponential-race quadrature along the
    p/q order, M ≈ 40–90 nodes) plus O(V log V); greedy, hub, topk O(V); independent drafters
    O(V·2^V), V ≤ :data:`MAX_PRIORITY_V`.

    Examples
    --------
    >>> from spectheory.solvers import optimal_selection_law
    >>> s = optimal_selection_law([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2)
    >>> s.law.round(6).tolist(), round(s.acceptance, 12)
    ([0.36, 0.3, 0.34], 0.86)
    """
    scheme = get_scheme(sampling)
    p, q, n = check_single_pair(p, q, n, scheme)
    if sampling == "hub":
        scheme.effective_n(q, n)  # raises for n != 2
    return _selection_law(p, q, n, sampling)


def _selection_law(p, q, n, sampling, table=None) -> SelectionLaw:
    if sampling in ("iid", "without_replacement"):
        return _threshold_law(p, q, n, sampling, table)
    if sampling in ("greedy", "hub", "topk"):
        return _fixed_set_law(p, q, n, sampling)
    V = p.shape[-1]
    if V > MAX_PRIORITY_V:
        raise SpecTheoryValueError(
            f"p: no sort order is known for sampling={sampling!r}, so the optimal selection law is found "
            f"over all 2^V subsets, V <= {MAX_PRIORITY_V} (got V = {V}); use st.optimal_acceptance for the value"
        )
    if table is None:
        table = containment_table(q, n, sampling)
    return _greedy_law(p, q, n, sampling, table)


# --------------------------------------------------------------------------------------------
# explicit mixture of priority orders (small V)
# --------------------------------------------------------------------------------------------
def _vertex(order: np.ndarray, F: np.ndarray) -> np.ndarray:
    prefix = np.concatenate([[0], np.cumsum(np.left_shift(np.int64(1), order))])
    v = np.zeros(order.shape[0])
    v[order] = np.diff(F[prefix])
    return v


def _face_order(family: list, V: int) -> np.ndarray:
    """A vertex order of the face of B(F) on which every set of ``family`` is tight: tokens sorted by
    the size of the smallest member containing them (the intersection of the members containing
    them: tight sets of a base are closed under ∩ and ∪), a linear extension of the face's poset."""
    fam = np.array(family, dtype=np.int64)
    smallest = np.empty(V, dtype=np.int64)
    for i in range(V):
        smallest[i] = np.bitwise_and.reduce(fam[(fam >> i) & 1 == 1])
    sizes = np.array([bin(int(m)).count("1") for m in smallest])
    return np.lexsort((np.arange(V), sizes))


def _decompose(r: np.ndarray, F: np.ndarray, V: int):
    """Face walk: r = Σ_k w_k v_{σ_k}. The tight family is kept combinatorially (each step adds the
    set that stopped it), so rounding never makes the order inconsistent with it."""
    orders, weights = [], []
    cur = r.copy()
    remaining = 1.0
    family = [(1 << V) - 1]
    for _ in range(4 * V + 4):
        slack = np.maximum(F - _law_sums(cur, V), 0.0)
        order = _face_order(family, V)
        v = _vertex(order, F)
        gap = F - _law_sums(v, V)
        gap[family] = 0.0
        free = np.flatnonzero(gap > 1e-15)
        if free.size:
            ratios = slack[free] / gap[free]
            j = int(np.argmin(ratios))
            lam = float(min(1.0, ratios[j]))
        else:
            lam = 1.0
        if remaining * (1.0 - lam) < 1e-13:  # what is left is rounding: v takes it
            lam = 1.0
        if lam > 0.0:
            orders.append(order)
            weights.append(remaining * lam)
        if lam >= 1.0:
            break
        family.append(int(free[j]))
        cur = np.maximum((cur - lam * v) / (1.0 - lam), 0.0)
        cur /= cur.sum()
        remaining *= 1.0 - lam
    else:  # not reached in the tests; the law is recomputed from the orders in any case
        weights[-1] += remaining * (1.0 - lam)
    merged: dict = {}
    for o, w in zip(orders, weights):  # the same vertex may come back after a rounding-size step
        merged[tuple(o.tolist())] = merged.get(tuple(o.tolist()), 0.0) + w
    w = np.array(list(merged.values()))
    return np.array(list(merged.keys()), dtype=np.int64), w / w.sum()


def priority_mixture(p, q, n, sampling: str = "iid") -> PriorityMixture:
    """An optimal verifier's selection rule as an explicit mixture of at most V + 1 priority orders.

    Builds r* with :func:`optimal_selection_law` (containment from the scheme's exact tuple law) and
    decomposes it into vertices of the base polytope of F by walking down its faces (module
    docstring). The returned ``law`` is the mixture's own selection law, so single-draft speculative
    sampling from it to p is lossless whatever the rounding.

    Parameters
    ----------
    p : array_like, shape (V,)
        Target distribution.
    q : array_like, shape (V,), or (n, V) for ``sampling="independent"``
        Draft distribution(s), supported on at most :data:`MAX_PRIORITY_V` tokens (V itself may be
        large: tokens with q = 0 are never drafted and are ranked last).
    n : int
        Number of drafts.
    sampling : str
        Draft scheme.

    Returns
    -------
    PriorityMixture

    Notes
    -----
    Cost O(m²·2^m) time and O(2^m) memory for a draft support of m tokens, plus the scheme's tuple
    law and O(V) for the rest.

    Examples
    --------
    >>> from spectheory.solvers import priority_mixture
    >>> m = priority_mixture([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2)
    >>> round(m.acceptance, 12), len(m.weights) <= 4
    (0.86, True)
    """
    scheme = get_scheme(sampling)
    p, q, n = check_single_pair(p, q, n, scheme)
    V = p.shape[0]
    # tokens never drafted (q = 0) have F-marginal 0 in every order: work on the draft support
    S = np.flatnonzero(q > 0 if q.ndim == 1 else np.any(q > 0, axis=0))
    m = len(S)
    if m > MAX_PRIORITY_V:
        raise SpecTheoryValueError(
            f"q: an explicit mixture of priority orders is built for drafts supported on at most {MAX_PRIORITY_V} "
            f"tokens (got {m}); for greedy, hub and topk drafts use priority_selector (any V); for the value "
            "use st.optimal_acceptance and for the optimal selection law optimal_selection_law"
        )
    pS, qS = p[S], q[..., S]
    table = containment_table(qS, n, sampling)
    tS = _selection_law(pS, qS, n, sampling, table)
    F = 1.0 - table[_full_mask(m) ^ np.arange(1 << m)]
    orders_S, weights = _decompose(tS.law, F, m)
    lawS = np.zeros(m)
    for o, w in zip(orders_S, weights):
        lawS += w * _vertex(o, F)
    rest = np.setdiff1d(np.arange(V), S)
    orders = np.concatenate([S[orders_S], np.tile(rest, (len(weights), 1))], axis=1)
    law = np.zeros(V)
    law[S] = lawS
    target_law = np.zeros(V)
    target_law[S] = tS.law
    first = np.zeros(V, dtype=bool)
    first[S] = tS.first
    target = SelectionLaw(target_law, tS.acceptance, first, tS.method)
    return PriorityMixture(orders, weights, law, float(np.minimum(p, law).sum()), target)


# --------------------------------------------------------------------------------------------
# samplers of the selection
# --------------------------------------------------------------------------------------------
class MixtureSelector:
    """Select with a :class:`PriorityMixture`: draw an order, take the highest-ranked draft."""

    def __init__(self, mixture: PriorityMixture):
        self.mixture = mixture
        self.law = mixture.law
        V = mixture.orders.shape[1]
        self.rank = np.empty_like(mixture.orders)
        rows = np.arange(len(mixture.orders))[:, None]
        self.rank[rows, mixture.orders] = np.arange(V)[None, :]

    def select(self, drafts: np.ndarray, oracle) -> int:
        k = oracle.choose(self.mixture.weights) if len(self.mixture.weights) > 1 else 0
        return int(drafts[np.argmin(self.rank[k, drafts])])


class FixedSetSelector:
    """Select for drafts that always contain a fixed set T (greedy, hub, topk) at any V.

    With a free draft x ∉ T (law q'): keep it with probability min(1, r*(x)/q'(x)), else pick a token
    of T with probability r*_T / r*(T). Without one (topk): pick a token of T with probability r*_T.
    Both are random priority orders (x above or below T, then T in a random order). Cost O(1) per
    position after an O(V) build.
    """

    def __init__(self, p: np.ndarray, q: np.ndarray, n: int, sampling: str):
        self.target = _fixed_set_law(p, q, n, sampling)
        self.law = self.target.law
        self.T, self.q_free = fixed_set_part(q, n, sampling)
        self.in_T = np.zeros(p.shape[0], dtype=bool)
        self.in_T[self.T] = True
        rT = self.law[self.T]
        self.fallback = rT / rT.sum() if rT.sum() > 0 else np.full(len(self.T), 1.0 / max(1, len(self.T)))

    def select(self, drafts: np.ndarray, oracle) -> int:
        free = drafts[~self.in_T[drafts]]
        if len(free):
            x = int(free[0])
            if len(self.T) == 0:
                return x
            keep = self.law[x] / self.q_free[x] if self.q_free[x] > 0 else 0.0
            if oracle.coin(min(1.0, keep)):
                return x
        return int(self.T[oracle.choose(self.fallback)])


def priority_selector(p, q, n, sampling: str = "iid"):
    """The selection sampler of the ``priority`` construction for one position.

    Returns an object with ``.law`` (its exact selection law r, optimal) and ``.select(drafts,
    oracle) -> token`` (decisions through a :mod:`~spectheory.verifiers._branching` oracle):
    :class:`FixedSetSelector` for greedy, hub and topk (any V), :class:`MixtureSelector` over
    :func:`priority_mixture` otherwise (draft support ≤ :data:`MAX_PRIORITY_V` tokens).

    Parameters
    ----------
    p, q : numpy.ndarray
        Validated target and draft distributions (q of shape (n, V) for independent drafters).
    n : int
        Number of drafts drawn (the scheme's effective count).
    sampling : str
        Draft scheme.
    """
    if sampling in ("greedy", "hub", "topk"):
        return FixedSetSelector(p, q, n, sampling)
    m = int(np.count_nonzero(q > 0 if q.ndim == 1 else np.any(q > 0, axis=0)))
    if m > MAX_PRIORITY_V:
        raise SpecTheoryValueError(
            f"q: construction='priority' samples the optimal selection for sampling={sampling!r} with an explicit "
            f"mixture of priority orders, built for drafts supported on at most {MAX_PRIORITY_V} tokens (got {m}); "
            "use construction='plan' for small LPs, st.solvers.optimal_selection_law for the optimal selection "
            "law at any V and st.optimal_acceptance for the value; sampling='greedy', 'hub' and 'topk' are "
            "sampled at any V"
        )
    return MixtureSelector(priority_mixture(p, q, n, sampling))


__all__ = [
    "FixedSetSelector",
    "MAX_PRIORITY_V",
    "MixtureSelector",
    "PriorityMixture",
    "SelectionLaw",
    "fixed_set_part",
    "optimal_selection_law",
    "priority_mixture",
    "priority_selector",
]
