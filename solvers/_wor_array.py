"""The without-replacement bound in backend array code (torch on any device, or NumPy).

The same prefix dual and exponential-race quadrature as the numba kernel
(:mod:`spectheory.solvers.sorted_prefix`, :mod:`spectheory.solvers.exponential_race`), written with
the operations of :mod:`spectheory._backend` and vectorised over rows and quadrature nodes:

* the tokens are sorted by p/q (the shared ratio sort); min over the prefixes H_i of
  P_i + 1 − C_k(H_i), with C_k(H) = ∫ s e^{−st} P(N_H(t) ≥ k) dt by the trapezoid in λ = log t on the
  nodes of :func:`~spectheory.solvers.exponential_race.quadrature_nodes`;
* the nodes resolve every prefix that can still be the minimum: those whose i.i.d.-type lower bound
  P + 1 − (1 − s)^k (C ≤ q(H)^k) is below the upper bound U = min over prefixes of
  P + 1 − Π_{i<k} (1 − s/tail_i) (the i-th draw lies in H with probability ≥ 1 − s/tail_i, tail_i the
  mass outside the i largest q); prefixes below that resolution only get a smaller C, so a larger
  value, and are never the minimum;
* the truncated Poisson-binomial laws P(N = c), c < max(k), at every node are updated token by token
  along the sorted order (u = 1 − e^{−q t} = −expm1(−exp(log q + λ)), no overflow at any node) and
  every k is read from the one state.

The pass over the tokens is sequential (one vectorised step per token), so this version is for
checking the numba kernel (the tests require agreement to 1e-10 in float64) and for small V; the
bound engine uses it with ``kernel="array"``.
"""

from __future__ import annotations

import math

import numpy as np

from spectheory._backend import sort_by_ratio

from .exponential_race import H_STEP, quadrature_nodes

PRUNE_SLACK = 1e-12


def _lower_containment(xp, s, tail, k):
    """Π_{i<k} max(0, 1 − s/tail_i) for s (B, V+1), tail (B, K)."""
    c = xp.ones(s.shape, like=s)
    for i in range(k):
        c = c * xp.clip(1.0 - s / tail[:, i : i + 1], 0.0, None)
    return c


def wor_bound_array(xp, p, q, uniq, sr=None):
    """α* for drafts without replacement, one column (B,) per draft count in ``uniq`` (ascending)."""
    B, V = p.shape
    sr = sr if sr is not None else sort_by_ratio(p, q, xp)
    sup = xp.count_nonzero(q > 0, axis=-1)
    sup_np = xp.to_numpy(sup).astype(np.int64)
    p_supp = xp.sum(xp.where(q > 0, p, 0.0), axis=-1)
    one_draft = xp.min(sr.p_below + sr.q_above, axis=-1)  # Σ min(p, q): the n = 1 value
    one_draft = xp.minimum(one_draft, 1.0)
    ks_needed = sorted({min(n, int(m)) for n in uniq for m in sup_np if 2 <= min(n, int(m)) < int(m)})
    vals = {}
    if ks_needed:
        vals = _quadrature(xp, sr, q, ks_needed)
    cols = []
    for n in uniq:
        k = np.minimum(sup_np, min(n, V))
        col = xp.where(xp.index(k, like=p) >= sup, p_supp, one_draft)
        for kk in sorted(set(int(v) for v in k)):
            if kk in vals:
                col = xp.where(xp.index(k, like=p) == kk, vals[kk], col)
        cols.append(col)
    return cols


def _quadrature(xp, sr, q, ks):
    B, V = sr.p.shape
    K = ks[-1]
    P = sr.p_below  # (B, V+1)
    S = xp.clip(sr.q_above, 0.0, None)
    count = xp.cumsum(xp.where(sr.q > 0, 1.0, 0.0), axis=-1)
    count = xp.concat([xp.zeros((B, 1), like=P), count], axis=-1)  # (B, V+1) tokens with q > 0 inside
    # tail_i = q outside the i largest (i < K), summed from the smallest
    vals, idx = xp.topk(q, K)
    rest = xp.sum(xp.scatter(q, idx, 0.0), axis=-1, keepdims=True)
    tail = xp.flip(xp.cumsum(xp.flip(vals, -1), axis=-1), -1) + rest  # (B, K)
    s_min = 1.0
    for k in ks:
        U = xp.min(P + 1.0 - _lower_containment(xp, S, tail, k), axis=-1, keepdims=True) + PRUNE_SLACK
        lb = P + 1.0 - xp.where(S >= 1.0, 0.0, xp.exp(k * xp.log1p(-xp.clip(S, 0.0, 1.0))))
        cand = (lb < U) & (count >= k) & (S > 0.0)
        if xp.any(cand):
            s_min = min(s_min, float(np.min(xp.to_numpy(xp.where(cand, S, 1.0)))))
    lam_np = quadrature_nodes(ks[0], s_min)
    lam = xp.from_numpy(lam_np, like=P) if xp.is_torch else lam_np
    M = lam_np.shape[0]
    state = xp.zeros((B, K, M), like=P)
    state[:, 0, :] = 1.0
    best = {k: xp.sum(xp.where(sr.q > 0, sr.p, 0.0), axis=-1) for k in ks}  # all of supp q inside: C = 1
    logq = xp.log(xp.where(sr.q > 0, sr.q, 1.0))
    ks_idx = [k - 1 for k in ks]
    for i in range(V):
        qi = sr.q[:, i : i + 1]
        live = qi > 0  # (B, 1); tokens with q = 0 come last and change nothing
        u = -xp.expm1(-xp.exp(logq[:, i : i + 1] + lam[None, :]))  # (B, M)
        u = xp.where(live, u, 0.0)
        for c in range(K - 1, 0, -1):
            state[:, c, :] = state[:, c, :] + (state[:, c - 1, :] - state[:, c, :]) * u
        state[:, 0, :] = state[:, 0, :] * (1.0 - u)
        s = S[:, i + 1 : i + 2]  # (B, 1)
        st = xp.exp(xp.log(xp.where(s > 0, s, 1.0)) + lam[None, :])  # (B, M)
        w = xp.where(st > 745.0, 0.0, st * xp.exp(-xp.minimum(st, 745.0)))
        below = xp.cumsum(state, axis=1)  # (B, K, M): P(N <= c)
        Pi = P[:, i + 1]
        ni = count[:, i + 1]
        for k, kc in zip(ks, ks_idx):
            C = H_STEP * xp.sum(w * (1.0 - below[:, kc, :]), axis=-1)
            C = xp.where(s[:, 0] <= 0.0, 1.0, xp.minimum(C, 1.0))
            f = xp.where(ni >= k, Pi + 1.0 - C, math.inf)
            best[k] = xp.minimum(best[k], f)
    return {k: xp.minimum(best[k], 1.0) for k in ks}
