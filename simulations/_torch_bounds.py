"""Batched torch kernels behind :func:`spectheory.simulations.replay.replay` (one chunk of positions).

Every function takes probabilities of shape (B, V) — one row per position, p = target, q = draft
(REFERENCE §2–3) — on any device and in float64 or float32, and works on all rows at once: there is
no Python loop over positions, only over n (≤ a handful), bisection steps and sampled rejection steps.

The sort that serves most columns is done once per row (:func:`sort_by_ratio`): tokens in increasing
order of p/q (q = 0 last, ratio +∞), with prefix sums from the front and suffix sums from the back.

* the bounds: :func:`spectheory.solvers.bounds.bound_rows` (the package's one implementation; the
  i.i.d. bound reads this module's sort).
* kseq: β(ρ) = Σ_{p/q ≥ ρ} q + (1/ρ) Σ_{p/q < ρ} p by ``torch.searchsorted`` in the sorted ratios; ρ*
  by bisection on f(ρ) = ρβ − 1 + (1 − β)^n, all n and rows at once.
* rrs_wor, n = 2: the closed form of REFERENCE §3; F(c) = Σ_y min(r(y), c q(y)) with
  r = (p − q)+/Z, and r/q ≤ c iff p/q ≤ 1 + cZ, so the same sort serves (one searchsorted per token).
* rrs_wor, n > 2: the Rao–Blackwellised estimate over sampled rejection histories. After rejections
  the state is R = (p − θq)+/Z(θ) and D = q/m on the tokens not yet rejected, so each step costs
  O(log V) per sampled history (see :func:`rrs_wor_histories`).
* rrs: the residuals are R_i = (p − θ_i q)+/Z(θ_i), so every step is a searchsorted too.
* sd, spechub: a few O(V) elementwise passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - torch is the optional replay extra; replay() says so
    torch = None

#: Relative width of the final ρ bracket in the kseq bisection (as the NumPy path, ``kseq.RHO_RTOL``).
RHO_RTOL = 4e-16


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


# The optimal-acceptance bounds (iid, without_replacement, greedy, hub, topk) live in one place,
# spectheory.solvers.bounds.bound_rows, which replay calls with this module's ratio sort.


# --------------------------------------------------------------------------------------------
# verifiers with a closed form
# --------------------------------------------------------------------------------------------
def sd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Σ min(p, q)."""
    return torch.clamp(torch.minimum(p, q).sum(dim=1), 0.0, 1.0)


def _theta_step(sr: SortedRatios, theta, Z, m):
    """One step of a residual chain R = (p − θq)+/Z against D = q/m (REFERENCE §3 residuals).

    Returns (a, θ', k_θ, k_θ', mid): a = Σ min(R, D) = [Σ_{θ<p/q≤θ'} (p − θq)]/Z + [Σ_{p/q>θ'} q]/m
    with θ' = θ + Z/m, and (R − D)+ = (p − θ'q)+/Z; ``mid`` is the bracketed sum.
    """
    theta_next = theta + Z / m
    k_th = _count_at_most(sr, theta)
    k_nx = _count_at_most(sr, theta_next)
    Pb, Qb = sr.p_below, sr.q_below
    mid = (torch.gather(Pb, 1, k_nx) - torch.gather(Pb, 1, k_th)) - theta * (
        torch.gather(Qb, 1, k_nx) - torch.gather(Qb, 1, k_th)
    )
    a = torch.clamp(mid / Z + torch.gather(sr.q_above, 1, k_nx) / m, 0.0, 1.0)
    return a, theta_next, k_th, k_nx, mid


def _z_at(sr: SortedRatios, k, theta):
    """Z(θ) = Σ_{p/q>θ} (p − θq) given k = #{p/q ≤ θ} (clamped at 0 against rounding)."""
    return torch.clamp_min(torch.gather(sr.p_above, 1, k) - theta * torch.gather(sr.q_above, 1, k), 0.0)


