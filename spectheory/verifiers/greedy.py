"""Greedy drafting and its verifier (Hu et al., arXiv 2502.18779)."""

from __future__ import annotations

import numpy as np

from ._base import Verifier, accept_prob


class GreedyVerifier(Verifier):
    """``greedy``: the n − 1 most likely tokens T of q are drafted deterministically and the last draft
    X_n is sampled from q' = q restricted to Ω \\ T, renormalised (REFERENCE §2).

    Verification is single-draft speculative sampling of X_n against p: accept with probability
    min(1, p(X_n)/q'(X_n)), else Y ~ norm(p − min(p, q')). The residual keeps all of p's mass on T,
    where an output is a draft, so the acceptance is

        p(T) + Σ_{x ∉ T} min(p(x), q'(x)),

    the optimal acceptance of greedy drafting: the verifier attains its scheme's bound. O(V).

    Examples
    --------
    >>> import spectheory as st
    >>> round(st.verifier("greedy").acceptance([0.2, 0.3, 0.5], [0.6, 0.3, 0.1], 2), 12)
    0.75
    """

    name = "greedy"
    sampling = "greedy"
    samplings = ("greedy",)

    def _rule(self, p, q, drafts, oracle):
        top = drafts[:-1]
        q_rest = q.copy()
        q_rest[top] = 0.0
        q_rest /= q_rest.sum()
        x = int(drafts[-1])
        if oracle.coin(accept_prob(p[x], q_rest[x])):
            return x
        res = p - np.minimum(p, q_rest)
        mass = res.sum()
        return res / mass if mass > 0 else p

    def _acceptance(self, P, Q, n):
        from ..solvers.bounds import bound_rows

        return bound_rows(P, Q, [n], "greedy")[:, 0]
