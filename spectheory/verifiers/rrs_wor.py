"""Recursive rejection sampling without replacement (Recursive Speculative Decoding, Jeon et al.,
arXiv 2402.14160; Sequoia, Chen et al., arXiv 2402.12374, Algorithm 2)."""

from __future__ import annotations

import numba
import numpy as np

from .._validation import SpecTheoryValueError
from ._base import Acceptance, Verifier, accept_prob, residual

#: Largest number of rejection histories the exact recursion visits: the ordered sequences of
#: n − 1 rejected tokens, m(m − 1)…(m − n + 2) for a draft support of size m. Each costs O(V), so the
#: limit keeps one position under a few seconds (e.g. m = 64 at n = 3, m = 20 at n = 4).
MAX_HISTORIES = 200_000

#: Default number of sampled rejection histories for the estimate used above that limit (n > 2).
ESTIMATE_PATHS = 256


def _remove(D: np.ndarray, x) -> np.ndarray:
    D = D.copy()
    D[..., x] = 0.0
    mass = D.sum(axis=-1, keepdims=True)
    return np.where(mass > 0, D / np.where(mass > 0, mass, 1.0), D)


def history_count(support: int, n: int) -> int:
    """Number of rejection histories m(m − 1)…(m − n + 2) the exact recursion visits."""
    count = 1
    for i in range(n - 1):
        count *= max(support - i, 0)
    return count


def _exact_row(p: np.ndarray, q: np.ndarray, n: int) -> float:
    """Acceptance by recursion over ordered rejection histories."""

    def rec(R, D, left):
        overlap = np.minimum(R, D)
        acc = overlap.sum()
        if left == 1:
            return acc
        reject = D - overlap  # P(X = x and rejected) = D(x) − min(R(x), D(x))
        R_next = residual(R, D)
        total = acc
        for x in np.flatnonzero(reject > 0):
            total += reject[x] * rec(R_next, _remove(D, x), left - 1)
        return total

    return float(rec(p, q, n))


