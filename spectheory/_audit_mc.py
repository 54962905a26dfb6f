"""Monte Carlo mode of :func:`spectheory.audit`: sample the rule, test its output law with chi-square.

For rules that cannot be enumerated (large V, randomness that is not a comparison of a uniform,
NumPy or torch code working on batches). A *vectorised* rule takes a batch of B identical positions::

    rule(P, Q, drafts, rng) -> tokens

with ``P`` and ``Q`` of shape (B, V) (Q of shape (B, n, V) for ``sampling="independent"``),
``drafts`` of shape (B, k) (int64) and ``rng`` a :class:`numpy.random.Generator` (``backend="numpy"``)
or a :class:`torch.Generator` (``backend="torch"``: P, Q, drafts are torch tensors, float64 and
int64, on the CPU), returning the B output tokens. A non-vectorised rule (``vectorized=False``) is
the exact audit's ``rule(p, q, drafts, rng)``, called once per trial with
:class:`~spectheory._audit_rng.SamplingRNG`.

The test: Pearson's chi-square of the output counts against N·p (cells with expected count below 5
merged into one), at level ``alpha``; an output token with p = 0 rejects at once. Power: a law r at
total-variation distance δ from p has noncentrality N·Σ (r − p)²/p ≥ N·(Σ |r − p|)² = 4Nδ² (Cauchy–
Schwarz, Σ p = 1), so the test rejects it with probability at least P(χ²_df(4Nδ²) > crit);
``detectable_tv`` is the δ where that reaches 80% (for deviations not hidden inside a merged cell).
The acceptance is the fraction of outputs among the drafts, with its standard error; it exceeds the
bound when it is more than 4 standard errors above α*.
"""

from __future__ import annotations

import math

import numpy as np

from ._audit_rng import RuleFailure, SamplingRNG
from ._validation import SpecTheoryValueError

#: Power at which :attr:`AuditResult.detectable_tv` is stated.
POWER = 0.8


