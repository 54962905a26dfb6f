"""The draft-length MDP (spectheory.solvers.mdp): closed forms, optimal policy, threshold rules, CLI.

Ground truth: exact enumeration of acceptance outcomes (closed forms); brute-force enumeration of
every deterministic history-dependent stopping policy, written independently of the solver (it
works on histories of observations and the forward probabilities of the hidden chain, not on
(k, S_k, belief) states); Monte Carlo with fixed seeds (agreement within 5 standard errors).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import spectheory as st
from spectheory import SpecTheoryValueError
from spectheory.cli import main

mdp = st.solvers.mdp


# --------------------------------------------------------------------------------------------
# brute force
# --------------------------------------------------------------------------------------------
def _pareto(T, D):
    """Drop (T, D) pairs dominated by another (more tokens, fewer drafts): never the max ratio."""
    order = np.lexsort((-T, D))
    T, D = T[order], D[order]
    keep = np.zeros(T.shape[0], dtype=bool)
    best = -np.inf
    for i in range(T.shape[0]):
        if T[i] > best:
            keep[i] = True
            best = T[i]
    return T[keep], D[keep]


def brute_force_ratio(proc, costs, max_k, min_k=0, prune=False):
    """Best tokens per unit cost over all deterministic policies that map each observed history
    (a_1..a_k, plus z_1..z_k for observed processes) to stop/continue. Every policy is enumerated
    as a pair (Σ_histories P·S contributions, Σ P drafts) built over the history tree; with
    ``prune`` dominated pairs are dropped at each node (exact for the maximum ratio)."""
    E, P, init, vals = proc.emission, proc.transition, proc.initial, proc.values
    m, n = E.shape
    observed = proc.observed and m > 1
    symbols = [(v, z) for v in range(n) for z in range(m)] if observed else [(v, None) for v in range(n)]

    def node(k, alpha, S):
        T_opts, D_opts = ([0.0], [0.0]) if k >= min_k else ([], [])
        if k < max_k:
            T, D = np.zeros(1), np.zeros(1)
            for v, z in symbols:
                a2 = (init if alpha is None else alpha @ P) * E[:, v]
                if z is not None:
                    a2 = np.where(np.arange(m) == z, a2, 0.0)
                p = a2.sum()
                if p <= 0:
                    continue
                cT, cD = node(k + 1, a2, S * vals[v])
                T = (T[:, None] + (p * S * vals[v] + cT)[None, :]).ravel()
                D = (D[:, None] + (p + cD)[None, :]).ravel()
                if prune:
                    T, D = _pareto(T, D)
            T_opts += T.tolist()
            D_opts += D.tolist()
        T, D = np.array(T_opts), np.array(D_opts)
        return _pareto(T, D) if prune else (T, D)

    T, D = node(0, None, 1.0)
    return float(np.max((1.0 + T) / (costs.c0 + costs.step * D))), T.shape[0]


HIDDEN = mdp.markov_process([0.3, 0.95], [[0.7, 0.3], [0.1, 0.9]], [[0.8, 0.2], [0.3, 0.7]])
SMALL_PROCESSES = {
    "iid-2": (mdp.iid_process([0.3, 0.9], [0.4, 0.6]), 4, False),
    "iid-3-zero-one": (mdp.iid_process([0.0, 0.5, 1.0], [0.2, 0.5, 0.3]), 3, False),
    "iid-3": (mdp.iid_process([0.2, 0.7, 0.95], [0.2, 0.3, 0.5]), 4, True),
    "hidden-2x2": (HIDDEN, 4, False),
    "observed-2x2": (HIDDEN.as_observed(), 3, True),
    "positional": (mdp.positional_process([0.2, 0.6, 1.0], [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]]), 3, True),
}
COSTS = [mdp.Costs(0.02), mdp.Costs(0.1, 1.0, 0.05), mdp.Costs(0.3, 2.0), mdp.Costs(0.6, 1.0, 0.2)]


@pytest.mark.parametrize("name", sorted(SMALL_PROCESSES))
@pytest.mark.parametrize("min_k", [0, 2])
def test_optimal_policy_equals_brute_force(name, min_k):
    proc, max_k, prune = SMALL_PROCESSES[name]
    for costs in COSTS:
        best, count = brute_force_ratio(proc, costs, max_k, min_k, prune)
        res = mdp.optimal_policy(proc, costs, max_k=max_k, min_k=min_k)
        assert res.exact
        assert res.tokens_per_cost == pytest.approx(best, rel=1e-12, abs=1e-12), (name, costs)
        assert res.upper_bound >= best - 1e-12
        assert res.speedup == pytest.approx(best * costs.c0, rel=1e-12)
        assert res.cost_per_round == pytest.approx(costs.c0 + costs.step * res.drafts_per_round)
        assert res.draft_length_pmf.sum() == pytest.approx(1.0)
        if not prune and min_k == 0:
            assert count > 100  # the enumeration really covered many policies


def test_brute_force_counts_every_policy():
    """f(d) = 1 + f(d − 1)^n policies below a node with n symbols and d drafts left."""
    proc = mdp.iid_process([0.3, 0.9], [0.4, 0.6])
    assert brute_force_ratio(proc, mdp.Costs(0.1), 4)[1] == 677
    assert brute_force_ratio(mdp.iid_process([0.2, 0.5, 0.9]), mdp.Costs(0.1), 3)[1] == 730


def test_random_small_processes_against_brute_force():
    rng = np.random.default_rng(11)
    for trial in range(6):
        m = 1 + trial % 2
        values = np.round(rng.uniform(0.05, 1.0, 2), 3)
        E = rng.dirichlet(np.ones(2), size=m)
        P = rng.dirichlet(np.ones(m), size=m)
        proc = mdp.markov_process(values, E, P, observed=bool(trial % 3 == 2))
        costs = mdp.Costs(float(rng.uniform(0.01, 0.4)), 1.0, float(rng.uniform(0, 0.1)))
        best, _ = brute_force_ratio(proc, costs, 3, 0, prune=True)
        assert mdp.optimal_policy(proc, costs, max_k=3).tokens_per_cost == pytest.approx(best, rel=1e-12)


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------
def _enumerate_tokens(alphas):
    """E[tokens] by enumerating every accept/reject outcome of the drafts (coins independent)."""
    total = 0.0
    for outcome in itertools.product([0, 1], repeat=len(alphas)):
        prob = np.prod([a if o else 1 - a for a, o in zip(alphas, outcome)])
        accepted = next((i for i, o in enumerate(outcome) if not o), len(alphas))
        total += prob * (accepted + 1)
    return total


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.8, 0.999, 1.0])
def test_expected_tokens_equals_enumeration(alpha):
    for gamma in range(6):
        assert mdp.expected_tokens(alpha, gamma) == pytest.approx(_enumerate_tokens([alpha] * gamma), rel=1e-12)
        assert mdp.speedup(alpha, gamma, 0.1) == pytest.approx(_enumerate_tokens([alpha] * gamma) / (1 + 0.1 * gamma))
    vec = mdp.expected_tokens(np.array([0.3, 0.7]), np.array([[1], [3]]))
    assert vec.shape == (2, 2)


def test_expected_tokens_near_one_is_accurate():
    alpha = 1 - 1e-12
    assert mdp.expected_tokens(alpha, 10) == pytest.approx(11 - 55e-12, rel=1e-13)


def test_expected_tokens_positional_equals_enumeration():
    rng = np.random.default_rng(3)
    for _ in range(5):
        alphas = rng.uniform(0, 1, 5)
        out = mdp.expected_tokens_positional(alphas)
        for k in range(6):
            assert out[k] == pytest.approx(_enumerate_tokens(alphas[:k]), rel=1e-12)
        assert mdp.expected_tokens_positional(alphas, k=3) == pytest.approx(out[3])


def test_optimal_gamma_equals_brute_force():
    for alpha in np.linspace(0, 1, 41):
        for c in (0.005, 0.01, 0.05, 0.1, 0.3, 0.7, 1.0, 1.5):
            gammas = np.arange(0, 301)
            brute = int(np.argmax(mdp.speedup(alpha, gammas, c)))  # first maximiser
            assert mdp.optimal_gamma(alpha, c, max_gamma=300) == brute, (alpha, c)
    assert mdp.optimal_gamma(0.1, 0.2) == 0  # α ≤ c: no speculation
    assert mdp.optimal_gamma(1.0, 0.1, max_gamma=50) == 50


@pytest.mark.parametrize("alpha,c", [(0.8, 0.1), (0.6, 0.05), (0.9, 0.02), (0.5, 0.3), (0.95, 0.2), (0.2, 0.3)])
def test_constant_acceptance_optimum_is_leviathan_gamma(alpha, c):
    proc = mdp.constant_process(alpha)
    g = mdp.optimal_gamma(alpha, c, max_gamma=40)
    res = mdp.optimal_policy(proc, c, max_k=40)
    assert res.draft_length_pmf[g] == pytest.approx(1.0)  # always exactly γ* drafts
    assert res.speedup == pytest.approx(mdp.speedup(alpha, g, c), rel=1e-12)
    assert mdp.best_fixed_k(proc, c, max_k=40, min_k=0).k == g


# --------------------------------------------------------------------------------------------
# structure and the comparison
# --------------------------------------------------------------------------------------------
MEDIUM = {
    "iid": mdp.iid_process([0.2, 0.6, 0.9, 1.0], [0.15, 0.2, 0.4, 0.25]),
    "observed-markov": mdp.markov_process([0.2, 0.6, 0.9, 1.0], [[0.3, 0.5, 0.2, 0.0], [0.0, 0.1, 0.4, 0.5]],
                                          [[0.85, 0.15], [0.05, 0.95]], observed=True),
    "hidden-markov": mdp.markov_process([0.3, 0.95], [[0.7, 0.3], [0.1, 0.9]], [[0.9, 0.1], [0.2, 0.8]]),
    "bins-markov": mdp.markov_process([0.1, 0.4, 0.7, 0.9, 1.0], [[0.5, 0.5, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0.4, 0.6]],
                                      [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.05, 0.15, 0.8]], observed=True),
}


@pytest.mark.parametrize("name", sorted(MEDIUM))
def test_optimal_beats_threshold_beats_fixed_k(name):
    proc = MEDIUM[name]
    max_k = 8
    for costs in (mdp.Costs(0.03), mdp.Costs(0.15, 1.0, 0.05)):
        cmp = mdp.compare_policies(proc, costs, max_k=max_k, mc_rounds=0)
        s = {r.name: r.speedup for r in cmp.rows}
        assert s["optimal"] >= s["best threshold"] - 1e-12
        assert s["best threshold"] >= s["SpecDec++ best h"] - 1e-12
        assert s["best threshold"] >= s["best fixed K"] - 1e-12
        assert s["best fixed K"] >= s["Leviathan γ*"] - 1e-12
        assert s["SpecDec++ best h"] >= s["SpecDec++ h=Δ0"] - 1e-12
        assert s["optimal"] >= 1.0 - 1e-12  # may always decline to speculate
        if proc.n_states == 1:  # i.i.d.: the threshold rule with the right h is optimal (monotone case)
            assert s["best threshold"] == pytest.approx(s["optimal"], rel=1e-12)
            assert s["Leviathan γ*"] == pytest.approx(s["best fixed K"], rel=1e-12)


@pytest.mark.parametrize("name", sorted(MEDIUM))
def test_optimal_is_a_threshold_rule_below_the_sufficient_level(name):
    """Stop iff S_k < s*_k(i), and every continuing state has S_k ≥ λ*·(c_draft + c1) (so the
    optimal h ≤ 1 − λ* step < h0 = SpecDec++'s Δ = 0 value)."""
    proc = MEDIUM[name]
    for costs in (mdp.Costs(0.03), mdp.Costs(0.15, 1.0, 0.05)):
        res = mdp.optimal_policy(proc, costs, max_k=8)
        assert res.is_threshold
        level = res.tokens_per_cost * costs.step
        model = res.policy.model
        for k in range(1, 8):
            S = model.layers[k].S
            cont = res.policy.conts[k] & (model.reach[k] > 0)
            assert np.all(S[cont.any(axis=1)] >= level - 1e-12)
            if res.h_bounds[k] is not None:
                assert res.h_bounds[k][0] <= 1 - level + 1e-12 < costs.h_delta0


def test_iid_optimum_is_one_step_lookahead():
    """Monotone case: stop iff S_k E[a] ≤ λ*(c_draft + c1), independent of k."""
    proc = MEDIUM["iid"]
    mean = float(proc.values @ proc.emission[0])
    for costs in (mdp.Costs(0.03), mdp.Costs(0.2)):
        res = mdp.optimal_policy(proc, costs, max_k=12)
        level = res.tokens_per_cost * costs.step
        for k in range(1, 12):
            S = res.policy.model.layers[k].S
            ola = S * mean > level
            clear = np.abs(S * mean - level) > 1e-9
            assert np.array_equal(res.policy.conts[k][clear, 0], ola[clear])


def test_threshold_search_matches_direct_evaluation():
    proc = MEDIUM["observed-markov"]
    costs = mdp.Costs(0.05, 1.0, 0.02)
    fam = mdp.best_threshold(proc, costs, max_k=8)
    ev = mdp.evaluate(fam.policy, proc, costs=costs)
    assert ev.tokens_per_cost == pytest.approx(fam.tokens_per_cost, rel=1e-12)
    caps = mdp.best_threshold(proc, costs, max_k=8, min_k=1, vary_max_k=False)
    for h, sp in zip(caps.curve_h[::7], caps.curve_speedup[::7]):
        assert mdp.evaluate(mdp.threshold_policy(h, 1, 8), proc, costs=costs).speedup == pytest.approx(sp, rel=1e-12)
    # any h in [h_low, h_high) is the same rule
    if caps.h_high - caps.h_low > 1e-9:
        h = caps.h_low + 0.999 * (caps.h_high - caps.h_low)
        assert mdp.evaluate(mdp.threshold_policy(h, 1, 8), proc, costs=costs).speedup == pytest.approx(caps.speedup, rel=1e-12)
    # brute force over a fine grid of h never beats the search
    for h in np.linspace(0.01, 0.99, 25):
        assert mdp.evaluate(mdp.threshold_policy(h, 1, 8), proc, costs=costs).speedup <= caps.speedup + 1e-12


def test_fixed_k_exact_agrees_with_the_state_space():
    proc = MEDIUM["hidden-markov"]
    costs = mdp.Costs(0.1)
    for K in (1, 3, 6):
        closed = mdp.evaluate(mdp.fixed_k(K), proc, costs=costs)
        via_model = mdp.evaluate(mdp.threshold_policy(0.5, K, K), proc, costs=costs)
        assert closed.tokens_per_round == pytest.approx(via_model.tokens_per_round, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------
def _close(ev, mc):
    assert abs(mc.tokens_per_round - ev.tokens_per_round) < 5 * mc.stderr_tokens, (ev, mc)
    assert abs(mc.drafts_per_round - ev.drafts_per_round) < 5 * max(mc.stderr_drafts, 1e-12), (ev, mc)
    assert abs(mc.tokens_per_cost - ev.tokens_per_cost) < 5 * mc.stderr_tokens_per_cost, (ev, mc)


@pytest.mark.parametrize("name", sorted(MEDIUM))
def test_evaluate_agrees_with_monte_carlo(name):
    proc = MEDIUM[name]
    costs = mdp.Costs(0.05, 1.0, 0.01)
    opt = mdp.optimal_policy(proc, costs, max_k=8)
    policies = [mdp.fixed_k(3), mdp.threshold_policy(0.6, 1, 8), mdp.threshold_policy(0.35, 2, 6), opt.policy]
    for seed, pol in enumerate(policies):
        ev = mdp.evaluate(pol, proc, costs=costs)
        mc = mdp.evaluate(pol, proc, costs=costs, method="mc", rounds=40_000, seed=seed)
        _close(ev, mc)


def test_belief_grid_is_an_upper_bound_and_its_policy_is_good():
    proc = MEDIUM["hidden-markov"]
    costs = mdp.Costs(0.05)
    exact = mdp.optimal_policy(proc, costs, max_k=7)
    assert exact.policy.model.belief == "exact"
    grid = mdp.optimal_policy(proc, costs, max_k=7, belief="grid", belief_grid=16)
    assert grid.policy.model.belief == "grid" and not grid.exact
    assert grid.tokens_per_cost >= exact.tokens_per_cost - 1e-12
    observed = mdp.optimal_policy(proc.as_observed(), costs, max_k=7)
    assert observed.tokens_per_cost >= exact.tokens_per_cost - 1e-12  # more information
    mc = mdp.evaluate(grid.policy, proc, costs=costs, method="mc", rounds=40_000, seed=5)
    assert mc.tokens_per_cost < exact.tokens_per_cost + 5 * mc.stderr_tokens_per_cost
    assert mc.tokens_per_cost > exact.tokens_per_cost - 0.02


def test_simplex_grid_interpolation():
    rng = np.random.default_rng(0)
    for m, G in ((2, 7), (3, 5), (4, 3)):
        grid = mdp.SimplexGrid.build(m, G)
        x = np.vstack([rng.dirichlet(np.ones(m), size=50), np.eye(m), grid.points[:3]])
        idx, w = grid.interpolate(x)
        assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1)
        assert np.allclose(np.einsum("nj,njm->nm", w, grid.points[idx]), x, atol=1e-12)


# --------------------------------------------------------------------------------------------
# discretisation brackets and fitting
# --------------------------------------------------------------------------------------------
def test_lattice_rounding_and_floor_bracket_the_optimum():
    proc = mdp.iid_process([0.37, 0.81, 0.93, 1.0], [0.2, 0.3, 0.3, 0.2])
    costs = mdp.Costs(0.05)
    exact = mdp.optimal_policy(proc, costs, max_k=10).tokens_per_cost
    down = mdp.optimal_policy(mdp.quantise(proc, 0.05, "down"), costs, max_k=10).tokens_per_cost
    up = mdp.optimal_policy(mdp.quantise(proc, 0.05, "up"), costs, max_k=10).tokens_per_cost
    assert down <= exact <= up
    lo = mdp.optimal_policy(proc, costs, max_k=10, s_floor=0.05, floor_mode="down")
    hi = mdp.optimal_policy(proc, costs, max_k=10, s_floor=0.05, floor_mode="up")
    assert lo.tokens_per_cost <= exact <= hi.tokens_per_cost
    assert lo.n_states < mdp.optimal_policy(proc, costs, max_k=10).n_states
    a = mdp.lattice_round([0.5, 0.0, 1.0, np.exp(-0.3)], 0.1, "down")
    assert a[0] <= 0.5 and a[1] == 0 and a[2] == 1 and a[3] == pytest.approx(np.exp(-0.3))


def test_trace_fits_rounded_down_and_up_bracket_the_unrounded_fit():
    rng = np.random.default_rng(8)
    levels = np.sort(rng.uniform(0.3, 1.0, 12))
    idx = np.minimum(np.cumsum(rng.integers(-2, 3, (400, 6)), axis=1) % 12, 11)  # correlated along a row
    trace = levels[idx]
    costs = mdp.Costs(0.08, 1.0, 0.01)
    raw = mdp.fit_trace(trace, n_bins=4, resolution=None)
    down = mdp.fit_trace(trace, n_bins=4, resolution=0.1, rounding="down")
    up = mdp.fit_trace(trace, n_bins=4, resolution=0.1, rounding="up")
    assert np.allclose(down.transition, raw.transition) and np.allclose(up.transition, raw.transition)
    r = [mdp.optimal_policy(p, costs, max_k=4).tokens_per_cost for p in (down, raw, up)]
    assert r[0] <= r[1] <= r[2]
    assert r[2] - r[0] > 1e-6  # the bracket is not trivially tight


def test_fit_trace_recovers_a_known_process():
    true = mdp.markov_process([0.5, 0.9, 1.0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                              [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]], [0.2, 0.3, 0.5], observed=True)
    a, _, _ = true.sample(20_000, 6, seed=2)
    fitted = mdp.fit_trace(a, model="markov", n_bins=3, resolution=None)
    assert fitted.observed and fitted.n_states == 3
    assert np.allclose(fitted.transition, true.transition, atol=0.02)
    assert np.allclose(fitted.initial, true.initial, atol=0.02)
    costs = mdp.Costs(0.05)
    assert mdp.optimal_policy(fitted, costs, max_k=6).speedup == pytest.approx(
        mdp.optimal_policy(true, costs, max_k=6).speedup, rel=0.01)
    iid = mdp.fit_trace(a, model="iid", resolution=None)
    freq = (a.reshape(-1, 1) == true.values[None, :]).mean(axis=0)
    assert np.allclose(iid.emission[0], freq)
    pos = mdp.fit_trace(a, model="positional", resolution=None)
    assert np.allclose(pos.position_means(6), true.position_means(6), atol=0.01)
    ragged = [np.array([0.5, 1.0, 0.9]), np.array([1.0])]
    padded = np.array([[0.5, 1.0, 0.9], [1.0, np.nan, np.nan]])
    f1 = mdp.fit_trace(ragged, resolution=0.05)
    f2 = mdp.fit_trace(padded, resolution=0.05)
    assert np.allclose(f1.transition, f2.transition) and np.allclose(f1.values, f2.values)


def test_large_fitted_model_is_fast_enough():
    rng = np.random.default_rng(0)
    a = np.where(rng.random((2000, 16)) < 0.3, 1.0, rng.beta(6, 1.5, (2000, 16)))
    proc = mdp.fit_trace(a, resolution=0.05, n_bins=6)
    res = mdp.optimal_policy(proc, 0.05, max_k=24, s_floor=1e-3)
    assert res.n_states > 5000 and res.iterations < 10
    assert res.upper_bound == pytest.approx(res.tokens_per_cost, rel=1e-9)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
def test_bad_input():
    proc = mdp.iid_process([0.5, 0.9])
    bad = [
        lambda: mdp.Costs(0.0),
        lambda: mdp.Costs(-0.1),
        lambda: mdp.Costs(0.1, c0=0.0),
        lambda: mdp.Costs(0.1, c1=-0.01),
        lambda: mdp.optimal_policy(proc, 0.0),
        lambda: mdp.optimal_policy(proc, 0.1, -1.0),
        lambda: mdp.optimal_policy(proc, 0.1, max_k=0),
        lambda: mdp.optimal_policy(proc, 0.1, max_k=3, min_k=4),
        lambda: mdp.threshold_policy(0.0),
        lambda: mdp.threshold_policy(1.0),
        lambda: mdp.threshold_policy(1.5),
        lambda: mdp.threshold_policy(0.5, min_k=5, max_k=3),
        lambda: mdp.threshold_policy(0.5, min_k=0),
        lambda: mdp.threshold_policy(0.5, max_k=0),
        lambda: mdp.iid_process([0.5, 1.2]),
        lambda: mdp.iid_process([-0.1, 0.5]),
        lambda: mdp.iid_process([0.5, 0.9], [0.5, 0.6]),
        lambda: mdp.markov_process([0.5, 0.9], [[1, 0], [0, 1]], [[0.9, 0.2], [0.1, 0.9]]),
        lambda: mdp.markov_process([0.5, 0.9], [[1, 0], [0, 1]], [[1.1, -0.1], [0.1, 0.9]]),
        lambda: mdp.markov_process([0.5, 0.9], [[1, 0], [0, 1]], [[1.0, 0.0], [0.0, 1.0]]),  # reducible
        lambda: mdp.markov_process([0.5, 0.9], [[1, 0], [0, 1]], [[0.9, 0.1]]),
        lambda: mdp.fit_trace([[0.5, 1.3]]),
        lambda: mdp.fit_trace([[0.5, np.nan, 0.3]]),
        lambda: mdp.expected_tokens(1.5, 3),
        lambda: mdp.expected_tokens(0.5, -1),
        lambda: mdp.speedup(0.5, 2, 0.0),
        lambda: mdp.optimal_gamma(0.5, -0.1),
        lambda: mdp.fixed_k(-1),
        lambda: mdp.evaluate(mdp.fixed_k(2), proc, 0.1, method="magic"),
        lambda: mdp.evaluate("fixed:2", proc, 0.1),
        lambda: mdp.optimal_policy([0.5], 0.1),
    ]
    for f in bad:
        with pytest.raises(SpecTheoryValueError):
            f()
    assert issubclass(SpecTheoryValueError, ValueError)


def test_call_forms():
    proc = mdp.iid_process([0.5, 0.9])
    a = mdp.optimal_policy(proc, mdp.Costs(0.1, 1.0, 0.02), 6)
    b = mdp.optimal_policy(proc, 0.1, (1.0, 0.02), max_k=6)
    c = mdp.optimal_policy(proc, costs=mdp.Costs(0.1, 1.0, 0.02), max_k=6)
    d = mdp.optimal_policy(proc, c_draft=0.1, c_target=(1.0, 0.02), max_k=6)
    assert a.tokens_per_cost == b.tokens_per_cost == c.tokens_per_cost == d.tokens_per_cost
    with pytest.raises(SpecTheoryValueError):
        mdp.optimal_policy(proc, mdp.Costs(0.1), 1.0, max_k=6)
    other = mdp.iid_process([0.4, 0.9])
    with pytest.raises(SpecTheoryValueError):
        mdp.evaluate(a.policy, other, 0.1)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def test_cli_iid_json_matches_api(capsys, tmp_path):
    out_dir = tmp_path / "out"
    status = main(["mdp", "--iid", "0.6,0.9:0.5,0.5", "--c-draft", "0.05,0.2", "--c1", "0.01",
                   "--max-k", "10", "--json", "--out", str(out_dir), "--no-progress"])
    assert status == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["costs"]["c_draft"] for r in doc["results"]] == [0.05, 0.2]
    proc = mdp.iid_process([0.6, 0.9], [0.5, 0.5])
    api = mdp.optimal_policy(proc, 0.05, (1.0, 0.01), max_k=10)
    assert doc["results"][0]["rows"][0]["speedup"] == pytest.approx(api.speedup, rel=1e-12)
    written = json.loads((out_dir / "mdp.json").read_text())
    assert written["results"][1]["optimal"]["speedup"] == pytest.approx(doc["results"][1]["optimal"]["speedup"])
    assert (out_dir / "mdp_policy.png").stat().st_size > 1000


