"""The optimal-acceptance bounds, each implemented once: batched over (B, V), every n in one pass.

Every entry point (``st.optimal_acceptance``, ``st.compare``, the ``bound`` command and
``spectheory.simulations.replay``) calls :func:`bound_rows`. It takes validated float64 rows of one
backend (NumPy arrays, or torch tensors on any device: :mod:`spectheory._backend`) and returns
α* of shape (B, len(ns)) in that backend, from one sort or bucketing per row shared by all n.

The bounds (subset dual α* = min_H [p(H) + 1 − C(H)], SpecTr arXiv 2310.15141, Hu et al. arXiv
2502.18779; see the theory pages of the documentation):

``iid``
    C(H) = q(H)^n. The minimum is over the V + 1 prefixes of the order p/q ascending (proved).
    CPU: the numba kernel :func:`spectheory.solvers.sorted_prefix.prefix_dual_rows` (three O(V)
    passes, no full sort); otherwise (CUDA, or a ratio sort given by the caller) the sorted prefix
    sums, min_k [P_k + 1 − (1 − S_k)^n] with S_k the draft mass after the prefix summed from the back.
``without_replacement``
    C(H) by the exponential-race quadrature; the minimum is over the same prefixes (proved: the
    without-replacement prefix theorem of the theory pages). CPU: the numba kernel (one state
    truncated at max(n) serves every smaller n), also for CUDA input (on a CPU copy); the same
    prefix dual and quadrature in backend array code (:mod:`spectheory.solvers._wor_array`, torch on
    any device or NumPy) is selected with ``kernel="array"``.
``greedy``
    p(T) + Σ_{x∉T} min(p(x), q(x)/m), T the k − 1 most likely draft tokens (lower index first on ties),
    k = min(n, |supp q|), m = q(Ω \\ T) summed directly. q/m is a division (no reciprocal), so a
    subnormal m gives the right limit.
``hub`` (n = 2)
    min(1, p(a) + Σ_{x≠a} min(p(x), q(x)/(1 − q(a)))), a = argmax q (first maximum); p(a) if q is
    one-hot.
``topk``
    Deterministic top-n drafts T (the k = min(n, |supp q|) most likely draft tokens, lower index first
    on ties): C(H) = [T ⊆ H], α* = p(T), attained by target-only verification.

Accuracy
--------
Every value is an exactly evaluated prefix (or closed form) in float64, clipped to [0, 1]. Rounding:
the prefix sums carry an absolute error of at most about V·2^-53 each, so for i.i.d. drafts
|computed − exact| ≤ (V + n + 4)·2^-53 (the power (1 − s)^n is taken as exp(n·log1p(−s)), relative
error ~n·2^-53·s). With disjoint supports and masses of 1e-300 elsewhere the exact value is ~1e-300
and the computed one is then below that bound (tested).

Huge n: i.i.d. exponents are used as floats capped at 1e300 (q(H)^n below q(H) = 1 is then 0 in
float64, as for the true n); distinct-draft schemes use min(n, |supp q|), and without replacement at
the full support is p(supp q) in closed form; a draft count between :data:`MAX_WOR_DRAFTS` and the
support is refused before any allocation. At most :data:`MAX_N_VALUES` draft counts per call.
"""

from __future__ import annotations

import numbers

import numpy as np

from spectheory._backend import get_backend, sort_by_ratio
from spectheory._validation import SpecTheoryValueError, check_n

SAMPLINGS = ("iid", "without_replacement", "greedy", "hub", "topk")
#: Most draft counts one call accepts (the result has one column per count).
MAX_N_VALUES = 10_000
#: Largest number of drafts without replacement below the full support (the quadrature state has
#: one row per draft count, so the work grows like n·V).
MAX_WOR_DRAFTS = 4096
#: i.i.d. exponents are capped here as floats (see the module docstring).
N_FLOAT_CAP = 10**300


