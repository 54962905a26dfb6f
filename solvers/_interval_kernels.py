"""Evaluation of candidate completions and the certified upper bound (internal, see intervals.py)."""

from __future__ import annotations

import numpy as np

from ._interval_input import Reduced
from .bounds import bound_rows

ORDER_SENSITIVE = ("greedy", "hub", "topk")


def prefix_dual(P, Q, n, sampling):
    """The bound engine for one n on float64 rows (no revalidation), shape (B,)."""
    return bound_rows(np.ascontiguousarray(P, dtype=np.float64), np.ascontiguousarray(Q, dtype=np.float64), [n], sampling)[:, 0]


def evaluate(P, Q, ids, n, sampling, verifier=None):
    """Exact α* (or a verifier's acceptance) of completions given on slots: P, Q, ids of shape (R, W).

    Tokens outside the slots carry no mass. For order-sensitive rules the slots are put in id order
    first (empty slots, id -1, hold no mass and go last)."""
    from spectheory.solvers.optimal import optimal_acceptance
    from spectheory.verifiers import acceptance

    if P.shape[0] == 0:
        return np.zeros(0)
    if verifier is not None or sampling in ORDER_SENSITIVE:
        key = np.where(ids >= 0, ids, np.iinfo(np.int64).max)
        order = np.argsort(key, axis=1, kind="stable")
        P = np.take_along_axis(P, order, axis=1)
        Q = np.take_along_axis(Q, order, axis=1)
    if verifier is not None:
        return np.asarray(acceptance(P, Q, n, verifier, sampling=sampling if verifier in ("optimal",) else None),
                          dtype=np.float64)
    if sampling in ("iid", "without_replacement"):
        # rows are exact completions (sum 1); the dual accepts them without revalidation
        return prefix_dual(P, Q, n, sampling)
    return np.asarray(optimal_acceptance(P, Q, n, sampling), dtype=np.float64)


def upper_certificate(red: Reduced, n: int, sampling: str) -> np.ndarray:
    """A valid upper bound on max over completions of α* (iid or without_replacement), shape (B,).

    For every H and every completion, α* ≤ p(H) + 1 − C(H), so

        max_completions α* ≤ min_H [ max p(H) + 1 − min C(H) ],

    with max p(H) = p(H ∩ A) + t_p·[H meets Ω \\ A] and min C(H) attained with the q tail outside H
    when possible, else merged into one token inside H (splitting never lowers C, Lemma A of
    the sorted-prefix theorem in :mod:`spectheory.solvers.sorted_prefix`; for iid C = q(H)^n). Three families of H, each minimised over sorted prefixes (any H
    gives a valid bound, so the prefix restriction cannot break validity):

    0. H ⊆ A ∩ B (tail outside);
    1. H meets Ω \\ A, does not contain Ω \\ B: t_p + [p(S) + 1 − C(S ∪ (B \\ A))], tail outside;
    2. H ⊇ Ω \\ B: t_p + p(A \\ B) + [p(S) + 1 − C(S ∪ (B \\ A) ∪ {tail})].

    A sentinel token with p = 2 carries the q mass outside H (it never enters a minimising prefix,
    since H = ∅ already gives 1).
    """
    AB = red.inA & red.inB
    BA = red.inB & ~red.inA
    AmB = red.inA & ~red.inB
    pAB = np.where(AB, red.pk, 0.0)
    qAB = np.where(AB, red.qk, 0.0)
    qBA = np.where(BA, red.qk, 0.0)
    Tp, Tq = red.p_tail, red.q_tail
    out = np.ones(red.batch)
    two = np.full((red.batch, 1), 2.0)
    # case 0
    P0 = np.concatenate([pAB, two], axis=1)
    Q0 = np.concatenate([qAB, np.clip(1.0 - qAB.sum(axis=1), 0.0, None)[:, None]], axis=1)
    out = np.minimum(out, prefix_dual(P0, Q0, n, sampling))
    # case 1
    P1 = np.concatenate([pAB, np.zeros_like(qBA), two], axis=1)
    Q1 = np.concatenate([qAB, qBA, Tq[:, None]], axis=1)
    out = np.minimum(out, Tp + prefix_dual(P1, Q1, n, sampling))
    # case 2
    P2 = np.concatenate([pAB, np.zeros_like(qBA), np.zeros((red.batch, 1))], axis=1)
    Q2 = Q1
    extra = Tp + np.where(AmB, red.pk, 0.0).sum(axis=1)
    out = np.minimum(out, extra + prefix_dual(P2, Q2, n, sampling))
    return out
