"""Batched exact acceptance of every published verifier: one implementation for NumPy and torch.

Every function takes target p and draft q of shape (B, V) — one row per position, p = target,
q = draft (REFERENCE notation) — as NumPy arrays or torch tensors (any device, float64 or float32),
and returns arrays of the same kind: there is no Python loop over positions for torch input, only
over n, bisection steps and sampled rejection steps (NumPy's ``searchsorted`` is 1-D, so the NumPy
backend loops over rows inside that one operation). :class:`~spectheory.verifiers.Verifier`
``.acceptance``, :func:`spectheory.acceptance`, :func:`spectheory.compare`, the replay of recorded
logits and the command line all call these functions; the samplers' rules (``Verifier._rule``) and
their exhaustive enumeration (:func:`~spectheory.verifiers.exact_output_law`) are the independent
truth they are tested against.

The backend is chosen by the input's type through a small namespace of the operations that differ
between the two libraries (:mod:`spectheory.verifiers._xp`; a choice in the spirit of POT's
``ot.backend``: no new dependency, and the handful of operations used here — gather, row-wise
searchsorted, cumsum — are not all in the array API standard for N-d inputs).

One sort serves most verifiers (:func:`sort_by_ratio`): tokens in increasing order of p/q (q = 0
last, ratio +∞), with prefix sums from the front and suffix sums from the back.

* sd: Σ min(p, q) (Leviathan et al. 2023, arXiv 2211.17192).
* rrs (SpecInfer, arXiv 2305.09781): the residuals are R_i = (p − θ_i q)+/Z(θ_i), so each step is a
  searchsorted in the sorted ratios.
* kseq (SpecTr, arXiv 2310.15141, Alg. 3): β(ρ) by searchsorted, ρ* by bisection, all n at once.
* spechub (arXiv 2411.05289): a few O(V) passes.
* rrs_wor (Jeon et al., arXiv 2402.14160; Sequoia, arXiv 2402.12374 Alg. 2): closed form at n ≤ 2,
  exact recursion where the number of rejection histories is small, otherwise the keyed
  Rao–Blackwellised estimate (:func:`rrs_wor_histories`) with its standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from .._validation import SpecTheoryValueError
from ._xp import namespace

#: Relative width of the final ρ bracket in the kseq bisection.
RHO_RTOL = 4e-16

#: Largest number of rejection histories the exact rrs_wor recursion visits (m(m − 1)…(m − n + 2)
#: for a draft support of size m); beyond it the acceptance is estimated.
MAX_HISTORIES = 200_000

#: rrs: after this many steps, stop once every row has settled (see :func:`rrs`).
RRS_TAIL_AFTER = 64

#: rrs: the most steps taken for a huge n before giving up with an error.
RRS_MAX_STEPS = 200_000

#: Default number of sampled rejection histories for the rrs_wor estimate.
ESTIMATE_PATHS = 256


# --------------------------------------------------------------------------------------------
# the shared sort
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SortedRatios:
    """Rows sorted by p/q ascending (q = 0 last). Prefix arrays have V + 1 entries (index k = the
    first k sorted tokens); ``*_above`` are summed from the back, so small tails keep their accuracy."""

    order: object  # (B, V) token ids in sorted order
    ratio: object  # (B, V) sorted p/q, +inf where q = 0
    p: object  # (B, V) p in sorted order
    q: object
    p_below: object  # (B, V + 1) Σ_{j<k} p_j
    q_below: object
    p_above: object  # (B, V + 1) Σ_{j≥k} p_j
    q_above: object

    def rows(self, idx) -> SortedRatios:
        """The same sort restricted to rows ``idx`` (an index array or boolean mask)."""
        return SortedRatios(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _prefix(xp, x):
    return xp.cat([xp.zeros(x.shape[:-1] + (1,), like=x), xp.cumsum(x, axis=-1)], axis=-1)


def _suffix(xp, x):
    return xp.cat([xp.flip(xp.cumsum(xp.flip(x, -1), axis=-1), -1), xp.zeros(x.shape[:-1] + (1,), like=x)], axis=-1)


def _ratio(xp, p, q):
    """p/q, +inf where q = 0 (and where the ratio overflows)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return xp.where(q > 0, p / xp.where(q > 0, q, 1.0), math.inf)


def sort_by_ratio(p, q) -> SortedRatios:
    """The shared sort of the rows of (p, q) by p/q ascending, with prefix and suffix sums."""
    xp = namespace(p)
    ratio = _ratio(xp, p, q)
    order = xp.argsort_rows(ratio)
    ratio = xp.take(ratio, order)
    ps, qs = xp.take(p, order), xp.take(q, order)
    return SortedRatios(order, ratio, ps, qs, _prefix(xp, ps), _prefix(xp, qs), _suffix(xp, ps), _suffix(xp, qs))


