"""Multi-round speculative decoding on synthetic Markov "language models" (numba Monte Carlo).

Model
-----
The target and the draft are first-order Markov chains over a vocabulary of V tokens, given as
row-stochastic transition matrices ``target`` (T) and ``draft`` (D) of shape (V, V): row ``c`` is the
next-token law after token ``c``. Decoding starts from an *initial token* x_0 (the prompt; a fixed
token id, or drawn from an initial distribution) and generates x_1, x_2, ... . The target chain's law
of the generated sequence is Π_t T[x_{t−1}, x_t]; a lossless decoder reproduces it exactly.

One round from the current last token c (REFERENCE §1, §3, §4; p = target, q = draft):

1. *Drafting.* Y_0 = c; for k = 1, 2, ...: Y_k ~ D[Y_{k−1}]. The drafter computes
   a_k = P(accept_k) = min(1, T[Y_{k−1}, Y_k] / D[Y_{k−1}, Y_k]) and stops after Y_k by its policy:

   * :class:`FixedK` (``fixed_k(K)``): stop at k = K;
   * :class:`Threshold` (SpecDec++, arXiv 2405.19715): stop when k = max_k, or when k ≥ min_k and
     1 − Π_{j≤k} a_j > h; keep drafting while 1 − Π_{j≤k} a_j ≤ h.

   **What the drafter sees:** the context token c, its own drafts Y_1..Y_k and their draft and target
   probabilities D[Y_{j−1}, Y_j] and T[Y_{j−1}, Y_j] (an idealised, exact acceptance-prediction head,
   as SpecDec++'s trained head approximates). It never sees the verifier's coins, the correction
   token, or anything about drafts it has not made. So the stopping decision is a function of
   (c, Y_1..Y_k) alone.

2. *Verification* of the γ drafts with p_i = T[Y_{i−1}] and q_i = D[Y_{i−1}] (position i's target and
   draft laws given the chain before it), p_{γ+1} = T[Y_γ]:

   * ``"token"``: token-by-token verification (Leviathan et al., arXiv 2211.17192): accept Y_i with
     probability a_i until the first rejection, at position i, where the correction token is drawn
     from norm((p_i − q_i)+);
   * ``"block"``: block verification (Sun et al., arXiv 2403.10444, REFERENCE §3) with
     b_i = min(b_{i−1} p_i(Y_i)/q_i(Y_i), 1), r_i = Σ_x (b_i p_{i+1}(x) − q_{i+1}(x))+,
     h_i = r_i / (r_i + 1 − b_i) (1 for 0/0), h_γ = b_γ; τ = max{i : η_i < h_i}; correction
     token from norm((b_τ p_{τ+1} − q_{τ+1})+), or bonus token from p_{γ+1} when τ = γ.

3. *Emission:* Y_1..Y_τ and the correction/bonus token: τ + 1 tokens.

Rounds repeat until at least ``tokens`` tokens are generated (the last round may overshoot by up to
max_k tokens; all of them are counted and recorded).

Both verifiers stay lossless with the threshold policy: a stopping rule that depends only on
(c, Y_1..Y_k) is the same as a draft model that, after Y_k, drafts a token the target never emits;
verification against that chain (padded to max_k) gives exactly the verification of the stopped
chain. The tests check the law of the decoded sequence against the target chain for both verifiers
and both policies.

Reproducibility
---------------
Every simulation is one serial kernel on the calling thread: no thread pool is used, so results do
not depend on the number of threads (nor on the numba threading layer). The random stream is
xoshiro256**; its state for replica r of seed s is derived, with SplitMix64, from the two 64-bit
words ``numpy.random.SeedSequence(s).generate_state(2, numpy.uint64)`` and r
(:func:`spectheory.simulations._decoding_kernels.seed_state`). :func:`simulate_decoding` is replica 0;
replica r of :func:`sample_sequences` is replica r. Hence: same seed (and same arguments) → identical
results, on any machine with IEEE float64; running in chunks (the progress bar) gives the same result
as one call; and ``sample_sequences(..., seed=s)[r]`` starts like a :func:`simulate_decoding` run
seeded with replica r's stream (for r = 0, exactly ``simulate_decoding(..., seed=s).sequence``).

Memory: O(V + K) workspace per simulation, plus the two (V, V) matrices and their row-wise cumulative
sums (built once per call, shared read-only), plus the recorded sequence when asked for.

Exact cross-checks
------------------
:func:`round_law` computes, exactly, what the simulation estimates: expected tokens per round from
each context token, the law of the round's last token (a Markov chain on the round-start tokens), its
long-run distribution, and the long-run per-round counters (drafted / attempted / accepted per
position, histograms). Matrix forms for fixed K with token-by-token verification; exact enumeration
of the draft chains otherwise (small V and max_k). With context-free laws (every row of T equal to p,
every row of D to q) acceptance is i.i.d. with α = Σ min(p, q) and a round's expected tokens are
Leviathan's (1 − α^(K+1))/(1 − α) (:func:`leviathan_expected_tokens`), or
:func:`spectheory.verifiers.chains.expected_tokens_block` for block verification.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .._validation import SUM_RTOL, SpecTheoryValueError, check_distribution
from . import _decoding_kernels as _k

__all__ = [
    "DEFAULT_MAX_K",
    "MAX_ENUMERATED_CHAINS",
    "VERIFIERS",
    "DecodingResult",
    "FixedK",
    "RoundLaw",
    "Sequences",
    "Threshold",
    "check_markov",
    "fixed_k",
    "leviathan_expected_tokens",
    "parse_policy",
    "round_law",
    "sample_sequences",
    "simulate_decoding",
    "threshold",
]

#: Verifiers of a draft chain: token-by-token and block verification.
VERIFIERS = ("token", "block")

#: Default cap on the draft length of :class:`Threshold` (SpecDec++ uses min/max caps (2, 20)).
DEFAULT_MAX_K = 20

#: Largest draft length a policy may ask for (the kernels keep O(max_k) workspace per simulation).
MAX_DRAFT_LENGTH = 4096

#: Largest number of draft chains (summed over context tokens) :func:`round_law` enumerates.
MAX_ENUMERATED_CHAINS = 200_000

#: Tokens per kernel call when a progress bar is shown (results do not depend on it).
_CHUNK_TOKENS = 200_000


# ------------------------------------------------------------------------------------------------
# policies
# ------------------------------------------------------------------------------------------------
def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SpecTheoryValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise SpecTheoryValueError(f"{name}: must be an integer >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class FixedK:
    """Draft exactly ``k`` tokens every round (Leviathan et al.'s γ)."""

    k: int

    def __post_init__(self):
        k = _check_int(self.k, "k", 1)
        if k > MAX_DRAFT_LENGTH:
            raise SpecTheoryValueError(f"k: at most {MAX_DRAFT_LENGTH} drafts per round, got {k}")
        object.__setattr__(self, "k", k)

    @property
    def min_k(self) -> int:
        return self.k

    @property
    def max_k(self) -> int:
        return self.k

    @property
    def h(self) -> float:
        """The threshold the kernel uses: never consulted, since min_k = max_k."""
        return 1.0

    def __str__(self) -> str:
        return f"fixed:{self.k}"


@dataclass(frozen=True)
class Threshold:
    """SpecDec++'s threshold rule: after drafting Y_k, stop when k = max_k or when k ≥ min_k and
    1 − Π_{j≤k} P(accept_j) > h, with P(accept_j) = min(1, p_j(Y_j)/q_j(Y_j)).

    Parameters
    ----------
    h : float
        Threshold on the probability that some draft so far is rejected, 0 < h < 1.
    min_k, max_k : int
        Draft-length caps, 1 ≤ min_k ≤ max_k.
    """

    h: float
    min_k: int = 1
    max_k: int = DEFAULT_MAX_K

    def __post_init__(self):
        h = self.h
        if isinstance(h, bool) or not isinstance(h, numbers.Real) or not math.isfinite(float(h)) or not 0 < h < 1:
            raise SpecTheoryValueError(f"h: must be a number strictly between 0 and 1, got {h!r}")
        min_k = _check_int(self.min_k, "min_k", 1)
        max_k = _check_int(self.max_k, "max_k", 1)
        if min_k > max_k:
            raise SpecTheoryValueError(f"min_k and max_k: need 1 <= min_k <= max_k, got min_k = {min_k} > max_k = {max_k}")
        if max_k > MAX_DRAFT_LENGTH:
            raise SpecTheoryValueError(f"max_k: at most {MAX_DRAFT_LENGTH} drafts per round, got {max_k}")
        object.__setattr__(self, "h", float(h))
        object.__setattr__(self, "min_k", min_k)
        object.__setattr__(self, "max_k", max_k)

    def __str__(self) -> str:
        return f"threshold:{self.h:g}:{self.min_k}:{self.max_k}"


def fixed_k(k: int) -> FixedK:
    """The fixed draft length policy :class:`FixedK`."""
    return FixedK(k)


def threshold(h: float, min_k: int = 1, max_k: int = DEFAULT_MAX_K) -> Threshold:
    """SpecDec++'s threshold policy :class:`Threshold`."""
    return Threshold(h, min_k, max_k)


def parse_policy(text: str, name: str = "--policy"):
    """``"fixed:4"`` → FixedK(4); ``"threshold:0.6"`` or ``"threshold:0.6:2:20"`` → Threshold."""
    parts = str(text).strip().split(":")
    kind = parts[0].strip().lower()
    usage = "write fixed:K or threshold:H[:MIN_K:MAX_K]"
    try:
        if kind == "fixed" and len(parts) == 2:
            try:
                k = int(parts[1])
            except ValueError:
                raise SpecTheoryValueError(f"K must be an integer, got {parts[1]!r}") from None
            return FixedK(k)
        if kind == "threshold" and len(parts) in (2, 4):
            try:
                h = float(parts[1])
            except ValueError:
                raise SpecTheoryValueError(f"H must be a number, got {parts[1]!r}") from None
            if len(parts) == 2:
                return Threshold(h)
            try:
                lo, hi = int(parts[2]), int(parts[3])
            except ValueError:
                raise SpecTheoryValueError(f"MIN_K and MAX_K must be integers, got {parts[2]!r} and {parts[3]!r}") from None
            return Threshold(h, lo, hi)
    except SpecTheoryValueError as exc:
        raise SpecTheoryValueError(f"{name}: {exc} in {text!r}") from None
    raise SpecTheoryValueError(f"{name}: cannot read {text!r}; {usage}")


def _check_policy(policy):
    if isinstance(policy, (FixedK, Threshold)):
        return policy
    if isinstance(policy, str):
        return parse_policy(policy, "policy")
    raise SpecTheoryValueError(
        f"policy: expected FixedK(k), Threshold(h, min_k, max_k) or a string like 'fixed:4', got {policy!r}"
    )


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _check_matrix(m, name: str) -> np.ndarray:
    try:
        a = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecTheoryValueError(f"{name}: not a numeric array ({exc})") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise SpecTheoryValueError(
            f"{name}: expected a square transition matrix of shape (V, V) (row c = next-token law after "
            f"token c), got shape {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise SpecTheoryValueError(f"{name}: contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    if np.any(a < 0):
        bad = np.argwhere(a < 0)[0]
        raise SpecTheoryValueError(
            f"{name}: negative probability {a[tuple(bad)]:.3g} at row {bad[0]}, column {bad[1]}"
        )
    sums = a.sum(axis=1)
    off = np.abs(sums - 1.0)
    if np.any(off > SUM_RTOL):
        row = int(np.argmax(off))
        raise SpecTheoryValueError(
            f"{name}: row {row} sums to {sums[row]:.9g}, not 1 (relative tolerance {SUM_RTOL:g}); "
            "every row must be a next-token distribution"
        )
    return a / sums[:, None]


def check_markov(target, draft):
    """Validate two transition matrices of one vocabulary; return them as float64, rows renormalised."""
    T = _check_matrix(target, "target")
    D = _check_matrix(draft, "draft")
    if T.shape != D.shape:
        raise SpecTheoryValueError(
            f"target and draft: vocabulary sizes differ (target has V = {T.shape[0]}, draft has V = {D.shape[0]})"
        )
    return T, D


def _check_verifier(verifier) -> str:
    if not isinstance(verifier, str) or verifier not in VERIFIERS:
        raise SpecTheoryValueError(f"verifier: expected one of {VERIFIERS}, got {verifier!r}")
    return verifier


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise SpecTheoryValueError(f"seed: must be an integer >= 0, got {seed!r}")
    seed = int(seed)
    if seed < 0:
        raise SpecTheoryValueError(f"seed: must be an integer >= 0, got {seed}")
    return seed


def _check_initial(initial, V: int):
    """(token, cdf): token ≥ 0 for a fixed initial token, else −1 and the cumulative distribution."""
    if isinstance(initial, bool):
        raise SpecTheoryValueError(f"initial: expected a token id or a distribution of shape (V,), got {initial!r}")
    if isinstance(initial, numbers.Integral):
        t = int(initial)
        if not 0 <= t < V:
            raise SpecTheoryValueError(f"initial: token id {t} is outside the vocabulary [0, {V})")
        return t, np.ones(1)
    a = check_distribution(initial, "initial", allow_batch=False)
    if a.shape[0] != V:
        raise SpecTheoryValueError(f"initial: distribution has V = {a.shape[0]}, the matrices have V = {V}")
    return -1, np.cumsum(a)


def _keys(seed: int):
    k0, k1 = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    return np.uint64(k0), np.uint64(k1)


# ------------------------------------------------------------------------------------------------
# simulation
# ------------------------------------------------------------------------------------------------
def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class DecodingResult:
    """Outcome of :func:`simulate_decoding`.

    Attributes
    ----------
    tokens : int
        Tokens generated (≥ the requested number: the last round may overshoot).
    requested_tokens : int
        The ``tokens`` argument.
    rounds : int
        Rounds (target verifications).
    mean_tokens_per_round : float
        tokens / rounds.
    stderr : float
        Standard error of ``mean_tokens_per_round`` treating rounds as independent: exact when the
        laws do not depend on the context (all rows equal); with context-dependent rows the rounds
        form a Markov chain and this understates the error (compare independent seeds instead).
        NaN after a single round.
    drafted, attempted, accepted : numpy.ndarray of int64, shape (max_k,)
        Per draft position j = 1..max_k (index j − 1): rounds that drafted a j-th token; rounds in
        which position j was at stake (drafted, and drafts 1..j−1 accepted); rounds that accepted
        drafts 1..j.
    acceptance : numpy.ndarray of float, shape (max_k,)
        accepted / attempted per position (NaN where nothing was attempted): the empirical
        conditional acceptance α_j of position j, as in E[tokens] = 1 + Σ_i Π_{j≤i} α_j.
    tokens_per_round_hist : numpy.ndarray of int64, shape (max_k + 2,)
        Entry t: rounds that emitted t tokens (entry 0 is always 0).
    draft_length_hist : numpy.ndarray of int64, shape (max_k + 1,)
        Entry k: rounds that drafted k tokens (entry 0 is always 0).
    initial_token : int
        x_0, the prompt token decoding started from.
    sequence : numpy.ndarray of int64 or None
        The generated tokens x_1..x_tokens (with ``record_sequence=True``).
    policy : FixedK or Threshold
    verifier : str
    seed : int
    """

    tokens: int
    requested_tokens: int
    rounds: int
    mean_tokens_per_round: float
    stderr: float
    drafted: np.ndarray
    attempted: np.ndarray
    accepted: np.ndarray
    acceptance: np.ndarray
    tokens_per_round_hist: np.ndarray
    draft_length_hist: np.ndarray
    initial_token: int
    policy: object
    verifier: str
    seed: int
    sequence: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """Plain Python types, for JSON (NaN becomes None)."""
        return {
            "tokens": self.tokens,
            "requested_tokens": self.requested_tokens,
            "rounds": self.rounds,
            "mean_tokens_per_round": self.mean_tokens_per_round,
            "stderr": None if math.isnan(self.stderr) else self.stderr,
            "drafted": self.drafted.tolist(),
            "attempted": self.attempted.tolist(),
            "accepted": self.accepted.tolist(),
            "acceptance": [None if math.isnan(v) else float(v) for v in self.acceptance],
            "tokens_per_round_hist": self.tokens_per_round_hist.tolist(),
            "draft_length_hist": self.draft_length_hist.tolist(),
            "initial_token": self.initial_token,
            "policy": str(self.policy),
            "verifier": self.verifier,
            "seed": self.seed,
            "sequence": None if self.sequence is None else self.sequence.tolist(),
        }


def _prepare(target, draft, policy, verifier):
    T, D = check_markov(target, draft)
    policy = _check_policy(policy)
    verifier = _check_verifier(verifier)
    Tc = np.cumsum(T, axis=1)
    Dc = np.cumsum(D, axis=1)
    return T, D, Tc, Dc, policy, verifier


def simulate_decoding(
    target,
    draft,
    policy,
    verifier: str = "token",
    tokens: int = 100_000,
    seed: int = 0,
    *,
    initial=0,
    record_sequence: bool = False,
    progress: bool = False,
    _chunk_tokens: int | None = None,
) -> DecodingResult:
    """Simulate multi-round speculative decoding of Markov target/draft models (numba kernel).

    Parameters
    ----------
    target, draft : array_like, shape (V, V)
        Row-stochastic transition matrices (row c: next-token law after token c) of the target (p)
        and draft (q) models. Rows must sum to 1 within ``SUM_RTOL``; they are renormalised.
    policy : FixedK, Threshold or str
        Draft length policy: ``fixed_k(K)``, ``threshold(h, min_k, max_k)``, or ``"fixed:4"`` /
        ``"threshold:0.6[:min_k:max_k]"``.
    verifier : {"token", "block"}
        Token-by-token or block verification of each draft chain.
    tokens : int
        Generate at least this many tokens (≥ 1).
    seed : int
        Seed (a non-negative integer; see the module's reproducibility rule).
    initial : int or array_like of shape (V,)
        The prompt token x_0, or its distribution (drawn first from the random stream).
    record_sequence : bool
        Keep the generated tokens (``result.sequence``, O(tokens) memory).
    progress : bool
        Show a tqdm progress bar on stderr (the simulation runs in chunks; the result is unchanged).

    Returns
    -------
    DecodingResult

    Notes
    -----
    Cost per round: O(K log V) for drafting, O(K) for token-by-token verification plus O(V) for a
    correction token, O(KV) at worst for block verification (r_i is only computed for 0 < b_i < 1).

    Examples
    --------
    >>> import numpy as np
    >>> from spectheory.simulations.decoding import simulate_decoding, fixed_k
    >>> T = np.array([[0.6, 0.4], [0.3, 0.7]])
    >>> res = simulate_decoding(T, T, fixed_k(3), "token", tokens=40, seed=1)
    >>> res.rounds, res.mean_tokens_per_round      # draft = target: every draft is accepted
    (10, 4.0)
    """
    T, D, Tc, Dc, policy, verifier = _prepare(target, draft, policy, verifier)
    tokens = _check_int(tokens, "tokens", 1)
    seed = _check_seed(seed)
    V = T.shape[0]
    init_token, init_cdf = _check_initial(initial, V)
    max_k = policy.max_k

    rng = np.empty(4, dtype=np.uint64)
    k0, k1 = _keys(seed)
    _k.seed_state(k0, k1, 0, rng)
    x0 = init_token if init_token >= 0 else int(_k._sample_cdf(init_cdf, _k.uniform(rng)))
    status = np.array([x0, 0, 0], dtype=np.int64)
    drafted = np.zeros(max_k, dtype=np.int64)
    attempted = np.zeros(max_k, dtype=np.int64)
    accepted = np.zeros(max_k, dtype=np.int64)
    hist_tokens = np.zeros(max_k + 2, dtype=np.int64)
    hist_draft = np.zeros(max_k + 1, dtype=np.int64)
    seq = np.zeros(tokens + max_k if record_sequence else 0, dtype=np.int64)
    args = (T, D, Tc, Dc, float(policy.h), int(policy.min_k), int(max_k), verifier == "block")

    def run(until):
        _k.run_decoding(*args, until, rng, status, drafted, attempted, accepted, hist_tokens, hist_draft, seq)

    chunk = _chunk_tokens if _chunk_tokens is not None else (_CHUNK_TOKENS if progress else None)
    if chunk is None:
        run(tokens)
    else:
        chunk = _check_int(chunk, "_chunk_tokens", 1)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=tokens, unit="tok", unit_scale=True, desc="simulate", leave=False)
        try:
            while status[_k.TOTAL] < tokens:
                before = int(status[_k.TOTAL])
                run(min(tokens, before + chunk))
                if bar is not None:
                    bar.update(min(tokens, int(status[_k.TOTAL])) - min(tokens, before))
        finally:
            if bar is not None:
                bar.close()

    total, rounds = int(status[_k.TOTAL]), int(status[_k.ROUNDS])
    counts = np.arange(hist_tokens.size, dtype=np.float64)
    mean = total / rounds
    if rounds > 1:
        var = float(np.dot(hist_tokens, (counts - mean) ** 2)) / (rounds - 1)
        stderr = math.sqrt(var / rounds)
    else:
        stderr = float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        acceptance = np.where(attempted > 0, accepted / np.maximum(attempted, 1), np.nan)
    return DecodingResult(
        tokens=total,
        requested_tokens=tokens,
        rounds=rounds,
        mean_tokens_per_round=mean,
        stderr=stderr,
        drafted=_frozen(drafted),
        attempted=_frozen(attempted),
        accepted=_frozen(accepted),
        acceptance=_frozen(acceptance),
        tokens_per_round_hist=_frozen(hist_tokens),
        draft_length_hist=_frozen(hist_draft),
        initial_token=x0,
        policy=policy,
        verifier=verifier,
        seed=seed,
        sequence=_frozen(seq[:total].copy()) if record_sequence else None,
    )


@dataclass(frozen=True, eq=False)
class Sequences:
    """Outcome of :func:`sample_sequences`: ``initial`` (R,) prompt tokens and ``tokens`` (R, L)."""

    initial: np.ndarray
    tokens: np.ndarray


def sample_sequences(
    target, draft, policy, verifier: str = "token", tokens: int = 8, replicas: int = 1000, seed: int = 0, *, initial=0
) -> Sequences:
    """Decode ``replicas`` independent sequences of ``tokens`` tokens each, from the initial token.

    Replica r runs speculative decoding exactly as :func:`simulate_decoding` does, with its own random
    stream (replica r of ``seed``), and keeps its first ``tokens`` generated tokens. For a lossless
    decoder their law is the target chain's: P(x_1..x_L) = Σ_{x_0} init(x_0) Π_t T[x_{t−1}, x_t].

    Returns
    -------
    Sequences
        ``initial`` of shape (replicas,) and ``tokens`` of shape (replicas, tokens), int64.

    Examples
    --------
    >>> import numpy as np
    >>> from spectheory.simulations.decoding import sample_sequences
    >>> T = np.array([[0.0, 1.0], [1.0, 0.0]])         # deterministic alternation
    >>> D = np.full((2, 2), 0.5)
    >>> sample_sequences(T, D, "fixed:2", "block", tokens=4, replicas=2, seed=0).tokens.tolist()
    [[1, 0, 1, 0], [1, 0, 1, 0]]
    """
    T, D, Tc, Dc, policy, verifier = _prepare(target, draft, policy, verifier)
    tokens = _check_int(tokens, "tokens", 1)
    replicas = _check_int(replicas, "replicas", 1)
    seed = _check_seed(seed)
    init_token, init_cdf = _check_initial(initial, T.shape[0])
    k0, k1 = _keys(seed)
    out = np.empty((replicas, tokens), dtype=np.int64)
    out_init = np.empty(replicas, dtype=np.int64)
    _k.run_replicas(
        T, D, Tc, Dc, float(policy.h), int(policy.min_k), int(policy.max_k), verifier == "block",
        tokens, k0, k1, 0, init_cdf, init_token, out_init, out,
    )
    return Sequences(initial=out_init, tokens=out)


# ------------------------------------------------------------------------------------------------
# exact cross-checks
# ------------------------------------------------------------------------------------------------
def leviathan_expected_tokens(alpha: float, k: int) -> float:
    """(1 − α^(K+1)) / (1 − α): expected tokens per round with K drafts and i.i.d. acceptance α
    (Leviathan et al., arXiv 2211.17192); K + 1 when α = 1."""
    k = _check_int(k, "k", 1)
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise SpecTheoryValueError(f"alpha: must lie in [0, 1], got {alpha!r}")
    if alpha == 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


@dataclass(frozen=True, eq=False)
class RoundLaw:
    """Exact per-round statistics of :func:`simulate_decoding` (see :func:`round_law`).

    Attributes
    ----------
    tokens_from : numpy.ndarray, shape (V,)
        E[tokens emitted in a round | round starts after token c].
    transition : numpy.ndarray, shape (V, V)
        P(the round's last emitted token is z | it starts after c): the round-start chain.
    stationary : numpy.ndarray, shape (V,)
        Long-run frequency of round-start tokens from the initial law (the Cesàro limit of
        ``transition``; the stationary law when that chain is ergodic).
    mean_tokens_per_round : float
        stationary · tokens_from: the long-run tokens per round.
    drafted, attempted, accepted : numpy.ndarray, shape (max_k,)
        Long-run expected counts per round (as in :class:`DecodingResult`).
    acceptance : numpy.ndarray, shape (max_k,)
        accepted / attempted (NaN where attempted is 0).
    tokens_per_round : numpy.ndarray, shape (max_k + 2,)
        Long-run law of the tokens emitted in a round.
    draft_length : numpy.ndarray, shape (max_k + 1,)
        Long-run law of the draft length.
    """

    tokens_from: np.ndarray
    transition: np.ndarray
    stationary: np.ndarray
    mean_tokens_per_round: float
    drafted: np.ndarray
    attempted: np.ndarray
    accepted: np.ndarray
    acceptance: np.ndarray
    tokens_per_round: np.ndarray
    draft_length: np.ndarray


def _cesaro_limit(A: np.ndarray) -> np.ndarray:
    """lim (1/n) Σ_{t<n} A^t of a stochastic matrix, as the limit of the lazy chain ((I + A)/2)^(2^m)."""
    L = 0.5 * (np.eye(A.shape[0]) + A)
    for _ in range(200):
        L2 = L @ L
        L2 /= L2.sum(axis=1, keepdims=True)
        if np.max(np.abs(L2 - L)) < 1e-15:
            return L2
        L = L2
    return L


def _per_start_matrix(T, D, k: int):
    """Fixed K, token-by-token verification, by matrix powers of M = min(T, D) (elementwise)."""
    V = T.shape[0]
    M = np.minimum(T, D)
    R = np.maximum(T - D, 0.0)  # P(reject at the next position, correction z | previous token)
    surv = [np.ones(V)]  # P(τ ≥ i | c) = (M^i 1)[c]
    for _ in range(k):
        surv.append(M @ surv[-1])
    tokens_from = np.sum(surv, axis=0)
    A = np.zeros((V, V))
    P = np.eye(V)
    for _ in range(k):
        A += P @ R
        P = P @ M
    A += P @ T
    drafted = np.ones((V, k))
    accepted = np.stack(surv[1:], axis=1)
    attempted = np.stack(surv[:-1], axis=1)
    hist_tokens = np.zeros((V, k + 2))
    for i in range(k):
        hist_tokens[:, i + 1] = surv[i] - surv[i + 1]
    hist_tokens[:, k + 1] = surv[k]
    hist_draft = np.zeros((V, k + 1))
    hist_draft[:, k] = 1.0
    return tokens_from, A, drafted, attempted, accepted, hist_tokens, hist_draft


def _tau_law(T, D, chain, ratio, block: bool) -> tuple[np.ndarray, list]:
    """P(τ = i | the draft chain), i = 0..γ, and the law of the last token for each τ."""
    gamma = len(chain) - 1
    laws = []
    if not block:
        acc = np.minimum(ratio[1:], 1.0)
        surv = np.concatenate([[1.0], np.cumprod(acc)])
        ptau = np.append(surv[:-1] * (1.0 - acc), surv[-1])
        for i in range(gamma):
            laws.append(_residual_law(T[chain[i]], D[chain[i]], 1.0))
        laws.append(T[chain[gamma]])
        return ptau, laws
    b = [1.0]
    for i in range(1, gamma + 1):
        b.append(0.0 if b[-1] == 0.0 else min(b[-1] * ratio[i], 1.0))
    hs = np.zeros(gamma + 1)
    for i in range(1, gamma + 1):
        if i == gamma:
            hs[i] = b[i]
        else:
            r = float(np.maximum(b[i] * T[chain[i]] - D[chain[i]], 0.0).sum())
            den = r + 1.0 - b[i]
            hs[i] = 1.0 if den <= 0.0 else r / den
    ptau = np.zeros(gamma + 1)
    fail = 1.0  # coins from the top: τ = i when the coins at γ..i+1 fail and the one at i succeeds
    for i in range(gamma, 0, -1):
        ptau[i] = fail * hs[i]
        fail *= 1.0 - hs[i]
    ptau[0] = fail
    for i in range(gamma):
        laws.append(_residual_law(T[chain[i]], D[chain[i]], b[i]))
    laws.append(T[chain[gamma]])
    return ptau, laws


def _residual_law(t_row, d_row, b):
    r = np.maximum(b * t_row - d_row, 0.0)
    if r.sum() > 0:
        return r / r.sum()
    r = np.maximum(t_row - d_row, 0.0)
    return r / r.sum() if r.sum() > 0 else t_row


def _per_start_enumerated(T, D, policy, block: bool):
    """Any policy and verifier, by enumerating every draft chain from every context token."""
    V = T.shape[0]
    K = policy.max_k
    tokens_from = np.zeros(V)
    A = np.zeros((V, V))
    drafted = np.zeros((V, K))
    attempted = np.zeros((V, K))
    accepted = np.zeros((V, K))
    hist_tokens = np.zeros((V, K + 2))
    hist_draft = np.zeros((V, K + 1))
    h, min_k = policy.h, policy.min_k
    chains = 0
    for c in range(V):
        # depth-first: (chain, ratios, probability, running product of acceptance probabilities)
        stack = [([c], [1.0], 1.0, 1.0)]
        while stack:
            chain, ratio, w, prod = stack.pop()
            prev = chain[-1]
            for y in np.flatnonzero(D[prev] > 0):
                y = int(y)
                r = T[prev, y] / D[prev, y]
                a = min(1.0, r)
                prod2 = prod * a
                ch, ra, w2 = chain + [y], ratio + [r], w * D[prev, y]
                k = len(ch) - 1
                if not (k >= K or (k >= min_k and 1.0 - prod2 > h)):
                    stack.append((ch, ra, w2, prod2))
                    continue
                chains += 1
                if chains > MAX_ENUMERATED_CHAINS:
                    raise SpecTheoryValueError(
                        f"round_law: more than {MAX_ENUMERATED_CHAINS:,} draft chains to enumerate "
                        f"(V = {V}, max_k = {K}); use a smaller vocabulary or draft length"
                    )
                ptau, laws = _tau_law(T, D, ch, np.array(ra), block)
                gamma = k
                hist_draft[c, gamma] += w2
                drafted[c, :gamma] += w2
                surv = np.cumsum(ptau[::-1])[::-1]  # P(τ ≥ i), i = 0..γ
                accepted[c, :gamma] += w2 * surv[1:]
                attempted[c, :gamma] += w2 * surv[:-1]
                for i in range(gamma + 1):
                    if ptau[i] > 0:
                        hist_tokens[c, i + 1] += w2 * ptau[i]
                        tokens_from[c] += w2 * ptau[i] * (i + 1)
                        A[c] += w2 * ptau[i] * laws[i]
    return tokens_from, A, drafted, attempted, accepted, hist_tokens, hist_draft


def round_law(target, draft, policy, verifier: str = "token", *, initial=0) -> RoundLaw:
    """Exact per-round statistics of :func:`simulate_decoding`, for cross-checks.

    Fixed K with token-by-token verification uses matrix powers (O(K V³)): with M = min(T, D) and
    R = (T − D)+ elementwise, P(τ ≥ i | c) = (M^i 1)[c] and the round's last token has law
    Σ_{i<K} M^i R + M^K T. Other cases enumerate every draft chain from every context token (at most
    :data:`MAX_ENUMERATED_CHAINS` chains) and apply the verifier's exact τ law to each.

    The long-run averages weight each context token by the Cesàro limit of the round-start chain from
    ``initial`` (a token id or a distribution), which is what a long simulation converges to when
    that chain is ergodic.

    Examples
    --------
    >>> import numpy as np
    >>> from spectheory.simulations.decoding import round_law, leviathan_expected_tokens
    >>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.4, 0.2])
    >>> law = round_law(np.tile(p, (3, 1)), np.tile(q, (3, 1)), "fixed:3", "token")
    >>> bool(np.isclose(law.mean_tokens_per_round, leviathan_expected_tokens(0.7, 3)))
    True
    """
    T, D, _, _, policy, verifier = _prepare(target, draft, policy, verifier)
    V = T.shape[0]
    init_token, init_cdf = _check_initial(initial, V)
    init = np.zeros(V)
    if init_token >= 0:
        init[init_token] = 1.0
    else:
        init = np.diff(np.concatenate([[0.0], init_cdf]))
    if isinstance(policy, FixedK) and verifier == "token":
        parts = _per_start_matrix(T, D, policy.k)
    else:
        parts = _per_start_enumerated(T, D, policy, verifier == "block")
    tokens_from, A, drafted, attempted, accepted, hist_tokens, hist_draft = parts
    A = A / A.sum(axis=1, keepdims=True)
    pi = init @ _cesaro_limit(A)
    pi = pi / pi.sum()
    att = pi @ attempted
    acc = pi @ accepted
    with np.errstate(invalid="ignore", divide="ignore"):
        acceptance = np.where(att > 0, acc / np.where(att > 0, att, 1.0), np.nan)
    return RoundLaw(
        tokens_from=tokens_from,
        transition=A,
        stationary=pi,
        mean_tokens_per_round=float(pi @ tokens_from),
        drafted=pi @ drafted,
        attempted=att,
        accepted=acc,
        acceptance=acceptance,
        tokens_per_round=pi @ hist_tokens,
        draft_length=pi @ hist_draft,
    )
