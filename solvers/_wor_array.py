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


def _poly_mul(A, Bm, K):
    """Truncated product of two count laws (…, K, M): out_c = Σ_{a ≤ c} A_a B_{c−a}, c < K."""
    out = A[..., :1, :] * Bm
    for a in range(1, K):
        out[..., a:, :] = out[..., a:, :] + A[..., a : a + 1, :] * Bm[..., : K - a, :]
    return out


def _absorb(state, u, K):
    """Add one Bernoulli(u) token to the truncated counts: P(N = c) ← P(N = c)(1 − u) + P(N = c − 1) u."""
    for c in range(K - 1, 0, -1):
        state[..., c, :] = state[..., c, :] + (state[..., c - 1, :] - state[..., c, :]) * u
    state[..., 0, :] = state[..., 0, :] * (1.0 - u)


def _quadrature(xp, sr, q, ks):
    """min over the candidate prefixes of P_i + 1 − C_k(H_i) for every k in ``ks`` (ascending).

    Blocked scan: the tokens (in ratio order, up to the last candidate prefix) are cut into C chunks
    of L ≈ √V. (1) One pass of L steps, all chunks at once, gives each chunk's count law at every
    node; (2) a log-depth (Hillis–Steele) scan of their truncated products gives the law before each
    chunk; (3) a second pass of L steps from those laws reaches every prefix, where C_k is read off
    and the prefix value taken. About 2√V + log V vectorised steps instead of V sequential ones.
    """
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
    best = {k: xp.sum(xp.where(sr.q > 0, sr.p, 0.0), axis=-1) for k in ks}  # all of supp q inside: C = 1
    cand = None
    for k in ks:
        U = xp.min(P + 1.0 - _lower_containment(xp, S, tail, k), axis=-1, keepdims=True) + PRUNE_SLACK
        lb = P + 1.0 - xp.where(S >= 1.0, 0.0, xp.exp(k * xp.log1p(-xp.clip(S, 0.0, 1.0))))
        ck = (lb < U) & (count >= k) & (S > 0.0)
        cand = ck if cand is None else (cand | ck)
    cand_np = xp.to_numpy(cand)
    if not cand_np.any():
        return {k: xp.minimum(best[k], 1.0) for k in ks}
    where_e = np.nonzero(cand_np.any(axis=0))[0]
    lo, hi = int(where_e[0]), int(where_e[-1])  # candidate prefix sizes (≥ 1: S > 0 excludes none)
    s_min = float(np.min(xp.to_numpy(xp.where(cand, S, 1.0))))
    lam_np = quadrature_nodes(ks[0], s_min)
    lam = xp.from_numpy(lam_np, like=P) if xp.is_torch else lam_np
    M = lam_np.shape[0]

    L = max(1, math.isqrt(hi - 1) + 1)
    C = -(-hi // L)
    pad = C * L - hi
    logq = xp.log(xp.where(sr.q[:, :hi] > 0, sr.q[:, :hi], 1.0))
    live = sr.q[:, :hi] > 0
    if pad:
        logq = xp.concat([logq, xp.zeros((B, pad), like=P)], axis=-1)
        live = xp.concat([live, xp.zeros((B, pad), like=P) > 0], axis=-1)
    logq = logq.reshape(B, C, L)
    live = live.reshape(B, C, L)

    def u_at(j, c0=0):
        u = -xp.expm1(-xp.exp(logq[:, c0:, j, None] + lam))  # (B, C', M)
        return xp.where(live[:, c0:, j, None], u, 0.0)

    # (1) each chunk's own count law
    W = xp.zeros((B, C, K, M), like=P)
    W[:, :, 0, :] = 1.0
    for j in range(L):
        _absorb(W, u_at(j), K)
    # (2) inclusive scan of the chunk laws over the chunks, then shift: the law before each chunk
    X = W
    d = 1
    while d < C:
        Y = X.copy() if not xp.is_torch else X.clone()
        Y[:, d:] = _poly_mul(X[:, :-d], X[:, d:], K)
        X = Y
        d *= 2
    c0 = (lo - 1) // L  # first chunk holding a candidate
    E = xp.zeros((B, C - c0, K, M), like=P)
    E[:, :, 0, :] = 1.0
    if c0 + 1 < C:
        E[:, 1:] = X[:, c0 : C - 1]
    if c0 > 0:
        E[:, 0] = X[:, c0 - 1]
    # (3) walk every prefix of chunks c0.. and take its value where it is a candidate
    def reshaped(a, fill):
        a = a[:, 1 : hi + 1]  # prefix sizes 1..hi
        if pad:
            a = xp.concat([a, xp.full((B, pad), fill, like=P)], axis=-1) if fill is not None else a
        return a.reshape(B, C, L)[:, c0:]

    Pr = reshaped(P, 0.0)
    Sr = reshaped(S, 0.0)
    Nr = reshaped(count, 0.0)
    Cr = reshaped(xp.where(cand, 1.0, 0.0), 0.0) > 0
    logs = xp.log(xp.where(Sr > 0, Sr, 1.0))
    for j in range(L):
        _absorb(E, u_at(j, c0), K)
        st = xp.exp(logs[:, :, j, None] + lam)  # (B, C', M)
        w = xp.where(st > 745.0, 0.0, st * xp.exp(-xp.minimum(st, 745.0)))
        below = xp.cumsum(E, axis=2)  # P(N <= c)
        ok = Cr[:, :, j]
        for k in ks:
            Ck = H_STEP * xp.sum(w * (1.0 - below[:, :, k - 1, :]), axis=-1)  # (B, C')
            f = xp.where(ok & (Nr[:, :, j] >= k), Pr[:, :, j] + 1.0 - xp.minimum(Ck, 1.0), math.inf)
            best[k] = xp.minimum(best[k], xp.min(f, axis=-1))
    return {k: xp.minimum(best[k], 1.0) for k in ks}
