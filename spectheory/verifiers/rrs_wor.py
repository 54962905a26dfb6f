"""Recursive rejection sampling without replacement (Recursive Speculative Decoding, Jeon et al.,
arXiv 2402.14160; Sequoia, Chen et al., arXiv 2402.12374, Algorithm 2)."""

from __future__ import annotations

import numpy as np

from .._validation import SpecTheoryValueError
from ._base import Acceptance, Verifier, accept_prob, residual
from .batched import ESTIMATE_PATHS, MAX_HISTORIES, history_count, rrs_wor, rrs_wor_exact_row  # noqa: F401


def _remove(D: np.ndarray, x) -> np.ndarray:
    D = D.copy()
    D[..., x] = 0.0
    mass = D.sum(axis=-1, keepdims=True)
    return np.where(mass > 0, D / np.where(mass > 0, mass, 1.0), D)


class RecursiveRejectionWOR(Verifier):
    """``rrs_wor``: recursive rejection sampling over drafts drawn without replacement.

    With R = p and D = q: for each draft s_i accept with probability min(1, R(s_i)/D(s_i)); otherwise
    R ← norm((R − D)+) using the *current* renormalised D, then s_i is removed from D and D is
    renormalised. If every draft is rejected, Y ~ R. Lossless for any history-dependent draft law
    (Sequoia App. F; REFERENCE §3).

    Exact acceptance has no product formula, because the residual depends on which tokens were
    rejected. ``acceptance`` (one implementation for every entry point,
    :func:`spectheory.verifiers.batched.rrs_wor`) uses, per position, with k = min(n, |supp q|):

    * k = 1: Σ min(p, q); k = 2: the closed form of Jeon et al. in O(V log V), at any V;
    * k > 2 with at most ``max_histories`` rejection histories m(m−1)…(m−k+2) (m = |supp q|):
      the exact recursion over ordered rejection histories on the draft's support;
    * beyond that: an *estimate* (:meth:`acceptance_detail` reports ``exact=False`` and its standard
      error): ``paths`` sampled rejection histories with the exact step acceptances added along
      each (Rao–Blackwellised Monte Carlo, unbiased), O(log V) per step and history after one
      sort. Its uniforms are a hash of (``seed``, row index), so the same seed gives the same
      number here, in :func:`spectheory.compare` and in the replay of recorded logits (where the
      key is the position index).

    No exact algorithm is known at full vocabulary for k > 2. What was tried: after j rejections
    the state is (θ, m, the set of rejected tokens), and the *acceptance* of the next step depends
    on (θ, m) only — a rejected token has p/q below the current θ, so it never enters the sums of
    the next step — but the law of the next *rejection* excludes the rejected tokens, so exact
    acceptance at k = 3 is the double sum over (x_1, x_2) of
    w_1(x_1) w_2(x_2 | q(x_1)) a_3(θ_2(q(x_1)), 1 − q(x_1) − q(x_2)): O(V²) terms (a two-pointer
    merge over x_2 sorted by q makes each inner sum O(V)), 2·10^10 at V = 152k, and V^(k−1) in
    general. Aggregating by (θ, m) does not close the recursion: the inner sum depends on x_1
    through m_1 = 1 − q(x_1) both in the weights and in the thresholds θ_3, so it does not
    separate, and LLM rows have as many distinct q values as tokens. Hence the exact recursion
    only where m(m − 1)…(m − k + 2) ≤ ``max_histories``, and the estimate otherwise.

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
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise SpecTheoryValueError(f"seed: must be an integer >= 0, got {seed!r}")
        self.seed = int(seed)

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
        res = rrs_wor(P, Q, (n,), seed=self.seed, paths=self.paths, max_histories=self.max_histories)
        value, stderr, exact = res.value[:, 0], res.stderr[:, 0], res.exact[:, 0]
        k = np.minimum(min(int(n), 1 << 62), np.count_nonzero(Q > 0, axis=1))
        return Acceptance(value, stderr, bool(exact.all()), method_name(k, exact, self.paths))


def method_name(k, exact, paths: int) -> str:
    """How the rrs_wor acceptance of rows with k = min(n, |supp q|) drafts was computed, given
    which rows are ``exact``: "closed form", "recursion" and/or the estimate."""
    methods = set()
    if np.any(k <= 2):
        methods.add("closed form")
    if np.any(exact & (k > 2)):
        methods.add("recursion")
    if not np.all(exact):
        methods.add(f"rao-blackwellised monte carlo ({paths} histories)")
    return " + ".join(sorted(methods))
