"""Costs and drafting policies for the draft-length MDP (re-exported by :mod:`spectheory.solvers.mdp`).

A policy decides, after k drafts (k = 0, 1, ...), whether to draft token k + 1 or to stop and
verify. It may use what the drafter has seen: k, the survival S_k = Π_{j≤k} a_j and, for the optimal
policy, the information state of the compiled model (the observed hidden state, or the posterior).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from spectheory._validation import SpecTheoryValueError


def _positive(x, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(float(x)):
        raise SpecTheoryValueError(f"{name}: must be a finite number, got {x!r}")
    x = float(x)
    if x < 0 or (x == 0 and not allow_zero):
        raise SpecTheoryValueError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {x:g}")
    return x


def check_int(x, name: str, minimum: int) -> int:
    """``x`` as an int >= ``minimum`` (integral floats accepted), else a SpecTheoryValueError."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not float(x).is_integer():
        raise SpecTheoryValueError(f"{name}: must be an integer >= {minimum}, got {x!r}")
    x = int(x)
    if x < minimum:
        raise SpecTheoryValueError(f"{name}: must be an integer >= {minimum}, got {x}")
    return x


@dataclass(frozen=True)
class Costs:
    """Cost model of one round with K drafts: K·c_draft + c_target(K), c_target(K) = c0 + c1·K.

    ``c_draft`` is one draft-model step, ``c0`` one target verification call, ``c1`` its marginal
    cost per verified draft (c1 = 0 is SpecDec++'s and Leviathan et al.'s constant-cost assumption).
    Only ``c0`` and the per-draft cost ``step = c_draft + c1`` matter: a round costs c0 + step·K.
    Without speculation every token costs c0, so the *speedup* of a policy is its tokens per unit
    cost times c0 (= Leviathan et al.'s walltime improvement factor when c0 = 1, c1 = 0).

    Examples
    --------
    >>> from spectheory.solvers.mdp import Costs
    >>> c = Costs(0.1, c0=1.0, c1=0.02)
    >>> round(c.step, 12), round(c.round_cost(4), 12), round(c.h_delta0, 6)
    (0.12, 1.48, 0.892857)
    """

    c_draft: float
    c0: float = 1.0
    c1: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "c_draft", _positive(self.c_draft, "c_draft"))
        object.__setattr__(self, "c0", _positive(self.c0, "c0 (c_target(0))"))
        object.__setattr__(self, "c1", _positive(self.c1, "c1", allow_zero=True))

    @property
    def step(self) -> float:
        """Cost of one more draft: c_draft + c1."""
        return self.c_draft + self.c1

    def target(self, k) -> float:
        """c_target(K) = c0 + c1·K."""
        return self.c0 + self.c1 * k

    def round_cost(self, k) -> float:
        """Cost of a round with K drafts: c0 + (c_draft + c1)·K."""
        return self.c0 + self.step * k

    @property
    def ratio(self) -> float:
        """Leviathan et al.'s c: the cost of one more draft relative to a verification, step / c0."""
        return self.step / self.c0

    @property
    def h_delta0(self) -> float:
        """SpecDec++'s Δ = 0 threshold c2/(c1 + c2) in their notation (c1 = draft step, c2 = target
        call): here c0/(c0 + c_draft + c1), the marginal cost of a draft standing for their c1."""
        return self.c0 / (self.c0 + self.step)

    def as_dict(self) -> dict:
        return {"c_draft": self.c_draft, "c0": self.c0, "c1": self.c1}


def as_costs(c_draft=None, c_target=None, costs=None) -> Costs:
    """Accept ``Costs``, or ``c_draft`` with ``c_target`` a number (c0, constant cost), a pair
    (c0, c1), or None (c0 = 1, c1 = 0)."""
    if isinstance(c_draft, Costs):
        if c_target is not None or costs is not None:
            raise SpecTheoryValueError("costs: pass either a Costs object or c_draft/c_target, not both")
        return c_draft
    if costs is not None:
        if c_draft is not None or c_target is not None:
            raise SpecTheoryValueError("costs: pass either costs=Costs(...) or c_draft/c_target, not both")
        if not isinstance(costs, Costs):
            raise SpecTheoryValueError(f"costs: expected a Costs object, got {type(costs).__name__}")
        return costs
    if c_draft is None:
        raise SpecTheoryValueError("c_draft: the cost of one draft step is required")
    if c_target is None:
        return Costs(c_draft)
    if isinstance(c_target, (tuple, list, np.ndarray)):
        if len(c_target) != 2:
            raise SpecTheoryValueError(f"c_target: expected a number c0 or a pair (c0, c1), got {c_target!r}")
        return Costs(c_draft, c_target[0], c_target[1])
    return Costs(c_draft, c_target)