def test_cli_markov_and_trace_table(capsys, tmp_path):
    status = main(["mdp", "--markov", "0.3,0.95:0.7,0.3/0.3,0.95:0.1,0.9", "--transition", "0.9,0.1;0.2,0.8",
                   "--c-draft", "0.05", "--max-k", "6", "--no-progress"])
    assert status == 0
    text = capsys.readouterr().out
    assert "optimal" in text and "best fixed K" in text and "Leviathan" in text
    proc = mdp.iid_process([0.9, 1.0], [0.5, 0.5])
    a, _, _ = proc.sample(300, 8, seed=0)
    a[::3, 5:] = np.nan
    np.save(tmp_path / "trace.npy", a)
    rows = ["0.9,1.0,0.9", "1.0,1.0", "0.9"]
    (tmp_path / "trace.csv").write_text("\n".join(rows) + "\n")
    for path in ("trace.npy", "trace.csv"):
        status = main(["mdp", "--trace", str(tmp_path / path), "--c-draft", "0.1", "--max-k", "6",
                       "--resolution", "0.05", "--json", "--no-progress"])
        assert status == 0
        doc = json.loads(capsys.readouterr().out)
        r0 = doc["results"][0]
        assert r0["optimal"]["speedup"] <= r0["upper_bound_speedup"] + 1e-12


@pytest.mark.parametrize("args,needle", [
    (["--iid", "0.6,1.2"], "[0, 1]"),
    (["--iid", "0.6,0.9:0.5,0.6"], "sum to 1"),
    (["--iid", "abc"], "--iid"),
    (["--iid", "0.6", "--c-draft", "0"], "c_draft"),
    (["--iid", "0.6", "--c-draft", "0.1", "--max-k", "0"], "max_k"),
    (["--iid", "0.6", "--c0", "-1"], "c0"),
    (["--markov", "0.3,0.9/0.5,0.9", "--transition", "0.9,0.2;0.1,0.9"], "stochastic"),
    (["--markov", "0.3,0.9/0.5,0.9"], "--transition"),
    (["--trace", "/nonexistent/trace.npy"], "not found"),
    ([], "one of"),
])
def test_cli_errors_are_one_line(capsys, args, needle):
    status = main(["mdp", *args, "--no-progress"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("spectheory: error:")
    assert needle in err
