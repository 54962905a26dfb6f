"""The one batched implementation of the verifiers' acceptance (spectheory.verifiers.batched).

* NumPy = torch (float64, 1e-12) for every quantity, over the nasty pairs of spectheory.testing;
* rrs_wor: the same number from every entry point (st.acceptance, st.verifier(...).acceptance_detail,
  st.compare, the replay of logits, batched.rrs_wor with all n at once) for the same seed;
* the confident-draft collapse of the rrs_wor estimate (hostile-inputs issue) against the exhaustive
  enumeration of the sampler's rule;
* torch input to the public API: bf16 and requires_grad accepted, bad shapes named.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hst

import spectheory as st
from spectheory.testing import distribution_pairs
from spectheory.verifiers import batched as bt
from spectheory.verifiers.exact_law import exact_output_law

torch = pytest.importorskip("torch")

TOL = 1e-12


def _confident_pair():
    """The hostile-inputs case: a draft sure of token 0 (1 − 1e-12), a target sure of token 2."""
    q = np.array([1.0, 1e-12, 1e-12**1.4, 1e-12**1.7])
    return np.array([0.005, 0.005, 0.985, 0.005]), q / q.sum()


# --------------------------------------------------------------------------------------------
# NumPy = torch
# --------------------------------------------------------------------------------------------
def _all(p, q, ns, **kw):
    """Every batched quantity on rows (p, q) of one backend, as float64 NumPy arrays."""
    sr = bt.sort_by_ratio(p, q)
    to = bt.namespace(p).to_numpy
    wor = bt.rrs_wor(p, q, ns, sr=sr, **kw)
    return {
        "sd": to(bt.sd(p, q)),
        "rrs": to(bt.rrs(sr, ns)),
        "kseq": to(bt.kseq(sr, ns)),
        "kseq_rho": to(bt.kseq_rho(sr, ns)[0]),
        "spechub": to(bt.spechub(p, q)),
        "rrs_wor_two": to(bt.rrs_wor_two(p, q, sr)),
        "rrs_wor": to(wor.value),
        "rrs_wor_stderr": to(wor.stderr),
    }


@given(distribution_pairs(max_V=7), hst.integers(1, 3), hst.booleans())
def test_numpy_equals_torch(pair, B, estimate):
    """Rows of nasty pairs (one-hot, disjoint, p = q, masses to 1e-300, V = 1, 2, n beyond the
    support), with rrs_wor either exact (recursion) or forced onto the keyed estimate."""
    p, q = pair
    P = np.stack([p, np.roll(p, 1), q][:B])
    Q = np.stack([q, q, p][:B])
    ns = (1, 2, 3, 5, 9)
    kw = dict(paths=8, seed=5, max_histories=0 if estimate else bt.MAX_HISTORIES)
    a = _all(P, Q, ns, **kw)
    b = _all(torch.from_numpy(P), torch.from_numpy(Q), ns, **kw)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=TOL, err_msg=key)
        assert np.all(np.isfinite(a[key])), key


def test_numpy_equals_torch_large_vocabulary():
    """The estimate's inverse CDF over 2,000 tokens: the same histories on both backends."""
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.full(2000, 0.1), 4)
    Q = rng.dirichlet(np.full(2000, 0.1), 4)
    Q[0] = 0.0
    Q[0, :3] = (1 - 2e-9, 1e-9, 1e-9)
    ns = (1, 2, 3, 6)
    a = _all(P, Q, ns, paths=32, seed=1)
    b = _all(torch.from_numpy(P), torch.from_numpy(Q), ns, paths=32, seed=1)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=TOL, err_msg=key)


# --------------------------------------------------------------------------------------------
# rrs_wor: one number for every entry point
# --------------------------------------------------------------------------------------------
def _estimate_rows(B=5, V=700, seed=8):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(V, 0.2), B)
    Q = rng.dirichlet(np.full(V, 0.2), B)
    Q[1] = 0.5 * Q[1] + 0.5 * P[1]
    Q[2] = np.full(V, 1e-13)
    Q[2, 7] = 1.0  # confident draft
    Q /= Q.sum(axis=1, keepdims=True)
    return P, Q


def test_rrs_wor_same_number_from_every_entry_point():
    P, Q = _estimate_rows()
    ns = (1, 2, 3, 4, 6)
    assert bt.history_count(int(np.count_nonzero(Q[0])), 3) > bt.MAX_HISTORIES  # the estimate is used
    all_n = bt.rrs_wor(P, Q, ns)
    from spectheory.simulations.replay import replay

    rep = replay(np.log(P), np.log(Q), n=ns, samplings=["iid"], verifiers=["rrs_wor"], device="cpu")
    rows = {r.n: r for r in st.compare(P, Q, ns, verifiers=["rrs_wor"])}
    for j, n in enumerate(ns):
        det = st.verifier("rrs_wor").acceptance_detail(P, Q, n)
        one = bt.rrs_wor(P, Q, (n,))
        acc = st.acceptance(P, Q, n, "rrs_wor")
        for got in (one.value[:, 0], all_n.value[:, j], acc, rep[f"verifier/rrs_wor/n={n}"]):
            np.testing.assert_allclose(got, det.value, rtol=0, atol=TOL)
        for got in (one.stderr[:, 0], all_n.stderr[:, j], rep[f"stderr/rrs_wor/n={n}"]):
            np.testing.assert_allclose(got, det.stderr, rtol=0, atol=TOL)
        assert rows[n].acceptance == pytest.approx(float(np.mean(det.value)), abs=TOL)
        assert rows[n].exact == det.exact == (n <= 2)
        if n > 2:
            assert np.all(det.stderr[[0, 1, 3, 4]] > 0)
    # another seed gives other histories
    other = st.verifier("rrs_wor", seed=1).acceptance_detail(P, Q, 4)
    assert not np.allclose(other.value, all_n.value[:, 3], rtol=0, atol=1e-15)


