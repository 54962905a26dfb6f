"""Draft trees: traversal verification, and token-level recursive rejection sampling on the same trees.

Model
-----
A draft tree is rooted at the context (the root carries no token). Every other node ``u`` carries a
token, and the tokens on the way from the root to ``u`` form its *path* (a tuple of token ids). The
target and the draft are context-dependent: ``p(path)`` and ``q(path)`` are the next-token laws
(vectors of length V) after the context extended by ``path``; p is always the TARGET and q the
DRAFT (REFERENCE notation). They are given as

* a callable ``path -> vector``,
* a mapping ``{path: vector}`` (every path the computation needs must be a key), or
* one vector, used after every path (context-independent).

The children of a node at ``path`` are drafted from ``q(path)`` *without replacement* (successive
sampling: each sibling from q with the earlier siblings removed and renormalised), in the order in
which they are stored; the subtrees below different nodes are drafted independently. A *shape*
fixes how many children every node has (see :func:`check_shape`): either a nested tuple of child
shapes (``()`` is a leaf, ``((), ())`` a root with two leaf children) or a sequence of branching
factors per depth (``(2, 1)``: the root has 2 children, each of which has 1 child).

One round of a verifier emits the tokens of one accepted root-to-node path, then one more token
drawn from a law that depends on that path: a correction token (from a residual) or a bonus token
(from the target). A verifier is *lossless* when the emitted sequence, continued by sampling from p,
has the target's sequence law (:func:`complete_with_target`, :func:`target_sequence_law`).

Verifiers
---------
``"traversal"`` — :func:`traversal_verify`
    Traversal Verification (Weng, Hu, Chen, Liu, Mei, Qiu, Tian, Shi, "Traversal Verification for
    Speculative Tree Decoding", arXiv 2505.12398, NeurIPS 2025, §3). Leaf-to-root, with
    sequence-level acceptance weights; on a chain it is block verification (arXiv 2403.10444), on a
    depth-1 tree it is RRS without replacement. Lossless (their Theorem 3.3; re-derived below).
``"rrs_wor"`` — :func:`tree_rrs_wor_verify`
    Token-level recursive rejection sampling without replacement, top-down (Sequoia, arXiv
    2402.12374, Algorithm 2; Recursive Speculative Decoding, arXiv 2402.14160). Lossless with
    siblings drafted without replacement.
``"rrs"`` — :func:`tree_rrs_verify`
    Token-level RRS *with* replacement (SpecInfer, arXiv 2305.09781), top-down. Lossless when the
    siblings are drafted i.i.d. (``sampling="iid"``, its native scheme, duplicate siblings allowed);
    **not** lossless with siblings drafted without replacement — kept for that combination only as a
    documented comparison (the exact law shows the bias; see the tests).

Exact laws
----------
:func:`tree_output_law`, :func:`expected_accepted_length` and :func:`tree_round` run the verifier's
own rule (the code the samplers run) through :func:`~spectheory.verifiers._branching.enumerate_branches`,
with the draft itself drawn through the same oracle. Siblings are drafted *lazily* — a node's token
is drawn from its conditional draft law (q at its path, earlier siblings removed) when the verifier
first looks at it. Every verifier here looks at siblings in their drafting order and at a subtree
only after its root, and the undrawn part of the tree is independent of the verifier's coins given
the drawn part, so this is the same joint law as drafting the whole tree first, with far fewer
branches (:func:`enumerate_trees` enumerates whole trees; the tests check the two agree).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import SpecTheoryValueError, check_distribution
from ._base import residual
from ._branching import RandomOracle, enumerate_branches

__all__ = [
    "METHODS",
    "DraftNode",
    "TreeRound",
    "check_shape",
    "complete_with_target",
    "draft_tree",
    "enumerate_trees",
    "expected_accepted_length",
    "sample_round",
    "shape_from_branching",
    "target_sequence_law",
    "traversal_verify",
    "tree_output_law",
    "tree_round",
    "tree_rrs_verify",
    "tree_rrs_wor_verify",
]

#: Largest number of branches (drafts × verifier decisions) an exact enumeration visits.
MAX_BRANCHES = 2_000_000

#: Largest number of sequences :func:`target_sequence_law` / :func:`complete_with_target` list.
MAX_SEQUENCES = 2_000_000

_SAMPLINGS = {"without_replacement": "without_replacement", "wor": "without_replacement", "iid": "iid"}


# ---------------------------------------------------------------------------------------------------
# shapes and trees
# ---------------------------------------------------------------------------------------------------
def shape_from_branching(branching) -> tuple:
    """The nested shape of a tree with ``branching[d]`` children at every node of depth d.

    Examples
    --------
    >>> shape_from_branching((2, 1))
    (((),), ((),))
    >>> shape_from_branching(())
    ()
    """
    try:
        factors = list(branching)
    except TypeError:
        raise SpecTheoryValueError(f"branching: expected a sequence of integers >= 1, got {branching!r}") from None
    shape: tuple = ()
    for k in reversed(factors):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise SpecTheoryValueError(f"branching: every factor must be an integer >= 1, got {k!r}")
        shape = (shape,) * int(k)
    return shape


def check_shape(shape) -> tuple:
    """Validate a tree shape and return it as a nested tuple of child shapes.

    Parameters
    ----------
    shape : sequence of int, or nested sequence
        Either branching factors per depth (``(2, 1)``: 2 children at the root, 1 below each of
        them; every factor >= 1), or a nested sequence of child shapes (``[[[]], []]``: the root has
        two children, the first of which has one child). ``()`` is the root alone (no drafts).

    Raises
    ------
    SpecTheoryValueError
        For anything else (negative or zero factors, a mixture of integers and sub-shapes, ...).
    """
    if isinstance(shape, (str, bytes)) or isinstance(shape, np.ndarray) and shape.ndim != 1:
        raise SpecTheoryValueError(f"shape: expected a sequence of branching factors or a nested tuple, got {shape!r}")
    try:
        items = list(shape)
    except TypeError:
        raise SpecTheoryValueError(
            f"shape: expected a sequence of branching factors or a nested tuple, got {shape!r}"
        ) from None
    if items and all(isinstance(k, (numbers.Integral, np.integer)) for k in items):
        return shape_from_branching(items)

    def nested(s, where):
        if isinstance(s, (str, bytes, numbers.Number, np.generic)):
            raise SpecTheoryValueError(
                f"shape: {where} is {s!r}; a nested shape holds only sub-shapes (use branching "
                "factors for the whole tree, e.g. (2, 1), or nested tuples, e.g. (((),), ())"
            )
        try:
            return tuple(nested(c, f"{where}[{i}]") for i, c in enumerate(s))
        except TypeError:
            raise SpecTheoryValueError(f"shape: {where} is not a sequence ({s!r})") from None

    return nested(items, "shape")


@dataclass(frozen=True)
class DraftNode:
    """A node of a drafted tree: its ``token`` (``None`` at the root, the context) and its
    ``children`` in drafting order."""

    token: int | None
    children: tuple[DraftNode, ...] = ()

    @property
    def shape(self) -> tuple:
        """The nested shape of the subtree (see :func:`check_shape`)."""
        return tuple(c.shape for c in self.children)

    @property
    def depth(self) -> int:
        """Number of edges on the longest path down from this node."""
        return 1 + max(c.depth for c in self.children) if self.children else 0

    @property
    def size(self) -> int:
        """Number of drafted tokens below this node."""
        return sum(1 + c.size for c in self.children)

    def paths(self) -> list[tuple[int, ...]]:
        """Paths (token tuples from this node) of every node below it, in depth-first pre-order."""
        out: list[tuple[int, ...]] = []
        for c in self.children:
            out.append((c.token,))
            out.extend((c.token,) + rest for rest in c.paths())
        return out


def _as_tree(tree) -> DraftNode:
    """A :class:`DraftNode` root, or a nested ``[(token, children), ...]`` list of the root's children."""
    if isinstance(tree, DraftNode):
        if tree.token is not None:
            raise SpecTheoryValueError("tree: the root is the context and carries no token (token=None)")
        return tree

    def child(entry, where):
        try:
            token, kids = entry
        except (TypeError, ValueError):
            raise SpecTheoryValueError(
                f"tree: {where} must be a pair (token, children), got {entry!r}"
            ) from None
        return DraftNode(_token(token, where), children_of(kids, where))

    def children_of(kids, where):
        if isinstance(kids, (str, bytes)):
            raise SpecTheoryValueError(f"tree: children of {where} must be a sequence, got {kids!r}")
        try:
            kids = list(kids)
        except TypeError:
            raise SpecTheoryValueError(f"tree: children of {where} must be a sequence, got {kids!r}") from None
        return tuple(child(k, f"{where}/{i}") for i, k in enumerate(kids))

    return DraftNode(None, children_of(tree, "root"))


