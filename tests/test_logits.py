"""from_logits: temperature, top-k, top-p, the T -> 0 limit, and float32 stability."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

import spectheory as st


def _softmax64(x, T):
    z = (x - x.max(axis=-1, keepdims=True)) / T
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("T", [0.05, 0.1, 0.5, 1.0, 2.0, 5.0])
def test_float32_matches_float64_reference(T):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((4, 32_000)) * 4 + 30).astype(np.float32)  # large offset too
    p32 = st.from_logits(logits, T)
    ref = _softmax64(logits.astype(np.float64), T)
    assert p32.dtype == np.float32 and np.all(np.isfinite(p32))
    np.testing.assert_allclose(p32.sum(axis=-1), 1.0, atol=1e-5)
    assert np.max(np.abs(p32 - ref)) <= 1e-6
    np.testing.assert_array_equal(np.argmax(p32, -1), np.argmax(ref, -1))


@given(hnp.arrays(np.float64, hst.integers(1, 30), elements=hst.floats(-1e4, 1e4)), hst.floats(1e-3, 10))
def test_probabilities_are_valid_for_any_logits(logits, T):
    p = st.from_logits(logits, T)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[np.argmax(logits)] == p.max()


def test_temperature_zero_is_the_argmax_limit():
    x = np.array([[1.0, 3.0, 3.0, -2.0], [0.0, -1.0, 5.0, 2.0]])
    p0 = st.from_logits(x, 0)
    np.testing.assert_allclose(p0, [[0, 0.5, 0.5, 0], [0, 0, 1, 0]])
    np.testing.assert_allclose(st.from_logits(x, 1e-4), p0, atol=1e-12)


def test_top_k_keeps_ties_and_matches_masking():
    x = np.array([3.0, 1.0, 2.0, 2.0, 0.0])
    np.testing.assert_allclose(st.from_logits(x, 1.0, top_k=2), _softmax64(np.array([3.0, -np.inf, 2.0, 2.0, -np.inf]), 1.0))
    np.testing.assert_allclose(st.from_logits(x, 1.0, top_k=1), [1, 0, 0, 0, 0])


def test_top_p_keeps_the_smallest_nucleus():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    x = np.log(p)
    np.testing.assert_allclose(st.from_logits(x, 1.0, top_p=0.5), [1, 0, 0, 0])
    np.testing.assert_allclose(st.from_logits(x, 1.0, top_p=0.79), [0.625, 0.375, 0, 0])
    np.testing.assert_allclose(st.from_logits(x, 1.0, top_p=0.81), np.array([0.5, 0.3, 0.15, 0]) / 0.95)
    np.testing.assert_allclose(st.from_logits(x, 1.0, top_p=1.0), p)


def test_batched_equals_rows_and_masked_tokens():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 50))
    x[0, :10] = -np.inf
    batch = st.from_logits(x, 0.7, top_k=20, top_p=0.9)
    for b in range(3):
        np.testing.assert_allclose(batch[b], st.from_logits(x[b], 0.7, top_k=20, top_p=0.9))
    assert np.all(batch[0, :10] == 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(logits=[np.nan, 1.0]), "NaN"),
        (dict(logits=[np.inf, 1.0]), r"\+inf"),
        (dict(logits=[-np.inf, -np.inf]), "entirely -inf"),
        (dict(logits=[1.0, 2.0], temperature=-1), "temperature"),
        (dict(logits=[1.0, 2.0], temperature=np.inf), "temperature"),
        (dict(logits=[1.0, 2.0], top_k=0), "top_k"),
        (dict(logits=[1.0, 2.0], top_p=0.0), "top_p"),
        (dict(logits=[1.0, 2.0], top_p=1.5), "top_p"),
        (dict(logits=np.array([])), "V >= 1"),
        (dict(logits=["a", "b"]), "float"),
    ],
)
def test_bad_logits(kwargs, match):
    with pytest.raises(ValueError, match=match):
        st.from_logits(**kwargs)