def _count_at_most(xp, sr: SortedRatios, x):
    """#{tokens with p/q ≤ x} per row, for x of shape (B, ...)."""
    return xp.searchsorted(sr.ratio, x, side="right")


def support(q):
    """|supp q| per row (int64, shape (B,))."""
    xp = namespace(q)
    return xp.astype(xp.sum(q > 0, axis=-1), xp.int64)


def _ns_row(xp, like, ns):
    """The draft counts as a float row; counts beyond 1e300 act as 1e300 ((1 − β)^n = 0 there)."""
    return xp.asarray([float(min(int(n), 10**300)) for n in ns], like=like)[None, :]


# --------------------------------------------------------------------------------------------
# sd, rrs, kseq, spechub
# --------------------------------------------------------------------------------------------
def sd(p, q):
    """Single-draft speculative sampling: Σ min(p, q) = 1 − TV(p, q), shape (B,)."""
    xp = namespace(p)
    return xp.clip(xp.sum(xp.minimum(p, q), axis=-1), 0.0, 1.0)


def _theta_step(xp, sr, theta, Z, m):
    """One step of a residual chain R = (p − θq)+/Z against D = q/m (no rejected tokens removed).

    Returns (a, θ', k_θ, k_θ'): a = Σ min(R, D) = [Σ_{θ<p/q≤θ'} (p − θq)]/Z + [Σ_{p/q>θ'} q]/m with
    θ' = θ + Z/m, and (R − D)+ = (p − θ'q)+/Z. Range sums are differences of suffix sums.
    """
    theta_next = theta + Z / m
    k_th = _count_at_most(xp, sr, theta)
    k_nx = _count_at_most(xp, sr, theta_next)
    Pa, Qa = sr.p_above, sr.q_above
    qa_nx = xp.take(Qa, k_nx)
    mid = (xp.take(Pa, k_th) - xp.take(Pa, k_nx)) - theta * (xp.take(Qa, k_th) - qa_nx)
    a = xp.clip(xp.clip(mid, 0.0) / Z + qa_nx / m, 0.0, 1.0)
    return a, theta_next, k_th, k_nx


def _z_at(xp, sr, k, theta):
    """Z(θ) = Σ_{p/q>θ} (p − θq) given k = #{p/q ≤ θ} (clamped at 0 against rounding)."""
    return xp.clip(xp.take(sr.p_above, k) - theta * xp.take(sr.q_above, k), 0.0)


def rrs(sr: SortedRatios, ns):
    """Recursive rejection sampling with replacement, i.i.d. drafts: 1 − Π_{i≤n} (1 − a_i),
    a_i = Σ min(R_i, q), R_1 = p, R_{i+1} = norm((R_i − q)+); shape (B, len(ns)).

    R_i = (p − θ_i q)+/Z(θ_i) with θ_1 = 0 and θ_{i+1} = θ_i + Z(θ_i), so each step is two
    searchsorted calls on the shared sort. Where (R_i − q)+ has no mass (R_i = q, a_i = 1) R stays.
    """
    xp = namespace(sr.ratio)
    B = sr.ratio.shape[0]
    theta = xp.zeros((B, 1), like=sr.ratio)
    one = xp.ones((B, 1), like=sr.ratio)
    Z = _z_at(xp, sr, _count_at_most(xp, sr, theta), theta)
    reject = one[:, 0]
    a_prev = None
    out = {}
    wanted = sorted(set(int(n) for n in ns))
    i = 0
    while i < wanted[-1]:
        i += 1
        live = Z > 0
        a, theta_next, _, k_nx = _theta_step(xp, sr, theta, xp.where(live, Z, one), one)
        a = xp.where(live, a, one)[:, 0]
        reject = reject * (1.0 - a)
        if i in wanted:
            out[i] = xp.clip(1.0 - reject, 0.0, 1.0)
        Z_next = _z_at(xp, sr, k_nx, theta_next)
        move = live & (Z_next > 0)
        theta = xp.where(move, theta_next, theta)
        Z = xp.where(move, Z_next, Z)
        # huge n: once every row has 1 − reject = 1 in floating point, or a step acceptance that no
        # longer changes (R has converged), the remaining steps are (1 − a)^k in closed form
        if i >= RRS_TAIL_AFTER and a_prev is not None:
            settled = (reject <= xp.eps(sr.ratio) / 4) | (a == a_prev)
            if xp.any(~settled) and i >= RRS_MAX_STEPS:
                raise SpecTheoryValueError(
                    f"n: rrs acceptance with n = {wanted[-1]} did not settle within {RRS_MAX_STEPS} steps "
                    "(draft mass on the highest p/q tokens below about 1e-4); use a smaller n")
            if not xp.any(~settled):
                log_keep = xp.log1p(-xp.clip(a, 0.0, 1.0))
                for n in wanted:
                    if n > i:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            tail = xp.where(a >= 1, 0.0 * a, xp.expm1(float(min(n - i, 1e300)) * log_keep) + 1.0)
                        out[n] = xp.clip(1.0 - reject * tail, 0.0, 1.0)
                break
        a_prev = a
    return xp.stack([out[int(n)] for n in ns], axis=-1)


