"""The SpecTr optimal-transport LP: exact optimal multi-draft acceptance for small V and n.

With draft tuples x ~ Q on Ω^n (the draft scheme's exact tuple law) and target p on Ω, solve::

    maximise    Σ_{x, y} π(x, y) · 1[y ∈ x]
    subject to  Σ_y π(x, y) = Q(x)        for every tuple x with Q(x) > 0,
                Σ_x π(x, y) = p(y)        for every token y with p(y) > 0,
                π(x, y) ≥ 0

(SpecTr, Sun et al., arXiv 2310.15141; REFERENCE §2). The optimal value is the optimal acceptance
α*(p, Q), and the optimal plan is itself a lossless verifier: given drafts x, output Y ~ π(x, ·)/Q(x).
Tokens with p(y) = 0 carry no variables (their column of π is fixed at 0).

The LP has T × |supp p| variables, T the number of tuples (V^n for i.i.d. drafts): V^(n+1) in the
worst case. It is the slow, independent ground truth against which the subset (min-cut) dual
(:func:`~spectheory.solvers.subset_dual_brute`, :func:`~spectheory.solvers.bound_rows`) is checked;
use ``st.optimal_acceptance(..., method="dual")`` for real vocabularies.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from spectheory._validation import SpecTheoryValueError, check_single_pair
from spectheory.schemes import get_scheme

#: Default refusal limit on the number of LP variables T × |supp p|, checked before anything is
#: built. Measured (2-core machine, scipy 1.17 HiGHS, i.i.d. drafts, Dirichlet(1) p and q): 2.6e5
#: variables take ~2 s, 1e6 take ~15 s (V = 100, n = 2) to ~50 s (V = 32, n = 3) but 3.5 min at
#: (V = 16, n = 4), and peak memory is ~0.8 kB per variable. At 1e6 a call therefore stays under a
#: gigabyte and, for n <= 3, about a minute; raise ``max_variables`` deliberately for more. The
#: subset dual (``method='dual'``) gives the same number in O(V log V) for any V.
MAX_LP_VARIABLES = 1_000_000

#: Memory estimate of the HiGHS path, bytes = nnz·(8 + 4) + variables·8·k: the equality matrix has
#: nnz = 2·variables (each π(t, y) sits in one row-sum and one column-sum), float64 values + int32
#: indices; k float64 work values per variable (scipy's input copies, HiGHS' own matrix copies and
#: simplex arrays) is calibrated to the measured peak of ~800 bytes per variable (5e5 .. 2e6
#: variables).
_BYTES_PER_NNZ = 8 + 4
_VECTORS_PER_VARIABLE = 97

BACKENDS = ("highs", "cvxpy")


@dataclass(frozen=True)
class TransportLPResult:
    """Solution of the transport LP.

    Attributes
    ----------
    acceptance : float
        Optimal value Σ π(t, y)·1[y ∈ t], clipped into [0, 1].
    plan : numpy.ndarray, shape (T, V)
        Optimal plan π(tuple t, token y) ≥ 0; rows sum to ``tuple_probs``, columns to p (to the
        solver tolerance, 1e-10). Columns of tokens with p(y) = 0 are zero. ``plan[t] / tuple_probs[t]``
        is the optimal verifier's output law given drafts ``tuples[t]``.
    tuples : numpy.ndarray, shape (T, n_eff), int64
        The ordered draft tuples with Q > 0 (from the scheme's ``tuple_law``).
    tuple_probs : numpy.ndarray, shape (T,)
        Q(tuple), renormalised to sum to 1 (as p is).
    backend : str
        ``"highs"`` or ``"cvxpy"``.
    """

    acceptance: float
    plan: np.ndarray
    tuples: np.ndarray
    tuple_probs: np.ndarray
    backend: str


#: Tuple counts above this are not computed exactly (``3**10**9`` would take minutes): they are
#: reported as "more than 10^60", far beyond any LP that fits in memory.
_COUNT_CAP = 10**60


def _tuple_count(scheme, q: np.ndarray, n: int) -> int:
    """Number of tuples of the scheme's tuple law (an upper bound: tuples whose probability
    underflows to 0 are dropped later), counted without enumerating them; capped at
    ``_COUNT_CAP + 1`` (decided on logarithms first, so a huge n costs nothing)."""
    k = scheme.effective_n(q, n)  # validates n for the scheme (hub: n = 2; independent: rows)
    if scheme.name == "independent":
        counts = [int(np.count_nonzero(row > 0)) for row in q]
        log10 = sum(math.log10(c) for c in counts if c > 0)
        return _COUNT_CAP + 1 if log10 > 61 else math.prod(counts)
    m = int(np.count_nonzero(q > 0))
    if scheme.name == "iid":
        return _COUNT_CAP + 1 if k * math.log10(max(m, 1)) > 61 else m**k
    if scheme.name == "without_replacement":
        if k > m:
            return 0
        log10 = (math.lgamma(m + 1) - math.lgamma(m - k + 1)) / math.log(10)
        return _COUNT_CAP + 1 if log10 > 61 else math.perm(m, k)
    if scheme.name == "greedy":
        return m - (k - 1)
    if scheme.name == "hub":
        return 1 if k == 1 else 2 * (m - 1)
    if scheme.name == "topk":
        return 1
    raise SpecTheoryValueError(f"sampling: the transport LP does not know scheme {scheme.name!r}")  # pragma: no cover


def _format_count(x: int) -> str:
    return "more than 10^60" if x > _COUNT_CAP else f"{x:,}"


def _memory_estimate(n_vars: int) -> int:
    """Peak bytes of the HiGHS path: nnz·(8 + 4) + variables·8·k with nnz = 2·variables and
    k = ``_VECTORS_PER_VARIABLE`` (≈ 800 bytes per variable)."""
    return 2 * n_vars * _BYTES_PER_NNZ + n_vars * 8 * _VECTORS_PER_VARIABLE


def _format_bytes(b: float) -> str:
    b = float(min(b, 10**300))  # a huge int would overflow in b / 1024
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.3g} {unit}"
        b /= 1024
    return f"{b:.3g} PiB"  # pragma: no cover


def _too_large(n_vars: int, limit: int, T: int, Vp: int, sampling: str) -> SpecTheoryValueError:
    alt = f"st.optimal_acceptance(p, q, n, sampling={sampling!r}, method='dual')"
    if sampling == "independent":
        alt += " (or method='brute' for V <= 22)"
    return SpecTheoryValueError(
        f"n: the transport LP would have {_format_count(n_vars)} variables ({_format_count(T)} draft tuples x {Vp:,} target "
        f"tokens; limit max_variables = {limit:,}) and need about {_format_bytes(_memory_estimate(n_vars))} "
        f"of memory (estimate nnz*(8+4) + variables*8*{_VECTORS_PER_VARIABLE} bytes, nnz = 2*variables: the "
        f"sparse constraint matrix and the solver's work vectors); use {alt} instead"
    )


def _objective_mask(tuples: np.ndarray, support_p: np.ndarray, V: int) -> np.ndarray:
    """M[t, j] = 1 if token support_p[j] is one of the drafts tuples[t] (float64, shape (T, Vp))."""
    col_of = np.full(V, -1, dtype=np.int64)
    col_of[support_p] = np.arange(len(support_p))
    T = tuples.shape[0]
    M = np.zeros((T, len(support_p)))
    rows = np.arange(T)
    for i in range(tuples.shape[1]):
        cols = col_of[tuples[:, i]]
        ok = cols >= 0
        M[rows[ok], cols[ok]] = 1.0
    return M


def _equality_matrix(T: int, Vp: int, drop_last: bool = False):
    """Sparse (CSC) equality matrix of the transport LP.

    Variable k = t·Vp + j (row-major, matching ``M.ravel()``) has a one in row t
    (Σ_y π(t, y) = Q(t)) and one in row T + j (Σ_t π(t, y_j) = p(y_j)). One row is redundant (both
    marginals sum to 1); ``drop_last`` leaves out the last column-sum row. The CSC arrays are built
    directly: O(variables) integers, no dense (rows × variables) intermediate.
    """
    from scipy.sparse import csc_array

    n_vars = T * Vp
    n_rows = T + Vp - (1 if drop_last else 0)
    nnz = 2 * n_vars - (T if drop_last else 0)
    idx_dtype = np.int32 if max(nnz, n_rows) < 2**31 - 1 else np.int64
    t = np.repeat(np.arange(T, dtype=idx_dtype), Vp)
    j = np.tile(np.arange(T, T + Vp, dtype=idx_dtype), T)  # row index T + j
    if not drop_last:
        indices = np.empty(nnz, dtype=idx_dtype)
        indices[0::2] = t
        indices[1::2] = j
        indptr = np.arange(0, nnz + 1, 2, dtype=idx_dtype)
    else:
        second = j < T + Vp - 1
        indptr = np.zeros(n_vars + 1, dtype=idx_dtype)
        np.cumsum(1 + second, out=indptr[1:])
        indices = np.empty(nnz, dtype=idx_dtype)
        indices[indptr[:-1]] = t
        indices[indptr[:-1][second] + 1] = j[second]
    return csc_array((np.ones(nnz), indices, indptr), shape=(n_rows, n_vars))


#: HiGHS settings. Presolve is off: on this LP it buys nothing, and with tiny masses (Q(t) ≲ 1e-12)
#: HiGHS' presolve sometimes declares the (feasible) LP infeasible — about 4% of random instances
#: with Dirichlet(0.05) inputs, scipy 1.17; the plain dual simplex solved all of them. Keeping the
#: redundant marginal row is also about 2.5× faster than dropping it (measured, V = 64, n = 2).
_HIGHS_OPTIONS = {"presolve": False, "primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _solve_highs(M: np.ndarray, Qt: np.ndarray, pp: np.ndarray) -> np.ndarray:
    from scipy.optimize import linprog

    T, Vp = M.shape
    c = -M.ravel()
    res = None
    for drop_last in (False, True):  # second try: the full-rank system (never needed in testing)
        A_eq = _equality_matrix(T, Vp, drop_last)
        b_eq = np.concatenate([Qt, pp[:-1] if drop_last else pp])
        res = linprog(c, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs", options=_HIGHS_OPTIONS)
        del A_eq
        if res.status == 0 and res.x is not None:
            return np.asarray(res.x).reshape(T, Vp)
    raise RuntimeError(
        f"transport_lp: HiGHS failed to solve the LP ({T} tuples x {Vp} tokens): status {res.status}: {res.message}"
    )


#: CLARABEL settings of the cvxpy backend: 100× tighter than its defaults (at the defaults the value
#: was 4e-8 off at 2.6e5 variables; at 1e-10 about 1e-10). Tighter still (1e-12) is mostly reported
#: as "optimal_inaccurate" beyond ~1e5 variables.
_CLARABEL_OPTIONS = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, tol_ktratio=1e-8, max_iter=500)

#: Largest certified duality gap (upper bound − value of the repaired plan) at which the CLARABEL
#: solution of the cvxpy backend is accepted; above it the LP is re-solved by simplex.
_CERTIFIED_GAP = 1e-9


def _round_to_marginals(X: np.ndarray, Qt: np.ndarray, pp: np.ndarray) -> np.ndarray:
    """Repair an approximately feasible plan into one with the exact marginals (Altschuler, Weed &
    Rigollet 2017, Alg. 2): clip at 0, scale down rows and then columns that carry too much mass,
    then add the outer product of the remaining row and column deficits (which have equal totals)."""
    X = np.maximum(X, 0.0)
    rows = X.sum(axis=1)
    over = rows > Qt
    X[over] *= (Qt[over] / rows[over])[:, None]
    cols = X.sum(axis=0)
    over = cols > pp
    X[:, over] *= pp[over] / cols[over]
    short_r = np.maximum(Qt - X.sum(axis=1), 0.0)
    short_c = np.maximum(pp - X.sum(axis=0), 0.0)
    total = short_r.sum()
    if total > 0:
        X += np.outer(short_r / total, short_c)
    return X


def _dual_upper_bound(M: np.ndarray, Qt: np.ndarray, pp: np.ndarray, v: np.ndarray) -> float:
    """A certified upper bound on the LP value from column prices v: the dual is
    min Σ_t Q(t) u_t + Σ_y p(y) v_y s.t. u_t + v_y ≥ M[t, y]; any v becomes dual feasible with
    u_t = max_y (M[t, y] − v_y)."""
    u = np.max(M - v[None, :], axis=1)
    return float(Qt @ u + pp @ v)


def _solve_cvxpy(M: np.ndarray, Qt: np.ndarray, pp: np.ndarray) -> np.ndarray:
    import cvxpy as cp

    T, Vp = M.shape
    X = cp.Variable((T, Vp), nonneg=True)
    # Both marginals in full: for the interior-point method the redundant row helps (without it the
    # error piles up in the last column, ~1e-6 on extreme inputs).
    constraints = [cp.sum(X, axis=1) == Qt, cp.sum(X, axis=0) == pp]
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(M, X))), constraints)
    # CLARABEL (interior point) is an independent algorithm from the simplex of the "highs"
    # backend, which makes this backend a genuine cross-check. Its answer is accepted only when
    # certified: the plan repaired to the exact marginals and an upper bound from the column duals
    # must be within _CERTIFIED_GAP. Otherwise (seen on inputs with masses ≲ 1e-10, ~1% of extreme
    # random instances, and at ~1e6 variables) the LP is re-solved by cvxpy's HiGHS interface
    # (simplex, presolve off, as in _solve_highs).
    try:
        with warnings.catch_warnings():  # "Solution may be inaccurate": certified just below
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=cp.CLARABEL, **_CLARABEL_OPTIONS)
        v = constraints[1].dual_value
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and X.value is not None and v is not None:
            plan = _round_to_marginals(np.asarray(X.value, dtype=np.float64), Qt, pp)
            v = np.asarray(v, dtype=np.float64).reshape(Vp)
            # the sign convention of cvxpy's equality duals does not matter: both are valid bounds
            upper = min(_dual_upper_bound(M, Qt, pp, v), _dual_upper_bound(M, Qt, pp, -v))
            if upper - float(np.vdot(M, plan)) <= _CERTIFIED_GAP:
                return plan
    except cp.error.SolverError:
        pass
    try:
        problem.solve(
            solver=cp.HIGHS,
            presolve="off",
            primal_feasibility_tolerance=1e-10,
            dual_feasibility_tolerance=1e-10,
        )
    except cp.error.SolverError as exc:
        raise RuntimeError(
            f"transport_lp: cvxpy failed on the LP ({T} tuples x {Vp} tokens) with CLARABEL and HIGHS: {exc}"
        ) from exc
    if problem.status != cp.OPTIMAL or X.value is None:
        raise RuntimeError(
            f"transport_lp: cvxpy failed on the LP ({T} tuples x {Vp} tokens): status {problem.status}"
        )
    return np.asarray(X.value, dtype=np.float64)


def transport_lp(p, q, n, sampling: str = "iid", backend: str = "highs", max_variables=None) -> TransportLPResult:
    """Optimal multi-draft acceptance by solving the SpecTr transport LP exactly.

    For the draft scheme's exact tuple law Q (ordered tuples t with Q(t) > 0) and target p, solve

    .. math::

        \\max_{\\pi \\ge 0} \\sum_{t, y} \\pi(t, y)\\,[y \\in t]
        \\quad\\text{s.t.}\\quad \\sum_y \\pi(t, y) = Q(t),\\; \\sum_t \\pi(t, y) = p(y).

    Variables exist only for tokens with p(y) > 0. The optimum is α*(p, Q) (SpecTr, Sun et al.,
    arXiv 2310.15141; REFERENCE §2) and equals the subset dual min_H [p(H) + 1 − Q(all X_i ∈ H)].

    Parameters
    ----------
    p : array_like, shape (V,)
        Target distribution.
    q : array_like, shape (V,), or (n, V) for ``sampling="independent"``
        Draft distribution(s).
    n : int
        Number of drafts (schemes drawing distinct tokens use ``min(n, |supp q|)``).
    sampling : str
        Draft scheme name (see :mod:`spectheory.schemes`).
    backend : {"highs", "cvxpy"}
        ``"highs"``: :func:`scipy.optimize.linprog` (HiGHS dual simplex, presolve off) on sparse
        constraints. ``"cvxpy"``: a cvxpy model solved by the CLARABEL interior-point method (an
        independent cross-check), its plan repaired to the exact marginals and accepted when a
        dual bound certifies it to 1e-9; otherwise re-solved with cvxpy's HiGHS interface.
    max_variables : int, optional
        Refuse (before building anything) when T × |supp p| exceeds this; default
        :data:`MAX_LP_VARIABLES`.

    Returns
    -------
    TransportLPResult

    Raises
    ------
    SpecTheoryValueError
        Bad arguments, or an LP larger than ``max_variables`` (the message gives the size, a memory
        estimate and the alternative ``st.optimal_acceptance(..., method='dual')``).
    RuntimeError
        The solver did not report an optimal solution.

    Notes
    -----
    Cost: T × |supp p| variables and T + |supp p| equality constraints (one redundant), with
    T = |supp q|^n for i.i.d. drafts (|supp q|!/(|supp q| − n)! without replacement, ≤ 2|supp q| for
    greedy and hub, Π_i |supp q_i| for independent drafters): up to V^(n+1) variables, ~0.8 kB of
    memory each. Exact ground truth for small V and n only; on two cores HiGHS takes about a minute
    at V = 128, n = 2 or V = 32, n = 3 (i.i.d.). The value is clipped into [0, 1] and solver
    round-off below 0 in the plan (≲ 1e-10) is set to 0.

    Examples
    --------
    >>> from spectheory.solvers import transport_lp
    >>> r = transport_lp([0.5, 0.5], [0.9, 0.1], n=2)
    >>> round(r.acceptance, 8)
    0.69
    >>> r.plan.shape, r.tuples.shape
    ((4, 2), (4, 2))
    """
    scheme = get_scheme(sampling)
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise SpecTheoryValueError(f"backend: must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if max_variables is None:
        limit = MAX_LP_VARIABLES
    else:
        if isinstance(max_variables, bool) or not isinstance(max_variables, numbers.Integral) or max_variables < 1:
            raise SpecTheoryValueError(f"max_variables: must be an integer >= 1 or None, got {max_variables!r}")
        limit = int(max_variables)
    p, q, n = check_single_pair(p, q, n, scheme)
    V = p.shape[0]

    support_p = np.flatnonzero(p > 0)
    Vp = len(support_p)
    T_count = _tuple_count(scheme, q, n)
    n_vars = T_count * Vp
    if n_vars > limit:
        raise _too_large(n_vars, limit, T_count, Vp, sampling)
    try:
        law = scheme.tuple_law(q, n)
    except SpecTheoryValueError as exc:  # the scheme's own tuple-count guard
        raise SpecTheoryValueError(f"{_too_large(n_vars, limit, T_count, Vp, sampling)} ({exc})") from exc

    if not np.all(np.isfinite(law.probs)):
        raise RuntimeError(
            f"transport_lp: the {sampling!r} scheme's tuple law has non-finite probabilities for this q "
            "(a numerical problem in the scheme, not in the LP)"
        )
    keep = law.probs > 0
    tuples = np.ascontiguousarray(law.tuples[keep], dtype=np.int64)
    Qt = np.asarray(law.probs[keep], dtype=np.float64)
    # Renormalise Q like check_distribution does p: the LP is infeasible unless both marginals
    # carry the same total mass.
    Qt = Qt / Qt.sum()
    M = _objective_mask(tuples, support_p, V)
    pp = p[support_p]

    if backend == "highs":
        X = _solve_highs(M, Qt, pp)
    else:
        X = _solve_cvxpy(M, Qt, pp)

    plan = np.zeros((tuples.shape[0], V))
    # solver round-off can leave entries of about -1e-10; a plan is a conditional law, keep it >= 0
    plan[:, support_p] = np.maximum(X, 0.0)
    X = plan[:, support_p]
    acceptance = float(np.clip(np.vdot(M, X), 0.0, 1.0))
    return TransportLPResult(acceptance=acceptance, plan=plan, tuples=tuples, tuple_probs=Qt, backend=backend)
