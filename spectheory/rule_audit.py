"""Audit a verification rule: is it lossless, and does its acceptance respect the bound?

:func:`audit` takes a rule written against a small interface and checks it *exactly*: it runs the
rule over every draft tuple of its draft scheme (with the tuple's probability) and over every branch
of every random decision the rule takes, so the rule's output law is computed from the rule's own
code, with no second implementation. A lossless rule has output law p whatever p and q are
(Leviathan et al., arXiv 2211.17192; Chen et al., arXiv 2302.01318); its acceptance can never exceed
the optimal acceptance α* of its draft scheme (the transport LP of SpecTr, Sun et al.,
arXiv 2310.15141), so a rule that beats α* is lossy, however small its law's error. A hypothesis
search over degenerate distributions (one-hot, disjoint supports, p = q, tiny masses, V = 1, 2, n
beyond the support) finds a counterexample and shrinks it to the smallest V and n and the simplest
masses.

The rule
--------
One position, n drafts (``sampling`` is one of the package's draft schemes, see
:mod:`spectheory.schemes`, or pass ``draft=``)::

    def rule(p, q, drafts, rng) -> int          # the output token

``p`` (target) and ``q`` (draft) are read-only float64 arrays of shape (V,) (q of shape (n, V) for
``sampling="independent"``), ``drafts`` a read-only int64 array of the drafted token ids (fewer than
n for schemes that draw distinct tokens when q's support is smaller). Every random decision goes
through ``rng``:

* ``rng.uniform(dtype=numpy.float64)``: U(0, 1) as :meth:`numpy.random.Generator.random` draws it
  (k · 2^-53; with ``dtype=numpy.float32``, k · 2^-24 as ``torch.rand`` draws it);
* ``rng.bernoulli(prob) -> bool``;
* ``rng.categorical(weights) -> int`` (non-negative weights, normalised by their sum).

In the exact audit ``uniform()`` returns a symbolic uniform: it can be shifted and scaled by numbers
and compared with numbers (``u < p[x] / q[x]``, ``u * q[x] <= p[x]``), each comparison branching
with its exact probability; other uses (``float(u)``, ``np.log(u)``) are refused with an
explanation (:mod:`spectheory._audit_rng`), as are draws through anything other than ``rng``.

Chains (``sampling="chain"``, n = γ): ``rule(p, q, drafts, rng) -> emitted tokens`` with p of shape
(γ+1, V), q of shape (γ, V) and drafts X_i ~ q_i independently; the law audited is the law of the
emitted sequence, continued by the target (lossless iff it is Π_i p_i). Trees
(``sampling="tree"``, ``shape=``): ``rule(p, q, tree, rng) -> emitted tokens`` with ``p(path)`` and
``q(path)`` callables and a :class:`~spectheory.verifiers.trees.DraftNode`, siblings drafted without
replacement (``tree_sampling="iid"`` for i.i.d. siblings).

A built-in verifier object (``st.verifier("rrs")``) can be audited directly.
"""

from __future__ import annotations

import itertools
import math
import operator
import random as _pyrandom
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._audit_rng import (
    PRUNED,
    RuleFailure,
    SamplingRNG,
    UnsupportedUniform,
    enumerate_runs,
)
from ._validation import SpecTheoryValueError, check_distribution, check_n

__all__ = ["AuditResult", "Failure", "audit"]

#: Modes of :func:`audit`.
MODES = ("exact", "monte_carlo")


@dataclass(frozen=True)
class Failure:
    """How a rule broke the interface on one case.

    ``kind`` is one of ``"raised"`` (the rule raised an exception), ``"bad_type"`` (it returned
    something that is not a token id or a sequence of them), ``"bad_token"`` (a token outside the
    vocabulary), ``"bad_probability"`` / ``"bad_weights"`` (an invalid argument to
    ``rng.bernoulli`` / ``rng.categorical``, e.g. NaN from a 0/0 residual), ``"unsupported_uniform"``
    (a use of the symbolic uniform the exact audit cannot branch on), ``"outside_randomness"``
    (randomness not taken through ``rng``), ``"too_many_draws"`` (more than ``max_draws`` decisions
    in one run), ``"timeout"`` (one call ran longer than ``time_limit`` seconds), ``"bad_draft"``
    (a ``draft=`` function returned an invalid draft). ``drafts`` is the draft tuple (or tree) it
    happened on.
    """

    kind: str
    message: str
    drafts: Any = None