def rrs(sr: SortedRatios, ns) -> dict[int, torch.Tensor]:
    """1 − Π_{i≤n} (1 − a_i), a_i = Σ min(R_i, q), R_1 = p, R_{i+1} = norm((R_i − q)+), every n in ``ns``.

    R_i = (p − θ_i q)+/Z(θ_i) with θ_1 = 0 and θ_{i+1} = θ_i + Z(θ_i) (:func:`_theta_step` with m = 1),
    so each step is two searchsorted calls on the shared ratio sort. Where Z(θ_{i+1}) = 0 the residual
    has no mass (R_i = q, a_i = 1) and R stays, as in the NumPy path.
    """
    B = sr.ratio.shape[0]
    theta = torch.zeros((B, 1), dtype=sr.ratio.dtype, device=sr.ratio.device)
    Z = _z_at(sr, _count_at_most(sr, theta), theta)
    one = torch.ones_like(theta)
    reject = one[:, 0]
    out = {}
    for i in range(1, max(ns) + 1):
        live = Z > 0
        a, theta_next, _, k_nx, _ = _theta_step(sr, theta, torch.where(live, Z, one), one)
        a = torch.where(live, a, one)
        reject = reject * (1.0 - a[:, 0])
        if i in ns:
            out[i] = torch.clamp(1.0 - reject, 0.0, 1.0)
        Z_next = _z_at(sr, k_nx, theta_next)
        move = live & (Z_next > 0)
        theta = torch.where(move, theta_next, theta)
        Z = torch.where(move, Z_next, Z)
    return out


def _beta(sr: SortedRatios, rho: torch.Tensor) -> torch.Tensor:
    """β(ρ) = Σ_{p/q ≥ ρ} q + (1/ρ) Σ_{p/q < ρ} p for ρ of shape (B, N)."""
    k = torch.searchsorted(sr.ratio, rho, side="left")
    return torch.gather(sr.q_above, 1, k) + torch.gather(sr.p_below, 1, k) / rho


def kseq(sr: SortedRatios, ns) -> dict[int, torch.Tensor]:
    """K-SEQ: 1 − (1 − β(ρ*))^n with ρ* the smallest ρ ∈ [1, n] where f(ρ) = ρβ − 1 + (1 − β)^n ≥ 0
    (ρ* = 1 if f(1) ≥ 0 or n = 1), by bisection to a bracket of relative width 4e-16, all n at once."""
    B = sr.ratio.shape[0]
    dtype, device = sr.ratio.dtype, sr.ratio.device
    nn = torch.tensor(list(ns), dtype=dtype, device=device)[None, :].expand(B, -1).contiguous()

    def f(rho):
        b = _beta(sr, rho)
        return rho * b - 1.0 + (1.0 - b) ** nn, b

    one = torch.ones_like(nn)
    f1, b1 = f(one)
    done = (f1 >= 0) | (nn == 1)
    lo, hi = one, nn.clone()
    b_hi = _beta(sr, hi)
    rtol = RHO_RTOL if dtype == torch.float64 else float(torch.finfo(dtype).eps)
    for _ in range(200):  # ends by the width test: ~62 steps in float64
        mid = 0.5 * (lo + hi)
        active = ~done & (hi - lo > rtol * hi) & (mid > lo) & (mid < hi)
        if not bool(active.any()):
            break
        fm, bm = f(mid)
        up = active & (fm >= 0)
        hi = torch.where(up, mid, hi)
        b_hi = torch.where(up, bm, b_hi)
        lo = torch.where(active & ~up, mid, lo)
    beta_star = torch.where(done, b1, b_hi)
    acc = torch.where(
        beta_star < 1,
        -torch.expm1(nn * torch.log1p(-torch.clamp(beta_star, max=1.0))),
        torch.ones_like(beta_star),
    )
    acc = torch.clamp(acc, 0.0, 1.0)
    return {n: acc[:, j] for j, n in enumerate(ns)}