def _beta(xp, sr, rho):
    """β(ρ) = Σ_{p/q ≥ ρ} q + (1/ρ) Σ_{p/q < ρ} p for ρ of shape (B, N)."""
    k = xp.searchsorted(sr.ratio, rho, side="left")
    return xp.take(sr.q_above, k) + xp.take(sr.p_below, k) / rho


def kseq_rho(sr: SortedRatios, ns):
    """ρ* and β(ρ*) of K-SEQ for every row and n, each of shape (B, len(ns)).

    f(ρ) = ρβ(ρ) − 1 + (1 − β(ρ))^n is nondecreasing on [1, n] with f(n) ≥ 0 (Bernoulli's
    inequality); ρ* = 1 if f(1) ≥ 0 or n = 1, else the root, by bisection to a bracket of relative
    width 4e-16, all rows and n at once (geometric steps first, so a huge n converges too). The upper end of the final bracket is returned, so
    f(ρ*) ≥ 0 and the sampler's residual law is a valid distribution.
    """
    xp = namespace(sr.ratio)
    B = sr.ratio.shape[0]
    nn = _ns_row(xp, sr.ratio, ns) + xp.zeros((B, len(ns)), like=sr.ratio)

    def f(rho):
        b = _beta(xp, sr, rho)
        with np.errstate(divide="ignore"):  # (1 − β)^n as exp(n log1p(−β)): no rounding of 1 − β
            keep = xp.exp(nn * xp.log1p(-xp.clip(b, 0.0, 1.0)))
        return rho * b - 1.0 + keep, b

    one = xp.ones((B, len(ns)), like=sr.ratio)
    f1, b1 = f(one)
    done = (f1 >= 0) | (nn == 1)
    lo, hi = one, nn + 0.0
    b_hi = _beta(xp, sr, hi)
    rtol = RHO_RTOL if xp.eps(sr.ratio) < 1e-10 else xp.eps(sr.ratio)
    for _ in range(200):  # ends by the width test: ~62 steps in float64
        # geometric midpoint while the bracket spans more than a factor 2 (n up to 1e300 in ~70
        # steps), arithmetic after
        mid = xp.where(hi > 2.0 * lo, xp.sqrt(lo) * xp.sqrt(hi), 0.5 * (lo + hi))
        active = ~done & (hi - lo > rtol * hi) & (mid > lo) & (mid < hi)
        if not xp.any(active):
            break
        fm, bm = f(mid)
        up = active & (fm >= 0)
        hi = xp.where(up, mid, hi)
        b_hi = xp.where(up, bm, b_hi)
        lo = xp.where(active & ~up, mid, lo)
    return xp.where(done, one, hi), xp.where(done, b1, b_hi)


def kseq(sr: SortedRatios, ns):
    """K-SEQ (SpecTr Alg. 3) acceptance 1 − (1 − β(ρ*))^n (:func:`kseq_rho`), shape (B, len(ns))."""
    xp = namespace(sr.ratio)
    _, beta_star = kseq_rho(sr, ns)
    beta_star = xp.clip(beta_star, 0.0, 1.0)
    nn = _ns_row(xp, sr.ratio, ns) + 0.0 * beta_star
    with np.errstate(divide="ignore"):
        acc = xp.where(beta_star < 1, -xp.expm1(nn * xp.log1p(-beta_star)), 1.0 + 0.0 * beta_star)
    return xp.clip(acc, 0.0, 1.0)


def spechub(p, q):
    """SpecHub (n = 2, hub a = argmax q): Σ_{x≠a} min(p, q) + Σ_{x≠a} min(p1, Qai) + min(p(a), Sai + Sia)
    with Qai = q(a)q/(1 − q(a)), p1 = (p − q)+ off a, Sia = Σ_{x≠a}(q − p)+, Sai = Σ_{x≠a}(Qai − p1)+;
    Σ min(p, q) when q has fewer than two tokens. Shape (B,).

    1 − q(a) is summed from the other tokens (no cancellation for a confident draft), and
    Qai = q(a)·(q/(1 − q(a))) is capped at the float maximum when 1 − q(a) is subnormal.
    """
    xp = namespace(p)
    B, V = p.shape
    a = xp.topk_indices(q, 1)  # first maximum
    qa, pa = xp.take(q, a), xp.take(p, a)
    zero1 = xp.zeros((B, 1), like=q)
    off_q = xp.put(q, a, zero1)
    rest = xp.sum(off_q, axis=-1, keepdims=True)
    sd_sum = xp.sum(xp.minimum(p, q), axis=-1)
    d = p - q
    Sia = xp.sum(xp.clip(-d, 0.0), axis=-1) - xp.clip(qa - pa, 0.0)[:, 0]
    p1 = xp.put(xp.clip(d, 0.0), a, zero1)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        Qai = xp.clip(qa * (off_q / xp.where(rest > 0, rest, 1.0)), None, xp.finfo_max(q))
    Sai = xp.sum(xp.clip(Qai - p1, 0.0), axis=-1)
    two = (sd_sum - xp.minimum(pa, qa)[:, 0]) + xp.sum(xp.minimum(p1, Qai), axis=-1) + xp.minimum(pa[:, 0], Sai + Sia)
    val = xp.where(rest[:, 0] > 0, two, sd_sum)  # rest = 0: q one-hot, a single draft
    return xp.clip(val, 0.0, 1.0)


