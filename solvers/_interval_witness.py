"""Candidate completions for :mod:`spectheory.solvers.intervals` (internal).

A candidate completion of one position is written on the union slots of
:class:`~spectheory.solvers._interval_input.Reduced` plus ``F`` *fresh* slots (the smallest ids in
N = Ω \\ (A ∪ B)); every other token gets p = q = 0. A family member places

* the part (1 − θ_p) of the p tail on the tokens whose q is known but p is not (B \\ A), in
  proportion to their q, and the part θ_p spread evenly over ``m_p`` fresh tokens from slot
  ``a_p`` on;
* the part (1 − θ_q) of the q tail on A \\ B in proportion to p, and θ_q evenly over ``m_q`` fresh
  tokens from slot ``a_q`` on.

Whatever a row cannot place that way (no fresh token left, no weight on A \\ B) goes to the first
token that can hold it, so every candidate is a valid completion. Candidates are evaluated on the
small arrays (tokens outside the slots carry no mass and change no acceptance), with the slots in
id order so that tie-breaks by lower index agree with the full-vocabulary arrays.
"""

from __future__ import annotations

import numpy as np

from ._interval_input import Reduced


def fresh_ids(red: Reduced, F: int) -> np.ndarray:
    """(B, F) the F smallest token ids outside each row's union; -1 where fewer exist."""
    B, W = red.ids.shape
    u = np.where(red.ids >= 0, red.ids, np.iinfo(np.int64).max // 4)
    out = np.empty((B, F), dtype=np.int64)
    for j in range(F):
        x = np.full(B, j, dtype=np.int64)
        for _ in range(W + 1):  # x_j = j + #{union ids <= x_j}: a fixed point reached in <= W steps
            nxt = j + (u <= x[:, None]).sum(axis=1)
            if np.array_equal(nxt, x):
                break
            x = nxt
        out[:, j] = np.where(j < red.n_free, x, -1)
    return out


def build(red: Reduced, fresh: np.ndarray, params: np.ndarray):
    """Candidate completions for every row.

    ``params``: (C, 6) rows (θ_p, θ_q, a_p, m_p, a_q, m_q). Returns ``(P, Q, ids)`` of shape
    (B, C, W + F), each (P[b, c], Q[b, c]) a completion of row b on the slot ids ``ids[b]``
    (broadcast over c).
    """
    B, W = red.ids.shape
    F = fresh.shape[1]
    C = params.shape[0]
    th_p, th_q = params[:, 0], params[:, 1]
    a_p, m_p, a_q, m_q = (params[:, i].astype(np.int64) for i in range(2, 6))
    mAB = red.inA & ~red.inB
    mBA = red.inB & ~red.inA
    wq = np.where(mAB, red.pk, 0.0)
    wq_sum = wq.sum(axis=1)
    wq = np.where((wq_sum > 0)[:, None], wq / np.where(wq_sum > 0, wq_sum, 1.0)[:, None], 0.0)
    wp = np.where(mBA, red.qk, 0.0)
    wp_sum = wp.sum(axis=1)
    wp = np.where((wp_sum > 0)[:, None], wp / np.where(wp_sum > 0, wp_sum, 1.0)[:, None], 0.0)
    nf = red.n_free[:, None]  # (B, 1)

    def fresh_share(a, m):
        # (B, C, F) weights summing to 1 over the usable fresh slots a..a+m-1 (rows with none: 0)
        j = np.arange(F)[None, None, :]
        lo = a[None, :, None]
        hi = np.minimum(a + m, F)[None, :, None]
        hi = np.minimum(hi, nf[:, :, None])
        use = (j >= lo) & (j < hi)
        cnt = use.sum(axis=2, keepdims=True)
        return np.where(cnt > 0, use / np.maximum(cnt, 1), 0.0), cnt[..., 0] > 0

    sp, ok_p = fresh_share(a_p, m_p)
    sq, ok_q = fresh_share(a_q, m_q)
    has_wp = (wp_sum > 0)[:, None]
    has_wq = (wq_sum > 0)[:, None]
    # effective fractions: on fresh tokens only where possible, on the known side only where it has weight
    tp = np.where(ok_p, np.where(has_wp, th_p[None, :], 1.0), 0.0)  # (B, C)
    tq = np.where(ok_q, np.where(has_wq, th_q[None, :], 1.0), 0.0)
    Tp = red.p_tail[:, None]
    Tq = red.q_tail[:, None]
    P = np.zeros((B, C, W + F))
    Q = np.zeros((B, C, W + F))
    P[:, :, :W] = np.where(red.inA, red.pk, 0.0)[:, None, :] + ((1 - tp) * Tp)[:, :, None] * wp[:, None, :]
    Q[:, :, :W] = np.where(red.inB, red.qk, 0.0)[:, None, :] + ((1 - tq) * Tq)[:, :, None] * wq[:, None, :]
    P[:, :, W:] = (tp * Tp)[:, :, None] * sp
    Q[:, :, W:] = (tq * Tq)[:, :, None] * sq
    # repair: mass that found no place (no fresh token, no weight) goes to the first slot that may hold it
    ids = np.concatenate([red.ids, fresh], axis=1)
    for arr, tail, known, free_known in ((P, Tp, np.where(red.inA, red.pk, 0.0), mBA),
                                         (Q, Tq, np.where(red.inB, red.qk, 0.0), mAB)):
        miss = tail - (arr.sum(axis=2) - known.sum(axis=1)[:, None])
        bad = miss > 1e-15
        if np.any(bad):
            holder = np.concatenate([free_known, fresh >= 0], axis=1)
            first = np.argmax(holder, axis=1)  # a row with a positive tail always has a holder
            b, c = np.nonzero(bad)
            arr[b, c, first[b]] += miss[b, c]
    return P, Q, ids
