"""K-SEQ: SpecTr's k-sequential selection (Sun et al., arXiv 2310.15141, Algorithm 3)."""

from __future__ import annotations

import numpy as np

from ._base import Verifier, accept_prob

#: Bisection stops when the bracket on ρ is this small relative to ρ.
RHO_RTOL = 4e-16


def _sorted_ratios(p: np.ndarray, q: np.ndarray, n: int):
    """Prefix sums that evaluate β(ρ) = Σ_{p/q ≥ ρ} q + (1/ρ) Σ_{p/q < ρ} p for ρ ∈ [1, n] in O(log V).

    Only tokens with 1 ≤ p/q < n can change side as ρ moves over [1, n]; they are sorted (ties are
    irrelevant: a token with p/q = ρ contributes q = p/ρ either way), the others are summed once.
    Returns (ratios of the middle tokens, sorted; their cumulative p from below; their cumulative q
    from above; fixed p below; fixed q above).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(q > 0, p / np.where(q > 0, q, 1.0), np.inf)
    low = ratio < 1.0
    high = ratio >= n
    mid = ~(low | high)
    r_mid = ratio[mid]
    order = np.argsort(r_mid)
    p_mid, q_mid = p[mid][order], q[mid][order]
    p_below = np.concatenate([[0.0], np.cumsum(p_mid)])
    q_above = np.concatenate([np.cumsum(q_mid[::-1])[::-1], [0.0]])
    return r_mid[order], p_below, q_above, float(p[low].sum()), float(q[high].sum())


def beta(sorted_ratios, rho: float) -> float:
    """β(ρ) = Σ_x min(q(x), p(x)/ρ) for ρ ∈ [1, n], from :func:`_sorted_ratios`."""
    ratio, p_below, q_above, p_low, q_high = sorted_ratios
    k = int(np.searchsorted(ratio, rho, side="left"))  # middle tokens with p/q < ρ
    return float(q_high + q_above[k] + (p_low + p_below[k]) / rho)


def kseq_rho(p: np.ndarray, q: np.ndarray, n: int) -> tuple[float, float]:
    """ρ* and β(ρ*) for n i.i.d. drafts.

    f(ρ) = ρβ(ρ) − 1 + (1 − β(ρ))^n is nondecreasing on [1, n] with f(n) ≥ 0 (Bernoulli's
    inequality); ρ* = 1 if f(1) ≥ 0, else the root, found by bisection. The upper end of the final
    bracket is returned, so f(ρ*) ≥ 0 and the residual below is a valid distribution.
    """
    sr = _sorted_ratios(p, q, n)

    def f(rho):
        b = beta(sr, rho)
        return rho * b - 1.0 + (1.0 - b) ** n, b

    f1, b1 = f(1.0)
    if f1 >= 0 or n == 1:
        return 1.0, b1
    lo, hi = 1.0, float(n)
    b_hi = f(hi)[1]
    while hi - lo > RHO_RTOL * hi:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        fm, bm = f(mid)
        if fm >= 0:
            hi, b_hi = mid, bm
        else:
            lo = mid
    return hi, b_hi


class KSeq(Verifier):
    """``kseq``: SpecTr's k-sequential selection over n i.i.d. drafts (REFERENCE §3, p = target).

    With β(ρ) = Σ_x min(q(x), p(x)/ρ): accept X_i with probability min(1, p(X_i)/(ρ q(X_i))), the
    first success wins; if all n fail, Y ~ p_res with

        p_res = [p − min(q, p/ρ)·(1 − (1 − β)^n)/β] / (1 − β)^n,

    a distribution iff 1 − (1 − β(ρ))^n ≤ ρβ(ρ). ρ* is the smallest such ρ in [1, n] (bisection), and
    the acceptance is 1 − (1 − β(ρ*))^n, at least (1 − (1 − 1/n)^n)·α*_iid ≥ (1 − 1/e)·α*_iid.
    Cost O(V log V) (a sort, then O(log V) per bisection step).

    Examples
    --------
    >>> import spectheory as st
    >>> round(st.verifier("kseq").acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2), 9)
    0.791355287
    """

    name = "kseq"
    sampling = "iid"
    samplings = ("iid",)

    def _rule(self, p, q, drafts, oracle):
        n = len(drafts)
        rho, b = kseq_rho(p, q, n)
        for x in drafts:
            x = int(x)
            if oracle.coin(accept_prob(p[x], rho * q[x])):
                return x
        if b <= 0:
            return p
        keep = np.minimum(q, p / rho) * ((1.0 - (1.0 - b) ** n) / b)
        res = np.maximum(p - keep, 0.0)
        mass = res.sum()
        return res / mass if mass > 0 else p

    def _acceptance(self, P, Q, n):
        out = np.empty(P.shape[0])
        for b in range(P.shape[0]):
            rho, beta_star = kseq_rho(P[b], Q[b], n)
            out[b] = -np.expm1(n * np.log1p(-min(beta_star, 1.0))) if beta_star < 1 else 1.0
        return out
