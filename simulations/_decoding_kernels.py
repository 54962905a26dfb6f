"""Numba kernels of multi-round speculative decoding on Markov "language models".

Private to :mod:`spectheory.simulations.decoding`, which validates every argument before calling in.
The kernels are serial (one simulation or one replica at a time on the calling thread), compiled in
nopython mode and cached on disk (``cache=True``).

Random numbers come from xoshiro256** (Blackman & Vigna), kept in a ``uint64[4]`` state array owned by
the caller, so a simulation can be run in chunks (for a progress bar) and give exactly the result of
one uninterrupted call. A replica's state is derived from two 64-bit keys and the replica index with
SplitMix64 (:func:`seed_state`); the keys come from ``numpy.random.SeedSequence(seed)`` on the Python
side.

Workspace per simulation: the draft chain (``max_k + 1`` tokens), its ratios and acceptance
probabilities and the block weights (``max_k + 1`` floats each) and one residual row (``V`` floats):
O(V + K). The row-wise cumulative sums of the two transition matrices (O(V²)) are built once per call
and only read.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U5 = np.uint64(5)
_U9 = np.uint64(9)
_S7 = np.uint64(7)
_S57 = np.uint64(57)
_S17 = np.uint64(17)
_S45 = np.uint64(45)
_S19 = np.uint64(19)
_S11 = np.uint64(11)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53

#: Indices into the int64 ``status`` array a simulation carries between chunks.
LAST, TOTAL, ROUNDS = 0, 1, 2


# ------------------------------------------------------------------------------------------------
# random numbers
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _mix64(z):
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True)
def seed_state(key0, key1, replica, state):
    """Fill ``state`` (uint64[4]) for replica ``replica`` from the keys (key0, key1).

    x = key0 XOR SplitMix64-finaliser(key1 + (replica + 1)·γ); the four state words are the next four
    SplitMix64 outputs from x (γ = 0x9E3779B97F4A7C15).
    """
    x = key0 ^ _mix64(key1 + (np.uint64(replica) + np.uint64(1)) * _GOLDEN)
    for i in range(4):
        x = x + _GOLDEN
        state[i] = _mix64(x)


@njit(cache=True)
def _next_u64(s):
    s1 = s[1]
    m = s1 * _U5
    result = ((m << _S7) | (m >> _S57)) * _U9
    t = s1 << _S17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s3 = s[3]
    s[3] = (s3 << _S45) | (s3 >> _S19)
    return result


@njit(cache=True)
def uniform(s):
    """A float64 in [0, 1) on the 2^-53 grid."""
    return np.float64(_next_u64(s) >> _S11) * _TWO_M53


# ------------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _sample_cdf(cdf, u):
    """Inverse-CDF draw from a row of cumulative sums: the first i with cdf[i] > u·cdf[-1].

    Never returns an index of zero weight (cdf[i] = cdf[i−1] cannot exceed a value ≥ cdf[i−1]).
    """
    V = cdf.shape[0]
    x = u * cdf[V - 1]
    lo = 0
    hi = V
    while lo < hi:
        mid = (lo + hi) >> 1
        if cdf[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    if lo >= V:  # u·total rounded up to total: take the last index of positive weight
        lo = V - 1
        while lo > 0 and cdf[lo] == cdf[lo - 1]:
            lo -= 1
    return lo


@njit(cache=True)
def _sample_weights(w, mass, u):
    """Inverse-CDF draw from unnormalised non-negative weights of total ``mass`` > 0."""
    V = w.shape[0]
    x = u * mass
    acc = 0.0
    last = -1
    for i in range(V):
        if w[i] > 0.0:
            acc += w[i]
            last = i
            if acc > x:
                return i
    return last


@njit(cache=True)
def _residual_token(T, D, b, ctx, resid, rng):
    """A draw from norm((b·T[ctx] − D[ctx])+); falls back to norm((T[ctx] − D[ctx])+), then T[ctx].

    The fallbacks are reached with probability 0 (they keep the rule defined, as
    ``spectheory.verifiers._base.residual`` does).
    """
    V = T.shape[1]
    u = uniform(rng)
    for attempt in range(2):
        bb = b if attempt == 0 else 1.0
        mass = 0.0
        for x in range(V):
            r = bb * T[ctx, x] - D[ctx, x]
            if r > 0.0:
                resid[x] = r
                mass += r
            else:
                resid[x] = 0.0
        if mass > 0.0:
            return _sample_weights(resid, mass, u)
    for x in range(V):
        resid[x] = T[ctx, x]
    return _sample_weights(resid, 1.0, u)


# ------------------------------------------------------------------------------------------------
# one round
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _round(
    T, D, Tc, Dc, h, min_k, max_k, block, ctx, rng,
    chain, ratio, accp, bw, resid, drafted, attempted, accepted, hist_tokens, hist_draft,
    seq, pos, cap,
):
    """Draft, verify and emit one round from context token ``ctx``.

    Writes the emitted tokens to seq[pos:] (up to index cap − 1; ``cap`` = 0 records nothing) and
    returns (number of emitted tokens, last emitted token).
    """
    # ---- drafting: Y_k ~ D[Y_{k−1}], stop by the policy --------------------------------------
    chain[0] = ctx
    prod = 1.0
    k = 0
    while True:
        k += 1
        prev = chain[k - 1]
        y = _sample_cdf(Dc[prev], uniform(rng))
        chain[k] = y
        r = T[prev, y] / D[prev, y]  # D[prev, y] > 0: y was drawn from D[prev]
        ratio[k] = r
        a = min(1.0, r)
        accp[k] = a
        prod *= a
        if k >= max_k:
            break
        if k >= min_k and 1.0 - prod > h:
            break
    gamma = k

    # ---- verification ------------------------------------------------------------------------
    if not block:
        tau = gamma
        for i in range(1, gamma + 1):
            if not (uniform(rng) < accp[i]):
                tau = i - 1
                break
        if tau == gamma:
            last = _sample_cdf(Tc[chain[gamma]], uniform(rng))
        else:
            last = _residual_token(T, D, 1.0, chain[tau], resid, rng)
    else:
        bw[0] = 1.0
        for i in range(1, gamma + 1):
            prevb = bw[i - 1]
            if prevb == 0.0:
                bw[i] = 0.0
            else:
                v = prevb * ratio[i]
                bw[i] = min(1.0, v)
        tau = 0
        for i in range(gamma, 0, -1):  # τ = max{i : η_i < h_i}: the first success from the top wins
            bi = bw[i]
            if i == gamma:
                hi = bi
            elif bi == 1.0:
                hi = 1.0  # r_i ≥ 0 and r_i + 1 − b_i = r_i: h_i = 1 (also the 0/0 case)
            elif bi == 0.0:
                hi = 0.0  # r_i = 0, denominator 1
            else:
                c = chain[i]
                rsum = 0.0
                for x in range(T.shape[1]):
                    v = bi * T[c, x] - D[c, x]
                    if v > 0.0:
                        rsum += v
                den = rsum + 1.0 - bi
                hi = 1.0 if den <= 0.0 else rsum / den
            if uniform(rng) < hi:
                tau = i
                break
        if tau == gamma:
            last = _sample_cdf(Tc[chain[gamma]], uniform(rng))
        else:
            last = _residual_token(T, D, bw[tau], chain[tau], resid, rng)

    # ---- emission and counters ---------------------------------------------------------------
    for j in range(1, gamma + 1):
        drafted[j - 1] += 1
    top = tau + 1 if tau < gamma else gamma
    for j in range(1, top + 1):
        attempted[j - 1] += 1
    for j in range(1, tau + 1):
        accepted[j - 1] += 1
    hist_tokens[tau + 1] += 1
    hist_draft[gamma] += 1
    for j in range(1, tau + 1):
        if pos < cap:
            seq[pos] = chain[j]
        pos += 1
    if pos < cap:
        seq[pos] = last
    return tau + 1, last


@njit(cache=True)
def run_decoding(
    T, D, Tc, Dc, h, min_k, max_k, block, until, rng, status,
    drafted, attempted, accepted, hist_tokens, hist_draft, seq,
):
    """Run rounds while status[TOTAL] < until, continuing from ``status`` and ``rng`` (both updated).

    ``status`` = [last token, tokens so far, rounds so far]. ``seq`` (capacity len(seq), possibly 0)
    receives the emitted tokens at their positions.
    """
    V = T.shape[1]
    chain = np.empty(max_k + 1, dtype=np.int64)
    ratio = np.empty(max_k + 1)
    accp = np.empty(max_k + 1)
    bw = np.empty(max_k + 1)
    resid = np.empty(V)
    cap = seq.shape[0]
    last = status[LAST]
    total = status[TOTAL]
    rounds = status[ROUNDS]
    while total < until:
        n, last = _round(
            T, D, Tc, Dc, h, min_k, max_k, block, last, rng,
            chain, ratio, accp, bw, resid, drafted, attempted, accepted, hist_tokens, hist_draft,
            seq, total, cap,
        )
        total += n
        rounds += 1
    status[LAST] = last
    status[TOTAL] = total
    status[ROUNDS] = rounds


@njit(cache=True)
def run_replicas(T, D, Tc, Dc, h, min_k, max_k, block, tokens, key0, key1, first, init_cdf, init_token, out_init, out):
    """Replicas first .. first + len(out) − 1: each a fresh run from its own initial token, seeded by
    :func:`seed_state` from (key0, key1, replica index), recording its first ``tokens`` tokens.

    The initial token is ``init_token`` if it is ≥ 0, else the first draw of the replica's stream from
    ``init_cdf``.
    """
    V = T.shape[1]
    chain = np.empty(max_k + 1, dtype=np.int64)
    ratio = np.empty(max_k + 1)
    accp = np.empty(max_k + 1)
    bw = np.empty(max_k + 1)
    resid = np.empty(V)
    drafted = np.zeros(max_k, dtype=np.int64)
    attempted = np.zeros(max_k, dtype=np.int64)
    accepted = np.zeros(max_k, dtype=np.int64)
    hist_tokens = np.zeros(max_k + 2, dtype=np.int64)
    hist_draft = np.zeros(max_k + 1, dtype=np.int64)
    rng = np.empty(4, dtype=np.uint64)
    for r in range(out.shape[0]):
        seed_state(key0, key1, first + r, rng)
        if init_token >= 0:
            last = init_token
        else:
            last = _sample_cdf(init_cdf, uniform(rng))
        out_init[r] = last
        row = out[r]
        total = 0
        while total < tokens:
            n, last = _round(
                T, D, Tc, Dc, h, min_k, max_k, block, last, rng,
                chain, ratio, accp, bw, resid, drafted, attempted, accepted, hist_tokens, hist_draft,
                row, total, tokens,
            )
            total += n
