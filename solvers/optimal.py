"""``optimal_acceptance``: the best acceptance any lossless verifier can reach for a draft scheme."""

from __future__ import annotations

import numpy as np

from spectheory._backend import get_backend
from spectheory._validation import SpecTheoryValueError, check_pair, check_rows
from spectheory.schemes import get_scheme

from .bounds import bound_rows, normalise_ns
from .brute_dual import MAX_BRUTE_V, subset_dual_brute
from .transport import transport_lp

METHODS = ("auto", "dual", "lp", "brute")


def optimal_acceptance(p, q, n, sampling: str = "iid", method: str = "auto"):
    """Optimal multi-draft acceptance α*(p, Q): the largest P(output ∈ drafts) of a lossless verifier.

    By max-flow/min-cut on the SpecTr transport LP (arXiv 2310.15141; Hu et al. arXiv 2502.18779),

        α* = min over H ⊆ Ω of [ p(H) + 1 − C(H) ],   C(H) = Q(every draft in H),

    where Q is the joint law of the n drafts under ``sampling`` (see the theory pages). Every
    scheme's bound is computed by the one batched engine :func:`spectheory.solvers.bounds.bound_rows`
    (also used by ``compare`` and ``replay``), for every requested n in one pass.

    Parameters
    ----------
    p : array_like or torch.Tensor, shape (V,) or (B, V)
        Target distribution(s). NumPy arrays, lists, or torch tensors on any device (float64,
        float32, float16, bfloat16; ``requires_grad`` tensors are detached).
    q : array_like or torch.Tensor, shape (V,) or (B, V); (n, V) or (B, n, V) for ``sampling="independent"``
        Draft distribution(s).
    n : int >= 1, or a sequence of them
        Number of drafts. Schemes with distinct drafts draw min(n, |supp q|)
        (:mod:`spectheory.schemes`). A sequence gives one column per entry, from one pass.
    sampling : {"iid", "without_replacement", "greedy", "topk", "hub", "independent"}
    method : {"auto", "dual", "lp", "brute"}
        ``"dual"``: sorted prefixes for iid and without_replacement (both proved), closed forms for
        greedy, topk and hub, O(V log V) or better at any V; for independent drafters no sort order
        is known and the dual is the brute-force enumeration (V ≤ 22).
        ``"lp"``: the transport LP (scipy HiGHS), small V and n only. ``"brute"``: enumeration of
        all 2^V subsets (V ≤ 22). ``"auto"``: the dual.

    Returns
    -------
    float, or an array of shape (B,), (len(n),) or (B, len(n))
        NumPy for NumPy input; a float64 torch tensor on the input's device for torch input (0-d
        for one position and one n).

    Raises
    ------
    ValueError
        Bad distributions, n < 1, hub with n ≠ 2, an unknown scheme or method, or a problem too
        large for the requested method (the message says what to use instead).

    Examples
    --------
    >>> import spectheory as st
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> round(st.optimal_acceptance(p, q, 1), 12)          # n = 1: Σ min(p, q)
    0.7
    >>> round(st.optimal_acceptance(p, q, 2), 12)          # i.i.d. drafts
    0.86
    >>> round(st.optimal_acceptance(p, q, 2, "without_replacement"), 12)
    0.985714285714
    >>> st.optimal_acceptance(p, q, [1, 2, 3], "topk").round(12).tolist()   # p of the top-n draft tokens
    [0.2, 0.5, 1.0]
    """
    scheme = get_scheme(sampling)
    if method not in METHODS:
        raise SpecTheoryValueError(f"method: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    ns, scalar_n = normalise_ns(n)
    xp = get_backend(p, q)
    if method == "auto":
        method = "dual"
    if method == "dual" and sampling != "independent":
        P, batched = check_rows(p, "p")
        Q, q_batched = check_rows(q, "q")
        _check_shapes(P, Q, batched, q_batched)
        if sampling == "hub":
            for k in ns:
                scheme.effective_n(np.ones(2), k)  # raises for n != 2
        out = bound_rows(P, Q, ns, sampling)  # (B, len(ns)) in the input's backend
    else:
        if sampling == "independent" and method == "dual":
            method = "brute"
        out = np.stack([_ground_truth(p, q, k, sampling, method, xp) for k in ns], axis=-1)
        batched = out.shape[0] > 1 or _is_batch(p)
        if xp.is_torch:
            like = p if xp is get_backend(p) else q
            out = xp.from_numpy(out, like=like)
    if scalar_n:
        out = out[:, 0]
    if batched:
        return out
    out = out[0]
    if xp.is_torch:
        return out
    return float(out) if scalar_n else np.asarray(out)


def _is_batch(p) -> bool:
    return getattr(p, "ndim", np.ndim(p)) == 2


def _check_shapes(P, Q, batched, q_batched):
    if Q.shape[-1] != P.shape[-1]:
        raise SpecTheoryValueError(
            f"p and q: vocabulary sizes differ (p has V = {P.shape[-1]}, q has V = {Q.shape[-1]})"
        )
    if batched != q_batched:
        raise SpecTheoryValueError(
            f"p and q: one is a batch and the other is not (p shape {tuple(P.shape) if batched else tuple(P.shape[1:])}, "
            f"q shape {tuple(Q.shape) if q_batched else tuple(Q.shape[1:])})"
        )
    if Q.shape[0] != P.shape[0]:
        raise SpecTheoryValueError(f"p and q: batch sizes differ (p has {P.shape[0]} rows, q has {Q.shape[0]})")


def _ground_truth(p, q, n, sampling, method, xp):
    """LP or brute-force subset dual, row by row (small V): (B,) NumPy."""
    if xp.is_torch:
        p = xp.to_numpy(p.detach()).astype(np.float64) if hasattr(p, "detach") else p
        q = xp.to_numpy(q.detach()).astype(np.float64) if hasattr(q, "detach") else q
    P, Q, n, _ = check_pair(p, q, n, sampling)
    V = P.shape[1]
    if sampling == "hub":
        get_scheme("hub").effective_n(Q[0], n)
    if method == "brute" and V > MAX_BRUTE_V and sampling == "independent":
        raise SpecTheoryValueError(
            f"sampling: no exact algorithm is known for independent drafters beyond V = {MAX_BRUTE_V} "
            f"(got V = {V}); the subset dual has no known sort order for them (REFERENCE §2)"
        )
    if method == "brute":
        out = np.array([subset_dual_brute(P[b], Q[b], n, sampling).acceptance for b in range(P.shape[0])])
    else:
        out = np.array([transport_lp(P[b], Q[b], n, sampling).acceptance for b in range(P.shape[0])])
    return np.clip(out, 0.0, 1.0)
