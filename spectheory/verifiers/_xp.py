"""The few array operations the batched verifier acceptances need, for NumPy arrays and torch tensors.

:mod:`spectheory.verifiers.batched` is written once against this namespace; :func:`namespace`
picks the implementation from the input's type, so NumPy input stays NumPy (CPU) and torch input
stays torch on its own device. Only operations that differ between the two libraries are here
(``take`` = ``take_along_axis`` / ``gather``, row-wise ``searchsorted``, ``cumsum``, ``clip``, ...);
arithmetic and comparisons are the arrays' own operators. torch is imported lazily, only when a
tensor is passed.
"""

from __future__ import annotations

import numpy as np


class _NumPy:
    name = "numpy"
    int64 = np.int64
    bool_ = np.bool_

    @staticmethod
    def float_dtype(x):
        return x.dtype

    @staticmethod
    def finfo_max(x):
        return float(np.finfo(x.dtype).max)

    @staticmethod
    def eps(x):
        return float(np.finfo(x.dtype).eps)

    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    expm1 = staticmethod(np.expm1)
    sqrt = staticmethod(np.sqrt)
    exp = staticmethod(np.exp)
    log1p = staticmethod(np.log1p)
    isfinite = staticmethod(np.isfinite)

    @staticmethod
    def clip(x, lo=None, hi=None):
        return np.clip(x, lo, hi)

    @staticmethod
    def sum(x, axis=-1, keepdims=False):
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def cumsum(x, axis=-1):
        return np.cumsum(x, axis=axis)

    @staticmethod
    def flip(x, axis=-1):
        return np.flip(x, axis=axis)

    @staticmethod
    def cat(xs, axis=-1):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def stack(xs, axis=-1):
        return np.stack(xs, axis=axis)

    @staticmethod
    def take(a, idx):
        """a[..., idx] along the last axis, row by row (``take_along_axis``); idx has a's ndim."""
        return np.take_along_axis(a, idx, axis=-1)

    @staticmethod
    def put(a, idx, values):
        """Copy of ``a`` with a[row, idx[row, j]] = values[row, j] (2-D)."""
        out = a.copy()
        np.put_along_axis(out, idx, values, axis=-1)
        return out

    @staticmethod
    def argsort_rows(x):
        return np.argsort(x, axis=-1)

    @staticmethod
    def searchsorted(sorted_rows, x, side="left"):
        """Row-wise: for sorted_rows (B, V) and x (B, ...), the insertion index of each x[b] in row b."""
        out = np.empty(x.shape, dtype=np.int64)
        for b in range(x.shape[0]):
            out[b] = np.searchsorted(sorted_rows[b], x[b].ravel(), side=side).reshape(x.shape[1:])
        return out

    @staticmethod
    def topk_indices(x, k):
        """Indices of the k largest entries of each row, largest first, lower index first on ties."""
        if k <= 0:
            return np.zeros((x.shape[0], 0), dtype=np.int64)
        return np.argsort(-x, axis=-1, kind="stable")[:, :k]

    @staticmethod
    def zeros(shape, like, dtype=None):
        return np.zeros(shape, dtype=like.dtype if dtype is None else dtype)

    @staticmethod
    def ones(shape, like, dtype=None):
        return np.ones(shape, dtype=like.dtype if dtype is None else dtype)

    @staticmethod
    def full(shape, value, like, dtype=None):
        return np.full(shape, value, dtype=like.dtype if dtype is None else dtype)

    @staticmethod
    def arange(n, like, dtype=np.int64):
        return np.arange(n, dtype=dtype)

    @staticmethod
    def asarray(values, like, dtype=None):
        return np.asarray(values, dtype=like.dtype if dtype is None else dtype)

    @staticmethod
    def astype(x, dtype):
        return x.astype(dtype)

    @staticmethod
    def any(x) -> bool:
        return bool(np.any(x))

    @staticmethod
    def any_axis(x, axis=-1):
        return np.any(x, axis=axis)

    @staticmethod
    def to_numpy(x):
        return np.asarray(x)

    @staticmethod
    def from_numpy(a, like):
        return a

    @staticmethod
    def std(x, axis):
        return x.std(axis=axis, ddof=1)

    @staticmethod
    def mean(x, axis):
        return x.mean(axis=axis)


