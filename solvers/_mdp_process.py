"""Acceptance processes for the draft-length MDP (what the drafter sees within one round).

Public names are re-exported by :mod:`spectheory.solvers.mdp`; see its docstring for the model.

A process is a finite Markov-modulated sequence of acceptance probabilities: a hidden state
z_1 ~ ``initial``, z_{j+1} ~ ``transition[z_j]``, and the acceptance probability of draft j,
a_j = min(1, p_j(Y_j)/q_j(Y_j)), takes the value ``values[v]`` with probability
``emission[z_j, v]``. Rounds are independent (every round starts afresh from ``initial``). The drafter
observes a_1..a_k (SpecDec++'s acceptance-prediction head); with ``observed=True`` it also observes
z_1..z_k. Special cases: i.i.d. (one state), Markov-modulated easy/hard states, Markov chains on
binned acceptance values fitted from recorded traces (the state is the bin of the last a_j, so it
is observed), and position-dependent laws (the state is the position).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from spectheory._validation import SpecTheoryValueError

#: Tolerance on row sums of stochastic vectors and matrices (rows are then renormalised).
STOCHASTIC_ATOL = 1e-9

#: Trace models understood by :func:`fit_trace`.
TRACE_MODELS = ("markov", "iid", "positional")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _float_array(x, name: str, ndim: int) -> np.ndarray:
    try:
        a = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecTheoryValueError(f"{name}: not a numeric array ({exc})") from None
    if a.ndim != ndim:
        shape = {1: "(n,)", 2: "(m, n)"}[ndim]
        raise SpecTheoryValueError(f"{name}: expected an array of shape {shape}, got shape {a.shape}")
    if a.size == 0:
        raise SpecTheoryValueError(f"{name}: empty array")
    if not np.all(np.isfinite(a)):
        raise SpecTheoryValueError(f"{name}: contains NaN or inf")
    return a


def check_acceptance_values(x, name: str = "values") -> np.ndarray:
    """Acceptance probabilities as a float64 array; each must lie in [0, 1]."""
    a = _float_array(x, name, np.ndim(x) if np.ndim(x) in (1, 2) else 1)
    bad = (a < 0) | (a > 1)
    if np.any(bad):
        raise SpecTheoryValueError(
            f"{name}: acceptance probabilities must lie in [0, 1], got {a[bad].flat[0]:.6g}"
        )
    return a


def _stochastic_rows(x, name: str, shape=None) -> np.ndarray:
    a = _float_array(x, name, 2)
    if shape is not None and a.shape != shape:
        raise SpecTheoryValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if np.any(a < 0):
        raise SpecTheoryValueError(f"{name}: not stochastic: negative entry {a[a < 0].flat[0]:.6g}")
    sums = a.sum(axis=1)
    off = np.abs(sums - 1.0)
    if np.any(off > STOCHASTIC_ATOL):
        row = int(np.argmax(off))
        raise SpecTheoryValueError(
            f"{name}: not stochastic: row {row} sums to {sums[row]:.9g} (each row must sum to 1)"
        )
    return a / sums[:, None]


def _stochastic_vector(x, name: str, n: int) -> np.ndarray:
    a = _float_array(x, name, 1)
    if a.shape != (n,):
        raise SpecTheoryValueError(f"{name}: expected {n} entries, got {a.shape[0]}")
    if np.any(a < 0):
        raise SpecTheoryValueError(f"{name}: negative probability {a[a < 0][0]:.6g}")
    s = a.sum()
    if abs(s - 1.0) > STOCHASTIC_ATOL:
        raise SpecTheoryValueError(f"{name}: does not sum to 1 (sum = {s:.9g})")
    return a / s


def stationary_law(transition: np.ndarray) -> np.ndarray:
    """The unique stationary law π = πP of a stochastic matrix; raises if it is not unique."""
    P = np.asarray(transition, dtype=np.float64)
    m = P.shape[0]
    if m == 1:
        return np.ones(1)
    A = P.T - np.eye(m)
    A[-1, :] = 1.0
    b = np.zeros(m)
    b[-1] = 1.0
    try:
        pi = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        pi = None
    if pi is None or not np.all(np.isfinite(pi)) or np.any(pi < -1e-9) or np.linalg.cond(A) > 1e12:
        raise SpecTheoryValueError(
            "initial: the transition matrix has no unique stationary law (it is reducible); pass "
            "the law of the first hidden state explicitly"
        )
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


# --------------------------------------------------------------------------------------------
# the process
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AcceptanceProcess:
    """A Markov-modulated acceptance process (see the module docstring).

    Attributes
    ----------
    values : numpy.ndarray, shape (n,)
        The distinct acceptance levels, ascending, in [0, 1].
    emission : numpy.ndarray, shape (m, n)
        ``emission[z, v]`` = P(a_j = values[v] | z_j = z); rows sum to 1.
    transition : numpy.ndarray, shape (m, m)
        ``transition[z, z']`` = P(z_{j+1} = z' | z_j = z); rows sum to 1.
    initial : numpy.ndarray, shape (m,)
        Law of z_1 (each round starts afresh from it).
    observed : bool
        Whether the drafter observes the hidden state (always true in effect when m = 1, or when
        the emission supports of the states are disjoint, as for processes fitted on bins).
    label : str
        A description (how the process was built or fitted), reported by the CLI and in JSON.
    """

    values: np.ndarray
    emission: np.ndarray
    transition: np.ndarray
    initial: np.ndarray
    observed: bool = False
    label: str = ""

    def __post_init__(self):
        values = check_acceptance_values(self.values, "values")
        if values.ndim != 1:
            raise SpecTheoryValueError(f"values: expected shape (n,), got {values.shape}")
        n = values.shape[0]
        emission = _float_array(self.emission, "emission", 2)
        if emission.shape[1] != n:
            raise SpecTheoryValueError(
                f"emission: has {emission.shape[1]} columns but there are {n} acceptance values"
            )
        emission = _stochastic_rows(emission, "emission")
        m = emission.shape[0]
        transition = _stochastic_rows(self.transition, "transition", (m, m))
        if self.initial is None:
            initial = stationary_law(transition)
        else:
            initial = _stochastic_vector(self.initial, "initial", m)
        # merge duplicate values, sort ascending, drop values no state can emit
        uniq, inverse = np.unique(values, return_inverse=True)
        merged = np.zeros((m, uniq.shape[0]))
        np.add.at(merged.T, inverse, emission.T)
        keep = merged.sum(axis=0) > 0
        if not np.any(keep):  # pragma: no cover - rows sum to 1
            raise SpecTheoryValueError("emission: no acceptance value has positive probability")
        values, merged = uniq[keep], merged[:, keep]
        for name, arr in (("values", values), ("emission", merged), ("transition", transition), ("initial", initial)):
            arr = np.ascontiguousarray(arr, dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "observed", bool(self.observed) or m == 1)
        object.__setattr__(self, "label", str(self.label))

    # ---------------------------------------------------------------- properties
    @property
    def n_states(self) -> int:
        """Number of hidden states m."""
        return self.emission.shape[0]

    @property
    def n_values(self) -> int:
        """Number of distinct acceptance values n."""
        return self.values.shape[0]

    @property
    def kind(self) -> str:
        """``"iid"`` (one state), ``"markov-observed"`` or ``"markov-hidden"``."""
        if self.n_states == 1:
            return "iid"
        return "markov-observed" if self.observed else "markov-hidden"

    def key(self) -> tuple:
        """A hashable identity of the law (used to match a computed policy to its process)."""
        return (
            self.values.tobytes(), self.emission.tobytes(), self.transition.tobytes(),
            self.initial.tobytes(), self.observed,
        )

    def as_observed(self) -> AcceptanceProcess:
        """The same law of (z_j, a_j) with the hidden state observed by the drafter. The law of
        a_1, a_2, ... is unchanged, so policies that use only (k, S_k) have the same value."""
        if self.observed:
            return self
        return AcceptanceProcess(self.values, self.emission, self.transition, self.initial, True, self.label)

    # ---------------------------------------------------------------- exact moments
    def position_means(self, max_k: int) -> np.ndarray:
        """E[a_j] for j = 1..max_k, shape (max_k,).

        Examples
        --------
        >>> import spectheory as st
        >>> proc = st.solvers.mdp.iid_process([0.5, 1.0], [0.5, 0.5])
        >>> proc.position_means(3).tolist()
        [0.75, 0.75, 0.75]
        """
        mean_z = self.emission @ self.values
        law = self.initial.copy()
        out = np.empty(max_k)
        for j in range(max_k):
            out[j] = law @ mean_z
            law = law @ self.transition
        return out

    def expected_survival(self, max_k: int) -> np.ndarray:
        """E[S_k] = E[Π_{j≤k} a_j] for k = 0..max_k, shape (max_k + 1,), exactly (forward
        recursion f_k(z) = E[S_k; z_k = z], f_{k+1} = (f_k P) ∘ E[a | z]); O(max_k m²).

        Examples
        --------
        >>> import spectheory as st
        >>> st.solvers.mdp.constant_process(0.5).expected_survival(3).tolist()
        [1.0, 0.5, 0.25, 0.125]
        """
        mean_z = self.emission @ self.values
        out = np.empty(max_k + 1)
        out[0] = 1.0
        f = self.initial * mean_z
        for k in range(1, max_k + 1):
            out[k] = f.sum()
            f = (f @ self.transition) * mean_z
        return out

    def describe(self) -> dict:
        """A JSON-ready description of the process."""
        return {
            "kind": self.kind,
            "label": self.label,
            "values": self.values.tolist(),
            "emission": self.emission.tolist(),
            "transition": self.transition.tolist(),
            "initial": self.initial.tolist(),
            "observed": self.observed,
        }

    # ---------------------------------------------------------------- sampling
    def sample(self, rounds: int, length: int, seed=0):
        """Sample ``rounds`` independent rounds of ``length`` drafts.

        Returns ``(a, v, z)``: acceptance probabilities (float, shape (rounds, length)), their value
        indices into :attr:`values` and the hidden states (int, same shape).

        Examples
        --------
        >>> import spectheory as st
        >>> a, v, z = st.solvers.mdp.constant_process(0.7).sample(2, 3, seed=1)
        >>> a.tolist()
        [[0.7, 0.7, 0.7], [0.7, 0.7, 0.7]]
        """
        rng = np.random.default_rng(seed)
        z = np.empty((rounds, length), dtype=np.int64)
        v = np.empty((rounds, length), dtype=np.int64)
        cum_p = np.cumsum(self.transition, axis=1)
        cum_e = np.cumsum(self.emission, axis=1)
        cum0 = np.cumsum(self.initial)
        zc = np.minimum(np.searchsorted(cum0, rng.random(rounds), side="right"), self.n_states - 1)
        for j in range(length):
            if j > 0:
                u = rng.random(rounds)
                zc = np.minimum((u[:, None] >= cum_p[zc]).sum(axis=1), self.n_states - 1)
            u = rng.random(rounds)
            v[:, j] = np.minimum((u[:, None] >= cum_e[zc]).sum(axis=1), self.n_values - 1)
            z[:, j] = zc
        return self.values[v], v, z


# --------------------------------------------------------------------------------------------
# constructors
# --------------------------------------------------------------------------------------------
def iid_process(values, weights=None, *, label: str | None = None) -> AcceptanceProcess:
    """I.i.d. acceptance: a_1, a_2, ... independent with P(a_j = values[i]) = weights[i].

    Parameters
    ----------
    values : array_like, shape (n,)
        Acceptance probabilities in [0, 1] (duplicates are merged).
    weights : array_like, shape (n,), optional
        Their probabilities (default uniform); must sum to 1.

    Examples
    --------
    >>> import spectheory as st
    >>> proc = st.solvers.mdp.iid_process([0.9, 0.6], [0.5, 0.5])
    >>> proc.values.tolist(), proc.emission.tolist(), proc.kind
    ([0.6, 0.9], [[0.5, 0.5]], 'iid')
    """
    values = check_acceptance_values(values, "values")
    if values.ndim != 1:
        raise SpecTheoryValueError(f"values: expected shape (n,), got {values.shape}")
    n = values.shape[0]
    if weights is None:
        w = np.full(n, 1.0 / n)
    else:
        w = _stochastic_vector(weights, "weights", n)
    if label is None:
        label = "i.i.d. " + ", ".join(f"{x:g}:{p:.3g}" for x, p in zip(values, w))
    return AcceptanceProcess(values, w[None, :], np.ones((1, 1)), np.ones(1), True, label)


def constant_process(alpha: float) -> AcceptanceProcess:
    """Every draft accepted with the same probability α (Leviathan et al.'s i.i.d. model).

    Examples
    --------
    >>> import spectheory as st
    >>> st.solvers.mdp.constant_process(0.8).values.tolist()
    [0.8]
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise SpecTheoryValueError(f"alpha: must be a number in [0, 1], got {alpha!r}")
    return iid_process([float(alpha)], label=f"constant {float(alpha):g}")


def markov_process(values, emission, transition, initial=None, *, observed: bool = False,
                   label: str | None = None) -> AcceptanceProcess:
    """Markov-modulated acceptance: a hidden state (e.g. easy/hard text) evolves as a Markov chain
    along the drafted positions, and a_j is drawn from the law of the current state.

    Parameters
    ----------
    values : array_like, shape (n,)
        Acceptance levels in [0, 1].
    emission : array_like, shape (m, n)
        Row z: the law of a_j over ``values`` in state z.
    transition : array_like, shape (m, m)
        Row-stochastic transition matrix of the hidden state between consecutive drafts.
    initial : array_like, shape (m,), optional
        Law of the first draft's state (default: the stationary law of ``transition``).
    observed : bool
        Whether the drafter sees the state (default False: it sees only a_1..a_k and keeps a
        posterior belief over the state).

    Examples
    --------
    >>> import spectheory as st
    >>> proc = st.solvers.mdp.markov_process([0.3, 0.95], [[0.1, 0.9], [0.8, 0.2]],
    ...                                      [[0.9, 0.1], [0.2, 0.8]])
    >>> proc.initial.round(6).tolist(), proc.kind
    ([0.666667, 0.333333], 'markov-hidden')
    """
    if label is None:
        label = f"Markov-modulated, {np.shape(emission)[0]} {'observed' if observed else 'hidden'} states"
    return AcceptanceProcess(values, emission, transition, initial, observed, label)


def positional_process(values, emission, *, label: str | None = None) -> AcceptanceProcess:
    """Position-dependent independent acceptance: a_j ~ ``emission[min(j, L) − 1]`` (the last row
    repeats beyond position L). Modelled as an observed chain whose state is the position.

    Examples
    --------
    >>> import spectheory as st
    >>> proc = st.solvers.mdp.positional_process([0.5, 1.0], [[0.0, 1.0], [1.0, 0.0]])
    >>> proc.position_means(3).tolist()
    [1.0, 0.5, 0.5]
    """
    E = _float_array(emission, "emission", 2)
    L = E.shape[0]
    P = np.zeros((L, L))
    for i in range(L - 1):
        P[i, i + 1] = 1.0
    P[L - 1, L - 1] = 1.0
    init = np.zeros(L)
    init[0] = 1.0
    if label is None:
        label = f"positional, {L} position law{'s' if L != 1 else ''}"
    return AcceptanceProcess(values, E, P, init, True, label)


# --------------------------------------------------------------------------------------------
# lattice quantisation
# --------------------------------------------------------------------------------------------
def _check_resolution(resolution) -> float:
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Real) or not math.isfinite(resolution) \
            or not 0 < resolution <= 1:
        raise SpecTheoryValueError(f"resolution: must be a number in (0, 1], got {resolution!r}")
    return float(resolution)


