r"""How many tokens to draft: Leviathan's closed forms and the exact draft-length MDP.

Notation (REFERENCE §1, §4): p is the target, q the draft. Draft j of a round, Y_j ~ q_j, is accepted
with probability a_j = min(1, p_j(Y_j)/q_j(Y_j)), independently given the a's, and acceptance stops at
the first rejection. The survival S_k = Π_{j≤k} a_j is the probability that drafts 1..k are all
accepted, and 1 − S_k the probability that some draft so far will be rejected. A round with K drafts
emits the accepted prefix plus one (correction or bonus) token, so

    E[tokens | a_1..a_K] = 1 + Σ_{i≤K} S_i,

and costs K·c_draft + c_target(K), c_target(K) = c0 + c1·K (:class:`Costs`; c1 = 0 is SpecDec++'s and
Leviathan's constant-cost assumption). A *policy* chooses K adaptively: after k drafts it continues or
stops using what the drafter has seen — a_1..a_k (SpecDec++'s acceptance-prediction head estimates
them) and, for observed processes, the hidden states z_1..z_k — never the verifier's coins. Rounds are
independent (each starts afresh from the process's initial law), so by the renewal–reward theorem the
long-run tokens per unit cost of a stationary policy π is λ(π) = E[T_π] / E[C_π]. The **speedup** of
π is λ(π)·c0: tokens per unit cost against one target call per token without speculation (for
c0 = 1, c1 = 0 and fixed K this is Leviathan et al.'s walltime improvement factor).

Closed forms (Leviathan et al. 2023, arXiv 2211.17192)
    :func:`expected_tokens` (1 − α^{γ+1})/(1 − α), :func:`speedup`, :func:`optimal_gamma` (integer
    search), :func:`expected_tokens_positional` 1 + Σ_{i≤K} Π_{j≤i} α_j.

Acceptance processes
    :func:`iid_process`, :func:`constant_process`, :func:`markov_process` (hidden easy/hard state,
    observed or not), :func:`positional_process`, :func:`fit_trace` (recorded a_j: i.i.d., Markov on
    bins, positional), :func:`quantise` / :func:`lattice_round` (the value lattice exp(−δ i)).

Policies and their evaluation
    :class:`Costs`; :func:`fixed_k`; :func:`threshold_policy` (SpecDec++, arXiv 2405.19715: stop when
    1 − S_k > h); :func:`evaluate` (exact, or Monte Carlo with standard errors).

The exact optimum
    :func:`optimal_policy`: Dinkelbach (1967) iteration on λ; each step is optimal stopping solved by
    backward induction over (k, S_k, information state). State: after k drafts the future depends
    on the past only through S_k (future tokens are S_k times products of future a's) and the
    information state (the observed hidden state z_k, or the posterior of z_{k+1} for hidden
    processes), so these states are sufficient. Discretisation: none for finite supports — the
    survival values are the finitely many distinct products (equal products merged to 1e-11); on
    the lattice exp(−δ i) they are lattice points, at most one per level. Optional approximations,
    each with a stated direction: ``s_floor`` (products below it become 0: a lower bound; or
    ``s_floor``: an upper bound), lattice rounding of the values (down: lower bound, up: upper bound,
    by coupling S_k pathwise), and a belief grid for hidden processes (an upper bound, the value
    being convex in the belief; Lovejoy 1991).

Structure (proved here; the tests check it against brute force):

* The value of continuing at (k, S, i) is max over future rules π of S·R_π(i) − λ C_π(i) (future
  S's are S times products of future a's), convex and non-decreasing in S: **for each (k, i) the
  optimal rule is a threshold in S_k** — stop iff S_k < s*_k(i).
* Continuing can add at most S_k tokens per draft at cost c_draft + c1, so stopping is optimal
  whenever S_k < λ*(c_draft + c1), i.e. 1 − S_k > 1 − λ*(c_draft + c1). Since λ* ≥ 1/c0, every
  optimal threshold h satisfies h ≤ 1 − λ*(c_draft + c1) < c0/(c0 + c_draft + c1) = SpecDec++'s
  Δ = 0 value: that value is an *upper* bound on the optimal threshold under this objective.
* i.i.d. acceptance is a monotone stopping problem (E[S_{k+1} − λ step | S_k] = S_k E[a] − λ step
  decreases along the round): the one-step look-ahead rule is optimal, **stop iff S_k E[a] ≤
  λ*(c_draft + c1)**, a k-independent threshold — SpecDec++'s rule with the right h is then exactly
  optimal (up to the option K = 0). With Markov acceptance the threshold depends on k and on the
  state, and the best single h can be strictly worse (:func:`compare_policies` measures by how much).

Trees: :mod:`spectheory.solvers.tree_dp` (Sequoia, arXiv 2402.12374).

Examples
--------
>>> import spectheory as st
>>> mdp = st.solvers.mdp
>>> proc = mdp.iid_process([0.4, 0.9, 1.0], [0.2, 0.5, 0.3])
>>> res = mdp.optimal_policy(proc, c_draft=0.05, c_target=1.0, max_k=16)
>>> round(res.speedup, 4), res.is_threshold
(3.645, True)
"""

