"""The sorted-prefix subset dual at full vocabulary (i.i.d. and without-replacement drafts).

Sort the tokens by p(x)/q(x) ascending (q = 0 last). The subset dual
α* = min_H [p(H) + 1 − C(H)] is attained on one of the V + 1 prefixes H_k of that order:

* i.i.d. drafts, C(H) = q(H)^n — **proved** (REFERENCE §2). For fixed q(H) = t the least p(H) is the
  fractional knapsack g(t), convex piecewise linear with breakpoints at the prefixes, and
  f(t) = g(t) + 1 − t^n is concave between breakpoints, so its minimum is at a prefix (ties in the
  ratio are irrelevant for the same reason).
* drafts without replacement, C(H) by the exponential-race quadrature
  (:mod:`spectheory.solvers.exponential_race`) — **checked, not proved**: the tests compare every
  generated case against brute-force subset enumeration.

Algorithm (exact; no full sort)
-------------------------------
Tokens are put in ratio buckets by the bit pattern of the float64 ratio (monotone for positive
floats), about V/4 buckets, in O(V). Prefix sums at bucket boundaries are exact prefix values.
Inside a bucket whose smallest ratio is a, every prefix satisfies p(H) ≥ P_s + a·(q(H) − Q_s), so

    f ≥ min(P_s + 1 − Q_s^n, P_s + a·Δq + 1 − Q_e^n)            (concave bound)

and only buckets whose bound is below the best boundary value are sorted and scanned. For drafts
without replacement C ≤ q(H)^n (each draft inside H leaves less of H to draw), so the same bound
prunes; a lower bound on C (the i-th draw lies in H with probability at least
(q(H) − M_i)/(1 − M_i), M_i the mass of the i largest q) gives the initial upper bound. The
Poisson-binomial state of the quadrature is order-independent within a bucket, so only the
candidate buckets need sorting.

Cost: O(V) plus the sort of the candidate buckets for iid; O(V·n·M) for without replacement
(M ≈ 40–90 quadrature nodes), batched rows in parallel (numba ``prange``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spectheory._validation import SpecTheoryValueError

from .exponential_race import (
    TAYLOR_R,
    absorb_or_defer,
    absorb_token,
    aggregation_nodes,
    containment_from_state,
    flush_deferred,
    node_times,
    power_coefficients,
    quadrature_nodes,
)


# --------------------------------------------------------------------------------------------
# the straightforward recipe (baseline for benchmarks, and an independent check in the tests)
# --------------------------------------------------------------------------------------------
def prefix_dual_numpy(p: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    """α*_iid by the plain NumPy recipe: argsort of p/q, two cumsums, min over prefixes.

    ``p``, ``q``: validated float64 arrays of shape (B, V). Returns shape (B,).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(q > 0, p / q, np.inf)
    order = np.argsort(ratio, axis=1, kind="stable")
    P = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1)
    Q = np.cumsum(np.take_along_axis(q, order, axis=1), axis=1)
    return np.minimum(1.0, (P + 1.0 - Q**n).min(axis=1))


