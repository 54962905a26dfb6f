"""Random decisions of a verifier, written once and used two ways.

A verifier's rule is a function ``rule(oracle) -> outcome`` that takes every random decision through
an *oracle*:

* ``oracle.coin(prob) -> bool``: a Bernoulli(prob) decision (an accept/reject test);
* ``oracle.choose(weights) -> int``: a categorical decision (e.g. which draft a selection rule picks).

The outcome is the verifier's final output: a token id (``int``) when a draft is accepted, or a
probability vector (``numpy.ndarray``, shape (V,)) when the output is drawn from a residual.
Chain and tree verifiers return ``(accepted_tokens, residual)`` instead; the two helpers below do
not look inside the outcome.

With :class:`RandomOracle` the rule *is* the sampler. With :func:`enumerate_branches` every branch
of the same code is visited once, with its exact probability, so the sampler's exact output law is
computed from the sampler's own code path (no second implementation to drift apart from it).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np


class RandomOracle:
    """Decisions drawn from a :class:`numpy.random.Generator`."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def coin(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def choose(self, weights) -> int:
        w = np.asarray(weights, dtype=np.float64)
        return int(self.rng.choice(len(w), p=w / w.sum()))


class _ReplayOracle:
    """Follows a forced prefix of decisions, then takes the first positive-probability option of
    every new decision and records the untaken options for later visits."""

    def __init__(self, forced: tuple[int, ...]):
        self.forced = forced
        self.taken: list[int] = []
        self.weight = 1.0
        self.alternatives: list[tuple[int, ...]] = []

    def coin(self, prob: float) -> bool:
        prob = min(max(float(prob), 0.0), 1.0)
        return self.choose([1.0 - prob, prob]) == 1

    def choose(self, weights) -> int:
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        k = len(self.taken)
        if k < len(self.forced):
            j = self.forced[k]
        else:
            options = np.flatnonzero(w > 0)
            j = int(options[0])
            self.alternatives.extend(tuple(self.taken) + (int(alt),) for alt in options[1:])
        self.taken.append(j)
        self.weight *= float(w[j])
        return j


def enumerate_branches(rule: Callable[[Any], Any]) -> Iterator[tuple[float, Any]]:
    """Yield ``(probability, outcome)`` for every branch of ``rule(oracle)`` with positive probability.

    The probabilities of all branches sum to 1 (up to rounding). Decisions of probability 0 are
    never taken, so a rule may divide by quantities that vanish only on impossible branches.
    """
    stack: list[tuple[int, ...]] = [()]
    while stack:
        oracle = _ReplayOracle(stack.pop())
        outcome = rule(oracle)
        stack.extend(oracle.alternatives)
        yield oracle.weight, outcome
