"""Batched torch kernels behind :func:`spectheory.simulations.replay.replay` (one chunk of positions).

Every function takes probabilities of shape (B, V) — one row per position, p = target, q = draft
(REFERENCE §2–3) — on any device and in float64 or float32, and works on all rows at once: there is
no Python loop over positions, only over n (≤ a handful), bisection steps and sampled rejection steps.

The sort that serves most columns is done once per row (:func:`sort_by_ratio`): tokens in increasing
order of p/q (q = 0 last, ratio +∞), with prefix sums from the front and suffix sums from the back.

* i.i.d. bound: α*_iid = min(1, min_k [P(H_k) + 1 − Q(H_k)^n]) over the V + 1 prefixes (sorted-prefix
  theorem, proved), all n from one sort.
* greedy bound: the top max(n) draft tokens (``torch.topk``) and G(c) = Σ min(p, c q) from the sort.
* hub bound: a few O(V) elementwise passes.

The verifiers' acceptances (sd, rrs, kseq, spechub, rrs_wor) are in :mod:`spectheory.verifiers.batched`,
one implementation for NumPy and torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - torch is the optional replay extra; replay() says so
    torch = None

# --------------------------------------------------------------------------------------------
# logits → probabilities (the port of spectheory.logits.from_logits)
# --------------------------------------------------------------------------------------------
def probs_from_logits(x: torch.Tensor, temperature: float, top_k, top_p) -> torch.Tensor:
    """Softmax of validated logits ``x`` (B, V) with temperature, top-k and top-p, as
    :func:`spectheory.from_logits` (Hugging Face warper order; T = 0 is the uniform law over the
    argmax ties), then renormalised to sum to 1 as the NumPy path's validation does."""
    x = x - x.max(dim=-1, keepdim=True).values  # row max 0; -inf stays -inf
    if temperature == 0:
        probs = (x == 0).to(x.dtype)
        return probs / probs.sum(dim=-1, keepdim=True)
    x = x / temperature
    V = x.shape[-1]
    if top_k is not None and top_k < V:
        kth = torch.topk(x, top_k, dim=-1, sorted=True).values[..., top_k - 1 : top_k]
        x = torch.where(x < kth, torch.full_like(x, -math.inf), x)
    e = torch.exp(x)
    probs = e / e.sum(dim=-1, keepdim=True)
    if top_p is not None and top_p < 1:
        neg_sorted, order = torch.sort(-probs, dim=-1, stable=True)
        sorted_p = -neg_sorted
        before = torch.cumsum(sorted_p, dim=-1) - sorted_p
        keep_sorted = before < top_p
        keep_sorted[..., 0] = True
        keep = torch.empty_like(keep_sorted).scatter_(-1, order, keep_sorted)
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs / probs.sum(dim=-1, keepdim=True)


# --------------------------------------------------------------------------------------------
# the shared sort
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SortedRatios:
    """Rows sorted by p/q ascending (q = 0 last). Prefix arrays have V + 1 entries (index k = the
    first k sorted tokens); ``*_above`` are summed from the back, so small tails keep their accuracy."""

    order: torch.Tensor  # (B, V) token ids in sorted order
    ratio: torch.Tensor  # (B, V) sorted p/q, +inf where q = 0
    p: torch.Tensor  # (B, V) p in sorted order
    q: torch.Tensor  # (B, V)
    p_below: torch.Tensor  # (B, V + 1) Σ_{j<k} p_j
    q_below: torch.Tensor  # (B, V + 1) Σ_{j<k} q_j
    p_above: torch.Tensor  # (B, V + 1) Σ_{j≥k} p_j
    q_above: torch.Tensor  # (B, V + 1) Σ_{j≥k} q_j


def _prefix(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros_like(x[:, :1]), torch.cumsum(x, dim=1)], dim=1)


def _suffix(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.flip(torch.cumsum(torch.flip(x, [1]), dim=1), [1]), torch.zeros_like(x[:, :1])], dim=1)


def _argsort_rows(x: torch.Tensor) -> torch.Tensor:
    """Row-wise ascending argsort. On CPU NumPy's (SIMD) sort is several times faster than torch's;
    the order among exactly equal keys is unspecified, which no column depends on."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.argsort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).indices


def sort_by_ratio(p: torch.Tensor, q: torch.Tensor) -> SortedRatios:
    pos = q > 0
    ratio = torch.where(pos, p / torch.where(pos, q, torch.ones_like(q)), torch.full_like(q, math.inf))
    order = _argsort_rows(ratio)
    ratio = torch.gather(ratio, 1, order)
    ps = torch.gather(p, 1, order)
    qs = torch.gather(q, 1, order)
    return SortedRatios(order, ratio.contiguous(), ps, qs, _prefix(ps), _prefix(qs), _suffix(ps), _suffix(qs))


def _count_at_most(sr: SortedRatios, x: torch.Tensor) -> torch.Tensor:
    """#{tokens with p/q ≤ x} per row, for x of shape (B, N)."""
    return torch.searchsorted(sr.ratio, x.contiguous(), side="right")


