"""The random-number interface of :func:`spectheory.audit`, and its exact (branching) implementation.

A rule under audit takes every random decision through ``rng``:

* ``rng.uniform(dtype=numpy.float64)``: a uniform number on [0, 1), as
  :meth:`numpy.random.Generator.random` draws it: k · 2^-53 for float64, k · 2^-24 for float32
  (k uniform on the integers; ``torch.rand`` uses the same float32 lattice);
* ``rng.bernoulli(prob) -> bool``: True with probability ``prob`` (a number in [0, 1]);
* ``rng.categorical(weights) -> int``: index i with probability weights[i] / sum(weights)
  (non-negative, finite weights with a positive sum).

:class:`SamplingRNG` implements it on a :class:`numpy.random.Generator` (Monte Carlo).
:class:`BranchingRNG` implements it for the exact audit: each bernoulli/categorical call is a
branch point of an enumeration that runs the rule once per branch with a forced prefix of decisions
(the scheme of :mod:`spectheory.verifiers._branching`), and ``uniform()`` returns a *symbolic*
uniform :class:`SymbolicUniform`. A symbolic uniform can be added to, subtracted from, multiplied or
divided by numbers, and compared with numbers; each comparison splits the set of lattice points the
uniform can still take into the part where the comparison holds and the rest, and branches with the
exact probabilities (lattice-point counts). A later comparison of the same uniform is conditioned on
the earlier ones. Anything else (``float(u)``, ``np.log(u)``, ``u * u``) raises
:class:`UnsupportedUniform`, explaining the restriction.

Exactness: comparisons of the uniform itself with a float64 threshold t are exact (t · 2^b is exact
in binary floating point). After affine arithmetic, a · u + b < t is solved as u < (t − b)/a in
float64: the last-ulp rounding of the rule's own arithmetic is not modelled.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

#: Bits of the uniform lattice by dtype (numpy's Generator.random and torch.rand).
_BITS = {np.dtype(np.float64): 53, np.dtype(np.float32): 24}


class RuleFailure(BaseException):
    """Raised inside the enumeration when the rule breaks the interface; carries a ``kind``.

    A ``BaseException``, so that a rule's own ``except Exception`` does not swallow it."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class UnsupportedUniform(TypeError):
    """A symbolic uniform was used in a way the exact audit cannot branch on."""


class _Pruned(BaseException):
    """A branch whose probability fell below the enumeration's floor (its mass is reported)."""