def _inverse_cdf(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    c = np.cumsum(q)
    return np.minimum(np.searchsorted(c, u * c[-1], side="right"), q.shape[0] - 1)


def draw_drafts(scheme, q: np.ndarray, n: int, B: int, gen: np.random.Generator) -> np.ndarray:
    """B draft tuples of the scheme, shape (B, k): vectorised for iid, without_replacement and
    independent; one :meth:`DraftScheme.sample` per row for the others."""
    if scheme.name == "iid":
        return _inverse_cdf(q, gen.random((B, n)))
    if scheme.name == "independent":
        return np.stack([_inverse_cdf(q[i], gen.random(B)) for i in range(n)], axis=1)
    if scheme.name == "without_replacement":
        k = scheme.effective_n(q, n)
        with np.errstate(divide="ignore"):
            keys = np.log(q)[None, :] + gen.gumbel(size=(B, q.shape[0]))
        return np.argsort(-keys, axis=1, kind="stable")[:, :k]
    return np.stack([scheme.sample(q, n, gen) for _ in range(B)])


def _detectable_tv(N: int, df: int, alpha: float) -> float:
    from scipy import optimize, stats

    if df < 1:
        return math.inf
    crit = stats.chi2.isf(alpha, df)

    def gap(lam):
        return stats.ncx2.sf(crit, df, lam) - POWER

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
    lam = optimize.brentq(gap, 1e-9, hi)
    return math.sqrt(lam / (4 * N))


def chi_square(counts: np.ndarray, p: np.ndarray):
    """(p-value, df) of Pearson's test of ``counts`` against p; p-value 0 if a p = 0 token occurs."""
    from scipy import stats

    N = counts.sum()
    if np.any(counts[p <= 0] > 0):
        return 0.0, max(int(np.count_nonzero(p > 0)) - 1, 1)
    exp = N * p[p > 0]
    obs = counts[p > 0].astype(np.float64)
    small = exp < 5
    if small.any():
        exp = np.concatenate([exp[~small], [exp[small].sum()]])
        obs = np.concatenate([obs[~small], [obs[small].sum()]])
    df = len(exp) - 1
    if df < 1:
        return 1.0, 0
    stat = float(np.sum((obs - exp) ** 2 / exp))
    return float(stats.chi2.sf(stat, df)), df


def _tokens(out, B: int, V: int) -> np.ndarray:
    if hasattr(out, "detach"):  # torch
        out = out.detach().cpu().numpy()
    try:
        t = np.asarray(out)
    except Exception:
        raise RuleFailure("bad_type", f"the rule returned {type(out).__name__}; expected B token ids") from None
    if t.shape != (B,) or t.dtype.kind not in "iu":
        raise RuleFailure(
            "bad_type", f"the vectorised rule returned shape {t.shape} dtype {t.dtype}; expected ({B},) integer tokens"
        )
    if t.size and (t.min() < 0 or t.max() >= V):
        bad = int(t[(t < 0) | (t >= V)][0])
        raise RuleFailure("bad_token", f"the rule returned token {bad}, outside the vocabulary [0, {V})")
    return t.astype(np.int64)


def monte_carlo(spec, p, q, n, *, trials: int, vectorized: bool, backend: str, alpha: float, seed):
    """The Monte Carlo audit of one case (see the module docstring); returns an AuditResult."""
    from .rule_audit import AuditResult, Failure, _as_token, _bound, _call
    from .schemes import get_scheme

    if backend not in ("numpy", "torch"):
        raise SpecTheoryValueError(f"backend: expected 'numpy' or 'torch', got {backend!r}")
    if not (isinstance(alpha, float) and 0 < alpha < 1):
        raise SpecTheoryValueError(f"alpha: must be a float in (0, 1), got {alpha!r}")
    scheme = get_scheme(spec.sampling)
    V = p.shape[0]
    gen = np.random.default_rng(seed)
    counts = np.zeros(V, dtype=np.int64)
    accepted = 0
    failure = None
    torch = None
    if backend == "torch":
        import torch

        tgen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    B = max(1, min(trials, (1 << 20) // max(V, 1))) if vectorized else 1
    done = 0
    try:
        while done < trials:
            b = min(B, trials - done)
            drafts = draw_drafts(scheme, q, n, b, gen)
            if vectorized:
                P = np.broadcast_to(p, (b, V))
                Q = np.broadcast_to(q, (b,) + q.shape)
                if torch is not None:
                    args = (torch.from_numpy(np.ascontiguousarray(P)), torch.from_numpy(np.ascontiguousarray(Q)),
                            torch.from_numpy(np.ascontiguousarray(drafts)), tgen)
                else:
                    args = (P, Q, drafts, gen)
                tokens = _tokens(_call(spec.rule, args, "the rule", spec.time_limit), b, V)
            else:
                rng = SamplingRNG(gen)
                P, Q = p.copy(), q.copy()
                P.setflags(write=False)
                Q.setflags(write=False)
                tokens = np.empty(b, dtype=np.int64)
                for i in range(b):
                    d = drafts[i].copy()
                    d.setflags(write=False)
                    tokens[i] = _as_token(_call(spec.rule, (P, Q, d, rng), "the rule", spec.time_limit), V)
            counts += np.bincount(tokens, minlength=V)
            accepted += int(np.any(tokens[:, None] == drafts, axis=1).sum())
            done += b
    except RuleFailure as exc:
        failure = Failure(exc.kind, exc.message)
    bound = _bound(p, q, n, spec.sampling)
    if failure is not None:
        return AuditResult(False, math.nan, math.nan, bound, False, (p, q, n), failure, p, q, n, None,
                           spec.sampling, "monte_carlo", 1, math.nan, trials=done)
    N = int(counts.sum())
    pval, df = chi_square(counts, p)
    acc = accepted / N
    se = math.sqrt(max(acc * (1 - acc), 0.0) / N)
    exceeds = bound is not None and acc - bound > max(4 * se, spec.tol)
    law = counts / N
    tv = 0.5 * float(np.abs(law - p).sum())
    lossless = pval >= alpha and not exceeds
    return AuditResult(
        lossless=lossless, tv=tv, acceptance=acc, bound=bound, exceeds_bound=exceeds,
        counterexample=None if lossless else (p, q, n), failure=None, p=p, q=q, n=n, law=law,
        sampling=spec.sampling, mode="monte_carlo", cases=1, worst_tv=tv, stderr=se, p_value=pval,
        detectable_tv=_detectable_tv(N, df, alpha), trials=N,
    )