def _token(t, where) -> int:
    if isinstance(t, bool) or not isinstance(t, (numbers.Integral, np.integer)):
        if isinstance(t, (numbers.Real, np.floating)) and float(t).is_integer():
            return int(t)
        raise SpecTheoryValueError(f"tree: the token at {where} must be an integer id, got {t!r}")
    return int(t)


# ---------------------------------------------------------------------------------------------------
# context-dependent models
# ---------------------------------------------------------------------------------------------------
class _PathModel:
    """``path -> validated probability vector`` (float64, read-only, cached per path)."""

    def __init__(self, f, name: str):
        self.name = name
        self.cache: dict[tuple, np.ndarray] = {}
        if callable(f) and not isinstance(f, np.ndarray):
            self.f: Callable = f
        elif isinstance(f, Mapping):
            try:
                table = {tuple(int(t) for t in k): v for k, v in f.items()}
            except (TypeError, ValueError):
                raise SpecTheoryValueError(
                    f"{name}: the keys of a mapping must be paths (tuples of token ids), e.g. (), (3,), (3, 1)"
                ) from None

            def lookup(path, table=table):
                try:
                    return table[path]
                except KeyError:
                    raise SpecTheoryValueError(
                        f"{name}: the mapping has no entry for the path {path} (needed by this tree)"
                    ) from None

            self.f = lookup
        else:
            const = check_distribution(f, name, allow_batch=False)
            const.setflags(write=False)
            self.f = lambda path: const
        self.V: int | None = None

    def __call__(self, path: tuple) -> np.ndarray:
        hit = self.cache.get(path)
        if hit is not None:
            return hit
        raw = self.f(path)
        vec = check_distribution(raw, f"{self.name}({path})", allow_batch=False)  # a new array
        if self.V is None:
            self.V = vec.shape[0]
        elif vec.shape[0] != self.V:
            raise SpecTheoryValueError(
                f"{self.name}({path}): length {vec.shape[0]}, but the vocabulary has V = {self.V}"
            )
        vec.setflags(write=False)
        self.cache[path] = vec
        return vec


