"""Interval bounds from top-k log-probabilities (spectheory.optimal_acceptance_interval).

Independent truths: the brute-force subset dual (all 2^V subsets) of sampled and enumerated
completions; the vertices of the completion polytope (the minimum of the concave α*_iid); the
closed form of max Σ min(p, q) over completions for n = 1 (greedy matching of the tails).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import spectheory as st
from spectheory.solvers import subset_dual_brute
from spectheory.testing import distribution_pairs

TOL = 1e-9


def alpha(p, q, n, sampling="iid"):
    return subset_dual_brute(p, q, n, sampling).acceptance


def _instance(rng, V):
    """A random pair and what a top-k API shows of it (ids in decreasing probability, or random)."""
    p = rng.dirichlet(np.full(V, rng.choice([0.2, 0.5, 2.0])))
    q = rng.dirichlet(np.full(V, rng.choice([0.2, 0.5, 2.0])))
    kp, kq = int(rng.integers(1, V + 1)), int(rng.integers(1, V + 1))
    A = np.argsort(-p, kind="stable")[:kp]
    B = np.argsort(-q, kind="stable")[:kq] if rng.random() < 0.7 else rng.permutation(V)[:kq]
    return p, q, A, B


def _completions(p, q, A, B, V, rng, m):
    """m random completions: the tails spread by Dirichlet draws of varied concentration, plus vertices."""
    restA = np.setdiff1d(np.arange(V), A)
    restB = np.setdiff1d(np.arange(V), B)
    tp, tq = max(1.0 - p[A].sum(), 0.0), max(1.0 - q[B].sum(), 0.0)
    base_p = np.zeros(V)
    base_q = np.zeros(V)
    base_p[A] = p[A]
    base_q[B] = q[B]
    out = []
    for _ in range(m):
        pp, qq = base_p.copy(), base_q.copy()
        if restA.size:
            pp[restA] += tp * rng.dirichlet(np.full(restA.size, rng.choice([0.05, 0.3, 1.0, 5.0])))
        if restB.size:
            qq[restB] += tq * rng.dirichlet(np.full(restB.size, rng.choice([0.05, 0.3, 1.0, 5.0])))
        out.append((pp, qq))
    return out


def _vertices(p, q, A, B, V):
    """Every vertex of the completion polytope: each tail entirely on one token outside its known set."""
    restA = np.setdiff1d(np.arange(V), A) if len(A) < V else np.array([A[0]])
    restB = np.setdiff1d(np.arange(V), B) if len(B) < V else np.array([B[0]])
    tp, tq = max(1.0 - p[A].sum(), 0.0), max(1.0 - q[B].sum(), 0.0)
    for i, j in itertools.product(restA, restB):
        pp = np.zeros(V)
        qq = np.zeros(V)
        pp[A] = p[A]
        qq[B] = q[B]
        if len(A) < V:
            pp[i] += tp
        if len(B) < V:
            qq[j] += tq
        yield pp, qq


def _interval(p, q, A, B, V, n, **kw):
    with np.errstate(divide="ignore"):
        return st.optimal_acceptance_interval(A, np.log(p[A]), B, np.log(q[B]), n, vocab_size=V, **kw)


def _check_witness(w, p, q, A, B, V):
    wp, wq = w
    assert wp.shape == (V,) and wq.shape == (V,)
    assert wp.min() >= 0 and wq.min() >= 0
    assert abs(wp.sum() - 1) < 1e-12 and abs(wq.sum() - 1) < 1e-12
    np.testing.assert_allclose(wp[A], p[A], rtol=1e-12, atol=0)
    np.testing.assert_allclose(wq[B], q[B], rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_iid_interval_contains_every_completion_and_witnesses_attain(seed):
    rng = np.random.default_rng(seed)
    for _ in range(12):
        V = int(rng.integers(2, 7))
        n = int(rng.integers(1, 5))
        p, q, A, B = _instance(rng, V)
        r = _interval(p, q, A, B, V, n)
        assert 0.0 <= r.lower <= r.upper <= 1.0
        vals = [alpha(a, b, n) for a, b in _completions(p, q, A, B, V, rng, 25)]
        verts = [alpha(a, b, n) for a, b in _vertices(p, q, A, B, V)]
        assert min(vals + verts) >= r.lower - TOL
        assert max(vals + verts) <= r.upper + TOL
        # the least α*_iid sits at a vertex (concavity): the lower end is exact
        assert r.lower_tight
        assert abs(min(verts) - r.lower) < TOL
        for w, end, tight in ((r.lower_witness, r.lower, r.lower_tight),
                              (r.upper_witness, r.upper, r.upper_tight)):
            _check_witness(w, p, q, A, B, V)
            v = alpha(*w, n)
            assert v >= r.lower - TOL and v <= r.upper + TOL
            if tight:
                assert abs(v - end) < TOL
        assert abs(alpha(*r.lower_witness, n) - r.lower_value) < TOL
        assert abs(alpha(*r.upper_witness, n) - r.upper_value) < TOL


def _n1_upper_closed_form(p, q, A, B, V):
    """max over completions of Σ min(p, q): match each tail greedily against the other side's known mass."""
    A, B = set(A.tolist()), set(B.tolist())
    both = sorted(A & B)
    fixed = sum(min(p[i], q[i]) for i in both)
    pAB = sum(p[i] for i in A - B)  # p known, q free
    qBA = sum(q[i] for i in B - A)  # q known, p free
    tp, tq = max(1.0 - sum(p[i] for i in A), 0.0), max(1.0 - sum(q[i] for i in B), 0.0)
    free = V - len(A | B)
    rest = min(max(tp - qBA, 0.0), max(tq - pAB, 0.0)) if free > 0 else 0.0
    return fixed + min(tq, pAB) + min(tp, qBA) + rest