class _Torch:
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch
        self.int64 = torch.int64
        self.bool_ = torch.bool
        self.where = torch.where
        self.minimum = torch.minimum
        self.maximum = torch.maximum
        self.expm1 = torch.expm1
        self.sqrt = torch.sqrt
        self.exp = torch.exp
        self.log1p = torch.log1p
        self.isfinite = torch.isfinite

    @staticmethod
    def float_dtype(x):
        return x.dtype

    def finfo_max(self, x):
        return float(self.torch.finfo(x.dtype).max)

    def eps(self, x):
        return float(self.torch.finfo(x.dtype).eps)

    def clip(self, x, lo=None, hi=None):
        return self.torch.clamp(x, lo, hi)

    @staticmethod
    def sum(x, axis=-1, keepdims=False):
        return x.sum(dim=axis, keepdim=keepdims)

    def cumsum(self, x, axis=-1):
        return self.torch.cumsum(x, dim=axis)

    def flip(self, x, axis=-1):
        return self.torch.flip(x, [axis])

    def cat(self, xs, axis=-1):
        return self.torch.cat(xs, dim=axis)

    def stack(self, xs, axis=-1):
        return self.torch.stack(xs, dim=axis)

    def take(self, a, idx):
        return self.torch.gather(a, a.ndim - 1, idx)

    @staticmethod
    def put(a, idx, values):
        return a.scatter(a.ndim - 1, idx, values)

    def argsort_rows(self, x):
        # NumPy's (SIMD) sort is several times faster than torch's on CPU; equal keys' order is
        # unspecified either way and nothing depends on it
        if x.device.type == "cpu":
            return self.torch.from_numpy(np.argsort(x.numpy(), axis=-1))
        return self.torch.sort(x, dim=-1).indices

    def searchsorted(self, sorted_rows, x, side="left"):
        B = x.shape[0]
        flat = x.reshape(B, -1).contiguous()
        return self.torch.searchsorted(sorted_rows, flat, side=side).reshape(x.shape)

    def topk_indices(self, x, k):
        torch = self.torch
        if k <= 0:
            return torch.zeros((x.shape[0], 0), dtype=torch.int64, device=x.device)
        vals, idx = torch.topk(x, k, dim=-1, sorted=True)
        if k > 1 or x.shape[-1] > 1:
            # ties among (or at the edge of) the top k: a stable full sort for those rows
            kth = vals[:, -1:]
            tied = ((x == kth).sum(dim=-1) > 1) | ((vals[:, 1:] == vals[:, :-1]).any(dim=-1) if k > 1 else False)
            if bool(tied.any()):
                idx = idx.clone()
                idx[tied] = torch.sort(x[tied], dim=-1, descending=True, stable=True).indices[:, :k]
        return idx

    def zeros(self, shape, like, dtype=None):
        return self.torch.zeros(shape, dtype=like.dtype if dtype is None else dtype, device=like.device)

    def ones(self, shape, like, dtype=None):
        return self.torch.ones(shape, dtype=like.dtype if dtype is None else dtype, device=like.device)

    def full(self, shape, value, like, dtype=None):
        return self.torch.full(shape, value, dtype=like.dtype if dtype is None else dtype, device=like.device)

    def arange(self, n, like, dtype=None):
        return self.torch.arange(n, dtype=self.torch.int64 if dtype is None else dtype, device=like.device)

    def asarray(self, values, like, dtype=None):
        return self.torch.as_tensor(values, dtype=like.dtype if dtype is None else dtype, device=like.device)

    @staticmethod
    def astype(x, dtype):
        return x.to(dtype)

    @staticmethod
    def any(x) -> bool:
        return bool(x.any())

    @staticmethod
    def any_axis(x, axis=-1):
        return x.any(dim=axis)

    @staticmethod
    def to_numpy(x):
        return x.detach().to("cpu").numpy()

    def from_numpy(self, a, like):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device)

    @staticmethod
    def std(x, axis):
        return x.std(dim=axis, correction=1)

    @staticmethod
    def mean(x, axis):
        return x.mean(dim=axis)


_NUMPY = _NumPy()
_TORCH = None


def is_torch(x) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def namespace(x):
    """The operations for ``x``'s array type: NumPy for anything that is not a torch tensor."""
    global _TORCH
    if is_torch(x):
        if _TORCH is None:
            _TORCH = _Torch()
        return _TORCH
    return _NUMPY