class _Context:
    def __init__(self, p, q, sampling: str = "without_replacement"):
        self.q = _PathModel(q, "q")
        V = self.q(()).shape[0]
        self.p = None
        if p is not None:
            self.p = _PathModel(p, "p")
            Vp = self.p(()).shape[0]
            if Vp != V:
                raise SpecTheoryValueError(f"p and q: vocabulary sizes differ (p has V = {Vp}, q has V = {V})")
        self.V = V
        self.sampling = sampling


def _check_sampling(sampling) -> str:
    try:
        return _SAMPLINGS[sampling]
    except (KeyError, TypeError):
        raise SpecTheoryValueError(
            f"sampling: expected 'without_replacement' (alias 'wor') or 'iid', got {sampling!r}"
        ) from None


def _ratio(a: float, b: float) -> float:
    """min(1, a/b) without overflow; 1 when b = 0 (a token that cannot be drafted)."""
    return 1.0 if b <= 0 or a >= b else float(a / b)


def _remove(D: np.ndarray, x: int) -> np.ndarray:
    """D without token x, renormalised (the remaining mass summed afresh); zeros if nothing is left."""
    D = D.copy()
    D[x] = 0.0
    mass = D.sum()
    return D / mass if mass > 0 else D


def _children(spec, path: tuple, ctx: _Context, oracle) -> Iterator[tuple[int, Any]]:
    """Yield ``(token, child_spec)`` for the children of a node, in drafting order.

    ``spec`` is a :class:`DraftNode` (a drafted tree: tokens are read) or a shape tuple (tokens are
    drawn through ``oracle`` only when the caller asks for the next child).
    """
    if isinstance(spec, DraftNode):
        for c in spec.children:
            yield c.token, c
        return
    if not spec:
        return
    qv = ctx.q(path)
    if ctx.sampling == "iid":
        for child_shape in spec:
            yield oracle.choose(qv), child_shape
        return
    remaining = np.array(qv)
    for child_shape in spec:
        if not np.any(remaining > 0):
            raise SpecTheoryValueError(_support_message(path, len(spec), qv))
        x = oracle.choose(remaining)
        remaining[x] = 0.0
        yield x, child_shape


def _support_message(path, k, qv) -> str:
    return (
        f"shape: the node at path {path} has {k} children, but q({path}) puts mass on only "
        f"{int(np.count_nonzero(qv > 0))} tokens; siblings are drafted without replacement, so a node "
        "cannot have more children than the support of its draft law"
    )