def spechub(p: torch.Tensor, q: torch.Tensor, sd_sum: torch.Tensor | None = None) -> torch.Tensor:
    """SpecHub (n = 2): Σ_{x≠a} min(p, q) + Σ_{x≠a} min(p1, Qai) + min(p(a), Sai + Sia); Σ min(p, q)
    when q has fewer than two tokens (REFERENCE §3). ``sd_sum``: Σ min(p, q) if already computed.

    Qai = q(a)·q/(1 − q(a)) and p1 = (p − q)+ are zeroed at the hub, so Sai and the middle sum need
    no mask; the sums over x ≠ a of min(p, q) and (q − p)+ are the full sums minus the hub's term.
    """
    a = torch.argmax(q, dim=1, keepdim=True)  # first maximum, as numpy
    qa, pa = torch.gather(q, 1, a), torch.gather(p, 1, a)
    rest = q.scatter(1, a, 0.0).sum(dim=1, keepdim=True)  # 1 − q(a), summed directly
    if sd_sum is None:
        sd_sum = torch.minimum(p, q).sum(dim=1)
    d = p - q
    Sia = torch.clamp_min(-d, 0.0).sum(dim=1) - torch.clamp_min(qa - pa, 0.0)[:, 0]
    p1 = torch.clamp_min(d, 0.0).scatter_(1, a, 0.0)
    Qai = (qa * (q / torch.where(rest > 0, rest, torch.ones_like(rest)))).scatter_(1, a, 0.0)
    Sai = torch.clamp_min(Qai - p1, 0.0).sum(dim=1)
    two = (
        (sd_sum - torch.minimum(pa, qa)[:, 0])
        + torch.minimum(p1, Qai).sum(dim=1)
        + torch.minimum(pa[:, 0], Sai + Sia)
    )
    val = torch.where(rest[:, 0] > 0, two, sd_sum)  # rest = 0: q one-hot, a single draft
    return torch.clamp(val, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# recursive rejection without replacement
# --------------------------------------------------------------------------------------------
def rrs_wor_two(p: torch.Tensor, q: torch.Tensor, sr: SortedRatios) -> torch.Tensor:
    """Exact n = 2 acceptance (REFERENCE §3):

    Σ min(p, q) + Σ_x (q(x) − min(p(x), q(x))) · F(1/(1 − q(x))),   F(c) = Σ_y min(r(y), c q(y)),

    r = (p − q)+/Z, Z = Σ (p − q)+. r/q ≤ c iff p/q ≤ 1 + cZ, so F(c) = [Σ_{p/q ≤ 1+cZ} (p − q)+]/Z +
    c Σ_{p/q > 1+cZ} q: a prefix sum of (p − q)+ and a suffix sum of q in the shared ratio order, found
    by searchsorted. 1 − q(x) is summed from the other tokens when q(x) > 1/2 (as the NumPy path).
    When Z = 0 (p = q) nothing is rejected and the value is Σ min(p, q).
    """
    zero = torch.zeros_like(p)
    first = torch.minimum(p, q)
    reject = q - first
    d_below = _prefix(torch.clamp_min(sr.p - sr.q, 0.0))
    Z = d_below[:, -1:]
    big = q > 0.5
    rest_big = torch.where(big, zero, q).sum(dim=1, keepdim=True)
    rest = torch.where(big, rest_big.expand_as(q), 1.0 - q)
    live = (reject > 0) & (rest > 0) & (Z > 0)
    c = torch.where(live, 1.0 / torch.where(rest > 0, rest, torch.ones_like(rest)), zero)
    k = _count_at_most(sr, 1.0 + c * Z)
    F = torch.gather(d_below, 1, k) / torch.where(Z > 0, Z, torch.ones_like(Z)) + c * torch.gather(sr.q_above, 1, k)
    val = first.sum(dim=1) + torch.where(live, reject * F, zero).sum(dim=1)
    return torch.clamp(val, 0.0, 1.0)


_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x · c) mod 2^32 for 0 ≤ x < 2^32 in int64 arithmetic without overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer ("lowbias32", C. Wellons) on int64 tensors holding values < 2^32."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def history_uniforms(seed: int, positions: torch.Tensor, paths: int, steps: int) -> torch.Tensor:
    """Uniforms in (0, 1), float64, shape (B, paths, steps), a hash of (seed, position, path, step).

    Counter-based: the numbers for a position do not depend on the chunk it is computed in, the
    device or the thread count, so replay results are invariant to chunking and sharding.
    """
    device = positions.device
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    h = _hash32(torch.tensor([(s & _M32) ^ 0x9E3779B9], dtype=torch.int64, device=device))
    h = _hash32(h ^ ((s >> 32) & _M32))
    pos = positions.to(torch.int64)
    h = _hash32(h ^ (pos & _M32))
    h = _hash32(h ^ ((pos >> 32) & _M32))  # (B,)
    path = torch.arange(paths, dtype=torch.int64, device=device)
    h = _hash32(h[:, None] ^ path[None, :])  # (B, S)
    step = torch.arange(steps, dtype=torch.int64, device=device)
    w1 = _hash32(h[..., None] ^ (2 * step + 1))
    w2 = _hash32(_hash32(h[..., None] ^ (2 * step + 2)) ^ 0x5BD1E995)
    return ((w1 >> 5) * 67108864 + (w2 >> 6)).to(torch.float64).add_(0.5).mul_(2.0**-53)


def _rejection_cdf(sr, kk, rem_idx, rem_q, k_theta, P_th, Q_th, theta, m, Z):
    """Rejection mass of the first kk sorted tokens: Σ_{j<kk, not rejected} q_j/m − Σ_{θ<p/q, j<kk} (p_j − θq_j)/Z
    (for kk ≤ #{p/q ≤ θ'}); all arguments of shape (B, S), rejected ids and masses (B, S, R)."""
    Qk = torch.gather(sr.q_below, 1, kk)
    before = (rem_q * (rem_idx < kk[..., None])).sum(dim=-1)
    inner = torch.where(kk > k_theta, (torch.gather(sr.p_below, 1, kk) - P_th) - theta * (Qk - Q_th), torch.zeros_like(Qk))
    return (Qk - before) / m - inner / Z


