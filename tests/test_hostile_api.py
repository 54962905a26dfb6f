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
