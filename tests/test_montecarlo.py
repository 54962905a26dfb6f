"""The Monte Carlo engine (spectheory.simulations.montecarlo) against the exact verifier code.

* acceptance: within 5 standard errors of ``st.verifier(name).acceptance_detail`` (fixed seeds), on
  generated pairs (hypothesis) and at V = 1000; a discreteness allowance of 3/T is added so that
  acceptances of order 1/T (tiny masses) are not judged by a normal approximation;
* losslessness: the output histogram against p by a chi-square test (expected counts below 5 pooled
  into one cell), p-value > 1e-6, and no output ever on a token with p = 0;
* reproducibility: same seed, any thread count, any grouping of chunks -> identical counts;
* bad input -> ValueError.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy import stats

import spectheory as st
from spectheory.simulations import _mc_kernels as K
from spectheory.simulations import montecarlo as mc
from spectheory.simulations._alias import alias_law, alias_table
from spectheory.testing import distribution_pairs

VERIFIERS = ("sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy")
CHI2_PMIN = 1e-6
SIGMAS = 5.0


def _n_for(name, n):
    return {"sd": 1, "spechub": 2}.get(name, n)


def _assert_close(est, exact, exact_se=0.0):
    """|mean − exact| within SIGMAS standard errors (of the exact value's binomial law, combined with
    the exact side's own error when it is an estimate), plus 3/T for discreteness."""
    T = est.trials
    se = np.sqrt(max(exact * (1.0 - exact), 0.0) / T + exact_se**2)
    assert abs(est.mean - exact) <= SIGMAS * se + 3.0 / T, (est, exact, exact_se)


def _chi2_pvalue(hist, p):
    T = hist.sum()
    expected = T * p
    support = p > 0
    assert hist[~support].sum() == 0, "output on a token with p = 0"
    big = support & (expected >= 5)
    obs = list(hist[big])
    exp = list(expected[big])
    small = support & ~big
    if expected[small].sum() > 0:
        obs.append(hist[small].sum())
        exp.append(expected[small].sum())
    if len(obs) < 2:
        return 1.0
    obs = np.array(obs, dtype=float)
    exp = np.array(exp)
    exp *= obs.sum() / exp.sum()  # remove float rounding of Σp
    return stats.chisquare(obs, exp).pvalue


def _dirichlet_pair(V, seed, alpha=0.5, zeros=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(V, alpha))
    q = rng.dirichlet(np.full(V, alpha))
    if zeros:
        p[rng.choice(V, zeros, replace=False)] = 0.0
        q[rng.choice(V, zeros, replace=False)] = 0.0
    return p / p.sum(), q / q.sum()


# --------------------------------------------------------------------------------------------
# agreement with the exact acceptance
# --------------------------------------------------------------------------------------------
@settings(max_examples=80)
@given(distribution_pairs(max_V=6), hst.integers(1, 4))
def test_agrees_with_exact_acceptance_generated(pair, n):
    p, q = pair
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # many small calls: skip waking workers (results do not depend on it)
    try:
        for name in VERIFIERS:
            m = _n_for(name, n)
            exact = st.verifier(name).acceptance_detail(p, q, m)
            assert exact.exact
            est = mc.estimate_acceptance(p, q, m, name, trials=30_000, seed=2024)
            _assert_close(est, exact.value)
    finally:
        numba.set_num_threads(threads)


@pytest.mark.parametrize(
    "name,n", [(v, n) for v in VERIFIERS for n in (2, 4) if not (v in ("sd", "spechub") and n == 4)]
)
def test_v1000_acceptance_and_output_law(name, n):
    m = _n_for(name, n)
    rng = np.random.default_rng(7)
    base = rng.standard_normal(1000) * 2.0
    p = np.exp(base + rng.standard_normal(1000))
    q = np.exp(base + rng.standard_normal(1000))
    p, q = p / p.sum(), q / q.sum()
    v = st.verifier("rrs_wor", paths=4096) if name == "rrs_wor" else st.verifier(name)
    exact = v.acceptance_detail(p, q, m)
    sim = mc.simulate_verifier(p, q, m, name, trials=400_000, seed=11)
    _assert_close(sim.estimate, exact.value, exact.stderr)
    assert _chi2_pvalue(sim.histogram, p) > CHI2_PMIN


def test_rrs_wor_peaky_draft_uses_sum_tree():
    """A dominant draft token (q = 0.9 > p) is often rejected first: the remaining draft mass falls
    below 1/2 and later drafts come from the per-thread sum tree. Exact value: the recursion."""
    rng = np.random.default_rng(3)
    V = 40
    q = rng.dirichlet(np.ones(V)) * 0.1
    q[5] += 0.9
    p = rng.dirichlet(np.ones(V))
    for n in (2, 3, 4):
        exact = st.verifier("rrs_wor").acceptance_detail(p, q, n)
        assert exact.exact
        sim = mc.simulate_verifier(p, q, n, "rrs_wor", trials=300_000, seed=5)
        _assert_close(sim.estimate, exact.value)
        assert _chi2_pvalue(sim.histogram, p) > CHI2_PMIN


def test_rrs_wor_many_drafts_against_recursion():
    """Deep rejection histories (the general O(log V) step, the sum tree, n up to the support)."""
    p, q = _dirichlet_pair(7, 8, alpha=0.4)
    for n in (3, 5, 7):
        exact = st.verifier("rrs_wor").acceptance_detail(p, q, n)
        assert exact.exact
        sim = mc.simulate_verifier(p, q, n, "rrs_wor", trials=200_000, seed=n)
        _assert_close(sim.estimate, exact.value)
        assert _chi2_pvalue(sim.histogram, p) > CHI2_PMIN


def test_rrs_scalar_residual_form_matches_table():
    """Above TABLE_LIMIT rrs computes its coins from R_i = (p − t_i q)+/M_i instead of a table."""
    p, q = _dirichlet_pair(30, 1, zeros=4)
    for n in (1, 3, 6):
        exact = st.acceptance(p, q, n, "rrs")
        sim = mc._run(p, q, n, "rrs", 200_000, 9, True, table_limit=0)
        _assert_close(sim.estimate, exact)
        assert _chi2_pvalue(sim.histogram, p) > CHI2_PMIN


def test_distinct_schemes_with_n_beyond_support():
    p = np.array([0.1, 0.0, 0.5, 0.4])
    q = np.array([0.6, 0.4, 0.0, 0.0])
    for name in ("rrs_wor", "greedy"):
        for n in (2, 5):
            est = mc.estimate_acceptance(p, q, n, name, trials=50_000, seed=1)
            _assert_close(est, st.acceptance(p, q, n, name))


def test_one_hot_and_identical():
    p = np.array([0.0, 1.0, 0.0])
    for name in VERIFIERS:
        m = _n_for(name, 3)
        assert mc.estimate_acceptance(p, p, m, name, trials=5_000, seed=0).mean == 1.0
        h = mc.output_histogram(p, [0.2, 0.3, 0.5], m, name, trials=5_000, seed=0)
        assert h.tolist() == [0, 5_000, 0]


# --------------------------------------------------------------------------------------------
# output law equals p
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VERIFIERS)
@pytest.mark.parametrize("case", range(3))
def test_output_law_is_p(name, case):
    V = (8, 12, 25)[case]
    p, q = _dirichlet_pair(V, 100 + case, alpha=(1.0, 0.4, 0.3)[case], zeros=case)
    m = _n_for(name, (2, 3, 4)[case])
    sim = mc.simulate_verifier(p, q, m, name, trials=300_000, seed=17 + case)
    assert sim.histogram.dtype == np.int64
    assert sim.histogram.sum() == 300_000
    assert _chi2_pvalue(sim.histogram, p) > CHI2_PMIN
    _assert_close(sim.estimate, st.acceptance(p, q, m, name))


