"""Published multi-draft verifiers: lossless samplers with exact acceptance (REFERENCE §3).

==========  ============================  =============================================================
name        native draft scheme           exact acceptance
==========  ============================  =============================================================
sd          iid (n = 1)                   Σ min(p, q)
rrs         iid, or independent drafters  1 − Π (1 − a_i), O(nV)
rrs_wor     without_replacement           closed form (n ≤ 2), recursion (small support), estimate
kseq        iid                           1 − (1 − β(ρ*))^n, O(V log V)
spechub     hub (n = 2)                   closed form, O(V)
greedy      greedy                        the greedy bound (attained), O(V)
optimal     any (``sampling=``)           α* of the scheme (attained; sampler for small V)
==========  ============================  =============================================================

Each verifier object has ``.sampling``, ``.draft(q, n, rng)``, ``.verify(p, q, drafts, rng) ->
(token, accepted)`` and ``.acceptance(p, q, n)``; :func:`exact_output_law` enumerates a sampler's
exact output law. Chains of drafts (token-by-token and block verification) are in
:mod:`spectheory.verifiers.chains`, trees (traversal verification) in :mod:`spectheory.verifiers.trees`.
"""

from __future__ import annotations

from .._validation import SpecTheoryValueError
from ._base import Acceptance, Verifier
from .exact_law import OutputLaw, exact_output_law
from .greedy import GreedyVerifier
from .kseq import KSeq
from .optimal import OptimalVerifier
from .rrs import RecursiveRejection
from .rrs_wor import RecursiveRejectionWOR
from .single import SpeculativeSampling
from .spechub import SpecHub

VERIFIERS = {
    "sd": SpeculativeSampling,
    "rrs": RecursiveRejection,
    "rrs_wor": RecursiveRejectionWOR,
    "kseq": KSeq,
    "spechub": SpecHub,
    "greedy": GreedyVerifier,
    "optimal": OptimalVerifier,
}


def verifier(name: str, **options) -> Verifier:
    """The verifier registered under ``name``: one of sd, rrs, rrs_wor, kseq, spechub, greedy, optimal.

    ``options`` go to the verifier's constructor: ``sampling`` for "rrs" ("iid" or "independent")
    and "optimal" (any draft scheme), ``construction`` for "optimal" ("plan" or "canonical"),
    ``max_histories``, ``paths``, ``seed`` for "rrs_wor".

    Examples
    --------
    >>> import spectheory as st
    >>> v = st.verifier("rrs")
    >>> drafts = v.draft([0.2, 0.3, 0.5], 2, rng=0)
    >>> token, accepted = v.verify([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], drafts, rng=1)
    """
    try:
        cls = VERIFIERS[name]
    except (KeyError, TypeError):
        raise SpecTheoryValueError(f"verifier: unknown verifier {name!r}; choose one of {', '.join(VERIFIERS)}") from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise SpecTheoryValueError(f"verifier: bad option for {name!r}: {exc}") from None


def acceptance(p, q, n, verifier: str, sampling: str | None = None):
    """Exact acceptance P(Y ∈ drafts) of one verifier with n drafts from its native scheme.

    Parameters
    ----------
    p, q : array_like, shape (V,) or (B, V)
        Target and draft distributions (q of shape (n, V) for ``sampling="independent"``).
    n : int
        Number of drafts.
    verifier : str
        "sd" (n = 1), "rrs", "rrs_wor", "kseq", "spechub" (n = 2), "greedy" or "optimal".
    sampling : str, optional
        The draft scheme, for "optimal" (any scheme, default "iid") and "rrs" ("iid" or
        "independent"). Other verifiers have one native scheme; passing a different one is an error.

    Returns
    -------
    float, or numpy.ndarray of shape (B,)
        For "rrs_wor" with n > 2 at large support the value is an estimate; use
        ``st.verifier("rrs_wor").acceptance_detail`` for its standard error.

    Examples
    --------
    >>> import spectheory as st
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> round(st.acceptance(p, q, 2, "kseq"), 6), round(st.optimal_acceptance(p, q, 2), 6)
    (0.791355, 0.86)
    """
    v = _with_sampling(verifier, sampling)
    return v.acceptance(p, q, n)


def _with_sampling(name: str, sampling: str | None) -> Verifier:
    if name not in VERIFIERS:
        raise SpecTheoryValueError(f"verifier: unknown verifier {name!r}; choose one of {', '.join(VERIFIERS)}")
    cls = VERIFIERS[name]
    if sampling is None:
        return cls()
    if name in ("optimal", "rrs"):
        return cls(sampling=sampling)
    if sampling != cls.sampling:
        raise SpecTheoryValueError(
            f"sampling: verifier {name!r} works with its own draft scheme {cls.sampling!r}, got {sampling!r} "
            "(only 'optimal' takes any scheme, and 'rrs' also 'independent')"
        )
    return cls()


__all__ = [
    "Acceptance",
    "OutputLaw",
    "VERIFIERS",
    "Verifier",
    "acceptance",
    "exact_output_law",
    "verifier",
]
