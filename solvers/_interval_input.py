"""Validation and reduction of top-k log-probability inputs for :mod:`spectheory.solvers.intervals`.

Per position the known entries of the target p (ids ``A``) and of the draft q (ids ``B``) are merged
into one sorted *union* of at most k_p + k_q tokens. Every other token (the set ``N``, of size
V − |A ∪ B|) is unknown on both sides and interchangeable with the others. The reduced arrays hold,
for each union slot, the known p (0 where unknown), the known q (0 where unknown), and whether each
side is known there; the tails are the masses the known entries leave.

Ids < 0 are padding (ragged top-k, e.g. vLLM's extra sampled token); their log-probs are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectheory._validation import SUM_RTOL, SpecTheoryValueError


@dataclass
class Reduced:
    """The known part of a batch of positions, as union slots (internal)."""

    ids: np.ndarray  # (B, W) int64, sorted per row, -1 padding at the end
    pk: np.ndarray  # (B, W) known p, 0 where unknown
    qk: np.ndarray  # (B, W) known q, 0 where unknown
    inA: np.ndarray  # (B, W) bool: p known
    inB: np.ndarray  # (B, W) bool: q known
    p_tail: np.ndarray  # (B,)
    q_tail: np.ndarray  # (B,)
    n_free: np.ndarray  # (B,) int64: |N| = V − |A ∪ B|
    vocab_size: int
    batched: bool

    @property
    def batch(self) -> int:
        return self.ids.shape[0]


def _as_2d(x, name: str, kind: str):
    try:
        a = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is a user error here
        raise SpecTheoryValueError(f"{name}: not an array ({exc})") from None
    if a.dtype == object:
        raise SpecTheoryValueError(f"{name}: not a rectangular numeric array (ragged rows? pad ids with -1)")
    if kind == "ids":
        if a.size and not (np.issubdtype(a.dtype, np.integer) or (np.issubdtype(a.dtype, np.floating)
                                                                    and np.all(np.isfinite(a)) and np.all(a == np.round(a)))):
            raise SpecTheoryValueError(f"{name}: token ids must be integers, got dtype {a.dtype}")
        a = a.astype(np.int64)
    else:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise SpecTheoryValueError(f"{name}: not a numeric array ({exc})") from None
    if a.ndim == 0:
        raise SpecTheoryValueError(f"{name}: expected shape (k,) or (B, k), got a scalar")
    if a.ndim > 2:
        raise SpecTheoryValueError(f"{name}: expected shape (k,) or (B, k), got {a.shape}")
    return a


def _tail(arg, name: str, known: np.ndarray, side: str) -> np.ndarray:
    B = known.shape[0]
    over = known > 1.0 + SUM_RTOL
    if np.any(over):
        b = int(np.argmax(over))
        raise SpecTheoryValueError(
            f"{side}_logprobs: known mass above 1 (position {b}: sum of exp = {known[b]:.9g})"
        )
    if arg is None:
        return np.clip(1.0 - known, 0.0, None)
    t = np.broadcast_to(np.asarray(arg, dtype=np.float64), (B,)).copy() if np.ndim(arg) <= 1 else None
    if t is None or t.shape != (B,):
        raise SpecTheoryValueError(f"{name}: expected a number or one per position ({B}), got shape {np.shape(arg)}")
    if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t > 1):
        raise SpecTheoryValueError(f"{name}: tail masses must lie in [0, 1]")
    off = np.abs(known + t - 1.0)
    if np.any(off > SUM_RTOL):
        b = int(np.argmax(off))
        raise SpecTheoryValueError(
            f"{name}: known mass {known[b]:.9g} plus tail {t[b]:.9g} is not 1 at position {b} "
            f"(relative tolerance {SUM_RTOL:g})"
        )
    return t


def reduce_inputs(p_ids, p_logprobs, q_ids, q_logprobs, vocab_size, p_tail=None, q_tail=None) -> Reduced:
    """Validate the four arrays and return the union-slot representation."""
    if vocab_size is None:
        raise SpecTheoryValueError("vocab_size: required (the number of tokens V of the shared vocabulary)")
    if isinstance(vocab_size, bool) or int(vocab_size) != vocab_size or int(vocab_size) < 1:
        raise SpecTheoryValueError(f"vocab_size: must be an integer >= 1, got {vocab_size!r}")
    V = int(vocab_size)
    arrays = {}
    for side, ids, lps in (("p", p_ids, p_logprobs), ("q", q_ids, q_logprobs)):
        i = _as_2d(ids, f"{side}_ids", "ids")
        lp = _as_2d(lps, f"{side}_logprobs", "logprobs")
        if i.shape != lp.shape:
            raise SpecTheoryValueError(
                f"{side}_ids and {side}_logprobs: shapes differ ({i.shape} vs {lp.shape})"
            )
        arrays[side] = (i, lp)
    (pi, plp), (qi, qlp) = arrays["p"], arrays["q"]
    if pi.ndim != qi.ndim:
        raise SpecTheoryValueError(
            f"p_ids and q_ids: one is a batch and the other is not (shapes {pi.shape} and {qi.shape})"
        )
    batched = pi.ndim == 2
    if not batched:
        pi, plp, qi, qlp = pi[None], plp[None], qi[None], qlp[None]
    if pi.shape[0] != qi.shape[0]:
        raise SpecTheoryValueError(
            f"p_ids and q_ids: number of positions differs ({pi.shape[0]} for the target, {qi.shape[0]} for the draft)"
        )
    B = pi.shape[0]
    if B == 0:
        raise SpecTheoryValueError("p_ids: no positions")
    known_mass = {}
    for side, ids, lp in (("p", pi, plp), ("q", qi, qlp)):
        valid = ids >= 0
        if ids.shape[1] == 0 or np.any(valid.sum(axis=1) == 0):
            b = 0 if ids.shape[1] == 0 else int(np.argmax(valid.sum(axis=1) == 0))
            raise SpecTheoryValueError(f"{side}_ids: k = 0 known tokens at position {b} (need k >= 1)")
        if np.any(ids >= V):
            b, j = np.argwhere(ids >= V)[0]
            raise SpecTheoryValueError(f"{side}_ids: id {ids[b, j]} >= vocab_size {V} at position {b}")
        lv = np.where(valid, lp, -np.inf)
        if np.any(np.isnan(lp[valid])) or np.any(lp[valid] == np.inf):
            raise SpecTheoryValueError(f"{side}_logprobs: NaN or +inf")
        if np.any(lv > 0):
            b, j = np.argwhere(lv > 0)[0]
            raise SpecTheoryValueError(
                f"{side}_logprobs: log-probability {lv[b, j]:.6g} > 0 at position {b} (pass natural-log probabilities)"
            )
        s = np.sort(np.where(valid, ids, -1 - np.arange(ids.shape[1])[None, :]), axis=1)
        dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
        if np.any(dup):
            b, j = np.argwhere(dup)[0]
            raise SpecTheoryValueError(f"{side}_ids: duplicate id {s[b, j + 1]} at position {b}")
        known_mass[side] = np.exp(lv).sum(axis=1)
    # union slots, via global keys row * V + id
    rows_p = np.broadcast_to(np.arange(B)[:, None], pi.shape)
    rows_q = np.broadcast_to(np.arange(B)[:, None], qi.shape)
    kp = (rows_p * V + pi)[pi >= 0]
    kq = (rows_q * V + qi)[qi >= 0]
    ukeys = np.unique(np.concatenate([kp, kq]))
    urow = ukeys // V
    counts = np.bincount(urow, minlength=B)
    W = int(counts.max())
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(ukeys.size) - starts[urow]
    ids = np.full((B, W), -1, dtype=np.int64)
    ids[urow, col] = ukeys - urow * V
    pk = np.zeros((B, W))
    qk = np.zeros((B, W))
    inA = np.zeros((B, W), dtype=bool)
    inB = np.zeros((B, W), dtype=bool)
    for side, keys, ids_side, lp, val, known in (
        ("p", kp, pi, plp, pk, inA),
        ("q", kq, qi, qlp, qk, inB),
    ):
        pos = np.searchsorted(ukeys, keys)
        r = urow[pos]
        c = col[pos]
        val[r, c] = np.exp(lp[ids_side >= 0])
        known[r, c] = True
    n_free = V - counts.astype(np.int64)
    tails = {}
    for side, arg, val, known in (("p", p_tail, pk, inA), ("q", q_tail, qk, inB)):
        t = _tail(arg, f"{side}_tail", known_mass[side], side)
        # every token known on this side: the tail is rounding; renormalise the known entries
        full = known.sum(axis=1) == V
        t = np.where(full, 0.0, t)
        km = known_mass[side]
        if arg is None:
            # known mass within rounding above 1: renormalise; otherwise keep the entries exactly
            # (a rescale by (1 - t) / known would wipe out tiny known masses next to a tail near 1)
            scale = np.where(km > 1.0, 1.0 / np.where(km > 0, km, 1.0), 1.0)
        else:
            scale = (1.0 - t) / np.where(km > 0, km, 1.0)
        val *= scale[:, None]
        tails[side] = t
    return Reduced(ids, pk, qk, inA, inB, tails["p"], tails["q"], n_free, V, batched)