def test_rrs_wor_estimate_is_within_its_standard_error_of_the_recursion():
    """Small supports, estimate forced (max_histories=0) against the exact recursion: |z| < 5."""
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.full(9, 0.4), 6)
    Q = rng.dirichlet(np.full(9, 0.4), 6)
    for n in (3, 4):
        exact = st.verifier("rrs_wor").acceptance_detail(P, Q, n)
        assert exact.exact
        est = st.verifier("rrs_wor", max_histories=0, paths=512, seed=2).acceptance_detail(P, Q, n)
        assert not est.exact and np.all(est.stderr > 0)
        assert np.all(np.abs(est.value - exact.value) < 5 * est.stderr)


# --------------------------------------------------------------------------------------------
# the confident-draft collapse (hostile-inputs issue)
# --------------------------------------------------------------------------------------------
def test_rrs_wor_confident_draft_does_not_collapse():
    p, q = _confident_pair()
    truth = exact_output_law(st.verifier("rrs_wor"), p, q, 3).acceptance  # exhaustive enumeration
    assert truth == pytest.approx(0.9952, abs=1e-4)
    assert st.acceptance(p, q, 3, "rrs_wor") == pytest.approx(truth, abs=1e-9)
    est = st.verifier("rrs_wor", max_histories=0, paths=64).acceptance_detail(p, q, 3)
    assert est.value == pytest.approx(truth, abs=max(1e-9, 5 * est.stderr))
    from spectheory.simulations.replay import replay

    rep = replay(np.log(p), np.log(q), n=3, device="cpu", verifiers=["rrs_wor"])
    assert float(rep["verifier/rrs_wor/n=3"][0]) == pytest.approx(truth, abs=1e-9)
    # the same draft inside a large vocabulary, where only the estimate is available: the extra
    # draft mass (3e-27) is far below that of tokens 1-3, and p moves by 3e-3 in total variation
    V = 3000
    P = np.full(V, 1e-6)
    P[:4] = p
    Qb = np.full(V, 1e-30)
    Qb[:4] = q
    P, Qb = P / P.sum(), Qb / Qb.sum()
    big = st.verifier("rrs_wor").acceptance_detail(P, Qb, 3)
    assert not big.exact
    assert abs(big.value - truth) < 1e-2 + 5 * big.stderr


# --------------------------------------------------------------------------------------------
# torch input to the public API
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,n", [("sd", 1), ("rrs", 3), ("kseq", 3), ("spechub", 2), ("rrs_wor", 3), ("greedy", 3)])
def test_torch_input(name, n):
    rng = np.random.default_rng(4)
    P = rng.dirichlet(np.ones(50), 3)
    Q = rng.dirichlet(np.ones(50), 3)
    want = st.acceptance(P, Q, n, name)
    Pt = torch.from_numpy(P).requires_grad_(True)
    got = st.acceptance(Pt, torch.from_numpy(Q), n, name)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=TOL)
    one = st.acceptance(Pt[0], torch.from_numpy(Q[0]), n, name)
    assert isinstance(one, float) and one == pytest.approx(float(want[0]), abs=TOL)
    # bf16 input: the same as its float64 conversion, renormalised
    Pb, Qb = torch.from_numpy(P).to(torch.bfloat16), torch.from_numpy(Q).to(torch.bfloat16)
    P64, Q64 = Pb.double().numpy(), Qb.double().numpy()
    ref = st.acceptance(P64 / P64.sum(1, keepdims=True), Q64 / Q64.sum(1, keepdims=True), n, name)
    np.testing.assert_allclose(st.acceptance(Pb, Qb, n, name).numpy(), ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("shape,arg", [((), "p"), ((2, 3, 4), "p"), ((), "q"), ((2, 3, 4), "q")])
def test_torch_input_bad_shapes_name_the_argument(shape, arg):
    good = torch.full((4,), 0.25)
    bad = torch.full(shape, 0.25)
    p, q = (bad, good) if arg == "p" else (good, bad)
    with pytest.raises(st.SpecTheoryValueError, match=rf"^{arg}:"):
        st.acceptance(p, q, 2, "rrs")


# --------------------------------------------------------------------------------------------
# huge n
# --------------------------------------------------------------------------------------------
_HUGE_P = np.array([[0.5, 0.3, 0.2], [0.5, 0.5, 0.0], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1]])
_HUGE_Q = np.array([[0.2, 0.3, 0.5], [0.999, 0.001, 0.0], [0.0, 0.5, 0.5], [0.9, 0.05, 0.05]])


def test_rrs_long_runs_equal_the_step_by_step_recursion():
    """rrs stops stepping once every row has settled: equal to the independent-drafters recursion
    (R ← norm((R − q)+) in NumPy, q repeated) at n = 300."""
    n = 300
    want = st.verifier("rrs", sampling="independent").acceptance(_HUGE_P, np.repeat(_HUGE_Q[:, None], n, 1), n)
    np.testing.assert_allclose(st.acceptance(_HUGE_P, _HUGE_Q, n, "rrs"), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["rrs", "kseq", "rrs_wor"])
@pytest.mark.parametrize("n", [10**9, 10**400])
def test_huge_n_gives_the_limit(name, n):
    """As n → ∞ every token of q's support is eventually drafted: acceptance → p(supp q)."""
    limit = np.where(_HUGE_Q > 0, _HUGE_P, 0.0).sum(axis=1)
    np.testing.assert_allclose(st.acceptance(_HUGE_P, _HUGE_Q, n, name), limit, rtol=0, atol=1e-9)