# --------------------------------------------------------------------------------------------
# reproducibility
# --------------------------------------------------------------------------------------------
@pytest.fixture
def restore_threads():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("name", VERIFIERS)
def test_reproducible_across_seeds_threads_and_groups(name, restore_threads):
    p, q = _dirichlet_pair(20, 42, alpha=0.7)
    m = _n_for(name, 3)
    trials = 3 * mc.CHUNK + 17  # several chunks, a partial last one
    first = mc.simulate_verifier(p, q, m, name, trials=trials, seed=123)
    again = mc.simulate_verifier(p, q, m, name, trials=trials, seed=123)
    assert first.estimate == again.estimate
    np.testing.assert_array_equal(first.histogram, again.histogram)
    assert first.histogram.sum() == trials

    runs = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        runs.append(mc.simulate_verifier(p, q, m, name, trials=trials, seed=123))
    for groups in (1, 3, 7):
        runs.append(mc._run(p, q, m, name, trials, 123, True, groups=groups))
    for r in runs:
        assert r.estimate == first.estimate
        np.testing.assert_array_equal(r.histogram, first.histogram)

    # the acceptance-only and histogram entry points run the same trials
    assert mc.estimate_acceptance(p, q, m, name, trials=trials, seed=123) == first.estimate
    np.testing.assert_array_equal(mc.output_histogram(p, q, m, name, trials=trials, seed=123), first.histogram)

    other = mc.simulate_verifier(p, q, m, name, trials=trials, seed=124)
    assert not np.array_equal(other.histogram, first.histogram)
    # NumPy integers are seeds and trial counts too
    assert mc.estimate_acceptance(p, q, m, name, trials=np.int64(trials), seed=np.uint32(123)) == first.estimate


