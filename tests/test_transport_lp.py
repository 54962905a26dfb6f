"""Tests for the SpecTr transport LP (solvers/transport.py).

The LP optimum must equal the brute-force subset (min-cut) dual for every draft scheme, with both
backends, and the returned plan must be a feasible coupling. Distributions are generated locally with
hypothesis, including degenerate ones (one-hot, disjoint supports, p = q, masses of 1e-12, V = 1, 2,
n beyond the support of q).
"""

from __future__ import annotations

import doctest
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import spectheory as st
from spectheory.solvers import (
    MAX_LP_VARIABLES,
    TransportLPResult,
    subset_dual_brute,
    transport_lp,
)

TOL = 1e-8
SCHEMES = ["iid", "without_replacement", "greedy", "hub", "independent"]
LP_MODULE = sys.modules["spectheory.solvers.transport"]


# --------------------------------------------------------------------------- strategies


@hs.composite
def distributions(draw, V: int, avoid=None, within=None):
    """A probability vector of length V. Entries are 0, 1e-12 (tiny), or O(1) weights; kinds
    'onehot' and 'uniform' are drawn explicitly. ``avoid``: boolean mask of tokens that must get 0
    (for disjoint supports; ignored if it would leave nothing)."""
    allowed = np.ones(V, dtype=bool)
    if avoid is not None and not np.all(avoid):
        allowed = ~avoid
    idx = np.flatnonzero(allowed)
    kind = draw(hs.sampled_from(["weights", "onehot", "uniform", "tiny"]))
    w = np.zeros(V)
    if kind == "onehot":
        w[draw(hs.sampled_from(list(idx)))] = 1.0
    elif kind == "uniform":
        w[idx] = 1.0
    else:
        elems = hs.one_of(
            hs.just(0.0),
            hs.just(1e-12),
            hs.floats(min_value=1e-3, max_value=1.0, allow_nan=False),
        )
        vals = draw(hs.lists(elems, min_size=len(idx), max_size=len(idx)))
        w[idx] = vals
        if kind == "tiny":  # at least one tiny mass next to a big one
            w[idx[0]] = 1.0
            if len(idx) > 1:
                w[idx[-1]] = 1e-12
        if w.sum() == 0.0:
            w[idx[draw(hs.integers(0, len(idx) - 1))]] = 1.0
    return w / w.sum()


@hs.composite
def lp_instances(draw, sampling: str):
    """(p, q, n) for the scheme, V in 1..5, n in 1..3 (hub: n = 2)."""
    V = draw(hs.integers(1, 5))
    n = 2 if sampling == "hub" else draw(hs.integers(1, 3))
    p = draw(distributions(V))
    relation = draw(hs.sampled_from(["free", "equal", "disjoint"]))

    def one_q():
        if relation == "equal":
            return p.copy()
        if relation == "disjoint":
            return draw(distributions(V, avoid=p > 0))
        return draw(distributions(V))

    if sampling == "independent":
        rows = [one_q() if i == 0 or draw(hs.booleans()) else draw(distributions(V)) for i in range(n)]
        q = np.stack(rows)
    else:
        q = one_q()
    return p, q, n


# --------------------------------------------------------------------------- helpers


def member_mask(res: TransportLPResult, V: int) -> np.ndarray:
    M = np.zeros((res.tuples.shape[0], V), dtype=bool)
    for i in range(res.tuples.shape[1]):
        M[np.arange(res.tuples.shape[0]), res.tuples[:, i]] = True
    return M