def _check_reachable(ctx: _Context, shape: tuple) -> None:
    """Validate p and q at every path a drafted tree of this shape can reach, and the support sizes."""
    seen: set = set()

    def walk(s, path):
        key = (s, path)
        if key in seen:
            return
        seen.add(key)
        if ctx.p is not None:
            ctx.p(path)
        if not s:
            return
        qv = ctx.q(path)
        support = np.flatnonzero(qv > 0)
        if ctx.sampling == "without_replacement" and len(support) < len(s):
            raise SpecTheoryValueError(_support_message(path, len(s), qv))
        for child_shape in set(s):
            for x in support:
                walk(child_shape, path + (int(x),))

    walk(shape, ())


def _check_tree(ctx: _Context, tree: DraftNode, distinct: bool) -> None:
    """Every token is in the vocabulary and could have been drafted; siblings distinct if required."""

    def walk(node, path):
        if ctx.p is not None:
            ctx.p(path)
        if not node.children:
            return
        qv = ctx.q(path)
        tokens = [c.token for c in node.children]
        for t in tokens:
            if not 0 <= t < ctx.V:
                raise SpecTheoryValueError(f"tree: token {t} below path {path} is outside the vocabulary [0, {ctx.V})")
            if qv[t] <= 0:
                raise SpecTheoryValueError(
                    f"tree: token {t} below path {path} has q({path})[{t}] = 0, so it cannot have been drafted"
                )
        if distinct and len(set(tokens)) < len(tokens):
            raise SpecTheoryValueError(
                f"tree: the children of path {path} repeat a token ({tokens}); this verifier needs siblings "
                "drafted without replacement (distinct tokens)"
            )
        for c in node.children:
            walk(c, path + (c.token,))

    walk(tree, ())


def _as_oracle(oracle):
    if oracle is None or isinstance(oracle, (np.random.Generator, numbers.Integral, np.integer)):
        if isinstance(oracle, bool):
            raise SpecTheoryValueError(f"oracle: expected an oracle, a numpy Generator or a seed, got {oracle!r}")
        rng = oracle if isinstance(oracle, np.random.Generator) else np.random.default_rng(oracle)
        return RandomOracle(rng)
    if callable(getattr(oracle, "coin", None)) and callable(getattr(oracle, "choose", None)):
        return oracle
    raise SpecTheoryValueError(
        f"oracle: expected an object with coin(prob) and choose(weights), a numpy Generator or a seed, "
        f"got {type(oracle).__name__}"
    )


# ---------------------------------------------------------------------------------------------------
# drafting
# ---------------------------------------------------------------------------------------------------
def _draft_rule(ctx: _Context, shape: tuple, oracle) -> DraftNode:
    def build(spec, path, token):
        kids = tuple(build(child_shape, path + (x,), x) for x, child_shape in _children(spec, path, ctx, oracle))
        return DraftNode(token, kids)

    return build(shape, (), None)


def draft_tree(q, shape, rng=None, *, sampling: str = "without_replacement") -> DraftNode:
    """Draft one tree of the given shape from the (context-dependent) draft q.

    Parameters
    ----------
    q : callable, mapping or array_like
        The draft's next-token law after each path (see the module docstring).
    shape : see :func:`check_shape`
    rng : numpy.random.Generator, int or None
    sampling : {"without_replacement", "iid"}
        How siblings are drafted: successive sampling without replacement (distinct siblings; the
        default) or i.i.d. from ``q(path)`` (siblings may repeat).

    Returns
    -------
    DraftNode
        The root (token ``None``); ``root.children`` are the drafted first tokens, and so on.

    Cost: one draw per node, O(V) each. A node with more children than its draft law has tokens
    raises SpecTheoryValueError when it is drafted (without replacement only).

    Examples
    --------
    >>> t = draft_tree([0.5, 0.3, 0.2], (2, 1), rng=0)
    >>> t.shape, t.size, len({c.token for c in t.children})
    ((((),), ((),)), 4, 2)
    """
    shape = check_shape(shape)
    ctx = _Context(None, q, _check_sampling(sampling))
    return _draft_rule(ctx, shape, _as_oracle(rng))


def enumerate_trees(q, shape, *, sampling: str = "without_replacement") -> Iterator[tuple[float, DraftNode]]:
    """Yield ``(probability, tree)`` for every tree of the shape the draft can produce.

    The same drafting code as :func:`draft_tree`, run over every branch. Cost: one tree per ordered
    choice of siblings at every node — exponential in the number of nodes; small V only.

    Examples
    --------
    >>> trees = list(enumerate_trees([0.5, 0.5], (2,)))
    >>> [(prob, [c.token for c in t.children]) for prob, t in sorted(trees, key=lambda pt: pt[1].children[0].token)]
    [(0.5, [0, 1]), (0.5, [1, 0])]
    """
    shape = check_shape(shape)
    ctx = _Context(None, q, _check_sampling(sampling))
    _check_reachable(ctx, shape)
    yield from enumerate_branches(lambda oracle: _draft_rule(ctx, shape, oracle))