# --------------------------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedK:
    """Draft exactly K tokens every round (Leviathan et al.'s γ; K = 0 is no speculation)."""

    k: int

    def __post_init__(self):
        object.__setattr__(self, "k", check_int(self.k, "k", 0))

    @property
    def max_k(self) -> int:
        return self.k

    @property
    def min_k(self) -> int:
        return self.k

    def continues(self, k: int, S: np.ndarray) -> np.ndarray:
        """Whether to draft again after k drafts, at survival values ``S``."""
        return np.full(np.shape(S), k < self.k, dtype=bool)

    def __str__(self) -> str:
        return f"fixed K={self.k}"


@dataclass(frozen=True)
class ThresholdPolicy:
    """SpecDec++'s rule: after k drafts stop when k = max_k, or when k ≥ min_k and
    1 − S_k > h (S_k = Π_{j≤k} a_j, so 1 − S_k is the probability that some draft is rejected);
    otherwise draft again. With min_k = max_k it is fixed K = max_k."""

    h: float
    min_k: int = 1
    max_k: int = 20

    def __post_init__(self):
        h = self.h
        if isinstance(h, bool) or not isinstance(h, numbers.Real) or not math.isfinite(float(h)) or not 0 < h < 1:
            raise SpecTheoryValueError(f"h: must be a number strictly between 0 and 1, got {h!r}")
        min_k = check_int(self.min_k, "min_k", 1)
        max_k = check_int(self.max_k, "max_k", 1)
        if min_k > max_k:
            raise SpecTheoryValueError(f"min_k and max_k: need 1 <= min_k <= max_k, got min_k = {min_k} > max_k = {max_k}")
        object.__setattr__(self, "h", float(h))
        object.__setattr__(self, "min_k", min_k)
        object.__setattr__(self, "max_k", max_k)

    def continues(self, k: int, S: np.ndarray) -> np.ndarray:
        """Whether to draft again after k drafts, at survival values ``S``."""
        S = np.asarray(S, dtype=np.float64)
        if k >= self.max_k:
            return np.zeros(S.shape, dtype=bool)
        if k < self.min_k:
            return np.ones(S.shape, dtype=bool)
        return (1.0 - S) <= self.h

    def __str__(self) -> str:
        return f"threshold h={self.h:.6g} (min_k={self.min_k}, max_k={self.max_k})"


def fixed_k(k: int) -> FixedK:
    """The policy that always drafts K tokens (:class:`FixedK`).

    Examples
    --------
    >>> from spectheory.solvers.mdp import fixed_k
    >>> str(fixed_k(4))
    'fixed K=4'
    """
    return FixedK(k)


def threshold_policy(h: float, min_k: int = 1, max_k: int = 20) -> ThresholdPolicy:
    """SpecDec++'s threshold rule (arXiv 2405.19715): stop drafting when the probability that some
    draft is rejected, 1 − Π_{j≤k} a_j, exceeds ``h`` (after at least ``min_k`` and at most ``max_k``
    drafts). SpecDec++ uses caps (2, 20) and tunes h in 0.3 … 0.7 by hand.

    Examples
    --------
    >>> from spectheory.solvers.mdp import threshold_policy
    >>> pol = threshold_policy(0.5, min_k=1, max_k=8)
    >>> pol.continues(2, [0.9 * 0.8, 0.3]).tolist()
    [True, False]
    """
    return ThresholdPolicy(h, min_k, max_k)


@dataclass(frozen=True, eq=False)
class TabularPolicy:
    """A decision rule on the compiled state space of one process (returned by
    :func:`~spectheory.solvers.mdp.optimal_policy`): ``conts[k][s, i]`` says whether to draft again
    at layer k in the state (S = ``model.layers[k].S[s]``, information state i); ``advantages[k]``
    holds the continuation advantage Q (continue value − stop value) at the optimal ratio."""

    model: object = field(repr=False)
    conts: tuple = field(repr=False)
    advantages: tuple = field(repr=False)
    min_k: int = 0

    @property
    def max_k(self) -> int:
        return self.model.max_k

    @property
    def process(self):
        return self.model.process

    def continues_at(self, k: int, S: float, info: int = 0) -> bool:
        """The decision after k drafts at survival value ``S`` (a value of layer k) and information
        state ``info``."""
        L = self.model.layers[k]
        s = int(np.searchsorted(L.S, S * (1 - 1e-10)))
        if s >= L.S.shape[0] or abs(L.S[s] - S) > 1e-9 * max(S, 1e-300):
            raise SpecTheoryValueError(f"S: {S!r} is not a survival value of layer {k} of this policy's model")
        return bool(self.conts[k][s, info])

    def __str__(self) -> str:
        return f"optimal tabular policy (max_k={self.max_k})"