def _two_draft_rows(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Closed form for n = 2 (REFERENCE §3), O(V log V) per row:

    Σ min(p, q) + Σ_x (q(x) − min(p(x), q(x))) · Σ_{y ≠ x} min(r(y), q(y)/(1 − q(x))),

    r = norm((p − q)+). Only x with q(x) > p(x) are rejected, and there r(x) = 0, so the inner sum
    runs over all y: F(c) = Σ_y min(r(y), c·q(y)) at c = 1/(1 − q(x)), which is a prefix sum over
    tokens sorted by r/q.
    """
    out = np.empty(P.shape[0])
    for b in range(P.shape[0]):
        p, q = P[b], Q[b]
        first = np.minimum(p, q)
        reject = q - first
        r = residual(p, q)
        live = np.flatnonzero(reject > 0)
        if live.size == 0:
            out[b] = first.sum()
            continue
        # F(c) = Σ_{r/q ≤ c} r + c Σ_{r/q > c} q over tokens with q > 0; tokens with q = 0 add 0
        pos = q > 0
        ratio = r[pos] / q[pos]
        order = np.argsort(ratio)  # ties are irrelevant to the sums below
        ratio, rs, qs = ratio[order], r[pos][order], q[pos][order]
        r_below = np.concatenate([[0.0], np.cumsum(rs)])
        q_above = np.concatenate([np.cumsum(qs[::-1])[::-1], [0.0]])
        qx = q[live]
        # 1 − q(x) summed from the other tokens when q(x) > 1/2 (at most one such x): no
        # cancellation when q(x) is close to 1
        rest = 1.0 - qx
        for j in np.flatnonzero(qx > 0.5):
            rest[j] = np.delete(q, live[j]).sum()
        c = 1.0 / rest
        k = np.searchsorted(ratio, c, side="right")
        F = r_below[k] + c * q_above[k]
        out[b] = first.sum() + np.dot(reject[live], F)
    return out


@numba.njit(cache=True, parallel=True)
def _rb_paths(p, q, k, u):  # pragma: no cover - compiled
    paths = u.shape[0]
    V = p.shape[0]
    out = np.empty(paths)
    for j in numba.prange(paths):
        R = p.copy()
        D = q.copy()
        total = 0.0
        alive = 1.0
        for i in range(k):
            a = 0.0
            rej = 0.0
            for x in range(V):
                m = min(R[x], D[x])
                a += m
                rej += D[x] - m
            total += alive * a
            if i == k - 1 or rej <= 0.0:
                break
            # the rejected token, from (D − R)+ / Σ(D − R)+ by inverse CDF
            target = u[j, i] * rej
            acc = 0.0
            pick = -1
            for x in range(V):
                w = D[x] - min(R[x], D[x])
                if w > 0.0:
                    pick = x
                    acc += w
                    if acc >= target:
                        break
            alive *= max(1.0 - a, 0.0)
            # R ← norm((R − D)+), D ← D without the rejected token, renormalised
            mass = 0.0
            for x in range(V):
                mass += max(R[x] - D[x], 0.0)
            if mass > 0.0:
                for x in range(V):
                    R[x] = max(R[x] - D[x], 0.0) / mass
            D[pick] = 0.0
            dm = 0.0
            for x in range(V):
                dm += D[x]
            if dm > 0.0:
                for x in range(V):
                    D[x] /= dm
        out[j] = total
    return out


def _estimate_row(p, q, k, paths, seed):
    """Rao–Blackwellised estimate: sample rejection histories, add the exact acceptance of each step.

    With a_i = Σ min(R_i, D_i) at the sampled state, P(accept) = E[a_1 + (1 − a_1)(a_2 + (1 − a_2)(…))]
    when the rejected token is drawn from (D_i − R_i)+ / (1 − a_i): an unbiased estimator whose only
    randomness is which tokens were rejected. Returns (mean, standard error). The uniforms come from
    ``numpy.random.default_rng(seed)``, so the result does not depend on the thread count.
    """
    u = np.random.default_rng(seed).random((paths, max(k - 1, 1)))
    totals = _rb_paths(np.ascontiguousarray(p), np.ascontiguousarray(q), k, u)
    return float(totals.mean()), float(totals.std(ddof=1) / np.sqrt(paths))


class RecursiveRejectionWOR(Verifier):
    """``rrs_wor``: recursive rejection sampling over drafts drawn without replacement.

    With R = p and D = q: for each draft s_i accept with probability min(1, R(s_i)/D(s_i)); otherwise
    R ← norm((R − D)+) using the *current* renormalised D, then s_i is removed from D and D is
    renormalised. If every draft is rejected, Y ~ R. Lossless for any history-dependent draft law
    (Sequoia App. F; REFERENCE §3).

    Exact acceptance has no product formula, because the residual depends on which tokens were
    rejected. ``acceptance`` uses, per position:

    * n = 1: Σ min(p, q); n = 2: the closed form of REFERENCE §3 in O(V log V), at any V;
    * n > 2 with at most :data:`MAX_HISTORIES` rejection histories m(m−1)…(m−n+2) (m = |supp q|):
      the exact recursion over ordered rejection histories, O(histories · V);
    * beyond that: an *estimate* (:meth:`acceptance_detail` reports ``exact=False`` and its standard
      error): ``paths`` sampled rejection histories with the exact step acceptances added along
      each (a Rao–Blackwellised Monte Carlo, unbiased), O(paths · n · V).

    Examples
    --------
    >>> import spectheory as st
    >>> round(st.verifier("rrs_wor").acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2), 12)
    0.82
    """

    name = "rrs_wor"
    sampling = "without_replacement"
    samplings = ("without_replacement",)

    def __init__(self, max_histories: int = MAX_HISTORIES, paths: int = ESTIMATE_PATHS, seed: int = 0):
        if int(paths) < 2:
            raise SpecTheoryValueError(f"paths: need at least 2 sampled histories, got {paths}")
        self.max_histories = int(max_histories)
        self.paths = int(paths)
        self.seed = seed

    def _rule(self, p, q, drafts, oracle):
        R, D = p, q
        for x in drafts:
            x = int(x)
            if oracle.coin(accept_prob(R[x], D[x])):
                return x
            R = residual(R, D)
            D = _remove(D, x)
        return R

    def _acceptance(self, P, Q, n):
        B = P.shape[0]
        support = np.count_nonzero(Q > 0, axis=1)
        k = np.minimum(n, support)
        value = np.empty(B)
        stderr = np.zeros(B)
        exact = True
        methods = set()
        one = k == 1
        value[one] = np.minimum(P[one], Q[one]).sum(axis=1)
        two = k == 2
        if np.any(two):
            value[two] = _two_draft_rows(P[two], Q[two])
        if np.any(one | two):
            methods.add("closed form")
        for b in np.flatnonzero(k > 2):
            if history_count(int(support[b]), int(k[b])) <= self.max_histories:
                value[b] = _exact_row(P[b], Q[b], int(k[b]))
                methods.add("recursion")
            else:
                value[b], stderr[b] = _estimate_row(P[b], Q[b], int(k[b]), self.paths, (self.seed, b))
                exact = False
                methods.add(f"rao-blackwellised monte carlo ({self.paths} histories)")
        return Acceptance(np.clip(value, 0.0, 1.0), stderr, exact, " + ".join(sorted(methods)))
