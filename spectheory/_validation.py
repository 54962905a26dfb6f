"""Validation at the public boundary.

Every public function funnels its array arguments through these helpers, so a bad input fails in one
place, with a message that names the argument and the problem. All errors are :class:`ValueError`
(the CLI turns them into one line and exit status 2).

Conventions
-----------
* Probability vectors have shape ``(V,)`` (one position) or ``(B, V)`` (a batch of positions).
* Entries must be finite and non-negative, and each row must sum to 1 within ``SUM_RTOL``
  (relative to 1). Rows are then renormalised to sum to 1 exactly in float64, so float32
  probabilities (softmax output) are accepted.
"""

from __future__ import annotations

import numbers

import numpy as np

#: Relative tolerance on ``sum(p) == 1``. Float32 softmax output over 256k tokens sums to 1 within
#: about 1e-6; anything further off is a bug in the caller (unnormalised counts, logits passed as
#: probabilities, ...), not rounding.
SUM_RTOL = 1e-5


#: Largest draft count for code that stores n in int64 or float64 exactly. :func:`check_n` has no
#: default limit: the bounds and the exact acceptances answer any n (as n grows they settle to their
#: n → ∞ limits, computed without stepping n times); functions whose cost grows with n (sampling n
#: drafts, replay, Monte Carlo, the LP) state a limit of their own.
MAX_N = 2**53


class SpecTheoryValueError(ValueError):
    """A user error at the public boundary (bad array, impossible n, problem too large)."""


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None,
              why: str = "") -> int:
    """Return ``value`` as a Python int, or raise naming ``name``.

    Accepted: Python and NumPy integers, and floats with an integral value (``2.0``); refused:
    ``bool`` (``True`` is not a count), non-integral or non-finite numbers, strings, arrays, and
    values outside ``[minimum, maximum]``. Checks happen before anything is allocated, so a huge
    value fails at once; ``why`` explains an upper limit in the message (``"the LP has
    V**n columns"``).
    """
    if isinstance(value, (bool, np.bool_)):
        raise SpecTheoryValueError(f"{name}: must be an integer, got the boolean {value!r}")
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif isinstance(value, numbers.Real) and np.isfinite(float(value)) and float(value).is_integer():
        value = int(value)
    else:
        bound = f" >= {minimum}" if minimum is not None else ""
        raise SpecTheoryValueError(f"{name}: must be an integer{bound}, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecTheoryValueError(f"{name}: must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        reason = f" ({why})" if why else ""
        raise SpecTheoryValueError(f"{name}: must be <= {maximum}{reason}, got {value}")
    return value


def check_n(n, name: str = "n", *, maximum: int | None = None, why: str = "") -> int:
    """Return the draft count ``n`` as a Python int, or raise if it is not an integer >= 1 (``bool``
    refused), or above ``maximum`` when one is given (see :func:`check_int`)."""
    return check_int(n, name, minimum=1, maximum=maximum, why=why)


def check_distribution(x, name: str, *, allow_batch: bool = True) -> np.ndarray:
    """Validate a probability vector or a batch of them and return it as float64, renormalised.

    Parameters
    ----------
    x : array_like, shape (V,) or (B, V)
    name : str
        The argument's name, used in error messages (``"p"``, ``"q"``, ...).
    allow_batch : bool
        Whether a 2-D batch is accepted.
    """
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecTheoryValueError(f"{name}: not a numeric array ({exc})") from None
    if a.ndim == 0:
        raise SpecTheoryValueError(f"{name}: expected an array of shape (V,) or (B, V), got a scalar")
    if a.ndim > 2 or (a.ndim == 2 and not allow_batch):
        want = "(V,) or (B, V)" if allow_batch else "(V,)"
        raise SpecTheoryValueError(f"{name}: expected shape {want}, got {a.shape}")
    if a.shape[-1] == 0 or (a.ndim == 2 and a.shape[0] == 0):
        raise SpecTheoryValueError(f"{name}: empty array of shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise SpecTheoryValueError(
            f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})"
        )
    if np.any(a < 0):
        bad = np.argwhere(a < 0)[0]
        raise SpecTheoryValueError(
            f"{name}: negative probability {a[tuple(bad)]:.3g} at index {tuple(int(i) for i in bad)}"
        )
    sums = a.sum(axis=-1, keepdims=True)
    off = np.abs(sums - 1.0)
    if np.any(off > SUM_RTOL):
        worst = float(np.ravel(sums)[np.argmax(np.ravel(off))])
        raise SpecTheoryValueError(
            f"{name}: does not sum to 1 (sum = {worst:.9g}; relative tolerance {SUM_RTOL:g}); "
            "pass probabilities, or logits through st.from_logits"
        )
    return a / sums