def test_n1_upper_is_the_matching_closed_form():
    rng = np.random.default_rng(11)
    for _ in range(40):
        V = int(rng.integers(2, 9))
        p, q, A, B = _instance(rng, V)
        r = _interval(p, q, A, B, V, 1)
        truth = _n1_upper_closed_form(p, q, A, B, V)
        assert r.upper >= truth - TOL  # valid
        if r.upper_tight:
            assert abs(r.upper - truth) < TOL
        # the verifier 'sd' (one draft) has the same interval
        s = _interval(p, q, A, B, V, 1, verifier="sd")
        assert abs(s.lower - r.lower) < TOL and abs(s.upper - r.upper) < TOL


def test_grid_of_completions_small_vocabulary():
    """Every completion on a grid of the tails (V = 4, two unknown tokens a side) lies inside."""
    rng = np.random.default_rng(5)
    grid = np.linspace(0.0, 1.0, 9)
    for _ in range(6):
        V = 4
        p = rng.dirichlet(np.ones(V))
        q = rng.dirichlet(np.ones(V))
        A = np.array([0, 1])
        B = np.array([1, 2]) if rng.random() < 0.5 else np.array([0, 1])
        n = int(rng.integers(1, 4))
        r = _interval(p, q, A, B, V, n)
        restA, restB = np.setdiff1d(np.arange(V), A), np.setdiff1d(np.arange(V), B)
        tp, tq = 1 - p[A].sum(), 1 - q[B].sum()
        vals = []
        for a, b in itertools.product(grid, grid):
            pp, qq = np.zeros(V), np.zeros(V)
            pp[A], qq[B] = p[A], q[B]
            pp[restA] += tp * np.array([a, 1 - a])
            qq[restB] += tq * np.array([b, 1 - b])
            vals.append(alpha(pp, qq, n))
        assert min(vals) >= r.lower - TOL and max(vals) <= r.upper + TOL
        assert abs(min(vals) - r.lower) < TOL  # the grid holds the vertices
        if r.upper_tight:
            assert max(vals) <= r.upper + TOL