def lattice_round(a, resolution: float, rounding: str = "down") -> np.ndarray:
    """Round acceptance probabilities to the lattice {exp(−δ i): i = 0, 1, ...} ∪ {0}, δ = resolution.

    ``"down"`` gives the largest lattice point ≤ a, ``"up"`` the smallest ≥ a, ``"nearest"`` the
    nearest in log scale. 0 and 1 are lattice points. On the lattice every survival product S_k is
    again a lattice point, so the MDP's state space stays small (at most one S per lattice level).

    Examples
    --------
    >>> from spectheory.solvers.mdp import lattice_round
    >>> import numpy as np
    >>> lattice_round([1.0, 0.5, 0.0], 0.1, "down").round(6).tolist()
    [1.0, 0.496585, 0.0]
    """
    delta = _check_resolution(resolution)
    if rounding not in ("down", "up", "nearest"):
        raise SpecTheoryValueError(f"rounding: expected 'down', 'up' or 'nearest', got {rounding!r}")
    a = check_acceptance_values(np.atleast_1d(np.asarray(a, dtype=np.float64)), "a")
    out = np.zeros_like(a)
    pos = a > 0
    x = -np.log(a[pos]) / delta
    near = np.rint(x)
    snap = np.abs(x - near) < 1e-9
    if rounding == "down":
        i = np.where(snap, near, np.ceil(x))
    elif rounding == "up":
        i = np.where(snap, near, np.floor(x))
    else:
        i = near
    out[pos] = np.exp(-delta * i)
    return out


