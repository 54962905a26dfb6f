"""Hostile arguments to the Python API: refused before any allocation with an error naming the
argument, or answered correctly."""

from __future__ import annotations

import numpy as np
import pytest

import spectheory as st
from spectheory import SpecTheoryValueError
from spectheory._validation import check_int, check_n

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.2, 0.3, 0.5])


@pytest.mark.parametrize("bad", [True, False, np.bool_(True), 1.5, float("inf"), float("nan"), "2", None, [2]])
def test_check_int_refuses_non_integers_and_bools(bad):
    with pytest.raises(SpecTheoryValueError, match="^k: must be an integer"):
        check_int(bad, "k", minimum=0)


def test_check_int_limits_and_accepted_forms():
    assert check_int(np.int64(3), "k") == 3 and check_int(3.0, "k") == 3
    with pytest.raises(SpecTheoryValueError, match=r"^k: must be <= 10 \(why\), got 11$"):
        check_int(11, "k", maximum=10, why="why")
    with pytest.raises(SpecTheoryValueError, match="^n: must be an integer >= 1, got 0$"):
        check_n(0)
    with pytest.raises(SpecTheoryValueError, match="^n: must be <= 5"):
        check_n(10**30, maximum=5)


@pytest.mark.parametrize("call", [
    lambda: st.optimal_acceptance(P, Q, True),
    lambda: st.acceptance(P, Q, True, "rrs"),
])
def test_n_true_is_an_error(call):
    with pytest.raises(SpecTheoryValueError, match="^n: must be an integer, got the boolean True"):
        call()


def test_compare_accepts_a_single_n():
    rows = st.compare(P, Q, 2)
    assert {r.n for r in rows} == {2}
    assert [r.acceptance for r in rows] == [r.acceptance for r in st.compare(P, Q, [2])]
    with pytest.raises(SpecTheoryValueError, match="^ns: must be an integer, got the boolean True"):
        st.compare(P, Q, [True])


def test_replay_refuses_scalars_huge_n_and_huge_paths():
    pytest.importorskip("torch")
    from spectheory.simulations.replay import MAX_N, MAX_RRS_WOR_PATHS, replay

    with pytest.raises(SpecTheoryValueError, match="^target_logits: expected logits of shape .* got a scalar"):
        replay(np.float64(1.0), np.float64(2.0), n=1, device="cpu")
    with pytest.raises(SpecTheoryValueError, match=f"^n: must be <= {MAX_N}"):
        replay(np.log(P)[None], np.log(Q)[None], n=10**9, device="cpu")
    with pytest.raises(SpecTheoryValueError, match=f"^n: must be <= {MAX_N}"):
        replay(np.log(P)[None], np.log(Q)[None], n=10**5, device="cpu", samplings=[], verifiers=["rrs_wor"])
    with pytest.raises(SpecTheoryValueError, match=f"^rrs_wor_paths: must be <= {MAX_RRS_WOR_PATHS}"):
        replay(np.log(P)[None], np.log(Q)[None], n=3, device="cpu", rrs_wor_paths=10**9)
    with pytest.raises(SpecTheoryValueError, match="^n: must be an integer, got the boolean"):
        replay(np.log(P)[None], np.log(Q)[None], n=True, device="cpu")


def test_huge_n_is_refused_at_once_or_answered():
    # the exact quantities answer any n with their n -> infinity limit (p on the draft's support)
    limit = float(np.where(np.asarray(Q) > 0, P, 0.0).sum())
    for n in (10**9, 10**30):
        assert st.optimal_acceptance(P, Q, n) == pytest.approx(1.0)
        assert st.acceptance(P, Q, n, "rrs") == pytest.approx(limit, abs=1e-9)
    assert st.optimal_acceptance(P, Q, 10**9, sampling="without_replacement") == pytest.approx(1.0)
    # sampling n drafts is refused at once
    with pytest.raises(SpecTheoryValueError, match="^n: must be <= 4096 \\(the rrs sampler"):
        st.verifier("rrs").draft(Q, 10**9, rng=0)


def test_transport_lp_huge_n_refusal_is_formatted():
    for n in (700, 10**9):
        with pytest.raises(SpecTheoryValueError, match="^n: the transport LP would have more than 10\\^60 variables"):
            st.solvers.transport_lp(P, Q, n)


def test_monte_carlo_huge_n_refused_before_allocation():
    from spectheory.simulations.montecarlo import estimate_acceptance

    with pytest.raises(SpecTheoryValueError, match="^n: must be <= 4096"):
        estimate_acceptance(P, Q, 10**9, "rrs", 100, 0)


def test_mdp_max_k_limit():
    from spectheory.solvers import mdp

    with pytest.raises(SpecTheoryValueError, match="^max_k: must be <= 1024"):
        mdp.optimal_policy(mdp.iid_process([0.6, 0.9]), 0.1, 1.0, max_k=10**6)


@pytest.mark.parametrize("temperature", [1e-46, 1e-40, 1e39])
def test_from_logits_temperature_out_of_float32_range(temperature):
    x = np.array([[1.0, 2.0, 3.0], [1.0, -np.inf, 3.0]])
    want = st.from_logits(x, temperature=temperature)
    got = st.from_logits(x.astype(np.float32), temperature=temperature)
    assert np.all(np.isfinite(got)) and np.allclose(got, want, atol=1e-6)
    expect = np.array([[0, 0, 1], [0, 0, 1]]) if temperature < 1 else np.array([[1 / 3] * 3, [0.5, 0, 0.5]])
    assert np.allclose(want, expect, atol=1e-6)


def test_replay_float32_temperature_out_of_range():
    torch = pytest.importorskip("torch")
    from spectheory.simulations.replay import replay

    x = np.array([[1.0, 2.0, 3.0], [1.0, -np.inf, 3.0]])
    for T in (1e-46, 1e39):
        a = replay(x, x[::-1].copy(), n=2, device="cpu", temperature=T, dtype=torch.float32).table
        b = replay(x, x[::-1].copy(), n=2, device="cpu", temperature=T, dtype=torch.float64).table
        for k in a:
            assert np.allclose(np.asarray(a[k], float), np.asarray(b[k], float), atol=1e-6), k