# ---------------------------------------------------------------------------------------------------
# the verifiers' rules
# ---------------------------------------------------------------------------------------------------
def _traversal(ctx: _Context, spec, oracle):
    """Traversal Verification (Weng et al., arXiv 2505.12398, §3), written recursively.

    The paper's loop repeatedly takes the first leaf X_γ of the current tree in depth-first order;
    accepts the chain root → X_γ with probability p_α(X_γ) (and then draws the last token from
    M_b(· | X_γ)); otherwise, with X_{γ−1} its parent,

        M_b(·|X_{γ−1}) ← norm([p_α(X_{γ−1}) M_b(·|X_{γ−1}) − M_s(·|X_{γ−1})]+),
        M_s(·|X_{γ−1}) ← norm(M_s(·|X_{γ−1}) with M_s(x_γ|X_{γ−1}) set to 0),
        p_α(X_{γ−1}) ← S / (S + 1 − p_α(X_{γ−1})),  S = Σ_x [p_α(X_{γ−1}) M_b(x|X_{γ−1}) − M_s(x|X_{γ−1})]+,

    deletes X_γ and recomputes p_α below X_{γ−1} by p_α(X_t) = min(p_α(X_{t−1}) M_b(x_t|X_{t−1}) /
    M_s(x_t|X_{t−1}), 1) (p_α(root) = 1; M_b = p, M_s = q until modified). The root is accepted when
    it is all that is left. The first leaf in depth-first order lies in the first remaining child's
    subtree, so the loop finishes that subtree (accepting in it, or deleting its root) before it
    moves to the next sibling, and a parent is tested once all its children are deleted: the
    recursion below visits the nodes in exactly the loop's order (post-order) and computes each p_α
    when its node is first tested, from the same current values the loop's recomputation uses
    (nothing above a subtree changes while the subtree is being traversed).

    Returns ``(path, law)`` for the accepted node, or ``None`` when ``spec``'s root is rejected.
    """

    def visit(node_spec, path, w, is_root):
        P = ctx.p(path)  # M_b(·|path)
        D = ctx.q(path)  # M_s(·|path)
        for x, child in _children(node_spec, path, ctx, oracle):
            # D[x] > 0: x was drafted from the current D (siblings removed as they were drafted)
            w_child = _ratio(w * P[x], D[x])
            out = visit(child, path + (x,), w_child, False)
            if out is not None:
                return out
            r = np.maximum(w * P - D, 0.0)
            S = float(r.sum())
            denom = S + (1.0 - w)  # not (S + 1) − w: S may be far below the rounding of 1
            # 0/0 only where the rejection just seen had probability 0 (w = 1 and P = D)
            w = S / denom if denom > 0 else 1.0
            if S > 0:
                P = r / S
            D = _remove(D, x)
        if is_root or oracle.coin(w):
            return path, P
        return None

    return visit(spec, (), 1.0, True)


def _rrs(ctx: _Context, spec, oracle, without_replacement: bool):
    """Top-down token-level RRS: at each accepted node test its children in order with
    min(1, R(x)/D(x)); on rejection R ← norm((R − D)+) (and, without replacement, D ← D without x,
    renormalised); descend into the first accepted child; if every child is rejected, emit from R.
    At a leaf R = p(path): the bonus token."""
    node, path = spec, ()
    while True:
        R = ctx.p(path)
        D = ctx.q(path)
        for x, child in _children(node, path, ctx, oracle):
            if oracle.coin(_ratio(R[x], D[x])):
                node, path = child, path + (x,)
                break
            R = residual(R, D)
            if without_replacement:
                D = _remove(D, x)
        else:
            return path, R


_RULES = {
    "traversal": lambda ctx, spec, oracle: _traversal(ctx, spec, oracle),
    "rrs_wor": lambda ctx, spec, oracle: _rrs(ctx, spec, oracle, True),
    "rrs": lambda ctx, spec, oracle: _rrs(ctx, spec, oracle, False),
}

#: The tree verifiers and their native sibling-drafting schemes (the one each is lossless with).
METHODS = {"traversal": "without_replacement", "rrs_wor": "without_replacement", "rrs": "iid"}