def quantise(process: AcceptanceProcess, resolution: float, rounding: str = "down") -> AcceptanceProcess:
    """The process with every acceptance value rounded to the lattice exp(−δ i) (:func:`lattice_round`).

    Rounding down gives a process whose optimal tokens per unit cost is a lower bound on the
    original's (a pathwise coupling: every S_k is smaller), rounding up an upper bound.

    Examples
    --------
    >>> import spectheory as st
    >>> mdp = st.solvers.mdp
    >>> mdp.quantise(mdp.iid_process([0.61, 0.62]), 0.1).values.round(4).tolist()
    [0.6065]
    """
    new_values = lattice_round(process.values, resolution, rounding)
    label = f"{process.label}; values rounded {rounding} to the lattice exp(-{resolution:g} i)"
    return AcceptanceProcess(new_values, process.emission, process.transition, process.initial,
                             process.observed, label)


# --------------------------------------------------------------------------------------------
# fitting from traces
# --------------------------------------------------------------------------------------------
def _trace_rows(trace) -> list[np.ndarray]:
    """Rows of a trace: a 1-D array (one sequence), a 2-D array (one row per round, NaN-padded at
    the end) or a list of 1-D sequences."""
    if isinstance(trace, (list, tuple)) and trace and all(np.ndim(r) == 1 for r in trace) \
            and len({len(r) for r in trace}) > 1:
        rows = [np.asarray(r, dtype=np.float64) for r in trace]
    else:
        try:
            arr = np.asarray(trace, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SpecTheoryValueError(f"trace: not a numeric array ({exc})") from None
        if arr.ndim == 1:
            rows = [arr]
        elif arr.ndim == 2:
            rows = list(arr)
        else:
            raise SpecTheoryValueError(f"trace: expected a 1-D sequence or a 2-D array (one row per round), got shape {arr.shape}")
    out = []
    for r_i, r in enumerate(rows):
        nan = np.isnan(r)
        if np.any(nan):
            first = int(np.argmax(nan))
            if not np.all(nan[first:]):
                raise SpecTheoryValueError(
                    f"trace: row {r_i} has a value after a NaN; NaN only pads the end of a row"
                )
            r = r[:first]
        if np.any(~np.isfinite(r)):
            raise SpecTheoryValueError(f"trace: row {r_i} contains inf")
        bad = (r < 0) | (r > 1)
        if np.any(bad):
            raise SpecTheoryValueError(
                f"trace: acceptance probabilities must lie in [0, 1], got {r[bad][0]:.6g} in row {r_i}"
            )
        if r.size:
            out.append(r)
    if not out:
        raise SpecTheoryValueError("trace: holds no acceptance probabilities")
    return out


def _coarse_bins(values: np.ndarray, counts: np.ndarray, n_bins: int) -> np.ndarray:
    """Assign each distinct value (ascending) to one of at most ``n_bins`` contiguous bins of about
    equal probability mass; returns the bin index of every value."""
    n_bins = max(1, min(n_bins, values.shape[0]))
    cum = np.cumsum(counts) / counts.sum()
    # bin of value i: how many of the quantiles 1/B, ..., (B-1)/B lie strictly below its mid-mass
    mid = cum - counts / counts.sum() / 2
    edges = np.arange(1, n_bins) / n_bins
    bins = np.searchsorted(edges, mid, side="right")
    # relabel to 0..B'-1 (empty bins dropped)
    _, bins = np.unique(bins, return_inverse=True)
    return bins


def fit_trace(trace, *, model: str = "markov", n_bins: int = 8, resolution: float | None = 0.02,
              rounding: str = "down", initial: str = "auto") -> AcceptanceProcess:
    """Fit an acceptance process to recorded acceptance probabilities a_j.

    Parameters
    ----------
    trace : array_like
        A 2-D array with one row per round (the a_j of its drafts, in order; shorter rounds padded
        with NaN at the end), a list of 1-D sequences, or one 1-D sequence (consecutive positions of
        one long chain, e.g. the per-position acceptance of a replay over recorded logits).
    model : {"markov", "iid", "positional"}
        ``"markov"``: the recorded values are split into ``n_bins`` contiguous bins of about equal
        mass (fewer when values repeat); the bin of a_j is the (observed) state, with transitions
        counted between consecutive entries of a row and the law of the (rounded) a_j within its bin
        as the emission; a state never seen followed by another gets the overall state frequencies
        as its row. Bins are taken before rounding, so fits rounded down and up share the state
        chain and differ only in the values. ``"iid"``: the empirical law of all
        entries. ``"positional"``: the empirical law of column j for position j (2-D input).
    n_bins : int
        Number of Markov states (``"markov"`` only).
    resolution : float or None
        δ of the value lattice exp(−δ i) (:func:`lattice_round`); None keeps the values as recorded
        (exact, but every distinct value multiplies the number of survival products).
    rounding : {"down", "up", "nearest"}
        How values are rounded to the lattice: ``"down"`` gives a process whose optimum is a lower
        bound on the unrounded fit's (same model, resolution=None), ``"up"`` an upper bound.
    initial : {"auto", "first", "marginal"}
        Law of the first draft's state: of the first entries of the rows (``"first"``), of all
        entries (``"marginal"``), or ``"first"`` when there are at least 20 rows (``"auto"``).

    Examples
    --------
    >>> import numpy as np, spectheory as st
    >>> trace = np.array([[1.0, 0.5, np.nan], [0.5, 0.5, 1.0]])
    >>> proc = st.solvers.mdp.fit_trace(trace, model="iid", resolution=None)
    >>> proc.values.tolist(), proc.emission.round(3).tolist()
    ([0.5, 1.0], [[0.6, 0.4]])
    """
    if model not in TRACE_MODELS:
        raise SpecTheoryValueError(f"model: expected one of {', '.join(TRACE_MODELS)}, got {model!r}")
    if initial not in ("auto", "first", "marginal"):
        raise SpecTheoryValueError(f"initial: expected 'auto', 'first' or 'marginal', got {initial!r}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise SpecTheoryValueError(f"n_bins: must be an integer >= 1, got {n_bins!r}")
    raw_rows = _trace_rows(trace)
    if resolution is not None:
        rows = [lattice_round(r, resolution, rounding) for r in raw_rows]
        how = f"values rounded {rounding} to the lattice exp(-{resolution:g} i)"
    else:
        rows = raw_rows
        how = "values as recorded"
    flat = np.concatenate(rows)
    values, inverse_flat = np.unique(flat, return_inverse=True)
    counts = np.bincount(inverse_flat, minlength=values.shape[0]).astype(np.float64)
    n_pos, n_rows = flat.shape[0], len(rows)
    where = f"{n_pos} positions in {n_rows} row{'s' if n_rows != 1 else ''}"
    idx_rows = []
    start = 0
    for r in rows:
        idx_rows.append(inverse_flat[start:start + r.shape[0]])
        start += r.shape[0]

    if model == "iid":
        return iid_process(values, counts / counts.sum(), label=f"i.i.d. fitted from {where}; {how}")

    if model == "positional":
        L = max(r.shape[0] for r in idx_rows)
        E = np.zeros((L, values.shape[0]))
        for r in idx_rows:
            E[np.arange(r.shape[0]), r] += 1.0
        for j in range(L):  # every position up to L has data: rows are NaN-padded at the end only
            E[j] /= E[j].sum()
        return positional_process(values, E, label=f"positional ({L} positions) fitted from {where}; {how}")

    # bins of the recorded (unrounded) values: fits rounded down and up then share the state chain
    # (P, initial, the state of every record) and differ only in the values, a pathwise coupling
    raw_flat = np.concatenate(raw_rows)
    raw_values, raw_inverse = np.unique(raw_flat, return_inverse=True)
    raw_counts = np.bincount(raw_inverse, minlength=raw_values.shape[0]).astype(np.float64)
    record_bin = _coarse_bins(raw_values, raw_counts, n_bins)[raw_inverse]
    m = int(record_bin.max()) + 1
    E = np.zeros((m, values.shape[0]))
    np.add.at(E, (record_bin, inverse_flat), 1.0)
    E /= E.sum(axis=1, keepdims=True)
    C = np.zeros((m, m))
    first = np.zeros(m)
    start = 0
    for r in rows:
        zb = record_bin[start:start + r.shape[0]]
        start += r.shape[0]
        first[zb[0]] += 1.0
        if zb.shape[0] > 1:
            np.add.at(C, (zb[:-1], zb[1:]), 1.0)
    marginal = np.bincount(record_bin, minlength=m).astype(np.float64)
    marginal /= marginal.sum()
    rowsum = C.sum(axis=1)
    P = np.where(rowsum[:, None] > 0, C / np.where(rowsum > 0, rowsum, 1.0)[:, None], marginal[None, :])
    use_first = initial == "first" or (initial == "auto" and n_rows >= 20)
    init = first / first.sum() if use_first else marginal
    label = (f"Markov on {m} bins of a (observed) fitted from {where}; {how}; initial law from "
             f"{'first entries of rows' if use_first else 'all entries'}")
    return AcceptanceProcess(values, E, P, init, True, label)
