"""The bound engine (spectheory.solvers.bounds.bound_rows): one implementation per bound, NumPy and
torch through the same code, every n in one pass. Oracles: the transport LP and the brute-force
subset dual (tests/test_optimal_acceptance.py compares the dual with them for every scheme)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import spectheory as st
from spectheory.solvers import bound_rows, transport_lp
from spectheory.testing import distribution_pairs

torch = pytest.importorskip("torch")

SCHEMES = ["iid", "without_replacement", "greedy", "hub", "topk"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _ns(sampling, ns):
    return [2] if sampling == "hub" else ns


@hst.composite
def _batches(draw, max_V=8, max_B=3):
    """A few nasty pairs of one V, stacked into (B, V) rows."""
    first = draw(distribution_pairs(max_V=max_V))
    V = first[0].shape[0]
    rows = [first] + [draw(distribution_pairs(min_V=V, max_V=V)) for _ in range(draw(hst.integers(0, max_B - 1)))]
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


_NS = hst.lists(hst.integers(1, 9), min_size=1, max_size=4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sampling", SCHEMES)
@given(batch=_batches(), ns=_NS)
@settings(max_examples=40)
def test_numpy_equals_torch_float64(batch, ns, sampling, device):
    """NumPy rows and torch rows give the same α* (1e-12), for the engine's default kernels and for
    the backend array code (torch's own implementation of every bound, the GPU path)."""
    P, Q = batch
    ns = _ns(sampling, ns)
    ref = bound_rows(P, Q, ns, sampling)
    tp, tq = torch.tensor(P, device=device), torch.tensor(Q, device=device)
    for kernel in ("auto", "array"):
        got = bound_rows(tp, tq, ns, sampling, kernel=kernel)
        assert isinstance(got, torch.Tensor) and got.device.type == device and got.dtype == torch.float64
        tol = 1e-10 if (sampling == "without_replacement" and kernel == "array") else 1e-12
        assert np.allclose(got.cpu().numpy(), ref, atol=tol, rtol=0), (kernel, got, ref)
    # the public entry point, one position: a torch result on the input's device
    out = st.optimal_acceptance(tp[0], tq[0], ns, sampling)
    assert isinstance(out, torch.Tensor) and out.shape == (len(ns),)
    assert np.allclose(out.cpu().numpy(), ref[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("sampling", SCHEMES)
@given(batch=_batches(max_V=12), ns=_NS)
@settings(max_examples=30)
def test_all_n_in_one_pass_equals_per_n(batch, ns, sampling):
    """The (B, len(n)) result of one call = one call per n (repeats and any order allowed)."""
    P, Q = batch
    ns = _ns(sampling, ns)
    together = st.optimal_acceptance(P, Q, ns, sampling)
    assert together.shape == (P.shape[0], len(ns))
    # without replacement: one quadrature (nodes for the smallest n, state truncated at the largest)
    # serves every n; greedy: m = q(Ω \ T) is summed from the top max(n) tokens; so the last bits may
    # differ from a call for one n
    tol = {"without_replacement": 1e-12, "greedy": 1e-14}.get(sampling, 0.0)
    for j, n in enumerate(ns):
        single = st.optimal_acceptance(P, Q, n, sampling)
        assert np.allclose(together[:, j], single, atol=tol, rtol=0), (n, together[:, j], single)
    one = st.optimal_acceptance(P[0], Q[0], ns, sampling)
    assert one.shape == (len(ns),) and np.array_equal(one, together[0])


@given(distribution_pairs(max_V=5), hst.integers(1, 6))
def test_topk_equals_the_lp(pair, n):
    """α*_topk = p(top-n draft tokens), against the transport LP on the degenerate tuple law."""
    p, q = pair
    lp = transport_lp(p, q, n, "topk").acceptance
    assert st.optimal_acceptance(p, q, n, "topk") == pytest.approx(lp, abs=1e-9)


def test_topk_ties_take_the_lower_index():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    q = np.array([0.25, 0.25, 0.25, 0.25])
    assert st.optimal_acceptance(p, q, [1, 2, 3], "topk").tolist() == pytest.approx([0.1, 0.3, 0.6])


def _llm_like(rng, B, V):
    z = 3.0 * rng.standard_normal((B, V))
    p = np.exp(z - z.max(1, keepdims=True))
    q = np.exp(z + rng.standard_normal((B, V)) - (z.max(1, keepdims=True) + 4))
    return p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_without_replacement_equals_numba_llm_like(device):
    """The torch prefix dual with the exponential-race quadrature = the numba kernel to 1e-10."""
    rng = np.random.default_rng(7)
    P, Q = _llm_like(rng, 3, 300)
    ns = list(range(1, 9))
    ref = bound_rows(P, Q, ns, "without_replacement", kernel="numba")
    got = bound_rows(torch.tensor(P, device=device), torch.tensor(Q, device=device), ns, "without_replacement", kernel="array")
    assert np.allclose(got.cpu().numpy(), ref, atol=1e-10, rtol=0)
    assert np.all(np.diff(ref, axis=1) >= -1e-12)  # more drafts never hurt


def test_torch_inputs_of_other_dtypes_and_grad():
    rng = np.random.default_rng(1)
    P, Q = _llm_like(rng, 2, 50)
    ref = st.optimal_acceptance(P, Q, [1, 4], "iid")
    for dtype in (torch.float32, torch.bfloat16):
        tp = torch.tensor(P, dtype=dtype, requires_grad=dtype == torch.float32)
        tq = torch.tensor(Q, dtype=dtype)
        got = st.optimal_acceptance(tp, tq, [1, 4], "iid")
        assert got.dtype == torch.float64 and not got.requires_grad
        assert np.allclose(got.numpy(), ref, atol=0.05)


@pytest.mark.parametrize(
    "p, q, match",
    [
        (torch.tensor(0.5), torch.tensor(0.5), "p: expected an array of shape"),
        (torch.ones(1, 2, 2) / 2, torch.ones(1, 2, 2) / 2, r"p: expected shape \(V,\) or \(B, V\)"),
        (torch.tensor([0.5, float("nan")]), torch.tensor([0.5, 0.5]), "p: contains NaN"),
        (torch.tensor([0.5, 0.5]), torch.tensor([1.5, -0.5]), "q: negative probability"),
    ],
)
def test_bad_torch_input_names_the_argument(p, q, match):
    with pytest.raises(st.SpecTheoryValueError, match=match):
        st.optimal_acceptance(p, q, 2)


@pytest.mark.parametrize("bad", [True, 0, -1, 2.5, [], [1, True]])
def test_bad_n(bad):
    with pytest.raises(st.SpecTheoryValueError, match="n"):
        st.optimal_acceptance(np.array([0.5, 0.5]), np.array([0.5, 0.5]), bad)


@pytest.mark.parametrize("sampling", ["iid", "without_replacement", "greedy", "topk"])
def test_huge_n_is_quick_and_right(sampling):
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([0.2, 0.3, 0.4, 0.1])
    got = st.optimal_acceptance(p, q, [10**9, 10**400], sampling)
    # iid: q(H)^n -> 0 for every H except H ⊇ supp q; distinct schemes draft all of supp q
    assert got.tolist() == pytest.approx([1.0, 1.0])


def test_without_replacement_between_limit_and_support_is_refused():
    from spectheory.solvers.bounds import MAX_WOR_DRAFTS

    V = MAX_WOR_DRAFTS + 10
    q = np.full(V, 1.0 / V)
    with pytest.raises(st.SpecTheoryValueError, match="n: .* drafts without replacement"):
        st.optimal_acceptance(q, q, MAX_WOR_DRAFTS + 1, "without_replacement")
