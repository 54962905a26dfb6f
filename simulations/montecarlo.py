"""Monte Carlo engine: simulate a verifier with its native draft scheme, many trials, compiled.

Each trial draws the drafts X = (X_1, ..., X_n) from q with the verifier's own scheme, runs the
verifier's rule (REFERENCE §3, p = target, q = draft) and records the output token Y and whether Y
is one of the drafts (*accepted*, the same definition as the exact acceptance
``st.verifier(name).acceptance(p, q, n)``). The estimate of the acceptance α is the fraction of
accepted trials, with standard error sqrt(α̂(1 − α̂)/T) over T trials; the output histogram checks
losslessness (Y ~ p).

Supported verifiers and their per-trial cost (V the vocabulary, n the drafts):

==========  =======================  ===========================================================
name        drafts                   per trial
==========  =======================  ===========================================================
sd          one draft from q         O(1): alias draw, tabulated coin, residual alias draw
rrs         n i.i.d. from q          O(n): residuals R_1..R_{n+1} do not depend on the rejected
                                     tokens, so the coins min(1, R_i(x)/q(x)) are tabulated
kseq        n i.i.d. from q          O(n): ρ*, the coin min(1, p/(ρ*q)) and p_res precomputed
spechub     hub pair (n = 2)         O(1): every coin and both laws precomputed
greedy      top n−1 of q + one draw  O(1): q' = q off the top tokens, coin and residual tabulated
rrs_wor     without replacement      O(1) up to two rejections, then O(log V) per rejection: the
                                     residual after rejections is (p − t q)+/M for two scalars t, M;
                                     the states after the first two rejections are tabulated
==========  =======================  ===========================================================

Branches on coin flips are written as conditional moves where it pays (alias draws, binary
searches): a mispredicted branch costs more than the draw itself.

Trial-independent work (alias tables, coin tables, ρ*, sorted ratios) is done once per call, O(nV)
or O(V log V) at most (the rrs coin table is (n, V); above :data:`TABLE_LIMIT` entries rrs uses the
scalar form R_i = (p − t_i q)+/M_i of its residuals instead, O(n) memory). Draws from a fixed law
use Walker/Vose alias tables (:mod:`spectheory.simulations._alias`), O(1) each. No array grows with
the number of trials: counts are int64, so trials up to ~9·10^18 are fine; memory per thread is
O(V + n).

Reproducibility rule
--------------------
The trials are cut into consecutive chunks of ``CHUNK`` = 16,384 trials (the last one shorter). Chunk
c uses its own xoshiro256** generator, seeded from the 128-bit key that
``numpy.random.SeedSequence(seed)`` derives, and from c alone. Chunks run in parallel
(``numba.prange`` over contiguous ranges of chunks) and their integer counts (accepted trials,
histogram) are added exactly. Hence the result is a deterministic function of
(p, q, n, verifier, trials, seed): **identical for any thread count** (``numba.set_num_threads``)
and any run. ``estimate_acceptance``, ``output_histogram`` and ``simulate_verifier`` with the same
arguments run the very same trials. Different seeds give independent streams; the same seed for two
verifiers gives common random numbers. Across machines the random streams are the same too, but
NumPy may round the prepared tables differently in the last bit on another CPU (SIMD summation),
which can change a comparison with negligible probability. ``CHUNK`` is part of the rule: changing
it changes every result.

Examples
--------
>>> import spectheory as st
>>> from spectheory.simulations.montecarlo import estimate_acceptance
>>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
>>> est = estimate_acceptance(p, q, 2, "rrs", trials=200_000, seed=1)
>>> est.trials
200000
>>> abs(est.mean - st.acceptance(p, q, 2, "rrs")) < 5 * est.stderr
True
"""

from __future__ import annotations

import math
import signal
import threading
import numbers
from dataclasses import dataclass

import numba
import numpy as np

from .._validation import SpecTheoryValueError, check_single_pair
from ..schemes import Greedy
from ..verifiers import verifier as _make_verifier
from ..verifiers._base import residual
from ..verifiers.kseq import kseq_rho
from ..verifiers.spechub import _hub_quantities
from . import _mc_kernels as K
from ._alias import build_alias

__all__ = ["SUPPORTED", "Estimate", "Simulation", "estimate_acceptance", "output_histogram", "simulate_verifier"]

#: Verifiers the engine simulates.
SUPPORTED = ("sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy")

#: Trials per independently seeded chunk (see the reproducibility rule above).
CHUNK = K.CHUNK

