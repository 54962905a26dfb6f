"""A small array backend: one formula, written once, runs on NumPy arrays and torch tensors.

Why a backend layer of our own (as POT's ``ot.backend``) rather than array-api-compat
---------------------------------------------------------------------------------------
The bounds and verifiers need a handful of row-wise operations that the array API standard does not
have or that differ between its implementations: ``topk`` with a fixed tie rule (lower token id
first), row-wise ``searchsorted``, ``scatter`` of one value per row, ``take_along_axis`` on
(B, V) rows, and the knowledge of where a kernel is fastest (NumPy's SIMD argsort or a numba kernel
on the CPU, ``torch.sort`` on CUDA). Array-api-compat would add a dependency and still leave those
gaps; about twenty methods cover everything here and keep torch an optional, lazily imported extra.

How to use it
-------------
::

    from spectheory._backend import get_backend

    def my_quantity(p, q):            # p, q: (B, V) float arrays of one backend
        xp = get_backend(p, q)        # NumpyBackend or TorchBackend, chosen by the input's type
        m = xp.minimum(p, q)
        return xp.sum(m, axis=-1)     # same code for numpy.ndarray and torch.Tensor (CPU or CUDA)

* :func:`get_backend` picks the backend from the argument types (any ``torch.Tensor`` → torch).
* :func:`as_rows` turns validated input (``(V,)`` or ``(B, V)``; NumPy, lists, torch tensors of
  float32 / float64 / bfloat16 / float16, ``requires_grad`` accepted and detached) into float64
  (B, V) arrays of the same backend and device, and says whether the caller passed a batch.
* :meth:`Backend.to_output` turns a float64 result back into the caller's array type (a NumPy array,
  or a torch tensor on the input's device).
* :func:`sort_by_ratio` is the shared ratio sort (p/q ascending, q = 0 last) with prefix and suffix
  sums, used by every quantity whose formula is a sum over the sorted prefixes. Its keys are
  (p · 2^-64)/q (:data:`RATIO_SCALE`, no overflow for subnormal q): search it with
  :func:`count_at_most` / :func:`min_sum`, which take true ratios.

The methods mirror NumPy names with an ``axis`` argument (``axis=-1``, the vocabulary, by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is optional
        return None
    return torch


def is_torch(x) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch if it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class NumpyBackend:
    """NumPy implementation of the backend operations (float64 on the CPU)."""

    name = "numpy"
    is_torch = False
    inf = math.inf

    # ---- conversion -------------------------------------------------------------------------
    def device_of(self, x):
        return "cpu"

    def is_cpu(self, x) -> bool:
        return True

    def asarray(self, x, like=None, dtype=np.float64):
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def from_numpy(self, a, like=None):
        return np.asarray(a)

    def to_output(self, x):
        return np.asarray(x, dtype=np.float64)

    def index(self, values, like=None):
        return np.asarray(values, dtype=np.int64)

    # ---- creation ---------------------------------------------------------------------------
    def zeros(self, shape, like=None, dtype=None):
        return np.zeros(shape, dtype=np.float64 if dtype is None else dtype)

    def ones(self, shape, like=None, dtype=None):
        return np.ones(shape, dtype=np.float64 if dtype is None else dtype)

    def full(self, shape, value, like=None):
        return np.full(shape, value, dtype=np.float64)

    def arange(self, n, like=None):
        return np.arange(n, dtype=np.int64)

    # ---- elementwise --------------------------------------------------------------------------
    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    log = staticmethod(np.log)
    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log1p = staticmethod(np.log1p)
    isfinite = staticmethod(np.isfinite)

    def clip(self, x, lo=None, hi=None):
        return np.clip(x, lo, hi)

    # ---- reductions -------------------------------------------------------------------------
    def sum(self, x, axis=-1, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    def min(self, x, axis=-1, keepdims=False):
        return np.min(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis=-1, keepdims=False):
        return np.max(x, axis=axis, keepdims=keepdims)

    def any(self, x) -> bool:
        return bool(np.any(x))

    def count_nonzero(self, x, axis=-1):
        return np.count_nonzero(x, axis=axis).astype(np.int64)

    def argmax(self, x, axis=-1, keepdims=False):
        a = np.argmax(x, axis=axis)  # first maximum
        return np.expand_dims(a, axis) if keepdims else a

    def cumsum(self, x, axis=-1):
        return np.cumsum(x, axis=axis)

    def flip(self, x, axis=-1):
        return np.flip(x, axis=axis)

    def concat(self, xs, axis=-1):
        return np.concatenate(xs, axis=axis)

    def stack(self, xs, axis=-1):
        return np.stack(xs, axis=axis)

    # ---- indexing -----------------------------------------------------------------------------
    def argsort(self, x, axis=-1, stable=False):
        return np.argsort(x, axis=axis, kind="stable" if stable else None)

    def take(self, x, idx, axis=-1):
        """``take_along_axis``: x[b, idx[b, j]]."""
        return np.take_along_axis(x, idx, axis=axis)

    def scatter(self, x, idx, value):
        """A copy of ``x`` (B, V) with x[b, idx[b, j]] = value."""
        out = np.array(x, copy=True)
        np.put_along_axis(out, idx, value, axis=-1)
        return out

    def searchsorted(self, sorted_rows, values, side="left"):
        """Row-wise ``searchsorted``: for (B, V) ascending rows and (B, N) values, (B, N) int64."""
        B = sorted_rows.shape[0]
        out = np.empty(values.shape, dtype=np.int64)
        for b in range(B):
            out[b] = np.searchsorted(sorted_rows[b], values[b], side=side)
        return out

    def topk(self, x, k: int):
        """The k largest entries of each row and their indices, descending, lower index first on ties."""
        V = x.shape[-1]
        k = min(int(k), V)
        if k == 0:
            return x[:, :0], np.zeros((x.shape[0], 0), dtype=np.int64)
        if k < V:
            part = np.argpartition(-x, k - 1, axis=-1)[:, :k]
            vals = np.take_along_axis(x, part, axis=-1)
            kth = vals.min(axis=-1, keepdims=True)
            # rows where the cut value has ties outside the partition need the exact lower-index rule
            n_ge = np.count_nonzero(x >= kth, axis=-1)
            if np.any(n_ge > k):
                bad = np.flatnonzero(n_ge > k)
                full = np.argsort(-x[bad], axis=-1, kind="stable")[:, :k]
                part = part.copy()
                part[bad] = full
                vals = np.take_along_axis(x, part, axis=-1)
            # order the k by (value descending, index ascending)
            o = np.lexsort((part, -vals), axis=-1)
            idx = np.take_along_axis(part, o, axis=-1)
        else:
            idx = np.argsort(-x, axis=-1, kind="stable")
        return np.take_along_axis(x, idx, axis=-1), idx


class TorchBackend(NumpyBackend):
    """torch implementation (any device; float64 arithmetic unless the caller chose otherwise)."""

    name = "torch"
    is_torch = True

    def __init__(self):
        self.torch = _torch()

    def device_of(self, x):
        return x.device

    def is_cpu(self, x) -> bool:
        return x.device.type == "cpu"

    def asarray(self, x, like=None, dtype=None):
        t = self.torch
        dtype = t.float64 if dtype is None else dtype
        if isinstance(x, t.Tensor):
            return x.detach().to(dtype=dtype)
        return t.as_tensor(np.asarray(x), dtype=dtype, device=None if like is None else like.device)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy()

    def from_numpy(self, a, like=None):
        t = self.torch.from_numpy(np.ascontiguousarray(a))
        return t if like is None else t.to(like.device)

    def to_output(self, x):
        return x.to(dtype=self.torch.float64)

    def index(self, values, like=None):
        return self.torch.as_tensor(np.asarray(values, dtype=np.int64), device=None if like is None else like.device)

    def zeros(self, shape, like=None, dtype=None):
        t = self.torch
        return t.zeros(shape, dtype=t.float64 if dtype is None else dtype, device=None if like is None else like.device)

    def ones(self, shape, like=None, dtype=None):
        t = self.torch
        return t.ones(shape, dtype=t.float64 if dtype is None else dtype, device=None if like is None else like.device)

    def full(self, shape, value, like=None):
        t = self.torch
        return t.full(shape, value, dtype=t.float64, device=None if like is None else like.device)

    def arange(self, n, like=None):
        return self.torch.arange(n, device=None if like is None else like.device)

    def where(self, c, a, b):
        t = self.torch
        if not isinstance(a, t.Tensor):
            a = t.as_tensor(a, dtype=b.dtype if isinstance(b, t.Tensor) else t.float64, device=c.device)
        if not isinstance(b, t.Tensor):
            b = t.as_tensor(b, dtype=a.dtype, device=c.device)
        return t.where(c, a, b)

    def minimum(self, a, b):
        t = self.torch
        if not isinstance(b, t.Tensor):
            return t.clamp(a, max=b)
        if not isinstance(a, t.Tensor):
            return t.clamp(b, max=a)
        return t.minimum(a, b)

    def maximum(self, a, b):
        t = self.torch
        if not isinstance(b, t.Tensor):
            return t.clamp(a, min=b)
        if not isinstance(a, t.Tensor):
            return t.clamp(b, min=a)
        return t.maximum(a, b)

    def log(self, x):
        return self.torch.log(x)

    def exp(self, x):
        return self.torch.exp(x)

    def expm1(self, x):
        return self.torch.expm1(x)

    def log1p(self, x):
        return self.torch.log1p(x)

    def isfinite(self, x):
        return self.torch.isfinite(x)

    def clip(self, x, lo=None, hi=None):
        return self.torch.clamp(x, min=lo, max=hi)

    def sum(self, x, axis=-1, keepdims=False):
        return x.sum(dim=axis, keepdim=keepdims)

    def min(self, x, axis=-1, keepdims=False):
        return x.amin(dim=axis, keepdim=keepdims)

    def max(self, x, axis=-1, keepdims=False):
        return x.amax(dim=axis, keepdim=keepdims)

    def any(self, x) -> bool:
        return bool(x.any())

    def count_nonzero(self, x, axis=-1):
        return x.sum(dim=axis, dtype=self.torch.int64)

    def argmax(self, x, axis=-1, keepdims=False):
        return self.torch.argmax(x, dim=axis, keepdim=keepdims)  # first maximum, as NumPy

    def cumsum(self, x, axis=-1):
        return self.torch.cumsum(x, dim=axis)

    def flip(self, x, axis=-1):
        return self.torch.flip(x, [axis])

    def concat(self, xs, axis=-1):
        return self.torch.cat(list(xs), dim=axis)

    def stack(self, xs, axis=-1):
        return self.torch.stack(list(xs), dim=axis)

    def argsort(self, x, axis=-1, stable=False):
        """On the CPU NumPy's SIMD sort is several times faster than torch's; the order among equal
        keys is then unspecified unless ``stable``."""
        if x.device.type == "cpu" and axis in (-1, x.ndim - 1):
            return self.torch.from_numpy(np.argsort(x.numpy(), axis=-1, kind="stable" if stable else None))
        return self.torch.sort(x, dim=axis, stable=stable).indices

    def take(self, x, idx, axis=-1):
        return self.torch.gather(x, axis, idx)

    def scatter(self, x, idx, value):
        return x.scatter(-1, idx, value)

    def searchsorted(self, sorted_rows, values, side="left"):
        return self.torch.searchsorted(sorted_rows.contiguous(), values.contiguous(), side=side)

    def topk(self, x, k: int):
        t = self.torch
        V = x.shape[-1]
        k = min(int(k), V)
        if k == 0:
            return x[:, :0], t.zeros((x.shape[0], 0), dtype=t.int64, device=x.device)
        vals, idx = t.topk(x, k, dim=-1, sorted=True)
        # equal values: torch does not promise the lower index first; redo those rows stably
        kth = vals[:, -1:]
        tied = (x == kth).sum(dim=-1) > 1
        if k > 1:
            tied = tied | (vals[:, 1:] == vals[:, :-1]).any(dim=-1)
        if bool(tied.any()):
            idx = idx.clone()
            idx[tied] = t.sort(x[tied], dim=-1, descending=True, stable=True).indices[:, :k]
            vals = t.gather(x, 1, idx)
        return vals, idx


_NUMPY = NumpyBackend()
_TORCH = None


def get_backend(*xs):
    """The backend of the arguments: torch if any of them is a torch tensor, else NumPy."""
    global _TORCH
    if any(is_torch(x) for x in xs):
        if _TORCH is None:
            _TORCH = TorchBackend()
        return _TORCH
    return _NUMPY


def as_rows(x, name: str, xp=None):
    """Float64 rows (B, V) of ``x`` in its own backend (device kept), and whether ``x`` was a batch.

    Torch tensors of any float dtype (bf16, float16, float32, float64) are detached and converted to
    float64 on their device; NumPy input and lists become float64 NumPy arrays. The checks of
    :mod:`spectheory._validation` (shape, finiteness, sign, sum) are applied by the caller.
    """
    xp = xp or get_backend(x)
    a = xp.asarray(x)
    if a.ndim == 1:
        return a[None, :], False
    return a, True


# --------------------------------------------------------------------------------------------
# the shared ratio sort
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SortedRatios:
    """Rows sorted by p/q ascending (q = 0 last, ratio +∞). Prefix arrays have V + 1 entries (index
    k = the first k sorted tokens); ``*_above`` are summed from the back, so small tails keep their
    relative accuracy."""

    order: object  # (B, V) token ids in sorted order
    ratio: object  # (B, V) sorted keys (p · 2^-64)/q (:data:`RATIO_SCALE`), +inf where q = 0
    p: object  # (B, V) p in sorted order
    q: object  # (B, V)
    p_below: object  # (B, V + 1) Σ_{j<k} p_j
    q_below: object  # (B, V + 1) Σ_{j<k} q_j
    p_above: object  # (B, V + 1) Σ_{j≥k} p_j
    q_above: object  # (B, V + 1) Σ_{j≥k} q_j


def prefix_sums(xp, x):
    """(B, V + 1): 0, x_0, x_0 + x_1, ..."""
    return xp.concat([xp.zeros((x.shape[0], 1), like=x, dtype=x.dtype), xp.cumsum(x, axis=-1)], axis=-1)


def suffix_sums(xp, x):
    """(B, V + 1): Σ_{j≥k} x_j summed from the back, last entry 0."""
    return xp.concat(
        [xp.flip(xp.cumsum(xp.flip(x, -1), axis=-1), -1), xp.zeros((x.shape[0], 1), like=x, dtype=x.dtype)], axis=-1
    )


#: Ratios are compared as (p · 2^-64) / q: never +inf for q > 0 (p/q itself overflows when q is
#: subnormal, and the false ties at +inf put tokens whose true ratios differ by many orders of magnitude
#: in arbitrary order; that made the without-replacement bound wrong). Underflow on the other side only
#: merges ratios below ~1e-290, whose order changes any prefix value by less than their p mass.
RATIO_SCALE = 2.0**-64


def ratio(xp, p, q):
    """The sort key (p · 2^-64)/q, +inf where q = 0 (see :data:`RATIO_SCALE`); multiply by 2^64 for p/q."""
    pos = q > 0
    return xp.where(pos, (p * RATIO_SCALE) / xp.where(pos, q, 1.0), math.inf)


def sort_by_ratio(p, q, xp=None) -> SortedRatios:
    """The rows of (p, q) sorted by p/q ascending, with prefix and suffix sums (any backend)."""
    xp = xp or get_backend(p, q)
    r = ratio(xp, p, q)
    order = xp.argsort(r, axis=-1)
    rs = xp.take(r, order)
    ps = xp.take(p, order)
    qs = xp.take(q, order)
    return SortedRatios(order, rs, ps, qs, prefix_sums(xp, ps), prefix_sums(xp, qs), suffix_sums(xp, ps), suffix_sums(xp, qs))


def count_at_most(sr: SortedRatios, x, xp=None):
    """#{tokens with p/q ≤ x} per row for thresholds x of shape (B, N) (true ratios, not keys)."""
    xp = xp or get_backend(sr.ratio)
    return xp.searchsorted(sr.ratio, x * RATIO_SCALE, side="right")


def min_sum(sr: SortedRatios, c, xp=None):
    """G(c) = Σ_x min(p(x), c q(x)) = Σ_{p/q ≤ c} p + c Σ_{p/q > c} q for c of shape (B, N)."""
    xp = xp or get_backend(sr.ratio)
    k = count_at_most(sr, c, xp)
    return xp.take(sr.p_below, k) + c * xp.take(sr.q_above, k)
