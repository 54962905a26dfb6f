"""Compiled kernels of the Monte Carlo engine (:mod:`spectheory.simulations.montecarlo`).

Everything here is numba ``nopython`` code, compiled once and cached on disk (``cache=True``). The
public module prepares the trial-independent tables; the kernels only sample.

Random numbers
--------------
xoshiro256** (Blackman & Vigna 2018) with its 256-bit state in a small ``uint64[4]`` array, seeded by
splitmix64. Trials are cut into chunks of :data:`CHUNK` consecutive trials; chunk c gets its own
generator, seeded from the 128-bit key (k0, k1) derived from the user's seed and from c alone
(:func:`seed_chunk`). A chunk's trials, and so its counts, therefore depend only on (seed, c), never
on which thread runs it. The kernels run ``groups`` contiguous ranges of chunks in ``prange`` and
return one integer count per group (and one histogram row per group); the caller adds them. Integer
addition is exact and associative, so the totals are identical for any number of groups or threads.

Uniforms are U = (r >> 11)·2^−53 ∈ [0, 1), r the next 64-bit output; a coin of probability a is
U < a (so a = 1 always succeeds and a = 0 never does).

Trial kernels
-------------
* :func:`run_sequential` — sd, rrs, kseq, greedy: up to n draws from one alias table, each accepted
  with a tabulated (or (t, M)-parametrised) probability, else one draw from the final residual.
* :func:`run_hub` — spechub.
* :func:`run_without_replacement` — rrs_wor, whose residual depends on the rejection history through
  two scalars (see the kernel's docstring).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._alias import alias_draw, select_unpredictable

#: Trials per chunk. Part of the reproducibility contract: changing it changes every stream.
CHUNK = 16_384

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53


# --------------------------------------------------------------------------------------------
# random numbers
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def mix64(z):  # pragma: no cover - compiled
    """The splitmix64 finaliser (a bijection of uint64 with full avalanche)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def seed_chunk(s, k0, k1, chunk):  # pragma: no cover - compiled
    """Seed the xoshiro256** state ``s`` (uint64[4]) of chunk number ``chunk`` under key (k0, k1)."""
    h = mix64(k1 ^ mix64(k0 + (np.uint64(chunk) + np.uint64(1)) * _GOLDEN))
    for i in range(4):
        h = h + _GOLDEN
        s[i] = mix64(h)
    if s[0] == 0 and s[1] == 0 and s[2] == 0 and s[3] == 0:
        s[0] = np.uint64(1)


@numba.njit(cache=True)
def _rotl(x, k):  # pragma: no cover - compiled
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(cache=True)
def next_u64(s):  # pragma: no cover - compiled
    """Next output of xoshiro256** (state ``s`` updated in place)."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    r = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return r


@numba.njit(cache=True)
def next_double(s):  # pragma: no cover - compiled
    """A uniform in [0, 1) with 53 random bits."""
    return (next_u64(s) >> np.uint64(11)) * _TWO_M53


@numba.njit(cache=True)
def uniforms(k0, k1, chunk, count):  # pragma: no cover - compiled
    """The first ``count`` uniforms of a chunk's stream (for tests)."""
    s = np.empty(4, np.uint64)
    seed_chunk(s, k0, k1, chunk)
    out = np.empty(count)
    for i in range(count):
        out[i] = next_double(s)
    return out


@numba.njit(cache=True)
def _chunk_range(g, groups, n_chunks):  # pragma: no cover - compiled
    return (g * n_chunks) // groups, ((g + 1) * n_chunks) // groups