def check_pair(p, q, n, sampling: str):
    """Validate target ``p``, draft ``q`` and draft count ``n`` for a draft scheme.

    Returns ``(p2, q2, n, batched)`` with ``p2`` of shape (B, V) and ``q2`` of shape (B, V), or
    (B, n, V) for ``sampling="independent"``; ``batched`` says whether the caller passed a batch.
    """
    n = check_n(n)
    p_arr = check_distribution(p, "p")
    batched = p_arr.ndim == 2
    V = p_arr.shape[-1]
    if sampling == "independent":
        q_arr = np.asarray(q, dtype=np.float64) if not isinstance(q, np.ndarray) else q
        want_ndim = 3 if batched else 2
        if np.ndim(q_arr) != want_ndim:
            shape = "(B, n, V)" if batched else "(n, V)"
            raise SpecTheoryValueError(
                f"q: sampling='independent' needs one draft distribution per drafter, shape {shape}; "
                f"got shape {np.shape(q_arr)}"
            )
        q_flat = check_distribution(np.reshape(q_arr, (-1, np.shape(q_arr)[-1])), "q")
        q_arr = q_flat.reshape(np.shape(q_arr))
        if q_arr.shape[-2] != n:
            raise SpecTheoryValueError(
                f"q: sampling='independent' has {q_arr.shape[-2]} drafter rows but n = {n}"
            )
    else:
        q_arr = check_distribution(q, "q")
    if q_arr.shape[-1] != V:
        raise SpecTheoryValueError(
            f"p and q: vocabulary sizes differ (p has V = {V}, q has V = {q_arr.shape[-1]})"
        )
    if batched != (q_arr.ndim == (3 if sampling == "independent" else 2)):
        raise SpecTheoryValueError(
            f"p and q: one is a batch and the other is not (p shape {p_arr.shape}, q shape {q_arr.shape})"
        )
    if batched and q_arr.shape[0] != p_arr.shape[0]:
        raise SpecTheoryValueError(
            f"p and q: batch sizes differ (p has {p_arr.shape[0]} rows, q has {q_arr.shape[0]})"
        )
    if not batched:
        p_arr = p_arr[None]
        q_arr = q_arr[None]
    return p_arr, q_arr, n, batched


def check_single_pair(p, q, n, scheme):
    """Validate one position: ``p`` of shape (V,), ``q`` as the draft scheme expects it ((V,), or
    (n, V) for independent drafters), and ``n``. Returns ``(p, q, n)`` as float64 arrays and int."""
    p = check_distribution(p, "p", allow_batch=False)
    q = scheme.check_q(q)
    n = check_n(n)
    if q.shape[-1] != p.shape[0]:
        raise SpecTheoryValueError(
            f"p and q: vocabulary sizes differ (p has V = {p.shape[0]}, q has V = {q.shape[-1]})"
        )
    return p, q, n


def check_rows(x, name: str):
    """Validate a probability vector or batch given as a NumPy array, list or torch tensor.

    Returns ``(rows, batched)``: float64 rows (B, V) of the input's own backend (torch tensors stay
    torch, on their device, detached; bf16 / float16 / float32 are converted to float64), each row
    renormalised to sum to 1; the checks and messages are those of :func:`check_distribution` (the sum
    tolerance is at least the machine epsilon of the tensor's dtype, 2^-7 for bfloat16).
    """
    from ._backend import get_backend

    xp = get_backend(x)
    if not xp.is_torch:
        a = check_distribution(x, name)
        return (a, True) if a.ndim == 2 else (a[None, :], False)
    torch = xp.torch
    t = x.detach()
    if t.dtype == torch.bool or t.is_complex():
        raise SpecTheoryValueError(f"{name}: not a numeric array (tensor of dtype {t.dtype})")
    # the sum check allows the rounding of the input's own dtype (bf16 rows sum to 1 within ~2^-9)
    tol = max(SUM_RTOL, float(torch.finfo(t.dtype).eps)) if t.is_floating_point() else SUM_RTOL
    t = t.to(torch.float64)
    if t.ndim == 0:
        raise SpecTheoryValueError(f"{name}: expected an array of shape (V,) or (B, V), got a scalar")
    if t.ndim > 2:
        raise SpecTheoryValueError(f"{name}: expected shape (V,) or (B, V), got {tuple(t.shape)}")
    if t.shape[-1] == 0 or (t.ndim == 2 and t.shape[0] == 0):
        raise SpecTheoryValueError(f"{name}: empty array of shape {tuple(t.shape)}")
    batched = t.ndim == 2
    if not batched:
        t = t[None, :]
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        i = tuple(int(v) for v in torch.nonzero(bad)[0])
        raise SpecTheoryValueError(f"{name}: contains NaN or inf (first at index {i if batched else i[1:]})")
    neg = t < 0
    if bool(neg.any()):
        i = tuple(int(v) for v in torch.nonzero(neg)[0])
        raise SpecTheoryValueError(
            f"{name}: negative probability {float(t[i]):.3g} at index {i if batched else i[1:]}"
        )
    sums = t.sum(dim=-1, keepdim=True)
    off = (sums - 1.0).abs()
    if bool((off > tol).any()):
        worst = float(sums.flatten()[int(torch.argmax(off.flatten()))])
        raise SpecTheoryValueError(
            f"{name}: does not sum to 1 (sum = {worst:.9g}; relative tolerance {tol:g}); "
            "pass probabilities, or logits through st.from_logits"
        )
    return t / sums, batched
