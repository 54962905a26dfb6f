"""The finite layered state space of the draft-length MDP, and its backward and forward passes.

Layer k (k = 0..max_k drafts made) holds the states (S, i): S a survival value S_k = Π_{j≤k} a_j and
i an *information state*, what the drafter knows beyond S that matters for the future:

* observed processes (i.i.d., fitted Markov chains on bins, positional, ``observed=True``): the
  current hidden state z_k (layer 0: one start state);
* hidden processes: the predictive law ρ = P(z_{k+1} = · | a_1..a_k) of the next draft's state,
  either exactly (every reachable ρ, merged when equal to 1e-12) or on the simplex grid
  {c/G : c ∈ ℕ^m, Σc = G} with Freudenthal (Kuhn) interpolation: a posterior off the grid moves to the
  vertices of its grid simplex with its barycentric weights. The value function is convex in ρ,
  so the grid model's value is an upper bound on the true one (Lovejoy 1991, Oper. Res. 39(1)).

S values: the layer's S are the distinct products S·v (v an acceptance value the layer can emit),
merged when their logarithms agree to about 1e-11 (keys rint(1e11·log S), neighbouring keys joined;
the class keeps its smallest member, so S never grows along a path). With ``s_floor`` > 0, products below it become 0 (``floor_mode="down"``, a model whose
value is a lower bound: S only shrinks) or ``s_floor`` (``"up"``, an upper bound). Nothing else is
discretised: for finite supports, exact beliefs and ``s_floor = 0`` the model is exact.

Transitions: from (S, i), value v and next information state i' with weight M_v[i, i'] (Σ over v, i'
of M_v[i, i'] = 1) to (S_{k+1}, i') with S_{k+1} the class of S·v. Only the nonzero (v, i') pairs
are stored (for chains fitted on bins each value belongs to one state). One backward pass costs
O(Σ_k n_k · n_pairs_k · I_k) flops: a gather and a matrix product per layer and quantity.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from spectheory._validation import SpecTheoryValueError

from ._mdp_process import AcceptanceProcess

KEY_SCALE = 1e11
ZERO_KEY = np.iinfo(np.int64).min
BELIEF_KEY_SCALE = 1e12

#: Most reachable exact beliefs per layer before ``belief="auto"`` switches to a grid.
MAX_EXACT_BELIEFS = 512
#: Most states (S values × information states) in one layer.
MAX_LAYER_STATES = 2_000_000
#: Largest max_k (drafts per round): the model holds max_k + 1 layers (about 5 s at max_k = 1024
#: for a two-value i.i.d. process); no drafter makes more drafts in one round.
MAX_K = 1024
#: Most (S value, acceptance value) pairs of one layer (n_k · n_v).
MAX_LAYER_GATHER = 40_000_000


def default_belief_grid(m: int) -> int:
    """The largest resolution G whose simplex grid for m states has at most about 256 points."""
    G = 1
    while math.comb(G + 1 + m - 1, m - 1) <= 256:
        G += 1
    return G


def s_keys(S: np.ndarray) -> np.ndarray:
    """Integer keys of survival values: equal iff log S agree to 1e-11 (0 has its own key)."""
    keys = np.full(S.shape, ZERO_KEY, dtype=np.int64)
    pos = S > 0
    keys[pos] = np.rint(np.log(S[pos]) * KEY_SCALE).astype(np.int64)
    return keys


# --------------------------------------------------------------------------------------------
# simplex grid (Freudenthal / Kuhn triangulation)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SimplexGrid:
    """The grid {c/G : c ∈ ℕ^m, Σ c = G} on the probability simplex, with Freudenthal interpolation."""

    m: int
    G: int
    points: np.ndarray = field(repr=False)  # (N, m) probability vectors
    codes: np.ndarray = field(repr=False)   # sorted mixed-radix codes of the compositions
    order: np.ndarray = field(repr=False)   # grid index of each sorted code

    @classmethod
    def build(cls, m: int, G: int) -> SimplexGrid:
        comps = np.array(
            [c for c in itertools.product(range(G + 1), repeat=m) if sum(c) == G], dtype=np.int64
        ) if m <= 4 else np.array(list(_compositions(G, m)), dtype=np.int64)
        radix = (G + 1) ** np.arange(m, dtype=np.int64)
        codes = comps @ radix
        order = np.argsort(codes)
        return cls(m, G, comps / G, codes[order], order)

    def interpolate(self, x: np.ndarray):
        """Vertices and barycentric weights of points ``x`` (shape (N, m), rows on the simplex).

        Returns ``(idx, w)``, both of shape (N, m): grid indices and weights (≥ 0, summing to 1,
        with Σ_j w_j · points[idx_j] = x)."""
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, None)
        x = x / x.sum(axis=1, keepdims=True)
        N, m, G = x.shape[0], self.m, self.G
        if m == 1:
            return np.zeros((N, 1), dtype=np.int64), np.ones((N, 1))
        tail = np.cumsum(x[:, ::-1], axis=1)[:, ::-1]  # tail[:, i] = Σ_{j ≥ i} x_j
        y = np.clip(G * tail[:, 1:], 0.0, G)           # (N, m-1), nonincreasing along a row
        base = np.minimum(np.floor(y), G - 1)
        d = y - base
        order = np.argsort(-d, axis=1, kind="stable")
        ds = np.take_along_axis(d, order, axis=1)
        w = np.empty((N, m))
        w[:, 0] = 1.0 - ds[:, 0]
        if m > 2:
            w[:, 1:m - 1] = ds[:, :-1] - ds[:, 1:]
        w[:, m - 1] = ds[:, -1]
        idx = np.empty((N, m), dtype=np.int64)
        u = base.astype(np.int64)
        rows = np.arange(N)
        radix = (G + 1) ** np.arange(m, dtype=np.int64)
        for j in range(m):
            if j > 0:
                u = u.copy()
                u[rows, order[:, j - 1]] += 1
            comp = np.empty((N, m), dtype=np.int64)
            comp[:, 0] = G - u[:, 0]
            comp[:, 1:m - 1] = u[:, :-1] - u[:, 1:]
            comp[:, m - 1] = u[:, -1]
            ok = np.all(comp >= 0, axis=1)
            code = np.where(ok, comp @ radix, self.codes[0])
            pos = np.searchsorted(self.codes, code)
            pos = np.minimum(pos, self.codes.shape[0] - 1)
            idx[:, j] = self.order[pos]
            w[~ok, j] = 0.0  # only zero-weight vertices can fall off the grid
        w = np.clip(w, 0.0, None)
        w /= w.sum(axis=1, keepdims=True)
        return idx, w


def _compositions(G: int, m: int):
    if m == 1:
        yield (G,)
        return
    for first in range(G + 1):
        for rest in _compositions(G - first, m - 1):
            yield (first,) + rest


# --------------------------------------------------------------------------------------------
# the layered model
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Layer:
    """One layer k of the model: its states and the transitions to layer k + 1.

    The transitions are stored by their nonzero (value, next information state) pairs p = (v, j):
    ``Mnz[p, i]`` = M_v[i, j] and ``gidx[s, p]`` = flat index S_idx·I_{k+1} + j in layer k + 1 of the
    state reached from S-index s. For observed processes M_v[i, j] = A[i, j]·E[j, v] factorises
    (A = the transition matrix, or the initial law at layer 0): then ``A``, ``w`` and ``groups``
    replace ``Mnz`` and a pass costs O(n_k·n_pairs + n_k·I_k·I_{k+1}) per layer."""

    S: np.ndarray                    # (n_k,) survival values, ascending
    n_info: int                      # I_k
    rho: np.ndarray | None = None    # (I_k, m) predictive laws (hidden processes)
    vidx: np.ndarray | None = None   # (n_vk,) value indices that can occur next
    nxt: np.ndarray | None = None    # (n_k, n_vk) S-index in layer k + 1 of S·v
    pv: np.ndarray | None = None     # (n_pairs,) position in vidx of each nonzero pair
    pj: np.ndarray | None = None     # (n_pairs,) next information state of each pair
    Mnz: np.ndarray | None = None    # (n_pairs, I_k)
    gidx: np.ndarray | None = None   # (n_k, n_pairs) flat index into layer k + 1
    A: np.ndarray | None = None      # observed processes: M_v[i, j] = A[i, j]·w(v, j), (I_k, I_{k+1})
    w: np.ndarray | None = None      # (n_pairs,) emission weight of each pair (pairs grouped by j)
    groups: tuple | None = None      # (j of each group, start of each group in the pairs)
    n_entries: int = 0               # nonzero (value, i, j) transition entries
    tok: np.ndarray | None = None    # (n_k, I_k): E[S_{k+1} | state]
    next_info: np.ndarray | None = None  # (I_k, n_v) next information state (exact beliefs), −1 if impossible

    @property
    def n_states(self) -> int:
        return self.S.shape[0] * self.n_info


@dataclass(eq=False)
class Model:
    """The compiled layered MDP of a process (see the module docstring)."""

    process: AcceptanceProcess
    max_k: int
    s_floor: float
    floor_mode: str
    belief: str                      # "observed" | "exact" | "grid"
    grid: SimplexGrid | None
    layers: list
    reach: list                      # μ_k under "always continue": (n_k, I_k) masses

    @property
    def n_states(self) -> int:
        """Number of states (S, information) over all layers."""
        return int(sum(L.n_states for L in self.layers))

    @property
    def n_reachable(self) -> int:
        """Number of states with positive probability under "always continue"."""
        return int(sum(np.count_nonzero(r > 0) for r in self.reach))

    @property
    def n_transitions(self) -> int:
        """Number of (state, value, next information state) transition entries."""
        return int(sum(L.S.shape[0] * L.n_entries for L in self.layers[:-1]))

    @property
    def exact(self) -> bool:
        """True when the model is the process itself (no floor, no belief grid)."""
        return self.s_floor == 0.0 and self.belief != "grid"

    def discretisation(self) -> str:
        """A sentence stating what was discretised."""
        parts = ["S_k: exact distinct products (merged when equal to 1e-11 relative)"]
        if self.s_floor > 0:
            parts.append(
                f"products below s_floor = {self.s_floor:g} set to "
                + ("0 (lower-bound model)" if self.floor_mode == "down" else f"{self.s_floor:g} (upper-bound model)")
            )
        if self.belief == "observed":
            parts.append("information state: the observed state z_k" if self.process.n_states > 1 else "no hidden state")
        elif self.belief == "exact":
            parts.append("information state: exact posterior of the hidden state (every reachable belief)")
        else:
            parts.append(
                f"information state: posterior on a simplex grid of resolution {self.grid.G} "
                f"({self.grid.points.shape[0]} points, Freudenthal interpolation; the value is an upper bound)"
            )
        return "; ".join(parts)


def _info_layers(process: AcceptanceProcess, max_k: int, belief, belief_grid):
    """Information states per layer and the kernels M_k (n_v, I_k, I_{k+1}) over the full alphabet.

    Returns ``(mode, grid, infos, Ms, next_infos)``: ``infos[k]`` is None (observed) or the ρ array of
    layer k; ``next_infos[k]`` the deterministic next-belief map for exact beliefs."""
    E, P, init = process.emission, process.transition, process.initial
    m, nv = process.n_states, process.n_values
    if process.observed:
        first = (init[:, None] * E).T[:, None, :]              # (nv, 1, m)
        rest = P[None, :, :] * E.T[:, None, :]                  # (nv, m, m)
        Ms = [first] + [rest] * (max_k - 1)
        return "observed", None, [None] * (max_k + 1), Ms, [None] * (max_k + 1)

    def step(rho):
        pred = rho @ E                                          # (I, nv)
        post = rho[:, None, :] * E.T[None, :, :]                # (I, nv, m)
        with np.errstate(invalid="ignore", divide="ignore"):
            post = post / pred[:, :, None]
        nxt = post @ P                                          # (I, nv, m)
        return pred, nxt

    if belief_grid is None:
        infos, Ms, nexts = [init[None, :]], [], []
        exact_ok = True
        for _k in range(max_k):
            rho = infos[-1]
            pred, nxt = step(rho)
            ok = pred > 0
            keys = np.rint(nxt[ok] * BELIEF_KEY_SCALE).astype(np.int64)
            uniq, first_idx, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            inv = np.asarray(inv).reshape(-1)
            if uniq.shape[0] > MAX_EXACT_BELIEFS:
                exact_ok = False
                break
            new_rho = nxt[ok][first_idx]
            I, I2 = rho.shape[0], new_rho.shape[0]
            M = np.zeros((nv, I, I2))
            ii, vv = np.nonzero(ok)
            M[vv, ii, inv] = pred[ii, vv]
            nxt_map = np.full((I, nv), -1, dtype=np.int64)
            nxt_map[ii, vv] = inv
            Ms.append(M)
            nexts.append(nxt_map)
            infos.append(new_rho)
        if exact_ok:
            return "exact", None, infos, Ms, nexts + [None]
        if belief == "exact":
            raise SpecTheoryValueError(
                f"belief: more than {MAX_EXACT_BELIEFS} distinct posteriors in one layer; use a belief grid "
                "(belief_grid=G) or a smaller max_k"
            )
        belief_grid = default_belief_grid(m)

    grid = SimplexGrid.build(m, int(belief_grid))
    pts = grid.points
    infos = [init[None, :]] + [pts] * max_k

    def kernel(rho):
        pred, nxt = step(rho)
        I = rho.shape[0]
        M = np.zeros((nv, I, pts.shape[0]))
        ok = pred > 0
        ii, vv = np.nonzero(ok)
        idx, w = grid.interpolate(nxt[ii, vv])
        for j in range(idx.shape[1]):
            np.add.at(M, (vv, ii, idx[:, j]), pred[ii, vv] * w[:, j])
        return M

    M0 = kernel(infos[0])
    Mg = kernel(pts) if max_k > 1 else None
    Ms = [M0] + [Mg] * (max_k - 1)
    return "grid", grid, infos, Ms, [None] * (max_k + 1)


def compile_model(process: AcceptanceProcess, max_k: int, *, s_floor: float = 0.0, floor_mode: str = "down",
                  belief: str = "auto", belief_grid: int | None = None) -> Model:
    """Build the layered state space of ``process`` for rounds of at most ``max_k`` drafts.

    Parameters
    ----------
    process : AcceptanceProcess
    max_k : int
        Largest number of drafts per round (layers 0..max_k).
    s_floor : float
        Survival values below it are set to 0 (``floor_mode="down"``) or to ``s_floor`` (``"up"``);
        0 keeps every product (exact).
    belief : {"auto", "exact", "grid"}
        For hidden processes: exact posteriors (``"auto"`` falls back to a grid when a layer has more
        than :data:`MAX_EXACT_BELIEFS`), or a grid of resolution ``belief_grid``.

    Examples
    --------
    >>> import spectheory as st
    >>> from spectheory.solvers._mdp_model import compile_model
    >>> model = compile_model(st.solvers.mdp.iid_process([0.5, 1.0]), 3)
    >>> [L.S.tolist() for L in model.layers]
    [[1.0], [0.5, 1.0], [0.25, 0.5, 1.0], [0.125, 0.25, 0.5, 1.0]]
    """
    from spectheory._validation import check_int

    max_k = check_int(max_k, "max_k", minimum=1, maximum=MAX_K, why="the model holds max_k + 1 layers")
    if belief not in ("auto", "exact", "grid"):
        raise SpecTheoryValueError(f"belief: expected 'auto', 'exact' or 'grid', got {belief!r}")
    if belief == "grid" and belief_grid is None and not process.observed:
        belief_grid = default_belief_grid(process.n_states)
    if belief_grid is not None and (isinstance(belief_grid, bool) or int(belief_grid) != belief_grid or belief_grid < 1):
        raise SpecTheoryValueError(f"belief_grid: must be an integer >= 1, got {belief_grid!r}")
    if floor_mode not in ("down", "up"):
        raise SpecTheoryValueError(f"floor_mode: expected 'down' or 'up', got {floor_mode!r}")
    if not (isinstance(s_floor, (int, float)) and math.isfinite(s_floor) and 0 <= s_floor < 1):
        raise SpecTheoryValueError(f"s_floor: must be a number in [0, 1), got {s_floor!r}")
    values = process.values
    mode, grid, infos, Ms, next_infos = _info_layers(process, max_k, belief, belief_grid)

    layers = [Layer(S=np.array([1.0]), n_info=1, rho=infos[0])]
    cache: dict = {}
    for k in range(max_k):
        L = layers[k]
        Mfull = Ms[k]
        I2 = Mfull.shape[2]
        vmask = Mfull.reshape(Mfull.shape[0], -1).max(axis=1) > 0
        vidx = np.flatnonzero(vmask)
        cand = L.S[:, None] * values[None, vidx]                 # (n_k, n_vk)
        if s_floor > 0:
            low = (cand < s_floor) & (cand > 0)
            cand = np.where(low, 0.0 if floor_mode == "down" else s_floor, cand)
        keys = s_keys(cand.ravel())
        sk = np.sort(keys)
        uniq = sk[np.concatenate(([True], sk[1:] != sk[:-1]))]
        # keys one apart are the same product rounded to either side of a boundary: one class
        group = np.concatenate(([0], np.cumsum(np.diff(uniq) > 2)))
        inv = group[np.searchsorted(uniq, keys)]
        uniq = uniq[np.concatenate(([True], np.diff(group) > 0))]
        S_next = np.full(uniq.shape[0], np.inf)
        np.minimum.at(S_next, inv, cand.ravel())
        n_next = S_next.shape[0]
        if n_next * I2 > MAX_LAYER_STATES or L.S.shape[0] * vidx.shape[0] > MAX_LAYER_GATHER:
            raise SpecTheoryValueError(
                f"process: layer {k + 1} would hold {n_next} distinct survival values × {I2} information "
                f"states (limit {MAX_LAYER_STATES:,} states per layer); quantise the acceptance values "
                "to a lattice (st.solvers.mdp.quantise, or fit_trace(resolution=...)), set s_floor, or "
                "lower max_k"
            )
        nxt = inv.reshape(cand.shape).astype(np.int32 if n_next < 2**31 else np.int64)
        ck = (id(Mfull), tuple(vidx))
        if ck not in cache:
            M = Mfull[vidx]                                       # (n_vk, I_k, I')
            Mrow = M.sum(axis=2)
            if mode == "observed":
                A = process.initial[None, :] if k == 0 else process.transition
                Ev = process.emission[:, vidx]                    # (I', n_vk)
                pj, pv = np.nonzero(Ev > 0)                       # grouped by next state j
                w = Ev[pj, pv]
                jg, starts = np.unique(pj, return_index=True)
                n_entries = int(sum(np.count_nonzero(A[:, j]) for j in pj))
                cache[ck] = (pv, pj, None, Mrow, A, w, (jg, starts), n_entries)
            else:
                pv, pj = np.nonzero(M.max(axis=1) > 0)            # nonzero (value, next info) pairs
                Mnz = np.ascontiguousarray(M[pv, :, pj])          # (n_pairs, I_k)
                cache[ck] = (pv, pj, Mnz, Mrow, None, None, None, int(np.count_nonzero(Mnz)))
        pv, pj, Mnz, Mrow, A, w, groups, n_entries = cache[ck]
        L.vidx, L.nxt, L.pv, L.pj, L.Mnz = vidx, nxt, pv, pj, Mnz
        L.A, L.w, L.groups, L.n_entries = A, w, groups, n_entries
        L.tok = S_next[nxt] @ Mrow                                # (n_k, I_k)
        gdt = np.int32 if n_next * I2 < 2**31 else np.int64
        L.gidx = (nxt[:, pv].astype(gdt) * I2 + pj.astype(gdt))
        if next_infos[k] is not None:
            L.next_info = next_infos[k]
        layers.append(Layer(S=S_next, n_info=I2, rho=infos[k + 1]))

    model = Model(process, max_k, float(s_floor), floor_mode, mode, grid, layers, [])
    model.reach = forward(model, None)
    return model


# --------------------------------------------------------------------------------------------
# passes
# --------------------------------------------------------------------------------------------
def _pull(L: Layer, X_next: np.ndarray) -> np.ndarray:
    """(n_k, I_k) array Σ_{v, j} M_v[i, j] X_next[S·v, j] for every state (S, i) of layer L."""
    G = X_next.ravel()[L.gidx]                                    # (n_k, n_pairs)
    if L.A is None:
        return G @ L.Mnz
    jg, starts = L.groups
    Y = np.add.reduceat(G * L.w, starts, axis=1)                  # (n_k, |jg|)
    return Y @ L.A[:, jg].T


def _push(L: Layer, alive: np.ndarray, n_next: int) -> np.ndarray:
    """Flat masses over layer k + 1 reached from the masses ``alive`` (n_k, I_k) of layer L."""
    if L.A is None:
        X = alive @ L.Mnz.T                                       # (n_k, n_pairs)
    else:
        X = (alive @ L.A)[:, L.pj] * L.w
    return np.bincount(L.gidx.ravel(), weights=X.ravel(), minlength=n_next)


def forward(model: Model, conts) -> list:
    """Masses μ_k(S, i) = P(K ≥ k, state at layer k = (S, i)) for k = 0..max_k under the policy
    whose continue masks are ``conts`` (None: always continue up to max_k)."""
    mu = [np.ones((1, 1))]
    for k in range(model.max_k):
        L = model.layers[k]
        nxt_layer = model.layers[k + 1]
        alive = mu[k] if conts is None else mu[k] * conts[k]
        flat = _push(L, alive, nxt_layer.n_states)
        mu.append(flat.reshape(nxt_layer.S.shape[0], nxt_layer.n_info))
    return mu


def summarize(model: Model, mu) -> tuple[float, float, np.ndarray]:
    """(E[tokens], E[drafts], P(K = k) for k = 0..max_k) from forward masses ``mu``."""
    tokens = 1.0
    drafts = 0.0
    alive = np.empty(model.max_k + 2)
    alive[0] = 1.0
    for k in range(1, model.max_k + 1):
        tokens += float(np.sum(mu[k] * model.layers[k].S[:, None]))
        a = float(np.sum(mu[k]))
        drafts += a
        alive[k] = a
    alive[model.max_k + 1] = 0.0
    pmf = np.clip(alive[:-1] - alive[1:], 0.0, None)
    return tokens, drafts, pmf


def backward(model: Model, lam: float, c_step: float, min_k: int, tol: float):
    """One Dinkelbach step: maximise E[Σ_{i≤K} S_i] − λ·c_step·E[K] over stopping rules.

    Returns ``(conts, Qs, W0, T0, D0)``: continue masks and continuation advantages per layer
    (Q = value of continuing − value of stopping), the optimal value at the start, and the future
    tokens and drafts at the start under the returned policy (ties stop)."""
    K = model.max_k
    last = model.layers[K]
    W = np.zeros((last.S.shape[0], last.n_info))
    T = np.zeros_like(W)
    D = np.zeros_like(W)
    conts = [None] * (K + 1)
    Qs = [None] * (K + 1)
    conts[K] = np.zeros(W.shape, dtype=bool)
    Qs[K] = np.full(W.shape, -np.inf)
    for k in range(K - 1, -1, -1):
        L = model.layers[k]
        futW = _pull(L, W)                                        # (n_k, I_k)
        futT = _pull(L, T)
        futD = _pull(L, D)
        Q = L.tok + futW - lam * c_step
        if k < min_k:
            cont = np.ones(Q.shape, dtype=bool)
            W = Q
        else:
            cont = Q > tol
            W = np.maximum(Q, 0.0)
        T = np.where(cont, L.tok + futT, 0.0)
        D = np.where(cont, 1.0 + futD, 0.0)
        conts[k] = cont
        Qs[k] = Q
    return conts, Qs, float(W[0, 0]), float(T[0, 0]), float(D[0, 0])