def normalise_ns(n, name: str = "n"):
    """Validate ``n`` (an integer ≥ 1, or a non-empty sequence of them).

    Returns ``(ns, scalar)``: the list of draft counts as Python ints in the order given, and
    whether ``n`` was a single integer.
    """
    if isinstance(n, (numbers.Number, np.generic, str, bytes)) or getattr(n, "ndim", None) == 0:
        return [check_n(n.item() if hasattr(n, "item") else n, name)], True
    try:
        length = len(n)
    except TypeError:
        raise SpecTheoryValueError(f"{name}: expected an integer >= 1 or a sequence of them, got {n!r}") from None
    if length == 0:
        raise SpecTheoryValueError(f"{name}: no draft counts given")
    if length > MAX_N_VALUES:
        raise SpecTheoryValueError(
            f"{name}: {length} draft counts requested; at most {MAX_N_VALUES} per call (the result has one column per count)"
        )
    out = []
    for v in n:
        out.append(check_n(v.item() if hasattr(v, "item") else v, name))
    return out, False


def _distinct(ns):
    uniq = sorted(set(ns))
    pos = {v: i for i, v in enumerate(uniq)}
    return uniq, [pos[v] for v in ns]


def _gather_columns(xp, cols, index, like):
    """Stack the per-distinct-n columns (each (B,)) into (B, len(index)) in the requested order."""
    return xp.stack([cols[i] for i in index], axis=-1)


