"""Torch helper behind :func:`spectheory.simulations.replay.replay`: logits → probabilities on the
computing device (:func:`probs_from_logits`, the port of :func:`spectheory.from_logits`).

The optimal-acceptance bounds (iid, without_replacement, greedy, hub, topk) are in
:func:`spectheory.solvers.bounds.bound_rows`, one implementation for NumPy and torch.

The verifiers' acceptances (sd, rrs, kseq, spechub, rrs_wor) are in :mod:`spectheory.verifiers.batched`,
one implementation for NumPy and torch.
"""

from __future__ import annotations

import math


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
    info = torch.finfo(x.dtype)
    if x.dtype != torch.float64 and not (float(info.tiny) <= temperature <= float(info.max)):
        # a temperature that is 0, subnormal or inf in x's dtype (1e-46, 1e39 in float32): divide
        # in float64 (0 / 0 and -inf / inf would be NaN)
        x = (x.to(torch.float64) / temperature).to(x.dtype)
    else:
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
