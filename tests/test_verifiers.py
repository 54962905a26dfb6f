"""Multi-draft verifiers: exact losslessness, exact acceptance, the theorems relating them, Monte Carlo.

Losslessness is shown by exact computation: :func:`exact_output_law` sums the verifier's own rule
over every draft tuple and every accept/reject branch, and the result must equal p to 1e-10.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hst

import spectheory as st
from spectheory.testing import distribution_pairs, independent_drafters
from spectheory.verifiers import exact_output_law

LOSSLESS_TOL = 1e-10
# (verifier name, constructor options); every verifier with its native scheme
NATIVE = [
    ("rrs", {}),
    ("rrs_wor", {}),
    ("kseq", {}),
    ("spechub", {}),
    ("greedy", {}),
]
OPTIMAL = [
    (sampling, construction)
    for sampling in ("iid", "without_replacement", "greedy", "hub")
    for construction in ("plan", "canonical")
]


def _n_for(name, n):
    return 2 if name == "spechub" else n


@given(distribution_pairs(max_V=5), hst.integers(1, 3), hst.sampled_from(NATIVE))
def test_native_verifiers_are_lossless_and_acceptance_is_exact(pair, n, spec):
    p, q = pair
    name, options = spec
    n = _n_for(name, n)
    v = st.verifier(name, **options)
    out = exact_output_law(v, p, q, n)
    np.testing.assert_allclose(out.law, p, rtol=0, atol=LOSSLESS_TOL)
    assert v.acceptance(p, q, n) == pytest.approx(out.acceptance, abs=LOSSLESS_TOL)


@given(distribution_pairs(max_V=4), hst.integers(1, 3), hst.data())
def test_sd_and_rrs_independent_drafters_are_lossless(pair, n, data):
    p, q = pair
    out = exact_output_law(st.verifier("sd"), p, q, 1)
    np.testing.assert_allclose(out.law, p, rtol=0, atol=LOSSLESS_TOL)
    assert st.acceptance(p, q, 1, "sd") == pytest.approx(out.acceptance, abs=LOSSLESS_TOL)
    Q = data.draw(independent_drafters(len(p), n))
    v = st.verifier("rrs", sampling="independent")
    out = exact_output_law(v, p, Q, n)
    np.testing.assert_allclose(out.law, p, rtol=0, atol=LOSSLESS_TOL)
    assert st.acceptance(p, Q, n, "rrs", sampling="independent") == pytest.approx(out.acceptance, abs=LOSSLESS_TOL)
    # never above the optimum for the same independent drafters
    assert out.acceptance <= st.optimal_acceptance(p, Q, n, "independent") + 1e-10


@given(distribution_pairs(max_V=4), hst.integers(1, 3), hst.sampled_from(OPTIMAL))
def test_optimal_verifier_is_lossless_and_attains_the_bound(pair, n, spec):
    p, q = pair
    sampling, construction = spec
    n = _n_for("spechub" if sampling == "hub" else "", n)
    v = st.verifier("optimal", sampling=sampling, construction=construction)
    out = exact_output_law(v, p, q, n)
    np.testing.assert_allclose(out.law, p, rtol=0, atol=1e-9)
    bound = st.optimal_acceptance(p, q, n, sampling)
    assert v.acceptance(p, q, n) == pytest.approx(bound, abs=1e-12)
    # the sampler attains α* up to the LP solver's tolerance, and never exceeds it
    assert out.acceptance == pytest.approx(bound, abs=1e-6)
    assert out.acceptance <= bound + 1e-9


@given(distribution_pairs(max_V=6), hst.integers(1, 4))
def test_verifiers_never_beat_their_scheme_and_greedy_attains_it(pair, n):
    p, q = pair
    for name in ("rrs", "rrs_wor", "kseq", "greedy"):
        v = st.verifier(name)
        assert v.acceptance(p, q, n) <= st.optimal_acceptance(p, q, n, v.sampling) + 1e-10
    assert st.acceptance(p, q, n, "greedy") == pytest.approx(st.optimal_acceptance(p, q, n, "greedy"), abs=1e-12)
    assert st.acceptance(p, q, n, "optimal", sampling="without_replacement") == pytest.approx(
        st.optimal_acceptance(p, q, n, "without_replacement"), abs=1e-12
    )


@given(distribution_pairs(max_V=6), hst.integers(1, 6))
def test_kseq_guarantee(pair, n):
    p, q = pair
    alpha = st.optimal_acceptance(p, q, n)
    assert st.acceptance(p, q, n, "kseq") >= (1 - (1 - 1 / n) ** n) * alpha - 1e-10


@given(distribution_pairs(max_V=5))
def test_spechub_equals_the_lp_optimum_of_its_joint(pair):
    p, q = pair
    lp = st.solvers.transport_lp(p, q, 2, "hub").acceptance
    assert st.acceptance(p, q, 2, "spechub") == pytest.approx(lp, abs=1e-8)


@given(distribution_pairs(max_V=6))
def test_n_equal_one_collapses_to_sd(pair):
    p, q = pair
    sd = st.acceptance(p, q, 1, "sd")
    assert sd == pytest.approx(np.minimum(p, q).sum(), abs=1e-15)
    for name in ("rrs", "rrs_wor", "kseq", "greedy"):
        assert st.acceptance(p, q, 1, name) == pytest.approx(sd, abs=1e-12)
    assert st.acceptance(p, q, 1, "optimal") == pytest.approx(sd, abs=1e-12)
    # and draft by draft, every single-draft rule outputs the same law as sd
    for x in np.flatnonzero(q > 0):
        ref = _branch_law(st.verifier("sd"), p, q, [x])
        for name in ("rrs", "rrs_wor", "kseq", "greedy"):
            np.testing.assert_allclose(_branch_law(st.verifier(name), p, q, [x]), ref, atol=1e-12)


def _branch_law(v, p, q, drafts):
    from spectheory.verifiers._branching import enumerate_branches

    p = np.asarray(p, float)
    q = np.asarray(q, float)
    d = np.asarray(drafts, dtype=np.int64)
    law = np.zeros(len(p))
    for w, out in enumerate_branches(lambda o: v._rule(p, q, d, o)):
        if isinstance(out, np.ndarray):
            law += w * out
        else:
            law[out] += w
    return law


@given(distribution_pairs(max_V=8), hst.integers(2, 5))
def test_rrs_wor_closed_form_and_recursion_agree(pair, n):
    p, q = pair
    v = st.verifier("rrs_wor")
    detail = v.acceptance_detail(p, q, n)
    assert detail.exact and detail.stderr == 0
    # the recursion alone, for every n (n = 2 included)
    from spectheory.verifiers.batched import rrs_wor_exact_row as _exact_row

    k = min(n, int(np.count_nonzero(np.asarray(q) > 0)))
    assert detail.value == pytest.approx(_exact_row(np.asarray(p, float), np.asarray(q, float), k), abs=1e-12)


def test_rrs_wor_estimate_agrees_with_recursion():
    rng = np.random.default_rng(7)
    for V, n in [(12, 3), (10, 4), (30, 3)]:
        p = rng.dirichlet(np.full(V, 0.5))
        q = rng.dirichlet(np.full(V, 0.5))
        exact = st.verifier("rrs_wor").acceptance_detail(p, q, n)
        est = st.verifier("rrs_wor", max_histories=0, paths=400, seed=3).acceptance_detail(p, q, n)
        assert exact.exact and not est.exact and est.stderr > 0
        assert abs(est.value - exact.value) <= 5 * est.stderr + 1e-12
        assert "monte carlo" in est.method


def test_batched_acceptance_equals_rows():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.full(50, 0.3), size=4)
    Q = rng.dirichlet(np.full(50, 0.3), size=4)
    for name, n in [("sd", 1), ("rrs", 3), ("rrs_wor", 2), ("kseq", 4), ("spechub", 2), ("greedy", 3)]:
        batch = st.acceptance(P, Q, n, name)
        assert batch.shape == (4,)
        for b in range(4):
            assert batch[b] == pytest.approx(st.acceptance(P[b], Q[b], n, name), abs=1e-14)


def _mc_acceptance(v, p, q, n, trials, seed):
    rng = np.random.default_rng(seed)
    hits = 0
    counts = np.zeros(len(p))
    for _ in range(trials):
        drafts = v.draft(q, n, rng)
        token, accepted = v.verify(p, q, drafts, rng)
        hits += accepted
        counts[token] += 1
    return hits / trials, counts


@pytest.mark.parametrize(
    "name,options,n",
    [("sd", {}, 1), ("rrs", {}, 4), ("rrs_wor", {}, 3), ("kseq", {}, 4), ("spechub", {}, 2), ("greedy", {}, 4)],
)
def test_monte_carlo_agrees_at_V_1000(name, options, n):
    rng = np.random.default_rng(12345)
    V = 1000
    p = rng.dirichlet(np.full(V, 0.05))
    q = 0.5 * p + 0.5 * rng.dirichlet(np.full(V, 0.05))
    v = st.verifier(name, **options)
    trials = 6000
    mean, counts = _mc_acceptance(v, p, q, n, trials, seed=99)
    detail = v.acceptance_detail(p, q, n)
    se = np.sqrt(detail.value * (1 - detail.value) / trials) + detail.stderr
    assert abs(mean - detail.value) <= 5 * se
    # the output's mass on the target's 20 likeliest tokens matches p there (5 standard errors)
    top = np.argsort(-p)[:20]
    frac, mass = counts[top].sum() / trials, p[top].sum()
    assert abs(frac - mass) <= 5 * np.sqrt(mass * (1 - mass) / trials)


@pytest.mark.parametrize("construction", ["plan", "canonical"])
def test_monte_carlo_optimal_verifier_at_V_1000(construction):
    # V = 1000 with a draft supported on 6 tokens keeps the LP small (36 tuples x 1000 tokens)
    rng = np.random.default_rng(5)
    V = 1000
    p = rng.dirichlet(np.full(V, 0.05))
    q = np.zeros(V)
    support = np.argsort(-p)[:6]
    q[support] = rng.dirichlet(np.ones(6))
    v = st.verifier("optimal", sampling="iid", construction=construction)
    trials = 4000
    mean, _ = _mc_acceptance(v, p, q, 2, trials, seed=11)
    alpha = st.optimal_acceptance(p, q, 2)
    assert abs(mean - alpha) <= 5 * np.sqrt(alpha * (1 - alpha) / trials)


@given(hst.integers(1, 5), hst.integers(1, 3), hst.sampled_from(["iid", "without_replacement", "greedy", "hub"]), hst.data())
def test_tuple_probability_matches_tuple_law(V, n, sampling, data):
    from spectheory.testing import distributions

    q = data.draw(distributions(V))
    n = 2 if sampling == "hub" else n
    scheme = st.get_scheme(sampling)
    law = scheme.tuple_law(q, n)
    for t, prob in zip(law.tuples, law.probs):
        assert scheme.tuple_probability(q, t) == pytest.approx(prob, rel=1e-12, abs=1e-300)
        assert scheme.tuple_possible(q, t)
    k = law.tuples.shape[1]
    listed = {tuple(t) for t in law.tuples.tolist()}
    import itertools

    for t in itertools.product(range(V), repeat=k):
        if t not in listed:
            assert scheme.tuple_probability(q, np.array(t)) == 0.0
            assert not scheme.tuple_possible(q, np.array(t))


# -- bad input -------------------------------------------------------------------------------------
P3, Q3 = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: st.acceptance(P3, Q3, 3, "spechub"), "two drafts"),
        (lambda: st.acceptance(P3, Q3, 2, "sd"), "single-draft"),
        (lambda: st.acceptance(P3, Q3, 2, "nope"), "unknown verifier"),
        (lambda: st.acceptance(P3, Q3, 2, "kseq", sampling="without_replacement"), "own draft scheme"),
        (lambda: st.acceptance(P3, Q3, 0, "rrs"), "integer >= 1"),
        (lambda: st.acceptance(P3, [0.4, 0.6], 2, "rrs"), "vocabulary sizes differ"),
        (lambda: st.acceptance([0.5, 0.6, -0.1], Q3, 2, "rrs"), "negative"),
        (lambda: st.verifier("rrs").verify(P3, Q3, [0, 3], rng=0), "outside the vocabulary"),
        (lambda: st.verifier("rrs").verify(P3, Q3, [-1], rng=0), "outside the vocabulary"),
        (lambda: st.verifier("rrs").verify(P3, Q3, [0.5], rng=0), "integers"),
        (lambda: st.verifier("rrs").verify(P3, Q3, [], rng=0), "non-empty"),
        (lambda: st.verifier("rrs_wor").verify(P3, Q3, [1, 1], rng=0), "repeated"),
        (lambda: st.verifier("rrs").verify(P3, [0.5, 0.5, 0.0], [2], rng=0), "q = 0"),
        (lambda: st.verifier("greedy").verify(P3, Q3, [0, 1], rng=0), "impossible"),
        (lambda: st.verifier("spechub").verify(P3, Q3, [0, 1], rng=0), "impossible"),
        (lambda: st.verifier("spechub").verify(P3, Q3, [0, 1, 2], rng=0), "two drafts"),
        (lambda: st.verifier("rrs").verify(P3, Q3, [0], rng="seed"), "rng"),
        (lambda: st.verifier("optimal", sampling="nope"), "unknown draft scheme"),
        (lambda: st.verifier("optimal", construction="nope"), "unknown construction"),
        (lambda: st.verifier("rrs", sampling="greedy"), "independent"),
        (lambda: st.verifier("rrs_wor", paths=1), "paths"),
        (lambda: st.verifier("kseq", bogus=1), "bad option"),
        (lambda: st.verifier("optimal").verify(np.full(200, 1 / 200), np.full(200, 1 / 200), [0, 1, 2], rng=0), "variables"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
