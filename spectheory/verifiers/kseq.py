"""K-SEQ: SpecTr's k-sequential selection (Sun et al., arXiv 2310.15141, Algorithm 3)."""

from __future__ import annotations

import numpy as np

from ._base import Verifier, accept_prob

def kseq_rho(p: np.ndarray, q: np.ndarray, n: int) -> tuple[float, float]:
    """ρ* and β(ρ*) for n i.i.d. drafts at one position (:func:`spectheory.verifiers.batched.kseq_rho`).

    The last position's result is kept, so a sampler verifying many draft tuples at one position
    computes it once."""
    from .batched import kseq_rho as rho_rows, sort_by_ratio

    p = np.ascontiguousarray(p, dtype=np.float64)
    q = np.ascontiguousarray(q, dtype=np.float64)
    key = (n, p.tobytes(), q.tobytes())
    last = _LAST[0]  # one (key, value) tuple, replaced whole: safe across threads
    if last is not None and last[0] == key:
        return last[1]
    rho, b = rho_rows(sort_by_ratio(p[None], q[None]), (n,))
    value = (float(rho[0, 0]), float(b[0, 0]))
    _LAST[0] = (key, value)
    return value


_LAST: list = [None]


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
        from .batched import kseq, sort_by_ratio

        return kseq(sort_by_ratio(P, Q), (n,))[:, 0]
