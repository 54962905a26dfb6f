"""The ``priority`` construction of the optimal verifier: closed-form optimal selection laws and the
random priority orders that sample them, against independent truths (the transport LP, brute-force
containment over every subset from the tuple law, exhaustive branch enumeration, Monte Carlo)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import spectheory as st
from spectheory.solvers import optimal_selection_law, priority_mixture, transport_lp
from spectheory.testing import distribution_pairs, distributions, independent_drafters
from spectheory.verifiers import exact_output_law

SCHEMES = ["iid", "without_replacement", "greedy", "hub", "independent"] + (["topk"] if "topk" in st.SCHEMES else [])


def _draw_q(data, sampling, p, q, n):
    if sampling == "independent":
        return data.draw(independent_drafters(len(p), n))
    return q


def _brute_containment(q, n, sampling, V):
    """C(H) for every subset H (index: bitmask), summed from the exact tuple law."""
    law = st.get_scheme(sampling).tuple_law(q, n)
    tuple_masks = np.bitwise_or.reduce(np.left_shift(1, law.tuples), axis=1)
    H = np.arange(1 << V)
    inside = (tuple_masks[:, None] & ~H[None, :]) == 0
    return law.probs @ inside


def _check_base(r, q, n, sampling, V, tol=1e-10):
    assert np.all(r >= -1e-15)
    assert r.sum() == pytest.approx(1.0, abs=1e-12)
    C = _brute_containment(q, n, sampling, V)
    members = (np.arange(1 << V)[:, None] >> np.arange(V)[None, :]) & 1
    rH = members @ r
    assert np.all(rH >= C - tol), np.max(C - rH)


@settings(max_examples=60)
@given(distribution_pairs(max_V=5), hst.integers(1, 3), hst.sampled_from(SCHEMES), hst.data())
def test_priority_verifier_is_lossless_and_attains_the_lp_optimum(pair, n, sampling, data):
    p, q = pair
    n = 2 if sampling == "hub" else n
    q = _draw_q(data, sampling, p, q, n)
    v = st.verifier("optimal", sampling=sampling, construction="priority")
    out = exact_output_law(v, p, q, n)
    np.testing.assert_allclose(out.law, p, rtol=0, atol=1e-10)
    lp = transport_lp(p, q, n, sampling).acceptance
    assert out.acceptance == pytest.approx(lp, abs=1e-9)


@settings(max_examples=15)
@given(distribution_pairs(min_V=6, max_V=6), hst.integers(2, 3), hst.sampled_from(SCHEMES), hst.data())
def test_priority_verifier_at_V_6(pair, n, sampling, data):
    p, q = pair
    n = 2 if sampling == "hub" else n
    q = _draw_q(data, sampling, p, q, n)
    v = st.verifier("optimal", sampling=sampling, construction="priority")
    out = exact_output_law(v, p, q, n)
    np.testing.assert_allclose(out.law, p, rtol=0, atol=1e-10)
    assert out.acceptance == pytest.approx(transport_lp(p, q, n, sampling).acceptance, abs=1e-9)


@settings(max_examples=60)
@given(distribution_pairs(max_V=6), hst.integers(1, 4), hst.sampled_from(SCHEMES), hst.data())
def test_selection_law_is_a_base_and_optimal(pair, n, sampling, data):
    p, q = pair
    n = 2 if sampling == "hub" else n
    q = _draw_q(data, sampling, p, q, n)
    V = len(p)
    law = optimal_selection_law(p, q, n, sampling)
    _check_base(law.law, q, n, sampling, V)
    alpha = st.optimal_acceptance(p, q, n, sampling, method="brute")
    assert law.acceptance == pytest.approx(alpha, abs=1e-10)
    # the sampler's mixture reproduces the target law and is a probability vector over orders
    if sampling not in ("greedy", "hub", "topk"):
        mix = priority_mixture(p, q, n, sampling)
        assert np.all(mix.weights >= 0) and mix.weights.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.count_nonzero(mix.weights > 1e-12) <= np.count_nonzero(np.atleast_2d(q).sum(axis=0) > 0) + 1
        np.testing.assert_allclose(mix.law, law.law, rtol=0, atol=1e-10)
        for order in mix.orders:
            assert sorted(order.tolist()) == list(range(V))


@pytest.mark.parametrize("sampling", ["iid", "without_replacement"])
@settings(max_examples=40)
@given(data=hst.data())
def test_threshold_law_with_ties_in_the_ratio(sampling, data):
    # p/q takes two or three values only: large tie classes at the threshold
    V = data.draw(hst.integers(3, 8))
    q = data.draw(distributions(V))
    levels = np.array(data.draw(hst.lists(hst.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=V, max_size=V)))
    p = q * levels
    if p.sum() <= 0:
        p = q.copy()
    p = p / p.sum()
    n = data.draw(hst.integers(2, 4))
    law = optimal_selection_law(p, q, n, sampling)
    _check_base(law.law, q, n, sampling, V)
    assert law.acceptance == pytest.approx(st.optimal_acceptance(p, q, n, sampling, method="brute"), abs=1e-10)


@pytest.mark.parametrize("sampling", ["iid", "without_replacement"])
def test_threshold_law_at_V_10_against_every_subset(sampling):
    rng = np.random.default_rng(3)
    for n in (2, 3, 4):
        p = rng.dirichlet(np.full(10, 0.3))
        q = rng.dirichlet(np.full(10, 0.3))
        law = optimal_selection_law(p, q, n, sampling)
        _check_base(law.law, q, n, sampling, 10)
        assert law.acceptance == pytest.approx(st.optimal_acceptance(p, q, n, sampling, method="brute"), abs=1e-10)


def test_threshold_law_at_full_vocabulary_is_optimal():
    # V = 50k: the threshold law reaches α* of the public bound; spot-check containment on prefixes
    rng = np.random.default_rng(8)
    V = 50_000
    p = rng.dirichlet(np.full(V, 0.05))
    q = rng.dirichlet(np.full(V, 0.05))
    for sampling in ("iid", "without_replacement"):
        law = optimal_selection_law(p, q, 4, sampling)
        assert law.acceptance == pytest.approx(st.optimal_acceptance(p, q, 4, sampling), abs=1e-9)
        assert law.law.sum() == pytest.approx(1.0, abs=1e-12) and np.all(law.law >= 0)
        assert np.all(law.law[law.first] <= p[law.first] + 1e-15)
        assert np.all(law.law[~law.first] >= p[~law.first] - 1e-15)


@pytest.mark.parametrize("sampling", ["greedy", "hub"])
def test_fixed_set_verifier_monte_carlo_at_V_1000(sampling):
    rng = np.random.default_rng(21)
    V = 1000
    p = rng.dirichlet(np.full(V, 0.05))
    q = rng.dirichlet(np.full(V, 0.05))
    n = 2 if sampling == "hub" else 4
    v = st.verifier("optimal", sampling=sampling, construction="priority")
    draws = np.random.default_rng(4)
    trials = 3000
    acc = 0
    counts = np.zeros(V)
    for _ in range(trials):
        d = v.draft(q, n, draws)
        y, a = v.verify(p, q, d, draws)
        acc += a
        counts[y] += 1
    alpha = st.optimal_acceptance(p, q, n, sampling)
    assert abs(acc / trials - alpha) <= 5 * np.sqrt(alpha * (1 - alpha) / trials) + 1e-12
    top = np.argsort(-p)[:10]
    frac, mass = counts[top].sum() / trials, p[top].sum()
    assert abs(frac - mass) <= 5 * np.sqrt(mass * (1 - mass) / trials)


@pytest.mark.parametrize("sampling", ["iid", "without_replacement"])
def test_mixture_verifier_monte_carlo_at_V_1000(sampling):
    # a draft supported on 8 tokens of a 1000-token vocabulary: the mixture lives on the support
    rng = np.random.default_rng(5)
    V = 1000
    p = rng.dirichlet(np.full(V, 0.05))
    q = np.zeros(V)
    q[np.argsort(-p)[:8]] = rng.dirichlet(np.ones(8))
    v = st.verifier("optimal", sampling=sampling, construction="priority")
    draws = np.random.default_rng(6)
    trials = 3000
    acc = sum(v.verify(p, q, v.draft(q, 3, draws), draws)[1] for _ in range(trials))
    alpha = st.optimal_acceptance(p, q, 3, sampling)
    assert abs(acc / trials - alpha) <= 5 * np.sqrt(alpha * (1 - alpha) / trials) + 1e-12


def test_single_order_highest_ratio_first_is_not_enough():
    # the mixture is needed: here the single priority order "highest p/q first" stays below α*
    p = np.array([0.4, 0.35, 0.25])
    q = np.array([0.3, 0.3, 0.4])
    mix = priority_mixture(p, q, 3, "iid")
    assert len(mix.weights) >= 2
    single = priority_mixture(p, q, 1, "iid")  # n = 1: r = q, one order suffices
    assert len(single.weights) == 1
    ratio_first = np.argsort(-p / q)
    F = {}
    law = np.zeros(3)
    prev = 0.0
    for k in range(1, 4):
        H = np.setdiff1d(np.arange(3), ratio_first[:k])
        Fk = 1.0 - q[H].sum() ** 3
        law[ratio_first[k - 1]] = Fk - prev
        prev = Fk
    assert np.minimum(p, law).sum() < mix.acceptance - 1e-3


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: st.verifier("optimal", sampling="iid", construction="priority").verify(
                np.full(20, 0.05), np.full(20, 0.05), [0, 1], rng=0
            ),
            "construction='plan'",
        ),
        (
            lambda: st.verifier("optimal", sampling="without_replacement", construction="priority").verify(
                [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [1, 1], rng=0
            ),
            "repeated",
        ),
        (
            lambda: st.verifier("optimal", sampling="iid", construction="priority").verify(
                [0.5, 0.3, 0.2], [0.5, 0.5, 0.0], [2, 0], rng=0
            ),
            "q = 0",
        ),
        (
            lambda: st.verifier("optimal", sampling="greedy", construction="priority").verify(
                [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0, 1], rng=0
            ),
            "impossible",
        ),
        (
            lambda: st.verifier("optimal", sampling="hub", construction="priority").verify(
                [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0, 1], rng=0
            ),
            "impossible",
        ),
        (lambda: optimal_selection_law(np.full(20, 0.05), np.full((2, 20), 0.05), 2, "independent"), "V <= 12"),
        (lambda: optimal_selection_law([0.5, 0.5], [0.5, 0.5], 3, "hub"), "n = 2"),
        (lambda: priority_mixture(np.full(20, 0.05), np.full(20, 0.05), 2, "iid"), "at most 12"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_orders_rank_every_token_and_select_a_draft():
    p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    v = st.verifier("optimal", sampling="iid", construction="priority")
    for d in itertools.product(range(3), repeat=2):
        token, accepted = v.verify(p, q, list(d), rng=1)
        assert 0 <= token < 3 and accepted == (token in d)


@pytest.mark.parametrize("sampling", ["iid", "without_replacement"])
@settings(max_examples=40)
@given(data=hst.data())
def test_containment_table_without_the_tuple_law(sampling, data):
    # iid: q(H)^n; without replacement: the subset DP over the first draws. Truth: the tuple law.
    from spectheory.solvers import containment_table

    V = data.draw(hst.integers(1, 6))
    q = data.draw(distributions(V))
    n = data.draw(hst.integers(1, V + 2))  # n beyond the support too
    np.testing.assert_allclose(containment_table(q, n, sampling), _brute_containment(q, n, sampling, V),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampling", ["iid", "without_replacement"])
def test_mixture_for_eight_drafts_on_a_12_token_support(sampling):
    # 12^8 (iid) and 12!/4! (without replacement) ordered tuples: beyond the exact tuple law
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.full(40, 0.3))
    q = np.zeros(40)
    q[rng.choice(40, 12, replace=False)] = rng.dirichlet(np.full(12, 0.5))
    m = priority_mixture(p, q, 8, sampling)
    assert m.acceptance == pytest.approx(st.optimal_acceptance(p, q, 8, sampling), abs=1e-9)
    # V + 1 = 13 orders in exact arithmetic; with C(H) = q(H)^8 near 0 rounding adds a few light ones
    assert len(m.weights) <= 4 * 12 + 4 and m.weights.min() > 0 and m.weights.sum() == pytest.approx(1.0, abs=1e-12)
    v = st.verifier("optimal", sampling=sampling, construction="priority")
    token, _ = v.verify(p, q, v.draft(q, 8, rng), rng)
    assert p[token] > 0  # never a token the target cannot produce


@settings(max_examples=80)
@given(hst.integers(8, 200), hst.integers(1, 12), hst.integers(0, 2**32 - 1))
def test_greedy_deterministic_part_is_the_stable_sort_prefix(V, k, seed):
    # the O(V) partition against the stable sort, with many ties (masses on a coarse grid)
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 4, V).astype(float)
    q[0] += 1.0
    q /= q.sum()
    got = st.get_scheme("greedy").deterministic_part(q, k)
    np.testing.assert_array_equal(got, np.argsort(-q, kind="stable")[: k - 1])