@settings(max_examples=40, deadline=None)
@given(pair=distribution_pairs(min_V=1, max_V=6), n=hst.integers(1, 4), data=hst.data())
def test_iid_nasty_distributions(pair, n, data):
    p, q = pair
    V = p.size
    kp = data.draw(hst.integers(1, V))
    kq = data.draw(hst.integers(1, V))
    A = np.array(data.draw(hst.permutations(range(V))))[:kp]
    B = np.array(data.draw(hst.permutations(range(V))))[:kq]
    r = _interval(p, q, A, B, V, n)
    rng = np.random.default_rng(0)
    vals = [alpha(a, b, n) for a, b in _completions(p, q, A, B, V, rng, 8)]
    vals += [alpha(a, b, n) for a, b in _vertices(p, q, A, B, V)]
    assert min(vals) >= r.lower - TOL and max(vals) <= r.upper + TOL
    _check_witness(r.lower_witness, p, q, A, B, V)
    _check_witness(r.upper_witness, p, q, A, B, V)
    if r.upper_tight:
        assert abs(alpha(*r.upper_witness, n) - r.upper) < TOL


@pytest.mark.parametrize("sampling", ["iid", "without_replacement"])
def test_full_knowledge_collapses_to_the_exact_value(sampling):
    rng = np.random.default_rng(2)
    for V in (1, 2, 5, 40):
        p = rng.dirichlet(np.ones(V))
        q = rng.dirichlet(np.ones(V))
        ids = rng.permutation(V)
        for n in (1, 3):
            r = st.optimal_acceptance_interval(ids, np.log(p[ids]), ids[::-1], np.log(q[ids[::-1]]), n,
                                               sampling=sampling, vocab_size=V)
            exact = st.optimal_acceptance(p, q, n, sampling)
            assert abs(r.lower - exact) < 1e-9 and abs(r.upper - exact) < 1e-9
            assert r.tight


def test_interval_shrinks_as_k_grows():
    rng = np.random.default_rng(3)
    V = 12
    for _ in range(6):
        p = rng.dirichlet(np.full(V, 0.5))
        q = rng.dirichlet(np.full(V, 0.5))
        A_all, B_all = np.argsort(-p), np.argsort(-q)
        n = int(rng.integers(1, 5))
        prev = None
        for k in (1, 2, 4, 8, 11, 12):
            r = _interval(p, q, A_all[:k], B_all[:k], V, n)
            exact = st.optimal_acceptance(p, q, n)
            assert r.lower - TOL <= exact <= r.upper + TOL
            if prev is not None:
                assert r.lower >= prev.lower - TOL  # exact ends over nested completion sets
                if r.upper_tight and prev.upper_tight:
                    assert r.upper <= prev.upper + TOL
            prev = r
        assert abs(prev.lower - exact) < 1e-9 and abs(prev.upper - exact) < 1e-9


def test_batch_equals_rows_and_padding():
    rng = np.random.default_rng(4)
    V, Bn, k = 30, 7, 5
    P = rng.dirichlet(np.full(V, 0.3), size=Bn)
    Q = rng.dirichlet(np.full(V, 0.3), size=Bn)
    pid = np.argsort(-P, axis=1)[:, :k]
    qid = np.argsort(-Q, axis=1)[:, :k]
    plp = np.log(np.take_along_axis(P, pid, 1))
    qlp = np.log(np.take_along_axis(Q, qid, 1))
    pid[2, 3:] = -1  # ragged: position 2 knows only 3 target tokens
    r = st.optimal_acceptance_interval(pid, plp, qid, qlp, 3, vocab_size=V)
    assert r.lower.shape == (Bn,) and r.upper.shape == (Bn,) and r.tight.shape == (Bn,)
    lw_p, lw_q = r.lower_witness
    assert lw_p.shape == (Bn, V)
    for b in range(Bn):
        keep = pid[b] >= 0
        one = st.optimal_acceptance_interval(pid[b][keep], plp[b][keep], qid[b], qlp[b], 3, vocab_size=V)
        assert abs(one.lower - r.lower[b]) < 1e-12 and abs(one.upper - r.upper[b]) < 1e-12
        assert bool(one.tight) == bool(r.tight[b])
        exact = st.optimal_acceptance(P[b], Q[b], 3)
        assert r.lower[b] - TOL <= exact <= r.upper[b] + TOL
        np.testing.assert_allclose(st.optimal_acceptance(lw_p[b], lw_q[b], 3), r.lower_value[b], atol=1e-12)