def _verify(method, p, q, tree, oracle, distinct):
    ctx = _Context(p, q)
    tree = _as_tree(tree)
    _check_tree(ctx, tree, distinct)
    path, law = _RULES[method](ctx, tree, _as_oracle(oracle))
    return tuple(int(t) for t in path), np.array(law, dtype=np.float64)


def traversal_verify(p, q, tree, oracle=None) -> tuple[tuple[int, ...], np.ndarray]:
    """Traversal Verification of one drafted tree (Weng et al., arXiv 2505.12398, §3).

    Every node u gets a *sequence-level* weight, p_α(root) = 1 and
    p_α(u) = min(p_α(parent) · M_b(x_u | parent) / M_s(x_u | parent), 1), with M_b = p and M_s = q
    at first. Leaves are tested first, in depth-first order, each accepting its whole root-to-leaf
    chain with probability p_α. Rejecting a node v with parent u turns u's target into the residual
    M_b ← norm([p_α(u) M_b − M_s]+), removes x_v from u's draft M_s (renormalised), sets
    p_α(u) ← S / (S + 1 − p_α(u)) with S = Σ [p_α(u) M_b − M_s]+, recomputes the weights below u,
    and deletes v; u is tested when all its children are deleted, the root is accepted when it is
    the only node left. The last token is drawn from the accepted node's M_b: the target p(path) at
    an original leaf, the residual at a node whose children were all rejected.

    This is the paper's pseudocode with nothing changed (the weight update is the block-verification
    one, h = S/(S + 1 − p_α); the variant p_α(u) ← min(S/(1 − M_s(x_v)), 1) is *not* lossless). On
    a chain it is block verification (arXiv 2403.10444), on a depth-1 tree RRS without replacement.

    Parameters
    ----------
    p, q : callable, mapping or array_like
        Target and draft next-token laws after each path (see the module docstring).
    tree : DraftNode or nested ``[(token, children), ...]``
        The drafted tree; siblings must be distinct (drafted without replacement, in this order)
        and every token must have q > 0 at its parent's path.
    oracle : oracle, numpy.random.Generator, int or None
        Where the random decisions come from (``coin``/``choose``, see
        :mod:`spectheory.verifiers._branching`); a Generator or seed for sampling.

    Returns
    -------
    accepted : tuple of int
        The accepted tokens (a root-to-node path; ``()`` if nothing was accepted).
    law : numpy.ndarray, shape (V,)
        The law of the token emitted after them (to be drawn by the caller).

    Cost: O(n V) for a tree of n nodes (each node is tested at most once; each rejection costs one
    O(V) residual update; the weights below a node are computed when they are first needed, which
    gives the same values as the paper's recomputation after every rejection).

    Lossless (Theorem 3.3 of the paper): by induction over subtrees, a subtree rooted at u with
    current (p_α, M_b, M_s) = (w, P, D) ends by accepting a chain through u with probability w, the
    emitted continuation then having law P (continued by p), and rejects u with probability 1 − w —
    the first child accounts for min(w P, D), its rejection (probability 1 − w + S) leaves the
    mass (w P − D)+ = (1 − w + S) · w' · norm((w P − D)+) to the remaining siblings and u, which is
    the same problem with w' = S/(S + 1 − w) and siblings drawn from D without x. At the root w = 1.

    Examples
    --------
    >>> import numpy as np
    >>> p = {(): [0.6, 0.3, 0.1], (0,): [0.2, 0.8, 0.0], (2,): [0.5, 0.5, 0.0], (0, 1): [1.0, 0.0, 0.0]}
    >>> q = lambda path: [0.3, 0.3, 0.4] if len(path) % 2 == 0 else [0.1, 0.6, 0.3]
    >>> tree = [(2, []), (0, [(1, [])])]          # root children 2 then 0; node 0 has child 1
    >>> accepted, law = traversal_verify(p, q, tree, oracle=np.random.default_rng(0))
    >>> accepted in {(), (2,), (0,), (0, 1)}, law.shape
    (True, (3,))
    """
    return _verify("traversal", p, q, tree, oracle, distinct=True)