# --------------------------------------------------------------------------------------------
# sd, rrs, kseq, greedy
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def run_sequential(
    q_prob, q_alias, table, t_steps, m_steps, p, q, r_prob, r_alias, also_drafted, n, trials, c_start, c_stop, k0, k1, groups, want_hist
):  # pragma: no cover - compiled
    """Up to n draws X_i from the alias table (``q_prob``, ``q_alias``); X_i is accepted with
    probability a_i(X_i), the first success is the output; if all n fail, Y is drawn from the residual
    alias table (``r_prob``, ``r_alias``).

    a_i(x) = ``table[i, x]`` (``table[0, x]`` for every i when the table has one row); with an empty
    table, a_i(x) = (p(x) − t_i q(x))+ / (M_i q(x)), the residual R_i = (p − t_i q)+/M_i in scalar form.
    ``also_drafted[y]`` marks tokens that are drafts in every trial (greedy's deterministic drafts):
    the output counts as accepted when it is one of the sampled drafts or such a token.
    Per trial O(n) time; per group O(n) memory (plus the histogram row).
    """
    V = q_prob.shape[0]
    n_chunks = c_stop - c_start  # this call runs chunks c_start..c_stop-1 of the trials
    rows = table.shape[0]
    accepted = np.zeros(groups, np.int64)
    hist = np.zeros((groups, V if want_hist else 0), np.int64)
    for g in prange(groups):
        c_lo, c_hi = _chunk_range(g, groups, n_chunks)
        c_lo += c_start
        c_hi += c_start
        s = np.empty(4, np.uint64)
        drafts = np.empty(n, np.int64)
        acc = 0
        for c in range(c_lo, c_hi):
            seed_chunk(s, k0, k1, c)
            m = min(CHUNK, trials - c * CHUNK)
            for _ in range(m):
                y = -1
                k = 0
                for i in range(n):
                    x = alias_draw(q_prob, q_alias, next_double(s))
                    drafts[i] = x
                    k = i + 1
                    u = next_double(s)
                    if rows > 0:
                        a = table[i if rows > 1 else 0, x]
                        if u < a:
                            y = x
                            break
                    else:
                        num = p[x] - t_steps[i] * q[x]
                        if num > 0.0 and u * (m_steps[i] * q[x]) < num:
                            y = x
                            break
                if y >= 0:
                    acc += 1
                else:
                    y = alias_draw(r_prob, r_alias, next_double(s))
                    hit = also_drafted[y]
                    for j in range(k):
                        if drafts[j] == y:
                            hit = True
                    if hit:
                        acc += 1
                if want_hist:
                    hist[g, y] += 1
        accepted[g] = acc
    return accepted, hist


# --------------------------------------------------------------------------------------------
# spechub
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def run_hub(
    q_prob, q_alias, o_prob, o_alias, a, acc_first, c_first, acc_second, c_second, r_prob, r_alias, trials, c_start, c_stop, k0, k1,
    groups, want_hist,
):  # pragma: no cover - compiled
    """SpecHub: X_1 ~ q (``q_prob``/``q_alias``). If X_1 ≠ a: X_2 = a; accept X_1 w.p.
    ``acc_first[X_1]``, else a w.p. ``c_first``. If X_1 = a: X_2 ~ q without a (``o_prob``/``o_alias``);
    accept X_2 w.p. ``acc_second[X_2]``, else a w.p. ``c_second``. Otherwise Y ~ residual. O(1) per trial.
    """
    V = q_prob.shape[0]
    n_chunks = c_stop - c_start  # this call runs chunks c_start..c_stop-1 of the trials
    accepted = np.zeros(groups, np.int64)
    hist = np.zeros((groups, V if want_hist else 0), np.int64)
    for g in prange(groups):
        c_lo, c_hi = _chunk_range(g, groups, n_chunks)
        c_lo += c_start
        c_hi += c_start
        s = np.empty(4, np.uint64)
        acc = 0
        for c in range(c_lo, c_hi):
            seed_chunk(s, k0, k1, c)
            m = min(CHUNK, trials - c * CHUNK)
            for _ in range(m):
                x1 = alias_draw(q_prob, q_alias, next_double(s))
                y = -1
                if x1 != a:
                    x2 = a
                    if next_double(s) < acc_first[x1]:
                        y = x1
                    elif next_double(s) < c_first:
                        y = a
                else:
                    x2 = alias_draw(o_prob, o_alias, next_double(s))
                    if next_double(s) < acc_second[x2]:
                        y = x2
                    elif next_double(s) < c_second:
                        y = a
                if y < 0:
                    y = alias_draw(r_prob, r_alias, next_double(s))
                if y == x1 or y == x2:
                    acc += 1
                if want_hist:
                    hist[g, y] += 1
        accepted[g] = acc
    return accepted, hist


