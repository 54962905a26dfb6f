"""Draft schemes: exact tuple laws, containment closed forms, and the samplers' laws."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hst

import spectheory as st
from spectheory.testing import distributions, independent_drafters

SINGLE = ["iid", "without_replacement", "greedy", "hub"]


def _all_subsets(V):
    return [((m >> np.arange(V)) & 1).astype(bool) for m in range(1 << V)]


@given(hst.integers(1, 5), hst.integers(1, 4), hst.sampled_from(SINGLE), hst.data())
def test_containment_closed_forms_equal_tuple_enumeration(V, n, sampling, data):
    q = data.draw(distributions(V))
    n = 2 if sampling == "hub" else n
    scheme = st.get_scheme(sampling)
    law = scheme.tuple_law(q, n)
    assert law.probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert law.tuples.shape[1] == scheme.effective_n(q, n)
    if scheme.distinct:  # distinct tokens in every tuple
        assert all(len(set(t)) == len(t) for t in law.tuples.tolist())
    for H in _all_subsets(V):
        enumerated = law.probs[np.all(H[law.tuples], axis=1)].sum()
        assert scheme.containment(q, n, H) == pytest.approx(enumerated, abs=1e-12)


@given(hst.integers(1, 4), hst.integers(1, 3), hst.data())
def test_independent_containment(V, n, data):
    q = data.draw(independent_drafters(V, n))
    scheme = st.get_scheme("independent")
    law = scheme.tuple_law(q, n)
    for H in _all_subsets(V):
        assert scheme.containment(q, n, H) == pytest.approx(law.probs[np.all(H[law.tuples], 1)].sum(), abs=1e-12)


def test_without_replacement_law_is_successive_sampling():
    q = np.array([0.5, 0.3, 0.2])
    law = st.get_scheme("without_replacement").tuple_law(q, 2)
    got = dict(zip(map(tuple, law.tuples.tolist()), law.probs))
    assert got[(0, 1)] == pytest.approx(0.5 * 0.3 / 0.5)
    assert got[(2, 0)] == pytest.approx(0.2 * 0.5 / 0.8)


def test_greedy_and_hub_laws():
    q = np.array([0.1, 0.6, 0.3])
    g = st.get_scheme("greedy").tuple_law(q, 2)
    assert g.tuples.tolist() == [[1, 0], [1, 2]]
    np.testing.assert_allclose(g.probs, [0.25, 0.75])
    h = dict(zip(map(tuple, st.get_scheme("hub").tuple_law(q, 2).tuples.tolist()), st.get_scheme("hub").tuple_law(q, 2).probs))
    assert h[(0, 1)] == pytest.approx(0.1) and h[(2, 1)] == pytest.approx(0.3)
    assert h[(1, 0)] == pytest.approx(0.6 * 0.1 / 0.4) and h[(1, 2)] == pytest.approx(0.6 * 0.3 / 0.4)


@pytest.mark.parametrize("sampling", SINGLE + ["independent"])
def test_sampler_law_matches_exact_law(sampling):
    """Frequencies of 40k seeded draws are within 5 standard errors of the exact tuple law."""
    rng = np.random.default_rng(12345)
    n = 2 if sampling == "hub" else 3
    if sampling == "independent":
        q = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    else:
        q = np.array([0.4, 0.3, 0.2, 0.1])
    scheme = st.get_scheme(sampling)
    law = scheme.tuple_law(q, n)
    exact = dict(zip(map(tuple, law.tuples.tolist()), law.probs))
    trials = 40_000
    counts = {}
    for _ in range(trials):
        t = tuple(int(x) for x in scheme.sample(q, n, rng))
        counts[t] = counts.get(t, 0) + 1
    assert set(counts) <= set(exact), "sampled a tuple of probability zero"
    for t, prob in exact.items():
        se = np.sqrt(prob * (1 - prob) / trials)
        assert abs(counts.get(t, 0) / trials - prob) <= 5 * se + 1e-12


def test_samples_are_reproducible_and_in_range():
    q = np.random.default_rng(0).dirichlet(np.ones(50))
    for sampling in SINGLE:
        n = 2 if sampling == "hub" else 5
        a = st.get_scheme(sampling).sample(q, n, np.random.default_rng(7))
        b = st.get_scheme(sampling).sample(q, n, np.random.default_rng(7))
        assert np.array_equal(a, b) and a.min() >= 0 and a.max() < 50


def test_distinct_schemes_stop_at_the_support():
    q = np.array([0.0, 0.7, 0.3, 0.0])
    for sampling in ("without_replacement", "greedy"):
        s = st.get_scheme(sampling).sample(q, 6, np.random.default_rng(0))
        assert sorted(s.tolist()) == [1, 2]
    assert st.get_scheme("hub").sample([0, 1.0, 0], 2, 0).tolist() == [1]


def test_scheme_errors():
    with pytest.raises(ValueError, match="sampling"):
        st.get_scheme("beam")
    with pytest.raises(ValueError, match="n = 2"):
        st.get_scheme("hub").tuple_law([0.5, 0.5], 3)
    with pytest.raises(ValueError, match="drafter rows"):
        st.get_scheme("independent").sample(np.full((2, 3), 1 / 3), 3, 0)
    with pytest.raises(ValueError, match="tuples"):
        st.get_scheme("iid").tuple_law(np.full(100, 0.01), 4)
    with pytest.raises(ValueError, match="rng"):
        st.get_scheme("iid").sample([0.5, 0.5], 2, rng="seed")
