"""The exponential-race quadrature for drafts without replacement against exact enumeration."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hst

import spectheory as st
from spectheory.solvers import wor_containment, wor_containment_prefixes
from spectheory.testing import distributions

QUAD_TOL = 1e-10


@given(hst.integers(1, 8), hst.integers(1, 6), hst.data())
def test_quadrature_equals_enumeration_along_any_order(V, n, data):
    q = data.draw(distributions(V))
    order = np.array(data.draw(hst.permutations(range(V))))
    scheme = st.get_scheme("without_replacement")
    law = scheme.tuple_law(q, n)
    got = wor_containment_prefixes(q, n, order)
    for i in range(V + 1):
        H = np.zeros(V, dtype=bool)
        H[order[:i]] = True
        exact = law.probs[np.all(H[law.tuples], axis=1)].sum()
        assert abs(got[i] - exact) <= QUAD_TOL


def test_extreme_masses_are_resolved():
    """s = 1e-300 and subnormal masses: nodes beyond float64's t range are handled in log space."""
    scheme = st.get_scheme("without_replacement")
    for q in ([1.0, 1e-300, 1e-300], [1.0, 5e-324, 1e-320, 1e-310], [0.5, 0.5 - 1e-17, 1e-17, 1e-200]):
        q = np.array(q) / np.sum(q)
        for n in (2, 3):
            for H in ([0, 1], [0, 1, 2], [1, 2]):
                if max(H) >= len(q):
                    continue
                assert wor_containment(q, n, H) == pytest.approx(scheme.containment(q, n, H), abs=QUAD_TOL)


def test_large_vocabulary_against_monte_carlo():
    """V = 500, n = 4: the quadrature agrees with 100k Gumbel-top-n samples within 5 standard errors."""
    rng = np.random.default_rng(2024)
    V = 500
    q = rng.dirichlet(np.full(V, 0.2))
    H = np.argsort(q)[: V - 6]  # all but the 6 most likely tokens
    c = wor_containment(q, 4, H)
    mask = np.zeros(V, dtype=bool)
    mask[H] = True
    trials, hits = 0, 0
    for _ in range(10):
        keys = np.log(q)[None, :] + rng.gumbel(size=(10_000, V))
        top = np.argpartition(-keys, 3, axis=1)[:, :4]
        hits += int(np.all(mask[top], axis=1).sum())
        trials += 10_000
    est = hits / trials
    se = np.sqrt(c * (1 - c) / trials)
    assert abs(est - c) <= 5 * se


def test_order_must_be_a_permutation():
    with pytest.raises(ValueError, match="permutation"):
        wor_containment_prefixes([0.5, 0.5], 2, [0, 0])
