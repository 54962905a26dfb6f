"""The sorted-prefix subset dual at full vocabulary (i.i.d. and without-replacement drafts).

Sort the tokens by p(x)/q(x) ascending (q = 0 last). The subset dual
α* = min_H [p(H) + 1 − C(H)] is attained on one of the V + 1 prefixes H_k of that order:

* i.i.d. drafts, C(H) = q(H)^n — **proved** (REFERENCE §2). For fixed q(H) = t the least p(H) is the
  fractional knapsack g(t), convex piecewise linear with breakpoints at the prefixes, and
  f(t) = g(t) + 1 − t^n is concave between breakpoints, so its minimum is at a prefix (ties in the
  ratio are irrelevant for the same reason).
* drafts without replacement, C(H) by the exponential-race quadrature
  (:mod:`spectheory.solvers.exponential_race`) — **proved** (the documentation's theory page
  "The prefix theorem for drafts without replacement": splitting never hurts, convexity in one mass,
  a secant inequality); the tests still compare generated cases with brute-force enumeration.

This module is the CPU (numba) backend of :func:`spectheory.solvers.bounds.bound_rows`, every n in
one pass per row: the i.i.d. kernel shares its buckets across n; the without-replacement kernel keeps
one Poisson-binomial state truncated at max(n), from which every smaller n is read. Ratios are
compared as (p · 2^-64)/q (``spectheory._backend.RATIO_SCALE``): with subnormal q the plain p/q
overflowed to +inf, and the false ties at +inf put tokens in arbitrary order.

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
(M ≈ 40–90 quadrature nodes) for n = max(ns), batched rows in parallel (numba ``prange``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from spectheory._backend import RATIO_SCALE

from .exponential_race import (
    TAYLOR_R,
    absorb_or_defer,
    absorb_token,
    aggregation_nodes,
    containment_from_state,
    containments_from_state,
    flush_deferred,
    node_times,
    power_coefficients,
    quadrature_nodes,
)


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
                ratio[i] = (p[i] * RATIO_SCALE) / q[i]
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
        ratio[j] = (p[ids[j]] * RATIO_SCALE) / q[ids[j]]
    return ids[np.argsort(ratio)]


@njit(cache=True, inline="always")
def _contained_iid(s, nf):
    """C(H) = q(H)^n = (1 − s)^n for s = q(Ω \\ H) summed from the back (accurate for small s and
    huge n; 1 at s = 0 exactly, 0 at s ≥ 1)."""
    if s <= 0.0:
        return 1.0
    if s >= 1.0:
        return 0.0
    return math.exp(nf * math.log1p(-s))


# --------------------------------------------------------------------------------------------
# i.i.d. drafts: C(H) = q(H)^n, every n in one pass
# --------------------------------------------------------------------------------------------
#: Ratio buckets of the i.i.d. kernel: 2^IID_MANTISSA_BITS per binade of p/q, IID_BUCKETS in all
#: below the largest useful ratio (everything lower shares bucket 0).
IID_MANTISSA_BITS = 7
IID_BUCKETS = 128 * 64


@njit(cache=True)
def _iid_row(p, q, nf, out):
    """α*_iid for every exponent in ``nf`` (float64, ascending) into ``out``.

    Tokens with p/q > max(n) are never in a minimising prefix (removing the last token a of a prefix
    H changes f by −p_a + q(H)^n − (q(H) − q_a)^n ≤ −q_a (p_a/q_a − n)), so they are left out of
    the buckets (their q still counts in s = q(Ω \\ H)). One pass puts the others in ratio buckets
    (fixed resolution: 128 per binade); a second, over the buckets, gives the exact value at every
    bucket boundary and a lower bound inside each bucket (p(H) ≥ P_s + a·(q(H) − Q_s), a the
    bucket's smallest ratio, and t ↦ 1 − t^n concave: f ≥ min of its two ends); a third collects the
    members of the buckets whose bound beats the best boundary, which are sorted and scanned.
    """
    V = p.shape[0]
    N = nf.shape[0]
    r = np.empty(V)
    r_max = 0.0
    for i in range(V):
        if q[i] > 0.0:
            x = (p[i] * RATIO_SCALE) / q[i]
            r[i] = x
            if x > r_max:
                r_max = x
        else:
            r[i] = np.inf
    cap = min(nf[N - 1] * RATIO_SCALE, r_max)
    bits = r.view(np.int64)
    shift = 52 - IID_MANTISSA_BITS
    NB = IID_BUCKETS
    key_cap = np.int64(0)
    if cap > 0.0:
        key_cap = np.array([cap]).view(np.int64)[0] >> shift
    key_lo = key_cap - (NB - 1)
    bid = np.empty(V, dtype=np.int32)
    bP = np.zeros(NB)
    bQ = np.zeros(NB)
    bmin = np.full(NB, np.inf)
    bcnt = np.zeros(NB, dtype=np.int64)
    q_out = 0.0  # draft mass of tokens above the cap (always outside a useful prefix)
    for i in range(V):
        x = r[i]
        if x > cap:  # includes q = 0 (ratio +inf)
            bid[i] = -1
            if q[i] > 0.0:
                q_out += q[i]
            continue
        if x > 0.0:
            b = (bits[i] >> shift) - key_lo
            if b < 0:
                b = 0
        else:
            b = 0
        bid[i] = b
        bP[b] += p[i]
        bQ[b] += q[i]
        bcnt[b] += 1
        if x < bmin[b]:
            bmin[b] = x
    # boundaries: sE[b] = s after bucket b, summed from the back
    sE = np.empty(NB)
    acc = q_out
    for b in range(NB - 1, -1, -1):
        sE[b] = acc
        acc += bQ[b]
    s_all = acc
    best = np.empty(N)
    for j in range(N):
        best[j] = 1.0 + 0.0 * _contained_iid(s_all, nf[j])  # empty prefix: 1 − C(∅) = 1
    P = 0.0
    for b in range(NB):
        if bcnt[b] == 0:
            continue
        P += bP[b]
        for j in range(N):
            f = P + 1.0 - _contained_iid(sE[b], nf[j])
            if f < best[j]:
                best[j] = f
    # candidate buckets
    cand = np.zeros(NB, dtype=np.bool_)
    n_cand = 0
    P = 0.0
    for b in range(NB):
        if bcnt[b] == 0:
            continue
        Ps = P
        P += bP[b]
        if bcnt[b] < 2:
            continue
        sS = sE[b] + bQ[b]
        slope = bmin[b] / RATIO_SCALE * bQ[b]
        for j in range(N):
            lo = min(Ps + 1.0 - _contained_iid(sS, nf[j]), Ps + slope + 1.0 - _contained_iid(sE[b], nf[j]))
            if lo < best[j]:
                cand[b] = True
        if cand[b]:
            n_cand += bcnt[b]
    if n_cand > 0:
        off = np.zeros(NB + 1, dtype=np.int64)
        for b in range(NB):
            off[b + 1] = off[b] + (bcnt[b] if cand[b] else 0)
        fill = off[:-1].copy()
        ids = np.empty(n_cand, dtype=np.int64)
        for i in range(V):
            b = bid[i]
            if b >= 0 and cand[b]:
                ids[fill[b]] = i
                fill[b] += 1
        P = 0.0
        for b in range(NB):
            if bcnt[b] == 0:
                continue
            Ps = P
            P += bP[b]
            if not cand[b]:
                continue
            m = ids[off[b] : off[b + 1]]
            o = m[np.argsort(r[m])]
            cnt = o.shape[0]
            s_in = np.empty(cnt)
            a = sE[b]
            for t in range(cnt - 1, -1, -1):
                s_in[t] = a  # s after o[t]
                a += q[o[t]]
            Pi = Ps
            for t in range(cnt - 1):
                Pi += p[o[t]]
                for j in range(N):
                    f = Pi + 1.0 - _contained_iid(s_in[t], nf[j])
                    if f < best[j]:
                        best[j] = f
    for j in range(N):
        out[j] = min(1.0, max(0.0, best[j]))


# --------------------------------------------------------------------------------------------
# drafts without replacement, every k in one pass
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
def _evaluate(state, t, lam, s, P, N, ks, best, lim, res):
    """Update best[j] with P + 1 − C_k(H) for every k = ks[j] worth evaluating (N ≥ k and the
    i.i.d.-type lower bound ``lim``-test passed by the caller through res[j] = 1)."""
    nk = ks.shape[0]
    any_eval = False
    for j in range(nk):
        if res[j] > 0.0:
            any_eval = True
    if not any_eval:
        return
    if s <= 0.0:
        for j in range(nk):
            if res[j] > 0.0 and P < best[j]:
                best[j] = P
        return
    containments_from_state(state, t, lam, s, ks, res)
    for j in range(nk):
        if res[j] >= 0.0:
            f = P + 1.0 - min(1.0, res[j])
            if f < best[j]:
                best[j] = f


@njit(cache=True)
def _wor_row(p, q, ks, out):
    """α* for drafts without replacement for every k in ``ks`` (int64, ascending, 2 ≤ k ≤ |supp q|)."""
    NK = ks.shape[0]
    K = ks[NK - 1]
    zero_ids, offsets, members, b_p, b_q, b_min = _buckets(p, q)
    nb = b_p.shape[0]
    V = q.shape[0]
    # tail[i] = mass outside the i largest draft probabilities (i < K), summed from the smallest
    top = -np.sort(-np.partition(q, V - K)[V - K :]) if K < V else -np.sort(-q)
    cut = top[K - 1]
    rest = 0.0
    taken = 0
    for j in range(V):
        if q[j] < cut:
            rest += q[j]
        elif q[j] == cut:
            taken += 1
    n_cut_in_top = 0
    for i in range(K):
        if top[i] == cut:
            n_cut_in_top += 1
    rest += (taken - n_cut_in_top) * cut
    tail = np.zeros(K)
    acc = rest
    for j in range(K - 1, -1, -1):
        acc += top[j]
        tail[j] = acc
    n_zero = zero_ids.shape[0]
    nbd = nb + 2
    bP = np.zeros(nbd)
    bS = np.zeros(nbd)
    bN = np.zeros(nbd, dtype=np.int64)
    q_zero = 0.0
    for i in zero_ids:
        q_zero += q[i]
    bN[1] = n_zero
    for b in range(nb):
        bP[b + 2] = bP[b + 1] + b_p[b]
        bN[b + 2] = bN[b + 1] + offsets[b + 1] - offsets[b]
    s = 0.0
    for b in range(nb - 1, -1, -1):
        s += b_q[b]
        bS[b + 1] = s
    bS[0] = s + q_zero
    best = np.empty(NK)
    U = np.empty(NK)
    for j in range(NK):
        best[j] = bP[nbd - 1]  # every token with q > 0 inside: C = 1
        U[j] = best[j]
    for d in range(nbd):
        for j in range(NK):
            if bN[d] >= ks[j]:
                up = bP[d] + 1.0 - _containment_lower(bS[d], tail, ks[j])
                if up < U[j]:
                    U[j] = up
    for j in range(NK):
        U[j] += PRUNE_SLACK
    last = -1
    s_min = 1.0
    for d in range(nbd):
        for j in range(NK):
            if bP[d] + 1.0 - _contained_iid(bS[d], ks[j]) < U[j] and bN[d] >= ks[j] and bS[d] > 0:
                last = max(last, d)
                s_min = min(s_min, bS[d])
    cand = np.zeros(nb, dtype=np.bool_)
    for b in range(nb):
        if offsets[b + 1] - offsets[b] < 2:
            continue
        Ps = bP[b + 1]
        slope = b_min[b] / RATIO_SCALE * b_q[b]
        for j in range(NK):
            k = ks[j]
            lo = min(Ps + 1.0 - _contained_iid(bS[b + 1], k), Ps + slope + 1.0 - _contained_iid(bS[b + 2], k))
            if lo < U[j] and bN[b + 2] >= k:
                cand[b] = True
        if cand[b]:
            last = max(last, b + 2)
            if bS[b + 2] > 0:
                s_min = min(s_min, bS[b + 2])
            else:
                sm = np.inf
                for j in range(offsets[b], offsets[b + 1]):
                    sm = min(sm, q[members[j]])
                s_min = min(s_min, sm)
    if last >= 0:
        lam = quadrature_nodes(ks[0], s_min)
        t = node_times(lam)
        state = np.zeros((K, t.shape[0]))
        state[0, :] = 1.0
        scratch = np.empty(t.shape[0])
        A = power_coefficients(K)
        J = aggregation_nodes(K, t, lam)
        D = np.zeros((J + 1, K - 1 + TAYLOR_R))
        res = np.empty(NK)
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
                    s_in = np.empty(cnt)
                    acc = bS[d]
                    for j in range(cnt - 1, -1, -1):
                        s_in[j] = acc
                        acc += q[ids[j]]
                    P = bP[d - 1]
                    N = bN[d - 1]
                    for j in range(cnt - 1):
                        absorb_token(state, t, lam, q[ids[j]], scratch)
                        P += p[ids[j]]
                        N += 1
                        for h in range(NK):
                            ok = N >= ks[h] and P + 1.0 - _contained_iid(s_in[j], ks[h]) < min(best[h], U[h])
                            res[h] = 1.0 if ok else -1.0
                        _evaluate(state, t, lam, s_in[j], P, N, ks, best, U, res)
                    absorb_token(state, t, lam, q[ids[cnt - 1]], scratch)
                else:
                    for j in range(offsets[b], offsets[b + 1]):
                        pending |= absorb_or_defer(state, t, lam, q[members[j]], scratch, D, J)
            need = False
            for h in range(NK):
                ok = bN[d] >= ks[h] and bP[d] + 1.0 - _contained_iid(bS[d], ks[h]) < min(best[h], U[h])
                res[h] = 1.0 if ok else -1.0
                need |= ok
            if need:
                if pending:
                    flush_deferred(state, t, D, A, J)
                    pending = False
                _evaluate(state, t, lam, bS[d], bP[d], bN[d], ks, best, U, res)
    for j in range(NK):
        out[j] = min(1.0, max(0.0, best[j]))


@njit(cache=True)
def _rows(p, q, nf, ks_all, wor, out):
    for b in range(p.shape[0]):
        _row(p[b], q[b], nf, ks_all, wor, out[b])


@njit(cache=True, parallel=True)
def _rows_parallel(p, q, nf, ks_all, wor, out):
    for b in prange(p.shape[0]):
        _row(p[b], q[b], nf, ks_all, wor, out[b])


@njit(cache=True)
def _row(p, q, nf, ks_all, wor, out):
    """One row: i.i.d. exponents ``nf`` (float64), or for ``wor`` the requested draft counts
    ``ks_all`` (int64, ascending), each capped at the support m here (min(n, m) drafts)."""
    if not wor:
        _iid_row(p, q, nf, out)
        return
    m = 0
    for i in range(q.shape[0]):
        if q[i] > 0:
            m += 1
    N = ks_all.shape[0]
    # k = 1: one draft, Σ min(p, q) (the i.i.d. bound at n = 1)
    kk = np.empty(N, dtype=np.int64)
    n_big = 0
    for j in range(N):
        kk[j] = min(ks_all[j], m)
        if kk[j] >= 2:
            n_big += 1
    one = np.empty(1)
    if n_big < N:
        _iid_row(p, q, np.ones(1), one)
    if n_big > 0:
        uniq = np.unique(kk[kk >= 2])
        vals = np.empty(uniq.shape[0])
        _wor_row(p, q, uniq, vals)
        for j in range(N):
            if kk[j] >= 2:
                for h in range(uniq.shape[0]):
                    if uniq[h] == kk[j]:
                        out[j] = vals[h]
            else:
                out[j] = one[0]
    else:
        for j in range(N):
            out[j] = one[0]


def prefix_dual_rows(p: np.ndarray, q: np.ndarray, ns, wor: bool) -> np.ndarray:
    """The numba CPU kernel of the sorted-prefix dual: α* for validated float64 rows (B, V), every
    draft count in ``ns`` (ascending distinct Python ints) in one pass per row; returns (B, len(ns)).

    i.i.d. exponents are capped at 1e300 as floats (beyond that q(H)^n is 0 below q(H) = 1 in float64
    exactly as for the true n); without replacement each row uses min(n, |supp q|) drafts. A batch
    runs its rows over numba's threads; a single row runs serially.
    """
    p = np.ascontiguousarray(p, dtype=np.float64)
    q = np.ascontiguousarray(q, dtype=np.float64)
    nf = np.array([float(min(n, 10**300)) for n in ns], dtype=np.float64)
    V = p.shape[1]
    ks = np.array([min(n, V) for n in ns], dtype=np.int64)
    out = np.empty((p.shape[0], len(ns)))
    kernel = _rows_parallel if p.shape[0] > 1 else _rows
    kernel(p, q, nf, ks, bool(wor), out)
    return out