def check_plan(res: TransportLPResult, p: np.ndarray) -> None:
    V = p.shape[0]
    T = res.tuples.shape[0]
    assert res.plan.shape == (T, V)
    assert res.tuple_probs.shape == (T,)
    assert res.tuples.dtype == np.int64
    assert np.all(res.tuple_probs > 0)
    np.testing.assert_allclose(res.tuple_probs.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(res.plan.sum(axis=1), res.tuple_probs, rtol=0, atol=TOL)
    np.testing.assert_allclose(res.plan.sum(axis=0), p, rtol=0, atol=TOL)
    assert res.plan.min() >= -1e-9
    assert np.all(res.plan[:, p == 0] == 0.0)
    assert 0.0 <= res.acceptance <= 1.0
    value = float(np.sum(res.plan * member_mask(res, V)))
    assert abs(value - res.acceptance) <= TOL


# --------------------------------------------------------------------------- LP == subset dual


@pytest.mark.parametrize("sampling", SCHEMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hs.data())
def test_lp_matches_subset_dual(sampling, data):
    p, q, n = data.draw(lp_instances(sampling))
    expected = subset_dual_brute(p, q, n, sampling).acceptance
    for backend in ("highs", "cvxpy"):
        res = transport_lp(p, q, n, sampling, backend=backend)
        assert res.backend == backend
        assert abs(res.acceptance - expected) <= TOL, (backend, res.acceptance, expected)
        check_plan(res, p)
        law = st.get_scheme(sampling).tuple_law(q, n)
        keep = law.probs > 0
        np.testing.assert_array_equal(res.tuples, law.tuples[keep])
        np.testing.assert_allclose(res.tuple_probs, law.probs[keep], rtol=1e-12, atol=0)


@pytest.mark.parametrize("sampling", SCHEMES)
@pytest.mark.parametrize("backend", ["highs", "cvxpy"])
def test_random_dirichlet_against_dual(sampling, backend):
    rng = np.random.default_rng(1234)
    for _ in range(5):
        V = 6
        n = 2 if sampling == "hub" else 3
        p = rng.dirichlet(np.full(V, 0.5))
        q = rng.dirichlet(np.full(V, 0.5), size=n) if sampling == "independent" else rng.dirichlet(np.full(V, 0.5))
        res = transport_lp(p, q, n, sampling, backend=backend)
        assert abs(res.acceptance - subset_dual_brute(p, q, n, sampling).acceptance) <= TOL
        check_plan(res, p)


# --------------------------------------------------------------------------- known values


def test_doctest_example():
    res = transport_lp([0.5, 0.5], [0.9, 0.1], n=2)
    assert abs(res.acceptance - 0.69) <= 1e-12
    failures, _ = doctest.testmod(LP_MODULE, optionflags=doctest.ELLIPSIS)
    assert failures == 0


@pytest.mark.parametrize("backend", ["highs", "cvxpy"])
def test_extremes(backend):
    p = np.array([0.2, 0.3, 0.5, 0.0])
    assert abs(transport_lp(p, p, 2, backend=backend).acceptance - 1.0) <= TOL
    q = np.array([0.0, 0.0, 0.0, 1.0])  # disjoint supports: nothing can be accepted
    res = transport_lp(p, q, 3, backend=backend)
    assert abs(res.acceptance) <= TOL
    assert res.tuples.shape == (1, 3)
    check_plan(res, p)
    # n beyond the support for a distinct scheme: the whole support of q is drafted
    res = transport_lp(p, [0.5, 0.5, 0.0, 0.0], 3, "without_replacement", backend=backend)
    assert res.tuples.shape == (2, 2)
    assert abs(res.acceptance - 0.5) <= TOL


def test_v1():
    res = transport_lp([1.0], [1.0], 3)
    assert res.acceptance == 1.0
    np.testing.assert_array_equal(res.plan, [[1.0]])


# --------------------------------------------------------------------------- size guard, errors


def test_size_guard_message():
    p = np.full(5, 0.2)
    with pytest.raises(st.SpecTheoryValueError) as info:
        transport_lp(p, p, 3, max_variables=100)
    msg = str(info.value)
    assert "625" in msg  # 5^3 tuples x 5 tokens
    assert "method='dual'" in msg
    assert "memory" in msg
    # exactly at the limit is allowed
    assert transport_lp(p, p, 3, max_variables=625).acceptance == pytest.approx(1.0, abs=TOL)


def test_size_guard_counts_without_enumerating():
    # 100_000^8 tuples: must be refused at once, from the count alone
    V = 100_000
    p = np.full(V, 1.0 / V)
    with pytest.raises(st.SpecTheoryValueError, match=r"method='dual'") as info:
        transport_lp(p, p, 8)
    assert f"{V**9:,}" in str(info.value)
    assert f"{MAX_LP_VARIABLES:,}" in str(info.value)


@pytest.mark.parametrize(
    "sampling, n, T",
    [("iid", 3, 6**3), ("without_replacement", 3, 6 * 5 * 4), ("greedy", 3, 6 - 2), ("hub", 2, 2 * 5), ("independent", 2, 36)],
)
def test_size_guard_count_per_scheme(sampling, n, T):
    p = np.full(6, 1 / 6)
    q = np.tile(p, (n, 1)) if sampling == "independent" else p
    with pytest.raises(st.SpecTheoryValueError, match=f"{T * 6:,} variables"):
        transport_lp(p, q, n, sampling, max_variables=T * 6 - 1)
    res = transport_lp(p, q, n, sampling, max_variables=T * 6)
    assert res.tuples.shape[0] == T


def test_size_guard_independent_suggests_brute():
    q = np.full((2, 4), 0.25)
    with pytest.raises(st.SpecTheoryValueError, match="method='brute'"):
        transport_lp(q[0], q, 2, "independent", max_variables=10)


def test_scheme_tuple_guard_is_caught():
    V = 50  # 50^4 = 6.25e6 tuples > schemes.MAX_TUPLES, but allowed by max_variables
    p = np.full(V, 1.0 / V)
    with pytest.raises(st.SpecTheoryValueError) as info:
        transport_lp(p, p, 4, max_variables=10**12)
    assert "method='dual'" in str(info.value)
    assert f"{V**5:,}" in str(info.value)


def test_bad_backend():
    with pytest.raises(st.SpecTheoryValueError, match="backend"):
        transport_lp([0.5, 0.5], [0.5, 0.5], 2, backend="gurobi")


def test_mismatched_vocabulary():
    with pytest.raises(st.SpecTheoryValueError, match="p and q"):
        transport_lp([0.5, 0.5], [0.2, 0.3, 0.5], 2)
    with pytest.raises(st.SpecTheoryValueError, match="p and q"):
        transport_lp([0.5, 0.5], np.full((2, 3), 1 / 3), 2, "independent")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(p=[0.5, 0.6], q=[0.5, 0.5], n=2), "p"),
        (dict(p=[0.5, 0.5], q=[-0.5, 1.5], n=2), "q"),
        (dict(p=[0.5, 0.5], q=[0.5, 0.5], n=0), "n"),
        (dict(p=[0.5, 0.5], q=[0.5, 0.5], n=3, sampling="hub"), "n"),
        (dict(p=[0.5, 0.5], q=[0.5, 0.5], n=2, sampling="nope"), "sampling"),
        (dict(p=[0.5, 0.5], q=[0.5, 0.5], n=2, sampling="independent"), "q"),
        (dict(p=[0.5, 0.5], q=[0.5, 0.5], n=2, max_variables=0), "max_variables"),
        (dict(p=[0.5, 0.5], q=[0.5, 0.5], n=2, max_variables=2.5), "max_variables"),
    ],
)
def test_validation_names_argument(kwargs, name):
    with pytest.raises(st.SpecTheoryValueError) as info:
        transport_lp(**kwargs)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(name)