def rrs_wor_histories(sr: SortedRatios, steps: int, u: torch.Tensor) -> torch.Tensor:
    """Rao–Blackwellised acceptance along sampled rejection histories of RRS without replacement.

    Returns ``totals`` of shape (B, S, steps): totals[..., i − 1] = Σ_{l≤i} (Π_{j<l} (1 − a_j)) a_l,
    an unbiased estimate of the acceptance with i drafts (valid for i ≤ |supp q|), where a_l is the
    exact acceptance of step l given the sampled rejected tokens before it and each rejected token
    is drawn from (D − R)+/(1 − a) with the uniforms ``u`` (B, S, ≥ steps − 1), by inverse CDF over
    the tokens in the shared p/q order.

    State: after rejections of tokens x_1..x_j, R = (p − θ q)+/Z(θ) with Z(θ) = Σ (p − θq)+, and
    D = q/m on the tokens not rejected, m = 1 − Σ q(x_i). Indeed (R − D)+ = (p − θ'q)+/Z(θ) with
    θ' = θ + Z(θ)/m, and a rejected token has p/q < θ', so it carries no R mass afterwards. Hence
    (everything by searchsorted and prefix sums, O(log V) per step and history)

        a = [Σ_{θ<p/q≤θ'} (p − θq)]/Z + [Σ_{p/q>θ'} q]/m,

    and the rejection law is q/m − (p − θq)+/Z on p/q < θ' (rejected tokens excluded).
    """
    B, V = sr.ratio.shape
    S = u.shape[1]
    dtype, device = sr.ratio.dtype, sr.ratio.device
    u = u.to(dtype)
    Pb, Qb = sr.p_below, sr.q_below

    def take(table, idx):  # table (B, V + 1), idx (B, S)
        return torch.gather(table, 1, idx)

    theta = torch.zeros((B, S), dtype=dtype, device=device)
    Z = _z_at(sr, _count_at_most(sr, theta), theta)  # Z(0) = Σ p
    m = torch.ones_like(theta)
    alive = torch.ones_like(theta)
    total = torch.zeros_like(theta)
    R_max = max(steps - 1, 1)
    rem_idx = torch.full((B, S, R_max), V + 1, dtype=torch.int64, device=device)
    rem_q = torch.zeros((B, S, R_max), dtype=dtype, device=device)
    qs_pad = torch.cat([sr.q, torch.zeros_like(sr.q[:, :1])], dim=1)
    totals = torch.empty((B, S, steps), dtype=dtype, device=device)
    search_iters = max(1, math.ceil(math.log2(V + 1))) + 1
    one = torch.ones_like(theta)
    for i in range(steps):
        live = alive > 0
        Zs = torch.where(live & (Z > 0), Z, one)
        ms = torch.where(live & (m > 0), m, one)
        a, theta_next, k_theta, k_next, mid = _theta_step(sr, theta, Zs, ms)
        total = total + torch.where(live, alive * a, torch.zeros_like(a))
        totals[..., i] = total
        if i == steps - 1:
            break
        removed_mass = rem_q.sum(dim=-1)
        P_th, Q_th = take(Pb, k_theta), take(Qb, k_theta)

        c_tot = (take(Qb, k_next) - removed_mass) / ms - mid / Zs
        target = u[..., i] * c_tot
        lo = torch.zeros_like(k_next)
        hi = k_next.clone()
        for _ in range(search_iters):
            md = (lo + hi) // 2
            ok = _rejection_cdf(sr, md, rem_idx, rem_q, k_theta, P_th, Q_th, theta, ms, Zs) >= target
            step_on = hi - lo > 1
            hi = torch.where(step_on & ok, md, hi)
            lo = torch.where(step_on & ~ok, md, lo)
        pick = torch.clamp(hi - 1, min=0)
        q_pick = torch.gather(qs_pad, 1, pick)
        go = live & (c_tot > 0) & (q_pick > 0)
        alive = torch.where(go, alive * torch.clamp_min(1.0 - a, 0.0), torch.zeros_like(alive))
        rem_idx[..., i] = torch.where(go, pick, rem_idx[..., i])
        rem_q[..., i] = torch.where(go, q_pick, rem_q[..., i])
        theta = torch.where(go, theta_next, theta)
        Z = torch.where(go, _z_at(sr, k_next, theta_next), Z)
        m = torch.where(go, m - q_pick, m)
    return totals
