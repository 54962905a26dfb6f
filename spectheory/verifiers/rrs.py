"""Recursive rejection sampling with replacement (SpecInfer, Miao et al., arXiv 2305.09781)."""

from __future__ import annotations

import numpy as np

from ._base import Verifier, accept_prob, residual


class RecursiveRejection(Verifier):
    """``rrs``: SpecInfer's recursive rejection sampling over n drafts drawn with replacement.

    With R_1 = p: for i = 1..n accept X_i with probability min(1, R_i(X_i)/q_i(X_i)); otherwise
    R_{i+1} = norm((R_i − q_i)+). If every draft is rejected, Y ~ R_{n+1}. The residuals do not
    depend on which token was rejected, so with a_i = Σ_x min(R_i(x), q_i(x))

        P(accept) = 1 − Π_{i=1..n} (1 − a_i)                                  (REFERENCE §3)

    in O(nV) (O(V log V + n log V) for i.i.d. drafts, :func:`spectheory.verifiers.batched.rrs`). Drafts are i.i.d. from q (``sampling="iid"``, q_i = q), or come from n independent
    non-identical drafters (``sampling="independent"``, q of shape (n, V)).

    Examples
    --------
    >>> import spectheory as st
    >>> round(st.verifier("rrs").acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2), 12)
    0.76
    """

    name = "rrs"
    samplings = ("iid", "independent")
    #: Largest n for drafting and verifying (and so for Monte Carlo): the sampler draws and walks n
    #: drafts. The exact acceptance takes any n: it stops stepping once the residual has settled and
    #: finishes in closed form (see :mod:`spectheory.verifiers.batched`).
    MAX_N = 4096

    def check_n(self, n) -> int:
        """Validate ``n`` for sampling: an integer in ``[1, MAX_N]`` (the sampler walks n drafts)."""
        from .._validation import check_n

        return check_n(n, maximum=self.MAX_N, why="the rrs sampler draws and walks n drafts")

    def check_n_exact(self, n) -> int:
        """Validate ``n`` for the exact acceptance: any integer >= 1."""
        from .._validation import check_n

        return check_n(n)

    def __init__(self, sampling: str = "iid"):
        if sampling not in self.samplings:
            from .._validation import SpecTheoryValueError

            raise SpecTheoryValueError(
                f"sampling: 'rrs' draws i.i.d. drafts ('iid') or uses independent drafters ('independent'), "
                f"got {sampling!r}"
            )
        self.sampling = sampling

    def _rule(self, p, q, drafts, oracle):
        R = p
        for i, x in enumerate(drafts):
            qi = q if q.ndim == 1 else q[i]
            if oracle.coin(accept_prob(R[x], qi[x])):
                return int(x)
            R = residual(R, qi)
        return R

    def _acceptance(self, P, Q, n):
        if Q.ndim == 2:  # i.i.d. drafts: one sort, residuals keyed by θ (verifiers.batched.rrs)
            from .batched import rrs, sort_by_ratio

            return rrs(sort_by_ratio(P, Q), (n,))[:, 0]
        R = P
        reject = np.ones(P.shape[0])
        for i in range(n):
            Qi = Q[:, i]
            reject *= 1.0 - np.minimum(R, Qi).sum(axis=1)
            R = residual(R, Qi)
        return 1.0 - reject