def test_solver_failure_raises_runtime_error(monkeypatch):
    import scipy.optimize
    from scipy.optimize import OptimizeResult

    def failing_linprog(*args, **kwargs):
        return OptimizeResult(status=2, x=None, message="The problem is infeasible.")

    monkeypatch.setattr(scipy.optimize, "linprog", failing_linprog)
    with pytest.raises(RuntimeError, match="HiGHS"):
        transport_lp([0.5, 0.5], [0.9, 0.1], 2)


def test_highs_retries_without_the_redundant_row(monkeypatch):
    import scipy.optimize
    from scipy.optimize import OptimizeResult

    original = scipy.optimize.linprog
    shapes = []

    def flaky_linprog(c, A_eq=None, **kwargs):
        shapes.append(A_eq.shape)
        if len(shapes) == 1:
            return OptimizeResult(status=4, x=None, message="simulated numerical trouble")
        return original(c, A_eq=A_eq, **kwargs)

    monkeypatch.setattr(scipy.optimize, "linprog", flaky_linprog)
    p = np.array([0.2, 0.3, 0.5])
    q = np.array([0.6, 0.1, 0.3])
    res = transport_lp(p, q, 2)
    assert shapes == [(9 + 3, 27), (9 + 2, 27)]
    assert abs(res.acceptance - subset_dual_brute(p, q, 2).acceptance) <= TOL
    check_plan(res, p)


