"""The exact optimal acceptance: fast duals against brute-force subset enumeration, and theorems."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as hst

import spectheory as st
from spectheory.solvers import bound_rows, subset_dual_brute
from spectheory.testing import distribution_pairs, independent_drafters

TOL = 1e-10
DUAL_SCHEMES = ["iid", "without_replacement", "greedy"]

# A case where a lower bound on C computed as (Q - M)/(1 - M) cancelled catastrophically and the
# pruned without-replacement dual returned 3.6e-9 below the truth (kept as a regression example).
_CANCEL_P = np.array([6.24388848e-01, 1.07856177e-14, 3.24713698e-05, 3.29205914e-01,
                      2.93881417e-10, 4.77051678e-04, 1.59894436e-09, 4.58957131e-02])
_CANCEL_Q = np.array([8.78911506e-02, 2.39554814e-08, 8.28690393e-25, 1.09688554e-13,
                      9.12108824e-01, 1.60152033e-09, 6.21248820e-16, 4.50511642e-13])
_CANCEL = (_CANCEL_P / _CANCEL_P.sum(), _CANCEL_Q / _CANCEL_Q.sum())


@given(distribution_pairs(max_V=6), hst.integers(1, 4), hst.sampled_from(DUAL_SCHEMES + ["topk"]))
@example(_CANCEL, 3, "without_replacement")
def test_dual_equals_brute_force(pair, n, sampling):
    p, q = pair
    fast = st.optimal_acceptance(p, q, n, sampling)
    slow = subset_dual_brute(p, q, n, sampling).acceptance
    assert abs(fast - slow) <= TOL


@given(distribution_pairs(max_V=6))
def test_hub_dual_equals_brute_force(pair):
    p, q = pair
    assert abs(st.optimal_acceptance(p, q, 2, "hub") - subset_dual_brute(p, q, 2, "hub").acceptance) <= TOL


@given(distribution_pairs(min_V=7, max_V=9), hst.integers(2, 5))
def test_without_replacement_prefix_property_larger_v(pair, n):
    """The sorted-prefix property for drafts without replacement (proved) guards the implementation."""
    p, q = pair
    fast = st.optimal_acceptance(p, q, n, "without_replacement")
    slow = subset_dual_brute(p, q, n, "without_replacement").acceptance
    assert abs(fast - slow) <= TOL


@given(hst.integers(1, 5), hst.integers(1, 3), hst.data())
def test_independent_drafters_dual_is_brute_force(V, n, data):
    p = data.draw(distribution_pairs(min_V=V, max_V=V))[0]
    q = data.draw(independent_drafters(V, n))
    got = st.optimal_acceptance(p, q, n, "independent")
    assert got == pytest.approx(subset_dual_brute(p, q, n, "independent").acceptance, abs=TOL)
    if n == 1:
        assert got == pytest.approx(np.minimum(p, q[0]).sum(), abs=TOL)


@given(distribution_pairs(max_V=8), hst.sampled_from(DUAL_SCHEMES))
def test_one_draft_is_total_variation_coupling(pair, sampling):
    p, q = pair
    assert st.optimal_acceptance(p, q, 1, sampling) == pytest.approx(np.minimum(p, q).sum(), abs=TOL)


@given(distribution_pairs(max_V=40), hst.integers(1, 6))
def test_monotone_in_n_and_without_replacement_dominates(pair, n):
    p, q = pair
    iid = [st.optimal_acceptance(p, q, k) for k in (n, n + 1)]
    wor = [st.optimal_acceptance(p, q, k, "without_replacement") for k in (n, n + 1)]
    assert iid[1] >= iid[0] - TOL
    assert wor[1] >= wor[0] - TOL
    assert wor[0] >= iid[0] - TOL
    assert wor[1] >= iid[1] - TOL


@given(distribution_pairs(max_V=40), hst.integers(1, 6), hst.sampled_from(DUAL_SCHEMES + ["hub"]))
def test_acceptance_one_when_draft_equals_target(pair, n, sampling):
    p, _ = pair
    n = 2 if sampling == "hub" else n
    assert st.optimal_acceptance(p, p, n, sampling) == pytest.approx(1.0, abs=TOL)


@given(distribution_pairs(max_V=6), hst.integers(1, 4), hst.sampled_from(DUAL_SCHEMES + ["hub"]))
def test_acceptance_one_iff_containment_dominated(pair, n, sampling):
    """α* = 1 iff p(H) >= C(H) for every H (brute force over all H)."""
    p, q = pair
    n = 2 if sampling == "hub" else n
    scheme = st.get_scheme(sampling)
    V = len(p)
    slack = min(
        p[H].sum() - scheme.containment(q, n, H)
        for H in (((np.arange(V) >> 0) * 0 + ((mask >> np.arange(V)) & 1)).astype(bool) for mask in range(1 << V))
    )
    alpha = st.optimal_acceptance(p, q, n, sampling)
    # 1 - α* = max_H (C(H) - p(H)) exactly, so the two sides agree up to rounding
    assert alpha == pytest.approx(1.0 - max(0.0, -slack), abs=TOL)
    if slack >= 1e-12:
        assert alpha == pytest.approx(1.0, abs=TOL)
    if slack <= -1e-9:
        assert alpha < 1.0


@given(distribution_pairs(max_V=6))
def test_khisti_two_draft_condition(pair):
    """n = 2 i.i.d.: acceptance 1 iff p(S) >= q(S)^2 for all S (Khisti et al.)."""
    p, q = pair
    V = len(p)
    masks = [((m >> np.arange(V)) & 1).astype(bool) for m in range(1 << V)]
    worst = min(p[S].sum() - q[S].sum() ** 2 for S in masks)
    alpha = st.optimal_acceptance(p, q, 2)
    if worst >= 1e-12:
        assert alpha == pytest.approx(1.0, abs=TOL)
    elif worst <= -1e-9:
        assert alpha <= 1.0 + worst + TOL


@given(distribution_pairs(min_V=2, max_V=300), hst.integers(1, 8))
def test_fast_iid_kernel_equals_sorted_prefix_sums(pair, n):
    """The numba CPU kernel (buckets, no full sort) = the array code (full sort + prefix sums)."""
    p, q = pair
    got = bound_rows(p[None], q[None], [n], "iid", kernel="numba")[0, 0]
    assert got == pytest.approx(bound_rows(p[None], q[None], [n], "iid", kernel="array")[0, 0], abs=1e-12)


def _llm_like(rng, B, V, temperature=1.0):
    base = rng.standard_normal(V) * 2.5
    target = base + rng.standard_normal((B, V))
    draft = target + rng.standard_normal((B, V))
    return st.from_logits(target, temperature), st.from_logits(draft, temperature)


@pytest.mark.parametrize("V", [32_000, 256_000])
def test_full_vocabulary(V):
    rng = np.random.default_rng(V)
    p, q = _llm_like(rng, 2, V)
    iid = st.optimal_acceptance(p, q, 4)
    assert iid.shape == (2,)
    assert np.allclose(iid, bound_rows(p, q, [4], "iid", kernel="array")[:, 0], atol=1e-12, rtol=0)
    wor = st.optimal_acceptance(p, q, 4, "without_replacement")
    greedy = st.optimal_acceptance(p, q, 4, "greedy")
    assert np.all(wor >= iid - TOL) and np.all(wor <= 1) and np.all((0 <= greedy) & (greedy <= 1))


def test_batched_equals_rowwise():
    rng = np.random.default_rng(3)
    p, q = _llm_like(rng, 5, 500)
    for sampling in DUAL_SCHEMES + ["hub"]:
        n = 2 if sampling == "hub" else 3
        batch = st.optimal_acceptance(p, q, n, sampling)
        rows = [st.optimal_acceptance(p[b], q[b], n, sampling) for b in range(5)]
        np.testing.assert_allclose(batch, rows, rtol=0, atol=1e-15)


@pytest.mark.parametrize("temperature", [0.05, 0.2, 1.0, 5.0])
def test_float32_logits_are_stable(temperature):
    """Bounds from float32 logits agree with the float64 path to float32 accuracy."""
    rng = np.random.default_rng(int(temperature * 100))
    V = 5000
    base = rng.standard_normal(V) * 3
    lt = (base + rng.standard_normal(V)).astype(np.float32)
    ld = (base + rng.standard_normal(V)).astype(np.float32)
    p32, q32 = st.from_logits(lt, temperature), st.from_logits(ld, temperature)
    p64, q64 = st.from_logits(lt.astype(np.float64), temperature), st.from_logits(ld.astype(np.float64), temperature)
    assert p32.dtype == np.float32 and np.all(np.isfinite(p32))
    for sampling in DUAL_SCHEMES:
        a32 = st.optimal_acceptance(p32, q32, 4, sampling)
        a64 = st.optimal_acceptance(p64, q64, 4, sampling)
        assert a32 == pytest.approx(a64, abs=1e-5)


def test_n_beyond_support_drafts_the_whole_support():
    """Distinct schemes draw min(n, |supp q|): with the whole support drafted, α* = p(supp q)."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    q = np.array([0.5, 0.5, 0.0, 0.0])
    for sampling in ("without_replacement", "greedy"):
        for n in (2, 3, 10):
            assert st.optimal_acceptance(p, q, n, sampling) == pytest.approx(0.3, abs=TOL)
            assert subset_dual_brute(p, q, n, sampling).acceptance == pytest.approx(0.3, abs=TOL)
    assert st.optimal_acceptance([1.0], [1.0], 5, "without_replacement") == 1.0  # V = 1
    assert st.optimal_acceptance([1.0], [1.0], 3) == 1.0
