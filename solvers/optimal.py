"""``optimal_acceptance``: the best acceptance any lossless verifier can reach for a draft scheme."""

from __future__ import annotations

import numpy as np

from spectheory._validation import SpecTheoryValueError, check_pair
from spectheory.schemes import get_scheme

from .brute_dual import MAX_BRUTE_V, subset_dual_brute
from .closed_forms import greedy_bound, hub_bound
from .sorted_prefix import prefix_dual
from .transport import transport_lp

METHODS = ("auto", "dual", "lp", "brute")


def optimal_acceptance(p, q, n, sampling: str = "iid", method: str = "auto"):
    """Optimal multi-draft acceptance α*(p, Q): the largest P(output ∈ drafts) of a lossless verifier.

    By max-flow/min-cut on the SpecTr transport LP (arXiv 2310.15141; Hu et al. arXiv 2502.18779),

        α* = min over H ⊆ Ω of [ p(H) + 1 − C(H) ],   C(H) = Q(every draft in H),

    where Q is the joint law of the n drafts under ``sampling`` (REFERENCE §2).

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Target distribution(s).
    q : array_like, shape (V,) or (B, V); (n, V) or (B, n, V) for ``sampling="independent"``
        Draft distribution(s).
    n : int >= 1
        Number of drafts. Schemes with distinct drafts draw min(n, |supp q|)
        (:mod:`spectheory.schemes`).
    sampling : {"iid", "without_replacement", "greedy", "hub", "independent"}
    method : {"auto", "dual", "lp", "brute"}
        ``"dual"``: sorted prefixes for iid (proved) and without_replacement (checked, not
        proved), closed forms for greedy and hub, O(V log V) or better at any V; for independent
        drafters no sort order is known and the dual is the brute-force enumeration (V ≤ 22).
        ``"lp"``: the transport LP (scipy HiGHS), small V and n only. ``"brute"``: enumeration of
        all 2^V subsets (V ≤ 22). ``"auto"``: the dual.

    Returns
    -------
    float, or numpy.ndarray of shape (B,) for a batch

    Raises
    ------
    ValueError
        Bad distributions, n < 1, hub with n ≠ 2, an unknown scheme or method, or a problem too
        large for the requested method (the message says what to use instead).

    Examples
    --------
    >>> import spectheory as st
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> round(st.optimal_acceptance(p, q, 1), 12)          # n = 1: Σ min(p, q)
    0.7
    >>> round(st.optimal_acceptance(p, q, 2), 12)          # i.i.d. drafts
    0.86
    >>> round(st.optimal_acceptance(p, q, 2, "without_replacement"), 12)
    0.985714285714
    """
    scheme = get_scheme(sampling)
    if method not in METHODS:
        raise SpecTheoryValueError(f"method: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    P, Q, n, batched = check_pair(p, q, n, sampling)
    if sampling == "hub":
        scheme.effective_n(Q[0], n)  # raises for n != 2
    V = P.shape[1]
    if method == "auto":
        method = "dual"
    if method == "dual":
        if sampling in ("iid", "without_replacement"):
            out = prefix_dual(P, Q, n, sampling)
        elif sampling == "greedy":
            out = greedy_bound(P, Q, n)
        elif sampling == "hub":
            out = hub_bound(P, Q)
        else:
            if V > MAX_BRUTE_V:
                raise SpecTheoryValueError(
                    f"sampling: no exact algorithm is known for independent drafters beyond V = {MAX_BRUTE_V} "
                    f"(got V = {V}); the subset dual has no known sort order for them (REFERENCE §2)"
                )
            method = "brute"
    if method == "brute":
        out = np.array([subset_dual_brute(P[b], Q[b], n, sampling).acceptance for b in range(P.shape[0])])
    elif method == "lp":
        out = np.array([transport_lp(P[b], Q[b], n, sampling).acceptance for b in range(P.shape[0])])
    out = np.clip(out, 0.0, 1.0)
    return out if batched else float(out[0])