def _uniform_bits(dtype) -> int:
    try:
        return _BITS[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise RuleFailure(
            "bad_argument", f"rng.uniform(dtype={dtype!r}): dtype must be numpy.float64 or numpy.float32"
        ) from None


def _check_prob(prob) -> float:
    if isinstance(prob, SymbolicUniform):
        raise UnsupportedUniform(
            "rng.bernoulli(u) with a symbolic uniform u: compare u with a number instead (u < prob)"
        )
    try:
        x = float(prob)
    except (TypeError, ValueError):
        raise RuleFailure("bad_probability", f"rng.bernoulli got {prob!r}, not a number") from None
    if math.isnan(x):
        raise RuleFailure("bad_probability", "rng.bernoulli got probability NaN (a 0/0 in the rule?)")
    if x < -1e-12 or x > 1 + 1e-12:
        raise RuleFailure("bad_probability", f"rng.bernoulli got probability {x!r}, outside [0, 1]")
    return min(max(x, 0.0), 1.0)


def _check_weights(weights) -> np.ndarray:
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise RuleFailure("bad_weights", f"rng.categorical got {type(weights).__name__}, not numbers") from None
    if w.ndim != 1 or w.size == 0:
        raise RuleFailure("bad_weights", f"rng.categorical needs a non-empty 1-D weight vector, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise RuleFailure("bad_weights", "rng.categorical got NaN or infinite weights (a 0/0 residual in the rule?)")
    if np.any(w < 0):
        raise RuleFailure("bad_weights", f"rng.categorical got a negative weight ({w.min()!r})")
    total = w.sum()
    if not total > 0:
        raise RuleFailure("bad_weights", "rng.categorical got weights that sum to 0 (a 0/0 residual in the rule?)")
    return w / total


# ---------------------------------------------------------------------------------------------------
# Monte Carlo
# ---------------------------------------------------------------------------------------------------
class SamplingRNG:
    """The audit's random-number interface on a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = SamplingRNG(np.random.default_rng(0))
    >>> 0 <= rng.uniform() < 1, rng.bernoulli(1.0), rng.categorical([0.0, 2.0])
    (True, True, 1)
    """

    def __init__(self, generator: np.random.Generator):
        self.generator = generator

    def uniform(self, dtype=np.float64):
        _uniform_bits(dtype)
        return self.generator.random(dtype=dtype)

    def bernoulli(self, prob) -> bool:
        return bool(self.generator.random() < _check_prob(prob))

    def categorical(self, weights) -> int:
        w = _check_weights(weights)
        c = np.cumsum(w)
        return int(min(np.searchsorted(c, self.generator.random() * c[-1], side="right"), len(w) - 1))


# ---------------------------------------------------------------------------------------------------
# exact enumeration
# ---------------------------------------------------------------------------------------------------
class _Decisions:
    """One run of the rule: follows a forced prefix of decisions, takes the first option of every
    new decision and records the others. Checks that a replayed decision offers the same options
    (else the rule depends on randomness outside the interface)."""

    def __init__(self, forced, max_draws: int, min_prob: float):
        self.forced = forced  # tuple of (choice, weights-bytes)
        self.taken: list[tuple[int, bytes]] = []
        self.weight = 1.0
        self.alternatives: list[tuple] = []
        self.max_draws = max_draws
        self.min_prob = min_prob
        self.pruned = 0.0

    def choose(self, w: np.ndarray) -> int:
        k = len(self.taken)
        if k >= self.max_draws:
            raise RuleFailure(
                "too_many_draws",
                f"the rule made more than {self.max_draws:,} random draws in one run (max_draws): "
                "it may never terminate",
            )
        sig = w.tobytes()
        if k < len(self.forced):
            j, expected = self.forced[k]
            if sig != expected:
                raise RuleFailure(
                    "outside_randomness",
                    "the rule is not a function of its inputs and of the decisions taken through rng: "
                    f"re-run with the same first {k} decisions, its decision {k + 1} had different "
                    "probabilities. It uses randomness outside the interface (np.random, random, "
                    "torch, a Generator of its own) or state kept between calls",
                )
        else:
            options = np.flatnonzero(w > 0)
            keep = [int(i) for i in options if self.weight * w[i] >= self.min_prob]
            if not keep:
                raise _Pruned()
            j = keep[0]
            self.alternatives.extend(tuple(self.taken) + ((alt, sig),) for alt in keep[1:])
            self.pruned += self.weight * float(w[options].sum() - w[keep].sum())
        self.taken.append((j, sig))
        self.weight *= float(w[j])
        return j


def enumerate_runs(run, *, max_branches: int, max_draws: int, min_prob: float, recheck: bool = True):
    """Yield ``(probability, outcome)`` for every branch of ``run(rng)`` (a :class:`BranchingRNG`).

    Raises :class:`RuleFailure` when the rule breaks the interface, and
    :class:`spectheory.SpecTheoryValueError` beyond ``max_branches``. Branches whose probability
    would fall below ``min_prob`` are cut and their mass is yielded as ``(mass, PRUNED)``. Outcomes
    must be comparable with ``==`` (the first branch is run twice more, ``recheck``).
    """
    from ._validation import SpecTheoryValueError

    stack: list[tuple] = [()]
    count = cut = 0
    while stack:
        count += 1
        if count > max_branches:
            raise SpecTheoryValueError(
                f"audit: more than {max_branches:,} branches for one case (max_branches); audit a smaller "
                "vocabulary or fewer drafts, or use mode='monte_carlo'"
            )
        forced = stack.pop()
        dec = _Decisions(forced, max_draws, min_prob)
        try:
            outcome = run(BranchingRNG(dec))
        except _Pruned:
            cut += 1
            if cut > MAX_CUT:
                raise RuleFailure(
                    "too_many_draws",
                    f"the rule kept drawing on more than {MAX_CUT:,} branches until their probability fell "
                    f"below min_prob = {min_prob:g}: it may never terminate",
                ) from None
            stack.extend(dec.alternatives)
            yield dec.weight + dec.pruned, PRUNED
            continue
        if count == 1 and recheck:
            # the first branch again, with its decisions forced: a rule drawing randomness of its
            # own (or keeping state between calls) shows up here even when it takes no decision
            for _ in range(2):
                again = _Decisions(tuple(dec.taken), max_draws, min_prob)
                if run(BranchingRNG(again)) != outcome or len(again.taken) != len(dec.taken):
                    break
            else:
                again = None
            if again is not None:
                raise RuleFailure(
                    "outside_randomness",
                    "the rule gave a different result when run again with the same inputs and the same "
                    "decisions: it uses randomness outside the interface (np.random, random, torch, a "
                    "Generator of its own) or state kept between calls",
                )
        stack.extend(dec.alternatives)
        if dec.pruned:
            yield dec.pruned, PRUNED
        yield dec.weight, outcome


#: Largest number of branches cut by the probability floor in one enumeration (a rule that never
#: stops drawing cuts every branch; a rejection loop that ends cuts one per level).
MAX_CUT = 1000

#: Marker outcome for probability mass cut by the enumeration floor.
PRUNED = object()


class BranchingRNG:
    """The audit's random-number interface for exact enumeration (see the module docstring)."""

    __slots__ = ("_dec",)

    def __init__(self, decisions: _Decisions):
        self._dec = decisions

    def uniform(self, dtype=np.float64) -> SymbolicUniform:
        return SymbolicUniform(self._dec, _uniform_bits(dtype))

    def bernoulli(self, prob) -> bool:
        x = _check_prob(prob)
        return self._dec.choose(np.array([1.0 - x, x])) == 1

    def categorical(self, weights) -> int:
        return self._dec.choose(_check_weights(weights))

    def __getattr__(self, name):
        raise AttributeError(
            f"rng.{name}: the exact audit's rng offers only uniform(dtype), bernoulli(prob) and "
            "categorical(weights); take every random decision through them"
        )


def _number(x):
    """A real threshold or coefficient, or None when ``x`` is not a plain number."""
    if isinstance(x, SymbolicUniform) or isinstance(x, bool):
        return None
    if isinstance(x, (numbers.Real, np.floating, np.integer)):
        return float(x)
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "fiu":
        return float(x)
    return None


class _State:
    """Lattice points [lo, hi) the uniform can still take, given the comparisons made so far."""

    __slots__ = ("dec", "bits", "lo", "hi")

    def __init__(self, dec, bits):
        self.dec, self.bits, self.lo, self.hi = dec, bits, 0, 1 << bits

    def split(self, t: float, strict: bool) -> bool:
        """Branch on u < t (``strict``) or u <= t; return the outcome and narrow [lo, hi)."""
        if math.isnan(t):
            return False
        x = t * (1 << self.bits)  # exact scaling by a power of two (barring overflow)
        if x <= self.lo and (strict or x < self.lo):
            c = self.lo
        elif x >= self.hi:
            c = self.hi
        else:
            c = math.ceil(x) if strict else math.floor(x) + 1
            c = min(max(c, self.lo), self.hi)
        below, above = c - self.lo, self.hi - c
        if below == 0 or above == 0:
            return below > 0
        outcome = self.dec.choose(np.array([above, below], dtype=np.float64) / (self.hi - self.lo)) == 1
        if outcome:
            self.hi = c
        else:
            self.lo = c
        return outcome


class SymbolicUniform:
    """a · U + b for a uniform U of the audit's lattice (see the module docstring)."""

    __array_ufunc__ = None  # numpy defers to our reflected operators; np.log(u) etc. raise TypeError
    __slots__ = ("_state", "_a", "_b")

    def __init__(self, dec, bits, a=1.0, b=0.0, state=None):
        self._state = state if state is not None else _State(dec, bits)
        self._a, self._b = a, b

    def _affine(self, a, b):
        return SymbolicUniform(None, 0, a, b, self._state)

    # arithmetic with numbers
    def __add__(self, other):
        c = _number(other)
        return NotImplemented if c is None else self._affine(self._a, self._b + c)

    __radd__ = __add__

    def __sub__(self, other):
        c = _number(other)
        return NotImplemented if c is None else self._affine(self._a, self._b - c)

    def __rsub__(self, other):
        c = _number(other)
        return NotImplemented if c is None else self._affine(-self._a, c - self._b)

    def __mul__(self, other):
        c = _number(other)
        return NotImplemented if c is None else self._affine(self._a * c, self._b * c)

    __rmul__ = __mul__

    def __truediv__(self, other):
        c = _number(other)
        if c is None or c == 0:
            return NotImplemented
        return self._affine(self._a / c, self._b / c)

    def __neg__(self):
        return self._affine(-self._a, -self._b)

    def __pos__(self):
        return self

    # comparisons with numbers
    def _compare(self, other, op: str) -> bool:
        t = _number(other)
        if t is None:
            raise _unsupported(f"comparing it with {type(other).__name__}")
        a, b = self._a, self._b
        if a == 0:
            return {"<": b < t, "<=": b <= t, ">": b > t, ">=": b >= t}[op]
        s = (t - b) / a
        if a < 0:
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
        if op == "<":
            return self._state.split(s, strict=True)
        if op == "<=":
            return self._state.split(s, strict=False)
        if op == ">":
            return not self._state.split(s, strict=False)
        return not self._state.split(s, strict=True)

    def __lt__(self, other):
        return self._compare(other, "<")

    def __le__(self, other):
        return self._compare(other, "<=")

    def __gt__(self, other):
        return self._compare(other, ">")

    def __ge__(self, other):
        return self._compare(other, ">=")

    def __eq__(self, other):
        raise _unsupported("testing it for equality")

    __hash__ = object.__hash__

    def __bool__(self):
        raise _unsupported("bool(u)")

    def __float__(self):
        raise _unsupported("float(u) (or np.float32(u), math functions)")

    def __int__(self):
        raise _unsupported("int(u)")

    def __index__(self):
        raise _unsupported("using it as an index")

    def __array__(self, *args, **kwargs):
        raise _unsupported("converting it to an array")

    def __mod__(self, other):
        raise _unsupported("u % x")

    def __pow__(self, other):
        raise _unsupported("u ** x")

    def __rtruediv__(self, other):
        raise _unsupported("x / u")

    def __repr__(self) -> str:
        return f"<symbolic uniform {self._a!r}·U + {self._b!r}>"


def _unsupported(what: str) -> UnsupportedUniform:
    return UnsupportedUniform(
        f"rng.uniform() returns a symbolic uniform in the exact audit; it supports +, -, *, / with "
        f"numbers and comparisons with numbers, not {what}. Use a comparison (u < x), "
        "rng.bernoulli/rng.categorical, or audit in Monte Carlo mode (mode='monte_carlo')"
    )