def test_cvxpy_falls_back_to_highs_when_clarabel_fails(monkeypatch):
    import cvxpy as cp

    original = cp.Problem.solve
    used = []

    def solve(self, *args, solver=None, **kwargs):
        used.append(solver)
        if solver == cp.CLARABEL:
            raise cp.error.SolverError("simulated CLARABEL failure")
        return original(self, *args, solver=solver, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", solve)
    res = transport_lp([0.5, 0.5], [0.9, 0.1], 2, backend="cvxpy")
    assert used == [cp.CLARABEL, cp.HIGHS]
    assert abs(res.acceptance - 0.69) <= TOL
    check_plan(res, np.array([0.5, 0.5]))


def test_cvxpy_uncertified_solution_is_resolved(monkeypatch):
    import cvxpy as cp

    original = cp.Problem.solve
    used = []

    def solve(self, *args, solver=None, **kwargs):
        used.append(solver)
        return original(self, *args, solver=solver, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", solve)
    p = np.array([0.2, 0.3, 0.5])
    q = np.array([0.6, 0.1, 0.3])
    transport_lp(p, q, 2, backend="cvxpy")
    assert used == [cp.CLARABEL]  # certified: no second solve
    used.clear()
    monkeypatch.setattr(LP_MODULE, "_CERTIFIED_GAP", -1.0)  # nothing can be certified
    res = transport_lp(p, q, 2, backend="cvxpy")
    assert used == [cp.CLARABEL, cp.HIGHS]
    assert abs(res.acceptance - subset_dual_brute(p, q, 2).acceptance) <= TOL
    check_plan(res, p)


@settings(max_examples=50, deadline=None)
@given(data=hs.data())
def test_certificate_helpers(data):
    T = data.draw(hs.integers(1, 6))
    Vp = data.draw(hs.integers(1, 5))
    Qt = data.draw(distributions(T))
    pp = data.draw(distributions(Vp))
    rng = np.random.default_rng(data.draw(hs.integers(0, 2**32 - 1)))
    noisy = np.outer(Qt, pp) * (1 + 0.1 * rng.standard_normal((T, Vp))) + 1e-3 * rng.standard_normal((T, Vp))
    plan = LP_MODULE._round_to_marginals(noisy, Qt, pp)
    assert plan.min() >= 0.0
    np.testing.assert_allclose(plan.sum(axis=1), Qt, rtol=0, atol=1e-14)
    np.testing.assert_allclose(plan.sum(axis=0), pp, rtol=0, atol=1e-14)
    # any column prices give an upper bound on the value of any feasible plan
    M = (rng.random((T, Vp)) < 0.5).astype(float)
    v = rng.standard_normal(Vp)
    assert LP_MODULE._dual_upper_bound(M, Qt, pp, v) >= float(np.vdot(M, plan)) - 1e-12


def test_presolve_regression():
    # Q has masses ~1e-15 here; with presolve on, HiGHS declared this LP infeasible (scipy 1.17).
    rng = np.random.default_rng(1234)
    for _ in range(4):  # the 4th draw is the instance that failed
        p = rng.dirichlet(np.full(6, 0.5))
        q = rng.dirichlet(np.full(6, 0.5), size=3)
    assert q.min() < 1e-5
    res = transport_lp(p, q, 3, "independent")
    assert abs(res.acceptance - subset_dual_brute(p, q, 3, "independent").acceptance) <= TOL
    check_plan(res, p)


def test_result_is_frozen():
    res = transport_lp([0.5, 0.5], [0.9, 0.1], 2)
    with pytest.raises(AttributeError):
        res.acceptance = 1.0  # type: ignore[misc]
