"""Hypothesis strategies for target/draft pairs, including the nasty cases.

Used by the package's own tests and available to users testing code built on spectheory::

    from hypothesis import given
    from spectheory.testing import distribution_pairs

    @given(distribution_pairs(max_V=6))
    def test_something(pair):
        p, q = pair
        ...

Generated cases cover: Dirichlet-like draws of varied concentration, one-hot vectors, uniform
vectors, exact zeros (so q = 0 where p > 0 and disjoint supports), tiny masses down to 1e-300,
p = q, and vocabularies of size 1 and 2.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

_TINY = st.sampled_from([1e-300, 1e-200, 1e-30, 1e-16, 1e-12, 1e-8])


@st.composite
def distributions(draw, V: int) -> np.ndarray:
    """A probability vector of length V, from a mix of shapes including degenerate ones."""
    kind = draw(st.sampled_from(["weights", "weights", "weights", "one_hot", "uniform", "tiny", "sparse"]))
    if kind == "one_hot":
        x = np.zeros(V)
        x[draw(st.integers(0, V - 1))] = 1.0
        return x
    if kind == "uniform":
        return np.full(V, 1.0 / V)
    w = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=V, max_size=V)))
    if kind == "tiny":
        idx = draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=V))
        for i in idx:
            w[i] = draw(_TINY)
    elif kind == "sparse":
        zero = draw(st.lists(st.booleans(), min_size=V, max_size=V))
        w = np.where(zero, 0.0, w)
    if w.sum() <= 0:
        w = np.zeros(V)
        w[draw(st.integers(0, V - 1))] = 1.0
    return w / w.sum()


@st.composite
def distribution_pairs(draw, min_V: int = 1, max_V: int = 6):
    """(p, q) of a common length V in [min_V, max_V] with a chosen relation between them."""
    V = draw(st.integers(min_V, max_V))
    relation = draw(st.sampled_from(["independent", "independent", "equal", "disjoint", "perturbed"]))
    p = draw(distributions(V))
    if relation == "equal":
        return p, p.copy()
    if relation == "disjoint" and V >= 2:
        cut = draw(st.integers(1, V - 1))
        perm = np.array(draw(st.permutations(range(V))))
        a, b = perm[:cut], perm[cut:]
        p = np.zeros(V)
        q = np.zeros(V)
        p[a] = draw(distributions(len(a)))
        q[b] = draw(distributions(len(b)))
        return p, q
    q = draw(distributions(V))
    if relation == "perturbed":
        mix = draw(st.floats(0.0, 1.0))
        q = mix * p + (1 - mix) * q
        q = q / q.sum()
    return p, q


@st.composite
def independent_drafters(draw, V: int, n: int) -> np.ndarray:
    """q of shape (n, V): one draft distribution per drafter."""
    return np.stack([draw(distributions(V)) for _ in range(n)])