@dataclass(frozen=True)
class AuditResult:
    """Result of :func:`audit`.

    Attributes
    ----------
    lossless : bool
        No case showed an output law away from p (beyond ``tol``), an acceptance above the bound, or
        a failure. Exact mode: a proof for the cases checked, not for all (p, q). Monte Carlo mode:
        the chi-square test did not reject at level ``alpha``.
    tv : float
        Total-variation distance between the rule's output law and p on the reported case (for
        chains and trees: between the laws of the emitted sequences continued by the target).
    acceptance : float
        P(output ∈ drafts) on the reported case; for chains and trees E[tokens emitted per round]
        (accepted drafts + 1).
    bound : float or None
        The optimal acceptance α* of the rule's draft scheme on that case
        (:func:`spectheory.optimal_acceptance`); for chains the block-verification optimum
        (:func:`spectheory.verifiers.chains.expected_tokens_block`, Sun et al., arXiv 2403.10444);
        None where the package has no bound (trees, custom ``draft=``).
    exceeds_bound : bool
        ``acceptance > bound + tol`` (Monte Carlo: by more than 4 standard errors): impossible for a
        lossless rule.
    counterexample : tuple or None
        ``(p, q, n)`` (``(p, q, shape)`` for trees) of the smallest failing case found, or None.
    failure : Failure or None
        On the reported case, how the rule broke the interface.
    p, q, n : the reported case: the given pair, else the counterexample, else a reference pair.
    law : numpy.ndarray or dict
        Its exact (or estimated) output law: shape (V,), or ``{sequence: probability}``.
    sampling, mode : str
    cases : int
        Cases checked (the search's examples, or 1).
    worst_tv : float
        Largest TV over all cases checked.
    branches : int
        (tuple, branch) pairs enumerated for the reported case.
    unresolved : float
        Probability mass of branches cut below ``min_prob`` (exact mode).
    stderr : float
        Standard error of ``acceptance`` (0 in exact mode).
    p_value, detectable_tv, trials : Monte Carlo only
        Chi-square p-value, the TV the test detects with 80% power at level ``alpha``
        (every law at least that far from p), and the number of trials.
    """

    lossless: bool
    tv: float
    acceptance: float
    bound: float | None
    exceeds_bound: bool
    counterexample: tuple | None
    failure: Failure | None
    p: np.ndarray
    q: np.ndarray
    n: Any
    law: Any
    sampling: str
    mode: str
    cases: int
    worst_tv: float
    branches: int = 0
    unresolved: float = 0.0
    stderr: float = 0.0
    p_value: float | None = None
    detectable_tv: float | None = None
    trials: int | None = None

    def summary(self) -> str:
        """A few lines for people: verdict, the case, TV, acceptance against the bound."""
        if self.mode == "monte_carlo":
            verdict = "no deviation from p detected" if self.lossless else "NOT LOSSLESS"
        else:
            verdict = "LOSSLESS (no counterexample found)" if self.lossless else "NOT LOSSLESS"
        lines = [f"{verdict}  [{self.mode}, sampling={self.sampling}, {self.cases} case(s) checked]"]
        lines.append(f"case: p = {_fmt(self.p)}, q = {_fmt(self.q)}, n = {self.n}")
        if self.failure is not None:
            lines.append(f"failure ({self.failure.kind}): {self.failure.message}")
            if self.failure.drafts is not None:
                lines.append(f"  on drafts {_fmt(self.failure.drafts)}")
        else:
            lines.append(f"TV(output law, p) = {self.tv:.6g}")
            bound = "n/a" if self.bound is None else f"{self.bound:.6g}"
            se = f" ± {self.stderr:.2g}" if self.stderr else ""
            flag = "  EXCEEDS THE BOUND" if self.exceeds_bound else ""
            lines.append(f"acceptance = {self.acceptance:.6g}{se}, bound = {bound}{flag}")
        if self.mode == "monte_carlo" and self.p_value is not None:
            lines.append(
                f"chi-square p-value = {self.p_value:.3g} over {self.trials:,} trials; detects TV >= "
                f"{self.detectable_tv:.3g} with 80% power"
            )
        return "\n".join(lines)


def _fmt(x) -> str:
    if isinstance(x, np.ndarray):
        return np.array2string(x, precision=6, separator=", ", threshold=40)
    return repr(x)


# ---------------------------------------------------------------------------------------------------
# calling the rule
# ---------------------------------------------------------------------------------------------------
class _Timeout(BaseException):
    pass


