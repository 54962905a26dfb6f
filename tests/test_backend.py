"""The array backend layer: NumPy and torch give the same results for every operation used."""

import numpy as np
import pytest
import torch

from spectheory._backend import get_backend, sort_by_ratio


def _rows(seed, B=5, V=40, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.random((B, V))
    if ties:
        x = np.round(x * 4) / 4
    return x


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [1, 3, 40])
def test_topk_same_on_both_backends_lower_index_first(ties, k):
    x = _rows(1, ties=ties)
    v_np, i_np = get_backend(x).topk(x, k)
    v_t, i_t = get_backend(torch.from_numpy(x)).topk(torch.from_numpy(x), k)
    ref = np.argsort(-x, axis=1, kind="stable")[:, :k]
    assert np.array_equal(i_np, ref)
    assert np.array_equal(i_t.numpy(), ref)
    assert np.array_equal(v_np, v_t.numpy())


def test_sort_by_ratio_and_searchsorted_agree():
    p = _rows(2)
    q = _rows(3)
    q[:, :3] = 0.0
    a = sort_by_ratio(p, q)
    b = sort_by_ratio(torch.from_numpy(p), torch.from_numpy(q))
    assert np.array_equal(a.ratio, b.ratio.numpy())
    np.testing.assert_allclose(a.q_above, b.q_above.numpy(), rtol=0, atol=1e-13)
    c = np.linspace(0.1, 3, 7)[None, :].repeat(p.shape[0], 0)
    xp_n, xp_t = get_backend(p), get_backend(b.ratio)
    k1 = xp_n.searchsorted(a.ratio, c, side="right")
    k2 = xp_t.searchsorted(b.ratio, torch.from_numpy(c), side="right")
    assert np.array_equal(k1, k2.numpy())
    assert np.all(np.isinf(a.ratio[:, -3:]))


def test_backend_chosen_by_type():
    assert get_backend(np.zeros(2)).name == "numpy"
    assert get_backend(np.zeros(2), torch.zeros(2)).name == "torch"
    t = torch.zeros(3, requires_grad=True)
    assert not get_backend(t).asarray(t).requires_grad