from __future__ import annotations

import numbers

import numpy as np

from spectheory._validation import SpecTheoryValueError

from ._mdp_model import SimplexGrid, compile_model
from ._mdp_plot import plot_policy
from ._mdp_policy import (
    Costs,
    FixedK,
    TabularPolicy,
    ThresholdPolicy,
    fixed_k,
    threshold_policy,
)
from ._mdp_process import (
    TRACE_MODELS,
    AcceptanceProcess,
    constant_process,
    fit_trace,
    iid_process,
    lattice_round,
    markov_process,
    positional_process,
    quantise,
    stationary_law,
)
from ._mdp_solve import (
    DEFAULT_MAX_K,
    ComparisonRow,
    FixedKSearch,
    MDPComparison,
    OptimalPolicy,
    PolicyEvaluation,
    ThresholdSearch,
    best_fixed_k,
    best_threshold,
    compare_policies,
    evaluate,
    optimal_policy,
)

__all__ = [
    "DEFAULT_MAX_K",
    "TRACE_MODELS",
    "AcceptanceProcess",
    "ComparisonRow",
    "Costs",
    "FixedK",
    "FixedKSearch",
    "MDPComparison",
    "OptimalPolicy",
    "PolicyEvaluation",
    "SimplexGrid",
    "TabularPolicy",
    "ThresholdPolicy",
    "ThresholdSearch",
    "best_fixed_k",
    "best_threshold",
    "compare_policies",
    "compile_model",
    "constant_process",
    "evaluate",
    "expected_tokens",
    "expected_tokens_positional",
    "fit_trace",
    "fixed_k",
    "iid_process",
    "lattice_round",
    "markov_process",
    "optimal_gamma",
    "optimal_policy",
    "plot_policy",
    "positional_process",
    "quantise",
    "speedup",
    "stationary_law",
    "threshold_policy",
]


# --------------------------------------------------------------------------------------------
# Leviathan et al.'s closed forms
# --------------------------------------------------------------------------------------------
def _alpha(alpha, name: str = "alpha") -> np.ndarray:
    try:
        a = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecTheoryValueError(f"{name}: not a number or numeric array: {alpha!r}") from None
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise SpecTheoryValueError(f"{name}: acceptance probabilities must lie in [0, 1], got {alpha!r}")
    return a


def _gamma(gamma) -> np.ndarray:
    g = np.asarray(gamma)
    if g.dtype == bool or not (np.issubdtype(g.dtype, np.integer) or
                               (np.issubdtype(g.dtype, np.floating) and np.all(np.isfinite(g)) and np.all(g == np.round(g)))):
        raise SpecTheoryValueError(f"gamma: must be an integer >= 0 (or an array of them), got {gamma!r}")
    g = g.astype(np.int64)
    if np.any(g < 0):
        raise SpecTheoryValueError(f"gamma: must be >= 0, got {gamma!r}")
    return g