def min_sum(sr: SortedRatios, c: torch.Tensor) -> torch.Tensor:
    """G(c) = Σ_x min(p(x), c q(x)) = Σ_{p/q ≤ c} p + c Σ_{p/q > c} q for c of shape (B, N)."""
    k = _count_at_most(sr, c)
    return torch.gather(sr.p_below, 1, k) + c * torch.gather(sr.q_above, 1, k)


def support(q: torch.Tensor) -> torch.Tensor:
    """|supp q| per row, int64 (B,)."""
    return (q > 0).sum(dim=1)


# --------------------------------------------------------------------------------------------
# optimal acceptance
# --------------------------------------------------------------------------------------------
def iid_bound(sr: SortedRatios, ns) -> dict[int, torch.Tensor]:
    """α*_iid for every n in ``ns``: min(1, min_k [P(H_k) + 1 − Q(H_k)^n]), empty prefix included."""
    out = {}
    base = sr.p_below + 1.0
    Qn = torch.ones_like(sr.q_below)
    for n in range(1, max(ns) + 1):
        Qn = Qn * sr.q_below
        if n in ns:
            out[n] = torch.clamp((base - Qn).min(dim=1).values, 0.0, 1.0)
    return out


def top_tokens(q: torch.Tensor, K: int):
    """The K largest draft probabilities per row with their token ids, ties in lower index first (the
    NumPy path's ``_top_mask``): ``torch.topk``, and a stable full sort for the rows with equal values
    among them (rare outside constructed cases)."""
    K = min(K, q.shape[1])
    vals, idx = torch.topk(q, K, dim=1, sorted=True)
    if K > 1:
        tied = (vals[:, 1:] == vals[:, :-1]).any(dim=1)
        if bool(tied.any()):
            idx = idx.clone()
            idx[tied] = torch.sort(q[tied], dim=1, descending=True, stable=True).indices[:, :K]
            vals = torch.gather(q, 1, idx)
    return vals, idx


def greedy_bound(p: torch.Tensor, q: torch.Tensor, sr: SortedRatios, ns) -> dict[int, torch.Tensor]:
    """α*_greedy = p(T) + Σ_{x∉T} min(p, q/m), T the k − 1 most likely draft tokens, k = min(n, |supp q|),
    m = q(Ω \\ T), for every n in ``ns``.

    Σ_{x∉T} min(p, q/m) = G(1/m) − Σ_{x∈T} min(p, q/m) with G from the ratio sort (:func:`min_sum`);
    m = q(outside the top max(ns) tokens) + the top tokens not in T, a sum of non-negative terms
    (no cancellation when T holds almost all the draft mass).
    """
    K = min(max(ns), q.shape[1])
    q_top, idx = top_tokens(q, K)
    p_top = torch.gather(p, 1, idx)
    outside = torch.ones_like(q, dtype=torch.bool).scatter_(1, idx, False)
    rest = torch.where(outside, q, torch.zeros_like(q)).sum(dim=1)
    slot = torch.arange(K, device=q.device)[None, :]
    sup = support(q)
    zero = torch.zeros_like(p_top)
    out = {}
    for n in ns:
        in_T = slot < (torch.clamp(sup, max=n) - 1)[:, None]
        m = rest + torch.where(in_T, zero, q_top).flip(1).sum(dim=1)  # smallest first
        c = (1.0 / m)[:, None]
        inside = torch.where(in_T, torch.minimum(p_top, q_top * c), zero).sum(dim=1)
        val = torch.where(in_T, p_top, zero).sum(dim=1) + min_sum(sr, c)[:, 0] - inside
        out[n] = torch.clamp(val, 0.0, 1.0)
    return out


def _hub_parts(p: torch.Tensor, q: torch.Tensor):
    a = torch.argmax(q, dim=1, keepdim=True)  # first maximum, as numpy
    off = torch.ones_like(q, dtype=torch.bool).scatter_(1, a, False)
    zero = torch.zeros_like(q)
    rest = torch.where(off, q, zero).sum(dim=1, keepdim=True)
    return a, off, zero, rest


def hub_bound(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """α*_hub = min(1, p(a) + Σ_{x≠a} min(p, q/(1 − q(a)))), a = argmax q; p(a) when q is one-hot."""
    a, off, zero, rest = _hub_parts(p, q)
    pa = torch.gather(p, 1, a)[:, 0]
    single = rest[:, 0] <= 0
    q_tilde = torch.where(off, q, zero) / torch.where(rest > 0, rest, torch.ones_like(rest))
    two = pa + torch.minimum(torch.where(off, p, zero), q_tilde).sum(dim=1)
    return torch.clamp(torch.where(single, pa, torch.clamp(two, max=1.0)), 0.0, 1.0)
