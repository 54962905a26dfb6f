"""From logits to probabilities, with temperature, top-k and top-p (REFERENCE §5: apply the same
processing to both target and draft before any bound or verifier)."""

from __future__ import annotations

import numbers

import numpy as np

from ._validation import SpecTheoryValueError


def from_logits(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
    """Softmax of ``logits / temperature`` after top-k and top-p filtering, batched and stable.

    The processing follows Hugging Face's logits warpers in their order: temperature, then top-k
    (keep every token whose logit is at least the k-th largest, so ties at the boundary are kept),
    then top-p (keep the smallest set of most likely tokens whose probability reaches ``top_p``,
    at least one token). The softmax subtracts the row maximum first, so it neither overflows
    nor loses the argmax in float32 at small temperatures.

    ``temperature = 0`` is the limit T → 0: the uniform distribution over the maximal logits
    (a one-hot vector when the maximum is unique). Any positive finite temperature is exact, also one
    that is 0 or infinite in the logits' float32 (1e-46, 1e39): the division is then done in float64.

    Parameters
    ----------
    logits : array_like, shape (..., V)
        Float logits (float16/32/64). ``-inf`` marks a masked token; NaN and ``+inf`` are errors.
    temperature : float, >= 0
    top_k : int >= 1 or None
    top_p : float in (0, 1] or None

    Returns
    -------
    numpy.ndarray
        Probabilities of the same shape, in float64 for float64 input and float32 otherwise.

    Examples
    --------
    >>> import spectheory as st
    >>> st.from_logits([2.0, 1.0, 0.0], temperature=0).tolist()
    [1.0, 0.0, 0.0]
    >>> st.from_logits([[0.0, 0.0, -1e9]], top_k=1).tolist()
    [[0.5, 0.5, 0.0]]
    """
    x = np.asarray(logits)
    if x.dtype.kind not in "fiu":
        raise SpecTheoryValueError(f"logits: expected a float array, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise SpecTheoryValueError(f"logits: expected shape (..., V) with V >= 1, got {x.shape}")
    out_dtype = np.float64 if x.dtype == np.float64 else np.float32
    x = x.astype(out_dtype, copy=True)
    if np.any(np.isnan(x)) or np.any(np.isposinf(x)):
        raise SpecTheoryValueError("logits: contains NaN or +inf")
    if np.any(np.all(np.isneginf(x), axis=-1)):
        raise SpecTheoryValueError("logits: a row is entirely -inf (no token left)")
    if not isinstance(temperature, numbers.Real) or not np.isfinite(temperature) or temperature < 0:
        raise SpecTheoryValueError(f"temperature: must be a finite number >= 0, got {temperature!r}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise SpecTheoryValueError(f"top_k: must be an integer >= 1 or None, got {top_k!r}")
    if top_p is not None:
        if not isinstance(top_p, numbers.Real) or not (0 < top_p <= 1):
            raise SpecTheoryValueError(f"top_p: must lie in (0, 1] or be None, got {top_p!r}")

    x = x - np.max(x, axis=-1, keepdims=True)  # row max becomes 0; -inf stays -inf
    if temperature == 0:
        probs = (x == 0).astype(out_dtype)
        return probs / probs.sum(axis=-1, keepdims=True)
    info = np.finfo(out_dtype)
    if out_dtype != np.float64 and not (float(info.tiny) <= temperature <= float(info.max)):
        # a positive temperature that is 0, subnormal or inf in float32 (1e-46, 1e39): divide in
        # float64, where it is a normal number (0 / 0 or -inf / inf would give NaN)
        x = x.astype(np.float64) / float(temperature)
    else:
        x = x / out_dtype(temperature)
    if top_k is not None and top_k < x.shape[-1]:
        kth = -np.partition(-x, top_k - 1, axis=-1)[..., top_k - 1 : top_k]
        x = np.where(x < kth, -np.inf, x)
    with np.errstate(under="ignore"):
        e = np.exp(x)
    probs = e / e.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1)
        # mass strictly before each token in descending order; keep a token while that mass < top_p
        before = np.cumsum(sorted_p, axis=-1) - sorted_p
        keep_sorted = before < top_p
        keep_sorted[..., 0] = True
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = np.where(keep, probs, 0)
        probs = probs / probs.sum(axis=-1, keepdims=True)
    return probs.astype(out_dtype, copy=False)