class _TimeLimit:
    """SIGALRM-based limit on one call (main thread, POSIX); a no-op elsewhere."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.active = (
            seconds is not None
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )

    def __enter__(self):
        if self.active:
            def handler(signum, frame):
                raise _Timeout()

            self.previous = signal.signal(signal.SIGALRM, handler)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


def _call(f, args, what: str, time_limit):
    try:
        with _TimeLimit(time_limit):
            return f(*args)
    except (RuleFailure, KeyboardInterrupt):
        raise
    except _Timeout:
        raise RuleFailure(
            "timeout", f"{what} ran for more than time_limit = {time_limit} s on one call: it may never terminate"
        ) from None
    except UnsupportedUniform as exc:
        raise RuleFailure("unsupported_uniform", str(exc)) from None
    except TypeError as exc:
        if "SymbolicUniform" in str(exc):  # numpy refusing a ufunc on it (__array_ufunc__ = None)
            raise RuleFailure(
                "unsupported_uniform",
                f"{what} applied a NumPy function to rng.uniform() ({exc}); the exact audit can only shift, "
                "scale and compare it. Use a comparison (u < x), rng.bernoulli/rng.categorical, or audit in "
                "Monte Carlo mode (mode='monte_carlo')",
            ) from None
        raise RuleFailure("raised", f"{what} raised TypeError: {exc}") from None
    except RecursionError:
        raise RuleFailure("raised", f"{what} raised RecursionError (does it terminate?)") from None
    except Exception as exc:  # the rule's own error: reported, never a crash of the audit
        raise RuleFailure("raised", f"{what} raised {type(exc).__name__}: {exc}") from None


def _as_token(out, V: int) -> int:
    if isinstance(out, (bool, np.bool_)):
        raise RuleFailure("bad_type", f"the rule returned {out!r}, a bool; expected a token id (int)")
    if isinstance(out, np.ndarray) and out.ndim == 1 and out.shape[0] == V and out.dtype.kind == "f":
        raise RuleFailure(
            "bad_type", "the rule returned a probability vector; return a token (draw it with rng.categorical(law))"
        )
    if isinstance(out, (float, np.floating)):
        raise RuleFailure("bad_type", f"the rule returned {out!r}, a float; expected a token id (int)")
    try:
        t = operator.index(out)
    except TypeError:
        raise RuleFailure(
            "bad_type", f"the rule returned {type(out).__name__} {out!r:.80}; expected a token id (int)"
        ) from None
    if not 0 <= t < V:
        raise RuleFailure("bad_token", f"the rule returned token {t}, outside the vocabulary [0, {V})")
    return int(t)


def _as_sequence(out, V: int, max_len: int) -> tuple[int, ...]:
    if isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
        raise RuleFailure(
            "bad_type", f"the rule returned {type(out).__name__}; expected the emitted tokens (a sequence of ids)"
        )
    seq = tuple(_as_token(t, V) for t in list(out))
    if not 1 <= len(seq) <= max_len:
        raise RuleFailure(
            "bad_type", f"the rule emitted {len(seq)} tokens; a round emits between 1 and {max_len}"
        )
    return seq


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


def _global_states():
    """States of the global generators a rule could draw from behind the audit's back."""
    legacy = np.random.get_state()
    out = [legacy[1].tobytes() + repr(legacy[2:]).encode(), _pyrandom.getstate()]
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            out.append(torch.random.get_rng_state().numpy().tobytes())
        except Exception:  # pragma: no cover - exotic torch builds
            pass
    return out


# ---------------------------------------------------------------------------------------------------
# one case, exactly
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Case:
    """The exact audit of one (p, q, n)."""

    p: np.ndarray
    q: np.ndarray
    n: Any
    law: Any = None
    acceptance: float = math.nan
    tv: float = math.nan
    bound: float | None = None
    branches: int = 0
    unresolved: float = 0.0
    failure: Failure | None = None
    exceeds_bound: bool = False

    def failing(self, tol: float) -> bool:
        return self.failure is not None or self.tv > tol or self.exceeds_bound


@dataclass
class _Spec:
    """What is audited: the rule, its kind ("token", "chain", "tree") and the options."""

    rule: Callable
    kind: str
    sampling: str
    draft: Callable | None
    shape: Any
    tree_sampling: str
    tol: float
    max_branches: int
    max_draws: int
    min_prob: float
    time_limit: float | None
    counters: dict = field(default_factory=lambda: {"cases": 0, "worst_tv": 0.0})


def _enumerate(spec: _Spec, run, case: _Case, weight: float, accumulate, drafts_repr):
    """Run one draft (``run(rng)``) over all branches; ``accumulate(prob, outcome)``."""
    try:
        for w, out in enumerate_runs(
            run, max_branches=spec.max_branches, max_draws=spec.max_draws, min_prob=spec.min_prob
        ):
            case.branches += 1
            if out is PRUNED:
                case.unresolved += weight * w
            else:
                accumulate(weight * w, out)
    except RuleFailure as exc:
        case.failure = Failure(exc.kind, exc.message, drafts_repr)
        return False
    return True