def greedy(p, q, ns, sr: SortedRatios | None = None):
    """Greedy drafting's verifier (Hu et al., arXiv 2502.18779) attains its scheme's bound
    p(T) + Σ_{x∉T} min(p, q'): the acceptance is that bound, computed by the one implementation in
    :mod:`spectheory.solvers`; shape (B, len(ns))."""
    from ..solvers.bounds import bound_rows

    xp = namespace(p)
    if xp.name == "torch":
        vals = bound_rows(p.double(), q.double(), list(ns), "greedy")
        return vals.to(p.dtype)
    return bound_rows(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64), list(ns), "greedy")


# --------------------------------------------------------------------------------------------
# recursive rejection without replacement
# --------------------------------------------------------------------------------------------
def rrs_wor_two(p, q, sr: SortedRatios | None = None):
    """Exact acceptance of RRS without replacement with two drafts, shape (B,):

    Σ min(p, q) + Σ_x (q(x) − min(p(x), q(x))) · F_x,   F_x = Σ_{y≠x} min(r(y), q(y)/(1 − q(x))),

    r = (p − q)+/Z, Z = Σ (p − q)+ (Jeon et al., arXiv 2402.14160). Only x with q(x) > p(x) are
    rejected, and there r(x) = 0. r(y)/q(y) ≤ c iff p/q ≤ 1 + cZ, so with c = 1/(1 − q(x))
    F_x = [Σ_{p/q ≤ 1+cZ} (p − q)+]/Z + [Σ_{p/q > 1+cZ} q]/(1 − q(x)): a prefix sum of (p − q)+ and a
    suffix sum of q in the shared order, found by searchsorted. 1 − q(x) is summed from the other
    tokens when q(x) > 1/2, and the threshold 1 + cZ is capped at the float maximum, so a subnormal
    1 − q(x) gives F_x = 1 (all of r is drafted) instead of inf · 0. When Z = 0 (p = q) nothing is
    rejected and the value is Σ min(p, q).
    """
    xp = namespace(p)
    if sr is None:
        sr = sort_by_ratio(p, q)
    first = xp.minimum(p, q)
    reject = q - first
    d_below = _prefix(xp, xp.clip(sr.p - sr.q, 0.0))
    Z = d_below[:, -1:]
    big = q > 0.5
    rest_big = xp.sum(xp.where(big, 0.0, q), axis=-1, keepdims=True)
    rest = xp.where(big, rest_big, 1.0 - q)
    live = (reject > 0) & (rest > 0) & (Z > 0)
    safe_rest = xp.where(live, rest, 1.0)
    with np.errstate(over="ignore", divide="ignore"):
        thr = xp.clip(1.0 + Z / safe_rest, None, xp.finfo_max(q))
    k = _count_at_most(xp, sr, thr)
    F = xp.take(d_below, k) / xp.where(Z > 0, Z, 1.0) + xp.take(sr.q_above, k) / safe_rest
    val = xp.sum(first, axis=-1) + xp.sum(xp.where(live, reject * xp.clip(F, 0.0, 1.0), 0.0), axis=-1)
    return xp.clip(val, 0.0, 1.0)


_M32 = 0xFFFFFFFF


def _mul32(x, c: int):
    """(x · c) mod 2^32 for 0 ≤ x < 2^32 in int64 arithmetic without overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _hash32(x):
    """A 32-bit integer mixer ("lowbias32", C. Wellons) on int64 arrays holding values < 2^32."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def history_uniforms(seed: int, positions, paths: int, steps: int):
    """Uniforms in (0, 1), float64, shape (B, paths, steps): a hash of (seed, position, path, step).

    Counter-based: the numbers for a position do not depend on the batch it is computed in, the
    backend, the device or the thread count, so every entry point gives the same estimate for the
    same (seed, position). ``positions``: int64 array or tensor of shape (B,), of the backend wanted.
    """
    xp = namespace(positions)
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    h = _hash32(xp.asarray([(s & _M32) ^ 0x9E3779B9], like=positions, dtype=xp.int64))
    h = _hash32(h ^ ((s >> 32) & _M32))
    pos = xp.astype(positions, xp.int64)
    h = _hash32(h ^ (pos & _M32))
    h = _hash32(h ^ ((pos >> 32) & _M32))  # (B,)
    path = xp.arange(paths, like=positions)
    h = _hash32(h[:, None] ^ path[None, :])  # (B, S)
    step = xp.arange(steps, like=positions)
    w1 = _hash32(h[..., None] ^ (2 * step + 1))
    w2 = _hash32(_hash32(h[..., None] ^ (2 * step + 2)) ^ 0x5BD1E995)
    u = xp.astype((w1 >> 5) * 67108864 + (w2 >> 6), _float64(xp))
    return (u + 0.5) * 2.0**-53


