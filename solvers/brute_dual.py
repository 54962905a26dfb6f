"""The subset (min-cut) dual by brute force over all 2^V subsets, for any draft scheme.

    α*(p, Q) = min over H ⊆ Ω of [ p(H) + 1 − C(H) ],   C(H) = Q(every X_i ∈ H)

(max-flow/min-cut on the bipartite graph tuple → member token; REFERENCE §2, SpecTr arXiv 2310.15141,
Hu et al. arXiv 2502.18779). C is computed for every subset at once: each draft tuple of the exact
tuple law puts its probability on the bitmask of its tokens, and a subset-sum (zeta) transform
accumulates C(H) = Σ_{mask ⊆ H} Q(mask). Cost O(V·2^V + #tuples): an independent slow truth for
V ≤ ``MAX_BRUTE_V``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectheory._validation import SpecTheoryValueError, check_single_pair
from spectheory.schemes import get_scheme

#: Largest vocabulary the brute-force dual enumerates (2^22 subsets, 32 MiB per array).
MAX_BRUTE_V = 22


@dataclass(frozen=True)
class SubsetDualResult:
    """``acceptance`` = min_H [p(H) + 1 − C(H)]; ``subset`` is a minimising H (boolean mask);
    ``containment`` is C at that H."""

    acceptance: float
    subset: np.ndarray
    containment: float


def _subset_sums(weights_by_mask: np.ndarray, V: int) -> np.ndarray:
    """Zeta transform: out[H] = Σ_{M ⊆ H} w[M] over bitmasks of V bits."""
    out = weights_by_mask.copy()
    for i in range(V):
        view = out.reshape(-1, 2, 1 << i)
        view[:, 1, :] += view[:, 0, :]
    return out


def subset_dual_brute(p, q, n: int, sampling: str = "iid") -> SubsetDualResult:
    """Optimal acceptance by enumerating all 2^V subsets H (the exact subset dual).

    Parameters
    ----------
    p : array_like, shape (V,)
        Target distribution.
    q : array_like, shape (V,), or (n, V) for ``sampling="independent"``
        Draft distribution(s).
    n : int
        Number of drafts.
    sampling : str
        Draft scheme name (see :mod:`spectheory.schemes`).

    Returns
    -------
    SubsetDualResult

    Examples
    --------
    >>> from spectheory.solvers import subset_dual_brute
    >>> r = subset_dual_brute([0.5, 0.5], [0.9, 0.1], n=2)
    >>> round(r.acceptance, 12)   # min over H of p(H) + 1 - q(H)^2, attained at H = {0}
    0.69
    """
    scheme = get_scheme(sampling)
    p, q, n = check_single_pair(p, q, n, scheme)
    V = p.shape[0]
    if V > MAX_BRUTE_V:
        raise SpecTheoryValueError(
            f"p: brute-force subset enumeration needs 2^V subsets and is limited to V <= {MAX_BRUTE_V} "
            f"(got V = {V}); use method='dual' (sorted prefixes) instead"
        )
    singletons = np.left_shift(1, np.arange(V))
    C = containment_table(q, n, sampling)
    P = np.zeros(1 << V)
    P[singletons] = p
    P = _subset_sums(P, V)
    values = P + 1.0 - C
    best = int(np.argmin(values))
    subset = ((best >> np.arange(V)) & 1).astype(bool)
    return SubsetDualResult(float(min(1.0, values[best])), subset, float(C[best]))


def _wor_containment_table(q: np.ndarray, k: int, V: int) -> np.ndarray:
    """C(H) for k draws without replacement (successive sampling), every H, in O(V·2^V).

    S(M) = P(the first |M| draws are the tokens of M, in any order) satisfies S(∅) = 1 and
    S(M + x) = Σ_{x ∈ M+x} S(M)·q(x)/q(Ω ∖ M) (the last of the |M| + 1 draws is x); then C(H) =
    Σ_{M ⊆ H, |M| = k} S(M), a subset-sum transform of S restricted to size k. The remaining mass
    q(Ω ∖ M) is a sum of non-negative terms (no cancellation when one draft carries almost all of
    q). The tests compare it with the exact tuple law."""
    masks = np.arange(1 << V, dtype=np.int64)
    size = np.zeros(1 << V, dtype=np.int64)
    for i in range(V):
        size += (masks >> i) & 1
    Q1 = np.zeros(1 << V)
    Q1[np.left_shift(1, np.arange(V))] = q
    mass = _subset_sums(Q1, V)
    rest = mass[((1 << V) - 1) ^ masks]  # q(Ω ∖ M)
    S = np.zeros(1 << V)
    S[0] = 1.0
    for j in range(k):
        layer = masks[(size == j) & (S > 0)]
        if layer.size == 0:
            break
        for x in np.flatnonzero(q > 0):
            bit = np.int64(1) << np.int64(x)
            free = layer[(layer & bit) == 0]
            np.add.at(S, free | bit, S[free] * q[x] / rest[free])
    S[size != k] = 0.0
    return _subset_sums(S, V)


def containment_table(q, n: int, sampling: str = "iid") -> np.ndarray:
    """C(H) = Q(every draft in H) for all 2^V subsets H at once, indexed by bitmask (bit i = token i).

    Each draft tuple of the scheme's exact tuple law puts its probability on the bitmask of its
    tokens, and a subset-sum (zeta) transform accumulates C(H) = Σ_{mask ⊆ H} Q(mask); for
    independent drafters C(H) = Π_i q_i(H), one transform per drafter; for i.i.d. drafts
    C(H) = q(H)^n; for drafts without replacement a dynamic programme over the sets of the first
    draws (O(V·2^V), no enumeration of the V!/(V−n)! ordered tuples). ``q`` is validated by the
    caller (shape (V,), or (n, V) for ``sampling="independent"``); V ≤ :data:`MAX_BRUTE_V`.
    """
    scheme = get_scheme(sampling)
    V = q.shape[-1]
    if V > MAX_BRUTE_V:
        raise SpecTheoryValueError(
            f"p: brute-force subset enumeration needs 2^V subsets and is limited to V <= {MAX_BRUTE_V} (got V = {V})"
        )
    singletons = np.left_shift(1, np.arange(V))
    if sampling == "independent":
        # C(H) = Π_i q_i(H): one subset-sum transform per drafter, O(n 2^V), no tuple law (V^n tuples)
        q, n = scheme._rows(q, n)
        C = np.ones(1 << V)
        for i in range(n):
            Qi = np.zeros(1 << V)
            Qi[singletons] = q[i]
            C *= _subset_sums(Qi, V)
        return C
    if sampling == "iid":  # C(H) = q(H)^n, no tuple law (V^n tuples)
        Q1 = np.zeros(1 << V)
        Q1[singletons] = q
        return np.minimum(_subset_sums(Q1, V), 1.0) ** n
    if sampling == "without_replacement":
        return _wor_containment_table(q, scheme.effective_n(q, n), V)
    law = scheme.tuple_law(q, n)
    masks = np.bitwise_or.reduce(np.left_shift(np.int64(1), law.tuples), axis=1)
    C = np.zeros(1 << V)
    np.add.at(C, masks, law.probs)
    return _subset_sums(C, V)