def _c(c) -> np.ndarray:
    try:
        a = np.asarray(c, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecTheoryValueError(f"c: not a number: {c!r}") from None
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise SpecTheoryValueError(f"c: the cost ratio c_draft/c_target must be > 0, got {c!r}")
    return a


def _out(x):
    return float(x) if np.ndim(x) == 0 else x


def expected_tokens(alpha, gamma):
    """Expected tokens per round with γ drafts and i.i.d. acceptance α (Leviathan et al. 2023,
    arXiv 2211.17192, eq. (1)):

        E[L] = Σ_{i=0}^{γ} α^i = (1 − α^{γ+1}) / (1 − α)   (= γ + 1 at α = 1),

    the correction/bonus token included. Evaluated as −expm1((γ+1) log α)/(1 − α), accurate near
    α = 1; O(1) per entry, broadcasting over arrays.

    Parameters
    ----------
    alpha : float or array_like
        Acceptance probability per draft, in [0, 1].
    gamma : int or array_like of int
        Number of drafts γ ≥ 0.

    Examples
    --------
    >>> from spectheory.solvers.mdp import expected_tokens
    >>> expected_tokens(0.8, 4), expected_tokens(1.0, 4), expected_tokens(0.0, 4)
    (3.3616, 5.0, 1.0)
    """
    a = _alpha(alpha)
    g = _gamma(gamma)
    a, g = np.broadcast_arrays(a, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = -np.expm1((g + 1) * np.log(a)) / (1.0 - a)
    val = np.where(a == 1.0, g + 1.0, val)
    val = np.where(a == 0.0, 1.0, val)
    return _out(val)


def expected_tokens_positional(alphas, k=None):
    """Expected tokens per round with position-dependent acceptance rates α_1, α_2, ...:

        E[L](K) = 1 + Σ_{i=1}^{K} Π_{j≤i} α_j

    (exact when the a_j are independent with means α_j; in general replace the products by
    E[S_i]). Returns E[L](K) for K = 0..len(alphas) (array), or for one ``k``. O(len(alphas)).

    Examples
    --------
    >>> from spectheory.solvers.mdp import expected_tokens_positional
    >>> expected_tokens_positional([0.9, 0.5, 0.5]).round(4).tolist()
    [1.0, 1.9, 2.35, 2.575]
    >>> round(expected_tokens_positional([0.9, 0.5, 0.5], k=2), 4)
    2.35
    """
    a = _alpha(alphas, "alphas")
    if a.ndim != 1:
        raise SpecTheoryValueError(f"alphas: expected a 1-D array of per-position rates, got shape {a.shape}")
    out = np.concatenate(([1.0], 1.0 + np.cumsum(np.cumprod(a))))
    if k is None:
        return out
    k = int(_gamma(k))
    if k > a.shape[0]:
        raise SpecTheoryValueError(f"k: at most len(alphas) = {a.shape[0]}, got {k}")
    return float(out[k])


def speedup(alpha, gamma, c):
    """Leviathan et al.'s expected walltime improvement with γ drafts (Theorem 3.8):

        S(γ) = (1 − α^{γ+1}) / ((1 − α)(γ c + 1)),  c = c_draft / c_target,

    i.e. tokens per unit cost against one target call per token; S(0) = 1. O(1), broadcasting.

    Examples
    --------
    >>> from spectheory.solvers.mdp import speedup
    >>> round(speedup(0.8, 6, 0.1), 6), speedup(0.8, 0, 0.1)
    (2.46964, 1.0)
    """
    g = _gamma(gamma)
    cc = _c(c)
    return _out(np.asarray(expected_tokens(alpha, g)) / (g * cc + 1.0))


def optimal_gamma(alpha, c, *, max_gamma: int = 1000) -> int:
    """The draft count maximising Leviathan's :func:`speedup`: integer search over γ = 0..max_gamma.

    E[L](γ) is concave increasing and the cost γc + 1 affine, so S(γ) is quasi-concave: the search
    stops at the first γ where S decreases (O(γ*)). Returns the smallest maximiser; 0 (no
    speculation) when no γ ≥ 1 helps, which happens exactly when α ≤ c; ``max_gamma`` when α = 1.

    Examples
    --------
    >>> from spectheory.solvers.mdp import optimal_gamma
    >>> optimal_gamma(0.8, 0.1), optimal_gamma(0.6, 0.05), optimal_gamma(0.1, 0.2)
    (6, 4, 0)
    """
    a = float(_alpha(alpha))
    cc = float(_c(c))
    if isinstance(max_gamma, bool) or not isinstance(max_gamma, numbers.Integral) or max_gamma < 0:
        raise SpecTheoryValueError(f"max_gamma: must be an integer >= 0, got {max_gamma!r}")
    best_g, best = 0, 1.0
    prev = 1.0
    for g in range(1, int(max_gamma) + 1):
        s = speedup(a, g, cc)
        if s > best:
            best_g, best = g, s
        if s < prev:
            break
        prev = s
    return best_g