def _float64(xp):
    return np.float64 if xp.name == "numpy" else xp.torch.float64


def rrs_wor_histories(p, q, sr: SortedRatios, steps: int, u):
    """Rao–Blackwellised acceptance along sampled rejection histories of RRS without replacement.

    Returns ``totals`` of shape (B, S, steps): totals[..., i − 1] = Σ_{l≤i} (Π_{j<l} (1 − a_j)) a_l,
    an unbiased estimate of the acceptance with i drafts (for i ≤ |supp q|), where a_l is the exact
    acceptance of step l given the sampled rejected tokens before it, and each rejected token is
    drawn from its exact law (D − R)+/(1 − a) with the uniforms ``u`` (B, S, ≥ steps − 1) by inverse
    CDF. The estimator's only randomness is which tokens were rejected.

    State: after rejecting x_1..x_j, R = (p − θq)+/Z(θ) with Z(θ) = Σ (p − θq)+, and D = q/m on the
    tokens not rejected, m = q(not rejected). Indeed (R − D)+ = (p − θ'q)+/Z(θ) with θ' = θ + Z(θ)/m,
    and a rejected token has p/q < θ', so it carries no R mass afterwards. Hence, by searchsorted
    and suffix sums in the shared p/q order (O(log V) per step and history),

        a = [Σ_{θ<p/q≤θ'} (p − θq)]/Z + [Σ_{p/q>θ'} q]/m,

    and the rejection law is q/m − (p − θq)+/Z on p/q < θ' (rejected tokens excluded).

    Precision: the K = steps − 1 most likely draft tokens are kept out of the prefix sums and
    handled explicitly, so m is never the difference of two nearly equal numbers: a rejected token
    still in the prefix sums has q at most that of some not-yet-rejected top token, hence at most m.
    (Subtracting a rejected top token with q ≈ 1 from a prefix sum lost all the draft's remaining
    mass — 1e-12 and less — and made the estimate collapse for confident drafts.) θ' is capped at the
    float maximum, so tokens with q = 0 are never counted as drafted.
    """
    xp = namespace(p)
    B, V = p.shape
    S = u.shape[1]
    dt = p.dtype
    u = xp.astype(u, dt)
    K = max(min(steps - 1, V), 1)
    big = xp.finfo_max(p)

    # the explicit top tokens E (B, K) and the rest, in the shared order, with E zeroed
    eidx = xp.topk_indices(q, K)
    pE, qE = xp.take(p, eidx)[:, None, :], xp.take(q, eidx)[:, None, :]  # (B, 1, K)
    rE = _ratio(xp, pE, qE)
    inE = xp.put(xp.zeros((B, V), like=p, dtype=xp.bool_), eidx, xp.ones((B, K), like=p, dtype=xp.bool_))
    inE_s = xp.take(inE, sr.order)
    # sorted position of each explicit token: the rejected token is found by one inverse CDF over
    # the shared order, E tokens at their own places, so which token a uniform picks does not
    # depend on K (nor on the largest n requested)
    rank = xp.put(xp.zeros((B, V), like=p, dtype=xp.int64), sr.order,
                  xp.arange(V, like=p)[None, :] + xp.zeros((B, V), like=p, dtype=xp.int64))
    posE = xp.take(rank, eidx)[:, None, :]  # (B, 1, K)
    ps = xp.where(inE_s, 0.0, sr.p)
    qs = xp.where(inE_s, 0.0, sr.q)
    Pb, Qb, Pa, Qa = _prefix(xp, ps), _prefix(xp, qs), _suffix(xp, ps), _suffix(xp, qs)
    Q_rest = Qa[:, :1]  # (B, 1)
    qs_pad = xp.cat([qs, xp.zeros((B, 1), like=qs)], axis=-1)

    zero = xp.zeros((B, S), like=p)
    one = xp.ones((B, S), like=p)
    remE = xp.zeros((B, S, K), like=p, dtype=xp.bool_)
    R_max = max(steps - 1, 1)
    rem_idx = xp.full((B, S, R_max), V + 1, like=p, dtype=xp.int64)
    rem_q = xp.zeros((B, S, R_max), like=p)

    def z_of(theta, k):
        rest = xp.clip(xp.take(Pa, k) - theta * xp.take(Qa, k), 0.0)
        t = theta[..., None]
        e = xp.sum(xp.where(~remE & (rE > t), pE - t * qE, 0.0), axis=-1)
        return rest + e

    def m_of():
        rest = xp.clip(Q_rest - xp.sum(rem_q, axis=-1), 0.0)
        return rest + xp.sum(xp.where(remE, 0.0, qE + 0.0 * rem_q[..., :1]), axis=-1)

    theta = zero
    Z = z_of(theta, _count_at_most(xp, sr, theta))
    m = m_of()
    alive = one
    total = zero
    out = []
    search_iters = max(1, math.ceil(math.log2(V + 1))) + 1
    for i in range(steps):
        live = (alive > 0) & (Z > 0) & (m > 0)
        Zs = xp.where(live, Z, one)
        ms = xp.where(live, m, one)
        with np.errstate(over="ignore"):
            theta_next = xp.clip(theta + Zs / ms, None, big)
        k_th = _count_at_most(xp, sr, theta)
        k_nx = _count_at_most(xp, sr, theta_next)
        qa_nx = xp.take(Qa, k_nx)
        mid = xp.clip((xp.take(Pa, k_th) - xp.take(Pa, k_nx)) - theta * (xp.take(Qa, k_th) - qa_nx), 0.0)
        t, tn = theta[..., None], theta_next[..., None]
        free = ~remE
        in_range = free & (rE > t) & (rE <= tn)
        mid_E = xp.sum(xp.where(in_range, pE - t * qE, 0.0), axis=-1)
        above_E = xp.sum(xp.where(free & (rE > tn), qE + 0.0 * t, 0.0), axis=-1)
        a = xp.clip((mid + mid_E) / Zs + (qa_nx + above_E) / ms, 0.0, 1.0)
        # with Z = 0 (R = D) a step accepts surely; with m = 0 the support is used up
        a = xp.where(live, a, xp.where((alive > 0) & (m > 0), one, zero))
        total = total + alive * a
        out.append(total)
        if i == steps - 1:
            break
        # rejection weights: E tokens explicitly, the rest by inverse CDF over the shared order
        with np.errstate(over="ignore"):  # q/m of already rejected E tokens, masked out
            wE = xp.where(free & (rE < tn), xp.clip(qE / ms[..., None] - xp.clip(pE - t * qE, 0.0) / Zs[..., None], 0.0), 0.0)
        cE = xp.sum(wE, axis=-1)
        rem_sum = xp.sum(rem_q, axis=-1)
        c_rest = xp.clip((xp.take(Qb, k_nx) - rem_sum) / ms - mid / Zs, 0.0)
        target = u[..., i] * (cE + c_rest)
        # smallest kk with W(kk) ≥ target, W(kk) the rejection weight of sorted positions < kk
        Pa_th, Qa_th = xp.take(Pa, k_th), xp.take(Qa, k_th)
        lo = k_nx * 0
        hi = k_nx + 0
        for _ in range(search_iters):
            md = (lo + hi) // 2
            below = xp.sum(xp.where(rem_idx < md[..., None], rem_q, 0.0), axis=-1)
            inner = xp.where(md > k_th, (Pa_th - xp.take(Pa, md)) - theta * (Qa_th - xp.take(Qa, md)), 0.0)
            W_E = xp.sum(xp.where(posE < md[..., None], wE, 0.0), axis=-1)
            W = xp.clip((xp.take(Qb, md) - below) / ms - xp.clip(inner, 0.0) / Zs, 0.0) + W_E
            ok = W >= target
            step_on = hi - lo > 1
            hi = xp.where(step_on & ok, md, hi)
            lo = xp.where(step_on & ~ok, md, lo)
        pick = xp.clip(hi - 1, 0)
        hitE_all = posE == pick[..., None]  # (B, S, K)
        pick_E = xp.any_axis(hitE_all) if K > 0 else (pick < 0)
        q_pick = xp.take(qs_pad, pick)
        go = live & ((cE + c_rest) > 0) & (pick_E | (q_pick > 0))
        alive = xp.where(go, alive * xp.clip(1.0 - a, 0.0), zero)
        if K > 0:
            hitE = hitE_all & (go & pick_E)[..., None]
            remE = remE | hitE
        take_rest = go & ~pick_E
        rem_idx = _set_last(xp, rem_idx, i, xp.where(take_rest, pick, rem_idx[..., i]))
        rem_q = _set_last(xp, rem_q, i, xp.where(take_rest, q_pick, rem_q[..., i]))
        theta = xp.where(go, theta_next, theta)
        Z = xp.where(go, z_of(theta, _count_at_most(xp, sr, theta)), Z)
        m = xp.where(go, m_of(), m)
    return xp.stack(out, axis=-1)