def bound_rows(p, q, ns, sampling: str, *, sr=None, kernel: str = "auto"):
    """α* of ``sampling`` for validated float64 rows ``p``, ``q`` (B, V), for every n in ``ns``.

    Parameters
    ----------
    p, q : numpy.ndarray or torch.Tensor, shape (B, V), float64
        Target and draft rows (validated and normalised by the caller), of one backend.
    ns : list of int
        Draft counts (any order, repeats allowed, each ≥ 1).
    sampling : {"iid", "without_replacement", "greedy", "hub", "topk"}
    sr : SortedRatios, optional
        The ratio sort of (p, q) if the caller already has it (replay shares it with the verifiers);
        then the i.i.d. bound reads it instead of running the CPU kernel.
    kernel : {"auto", "numba", "array"}
        ``"auto"``: numba on the CPU for iid (without ``sr``) and without_replacement, backend array
        code otherwise. ``"array"`` forces the backend array code (tests use it to compare the two
        on the CPU); ``"numba"`` forces the CPU kernel (input copied to the CPU if needed).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (B, len(ns)), float64, on the input's device.

    Examples
    --------
    >>> import numpy as np
    >>> from spectheory.solvers import bound_rows
    >>> p = np.array([[0.5, 0.3, 0.2]]); q = np.array([[0.2, 0.3, 0.5]])
    >>> bound_rows(p, q, [1, 2], "iid").round(12).tolist()
    [[0.7, 0.86]]
    >>> bound_rows(p, q, [1, 2, 3], "topk").round(12).tolist()
    [[0.2, 0.5, 1.0]]
    """
    xp = get_backend(p, q)
    if sampling not in SAMPLINGS:
        raise SpecTheoryValueError(f"sampling: no bound engine for {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    if kernel not in ("auto", "numba", "array"):
        raise SpecTheoryValueError(f"kernel: unknown kernel {kernel!r}")
    uniq, index = _distinct(ns)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        return _bound_rows(xp, p, q, uniq, index, sampling, sr, kernel)


def _bound_rows(xp, p, q, uniq, index, sampling, sr, kernel):
    cpu = xp.is_cpu(p)
    if sampling == "hub":
        if any(n != 2 for n in uniq):
            raise SpecTheoryValueError(f"n: the SpecHub scheme ('hub') drafts exactly 2 tokens, got n = {uniq}")
        cols = [_hub(xp, p, q)]
    elif sampling == "topk":
        cols = _topk(xp, p, q, uniq)
    elif sampling == "greedy":
        cols = _greedy(xp, p, q, uniq)
    elif sampling == "iid":
        use_numba = kernel == "numba" or (kernel == "auto" and sr is None and cpu)
        if use_numba:
            return _numba(xp, p, q, uniq, index, wor=False)
        cols = _iid_sorted(xp, sr if sr is not None else sort_by_ratio(p, q, xp), uniq)
    else:
        _check_wor_size(xp, q, uniq)
        # CUDA runs the numba kernel on a CPU copy too unless the array code is asked for: the
        # array version (one sequential pass over the sorted tokens) is for checking and small V.
        use_numba = kernel != "array"
        if use_numba:
            return _numba(xp, p, q, uniq, index, wor=True)
        from ._wor_array import wor_bound_array

        cols = wor_bound_array(xp, p, q, uniq, sr=sr)
    out = _gather_columns(xp, cols, index, p)
    return xp.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# the schemes
# --------------------------------------------------------------------------------------------
def _numba(xp, p, q, uniq, index, wor):
    from .sorted_prefix import prefix_dual_rows

    vals = prefix_dual_rows(xp.to_numpy(p).astype(np.float64), xp.to_numpy(q).astype(np.float64), uniq, wor)
    vals = np.clip(vals[:, index], 0.0, 1.0)
    return xp.from_numpy(vals, like=p) if xp.is_torch else vals


def _check_wor_size(xp, q, uniq):
    big = [n for n in uniq if n > MAX_WOR_DRAFTS]
    if not big:
        return
    support = xp.count_nonzero(q > 0, axis=-1)
    smallest = int(xp.to_numpy(support).min()) if xp.is_torch else int(support.min())
    bad = [n for n in big if n < smallest or n < int(xp.to_numpy(support).max() if xp.is_torch else support.max())]
    if bad:
        raise SpecTheoryValueError(
            f"n: {bad[0]} drafts without replacement is below the draft's support of {smallest}+ tokens and above "
            f"the limit of {MAX_WOR_DRAFTS} (the quadrature state grows like n·V); at n >= |supp q| the bound is "
            "p(supp q)"
        )


def _iid_sorted(xp, sr, uniq):
    """min over prefixes of P_k + 1 − (1 − S_k)^n from a ratio sort (empty prefix: 1)."""
    base = sr.p_below + 1.0
    s = xp.clip(sr.q_above, 0.0, 1.0)
    log_in = xp.log1p(-s)
    cols = []
    for n in uniq:
        nf = float(min(n, N_FLOAT_CAP))
        C = xp.where(s <= 0.0, 1.0, xp.exp(log_in * nf))
        cols.append(xp.minimum(xp.min(base - C, axis=-1), 1.0))
    return cols


def _support(xp, q):
    return xp.count_nonzero(q > 0, axis=-1)


def _top(xp, q, uniq, extra: int = 0):
    V = q.shape[-1]
    K = min(max(uniq) + extra, V)
    vals, idx = xp.topk(q, K)
    return K, vals, idx


def _greedy(xp, p, q, uniq):
    """p(T) + Σ_{x∉T} min(p, q/m), T the top k − 1 tokens, k = min(n, |supp q|), m = q(Ω \\ T)."""
    K, vals, idx = _top(xp, q, uniq)
    p_top = xp.take(p, idx)
    rest_K = xp.sum(xp.scatter(q, idx, 0.0), axis=-1)  # draft mass outside the top K, summed directly
    sup = _support(xp, q)
    slot = xp.arange(K, like=q)[None, :]
    cols = []
    for n in uniq:
        k = xp.minimum(sup, min(n, q.shape[-1]))
        in_T = slot < (k - 1)[:, None]
        m = rest_K + xp.sum(xp.flip(xp.where(in_T, 0.0, vals), -1), axis=-1)  # smallest first
        mm = m[:, None]
        total = xp.sum(xp.minimum(p, q / mm), axis=-1)
        inside = xp.sum(xp.where(in_T, xp.minimum(p_top, vals / mm), 0.0), axis=-1)
        cols.append(xp.sum(xp.where(in_T, p_top, 0.0), axis=-1) + total - inside)
    return cols


def _hub(xp, p, q):
    a = xp.argmax(q, axis=-1, keepdims=True)
    pa = xp.take(p, a)[:, 0]
    qa = xp.take(q, a)
    rest = xp.sum(xp.scatter(q, a, 0.0), axis=-1, keepdims=True)
    single = rest[:, 0] <= 0.0
    safe = xp.where(rest > 0.0, rest, 1.0)
    two = pa + xp.sum(xp.minimum(p, q / safe), axis=-1) - xp.minimum(pa, (qa / safe)[:, 0])
    return xp.where(single, pa, xp.minimum(two, 1.0))


def _topk(xp, p, q, uniq):
    K, vals, idx = _top(xp, q, uniq)
    cp = xp.cumsum(xp.take(p, idx), axis=-1)
    sup = _support(xp, q)
    cols = []
    for n in uniq:
        k = xp.minimum(sup, min(n, q.shape[-1]))
        cols.append(xp.take(cp, (k - 1)[:, None])[:, 0])
    return cols