def tree_rrs_wor_verify(p, q, tree, oracle=None) -> tuple[tuple[int, ...], np.ndarray]:
    """Token-level RRS without replacement on a tree, top-down (Sequoia, arXiv 2402.12374, Alg. 2).

    From the root: R = p(path), D = q(path); test the children in drafting order, accepting child x
    with probability min(1, R(x)/D(x)); after a rejection R ← norm((R − D)+) with the current
    renormalised D, then D ← D without x, renormalised. Descend into the first accepted child and
    repeat; if all children are rejected, emit from R; at a leaf emit the bonus from p(path).
    Lossless for siblings drafted without replacement (REFERENCE §3). Same parameters and returns
    as :func:`traversal_verify`; siblings must be distinct. Cost O(n V).

    Examples
    --------
    >>> import numpy as np
    >>> accepted, law = tree_rrs_wor_verify([0.6, 0.3, 0.1], [0.3, 0.3, 0.4], [(2, []), (0, [])], oracle=1)
    >>> accepted in {(), (2,), (0,)}, round(float(law.sum()), 12)
    (True, 1.0)
    """
    return _verify("rrs_wor", p, q, tree, oracle, distinct=True)


def tree_rrs_verify(p, q, tree, oracle=None) -> tuple[tuple[int, ...], np.ndarray]:
    """Token-level RRS with replacement on a tree, top-down (SpecInfer, arXiv 2305.09781).

    As :func:`tree_rrs_wor_verify` but D stays q(path): R_{i+1} = norm((R_i − q)+). Lossless when the
    siblings are drafted **i.i.d.** from q(path) (duplicates allowed, each tested again, REFERENCE
    §3). With siblings drafted *without replacement* it is **not lossless** in general (after a
    rejection the next sibling is drawn from q without the rejected token, not from q) — the
    combination is kept only as a comparison; :func:`tree_output_law` gives its exact, biased law.

    Examples
    --------
    >>> accepted, law = tree_rrs_verify([0.6, 0.3, 0.1], [0.3, 0.3, 0.4], [(2, []), (2, [])], oracle=1)
    >>> accepted in {(), (2,)}
    True
    """
    return _verify("rrs", p, q, tree, oracle, distinct=False)


# ---------------------------------------------------------------------------------------------------
# exact laws
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TreeRound:
    """The exact law of one verification round on a draft tree.

    Attributes
    ----------
    law : dict
        ``{sequence: probability}`` over the emitted sequences (accepted tokens, then the
        correction/bonus token); positive entries only, summing to 1 up to rounding.
    expected_accepted : float
        E[number of accepted draft tokens].
    expected_emitted : float
        E[number of emitted tokens] = ``expected_accepted + 1``.
    method, sampling : str
        The verifier and the sibling-drafting scheme.
    branches : int
        Number of (draft, decision) branches enumerated.
    """

    law: dict
    expected_accepted: float
    expected_emitted: float
    method: str
    sampling: str
    branches: int


def _check_method(method, sampling):
    if method not in _RULES:
        raise SpecTheoryValueError(f"method: expected one of {sorted(_RULES)}, got {method!r}")
    sampling = METHODS[method] if sampling is None else _check_sampling(sampling)
    if method in ("traversal", "rrs_wor") and sampling != "without_replacement":
        raise SpecTheoryValueError(
            f"sampling: {method!r} removes rejected tokens from the draft law, so it needs siblings drafted "
            f"without replacement, got {sampling!r}"
        )
    return method, sampling


def tree_round(p, q, shape, method: str = "traversal", *, sampling: str | None = None,
               max_branches: int = MAX_BRANCHES) -> TreeRound:
    """Exact law and expected accepted length of one round: draft a tree of ``shape``, verify it.

    Sums over every drafted tree (siblings without replacement, or i.i.d. for ``sampling="iid"``)
    and every branch of the verifier's rule, by running that rule through
    :func:`~spectheory.verifiers._branching.enumerate_branches` with the draft drawn lazily through
    the same oracle (module docstring).

    Parameters
    ----------
    p, q : callable, mapping or array_like
        Target and draft next-token laws after each path.
    shape : see :func:`check_shape`
    method : {"traversal", "rrs_wor", "rrs"}
    sampling : {"without_replacement", "iid"}, optional
        Sibling drafting; default the method's native scheme (:data:`METHODS`). ``"rrs"`` with
        ``"without_replacement"`` is allowed as a (lossy) comparison.
    max_branches : int
        Refuse (SpecTheoryValueError) beyond this many enumerated branches.

    Cost: exponential — up to Π_nodes |supp q| drafts times 2^(nodes) decisions, each branch re-run
    in O(n V); V ≤ 6 and trees of a few nodes.

    Examples
    --------
    >>> r = tree_round([0.6, 0.3, 0.1], [0.3, 0.3, 0.4], (2, 1))
    >>> round(sum(r.law.values()), 12), round(r.expected_emitted - r.expected_accepted, 12)
    (1.0, 1.0)
    >>> law = complete_with_target(r.law, [0.6, 0.3, 0.1], 3)      # lossless: the target's law
    >>> target = target_sequence_law([0.6, 0.3, 0.1], 3)
    >>> max(abs(law.get(s, 0.0) - target.get(s, 0.0)) for s in set(law) | set(target)) < 1e-12
    True
    """
    method, sampling = _check_method(method, sampling)
    shape = check_shape(shape)
    ctx = _Context(p, q, sampling)
    _check_reachable(ctx, shape)
    rule = _RULES[method]
    law: dict[tuple[int, ...], float] = {}
    accepted = 0.0
    count = 0
    for weight, (path, resid) in enumerate_branches(lambda oracle: rule(ctx, shape, oracle)):
        count += 1
        if count > max_branches:
            raise SpecTheoryValueError(
                f"tree_round: more than {max_branches:,} branches to enumerate; use a smaller V or tree"
            )
        path = tuple(int(t) for t in path)
        accepted += weight * len(path)
        for y in np.flatnonzero(resid > 0):
            key = path + (int(y),)
            law[key] = law.get(key, 0.0) + weight * float(resid[y])
    return TreeRound(law, accepted, accepted + 1.0, method, sampling, count)


