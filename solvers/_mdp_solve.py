"""Optimal drafting policies, exact and Monte Carlo evaluation, and the policy comparison
(re-exported by :mod:`spectheory.solvers.mdp`; the mathematics is stated there)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from spectheory._validation import SpecTheoryValueError
from spectheory._validation import check_int as check_count

from ._mdp_model import MAX_K, Model, backward, compile_model, forward, summarize
from ._mdp_policy import (
    Costs,
    FixedK,
    TabularPolicy,
    ThresholdPolicy,
    as_costs,
    check_int,
)
from ._mdp_process import AcceptanceProcess

#: Default cap on drafts per round (SpecDec++'s max_k).
DEFAULT_MAX_K = 20


def _check_process(process) -> AcceptanceProcess:
    if not isinstance(process, AcceptanceProcess):
        raise SpecTheoryValueError(
            f"process: expected an AcceptanceProcess (iid_process, markov_process, fit_trace, ...), "
            f"got {type(process).__name__}"
        )
    return process


def _check_max_k(max_k) -> int:
    return check_count(DEFAULT_MAX_K if max_k is None else max_k, "max_k", minimum=1, maximum=MAX_K,
                      why="the model holds max_k + 1 layers")


def _split_costs_max_k(c_draft, c_target, max_k):
    """Support ``f(process, costs, max_k)``: a Costs object followed by an integer."""
    if isinstance(c_draft, Costs) and c_target is not None and max_k is None \
            and isinstance(c_target, numbers.Integral) and not isinstance(c_target, bool):
        return c_draft, None, int(c_target)
    return c_draft, c_target, max_k


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PolicyEvaluation:
    """Per-round statistics of a policy on a process.

    ``tokens_per_round`` = E[accepted drafts + 1], ``drafts_per_round`` = E[K], ``cost_per_round`` =
    c0 + (c_draft + c1)·E[K], ``tokens_per_cost`` = their ratio (long-run tokens per unit cost, by the
    renewal–reward theorem), ``speedup`` = tokens_per_cost · c0 (against one target call per token).
    For ``method="mc"`` the ``stderr_*`` fields are standard errors; for exact results they are 0.
    ``draft_length_pmf[k]`` = P(K = k) (exact only).
    """

    policy: str
    method: str
    tokens_per_round: float
    drafts_per_round: float
    cost_per_round: float
    tokens_per_cost: float
    speedup: float
    stderr_tokens: float = 0.0
    stderr_drafts: float = 0.0
    stderr_tokens_per_cost: float = 0.0
    rounds: int = 0
    draft_length_pmf: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("policy", "method", "tokens_per_round", "drafts_per_round",
                                           "cost_per_round", "tokens_per_cost", "speedup")}
        if self.method == "mc":
            d.update(stderr_tokens=self.stderr_tokens, stderr_drafts=self.stderr_drafts,
                     stderr_tokens_per_cost=self.stderr_tokens_per_cost, rounds=self.rounds)
        return d


@dataclass(frozen=True, eq=False)
class OptimalPolicy:
    """The policy maximising long-run tokens per unit cost (see :func:`optimal_policy`).

    Attributes
    ----------
    policy : TabularPolicy
        The decision rule on the compiled state space (``policy.conts[k][s, i]``).
    tokens_per_round, drafts_per_round, cost_per_round, tokens_per_cost, speedup : float
        Its exact per-round statistics on the compiled model.
    upper_bound : float
        Dinkelbach certificate: no policy of the model has tokens per unit cost above this.
    iterations : int
        Dinkelbach iterations (backward passes).
    lambdas : tuple of float
        The ratio λ after each iteration.
    drafts_first : bool
        Whether the policy drafts at all (False: no speculation is optimal).
    is_threshold : bool
        Whether, at every layer k ≥ max(1, min_k) and information state, the reachable states that
        continue are exactly those with S_k at or above a threshold s*_k(i).
    thresholds : tuple of numpy.ndarray
        ``thresholds[k][i]`` = s*_k(i), the smallest reachable S_k that continues (inf: stop
        everywhere; NaN: no reachable state). Meaningful as a rule when ``is_threshold``.
    h_bounds : tuple
        Per layer k, when the decision does not depend on the information state: ``(lo, hi)`` such
        that SpecDec++'s rule "stop when 1 − S_k > h" reproduces it for every h in [lo, hi);
        otherwise None.
    draft_length_pmf : numpy.ndarray
        P(K = k), k = 0..max_k.
    n_states, n_reachable, n_transitions : int
        Size of the compiled model (all states; states reachable when always drafting; transition
        entries).
    exact : bool
        Whether the model is the process itself (no survival floor, no belief grid).
    discretisation : str
        What was discretised, in words.
    """

    policy: TabularPolicy = field(repr=False)
    costs: Costs
    max_k: int
    min_k: int
    tokens_per_round: float
    drafts_per_round: float
    cost_per_round: float
    tokens_per_cost: float
    speedup: float
    upper_bound: float
    iterations: int
    lambdas: tuple = field(repr=False)
    drafts_first: bool = True
    is_threshold: bool = True
    thresholds: tuple = field(default=(), repr=False)
    h_bounds: tuple = field(default=(), repr=False)
    draft_length_pmf: np.ndarray | None = field(default=None, repr=False)
    n_states: int = 0
    n_reachable: int = 0
    n_transitions: int = 0
    exact: bool = True
    discretisation: str = ""

    def as_dict(self) -> dict:
        def clean(x):
            x = float(x)
            return None if math.isnan(x) else (x if math.isfinite(x) else ("inf" if x > 0 else "-inf"))

        return {
            "tokens_per_round": self.tokens_per_round,
            "drafts_per_round": self.drafts_per_round,
            "cost_per_round": self.cost_per_round,
            "tokens_per_cost": self.tokens_per_cost,
            "speedup": self.speedup,
            "upper_bound": self.upper_bound,
            "iterations": self.iterations,
            "drafts_first": self.drafts_first,
            "is_threshold": self.is_threshold,
            "survival_thresholds": [[clean(x) for x in t] for t in self.thresholds],
            "h_bounds": [None if b is None else [clean(b[0]), clean(b[1])] for b in self.h_bounds],
            "draft_length_pmf": [float(x) for x in self.draft_length_pmf],
            "n_states": self.n_states,
            "n_reachable": self.n_reachable,
            "n_transitions": self.n_transitions,
            "exact": self.exact,
            "discretisation": self.discretisation,
            "max_k": self.max_k,
            "min_k": self.min_k,
        }


# --------------------------------------------------------------------------------------------
# optimal policy
# --------------------------------------------------------------------------------------------
def _threshold_structure(model: Model, conts, min_k: int):
    """Threshold analysis of continue masks over structurally reachable states."""
    K = model.max_k
    is_thr = True
    thresholds, h_bounds = [], []
    for k in range(K + 1):
        L = model.layers[k]
        reach = model.reach[k] > 0
        t = np.full(L.n_info, np.nan)
        if k == K:
            thresholds.append(np.full(L.n_info, np.inf))
            h_bounds.append(None)
            continue
        decisions = []
        for i in range(L.n_info):
            r = np.flatnonzero(reach[:, i])
            if r.size == 0:
                continue
            c = conts[k][r, i]  # ascending S
            if k >= max(1, min_k) and np.any(c[:-1] & ~c[1:]):
                is_thr = False
            t[i] = L.S[r][np.argmax(c)] if np.any(c) else np.inf
            decisions.append(i)
        thresholds.append(t)
        # info-independent decision per S value? then the h interval of SpecDec++'s rule
        if k < max(1, min_k) or not decisions:
            h_bounds.append(None)
            continue
        has = reach.any(axis=1)
        any_c = (conts[k] & reach).any(axis=1)
        all_c = (conts[k] | ~reach).all(axis=1)
        if np.any(any_c[has] != all_c[has]) or np.any(any_c[has][:-1] & ~any_c[has][1:]):
            h_bounds.append(None)
            continue
        keys = L.S[has]
        cont_by_s = any_c[has]
        go = keys[cont_by_s]
        stop = keys[~cont_by_s]
        lo = 1.0 - go.min() if go.size else 0.0        # need 1 − s ≤ h for every continuing s
        hi = 1.0 - stop.max() if stop.size else 1.0    # need 1 − s > h for every stopping s
        h_bounds.append((max(lo, 0.0), min(hi, 1.0)))
    return is_thr, tuple(thresholds), tuple(h_bounds)


def optimal_policy(process, c_draft=None, c_target=None, max_k=None, *, costs=None, min_k: int = 0,
                   s_floor: float = 0.0, floor_mode: str = "down", belief: str = "auto",
                   belief_grid: int | None = None, tol: float = 1e-12, max_iter: int = 100,
                   model: Model | None = None) -> OptimalPolicy:
    """The drafting policy that maximises long-run tokens per unit cost (exact optimal stopping).

    Maximises λ(π) = E[tokens per round] / E[cost per round] over all stopping rules π that use what
    the drafter observes (a_1..a_k, and z_1..z_k for observed processes), with at least ``min_k``
    and at most ``max_k`` drafts. By the renewal–reward theorem λ(π) is the long-run tokens per unit
    cost. Dinkelbach (1967): λ* is the root of J(λ) = max_π E[T_π] − λ E[C_π]; starting from
    λ_0 = 1/c0 (no speculation) iterate λ_{n+1} = λ(π_n), π_n the maximiser at λ_n, until no
    improvement (superlinear; a few iterations). J(λ) is an optimal-stopping problem solved by
    backward induction over the layers (k, S_k, information state) of :mod:`._mdp_model`:

        Q_k(S, i) = E[S_{k+1} | S, i] + E[W_{k+1}(S_{k+1}, i')] − λ (c_draft + c1),
        W_k = max(Q_k, 0) (continue iff Q_k > 0),  W_{max_k} = 0,

    using E[tokens | a_1..a_K] = 1 + Σ_{i≤K} S_i (Leviathan et al.'s E[L] for position-dependent
    rates) and cost c0 + (c_draft + c1)K. Cost: one backward pass per iteration, see the model.

    Parameters
    ----------
    process : AcceptanceProcess
    c_draft : float or Costs
        Cost of one draft step; or a :class:`Costs` (then ``c_target`` is omitted, and a third
        positional integer is ``max_k``: ``optimal_policy(process, costs, max_k)``).
    c_target : float or (float, float), optional
        c_target(K) = c0 + c1·K: a number c0 (c1 = 0), or the pair (c0, c1); default c0 = 1.
    max_k : int
        At most this many drafts per round (default 20).
    min_k : int
        At least this many drafts (default 0: the policy may decline to speculate).
    s_floor, floor_mode, belief, belief_grid
        Discretisation of the model (see :func:`spectheory.solvers._mdp_model.compile_model`);
        the defaults are exact for finite supports (hidden processes switch to a belief grid only
        when the exact posteriors exceed 512 per layer).

    Returns
    -------
    OptimalPolicy

    Raises
    ------
    SpecTheoryValueError
        Costs ≤ 0 (c1 < 0), max_k < 1, min_k outside [0, max_k], a state space over the size limits.

    Examples
    --------
    >>> import spectheory as st
    >>> mdp = st.solvers.mdp
    >>> res = mdp.optimal_policy(mdp.iid_process([0.3, 0.95], [0.3, 0.7]), 0.1, 1.0, max_k=10)
    >>> round(res.speedup, 4), res.is_threshold, res.thresholds[2].round(4).tolist()
    (2.4289, True, [0.9025])
    """
    process = _check_process(process)
    c_draft, c_target, max_k = _split_costs_max_k(c_draft, c_target, max_k)
    costs = as_costs(c_draft, c_target, costs)
    max_k = _check_max_k(max_k)
    min_k = check_int(min_k, "min_k", 0)
    if min_k > max_k:
        raise SpecTheoryValueError(f"min_k and max_k: need min_k <= max_k, got min_k = {min_k} > max_k = {max_k}")
    if model is None:
        model = compile_model(process, max_k, s_floor=s_floor, floor_mode=floor_mode, belief=belief,
                              belief_grid=belief_grid)
    elif model.max_k != max_k or (model.process is not process and model.process.key() != process.key()):
        raise SpecTheoryValueError("model: compiled for another process or max_k")
    c0, step = costs.c0, costs.step
    if min_k == 0:
        lam = 1.0 / c0
    else:
        es = process.expected_survival(min_k)
        lam = (1.0 + es[1:].sum()) / costs.round_cost(min_k)
    lambdas = []
    best = None
    J = math.inf
    lam_used = lam
    for it in range(max_iter):
        tol_abs = tol * max(1.0, lam * step)
        conts, Qs, W0, T0, D0 = backward(model, lam, step, min_k, tol_abs)
        J = 1.0 + W0 - lam * c0
        lam_used = lam
        ratio = (1.0 + T0) / (c0 + step * D0)
        lambdas.append(ratio)
        if best is None or ratio > best[0]:
            best = (ratio, conts, Qs)
        if it > 0 and ratio <= lam * (1.0 + 1e-14):
            break
        lam = ratio if it == 0 else max(ratio, lam)
    else:  # pragma: no cover - Dinkelbach converges in a handful of steps
        raise SpecTheoryValueError(f"optimal_policy: Dinkelbach did not converge in {max_iter} iterations")
    ratio, conts, Qs = best
    mu = forward(model, conts)
    tokens, drafts, pmf = summarize(model, mu)
    min_cost = costs.round_cost(min_k)
    upper = max(ratio, lam_used + max(J, 0.0) / min_cost)
    is_thr, thresholds, h_bounds = _threshold_structure(model, conts, min_k)
    policy = TabularPolicy(model, tuple(conts), tuple(Qs), min_k)
    cost = c0 + step * drafts
    return OptimalPolicy(
        policy=policy, costs=costs, max_k=max_k, min_k=min_k,
        tokens_per_round=tokens, drafts_per_round=drafts, cost_per_round=cost,
        tokens_per_cost=tokens / cost, speedup=tokens / cost * c0, upper_bound=upper,
        iterations=len(lambdas), lambdas=tuple(lambdas), drafts_first=bool(conts[0][0, 0]),
        is_threshold=is_thr, thresholds=thresholds, h_bounds=h_bounds, draft_length_pmf=pmf,
        n_states=model.n_states, n_reachable=model.n_reachable, n_transitions=model.n_transitions,
        exact=model.exact, discretisation=model.discretisation(),
    )


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------
def _policy_masks(policy, model: Model):
    conts = []
    for k in range(model.max_k + 1):
        L = model.layers[k]
        c = policy.continues(k, L.S)
        conts.append(np.repeat(np.asarray(c, dtype=bool)[:, None], L.n_info, axis=1))
    return conts


def _observed_model(process: AcceptanceProcess, max_k: int, s_floor: float, model: Model | None) -> Model:
    """The model of ``process`` with its hidden state observed (reusing ``model`` when it is one)."""
    if model is not None and model.max_k == max_k and model.belief == "observed" and model.s_floor == s_floor \
            and model.floor_mode == "down" and model.process.key() == process.as_observed().key():
        return model
    return compile_model(process.as_observed(), max_k, s_floor=s_floor)


def _exact(policy, process: AcceptanceProcess, costs: Costs, s_floor: float, model: Model | None = None) -> PolicyEvaluation:
    if isinstance(policy, FixedK):
        es = process.expected_survival(policy.k)
        tokens, drafts = 1.0 + float(es[1:].sum()), float(policy.k)
        pmf = np.zeros(policy.k + 1)
        pmf[policy.k] = 1.0
    elif isinstance(policy, ThresholdPolicy):
        model = _observed_model(process, policy.max_k, s_floor, model)
        tokens, drafts, pmf = summarize(model, forward(model, _policy_masks(policy, model)))
    else:
        model = policy.model
        if model.process is not process and model.process.key() != process.key():
            raise SpecTheoryValueError(
                "policy: an optimal (tabular) policy can only be evaluated on the process it was computed for"
            )
        tokens, drafts, pmf = summarize(model, forward(model, list(policy.conts)))
    cost = costs.round_cost(drafts)
    return PolicyEvaluation(str(policy), "exact", tokens, drafts, cost, tokens / cost, tokens / cost * costs.c0,
                            draft_length_pmf=pmf)


def _simulate(policy, process: AcceptanceProcess, costs: Costs, rounds: int, seed) -> PolicyEvaluation:
    """Monte Carlo: sample rounds of the process, apply the policy to what the drafter sees, verify
    each draft with an independent coin of probability a_j until the first rejection."""
    rng = np.random.default_rng(seed)
    tabular = isinstance(policy, TabularPolicy)
    max_k = policy.max_k
    R = rounds
    m = process.n_states
    cum_p = np.cumsum(process.transition, axis=1)
    cum_e = np.cumsum(process.emission, axis=1)
    cum0 = np.cumsum(process.initial)
    z = np.zeros(R, dtype=np.int64)
    S = np.ones(R)
    alive = np.ones(R, dtype=bool)
    intact = np.ones(R, dtype=bool)     # no draft rejected so far
    accepted = np.zeros(R, dtype=np.int64)
    drafts = np.zeros(R, dtype=np.int64)
    if tabular:
        model = policy.model
        if model.process is not process and model.process.key() != process.key():
            raise SpecTheoryValueError(
                "policy: an optimal (tabular) policy can only be simulated on the process it was computed for"
            )
        s_idx = np.zeros(R, dtype=np.int64)
        info = np.zeros(R, dtype=np.int64)
        rho = np.repeat(process.initial[None, :], R, axis=0) if model.belief == "grid" else None
    for k in range(max_k):
        if tabular:
            if model.belief == "grid" and k > 0:
                idx, w = model.grid.interpolate(rho)
                Q = policy.advantages[k]
                q = np.sum(w * Q[s_idx[:, None], idx], axis=1)
                go = q > 0 if k >= policy.min_k else np.ones(R, dtype=bool)
            else:
                go = policy.conts[k][s_idx, info]
        else:
            go = policy.continues(k, S)
        alive &= go
        if not np.any(alive):
            break
        # next hidden state and acceptance value
        u = rng.random(R)
        if k == 0:
            z_new = np.minimum(np.searchsorted(cum0, u, side="right"), m - 1)
        else:
            z_new = np.minimum((u[:, None] >= cum_p[z]).sum(axis=1), m - 1)
        u = rng.random(R)
        v = np.minimum((u[:, None] >= cum_e[z_new]).sum(axis=1), process.n_values - 1)
        a = process.values[v]
        coin = rng.random(R) < a
        a_alive = alive
        accepted += (a_alive & intact & coin)
        intact &= ~a_alive | coin
        drafts += a_alive
        S = np.where(a_alive, S * a, S)
        z = np.where(a_alive, z_new, z)
        if tabular:
            L = model.layers[k]
            pos = np.full(process.n_values, -1, dtype=np.int64)
            pos[L.vidx] = np.arange(L.vidx.shape[0])
            vp = pos[v]
            if np.any(a_alive & (vp < 0)):  # pragma: no cover - impossible values are never sampled
                raise AssertionError("sampled a value the model cannot emit")
            s_idx = np.where(a_alive, L.nxt[s_idx, np.maximum(vp, 0)], s_idx)
            if model.belief == "observed":
                info = np.where(a_alive, z_new, info)
            elif model.belief == "exact":
                info = np.where(a_alive, L.next_info[info, v], info)
            else:
                E = process.emission
                post = rho * E[:, v].T
                post /= post.sum(axis=1, keepdims=True)
                rho = np.where(a_alive[:, None], post @ process.transition, rho)
    T = 1.0 + accepted
    C = costs.c0 + costs.step * drafts
    mT, mC = float(T.mean()), float(C.mean())
    ratio = mT / mC
    se_T = float(T.std(ddof=1) / math.sqrt(R)) if R > 1 else math.inf
    se_D = float(drafts.std(ddof=1) / math.sqrt(R)) if R > 1 else math.inf
    resid = T - ratio * C
    se_ratio = float(resid.std(ddof=1) / math.sqrt(R) / mC) if R > 1 else math.inf
    return PolicyEvaluation(str(policy), "mc", mT, float(drafts.mean()), mC, ratio, ratio * costs.c0,
                            stderr_tokens=se_T, stderr_drafts=se_D, stderr_tokens_per_cost=se_ratio, rounds=R)


def evaluate(policy, process, c_draft=None, c_target=None, *, costs=None, method: str = "exact",
             rounds: int = 100_000, seed=0, s_floor: float = 0.0) -> PolicyEvaluation:
    """Tokens per round, cost per round and tokens per unit cost of a policy on a process.

    ``method="exact"``: fixed K from E[tokens] = 1 + Σ_{k≤K} E[S_k] (forward recursion of the
    hidden chain, O(K m²)); threshold rules by a forward pass of the state distribution over the
    layers (k, S_k, z_k) of the process with its hidden state made observable (the law of the a_j is
    unchanged, and the rule ignores the state), exact for finite supports; the optimal tabular policy
    on its own compiled model. ``method="mc"``: ``rounds`` simulated rounds (seeded numpy) with
    verification coins, reporting standard errors (the ratio's by the delta method).

    Parameters
    ----------
    policy : FixedK, ThresholdPolicy or TabularPolicy (``OptimalPolicy`` is accepted too)
    process : AcceptanceProcess
    c_draft, c_target, costs
        As for :func:`optimal_policy`.

    Examples
    --------
    >>> import spectheory as st
    >>> mdp = st.solvers.mdp
    >>> proc = mdp.iid_process([0.5, 1.0])
    >>> ev = mdp.evaluate(mdp.fixed_k(2), proc, 0.1)
    >>> round(ev.tokens_per_round, 6), round(ev.speedup, 6)
    (2.3125, 1.927083)
    >>> mc = mdp.evaluate(mdp.fixed_k(2), proc, 0.1, method="mc", rounds=20000, seed=1)
    >>> abs(mc.tokens_per_round - ev.tokens_per_round) < 5 * mc.stderr_tokens
    True
    """
    process = _check_process(process)
    costs = as_costs(c_draft, c_target, costs)
    if isinstance(policy, OptimalPolicy):
        policy = policy.policy
    if not isinstance(policy, (FixedK, ThresholdPolicy, TabularPolicy)):
        raise SpecTheoryValueError(
            f"policy: expected fixed_k(K), threshold_policy(h, ...) or an optimal policy, got {type(policy).__name__}"
        )
    if method == "exact":
        return _exact(policy, process, costs, s_floor)
    if method == "mc":
        rounds = check_int(rounds, "rounds", 2)
        return _simulate(policy, process, costs, rounds, seed)
    raise SpecTheoryValueError(f"method: expected 'exact' or 'mc', got {method!r}")


# --------------------------------------------------------------------------------------------
# fixed K and the threshold family
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FixedKSearch:
    """Best fixed draft length: ``k`` and its statistics; ``speedups[K − min_k]`` for every K."""

    k: int
    tokens_per_round: float
    tokens_per_cost: float
    speedup: float
    ks: np.ndarray = field(repr=False)
    speedups: np.ndarray = field(repr=False)


def best_fixed_k(process, c_draft=None, c_target=None, max_k=None, *, costs=None, min_k: int = 1) -> FixedKSearch:
    """The best fixed draft length K ∈ [min_k, max_k]: maximise (1 + Σ_{k≤K} E[S_k]) / (c0 + (c_draft + c1)K)
    (exact; O(max_k m²)). For i.i.d. processes E[S_k] = E[a]^k and this is Leviathan et al.'s γ*.

    Examples
    --------
    >>> import spectheory as st
    >>> mdp = st.solvers.mdp
    >>> r = mdp.best_fixed_k(mdp.constant_process(0.8), 0.1, max_k=20)
    >>> r.k, r.k == mdp.optimal_gamma(0.8, 0.1)
    (6, True)
    """
    process = _check_process(process)
    c_draft, c_target, max_k = _split_costs_max_k(c_draft, c_target, max_k)
    costs = as_costs(c_draft, c_target, costs)
    max_k = _check_max_k(max_k)
    min_k = check_int(min_k, "min_k", 0)
    if min_k > max_k:
        raise SpecTheoryValueError(f"min_k and max_k: need min_k <= max_k, got min_k = {min_k} > max_k = {max_k}")
    es = process.expected_survival(max_k)
    tokens = 1.0 + np.concatenate(([0.0], np.cumsum(es[1:])))
    ks = np.arange(min_k, max_k + 1)
    ratio = tokens[ks] / (costs.c0 + costs.step * ks)
    j = int(np.argmax(ratio))
    return FixedKSearch(int(ks[j]), float(tokens[ks[j]]), float(ratio[j]), float(ratio[j] * costs.c0),
                        ks, ratio * costs.c0)


@dataclass(frozen=True, eq=False)
class ThresholdSearch:
    """Best SpecDec++ threshold rule in a family (see :func:`best_threshold`).

    ``policy`` is the best rule; any h in [``h_low``, ``h_high``) gives the same decisions (for a
    fixed K, min_k = max_k, h is irrelevant). ``curve_h`` / ``curve_speedup``: speedup of
    threshold_policy(h, min_k, max_k) at the caps searched (the smallest min_k and the largest
    max_k of the family) for every distinct h, one representative h per interval.
    """

    policy: ThresholdPolicy
    h_low: float
    h_high: float
    tokens_per_round: float
    drafts_per_round: float
    tokens_per_cost: float
    speedup: float
    is_fixed_k: bool
    curve_h: np.ndarray = field(repr=False)
    curve_speedup: np.ndarray = field(repr=False)
    candidates: int = 0


def best_threshold(process, c_draft=None, c_target=None, max_k=None, *, costs=None, min_k=None,
                   vary_max_k: bool = True, s_floor: float = 0.0, model: Model | None = None) -> ThresholdSearch:
    """The best of SpecDec++'s threshold rules: stop when k = max_k' or (k ≥ min_k' and 1 − S_k > h).

    Searches every h that gives a distinct rule (the midpoints between consecutive distinct values
    of 1 − S_k over reachable states, values within 1e-12 counted as one), every min_k' ∈ [1, max_k] (or the given ``min_k``) and every
    max_k' ∈ [min_k', max_k] (or only max_k when ``vary_max_k`` is False). The family contains
    every fixed K ∈ [1, max_k] (min_k' = max_k' = K), so its best is never below the best fixed K.

    Exact and fast, because S_k never increases along a round: the rule has drafted k + 1 tokens iff
    k < min_k' or 1 − S_k ≤ h (all earlier checks then passed too). So with μ_k the law of the states
    when always drafting,

        P(K ≥ k+1) = μ_k{1 − S ≤ h},  E[S_{k+1}; K ≥ k+1] = E_μ_k[E[S_{k+1} | state]; 1 − S ≤ h]

    for k ≥ min_k', and one forward pass plus cumulative sums give every (h, min_k', max_k')
    (O(forward + max_k² · #h)). Computed on the process with its hidden state made observable (the
    law of the a_j is unchanged and the rule ignores the state); exact for finite supports.

    Examples
    --------
    >>> import spectheory as st
    >>> mdp = st.solvers.mdp
    >>> proc = mdp.iid_process([0.3, 0.95], [0.3, 0.7])
    >>> r = mdp.best_threshold(proc, 0.1, max_k=10, min_k=1, vary_max_k=False)
    >>> round(r.speedup, 4), round(r.h_low, 4), round(r.h_high, 4)
    (2.4289, 0.3698, 0.7)
    """
    process = _check_process(process)
    c_draft, c_target, max_k = _split_costs_max_k(c_draft, c_target, max_k)
    costs = as_costs(c_draft, c_target, costs)
    max_k = _check_max_k(max_k)
    if min_k is not None:
        min_k = check_int(min_k, "min_k", 1)
        if min_k > max_k:
            raise SpecTheoryValueError(f"min_k and max_k: need 1 <= min_k <= max_k, got min_k = {min_k} > max_k = {max_k}")
    model = _observed_model(process, max_k, s_floor, model)
    mu = model.reach
    K = max_k
    F = np.array([float(np.sum(mu[k] * model.layers[k].S[:, None])) for k in range(K + 1)])
    # candidate h: midpoints between consecutive distinct 1 − S over reachable states of layers 1..K-1
    layer_data = []
    all_d = []
    for k in range(1, K):
        L = model.layers[k]
        r = mu[k].sum(axis=1)
        b = (mu[k] * L.tok).sum(axis=1)
        keep = r > 0
        d = 1.0 - L.S[keep]
        order = np.argsort(d, kind="stable")
        layer_data.append((d[order], np.cumsum(r[keep][order]), np.cumsum(b[keep][order])))
        all_d.append(d)
    if all_d:
        D = np.unique(np.concatenate(all_d))
        # the same S reached at different k may differ in its last bits: merge values within 1e-12 so
        # that no candidate h separates two copies of one survival value
        if D.size:
            keep = np.concatenate(([True], np.diff(D) > 1e-12))
            D = D[keep]
        lo = D
        hi = np.append(D[1:], 1.0)
        valid = lo < 1.0
        lo, hi = lo[valid], hi[valid]
        H = (lo + hi) / 2
    else:
        lo = hi = H = np.zeros(0)
    nH = H.shape[0]
    cumA = np.zeros((K, nH))  # row k: P(continue at layer k) for k = 1..K-1 (row 0 unused)
    cumB = np.zeros((K, nH))
    for k in range(1, K):
        d, cA, cB = layer_data[k - 1]
        pos = np.searchsorted(d, H, side="right")
        cumA[k] = np.where(pos > 0, cA[np.maximum(pos - 1, 0)], 0.0)
        cumB[k] = np.where(pos > 0, cB[np.maximum(pos - 1, 0)], 0.0)
    PA = np.cumsum(cumA, axis=0)  # PA[j] = Σ_{k=1}^{j} cumA[k]
    PB = np.cumsum(cumB, axis=0)
    Fc = np.cumsum(F)            # Fc[a] = Σ_{k=0}^{a} F_k; F_0 = 1 is the bonus token
    c0, step = costs.c0, costs.step
    best = (-math.inf, None)
    mins = [min_k] if min_k is not None else list(range(1, K + 1))
    for a in mins:
        bs = np.arange(a, K + 1) if vary_max_k else np.array([K])
        # fixed K = a (b == a): h irrelevant
        for b in bs:
            if b == a:
                T = Fc[a]
                ratio = T / (c0 + step * a)
                if ratio > best[0]:
                    best = (ratio, ("fixed", a, T, float(a)))
                continue
            if nH == 0:
                continue
            T = Fc[a] + PB[b - 1] - PB[a - 1]
            E = a + PA[b - 1] - PA[a - 1]
            ratios = T / (c0 + step * E)
            j = int(np.argmax(ratios))
            if ratios[j] > best[0]:
                best = (float(ratios[j]), ("thr", a, int(b), j, float(T[j]), float(E[j])))
    # SpecDec++ curve at the family's caps
    a0, b0 = mins[0], K
    if nH and b0 > a0:
        Tc = Fc[a0] + PB[b0 - 1] - PB[a0 - 1]
        Ec = a0 + PA[b0 - 1] - PA[a0 - 1]
        curve = Tc / (c0 + step * Ec) * c0
    else:
        curve = np.zeros(0)
    ratio, info = best
    if info[0] == "fixed":
        a = info[1]
        h_mid = float(H[0]) if nH else 0.5
        pol = ThresholdPolicy(h_mid if 0 < h_mid < 1 else 0.5, a, a)
        T, E, hl, hh, fixed = info[2], info[3], 0.0, 1.0, True
    else:
        _, a, b, j, T, E = info
        pol = ThresholdPolicy(float(H[j]), a, b)
        hl, hh, fixed = float(lo[j]), float(hi[j]), False
    return ThresholdSearch(pol, hl, hh, float(T), float(E), float(ratio), float(ratio * c0), fixed,
                           H.copy(), curve, int(nH))


# --------------------------------------------------------------------------------------------
# the comparison
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparisonRow:
    """One policy in :class:`MDPComparison`: its name, parameters in words, and per-round statistics."""

    name: str
    detail: str
    tokens_per_round: float
    drafts_per_round: float
    cost_per_round: float
    tokens_per_cost: float
    speedup: float
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "detail": self.detail, "tokens_per_round": self.tokens_per_round,
                "drafts_per_round": self.drafts_per_round, "cost_per_round": self.cost_per_round,
                "tokens_per_cost": self.tokens_per_cost, "speedup": self.speedup, "params": self.params}


@dataclass(frozen=True, eq=False)
class MDPComparison:
    """The exact optimal policy against SpecDec++'s threshold rules, fixed K and Leviathan's γ*, for
    one process and one cost model (see :func:`compare_policies`)."""

    costs: Costs
    max_k: int
    rows: tuple
    optimal: OptimalPolicy = field(repr=False)
    threshold_family: ThresholdSearch = field(repr=False)
    threshold_caps: ThresholdSearch = field(repr=False)
    h_delta0: float = 0.0
    sufficient_h: float = 0.0
    alpha_hat: float = 0.0
    gamma_star: int = 0

    def row(self, name: str) -> ComparisonRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def as_dict(self) -> dict:
        return {
            "costs": self.costs.as_dict(),
            "max_k": self.max_k,
            "rows": [r.as_dict() for r in self.rows],
            "optimal": self.optimal.as_dict(),
            "h_delta0": self.h_delta0,
            "sufficient_stop_h": self.sufficient_h,
            "alpha_hat": self.alpha_hat,
            "gamma_star": self.gamma_star,
            "threshold_curve": {"h": self.threshold_caps.curve_h.tolist(),
                                "speedup": self.threshold_caps.curve_speedup.tolist(),
                                "min_k": self.threshold_caps.policy.min_k if not self.threshold_caps.is_fixed_k else 1,
                                "max_k": self.max_k},
        }


def compare_policies(process, c_draft=None, c_target=None, max_k=None, *, costs=None,
                     s_floor: float = 0.0, belief: str = "auto", belief_grid: int | None = None,
                     mc_rounds: int = 20_000, seed=0, model: Model | None = None,
                     observed_model: Model | None = None) -> MDPComparison:
    """The comparison SpecDec++ could not make, for one process and cost model.

    Rows (speedup = tokens per unit cost · c0, i.e. against one target call per token):

    * ``optimal`` — :func:`optimal_policy` (may decline to draft);
    * ``best threshold`` — best rule over (h, min_k', max_k') with 1 ≤ min_k' ≤ max_k' ≤ max_k
      (contains every fixed K);
    * ``SpecDec++ best h`` — best h at caps (1, max_k);
    * ``SpecDec++ h=Δ0`` — the rule at SpecDec++'s Δ = 0 value h₀ = c0/(c0 + c_draft + c1), caps (1, max_k);
    * ``best fixed K`` — K ∈ [1, max_k];
    * ``Leviathan γ*`` — fixed K = optimal_gamma(α̂, (c_draft + c1)/c0, max_gamma=max_k) with α̂ the
      mean of E[a_j] over j = 1..max_k (Leviathan's α), evaluated exactly on the process (for i.i.d.
      processes E[S_k] = α̂^k, so γ* is the best fixed K);
    * ``no speculation`` — speedup 1;
    * for hidden processes on a belief grid, ``optimal (grid policy, MC)`` — the computed policy
      acted out with exact posteriors, by Monte Carlo (the ``optimal`` row is then an upper bound).

    ``model`` / ``observed_model``: compiled models to reuse across cost settings (the state space does
    not depend on the costs).

    Also ``sufficient_h`` = 1 − λ*(c_draft + c1): stopping is optimal whenever 1 − S_k exceeds it
    (continuing can add at most S_k tokens per draft), so every optimal threshold is ≤ it < h₀.

    Examples
    --------
    >>> import spectheory as st
    >>> mdp = st.solvers.mdp
    >>> proc = mdp.markov_process([0.2, 0.95], [[1, 0], [0, 1]], [[0.7, 0.3], [0.1, 0.9]], observed=True)
    >>> cmp = mdp.compare_policies(proc, 0.05, max_k=12)
    >>> [r.name for r in cmp.rows][:3]
    ['optimal', 'best threshold', 'SpecDec++ best h']
    >>> s = [cmp.row(n).speedup for n in ("optimal", "best threshold", "best fixed K")]
    >>> s[0] >= s[1] >= s[2]
    True
    """
    from .mdp import optimal_gamma
    from .mdp import speedup as leviathan_speedup

    process = _check_process(process)
    c_draft, c_target, max_k = _split_costs_max_k(c_draft, c_target, max_k)
    costs = as_costs(c_draft, c_target, costs)
    max_k = _check_max_k(max_k)
    obs_model = observed_model if observed_model is not None else (
        model if model is not None and model.belief == "observed" else None)
    obs_model = _observed_model(process, max_k, s_floor, obs_model)
    if model is None and process.observed:
        model = obs_model
    opt = optimal_policy(process, costs, max_k=max_k, s_floor=s_floor, belief=belief,
                         belief_grid=belief_grid, model=model)
    fam = best_threshold(process, costs, max_k=max_k, s_floor=s_floor, model=obs_model)
    caps = best_threshold(process, costs, max_k=max_k, min_k=1, vary_max_k=False, s_floor=s_floor,
                          model=obs_model)
    h0 = costs.h_delta0
    ev0 = _exact(ThresholdPolicy(h0, 1, max_k), process, costs, s_floor, obs_model)
    fk = best_fixed_k(process, costs, max_k=max_k, min_k=1)
    alpha_hat = float(np.mean(process.position_means(max_k)))
    g = optimal_gamma(alpha_hat, costs.ratio, max_gamma=max_k)
    evg = evaluate(FixedK(g), process, costs=costs)
    c0 = costs.c0

    def row(name, detail, tokens, drafts, params):
        cost = costs.round_cost(drafts)
        return ComparisonRow(name, detail, tokens, drafts, cost, tokens / cost, tokens / cost * c0, params)

    opt_detail = []
    if not opt.drafts_first:
        opt_detail.append("no speculation is optimal")
    elif opt.is_threshold:
        if all(b is not None for b in opt.h_bounds[max(1, opt.min_k):max_k]):
            opt_detail.append("threshold rule in S_k, h per k")
        else:
            opt_detail.append("threshold rule in S_k per (k, state)")
    else:
        opt_detail.append("not a threshold rule in S_k")
    if not opt.exact:
        opt_detail.append("model discretised: " + ("upper bound" if opt.policy.model.belief == "grid" or
                                                    opt.policy.model.floor_mode == "up" else "lower bound"))
    rows = [row("optimal", "; ".join(opt_detail), opt.tokens_per_round, opt.drafts_per_round,
                {"upper_bound_speedup": opt.upper_bound * c0, "iterations": opt.iterations})]
    if opt.policy.model.belief == "grid" and mc_rounds:
        mc = evaluate(opt.policy, process, costs=costs, method="mc", rounds=mc_rounds, seed=seed)
        rows.append(row("optimal (grid policy, MC)", f"± {mc.stderr_tokens_per_cost * c0:.2g} (1 s.e.)",
                        mc.tokens_per_round, mc.drafts_per_round, {"stderr_speedup": mc.stderr_tokens_per_cost * c0}))

    def thr_row(name, r: ThresholdSearch):
        p = r.policy
        if r.is_fixed_k:
            detail = f"min_k = max_k = {p.max_k} (fixed K)"
            params = {"min_k": p.min_k, "max_k": p.max_k, "fixed_k": True}
        else:
            width = r.h_high - r.h_low
            interval = f"any h in [{r.h_low:.6g}, {r.h_high:.6g})" if width > 1e-5 else f"interval width {width:.1g}"
            detail = f"h = {p.h:.6g} ({interval}), caps ({p.min_k}, {p.max_k})"
            params = {"h": p.h, "h_low": r.h_low, "h_high": r.h_high, "min_k": p.min_k, "max_k": p.max_k}
        return row(name, detail, r.tokens_per_round, r.drafts_per_round, params)

    rows.append(thr_row("best threshold", fam))
    rows.append(thr_row("SpecDec++ best h", caps))
    rows.append(row("SpecDec++ h=Δ0", f"h0 = c0/(c0+c_draft+c1) = {h0:.4g}, caps (1, {max_k})",
                    ev0.tokens_per_round, ev0.drafts_per_round, {"h": h0, "min_k": 1, "max_k": max_k}))
    rows.append(row("best fixed K", f"K = {fk.k}", fk.tokens_per_round, float(fk.k), {"k": fk.k}))
    pred = float(leviathan_speedup(alpha_hat, g, costs.ratio))
    rows.append(row("Leviathan γ*", f"γ* = {g} from α̂ = {alpha_hat:.4g} (predicted speedup {pred:.4g})",
                    evg.tokens_per_round, float(g), {"gamma": g, "alpha_hat": alpha_hat, "predicted_speedup": pred}))
    rows.append(row("no speculation", "K = 0", 1.0, 0.0, {"k": 0}))
    return MDPComparison(costs, max_k, tuple(rows), opt, fam, caps, h0,
                         1.0 - opt.tokens_per_cost * costs.step, alpha_hat, g)