#: Largest n·V for which rrs tabulates its coins (an (n, V) float64 table, 64 MiB); beyond it the
#: coins are computed from the scalar form R_i = (p − t_i q)+/M_i.
TABLE_LIMIT = 1 << 23

#: Upper bound on groups × V histogram cells held at once (int64, 256 MiB).
HIST_CELLS = 1 << 25

_MAX_TRIALS = (1 << 63) - 1 - CHUNK


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate of an acceptance probability.

    Attributes
    ----------
    mean : float
        Fraction of the trials whose output token was one of the drafts.
    stderr : float
        sqrt(mean (1 − mean) / trials), the binomial standard error (0 when mean is 0 or 1).
    trials : int
        Number of trials.
    """

    mean: float
    stderr: float
    trials: int


@dataclass(frozen=True, eq=False)
class Simulation:
    """Result of :func:`simulate_verifier`.

    Attributes
    ----------
    estimate : Estimate
        The acceptance estimate.
    accepted : int
        Number of accepted trials (``estimate.mean · trials``).
    histogram : numpy.ndarray or None
        Output-token counts, int64 of shape (V,) summing to ``trials`` (None if not requested).
    """

    estimate: Estimate
    accepted: int
    histogram: np.ndarray | None


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _check_trials(trials) -> int:
    if isinstance(trials, bool) or not isinstance(trials, numbers.Integral):
        raise SpecTheoryValueError(
            f"trials: must be an integer >= 1, got {trials!r} ({type(trials).__name__}); e.g. trials=1_000_000"
        )
    trials = int(trials)
    if trials < 1 or trials > _MAX_TRIALS:
        raise SpecTheoryValueError(f"trials: must be an integer in [1, {_MAX_TRIALS}], got {trials}")
    return trials


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise SpecTheoryValueError(
            f"seed: must be a non-negative integer, got {seed!r} ({type(seed).__name__})"
        )
    seed = int(seed)
    if seed < 0:
        raise SpecTheoryValueError(f"seed: must be a non-negative integer, got {seed}")
    return seed


def _check_verifier(name):
    if not isinstance(name, str):
        raise SpecTheoryValueError(
            f"verifier: expected a verifier name (one of {', '.join(SUPPORTED)}), got {type(name).__name__}"
        )
    if name not in SUPPORTED:
        hint = "; 'optimal' has no fixed-law sampler here" if name == "optimal" else ""
        raise SpecTheoryValueError(
            f"verifier: the Monte Carlo engine simulates {', '.join(SUPPORTED)}; got {name!r}{hint}"
        )
    return _make_verifier(name)


def _key(seed: int) -> tuple[np.uint64, np.uint64]:
    k = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    return np.uint64(k[0]), np.uint64(k[1])


# --------------------------------------------------------------------------------------------
# trial-independent preparation
# --------------------------------------------------------------------------------------------
def _coin(target: np.ndarray, draft: np.ndarray) -> np.ndarray:
    """Vectorised ``verifiers._base.accept_prob``: min(1, target/draft), 1 where target >= draft."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(target >= draft, 1.0, target / np.where(draft > 0, draft, 1.0))


