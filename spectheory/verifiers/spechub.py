"""SpecHub (Sun et al., arXiv 2411.05289): two drafts through a hub token."""

from __future__ import annotations

import numpy as np

from .._validation import SpecTheoryValueError, check_n
from ._base import Verifier, accept_prob, residual


def _hub_quantities(p: np.ndarray, q: np.ndarray):
    """a, Qai, p1, Sia, p2, Sai of REFERENCE §3 for one position (arrays of shape (V,))."""
    a = int(np.argmax(q))
    off = np.ones(q.shape[0], dtype=bool)
    off[a] = False
    rest = q[off].sum()
    with np.errstate(over="ignore"):  # rest underflowing next to q(a) ≈ 1: Qai saturates, harmlessly
        Qai = np.where(off, q[a] * (q / rest), 0.0)
    p1 = np.where(off, np.maximum(p - q, 0.0), 0.0)
    Sia = np.where(off, np.maximum(q - p, 0.0), 0.0).sum()
    p2 = np.maximum(p1 - Qai, 0.0)
    Sai = np.where(off, np.maximum(Qai - p1, 0.0), 0.0).sum()
    return a, Qai, p1, Sia, p2, Sai


class SpecHub(Verifier):
    """``spechub``: SpecHub's verifier for its hub joint (n = 2, REFERENCE §2–3).

    Hub a = argmax q; X_1 ~ q; X_2 = a if X_1 ≠ a, else X_2 ~ q without a. With
    Qai(x) = q(a)q(x)/(1 − q(a)), p1 = (p − q)+ off a, Sia = Σ_{x≠a}(q − p)+, p2 = (p1 − Qai)+ and
    Sai = Σ_{x≠a}(Qai − p1)+:

    * drafts (i, a): accept i w.p. min(1, p(i)/q(i)); else accept a w.p. min(1, (p(a) − Sai)+/Sia);
    * drafts (a, i): accept i w.p. min(1, p1(i)/Qai(i)); else accept a w.p. min(1, p(a)/Sai);
    * otherwise Y ~ norm(p2 off a, with mass ((p(a) − Sai)+ − Sia)+ on a).

    Acceptance Σ_{x≠a} min(p, q) + Σ_{x≠a} min(p1, Qai) + min(p(a), Sai + Sia), O(V); it equals the
    optimal acceptance of the hub joint (checked against the LP in the tests). When q is one-hot
    only the hub is drafted and the verifier is single-draft speculative sampling.

    Examples
    --------
    >>> import spectheory as st
    >>> round(st.verifier("spechub").acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2), 12)
    0.9
    """

    name = "spechub"
    sampling = "hub"
    samplings = ("hub",)

    def check_n(self, n):
        n = check_n(n)
        if n != 2:
            raise SpecTheoryValueError(f"n: 'spechub' verifies exactly two drafts (n = 2), got n = {n}")
        return n

    def _check_draft_count(self, k, q):
        if not (k == 1 and np.count_nonzero(q > 0) == 1):  # one-hot q: only the hub is drafted
            self.check_n(k)

    def _rule(self, p, q, drafts, oracle):
        if len(drafts) == 1:
            x = int(drafts[0])
            if oracle.coin(accept_prob(p[x], q[x])):
                return x
            return residual(p, q)
        a, Qai, p1, Sia, p2, Sai = _hub_quantities(p, q)
        x1, x2 = int(drafts[0]), int(drafts[1])
        if x2 == a:
            if oracle.coin(accept_prob(p[x1], q[x1])):
                return x1
            if oracle.coin(accept_prob(max(p[a] - Sai, 0.0), Sia)):
                return a
        else:
            if oracle.coin(accept_prob(p1[x2], Qai[x2])):
                return x2
            if oracle.coin(accept_prob(p[a], Sai)):
                return a
        res = p2.copy()
        res[a] = max(max(p[a] - Sai, 0.0) - Sia, 0.0)
        mass = res.sum()
        return res / mass if mass > 0 else p

    def _acceptance(self, P, Q, n):
        from .batched import spechub

        return spechub(P, Q)