def _token_case(spec: _Spec, p, q, n) -> _Case:
    from .schemes import get_scheme

    case = _Case(p, q, n)
    V = p.shape[0]
    P, Q = _readonly(p), _readonly(q)
    law = np.zeros(V)
    acc = [0.0]

    def accumulate(w, out):
        token, drafts = out
        law[token] += w
        if token in drafts:
            acc[0] += w

    rule = spec.rule
    if spec.draft is None:
        tuples = get_scheme(spec.sampling).tuple_law(q, n)
        items = list(zip(tuples.tuples, tuples.probs))
    else:
        items = [(None, 1.0)]
    for t, prob in items:
        if t is None:
            def run(rng):
                d = _check_draft(_call(spec.draft, (Q, n, rng), "the draft function", spec.time_limit), V)
                return _as_token(_call(rule, (P, Q, _readonly(d), rng), "the rule", spec.time_limit), V), tuple(d)
        else:
            D = _readonly(t)
            key = tuple(int(x) for x in t)

            def run(rng, D=D, key=key):
                return _as_token(_call(rule, (P, Q, D, rng), "the rule", spec.time_limit), V), key

        if not _enumerate(spec, run, case, float(prob), accumulate, None if t is None else np.asarray(t)):
            return case
    case.law = law
    case.acceptance = acc[0]
    case.tv = 0.5 * float(np.abs(law - p).sum()) + 0.5 * case.unresolved
    if spec.draft is None:
        case.bound = _bound(p, q, n, spec.sampling)
    return case


def _check_draft(d, V: int) -> np.ndarray:
    try:
        a = np.asarray(d)
    except Exception:
        a = None
    if a is None or a.ndim != 1 or a.size == 0 or a.dtype.kind not in "iu":
        raise RuleFailure("bad_draft", f"the draft function returned {d!r:.80}; expected a 1-D array of token ids")
    if a.min() < 0 or a.max() >= V:
        raise RuleFailure("bad_draft", f"the draft function returned token ids outside [0, {V})")
    return a.astype(np.int64)


def _bound(p, q, n, sampling):
    from .solvers.optimal import optimal_acceptance

    try:
        return float(optimal_acceptance(p, q, n, sampling=sampling))
    except SpecTheoryValueError:
        return None


def _accepted_prefix(seq: tuple, is_path: Callable[[tuple], bool]) -> int:
    """Tokens emitted per round, counting as accepted only a prefix that was drafted."""
    k = 0
    while k < len(seq) - 1 and is_path(seq[: k + 1]):
        k += 1
    return k + 1


def _sequence_case(spec: _Spec, p, q, n) -> _Case:
    """Chains (n = γ, rows of p and q) and trees (n = shape; rows per depth)."""
    from .verifiers import trees as _trees

    case = _Case(p, q, n)
    V = p.shape[1]
    P, Q = _readonly(p), _readonly(q)
    law: dict = {}
    tokens = [0.0]

    def accumulate(w, out):
        seq, emitted = out
        law[seq] = law.get(seq, 0.0) + w
        tokens[0] += w * emitted

    if spec.kind == "chain":
        gamma = q.shape[0]
        length = gamma + 1
        supports = [np.flatnonzero(row > 0) for row in q]
        items = [
            (np.array(c, dtype=np.int64), float(np.prod(q[np.arange(gamma), list(c)])))
            for c in itertools.product(*supports)
        ]
        if len(items) > spec.max_branches:
            raise SpecTheoryValueError(f"audit: {len(items):,} draft chains, more than max_branches")
        for d, prob in items:
            D = _readonly(d)
            key = tuple(int(x) for x in d)

            def run(rng, D=D, key=key):
                seq = _as_sequence(_call(spec.rule, (P, Q, D, rng), "the rule", spec.time_limit), V, length)
                return seq, _accepted_prefix(seq, lambda s: s == key[: len(s)])

            if not _enumerate(spec, run, case, prob, accumulate, d):
                return case
        from .verifiers.chains import expected_tokens_block

        case.bound = float(expected_tokens_block(p, q))
    else:
        shape = n
        pf = _rows_model(P)
        qf = _rows_model(Q)
        length = _depth(shape) + 1
        if spec.draft is None:
            items = list(_trees.enumerate_trees(qf, shape, sampling=spec.tree_sampling))
        else:
            items = [(1.0, None)]
        for prob, tree in items:
            if tree is None:
                def run(rng):
                    t = _call(spec.draft, (qf, shape, rng), "the draft function", spec.time_limit)
                    try:
                        t = _trees._as_tree(t)
                    except SpecTheoryValueError as exc:
                        raise RuleFailure("bad_draft", str(exc)) from None
                    return _tree_run(spec, pf, qf, t, rng, V, length)
            else:
                def run(rng, tree=tree):
                    return _tree_run(spec, pf, qf, tree, rng, V, length)

            if not _enumerate(spec, run, case, float(prob), accumulate, tree):
                return case
        case.bound = None
    case.law = law
    case.acceptance = tokens[0]
    pf = _rows_model(P)
    done = _trees.complete_with_target(law, pf, length)
    target = _trees.target_sequence_law(pf, length)
    diff = sum(abs(done.get(s, 0.0) - target.get(s, 0.0)) for s in set(done) | set(target))
    case.tv = 0.5 * diff + 0.5 * case.unresolved
    return case