def tree_output_law(p, q, shape, method: str = "traversal", *, sampling: str | None = None) -> dict:
    """Exact law ``{emitted sequence: probability}`` of one round (see :func:`tree_round`)."""
    return tree_round(p, q, shape, method, sampling=sampling).law


def expected_accepted_length(p, q, shape, method: str = "traversal", *, sampling: str | None = None) -> float:
    """Exact E[number of accepted draft tokens] in one round (see :func:`tree_round`); the expected
    number of emitted tokens is one more.

    Examples
    --------
    >>> p, q = [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]
    >>> a = expected_accepted_length(p, q, (2, 1))
    >>> b = expected_accepted_length(p, q, (2, 1), "rrs_wor")
    >>> a >= b
    True
    """
    return tree_round(p, q, shape, method, sampling=sampling).expected_accepted


def sample_round(p, q, shape, method: str = "traversal", rng=None, *, sampling: str | None = None):
    """Draft a tree, verify it and draw the last token: one round's emitted tokens (a tuple).

    Examples
    --------
    >>> out = sample_round([0.6, 0.3, 0.1], [0.3, 0.3, 0.4], (2, 1), rng=3)
    >>> 1 <= len(out) <= 3
    True
    """
    method, sampling = _check_method(method, sampling)
    shape = check_shape(shape)
    ctx = _Context(p, q, sampling)
    if not (rng is None or isinstance(rng, np.random.Generator)
            or isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, bool)):
        raise SpecTheoryValueError(f"rng: expected a numpy Generator or an integer seed, got {type(rng).__name__}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    oracle = RandomOracle(rng)
    tree = _draft_rule(ctx, shape, oracle)
    path, law = _RULES[method](ctx, tree, oracle)
    y = int(rng.choice(law.shape[0], p=law / law.sum()))
    return tuple(int(t) for t in path) + (y,)


def target_sequence_law(p, length: int) -> dict:
    """The target's law of the next ``length`` tokens: ``{sequence: Π_i p(seq[:i])[seq[i]]}``
    (positive entries only). Cost O(V^length)."""
    return complete_with_target({(): 1.0}, p, length)


def complete_with_target(law: dict, p, length: int) -> dict:
    """Continue every sequence of ``law`` by sampling from the target up to ``length`` tokens.

    A verifier is lossless iff ``complete_with_target(law, p, L)`` equals
    ``target_sequence_law(p, L)`` for L ≥ the longest emitted sequence (depth + 1).
    """
    if isinstance(length, bool) or not isinstance(length, (numbers.Integral, np.integer)) or length < 0:
        raise SpecTheoryValueError(f"length: must be an integer >= 0, got {length!r}")
    model = _PathModel(p, "p")
    out: dict[tuple[int, ...], float] = {}
    stack = [(tuple(int(t) for t in s), float(w)) for s, w in law.items() if w > 0]
    while stack:
        seq, w = stack.pop()
        if len(seq) > length:
            raise SpecTheoryValueError(f"complete_with_target: sequence {seq} is longer than length = {length}")
        if len(seq) == length:
            out[seq] = out.get(seq, 0.0) + w
            if len(out) > MAX_SEQUENCES:
                raise SpecTheoryValueError(f"complete_with_target: more than {MAX_SEQUENCES:,} sequences")
            continue
        pv = model(seq)
        for y in np.flatnonzero(pv > 0):
            stack.append((seq + (int(y),), w * float(pv[y])))
    return out