def _set_last(xp, arr, i, values):
    """arr with arr[..., i] = values (a copy for NumPy, in place for torch)."""
    if xp.name == "numpy":
        arr = arr.copy()
    arr[..., i] = values
    return arr


def history_count(support: int, n: int) -> int:
    """Number of rejection histories m(m − 1)…(m − n + 2) the exact recursion visits."""
    count = 1
    for i in range(n - 1):
        count *= max(support - i, 0)
        if count > 1 << 62:
            break
    return count


@numba.njit(cache=True)
def _exact_dfs(p, q, n):  # pragma: no cover - compiled
    """Depth-first walk over ordered rejection histories with an explicit stack (see
    :func:`rrs_wor_exact_row`): acceptance Σ_histories P(history) · Σ min(R, D)."""
    m = p.shape[0]
    R = np.zeros((n, m))
    D = np.zeros((n, m))
    W = np.zeros(n)
    nxt = np.zeros(n, dtype=np.int64)
    R[0] = p
    D[0] = q
    W[0] = 1.0
    total = 0.0
    for x in range(m):
        total += min(R[0, x], D[0, x])
    depth = 0
    while depth >= 0:
        if depth == n - 1:
            depth -= 1
            continue
        x = nxt[depth]
        # next child: a token with positive rejection mass D − min(R, D)
        while x < m and D[depth, x] - min(R[depth, x], D[depth, x]) <= 0.0:
            x += 1
        if x >= m:
            depth -= 1
            continue
        nxt[depth] = x + 1
        w = W[depth] * (D[depth, x] - min(R[depth, x], D[depth, x]))
        c = depth + 1
        mass = 0.0
        for y in range(m):
            mass += max(R[depth, y] - D[depth, y], 0.0)
        for y in range(m):
            R[c, y] = max(R[depth, y] - D[depth, y], 0.0) / mass if mass > 0.0 else R[depth, y]
        dm = 0.0  # 1 − D(x), summed from the other tokens
        for y in range(m):
            if y != x:
                dm += D[depth, y]
        for y in range(m):
            D[c, y] = 0.0 if y == x else (D[depth, y] / dm if dm > 0.0 else D[depth, y])
        W[c] = w
        acc = 0.0
        for y in range(m):
            acc += min(R[c, y], D[c, y])
        total += w * acc
        nxt[c] = 0
        depth = c
    return total