def test_tails_given_explicitly():
    lp = np.log([0.5, 0.3])
    r0 = st.optimal_acceptance_interval([0, 1], lp, [0, 1], lp, 2, vocab_size=10)
    r1 = st.optimal_acceptance_interval([0, 1], lp, [0, 1], lp, 2, vocab_size=10, p_tail=0.2, q_tail=0.2)
    assert (r0.lower, r0.upper) == (r1.lower, r1.upper)
    with pytest.raises(ValueError, match="p_tail"):
        st.optimal_acceptance_interval([0, 1], lp, [0, 1], lp, 2, vocab_size=10, p_tail=0.5)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(p_logprobs=[0.1, -1.0]), "p_logprobs"),  # log-prob above 0
        (dict(q_logprobs=np.log([0.7, 0.6])), "q_logprobs"),  # known mass above 1
        (dict(p_ids=[3, 3]), "p_ids"),  # duplicate ids
        (dict(q_ids=[0, 10]), "q_ids"),  # id >= V
        (dict(p_ids=[], p_logprobs=[]), "p_ids"),  # k = 0
        (dict(q_ids=[[0, 1], [1, 2]], q_logprobs=np.log([[0.5, 0.2], [0.5, 0.2]])), "q_ids"),  # positions
        (dict(p_ids=[[0, 1]] * 2, p_logprobs=np.log([[0.5, 0.2]] * 2),
              q_ids=[[0, 1]] * 3, q_logprobs=np.log([[0.5, 0.2]] * 3)), "p_ids"),  # 2 vs 3 positions
        (dict(vocab_size=None), "vocab_size"),
        (dict(n=0), "n"),
        (dict(sampling="bogus"), "sampling"),
        (dict(verifier="bogus"), "verifier"),
        (dict(p_ids=[0.5, 1]), "p_ids"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    args = dict(p_ids=[0, 1], p_logprobs=np.log([0.5, 0.2]), q_ids=[0, 1], q_logprobs=np.log([0.5, 0.2]),
                n=2, vocab_size=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        st.optimal_acceptance_interval(**args)


@pytest.mark.parametrize("sampling", ["without_replacement", "greedy", "hub"])
def test_other_schemes_are_valid(sampling):
    """Every completion's α* of the scheme lies inside; tight ends are attained by their witnesses."""
    rng = np.random.default_rng(7)
    for _ in range(10):
        V = int(rng.integers(2, 6))
        n = 2 if sampling == "hub" else int(rng.integers(1, 4))
        p, q, A, B = _instance(rng, V)
        r = _interval(p, q, A, B, V, n, sampling=sampling)
        vals = [alpha(a, b, n, sampling) for a, b in _completions(p, q, A, B, V, rng, 15)]
        vals += [alpha(a, b, n, sampling) for a, b in _vertices(p, q, A, B, V)]
        assert min(vals) >= r.lower - TOL and max(vals) <= r.upper + TOL
        for w, end, tight in ((r.lower_witness, r.lower, r.lower_tight),
                              (r.upper_witness, r.upper, r.upper_tight)):
            _check_witness(w, p, q, A, B, V)
            if tight:
                assert abs(alpha(*w, n, sampling) - end) < TOL
