"""A lossless verifier attaining the optimal acceptance α* of a draft scheme."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .._validation import SpecTheoryValueError
from ..schemes import SCHEMES
from ._base import Verifier, accept_prob, residual

CONSTRUCTIONS = ("plan", "canonical", "priority")


class OptimalVerifier(Verifier):
    """``optimal``: a verifier whose acceptance is α*(p, Q) for its draft scheme (REFERENCE §2).

    Three constructions. Two solve an LP over the draft tuples, for small V (see
    :data:`~spectheory.solvers.transport.MAX_LP_VARIABLES`):

    * ``construction="plan"``: the SpecTr transport plan π (arXiv 2310.15141). Given drafts x, output
      Y ~ π(x, ·)/Q(x). The plan is repaired to its exact marginals (Altschuler et al. 2017), so
      the sampler is lossless to rounding.
    * ``construction="canonical"``: Khisti et al.'s canonical decomposition (arXiv 2410.18234):
      select one draft with the selection-LP rule, then single-draft speculative sampling from the
      induced marginal r to p (accept with min(1, p/r), else Y ~ norm((p − r)+)).

    The third needs no LP:

    * ``construction="priority"``: an optimal selection law r* in closed form (the base polytope of
      F(A) = P(some draft ∈ A), :mod:`spectheory.solvers.priority`) sampled by a random priority
      order — select the drafted token ranked highest — then speculative sampling from r* to p.
      greedy, hub and topk drafts: any V, O(V) to build, O(n) per verification. iid, without
      replacement and independent drafters: an explicit mixture of at most V + 1 priority orders,
      V ≤ :data:`~spectheory.solvers.priority.MAX_PRIORITY_V` (O(V²·2^V) to build, O(n + log V) per
      verification); beyond that it refuses, naming what to use.

    :meth:`acceptance` is α* itself, from :func:`spectheory.optimal_acceptance` (any V); the
    sampler's own acceptance equals it up to the LP tolerance (checked in the tests).

    Parameters
    ----------
    sampling : str
        The draft scheme ("iid", "without_replacement", "greedy", "hub", "independent").
    construction : {"plan", "canonical", "priority"}

    Examples
    --------
    >>> import spectheory as st
    >>> v = st.verifier("optimal", sampling="without_replacement")
    >>> round(v.acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2), 9)
    0.985714286
    >>> token, accepted = v.verify([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [2, 1], rng=0)
    """

    name = "optimal"
    samplings = tuple(SCHEMES)

    def __init__(self, sampling: str = "iid", construction: str = "plan"):
        if sampling not in SCHEMES:
            raise SpecTheoryValueError(
                f"sampling: unknown draft scheme {sampling!r}; choose one of {', '.join(SCHEMES)}"
            )
        if construction not in CONSTRUCTIONS:
            raise SpecTheoryValueError(
                f"construction: unknown construction {construction!r}; choose one of {', '.join(CONSTRUCTIONS)}"
            )
        self.sampling = sampling
        self.construction = construction
        self._cache: OrderedDict = OrderedDict()

    def __repr__(self) -> str:
        return f"<verifier 'optimal' (drafts: {self.sampling}, construction: {self.construction})>"

    def check_n(self, n):
        from .._validation import check_n

        n = check_n(n)
        if self.sampling == "hub" and n != 2:
            raise SpecTheoryValueError(f"n: sampling='hub' (SpecHub) is defined for n = 2 only, got n = {n}")
        return n

    def _check_draft_count(self, k, q):
        if not (self.sampling == "hub" and k == 1):
            self.check_n(k)

    def _solved(self, p, q, k):
        """The LP solution for one position and k drafts, cached (a few entries)."""
        key = (p.tobytes(), q.tobytes(), k)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        n = 2 if self.sampling == "hub" else k
        if self.construction == "priority":
            from ..solvers.priority import priority_selector

            entry = priority_selector(p, q, n, self.sampling)
            self._remember(key, entry)
            return entry
        if self.construction == "plan":
            from ..solvers.transport import _round_to_marginals, transport_lp

            res = transport_lp(p, q, n, self.sampling)
            plan = _round_to_marginals(res.plan.copy(), res.tuple_probs, p)
            tuples, Qt = res.tuples, res.tuple_probs
            payload = (plan, None)
        else:
            from ..solvers.canonical import canonical_selection

            res = canonical_selection(p, q, n, self.sampling)
            tuples, Qt = res.tuples, res.tuple_probs
            payload = (res.selection, res.marginal)
        index = {tuple(int(x) for x in t): i for i, t in enumerate(tuples)}
        entry = (index, Qt, payload)
        self._remember(key, entry)
        return entry

    def _remember(self, key, entry):
        self._cache[key] = entry
        if len(self._cache) > 8:
            self._cache.popitem(last=False)

    def _rule(self, p, q, drafts, oracle):
        if self.construction == "priority":
            selector = self._solved(p, q, len(drafts))
            x = selector.select(drafts, oracle)
            if oracle.coin(accept_prob(p[x], selector.law[x])):
                return x
            return residual(p, selector.law)
        index, Qt, (first, marginal) = self._solved(p, q, len(drafts))
        row = index.get(tuple(int(x) for x in drafts))
        # A tuple whose probability underflows to 0 (not in the tuple law), or whose plan row is
        # below the solver's resolution, carries no mass in float64; the target itself is then the
        # natural output law (the output law changes by at most that tuple's probability).
        if row is None:
            return p
        if marginal is None:
            law = first[row]
            mass = law.sum()
            return law / mass if mass > 0 else p
        i = oracle.choose(first[row])
        x = int(drafts[i])
        if oracle.coin(accept_prob(p[x], marginal[x])):
            return x
        return residual(p, marginal)

    def _acceptance(self, P, Q, n):
        from ..solvers.optimal import optimal_acceptance

        return np.atleast_1d(optimal_acceptance(P, Q, n, self.sampling))