def _law(weights: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """weights if they have positive mass, else ``fallback`` (the exact code's zero-mass rule)."""
    return weights if weights.sum() > 0 else fallback


_EMPTY2 = np.zeros((0, 0))
_EMPTY1 = np.zeros(0)


def _sequential_plan(p, q_draw, table, t_steps, m_steps, res, also, n):
    qp, qa = build_alias(np.ascontiguousarray(q_draw))
    rp, ra = build_alias(np.ascontiguousarray(res))
    args = (qp, qa, np.ascontiguousarray(table), t_steps, m_steps, p, q_draw, rp, ra, also, int(n))
    return K.run_sequential, args


def _prepare(name: str, p: np.ndarray, q: np.ndarray, n: int, table_limit: int = TABLE_LIMIT):
    """(kernel, leading arguments) for one validated position; the kernel's remaining arguments are
    (trials, k0, k1, groups, want_hist)."""
    V = p.shape[0]
    none = np.zeros(V, dtype=np.bool_)
    support = int(np.count_nonzero(q > 0))
    if name == "sd" or (name == "spechub" and support < 2):
        # spechub with one-hot q drafts only the hub: single-draft speculative sampling
        return _sequential_plan(p, q, _coin(p, q)[None], _EMPTY1, _EMPTY1, residual(p, q), none, 1)
    if name == "rrs":
        if n * V <= table_limit:
            table = np.empty((n, V))
            R = p
            for i in range(n):
                table[i] = _coin(R, q)
                R = residual(R, q)
            return _sequential_plan(p, q, table, _EMPTY1, _EMPTY1, R, none, n)
        # scalar form: R_i = (p − t_i q)+ / M_i, t_{i+1} = t_i + M_i (kept when the new mass is 0)
        t_steps = np.empty(n)
        m_steps = np.empty(n)
        t, M = 0.0, float(p.sum())
        for i in range(n):
            t_steps[i], m_steps[i] = t, M
            t_new = t + M
            M_new = float(np.maximum(p - t_new * q, 0.0).sum())
            if M_new > 0:
                t, M = t_new, M_new
        res = np.maximum(p - t * q, 0.0)
        return _sequential_plan(p, q, _EMPTY2, t_steps, m_steps, _law(res, p), none, n)
    if name == "kseq":
        rho, b = kseq_rho(p, q, n)
        if b <= 0:
            res = p
        else:
            keep = np.minimum(q, p / rho) * ((1.0 - (1.0 - b) ** n) / b)
            res = _law(np.maximum(p - keep, 0.0), p)
        return _sequential_plan(p, q, _coin(p, rho * q)[None], _EMPTY1, _EMPTY1, res, none, n)
    if name == "greedy":
        k = min(n, support)
        top = Greedy.deterministic_part(q, k)
        rest = q.copy()
        rest[top] = 0.0
        q_rest = rest / rest.sum()
        also = none.copy()
        also[top] = True
        res = _law(p - np.minimum(p, q_rest), p)
        return _sequential_plan(p, q_rest, _coin(p, q_rest)[None], _EMPTY1, _EMPTY1, res, also, 1)
    if name == "spechub":
        a, Qai, p1, Sia, p2, Sai = _hub_quantities(p, q)
        qp, qa = build_alias(q)
        off = q.copy()
        off[a] = 0.0
        op, oa = build_alias(off)
        acc_first = _coin(p, q)
        c_first = float(_coin(np.array([max(p[a] - Sai, 0.0)]), np.array([Sia]))[0])
        acc_second = _coin(p1, Qai)
        c_second = float(_coin(np.array([p[a]]), np.array([Sai]))[0])
        res = p2.copy()
        res[a] = max(max(p[a] - Sai, 0.0) - Sia, 0.0)
        rp, ra = build_alias(_law(res, p))
        return K.run_hub, (qp, qa, op, oa, int(a), acc_first, c_first, acc_second, c_second, rp, ra)
    if name == "rrs_wor":
        return K.run_without_replacement, _wor_args(p, q, min(n, support))
    raise AssertionError(name)  # pragma: no cover - _check_verifier filters names


def _wor_args(p: np.ndarray, q: np.ndarray, k: int):
    """Tables of the rrs_wor kernel (see :func:`_mc_kernels.run_without_replacement`) for k drafts.

    Tokens sorted by p/q descending (q = 0 < p: +∞ first); M(t) = Σ(p − t q)+ = cum_p[J] − t·cum_q[J]
    with J = #{p/q > t}. The residual after the first rejection is (p − t1 q)+/M1 with t1 = M0/Σq
    whatever was rejected; after rejecting x1 first, rest = q(Ω \\ {x1}) and the second rejection
    leads to t2(x1) = t1 + M1/rest(x1). O(V log V).
    """
    with np.errstate(all="ignore"):  # p/q and M1/rest may overflow to +∞: harmless, see below
        return _wor_tables(p, q, k)


def _wor_tables(p, q, k):
    V = p.shape[0]
    ratio = np.where(q > 0, p / np.where(q > 0, q, 1.0), np.where(p > 0, np.inf, 0.0))
    order = np.argsort(-ratio, kind="stable")
    ratio_desc = np.ascontiguousarray(ratio[order])
    cum_p = np.concatenate([[0.0], np.cumsum(p[order])])
    cum_q = np.concatenate([[0.0], np.cumsum(q[order])])
    neg = -ratio_desc  # ascending: #{ratio > t} = searchsorted(-ratio, -t, "left")

    def state(t):
        J = np.searchsorted(neg, -t, "left")
        return J, cum_p[J] - t * cum_q[J]

    total = float(q.sum())
    J0 = int(np.searchsorted(neg, -0.0, "left"))
    M0 = float(cum_p[J0])
    t1 = M0 / total
    J1, M1 = state(t1)
    if not M1 > 0:  # (R − D)+ without mass: R is kept
        t1, J1, M1 = 0.0, J0, M0
    rest1 = total - q
    for x in np.flatnonzero(q > 0.5):  # no cancellation next to a dominant token
        rest1[x] = np.delete(q, x).sum()
    t2 = np.where(rest1 > 0, t1 + M1 / np.where(rest1 > 0, rest1, 1.0), t1)
    j2, m2 = state(t2)
    kept = ~(m2 > 0)  # includes t2 = +∞ (M = NaN): the residual is kept, as in the kernel
    t2[kept], j2[kept], m2[kept] = t1, J1, M1
    L = 1 << max(0, (V - 1).bit_length())
    tree = np.zeros(2 * L)
    tree[L : L + V] = q
    for level in range(L.bit_length() - 1):
        lo = L >> (level + 1)
        tree[lo : 2 * lo] = tree[2 * lo : 4 * lo : 2] + tree[2 * lo + 1 : 4 * lo : 2]
    qp, qa = build_alias(q)
    return (
        p, q, qp, qa, order.astype(np.int64), ratio_desc, cum_p, cum_q,
        np.array([0.0, M0, J0, total]), np.array([t1, M1, J1]), rest1, t2, m2, j2.astype(np.int64),
        tree, int(L), int(k),
    )


#: Most chunks one kernel call runs (2^24 trials): the longest stretch during which Ctrl-C waits.
MAX_BLOCK_CHUNKS = 1024


class SimulationInterrupted(KeyboardInterrupt):
    """Ctrl-C during a simulation: ``partial`` is the :class:`Simulation` of the trials completed
    (the first ``partial.estimate.trials`` of the requested run, in whole blocks), or None when
    none had completed; ``requested`` the number of trials asked for."""

    def __init__(self, partial, requested: int):
        super().__init__("simulation interrupted")
        self.partial = partial
        self.requested = requested


def _groups(trials: int, V: int, want_hist: bool) -> int:
    n_chunks = -(-trials // CHUNK)
    g = min(n_chunks, 4 * numba.get_num_threads())
    if want_hist:
        g = min(g, max(1, HIST_CELLS // V))
    return max(1, g)


def _run(p, q, n, verifier, trials, seed, want_hist, *, groups=None, table_limit=TABLE_LIMIT, progress=False,
         block_chunks=None):
    v = _check_verifier(verifier)
    p, q, n = check_single_pair(p, q, n, v.scheme)
    n = v.check_n(n)
    trials = _check_trials(trials)
    seed = _check_seed(seed)
    p = np.ascontiguousarray(p)
    q = np.ascontiguousarray(q)
    kernel, args = _prepare(verifier, p, q, n, table_limit)
    k0, k1 = _key(seed)
    n_chunks = -(-trials // CHUNK)
    # Blocks of chunks: each kernel call runs one block and returns to Python, so Ctrl-C (SIGINT)
    # stops a long run within about a block's time (a numba kernel cannot be interrupted), and the
    # progress bar moves. Chunk c is seeded from (seed, c) whatever block runs it, and integer
    # counts add exactly, so the result does not depend on the blocks.
    if block_chunks is None:
        block_chunks = max(64 * numba.get_num_threads(), min(-(-n_chunks // 100), MAX_BLOCK_CHUNKS))
    block = max(1, int(block_chunks))
    accepted_total = 0
    done = 0
    hist_total = np.zeros(p.shape[0], np.int64) if want_hist else None
    from tqdm.auto import tqdm

    bar = tqdm(total=trials, desc=f"simulate {verifier}", unit="trial", unit_scale=True, disable=not progress)
    threads = numba.get_num_threads()
    # A SIGINT during a kernel would surface as a SystemError from numba: note it, stop after the block
    stop: list[int] = []
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, lambda signum, frame: stop.append(signum))
    try:
        for c_start in range(0, n_chunks, block):
            if stop:
                raise KeyboardInterrupt
            c_stop = min(n_chunks, c_start + block)
            block_trials = min(trials, c_stop * CHUNK) - c_start * CHUNK
            G = _groups(block_trials, p.shape[0], want_hist) if groups is None else int(groups)
            G = min(G, c_stop - c_start)
            # no more threads than groups: waking idle workers costs milliseconds on a loaded
            # machine, and the result does not depend on the thread count
            numba.set_num_threads(min(threads, G))
            accepted, hist = kernel(*args, trials, c_start, c_stop, k0, k1, G, bool(want_hist))
            accepted_total += int(accepted.sum())
            if want_hist:
                hist_total += hist.sum(axis=0)
            done += block_trials
            bar.update(block_trials)
    except KeyboardInterrupt:
        partial = None
        if done > 0:
            m = accepted_total / done
            partial = Simulation(Estimate(m, math.sqrt(m * (1.0 - m) / done), done), accepted_total, hist_total)
        raise SimulationInterrupted(partial, trials) from None
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        numba.set_num_threads(threads)
        bar.close()
    if stop:  # interrupted during the last block
        m = accepted_total / done
        raise SimulationInterrupted(
            Simulation(Estimate(m, math.sqrt(m * (1.0 - m) / done), done), accepted_total, hist_total), trials)
    mean = accepted_total / trials
    est = Estimate(mean, math.sqrt(mean * (1.0 - mean) / trials), trials)
    return Simulation(est, accepted_total, hist_total)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def simulate_verifier(p, q, n, verifier: str, trials: int = 1_000_000, seed: int = 0, histogram: bool = True,
                      progress: bool = False) -> Simulation:
    """Simulate ``trials`` independent rounds of a verifier with its native draft scheme.

    Parameters
    ----------
    p, q : array_like, shape (V,)
        Target and draft distributions (validated and renormalised as everywhere in the package).
    n : int
        Number of drafts (``sd``: 1, ``spechub``: 2; distinct-draft schemes draw min(n, |supp q|)).
    verifier : str
        One of ``"sd"``, ``"rrs"``, ``"rrs_wor"``, ``"kseq"``, ``"spechub"``, ``"greedy"``.
    trials : int
        Number of trials T >= 1 (a Python or NumPy integer).
    seed : int
        Non-negative integer; with ``trials`` it fixes every random number (see the module's
        reproducibility rule: identical for any thread count).
    histogram : bool
        Whether to count the output tokens.

    Returns
    -------
    Simulation
        ``estimate`` (mean = accepted/T, stderr = sqrt(mean(1 − mean)/T)), ``accepted``, and
        ``histogram`` (int64 counts of Y, shape (V,)) or None.

    Notes
    -----
    Cost: O(nV) preparation (O(V log V) for kseq and rrs_wor, which sort), then per trial O(1)
    (sd, spechub, greedy), O(n) (rrs, kseq) or O(n log V) (rrs_wor), spread over numba's threads.
    Memory O(nV) shared tables plus O(V + n) per thread; the histogram adds one int64 row of length V
    per group of chunks (at most 4 per thread).

    Raises
    ------
    SpecTheoryValueError
        For invalid p, q or n (``sd`` needs n = 1, ``spechub`` n = 2), an unsupported verifier, and
        ``trials`` or ``seed`` that are not integers in range (bools, floats and strings included).

    Examples
    --------
    >>> from spectheory.simulations.montecarlo import simulate_verifier
    >>> sim = simulate_verifier([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2, "spechub", trials=10_000, seed=3)
    >>> int(sim.histogram.sum()), sim.accepted == round(sim.estimate.mean * 10_000)
    (10000, True)
    """
    return _run(p, q, n, verifier, trials, seed, histogram, progress=progress)


def estimate_acceptance(p, q, n, verifier: str, trials: int = 1_000_000, seed: int = 0, progress: bool = False) -> Estimate:
    """Monte Carlo estimate of P(Y ∈ drafts) for a verifier with its native draft scheme.

    α̂ = (1/T) Σ_t 1[Y_t ∈ {X_t,1, ..., X_t,n}] over T independent trials, an unbiased estimate of the
    exact acceptance ``st.verifier(verifier).acceptance(p, q, n)`` with standard error
    sqrt(α̂(1 − α̂)/T). Same arguments, cost and errors as :func:`simulate_verifier` (no histogram);
    the same (trials, seed) runs the same trials as there.

    Examples
    --------
    >>> from spectheory.simulations.montecarlo import estimate_acceptance
    >>> est = estimate_acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 1, "sd", trials=100_000, seed=7)
    >>> abs(est.mean - 0.7) < 5 * est.stderr
    True
    """
    return _run(p, q, n, verifier, trials, seed, False, progress=progress).estimate


def output_histogram(p, q, n, verifier: str, trials: int = 1_000_000, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Counts of the output token Y over ``trials`` simulated rounds: int64 array of shape (V,).

    For a lossless verifier the counts are multinomial(T, p); compare with p by a chi-square test.
    Same arguments, cost and errors as :func:`simulate_verifier`.

    Examples
    --------
    >>> from spectheory.simulations.montecarlo import output_histogram
    >>> h = output_histogram([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 3, "rrs_wor", trials=50_000, seed=0)
    >>> h.shape, int(h.sum())
    ((3,), 50000)
    """
    return _run(p, q, n, verifier, trials, seed, True, progress=progress).histogram