def _tree_run(spec, pf, qf, tree, rng, V, length):
    seq = _as_sequence(_call(spec.rule, (pf, qf, tree, rng), "the rule", spec.time_limit), V, length)
    paths = set(tree.paths())
    return seq, _accepted_prefix(seq, lambda s: s in paths)


def _rows_model(rows: np.ndarray):
    """``path -> rows[len(path)]`` (position-dependent, context-independent laws)."""
    last = rows.shape[0] - 1

    def model(path):
        return rows[min(len(path), last)]

    return model


def _depth(shape) -> int:
    return 1 + max(_depth(c) for c in shape) if shape else 0


def _evaluate(spec: _Spec, p, q, n) -> _Case:
    before = _global_states()
    if spec.kind == "token":
        case = _token_case(spec, p, q, n)
    else:
        case = _sequence_case(spec, p, q, n)
    if case.failure is None and _global_states() != before:
        case.failure = Failure(
            "outside_randomness",
            "the rule drew from a global generator (np.random.*, the random module or torch's default "
            "generator), which the audit cannot see or branch on; take every random decision through rng",
        )
    if case.failure is None and case.bound is not None:
        case.exceeds_bound = case.acceptance > case.bound + spec.tol
    spec.counters["cases"] += 1
    if case.failure is None:
        spec.counters["worst_tv"] = max(spec.counters["worst_tv"], case.tv)
    return case


# ---------------------------------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------------------------------
def _strategy(spec: _Spec, n_max, max_V: int):
    from hypothesis import strategies as hs

    from .testing import distribution_pairs, distributions, independent_drafters

    if spec.kind == "token":
        if spec.sampling == "independent":
            @hs.composite
            def cases(draw):
                V = draw(hs.integers(1, max_V))
                n = draw(hs.integers(1, n_max))
                return draw(distributions(V)), draw(independent_drafters(V, n)), n

            return cases()
        n_lo = 2 if spec.sampling == "hub" else 1

        @hs.composite
        def cases(draw):
            p, q = draw(hs.one_of(distribution_pairs(min_V=1, max_V=max_V), _generic_pairs(max_V)))
            n = draw(hs.integers(n_lo, n_max)) if n_max > n_lo else n_max
            return p, q, n

        return cases()

    @hs.composite
    def rows(draw):
        V = draw(hs.integers(1, max_V))
        gamma = draw(hs.integers(1, n_max)) if spec.kind == "chain" else _depth(spec.shape)
        pairs = [draw(hs.one_of(distribution_pairs(min_V=V, max_V=V), _generic_pairs(V, V))) for _ in range(gamma)]
        P = np.stack([a for a, _ in pairs] + [draw(distributions(V))])
        Q = np.stack([b for _, b in pairs]) if gamma else np.zeros((0, V))
        return P, Q, (gamma if spec.kind == "chain" else spec.shape)

    return rows()


def _generic_pairs(max_V: int, min_V: int = 1):
    """(p, q) with every mass bounded away from 0: the package's strategies favour degenerate
    cases (one-hot, zeros, tiny masses), where many defects are invisible; these are the rest."""
    from hypothesis import strategies as hs

    @hs.composite
    def pairs(draw):
        V = draw(hs.integers(min_V, max_V))
        w = [np.array(draw(hs.lists(hs.floats(0.05, 1.0), min_size=V, max_size=V))) for _ in range(2)]
        return w[0] / w[0].sum(), w[1] / w[1].sum()

    return pairs()


def _simplify(spec: _Spec, case: _Case) -> _Case:
    """Round the counterexample's masses to few decimals while it still fails."""
    for digits in (1, 2, 3):
        try:
            p2, q2 = (_round_rows(x, digits) for x in (case.p, case.q))
        except ValueError:
            continue
        if np.array_equal(p2, case.p) and np.array_equal(q2, case.q):
            return case
        if spec.kind == "tree" and not _tree_drafts_possible(q2, spec):
            continue
        c2 = _evaluate(spec, p2, q2, case.n)
        if c2.failing(spec.tol):
            return c2
    return case


