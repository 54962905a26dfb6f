"""Closed-form optimal acceptance for greedy drafting and the SpecHub joint.

Both follow from the subset dual α* = min_H [p(H) + 1 − C(H)] (REFERENCE §2):

* greedy (Hu et al., arXiv 2502.18779): with T the n−1 most likely draft tokens and q' the draft
  restricted to Ω \\ T and renormalised, C(H) = [T ⊆ H]·q'(H), so the minimum is over H ⊇ T and

      α*_greedy = p(T) + Σ_{x ∉ T} min(p(x), q'(x)).

* hub (SpecHub, arXiv 2411.05289; n = 2, hub a = argmax q): C(H) = [a ∈ H]·q(H \\ {a})/(1 − q(a)),
  so with q̃ = q/(1 − q(a)) on Ω \\ {a} (and H = ∅ giving 1)

      α*_hub = min(1, p(a) + Σ_{x ≠ a} min(p(x), q̃(x))).

Both are O(V) per position and batched over rows.
"""

from __future__ import annotations

import numpy as np


def _top_mask(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Boolean mask of the k[b] largest entries of each row q[b] (lower index first on ties), O(V)."""
    B, V = q.shape
    mask = np.zeros((B, V), dtype=bool)
    for b in range(B):
        kb = int(k[b])
        if kb <= 0:
            continue
        row = q[b]
        kth = np.partition(row, V - kb)[V - kb]
        above = row > kth
        need = kb - int(above.sum())
        ties = np.flatnonzero(row == kth)[:need]
        mask[b] = above
        mask[b, ties] = True
    return mask


def greedy_bound(p: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    """α*_greedy for validated float64 arrays ``p``, ``q`` of shape (B, V); returns shape (B,).

    The number of drafts is min(n, |supp q|) per row (see :mod:`spectheory.schemes`).

    Examples
    --------
    >>> import numpy as np
    >>> from spectheory.solvers import greedy_bound
    >>> greedy_bound(np.array([[0.2, 0.3, 0.5]]), np.array([[0.6, 0.3, 0.1]]), 2).round(12).tolist()
    [0.75]
    """
    k = np.minimum(n, np.count_nonzero(q > 0, axis=1))
    top = _top_mask(q, k - 1)
    rest = np.where(top, 0.0, q)
    q_rest = rest / rest.sum(axis=1, keepdims=True)
    accepted_top = np.where(top, p, 0.0).sum(axis=1)
    return accepted_top + np.minimum(np.where(top, 0.0, p), q_rest).sum(axis=1)


def hub_bound(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """α*_hub (n = 2, SpecHub joint) for validated float64 arrays of shape (B, V); returns (B,).

    Examples
    --------
    >>> import numpy as np
    >>> from spectheory.solvers import hub_bound
    >>> hub_bound(np.array([[0.2, 0.3, 0.5]]), np.array([[0.6, 0.3, 0.1]])).round(12).tolist()
    [0.75]
    """
    B, V = q.shape
    rows = np.arange(B)
    a = np.argmax(q, axis=1)
    off_hub = np.ones((B, V), dtype=bool)
    off_hub[rows, a] = False
    rest_mass = np.where(off_hub, q, 0.0).sum(axis=1)
    single = rest_mass <= 0  # q is one-hot at a: one draft, acceptance p(a)
    q_tilde = np.where(off_hub, q, 0.0) / np.where(single, 1.0, rest_mass)[:, None]
    two = p[rows, a] + np.minimum(np.where(off_hub, p, 0.0), q_tilde).sum(axis=1)
    return np.where(single, p[rows, a], np.minimum(1.0, two))