# --------------------------------------------------------------------------------------------
# rrs_wor
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def count_above(ratio_desc, t):  # pragma: no cover - compiled
    """Number of entries > t of a descending array: a branch-free binary search (fixed trip count,
    conditional moves), since the comparisons are coin flips for a branch predictor."""
    size = ratio_desc.shape[0]
    if size == 0:
        return 0
    base = 0
    while size > 1:
        half = size >> 1
        base = select_unpredictable(ratio_desc[base + half] > t, base + half, base)
        size -= half
    return base + (1 if ratio_desc[base] > t else 0)


@numba.njit(cache=True)
def _residual_draw(order, cum_p, cum_q, t, J, w):  # pragma: no cover - compiled
    """Inverse CDF of (p − t q)+ over the J ≥ 1 tokens of largest p/q: the smallest j in [1, J] with
    F(j) = cum_p[j] − t·cum_q[j] > w, returned as the token ``order[j − 1]`` (j = J if rounding leaves
    none). F increases along j, so j − 1 = #{j' ∈ [1, J − 1] : F(j') ≤ w}: a branch-free search."""
    size = J - 1
    base = 1
    if size > 0:
        while size > 1:
            half = size >> 1
            mid = base + half
            base = select_unpredictable(cum_p[mid] - t * cum_q[mid] <= w, mid, base)
            size -= half
        base += 1 if cum_p[base] - t * cum_q[base] <= w else 0
    return order[base - 1]


@numba.njit(cache=True)
def _tree_remove(tree, L, x):  # pragma: no cover - compiled
    k = L + x
    tree[k] = 0.0
    k >>= 1
    while k >= 1:
        tree[k] = tree[2 * k] + tree[2 * k + 1]
        k >>= 1


@numba.njit(cache=True)
def _tree_restore(tree, tree0, L, x):  # pragma: no cover - compiled
    k = L + x
    while k >= 1:
        tree[k] = tree0[k]
        k >>= 1


@numba.njit(cache=True)
def _tree_draw(tree, L, w):  # pragma: no cover - compiled
    """Descend the sum tree with w ∈ [0, tree[1]): right when w ≥ left mass and the right subtree has
    mass (w −= left), else left. Every node entered has positive mass (if rounding leaves w ≥ left
    with an empty right subtree, the left one holds the whole mass), so the leaf is a token with
    positive weight. Branch-free: the step is arithmetic on the comparison."""
    k = 1
    while k < L:
        left = tree[2 * k]
        go = (w >= left) & (tree[2 * k + 1] > 0.0)
        w -= left * np.float64(go)
        k = 2 * k + np.int64(go)
    return k - L