def _tree_drafts_possible(q, spec) -> bool:
    if spec.tree_sampling == "iid" or spec.draft is not None:
        return True
    width = _max_width(spec.shape)
    return bool(np.all((q > 0).sum(axis=-1) >= width)) if q.size else True


def _max_width(shape) -> int:
    return max([len(shape)] + [_max_width(c) for c in shape]) if shape else 0


def _round_rows(x: np.ndarray, digits: int) -> np.ndarray:
    r = np.round(x, digits)
    if x.ndim == 1:
        r = r[None]
    out = []
    for row, orig in zip(r, x if x.ndim > 1 else x[None]):
        row = row.copy()
        row[np.argmax(row)] += 1.0 - row.sum()  # decimals that sum to 1, not renormalised
        row = np.round(row, digits)
        if np.any(row < 0) or np.any((row > 0) != (orig > 0)):
            raise ValueError("rounding changes the support")
        out.append(row)
    return np.stack(out) if x.ndim > 1 else out[0]


def _search(spec: _Spec, n_max, max_V: int, max_examples: int, seed):
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    cache: dict = {}

    def key(c):
        p, q, n = c
        return p.tobytes(), p.shape, q.tobytes(), q.shape, repr(n)

    def fails(c) -> bool:
        k = key(c)
        if k not in cache:
            p, q, n = c
            if spec.kind == "tree" and not _tree_drafts_possible(q, spec):
                cache[k] = None
            else:
                cache[k] = _evaluate(spec, p, q, n)
        return cache[k] is not None and cache[k].failing(spec.tol)

    conf = settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    rnd = None if seed is None else _pyrandom.Random(seed)
    try:
        found = find(_strategy(spec, n_max, max_V), fails, settings=conf, random=rnd)
    except NoSuchExample:
        return None
    return _simplify(spec, cache[key(found)])


def _case_size(case: _Case) -> tuple[int, int]:
    V = case.p.shape[-1]
    n = case.n if isinstance(case.n, int) else _depth(case.n)
    return V, n


def _minimal(spec: _Spec, n_max, max_V: int, max_examples: int, seed):
    """Search, then search again below the counterexample's V and n (hypothesis's shrinking of a
    composite case does not always reach the smallest vocabulary) until nothing smaller fails."""
    found = _search(spec, n_max, max_V, max_examples, seed)
    while found is not None:
        V, n = _case_size(found)
        smaller = None
        if V > 1:
            smaller = _search(spec, n_max if spec.kind == "tree" else n, V - 1, max_examples, seed)
        if smaller is None and spec.kind != "tree" and n > 1 and spec.sampling != "hub":
            smaller = _search(spec, n - 1, V, max_examples, seed)
        if smaller is None or _case_size(smaller) >= (V, n):
            return found
        found = smaller
    return None


# ---------------------------------------------------------------------------------------------------
# the public entry point
# ---------------------------------------------------------------------------------------------------
def _wrap_verifier(v):
    """A built-in verifier object as a rule of the audit interface."""

    class _Oracle:
        def __init__(self, rng):
            self.rng = rng

        def coin(self, prob):
            return self.rng.bernoulli(prob)

        def choose(self, weights):
            return self.rng.categorical(weights)

    def rule(p, q, drafts, rng):
        out = v._rule(p, q, drafts, _Oracle(rng))
        return rng.categorical(out) if isinstance(out, np.ndarray) else int(out)

    rule.__name__ = f"verifier {v.name!r}"
    return rule


def _reference_case(spec: _Spec, n, max_V: int):
    rng = np.random.default_rng(0)
    V = max(2, min(max_V, 4))
    if spec.kind == "token":
        p = rng.dirichlet(np.ones(V))
        q = rng.dirichlet(np.ones(V)) if spec.sampling != "independent" else rng.dirichlet(np.ones(V), size=n)
        return p, q, n
    rows = _depth(spec.shape) if spec.kind == "tree" else n
    return rng.dirichlet(np.ones(V), size=rows + 1), rng.dirichlet(np.ones(V), size=rows), n if spec.kind == "chain" else spec.shape