def rrs_wor_exact_row(p: np.ndarray, q: np.ndarray, n: int) -> float:
    """Exact acceptance of RRS without replacement for one row by recursion over ordered rejection
    histories (O(histories · |supp q|), compiled with numba). The row is first reduced to the draft's support plus one
    token holding p's mass where q = 0 (such tokens only enter through sums)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    pos = q > 0
    p = np.concatenate([p[pos], [p[~pos].sum()]])
    q = np.concatenate([q[pos], [0.0]])

    return float(min(max(_exact_dfs(np.ascontiguousarray(p), np.ascontiguousarray(q), int(n)), 0.0), 1.0))


@dataclass(frozen=True)
class RrsWorAcceptance:
    """rrs_wor acceptance for each row and n: ``value`` and ``stderr`` of shape (B, len(ns)) in the
    input's array type; ``exact`` (NumPy bool, same shape) where the value is exact (stderr 0)."""

    value: object
    stderr: object
    exact: np.ndarray
    paths: int


def rrs_wor(p, q, ns, *, seed: int = 0, positions=None, paths: int = ESTIMATE_PATHS,
            max_histories: int = MAX_HISTORIES, sr: SortedRatios | None = None) -> RrsWorAcceptance:
    """Acceptance of recursive rejection sampling without replacement for every row and every n.

    With k = min(n, |supp q|) drafts per row:

    * k = 1: Σ min(p, q); k = 2: the closed form :func:`rrs_wor_two`;
    * k > 2 with at most ``max_histories`` rejection histories: the exact recursion
      (:func:`rrs_wor_exact_row`);
    * otherwise the keyed Rao–Blackwellised estimate (:func:`rrs_wor_histories`) over ``paths``
      histories whose uniforms are a hash of (``seed``, position): the same (seed, position) gives the
      same number from every entry point, backend and batch. ``positions`` defaults to the row index.
      Its standard error is the sample standard deviation over histories / sqrt(paths); it is 0 only
      when every sampled history gave the same value (e.g. when each step has one rejectable token,
      where the estimate is then exact).

    No exact algorithm is known at full vocabulary for n > 2 (see the verifier's docstring).
    """
    xp = namespace(p)
    B = p.shape[0]
    ns = tuple(ns)
    sup_np = np.asarray(xp.to_numpy(support(q)), dtype=np.int64)
    value = np.zeros((B, len(ns)))
    stderr = np.zeros((B, len(ns)))
    exact = np.ones((B, len(ns)), dtype=bool)
    kk = np.minimum(np.asarray([min(int(n), 1 << 62) for n in ns])[None, :], sup_np[:, None])  # (B, N)
    if np.any(kk <= 2):
        if sr is None and np.any(kk == 2):
            sr = sort_by_ratio(p, q)
        one = xp.to_numpy(sd(p, q))
        two = xp.to_numpy(rrs_wor_two(p, q, sr)) if np.any(kk == 2) else one
        value = np.where(kk <= 1, one[:, None], np.where(kk == 2, two[:, None], 0.0))
    big = kk > 2
    if np.any(big):
        hist = np.array([[history_count(int(s), int(k)) if k > 2 else 0 for k in row] for s, row in zip(sup_np, kk)])
        small = big & (hist <= max_histories)
        if np.any(small):
            P_np, Q_np = xp.to_numpy(p), xp.to_numpy(q)
            cache = {}
            for b, j in zip(*np.nonzero(small)):
                key = (b, int(kk[b, j]))
                if key not in cache:
                    cache[key] = rrs_wor_exact_row(P_np[b], Q_np[b], int(kk[b, j]))
                value[b, j] = cache[key]
        est = big & ~small
        if np.any(est):
            exact = exact & ~est
            rows = np.flatnonzero(est.any(axis=1))
            steps = int(kk[rows].max())
            if positions is None:
                pos = rows.astype(np.int64)
            else:
                pos = np.asarray(xp.to_numpy(positions), dtype=np.int64)[rows]
            ridx = xp.from_numpy(rows, like=p) if xp.name == "torch" else rows
            s_sub = (sr if sr is not None else sort_by_ratio(p, q)).rows(ridx)
            pos_x = xp.from_numpy(pos, like=p) if xp.name == "torch" else pos
            u = history_uniforms(seed, pos_x, paths, max(steps - 1, 1))
            totals = rrs_wor_histories(p[ridx], q[ridx], s_sub, steps, u)  # (R, S, steps)
            tot = xp.to_numpy(totals)
            for r, b in enumerate(rows):
                for j in np.flatnonzero(est[b]):
                    per_path = tot[r, :, int(kk[b, j]) - 1]
                    value[b, j] = min(max(float(per_path.mean()), 0.0), 1.0)
                    stderr[b, j] = float(per_path.std(ddof=1) / math.sqrt(paths))
    if xp.name == "torch":
        return RrsWorAcceptance(xp.from_numpy(value, like=p).to(p.dtype), xp.from_numpy(stderr, like=p).to(p.dtype),
                                exact, paths)
    return RrsWorAcceptance(value, stderr, exact, paths)


