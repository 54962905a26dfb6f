"""Khisti et al.'s canonical decomposition: a selection rule, then single-draft speculative sampling.

Every lossless multi-draft verifier can be replaced, at equal acceptance, by (1) a selection rule
that picks one of the drafts, inducing a law r on Ω, followed by (2) single-draft speculative
sampling from r to p, with acceptance Σ_y min(p(y), r(y)) (Khisti et al., arXiv 2410.18234;
REFERENCE §2). The best selection rule solves the *selection LP*::

    maximise    Σ_y u(y)
    subject to  u(y) ≤ p(y),  u(y) ≤ r(y) = Σ_{t, i : t_i = y} w(t, i),
                Σ_i w(t, i) = Q(t),  w ≥ 0,

over the draft scheme's tuple law Q (w(t, i): probability of drawing tuple t and selecting its i-th
draft). Its value is the optimal acceptance α*(p, Q).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from spectheory._validation import SpecTheoryValueError, check_single_pair
from spectheory.schemes import get_scheme

from .transport import _tuple_count

#: Refusal limit on the selection LP's variables (tuples × drafts per tuple + V).
MAX_SELECTION_VARIABLES = 500_000


@dataclass(frozen=True)
class CanonicalResult:
    """A canonical (selection + speculative sampling) verifier.

    Attributes
    ----------
    acceptance : float
        Σ_y min(p(y), r(y)) for the induced marginal r below (the LP value, up to solver tolerance).
    selection : numpy.ndarray, shape (T, n_eff)
        selection[t, i] = P(select draft i | tuple t); rows sum to 1.
    marginal : numpy.ndarray, shape (V,)
        r(y) = Σ_t Q(t) Σ_{i : t_i = y} selection[t, i], computed from ``selection`` exactly, so that
        speculative sampling from r is lossless whatever the solver's tolerance.
    tuples, tuple_probs : numpy.ndarray
        The scheme's tuple law.
    """

    acceptance: float
    selection: np.ndarray
    marginal: np.ndarray
    tuples: np.ndarray
    tuple_probs: np.ndarray


def canonical_selection(p, q, n, sampling: str = "iid", max_variables: int | None = None) -> CanonicalResult:
    """Solve Khisti et al.'s selection LP with cvxpy and return the canonical optimal verifier.

    Parameters
    ----------
    p : array_like, shape (V,)
        Target distribution.
    q : array_like, shape (V,), or (n, V) for ``sampling="independent"``
        Draft distribution(s).
    n : int
        Number of drafts.
    sampling : str
        Draft scheme (:mod:`spectheory.schemes`).
    max_variables : int, optional
        Refuse LPs with more variables (default :data:`MAX_SELECTION_VARIABLES`).

    Returns
    -------
    CanonicalResult

    Notes
    -----
    The LP has T·n_eff + V variables, T the number of draft tuples (V^n for i.i.d. drafts), and is
    solved by CLARABEL through cvxpy. The returned selection is clipped at 0 and renormalised per
    tuple, and the marginal r is recomputed from it, so the verifier built on it is exactly
    lossless; the acceptance is within the solver's tolerance (~1e-8) of α*.

    Examples
    --------
    >>> from spectheory.solvers import canonical_selection
    >>> res = canonical_selection([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2)
    >>> round(res.acceptance, 6)
    0.86
    """
    import cvxpy as cp

    scheme = get_scheme(sampling)
    p, q, n = check_single_pair(p, q, n, scheme)
    limit = MAX_SELECTION_VARIABLES if max_variables is None else int(max_variables)
    k = scheme.effective_n(q, n)
    T_bound = _tuple_count(scheme, q, n)
    V = p.shape[0]
    if T_bound * k + V > limit:
        raise SpecTheoryValueError(
            f"n: the selection LP would have {T_bound * k + V:,} variables ({T_bound:,} draft tuples x {k} "
            f"drafts + {V} tokens; limit max_variables = {limit:,}); use "
            f"st.optimal_acceptance(p, q, n, sampling={sampling!r}) for the value"
        )
    law = scheme.tuple_law(q, n)
    tuples, Qt = law.tuples, law.probs / law.probs.sum()
    T = len(Qt)
    # A[y, (t, i)] = 1 where t_i = y: r = A @ vec(w)
    from scipy.sparse import csr_array

    cols = np.arange(T * k)
    A = csr_array((np.ones(T * k), (tuples.ravel(), cols)), shape=(V, T * k))
    w = cp.Variable(T * k, nonneg=True)
    u = cp.Variable(V)
    row_sums = csr_array((np.ones(T * k), (np.repeat(np.arange(T), k), cols)), shape=(T, T * k))
    cons = [row_sums @ w == Qt, u <= p, u <= A @ w]
    prob = cp.Problem(cp.Maximize(cp.sum(u)), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            prob.solve(solver=cp.CLARABEL)
        except cp.error.SolverError:
            prob.solve(solver=cp.HIGHS)
    if w.value is None:
        raise RuntimeError(f"canonical_selection: cvxpy failed on the selection LP ({T} tuples): {prob.status}")
    sel = np.maximum(np.asarray(w.value, dtype=np.float64).reshape(T, k), 0.0)
    tot = sel.sum(axis=1, keepdims=True)
    sel = np.where(tot > 0, sel / np.where(tot > 0, tot, 1.0), 1.0 / k)
    r = np.zeros(V)
    np.add.at(r, tuples.ravel(), (Qt[:, None] * sel).ravel())
    return CanonicalResult(float(np.minimum(p, r).sum()), sel, r, tuples, Qt)