def _check_case(spec: _Spec, p, q, n):
    if spec.kind == "token":
        p = check_distribution(p, "p", allow_batch=False)
        if spec.sampling == "independent":
            q = check_distribution(q, "q")
            if q.ndim != 2 or q.shape != (n, p.shape[0]):
                raise SpecTheoryValueError(f"q: sampling='independent' needs shape (n, V) = ({n}, {p.shape[0]}), got {q.shape}")
        else:
            q = check_distribution(q, "q", allow_batch=False)
            if q.shape != p.shape:
                raise SpecTheoryValueError(f"p and q: vocabulary sizes differ ({p.shape[0]} and {q.shape[0]})")
        return p, q, n
    p = np.atleast_2d(check_distribution(p, "p"))
    q = np.atleast_2d(check_distribution(q, "q"))
    rows = n if spec.kind == "chain" else _depth(spec.shape)
    if p.shape[0] == 1 and rows + 1 > 1:
        p = np.repeat(p, rows + 1, axis=0)
    if q.shape[0] == 1 and rows > 1:
        q = np.repeat(q, rows, axis=0)
    if p.shape != (rows + 1, q.shape[1]) or q.shape[0] != rows:
        raise SpecTheoryValueError(
            f"p and q: a {'chain of γ' if spec.kind == 'chain' else 'tree of depth'} = {rows} needs p of shape "
            f"({rows + 1}, V) and q of shape ({rows}, V) (or one vector each), got {p.shape} and {q.shape}"
        )
    return p, q, n if spec.kind == "chain" else spec.shape


