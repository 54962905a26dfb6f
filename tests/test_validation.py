"""Bad input at the public boundary: each case raises ValueError naming the argument."""

import numpy as np
import pytest

import spectheory as st
from spectheory.solvers import subset_dual_brute

P = np.array([0.2, 0.3, 0.5])
Q = np.array([0.5, 0.25, 0.25])


@pytest.mark.parametrize(
    "p, q, n, sampling, method, match",
    [
        ([-0.1, 0.6, 0.5], Q, 2, "iid", "auto", r"p: negative probability"),
        (P, [0.5, np.nan, 0.5], 2, "iid", "auto", r"q: contains NaN or inf"),
        (P, [0.5, np.inf, 0.5], 2, "iid", "auto", r"q: contains NaN or inf"),
        ([0.2, 0.3, 0.6], Q, 2, "iid", "auto", r"p: does not sum to 1"),
        (P, [0.5, 0.5], 2, "iid", "auto", r"p and q: vocabulary sizes differ"),
        (P, np.stack([Q, Q]), 2, "iid", "auto", r"p and q: one is a batch"),
        (np.stack([P, P]), np.stack([Q, Q, Q]), 2, "iid", "auto", r"p and q: batch sizes differ"),
        (np.ones((2, 2, 2)) / 2, Q, 2, "iid", "auto", r"p: expected shape"),
        (0.5, Q, 2, "iid", "auto", r"p: expected an array"),
        ([], [], 2, "iid", "auto", r"p: empty array"),
        (P, Q, 0, "iid", "auto", r"n: must be an integer >= 1"),
        (P, Q, 2.5, "iid", "auto", r"n: must be an integer >= 1"),
        (P, Q, "2", "iid", "auto", r"n: must be an integer >= 1"),
        (P, Q, 3, "hub", "auto", r"n: .*n = 2 only"),
        (P, Q, 2, "beam", "auto", r"sampling: unknown draft scheme"),
        (P, Q, 2, "iid", "fast", r"method: unknown method"),
        (P, Q, 2, "independent", "auto", r"q: sampling='independent' needs one draft distribution per drafter"),
        (P, np.stack([Q, Q, Q]), 2, "independent", "auto", r"q: sampling='independent' has 3 drafter rows but n = 2"),
        (np.full(30, 1 / 30), np.full((2, 30), 1 / 30), 2, "independent", "auto", r"no exact algorithm"),
        (np.full(30, 1 / 30), np.full(30, 1 / 30), 2, "iid", "brute", r"limited to V <= 22"),
    ],
)
def test_bad_input_raises_value_error(p, q, n, sampling, method, match):
    with pytest.raises(ValueError, match=match):
        st.optimal_acceptance(p, q, n, sampling, method)


def test_errors_are_spectheory_value_errors():
    with pytest.raises(st.SpecTheoryValueError):
        st.optimal_acceptance(P, Q, 0)
    assert issubclass(st.SpecTheoryValueError, ValueError)


def test_sum_tolerance_is_relative_and_renormalises():
    """Sums within SUM_RTOL of 1 are accepted (float32 softmax output) and renormalised."""
    p = P * (1 + 0.5 * st.SUM_RTOL)
    assert st.optimal_acceptance(p, Q, 1) == pytest.approx(np.minimum(P, Q).sum(), abs=1e-12)
    with pytest.raises(ValueError, match="does not sum to 1"):
        st.optimal_acceptance(P * (1 + 2 * st.SUM_RTOL), Q, 1)


def test_q_zero_where_p_positive_is_allowed():
    """Tokens the draft never proposes (q = 0 < p) are valid input: they can never be accepted."""
    p = np.array([0.5, 0.5])
    q = np.array([1.0, 0.0])
    for sampling in ("iid", "without_replacement", "greedy"):
        assert st.optimal_acceptance(p, q, 3, sampling) == pytest.approx(0.5)
    assert subset_dual_brute(p, q, 3).acceptance == pytest.approx(0.5)


def test_v_equal_one():
    """V = 1: the only token is always drafted and accepted."""
    for sampling in ("iid", "without_replacement", "greedy", "hub"):
        n = 2 if sampling == "hub" else 4
        assert st.optimal_acceptance([1.0], [1.0], n, sampling) == 1.0
        assert st.optimal_acceptance([1.0], [1.0], n, sampling, method="brute") == 1.0