# --------------------------------------------------------------------------------------------
# ratio buckets
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _buckets(p, q):
    """Group the tokens with q > 0 by p/q.

    Returns (zero_ids, offsets, members, b_p, b_q, b_min): tokens with p = 0 (ratio 0, a tie
    group placed first); then bucket b holds members[offsets[b]:offsets[b+1]] with ratios in
    increasing bucket order, b_p / b_q their masses and b_min their smallest ratio. Tokens with
    q = 0 (ratio ∞) are left out: they come last and never lower the objective.
    """
    V = p.shape[0]
    ratio = np.zeros(V)
    kind = np.empty(V, dtype=np.int8)  # 1: bucketed, 0: p = 0 < q, -1: q = 0
    n_zero = 0
    n_pos = 0
    for i in range(V):
        if q[i] > 0:
            if p[i] > 0:
                ratio[i] = p[i] / q[i]
                kind[i] = 1
                n_pos += 1
            else:
                kind[i] = 0
                n_zero += 1
        else:
            kind[i] = -1
    # the bit pattern of a positive float64 is monotone in its value
    bits = ratio.view(np.int64)
    lo = np.iinfo(np.int64).max
    hi = np.int64(-1)
    for i in range(V):
        if kind[i] == 1:
            lo = min(lo, bits[i])
            hi = max(hi, bits[i])
    n_buckets = max(1, n_pos // 4)
    shift = 0
    if n_pos > 0:
        span = hi - lo
        while (span >> shift) >= n_buckets:
            shift += 1
        n_buckets = int(span >> shift) + 1
    else:
        n_buckets = 0
    counts = np.zeros(n_buckets + 1, dtype=np.int64)
    b_p = np.zeros(n_buckets)
    b_q = np.zeros(n_buckets)
    b_min = np.full(n_buckets, np.inf)
    zero_ids = np.empty(n_zero, dtype=np.int64)
    z = 0
    bucket = np.empty(V, dtype=np.int64)
    for i in range(V):
        if kind[i] == 1:
            b = (bits[i] - lo) >> shift
            bucket[i] = b
            counts[b + 1] += 1
            b_p[b] += p[i]
            b_q[b] += q[i]
            if ratio[i] < b_min[b]:
                b_min[b] = ratio[i]
        elif kind[i] == 0:
            zero_ids[z] = i
            z += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    members = np.empty(n_pos, dtype=np.int64)
    for i in range(V):
        if kind[i] == 1:
            members[fill[bucket[i]]] = i
            fill[bucket[i]] += 1
    return zero_ids, offsets, members, b_p, b_q, b_min


@njit(cache=True)
def _sorted_members(p, q, members, start, stop):
    ids = members[start:stop].copy()
    ratio = np.empty(ids.shape[0])
    for j in range(ids.shape[0]):
        ratio[j] = p[ids[j]] / q[ids[j]]
    return ids[np.argsort(ratio)]


# --------------------------------------------------------------------------------------------
# i.i.d. drafts: C(H) = q(H)^n
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _iid_row(p, q, n):
    zero_ids, offsets, members, b_p, b_q, b_min = _buckets(p, q)
    nb = b_p.shape[0]
    P = 0.0
    Q = 0.0
    for i in zero_ids:
        Q += q[i]
    best = min(1.0, P + 1.0 - Q**n)
    start_P = np.empty(nb)
    start_Q = np.empty(nb)
    for b in range(nb):
        start_P[b] = P
        start_Q[b] = Q
        P += b_p[b]
        Q += b_q[b]
        f = P + 1.0 - Q**n
        if f < best:
            best = f
    for b in range(nb):
        if offsets[b + 1] - offsets[b] < 2:
            continue
        Ps = start_P[b]
        Qs = start_Q[b]
        Qe = Qs + b_q[b]
        bound = min(Ps + 1.0 - Qs**n, Ps + b_min[b] * b_q[b] + 1.0 - Qe**n)
        if bound >= best:
            continue
        ids = _sorted_members(p, q, members, offsets[b], offsets[b + 1])
        P = Ps
        Q = Qs
        for j in range(ids.shape[0] - 1):  # the last prefix is the bucket's end boundary
            P += p[ids[j]]
            Q += q[ids[j]]
            f = P + 1.0 - Q**n
            if f < best:
                best = f
    return best




# --------------------------------------------------------------------------------------------
# drafts without replacement
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _containment_lower(s, tail, k):
    """A lower bound on C(H) for q(Ω \\ H) = s: the i-th draw lies in H with probability at least
    (q(H) − M_i)/(1 − M_i) = 1 − s/tail[i], where M_i is the mass of the i largest q and
    tail[i] = 1 − M_i is summed directly (no cancellation)."""
    c = 1.0
    for i in range(k):
        if s >= tail[i]:
            return 0.0
        c *= 1.0 - s / tail[i]
    return c


#: Absolute slack added to the pruning threshold, so that rounding in the bounds never prunes a
#: prefix whose exact value is the minimum; the returned value is always an exactly evaluated prefix.
PRUNE_SLACK = 1e-12


@njit(cache=True)
def _wor_row(p, q, n):
    m = 0
    for i in range(q.shape[0]):
        if q[i] > 0:
            m += 1
    k = min(n, m)
    if k == 1:
        return _iid_row(p, q, 1)
    zero_ids, offsets, members, b_p, b_q, b_min = _buckets(p, q)
    nb = b_p.shape[0]
    # tail[i] = mass outside the i largest draft probabilities, summed from the smallest
    V = q.shape[0]
    top = -np.sort(-np.partition(q, V - k)[V - k :]) if k < V else -np.sort(-q)
    rest = 0.0
    taken = 0
    cut = top[k - 1]
    for j in range(V):  # mass strictly outside the top k (ties at the cut counted once each)
        if q[j] < cut:
            rest += q[j]
        elif q[j] == cut:
            taken += 1
    # tokens tied with the k-th largest beyond those in `top` belong to the rest
    n_cut_in_top = 0
    for i in range(k):
        if top[i] == cut:
            n_cut_in_top += 1
    rest += (taken - n_cut_in_top) * cut
    tail = np.zeros(k)
    acc = rest
    for j in range(k - 1, -1, -1):
        acc += top[j]
        tail[j] = acc
    n_zero = zero_ids.shape[0]
    # boundary prefix values: index 0 = empty, 1 = after the p = 0 group, 2 + b = after bucket b
    nbd = nb + 2
    bP = np.zeros(nbd)
    bQ = np.zeros(nbd)
    bS = np.zeros(nbd)  # s = q(outside the prefix), summed from the back for relative accuracy
    bN = np.zeros(nbd, dtype=np.int64)  # drafted-capable tokens (q > 0) inside the prefix
    for i in zero_ids:
        bQ[1] += q[i]
    bN[1] = n_zero
    for b in range(nb):
        bP[b + 2] = bP[b + 1] + b_p[b]
        bQ[b + 2] = bQ[b + 1] + b_q[b]
        bN[b + 2] = bN[b + 1] + offsets[b + 1] - offsets[b]
    s = 0.0
    for b in range(nb - 1, -1, -1):
        s += b_q[b]
        bS[b + 1] = s
    bS[0] = s + bQ[1]  # the p = 0 group's draft mass
    # exact value once every token with q > 0 is inside: C = 1
    best = bP[nbd - 1]
    U = best
    for d in range(nbd):
        if bN[d] >= k:
            up = bP[d] + 1.0 - _containment_lower(bS[d], tail, k)
            if up < U:
                U = up
    U += PRUNE_SLACK
    # which boundaries and buckets can still beat U (lower bound C <= q(H)^k)
    last = -1
    s_min = 1.0
    for d in range(nbd):
        if bP[d] + 1.0 - bQ[d] ** k < U and bN[d] >= k and bS[d] > 0:
            last = d
            s_min = min(s_min, bS[d])
    cand = np.zeros(nb, dtype=np.bool_)
    for b in range(nb):
        if offsets[b + 1] - offsets[b] < 2:
            continue
        Ps = bP[b + 1]
        Qs = bQ[b + 1]
        Qe = bQ[b + 2]
        bound = min(Ps + 1.0 - Qs**k, Ps + b_min[b] * b_q[b] + 1.0 - Qe**k)
        if bound < U and bN[b + 2] >= k:
            cand[b] = True
            last = max(last, b + 2)
            if bS[b + 2] > 0:
                s_min = min(s_min, bS[b + 2])
            else:
                # inside the last bucket s shrinks to its smallest member's q
                sm = np.inf
                for j in range(offsets[b], offsets[b + 1]):
                    sm = min(sm, q[members[j]])
                s_min = min(s_min, sm)
    if last < 0:
        return min(1.0, best)
    lam = quadrature_nodes(k, s_min)
    t = node_times(lam)
    state = np.zeros((k, t.shape[0]))
    state[0, :] = 1.0
    scratch = np.empty(t.shape[0])
    # tokens outside candidate buckets are absorbed with deferral of their small (token, node)
    # pairs; the deferred factors are flushed in before any evaluation
    A = power_coefficients(k)
    J = aggregation_nodes(k, t, lam)
    D = np.zeros((J + 1, k - 1 + TAYLOR_R))
    pending = False
    for i in zero_ids:
        pending |= absorb_or_defer(state, t, lam, q[i], scratch, D, J)
    for d in range(1, last + 1):
        if d >= 2:
            b = d - 2
            if cand[b]:
                if pending:
                    flush_deferred(state, t, D, A, J)
                    pending = False
                ids = _sorted_members(p, q, members, offsets[b], offsets[b + 1])
                cnt = ids.shape[0]
                # s along the bucket, from the back
                s_in = np.empty(cnt)
                acc = bS[d]
                for j in range(cnt - 1, -1, -1):
                    s_in[j] = acc  # s after absorbing ids[j]
                    acc += q[ids[j]]
                P = bP[d - 1]
                Q = bQ[d - 1]
                N = bN[d - 1]
                for j in range(cnt - 1):
                    absorb_token(state, t, lam, q[ids[j]], scratch)
                    P += p[ids[j]]
                    Q += q[ids[j]]
                    N += 1
                    if N >= k and P + 1.0 - Q**k < min(best, U):
                        if s_in[j] > 0:
                            f = P + 1.0 - containment_from_state(state, t, lam, s_in[j])
                        else:
                            f = P
                        if f < best:
                            best = f
                absorb_token(state, t, lam, q[ids[cnt - 1]], scratch)
            else:
                for j in range(offsets[b], offsets[b + 1]):
                    pending |= absorb_or_defer(state, t, lam, q[members[j]], scratch, D, J)
        if bN[d] >= k and bP[d] + 1.0 - bQ[d] ** k < min(best, U):
            if pending:
                flush_deferred(state, t, D, A, J)
                pending = False
            if bS[d] > 0:
                f = bP[d] + 1.0 - containment_from_state(state, t, lam, bS[d])
            else:
                f = bP[d]
            if f < best:
                best = f
    return min(1.0, best)




@njit(cache=True, parallel=True)
def _rows_parallel(p, q, n, wor):
    out = np.empty(p.shape[0])
    for b in prange(p.shape[0]):
        out[b] = _wor_row(p[b], q[b], n) if wor else _iid_row(p[b], q[b], n)
    return out


@njit(cache=True)
def _rows_serial(p, q, n, wor):
    out = np.empty(p.shape[0])
    for b in range(p.shape[0]):
        out[b] = _wor_row(p[b], q[b], n) if wor else _iid_row(p[b], q[b], n)
    return out


def prefix_dual(p: np.ndarray, q: np.ndarray, n: int, sampling: str = "iid") -> np.ndarray:
    """α* by the sorted-prefix dual for validated float64 arrays of shape (B, V); returns (B,).

    ``sampling`` is ``"iid"`` or ``"without_replacement"``. A batch runs its rows in parallel over
    numba's threads (``numba.set_num_threads``); a single row runs serially, since waking the
    thread pool costs more than one row when the machine is busy.

    Examples
    --------
    >>> import numpy as np
    >>> from spectheory.solvers import prefix_dual
    >>> p = np.array([[0.5, 0.5]]); q = np.array([[0.9, 0.1]])
    >>> prefix_dual(p, q, 2).round(12).tolist(), prefix_dual(p, q, 2, "without_replacement").tolist()
    ([0.69], [1.0])
    """
    p = np.ascontiguousarray(p, dtype=np.float64)
    q = np.ascontiguousarray(q, dtype=np.float64)
    if sampling not in ("iid", "without_replacement"):
        raise SpecTheoryValueError(f"sampling: the sorted-prefix dual covers 'iid' and 'without_replacement', not {sampling!r}")
    kernel = _rows_parallel if p.shape[0] > 1 else _rows_serial
    return kernel(p, q, int(n), sampling == "without_replacement")