def audit(rule, sampling: str = "iid", n=2, p=None, q=None, *, draft=None, shape=None,
          tree_sampling: str = "without_replacement", mode: str = "exact", search=None,
          max_V: int = 4, max_examples: int = 200, seed=None, tol: float = 1e-9,
          max_branches: int = 1_000_000, max_draws: int = 10_000, min_prob: float = 1e-13,
          time_limit: float | None = 10.0, trials: int = 200_000, vectorized: bool = True,
          backend: str = "numpy", alpha: float = 1e-3) -> AuditResult:
    """Audit a verification rule: exact output law, TV to p, acceptance against α*, counterexamples.

    Parameters
    ----------
    rule : callable or verifier
        ``rule(p, q, drafts, rng) -> token`` (see :mod:`spectheory.rule_audit` for the interface, chains
        and trees), or a built-in verifier object (``st.verifier("rrs")``; its own draft scheme is
        then used).
    sampling : str
        The draft scheme: one of :data:`spectheory.SCHEMES` (``"iid"``, ``"without_replacement"``,
        ``"greedy"``, ``"hub"``, ``"independent"``), ``"chain"`` (n = γ drafts X_i ~ q_i) or
        ``"tree"`` (with ``shape``).
    n : int
        Number of drafts (γ for chains). The search tries every n' ≤ n.
    p, q : array_like, optional
        One case to audit (shape (V,); (γ+1, V) and (γ, V) for chains, per depth for trees). Without
        them the audit searches.
    draft : callable, optional
        ``draft(q, n, rng) -> drafts`` (trees: ``draft(q, shape, rng) -> tree``) replacing the
        scheme; its decisions are enumerated with the rule's. No bound is known then.
    shape : tree shape, for ``sampling="tree"`` (see :func:`spectheory.verifiers.trees.check_shape`).
    tree_sampling : {"without_replacement", "iid"}
        How tree siblings are drafted.
    mode : {"exact", "monte_carlo"}
        Exhaustive enumeration, or sampling with a chi-square test (one case; token rules only;
        ``vectorized`` rules take (B, V) batches, see :func:`spectheory._audit_mc.monte_carlo`).
    search : bool, optional
        Search for a counterexample (default: when p and q are not given).
    max_V, max_examples, seed
        The search: vocabularies up to ``max_V``, ``max_examples`` generated cases (hypothesis,
        shrunk to the smallest V, n and simplest masses), derandomised unless ``seed`` is given.
    tol : float
        TV (and acceptance excess) below which a case passes.
    max_branches, max_draws, min_prob, time_limit
        Limits: branches per case (beyond: an error), decisions per run (beyond: reported as
        ``"too_many_draws"``), branch probability below which a branch is cut (its mass goes to
        ``unresolved``: rejection loops end), seconds per call of the rule (SIGALRM, main thread
        only; beyond: ``"timeout"``).
    trials, vectorized, backend, alpha
        Monte Carlo: number of trials, batched rule or not, ``"numpy"`` or ``"torch"``, test level.

    Returns
    -------
    AuditResult

    Raises
    ------
    SpecTheoryValueError
        For invalid arguments (a rule that is not callable, an unknown scheme, bad p or q), or a
        case too large to enumerate. Misbehaviour of the rule itself is reported in the result.

    Notes
    -----
    Cost (exact): (draft tuples) × (branches per tuple) rule calls per case, e.g. 64 tuples for
    V = 4, n = 3 i.i.d.; the search multiplies by ``max_examples`` plus shrinking.

    Examples
    --------
    >>> import numpy as np, spectheory as st
    >>> def sd(p, q, drafts, rng):                       # speculative sampling, one draft
    ...     x = drafts[0]
    ...     if rng.uniform() < p[x] / q[x]:
    ...         return x
    ...     return rng.categorical(np.maximum(p - q, 0))
    >>> r = st.audit(sd, n=1, p=[0.5, 0.3, 0.2], q=[0.2, 0.3, 0.5])
    >>> r.lossless, round(r.acceptance, 12), round(r.bound, 12)
    (True, 0.7, 0.7)
    >>> def greedy_accept(p, q, drafts, rng):            # accepts every draft: lossy
    ...     return drafts[0]
    >>> r = st.audit(greedy_accept, n=1, max_examples=50)
    >>> r.lossless, r.counterexample[0].size             # smallest V where it fails
    (False, 2)
    """
    from .verifiers._base import Verifier

    if isinstance(rule, Verifier):
        if sampling == "iid" and rule.sampling != "iid":
            sampling = rule.sampling
        n_checked = rule.check_n(n) if sampling not in ("chain", "tree") else n
        rule = _wrap_verifier(rule)
        n = n_checked
    if not callable(rule):
        raise SpecTheoryValueError(
            f"rule: expected a callable rule(p, q, drafts, rng) -> token, got {type(rule).__name__}"
        )
    if draft is not None and not callable(draft):
        raise SpecTheoryValueError(f"draft: expected a callable draft(q, n, rng), got {type(draft).__name__}")
    if mode not in MODES:
        raise SpecTheoryValueError(f"mode: expected one of {MODES}, got {mode!r}")
    from .schemes import SCHEMES

    if sampling == "chain":
        kind = "chain"
    elif sampling == "tree":
        kind = "tree"
        if shape is None:
            raise SpecTheoryValueError("shape: sampling='tree' needs a tree shape, e.g. shape=(2, 1)")
        from .verifiers.trees import _check_sampling, check_shape

        shape = check_shape(shape)
        tree_sampling = _check_sampling(tree_sampling)
    elif sampling in SCHEMES:
        kind = "token"
    else:
        raise SpecTheoryValueError(
            f"sampling: expected one of {', '.join(list(SCHEMES) + ['chain', 'tree'])}, got {sampling!r}"
        )
    if kind == "tree":
        n = shape
    else:
        n = check_n(n)
        if sampling == "hub" and n != 2:
            raise SpecTheoryValueError(f"n: sampling='hub' (SpecHub) is defined for n = 2 only, got n = {n}")
    for name, value, lo in (("max_V", max_V, 1), ("max_examples", max_examples, 1), ("max_branches", max_branches, 1),
                            ("max_draws", max_draws, 1), ("trials", trials, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise SpecTheoryValueError(f"{name}: must be an integer >= {lo}, got {value!r}")
    for name, value in (("tol", tol), ("min_prob", min_prob)):
        if not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise SpecTheoryValueError(f"{name}: must be a number in [0, 1), got {value!r}")
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise SpecTheoryValueError(f"time_limit: must be a positive number of seconds or None, got {time_limit!r}")
    if (p is None) != (q is None):
        raise SpecTheoryValueError("p and q: give both (one case to audit) or neither (search)")

    spec = _Spec(rule, kind, sampling, draft, shape, tree_sampling, float(tol), int(max_branches),
                 int(max_draws), float(min_prob), time_limit)
    if mode == "monte_carlo":
        if kind != "token" or draft is not None:
            raise SpecTheoryValueError("mode: 'monte_carlo' audits one-position rules with a named draft scheme")
        from ._audit_mc import monte_carlo

        if p is None:
            p, q, _ = _reference_case(spec, n, max_V)
        p, q, n = _check_case(spec, p, q, n)
        return monte_carlo(spec, p, q, n, trials=int(trials), vectorized=vectorized, backend=backend,
                           alpha=alpha, seed=seed)

    if search is None:
        search = p is None
    given = None
    if p is not None:
        given = _evaluate(spec, *_check_case(spec, p, q, n))
    found = None
    if given is not None and given.failing(spec.tol):
        found = given
    elif search:
        found = _minimal(spec, n, int(max_V), int(max_examples), seed)
    report = given if given is not None else found
    if report is None:
        report = _evaluate(spec, *_reference_case(spec, n, max_V))
        if report.failing(spec.tol):
            found = report
    counter = None if found is None else (found.p, found.q, found.n)
    return AuditResult(
        lossless=found is None,
        tv=report.tv,
        acceptance=report.acceptance,
        bound=report.bound,
        exceeds_bound=report.exceeds_bound,
        counterexample=counter,
        failure=report.failure,
        p=report.p,
        q=report.q,
        n=report.n,
        law=report.law,
        sampling=sampling if kind != "tree" else f"tree ({tree_sampling} siblings)",
        mode="exact",
        cases=spec.counters["cases"],
        worst_tv=spec.counters["worst_tv"],
        branches=report.branches,
        unresolved=report.unresolved,
    )
