"""Walker/Vose alias tables: O(V) construction, O(1) sampling from a fixed discrete law.

A table for weights w (length V, non-negative, positive sum) is a pair (``prob``, ``alias``): to
sample, draw a uniform U in [0, 1), set X = U·V, column i = ⌊X⌋ and F = X − i, and return i when
F < ``prob[i]``, else ``alias[i]``. Column i is chosen with probability 1/V, so

    P(token j) = (1/V)·(prob[j] + Σ_{i : alias[i] = j} (1 − prob[i])) = w(j)/Σw

when the table is built by Vose's method (Vose 1991, "A linear algorithm for generating random
numbers with a given distribution"). One uniform gives both the column (its high bits) and the
threshold F (its remaining low bits: 53 − log2 V of them, e.g. 38 at V = 32k, a resolution far
below any Monte Carlo error). Tokens with w = 0 get ``prob = 0`` and an alias of positive weight:
they are never returned.

Examples
--------
>>> import numpy as np
>>> from spectheory.simulations._alias import alias_table, alias_law
>>> prob, alias = alias_table(np.array([0.5, 0.0, 0.25, 0.25]))
>>> alias_law(prob, alias).tolist()
[0.5, 0.0, 0.25, 0.25]
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def select_unpredictable(typingctx, cond, a, b):  # pragma: no cover - compiled
    """``a if cond else b`` for int64, as an LLVM ``select`` marked ``!unpredictable``.

    A plain conditional whose test reads memory (here ``prob[i]``) is turned into a branch by LLVM;
    for a coin flip that branch is mispredicted half the time (measured: 18 ns per alias draw instead
    of 4 ns). The metadata keeps the select, which becomes a conditional move.
    """
    if not (isinstance(cond, types.Boolean) and isinstance(a, types.Integer) and isinstance(b, types.Integer)):
        return None
    sig = types.int64(types.boolean, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        c, x, y = args
        if c.type != ir.IntType(1):
            c = builder.trunc(c, ir.IntType(1))
        inst = builder.select(c, x, y)
        inst.set_metadata("unpredictable", builder.module.add_metadata([]))
        return inst

    return sig, codegen


@numba.njit(cache=True)
def build_alias(w):  # pragma: no cover - compiled
    """Vose's alias method for weights ``w`` (float64, non-negative, positive sum); O(V).

    Returns ``(prob, alias)``: float64 and int64 arrays of length V.
    """
    V = w.shape[0]
    total = 0.0
    best = 0
    for i in range(V):
        total += w[i]
        if w[i] > w[best]:
            best = i
    scaled = np.empty(V)
    for i in range(V):
        scaled[i] = w[i] * (V / total)
    prob = np.zeros(V)
    alias = np.empty(V, np.int64)
    small = np.empty(V, np.int64)
    large = np.empty(V, np.int64)
    ns = 0
    nl = 0
    # zero-weight tokens are pushed last, so they are popped (paired with a large column) first,
    # while large columns certainly remain
    for i in range(V - 1, -1, -1):
        if scaled[i] > 0.0 and scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        elif scaled[i] >= 1.0:
            large[nl] = i
            nl += 1
    for i in range(V - 1, -1, -1):
        if scaled[i] <= 0.0:
            small[ns] = i
            ns += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    # leftovers hold (up to rounding) exactly their own column
    for j in range(nl):
        g = large[j]
        prob[g] = 1.0
        alias[g] = g
    for j in range(ns):
        s = small[j]
        if w[s] > 0.0:
            prob[s] = 1.0
            alias[s] = s
        else:  # only reachable through rounding: never return a zero-weight token
            prob[s] = 0.0
            alias[s] = best
    return prob, alias


@numba.njit(cache=True)
def alias_draw(prob, alias, u):  # pragma: no cover - compiled
    """One draw from an alias table with one uniform ``u`` in [0, 1)."""
    V = prob.shape[0]
    x = u * V
    i = int(x)
    if i >= V:
        i = V - 1
    return select_unpredictable(x - i < prob[i], i, alias[i])


def alias_table(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prob, alias) for the weights ``w`` (array_like, non-negative, positive sum)."""
    w = np.ascontiguousarray(w, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("alias_table: weights must be a non-empty 1-D array of finite non-negative numbers, sum > 0")
    return build_alias(w)


def alias_law(prob: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """The exact law a table samples from (for tests): (prob[j] + Σ_{alias[i]=j}(1 − prob[i])) / V."""
    V = prob.shape[0]
    law = prob.copy()
    np.add.at(law, alias, 1.0 - prob)
    return law / V