# --------------------------------------------------------------------------------------------
# every verifier, every n, one sort
# --------------------------------------------------------------------------------------------
#: Verifiers :func:`acceptances` computes (greedy's acceptance is its scheme's bound, computed by
#: the bound engine in :mod:`spectheory.solvers`).
BATCHED_VERIFIERS = ("sd", "rrs", "kseq", "spechub", "rrs_wor")


def acceptances(p, q, jobs: dict, *, seed: int = 0, positions=None, paths: int = ESTIMATE_PATHS,
                max_histories: int = MAX_HISTORIES, sr: SortedRatios | None = None) -> dict:
    """Acceptance of several verifiers for several n on the rows of (p, q), sharing one sort.

    ``jobs`` maps a verifier name of :data:`BATCHED_VERIFIERS` to its draft counts (sd at n = 1 and
    spechub at n = 2 only; other n are ignored for them). Returns ``{(name, n): (value, stderr,
    exact)}`` with ``value`` and ``stderr`` of shape (B,) in the input's array type and ``exact``
    a NumPy bool array (False only for the rrs_wor estimate). Each quantity is the function of this
    module that every other entry point calls, so the numbers are those of
    :func:`spectheory.acceptance` and the replay of recorded logits (rrs_wor: for the same seed and
    positions).
    """
    xp = namespace(p)
    B = p.shape[0]
    jobs = {name: tuple(sorted(set(int(n) for n in ns))) for name, ns in jobs.items() if ns}
    unknown = set(jobs) - set(BATCHED_VERIFIERS)
    if unknown:
        raise ValueError(f"acceptances: no batched implementation of {sorted(unknown)}")
    if sr is None and set(jobs) & {"rrs", "kseq", "rrs_wor"}:
        sr = sort_by_ratio(p, q)
    zero = xp.zeros((B,), like=p)
    yes = np.ones(B, dtype=bool)
    out = {}
    for name, ns in jobs.items():
        if name == "sd" and 1 in ns:
            out[("sd", 1)] = (sd(p, q), zero, yes)
        elif name == "spechub" and 2 in ns:
            out[("spechub", 2)] = (spechub(p, q), zero, yes)
        elif name in ("rrs", "kseq"):
            vals = (rrs if name == "rrs" else kseq)(sr, ns)
            for j, n in enumerate(ns):
                out[(name, n)] = (vals[:, j], zero, yes)
        elif name == "rrs_wor":
            res = rrs_wor(p, q, ns, seed=seed, positions=positions, paths=paths, max_histories=max_histories, sr=sr)
            for j, n in enumerate(ns):
                out[(name, n)] = (res.value[:, j], res.stderr[:, j], res.exact[:, j])
    return out