def test_chunk_streams():
    k0, k1 = mc._key(0)
    a = K.uniforms(k0, k1, 0, 10_000)
    b = K.uniforms(k0, k1, 1, 10_000)
    c = K.uniforms(*mc._key(1), 0, 10_000)
    assert np.all((a >= 0) & (a < 1))
    assert abs(a.mean() - 0.5) < 0.02 and abs(b.mean() - 0.5) < 0.02
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    np.testing.assert_array_equal(a, K.uniforms(k0, k1, 0, 10_000))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05


def test_alias_tables_are_exact():
    rng = np.random.default_rng(0)
    for V in (1, 2, 7, 100, 1000):
        w = rng.dirichlet(np.full(V, 0.3))
        w[rng.random(V) < 0.3] = 0.0
        w[rng.random(V) < 0.1] = 1e-300
        if w.sum() == 0:
            w[0] = 1.0
        prob, alias = alias_table(w)
        np.testing.assert_allclose(alias_law(prob, alias), w / w.sum(), rtol=1e-12, atol=1e-15)
        # a zero-weight column is never returned: its own threshold is 0 and its alias has weight
        assert np.all(prob[w == 0] == 0) and np.all(w[alias[w == 0]] > 0)
    with pytest.raises(ValueError):
        alias_table(np.zeros(3))


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
P3, Q3 = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]


@pytest.mark.parametrize("trials", [0, -5, 1.5, 1e6, True, "100", None])
def test_bad_trials(trials):
    with pytest.raises(ValueError, match="trials"):
        mc.estimate_acceptance(P3, Q3, 2, "rrs", trials=trials, seed=0)


@pytest.mark.parametrize("seed", [1.0, True, "1", -1, None, 2.5])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        mc.estimate_acceptance(P3, Q3, 2, "rrs", trials=10, seed=seed)


@pytest.mark.parametrize("verifier", ["nope", "optimal", 3, None])
def test_bad_verifier(verifier):
    with pytest.raises(ValueError, match="verifier"):
        mc.output_histogram(P3, Q3, 2, verifier, trials=10, seed=0)


@pytest.mark.parametrize(
    "name, n, p, q",
    [
        ("spechub", 3, P3, Q3),
        ("spechub", 1, P3, Q3),
        ("sd", 2, P3, Q3),
        ("rrs", 0, P3, Q3),
        ("rrs", 1.5, P3, Q3),
        ("rrs", 2, [0.5, 0.6], [0.5, 0.5]),
        ("kseq", 2, [0.5, 0.5], Q3),
        ("greedy", 2, [[0.5, 0.5]], [[0.5, 0.5]]),
        ("rrs_wor", 2, [0.5, -0.1, 0.6], Q3),
        ("sd", 1, [np.nan, 1.0], [0.5, 0.5]),
    ],
)
def test_bad_distributions_and_n(name, n, p, q):
    with pytest.raises(st.SpecTheoryValueError):
        mc.simulate_verifier(p, q, n, name, trials=10, seed=0)


def test_estimate_is_frozen():
    est = mc.estimate_acceptance(P3, Q3, 1, "sd", trials=1000, seed=0)
    assert est.stderr == pytest.approx(np.sqrt(est.mean * (1 - est.mean) / 1000))
    with pytest.raises(AttributeError):
        est.mean = 0.5


@pytest.mark.parametrize("name,n", [("rrs", 4), ("spechub", 2), ("rrs_wor", 3)])
def test_blocks_of_chunks_give_identical_counts(name, n):
    """Running the chunks in blocks (as the progress bar does) changes nothing."""
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(20))
    q = rng.dirichlet(np.ones(20))
    whole = mc._run(p, q, n, name, 100_000, 5, True)
    blocks = mc._run(p, q, n, name, 100_000, 5, True, block_chunks=2)
    assert whole.accepted == blocks.accepted
    np.testing.assert_array_equal(whole.histogram, blocks.histogram)
    assert mc.estimate_acceptance(p, q, n, name, trials=50_000, seed=1, progress=True) == mc.estimate_acceptance(
        p, q, n, name, trials=50_000, seed=1
    )
