"""Single-draft speculative sampling (Leviathan et al. 2023, arXiv 2211.17192; Chen et al. 2023,
arXiv 2302.01318)."""

from __future__ import annotations

from .._validation import SpecTheoryValueError, check_n
from ._base import Verifier, accept_prob, residual


class SpeculativeSampling(Verifier):
    """``sd``: one draft X ~ q, accepted with probability min(1, p(X)/q(X)); on rejection the output is
    drawn from norm((p − q)+).

    The output has law p exactly, and the acceptance is the maximal-coupling value

        β = Σ_x min(p(x), q(x)) = 1 − TV(p, q),

    optimal for one draft (REFERENCE §1). Cost O(V).

    Examples
    --------
    >>> import spectheory as st
    >>> round(st.verifier("sd").acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 1), 12)
    0.7
    """

    name = "sd"
    sampling = "iid"
    samplings = ("iid",)

    def check_n(self, n):
        n = check_n(n)
        if n != 1:
            raise SpecTheoryValueError(
                f"n: 'sd' is single-draft speculative sampling and takes n = 1, got n = {n}; "
                "use 'rrs', 'kseq', 'rrs_wor', 'greedy' or 'optimal' for several drafts"
            )
        return n

    def _rule(self, p, q, drafts, oracle):
        x = int(drafts[0])
        if oracle.coin(accept_prob(p[x], q[x])):
            return x
        return residual(p, q)

    def _acceptance(self, P, Q, n):
        from .batched import sd

        return sd(P, Q)