@numba.njit(cache=True, parallel=True)
def run_without_replacement(
    p, q, q_prob, q_alias, order, ratio_desc, cum_p, cum_q, state0, state1, rest1, t2, m2, j2, tree0, L, n, trials,
    c_start, c_stop, k0, k1, groups, want_hist,
):  # pragma: no cover - compiled
    """Recursive rejection sampling over n drafts drawn without replacement (successive sampling).

    State after the rejections of a set S (the drafts so far): the current draft law is
    D = q off S, divided by rest = q(Ω \\ S), and the current residual is R = (p − t q)+ / M with two
    scalars t ≥ 0, M = Σ(p − t q)+. Indeed R starts at p (t = 0) and, since every rejected token s has
    R(s) < D(s) and so R = 0 on S afterwards,

        norm((R − D)+) = (p − t' q)+ / M',  t' = t + M/rest,  M' = Σ(p − t' q)+

    (when (R − D)+ has no mass R is kept, as in the exact code). So a draft x is accepted with
    probability min(1, R(x)/D(x)) = min(1, (p(x) − t q(x))+ · rest / (M q(x))) in O(1). M(t) is
    cum_p[J] − t·cum_q[J] with J = #{p/q > t}, prefix sums over tokens sorted by p/q (``order``,
    ``ratio_desc``, ``cum_p``, ``cum_q``): O(log V). The final Y ~ R is an O(log V) inverse CDF over
    the same prefix sums.

    Precomputed: the state before any rejection ``state0`` = (t, M, J, rest) = (0, Σp, #{p > 0}, Σq)
    and after the first rejection ``state1`` = (t1, M1, J1) (it does not depend on the rejected
    token); after the first rejection of x1, rest = ``rest1[x1]``, and the state after the second
    rejection is (``t2[x1]``, ``m2[x1]``, ``j2[x1]``). So only the third and later rejections search.

    Drafts: while rest ≥ 1/2, rejection sampling from q's alias table (redraw a token already in S;
    ≤ 2 draws on average). Below 1/2 the trial switches to a per-thread sum tree of q (a copy of
    ``tree0``, L leaves) with the tokens of S set to 0: O(log V) per draw and per removal, rest = the
    root, a fresh sum (no cancellation); the touched paths are restored afterwards.
    Per trial O(n log V) time; per group O(V + n) memory (the tree copy and S).
    """
    V = q_prob.shape[0]
    n_chunks = c_stop - c_start  # this call runs chunks c_start..c_stop-1 of the trials
    accepted = np.zeros(groups, np.int64)
    hist = np.zeros((groups, V if want_hist else 0), np.int64)
    t0 = state0[0]
    M0 = state0[1]
    J0 = np.int64(state0[2])
    total = state0[3]
    t1 = state1[0]
    M1 = state1[1]
    J1 = np.int64(state1[2])
    for g in prange(groups):
        c_lo, c_hi = _chunk_range(g, groups, n_chunks)
        c_lo += c_start
        c_hi += c_start
        s = np.empty(4, np.uint64)
        S = np.empty(n, np.int64)
        work = tree0.copy()
        acc = 0
        for c in range(c_lo, c_hi):
            seed_chunk(s, k0, k1, c)
            m = min(CHUNK, trials - c * CHUNK)
            for _ in range(m):
                t = t0
                M = M0
                J = J0
                rest = total
                nS = 0
                tree_mode = False
                y = -1
                for i in range(n):
                    if i > 0 and (tree_mode or rest < 0.5):
                        if not tree_mode:
                            for j in range(nS):
                                _tree_remove(work, L, S[j])
                            tree_mode = True
                        x = _tree_draw(work, L, next_double(s) * work[1])
                    else:
                        while True:
                            x = alias_draw(q_prob, q_alias, next_double(s))
                            dup = False
                            for j in range(nS):
                                if S[j] == x:
                                    dup = True
                                    break
                            if not dup:
                                break
                    u = next_double(s)
                    num = p[x] - t * q[x]
                    if num > 0.0 and u * (M * q[x]) < num * rest:
                        y = x
                        break
                    # rejected: R <- norm((R - D)+), then x leaves D
                    if i == 0:
                        t = t1
                        M = M1
                        J = J1
                    elif i == 1:
                        t = t2[S[0]]
                        M = m2[S[0]]
                        J = j2[S[0]]
                    else:
                        t_new = t + M / rest
                        J_new = count_above(ratio_desc, t_new)
                        M_new = cum_p[J_new] - t_new * cum_q[J_new]
                        if M_new > 0.0:
                            t = t_new
                            M = M_new
                            J = J_new
                    S[nS] = x
                    nS += 1
                    if i == 0:
                        rest = rest1[x]
                    elif tree_mode:
                        _tree_remove(work, L, x)
                        rest = work[1]
                    else:
                        rest -= q[x]
                if y >= 0:
                    acc += 1
                else:
                    y = _residual_draw(order, cum_p, cum_q, t, J, next_double(s) * M)
                    for j in range(nS):
                        if S[j] == y:
                            acc += 1
                            break
                if tree_mode:
                    for j in range(nS):
                        _tree_restore(work, tree0, L, S[j])
                if want_hist:
                    hist[g, y] += 1
        accepted[g] = acc
    return accepted, hist
