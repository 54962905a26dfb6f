"""Draft trees: traversal verification and tree RRS (spectheory.verifiers.trees).

Every law here is exact (enumeration of drafts and verifier branches). "Lossless" means: the emitted
sequence (accepted tokens + correction/bonus token, length ≤ depth + 1), continued by sampling from
the target p(path) up to depth + 1 tokens, has the law Π_i p(s[:i])[s[i]] of the target, to 1e-10.
"""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectheory._validation import SpecTheoryValueError
from spectheory.testing import distributions
from spectheory.verifiers import trees as T
from spectheory.verifiers._branching import enumerate_branches

TOL = 1e-10


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def seeded_model(seed, V, alpha=0.5):
    """A context-dependent law: a Dirichlet(alpha) vector per path, derived from the seed."""
    cache = {}

    def f(path):
        if path not in cache:
            rng = np.random.default_rng([seed, len(path)] + [t + 1 for t in path])
            cache[path] = rng.dirichlet(np.full(V, alpha))
        return cache[path]

    return f


def pooled_model(pool, seed, need=1):
    """path -> one of ``pool`` (chosen by a seeded hash of the path); mixed with uniform where its
    support is smaller than ``need`` (a node cannot have more distinct children than that)."""
    V = len(pool[0])
    cache = {}

    def f(path):
        if path not in cache:
            rng = np.random.default_rng([seed, len(path)] + [t + 1 for t in path])
            x = pool[int(rng.integers(len(pool)))]
            if np.count_nonzero(x) < need:
                x = 0.5 * x + 0.5 / V
            cache[path] = x
        return cache[path]

    return f


def max_branching(shape):
    shape = T.check_shape(shape)
    return max([len(shape)] + [max_branching(c) for c in shape]) if shape else 0


def depth(shape):
    shape = T.check_shape(shape)
    return 1 + max(depth(c) for c in shape) if shape else 0


def gap_to_target(law, p, length):
    got = T.complete_with_target(law, p, length)
    want = T.target_sequence_law(p, length)
    return max(abs(got.get(s, 0.0) - want.get(s, 0.0)) for s in set(got) | set(want))


def law_of(rule):
    """{emitted sequence: prob} of a rule(oracle) -> (path, residual)."""
    law = {}
    for w, (path, resid) in enumerate_branches(rule):
        for y in np.flatnonzero(resid > 0):
            key = tuple(path) + (int(y),)
            law[key] = law.get(key, 0.0) + w * float(resid[y])
    return law


def law_distance(a, b):
    return max(abs(a.get(s, 0.0) - b.get(s, 0.0)) for s in set(a) | set(b))


@st.composite
def tree_problems(draw, shapes, max_V=4, equal_allowed=True):
    """(p, q, shape, V): context-dependent p and q built from pools of hypothesis distributions
    (one-hot, sparse, tiny masses, uniform, ...), p = q at every path sometimes."""
    shape = T.check_shape(draw(st.sampled_from(shapes)))
    k = max(max_branching(shape), 1)
    V = draw(st.integers(max(k, 2), max_V))
    p_pool = [draw(distributions(V)) for _ in range(draw(st.integers(1, 3)))]
    seed = draw(st.integers(0, 2**32 - 1))
    p = pooled_model(p_pool, seed)
    relation = draw(st.sampled_from(["independent", "independent", "equal"] if equal_allowed else ["independent"]))
    if relation == "equal":  # q = p wherever p's support allows the node's children
        q = p if k <= 1 else pooled_model(p_pool, seed, need=k)
    else:
        q_pool = [draw(distributions(V)) for _ in range(draw(st.integers(1, 3)))]
        q = pooled_model(q_pool, draw(st.integers(0, 2**32 - 1)), need=k)
    return p, q, shape, V


SMALL_SHAPES = [(1,), (2,), (3,), (1, 1), (2, 1), (1, 2), ((((),), ()), ())]


# ---------------------------------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------------------------------
def literal_traversal(p, q, tree, oracle, wrong_update=False):
    """The paper's loop, transcribed literally (arXiv 2505.12398, §3): initialise p_α for every node;
    repeat: take the first leaf in DFS order; accept its chain with probability p_α, or update its
    parent (residual M_b, M_s without the token, p_α ← S/(S + 1 − p_α)), delete it, and recompute p_α
    below the parent. ``wrong_update`` uses p_α ← min(S/(1 − M_s(x_v)), 1) instead (not lossless)."""
    nodes = []

    def add(node, path, parent):
        i = len(nodes)
        nodes.append({"path": path, "parent": parent, "children": [], "token": node.token})
        if parent is not None:
            nodes[parent]["children"].append(i)
        for c in node.children:
            add(c, path + (c.token,), i)

    add(tree, (), None)
    Mb = [np.array(p(n["path"]), dtype=float) for n in nodes]
    Ms = [np.array(q(n["path"]), dtype=float) for n in nodes]
    pa = [1.0] * len(nodes)

    def recompute(i):
        for c in nodes[i]["children"]:
            x = nodes[c]["token"]
            with np.errstate(over="ignore"):
                pa[c] = min(pa[i] * Mb[i][x] / Ms[i][x], 1.0)
            recompute(c)

    recompute(0)
    while True:
        v = 0
        while nodes[v]["children"]:
            v = nodes[v]["children"][0]
        if v == 0:
            return (), Mb[0]
        if oracle.coin(pa[v]):
            return nodes[v]["path"], Mb[v]
        u, x = nodes[v]["parent"], nodes[v]["token"]
        r = np.maximum(pa[u] * Mb[u] - Ms[u], 0.0)
        S = r.sum()
        if wrong_update:
            new_pa = min(S / (1.0 - Ms[u][x]), 1.0) if Ms[u][x] < 1 else 0.0
        else:
            new_pa = S / (S + (1.0 - pa[u])) if S + (1.0 - pa[u]) > 0 else 1.0
        if S > 0:
            Mb[u] = r / S
        Ms[u] = Ms[u].copy()
        Ms[u][x] = 0.0
        if Ms[u].sum() > 0:
            Ms[u] /= Ms[u].sum()
        pa[u] = new_pa
        nodes[u]["children"].remove(v)
        recompute(u)


@np.errstate(over="ignore")
def block_verification_law(p, q, chain):
    """REFERENCE §3 block verification of one chain: law of (X_1..X_τ, Y) with
    P(τ = i) = h_i Π_{j>i} (1 − h_j)."""
    g = len(chain)
    b = [1.0]
    for i, x in enumerate(chain):
        pi, qi = p(tuple(chain[:i])), q(tuple(chain[:i]))
        b.append(min(b[-1] * pi[x] / qi[x], 1.0))
    h = []
    for i in range(g + 1):
        if i == g:
            h.append(b[g])
            continue
        nxt_p, nxt_q = p(tuple(chain[:i])), q(tuple(chain[:i]))
        r = np.maximum(b[i] * nxt_p - nxt_q, 0.0).sum()
        den = r + (1.0 - b[i])
        h.append(r / den if den > 0 else 1.0)
    law = {}
    for tau in range(g + 1):
        prob = h[tau] * np.prod([1.0 - h[j] for j in range(tau + 1, g + 1)])
        if prob <= 0:
            continue
        ctx = tuple(chain[:tau])
        if tau == g:
            y_law = np.asarray(p(ctx))
        else:
            y_law = np.maximum(b[tau] * np.asarray(p(ctx)) - np.asarray(q(ctx)), 0.0)
            # zero mass only from rounding where p = q (REFERENCE §3): fall back to p
            y_law = y_law / y_law.sum() if y_law.sum() > 0 else np.asarray(p(ctx))
        for y in np.flatnonzero(y_law > 0):
            law[ctx + (int(y),)] = law.get(ctx + (int(y),), 0.0) + prob * y_law[y]
    return law


@np.errstate(over="ignore")
def block_expected_tokens(p, q, g):
    """Σ_{i=0..γ} E_{X~q}[b_i] by enumerating chains (REFERENCE §3)."""
    total = 0.0
    V = len(np.asarray(q(())))
    for chain in itertools.product(range(V), repeat=g):
        prob, b, s = 1.0, 1.0, 1.0
        for i, x in enumerate(chain):
            qi = np.asarray(q(tuple(chain[:i])))
            prob *= qi[x]
            if prob == 0:
                break
            b = min(b * p(tuple(chain[:i]))[x] / qi[x], 1.0)
            s += b
        if prob > 0:
            total += prob * s
    return total


def rrs_wor_law(p, q, drafts):
    """REFERENCE §3 RRS without replacement at one position: law of the output token."""
    out = np.zeros(len(p))

    def rec(R, D, i, mass):
        if i == len(drafts):
            out[:] += mass * R
            return
        x = drafts[i]
        a = min(1.0, R[x] / D[x])
        out[x] += mass * a
        if a < 1:
            r = np.maximum(R - D, 0.0)
            R2 = r / r.sum() if r.sum() > 0 else R
            D2 = D.copy()
            D2[x] = 0.0
            D2 = D2 / D2.sum() if D2.sum() > 0 else D2
            rec(R2, D2, i + 1, mass * (1 - a))

    rec(np.asarray(p, float), np.asarray(q, float), 0, 1.0)
    return out


# ---------------------------------------------------------------------------------------------------
# losslessness
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["traversal", "rrs_wor", "rrs"])
@settings(max_examples=60)
@given(problem=tree_problems(SMALL_SHAPES))
def test_lossless_context_dependent(method, problem):
    p, q, shape, _V = problem
    r = T.tree_round(p, q, shape, method)
    assert abs(sum(r.law.values()) - 1.0) < TOL
    assert max(len(s) for s in r.law) <= depth(shape) + 1
    assert gap_to_target(r.law, p, depth(shape) + 1) < TOL
    assert r.expected_emitted == pytest.approx(r.expected_accepted + 1.0)
    assert -TOL <= r.expected_accepted <= depth(shape) + TOL


@pytest.mark.parametrize("shape", [(2, 2), (2, 1, 1), (3, 1), (((), ()), ((),)), (1, 2, 1), (((),), (((),),))])
@pytest.mark.parametrize("method", ["traversal", "rrs_wor"])
def test_lossless_larger_trees(shape, method):
    V = 3
    for seed in range(2):
        p, q = seeded_model(seed, V), seeded_model(100 + seed, V, alpha=1.0)
        law = T.tree_output_law(p, q, shape, method)
        assert gap_to_target(law, p, depth(shape) + 1) < TOL


def test_rrs_with_replacement_on_wor_siblings_is_not_lossless():
    """SpecInfer's residual update assumes the next sibling is drawn from q; drafted without
    replacement it is drawn from q without the rejected token, and the output is biased."""
    p, q = [0.5, 0.3, 0.2], [0.1, 0.2, 0.7]
    law_wor = T.tree_output_law(p, q, (2,), "rrs", sampling="without_replacement")
    assert gap_to_target(law_wor, p, 2) > 0.01
    law_iid = T.tree_output_law(p, q, (2,), "rrs", sampling="iid")
    assert gap_to_target(law_iid, p, 2) < TOL
    assert T.tree_round(p, q, (2,), "rrs").sampling == "iid"  # its native (lossless) scheme
    # on chains there are no siblings: both schemes coincide and are lossless
    pc, qc = seeded_model(1, 3), seeded_model(2, 3)
    assert gap_to_target(T.tree_output_law(pc, qc, (1, 1), "rrs", sampling="wor"), pc, 3) < TOL


def test_wrong_weight_update_is_detected():
    """REFERENCE §3: the variant p_α(u) ← min(S/(1 − M_s(x_v)), 1) is not lossless; the test harness
    sees it, and sees the published update as lossless on the same instances."""
    V = 3
    worst_right, worst_wrong = 0.0, 0.0
    for seed in range(3):
        p, q = seeded_model(seed, V), seeded_model(50 + seed, V)
        for wrong in (False, True):
            law = {}
            for prob, tree in T.enumerate_trees(q, (2, 1)):
                for s, w in law_of(lambda o, p=p, q=q, tree=tree, wrong=wrong: literal_traversal(p, q, tree, o, wrong)).items():
                    law[s] = law.get(s, 0.0) + prob * w
            gap = gap_to_target(law, p, 3)
            if wrong:
                worst_wrong = max(worst_wrong, gap)
            else:
                worst_right = max(worst_right, gap)
    assert worst_right < TOL
    assert worst_wrong > 1e-3


# ---------------------------------------------------------------------------------------------------
# the published pseudocode, chains and depth-1 trees
# ---------------------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(problem=tree_problems([(2, 1), (1, 2), ((((),), ()), ()), (2,), (1, 1)]), pick=st.integers(0, 10**6))
def test_matches_literal_pseudocode_on_fixed_trees(problem, pick):
    """The module's (recursive, lazily weighted) traversal has the same law as the paper's loop on
    every fixed tree."""
    p, q, shape, _V = problem
    trees = list(T.enumerate_trees(q, shape))
    _, tree = trees[pick % len(trees)]
    ours = law_of(lambda o: T.traversal_verify(p, q, tree, o))
    literal = law_of(lambda o: literal_traversal(p, q, tree, o))
    assert law_distance(ours, literal) < TOL


@settings(max_examples=40)
@given(problem=tree_problems([(1,), (1, 1), (1, 1, 1)]), pick=st.integers(0, 10**6))
def test_chain_is_block_verification(problem, pick):
    p, q, shape, _V = problem
    g = depth(shape)
    trees = list(T.enumerate_trees(q, shape))
    _, tree = trees[pick % len(trees)]
    chain = tuple(path[-1] for path in tree.paths())
    ours = law_of(lambda o: T.traversal_verify(p, q, tree, o))
    assert law_distance(ours, block_verification_law(p, q, chain)) < TOL
    # expected tokens per round: Σ_{i=0..γ} E_{X~q}[b_i] (accepted + the bonus/correction token)
    r = T.tree_round(p, q, shape)
    assert r.expected_emitted == pytest.approx(block_expected_tokens(p, q, g), abs=TOL)


@settings(max_examples=40)
@given(problem=tree_problems([(1,), (2,), (3,)], max_V=5), pick=st.integers(0, 10**6))
def test_depth_one_tree_is_rrs_without_replacement(problem, pick):
    p, q, shape, V = problem
    trees = list(T.enumerate_trees(q, shape))
    _, tree = trees[pick % len(trees)]
    drafts = [c.token for c in tree.children]
    want = rrs_wor_law(p(()), q(()), drafts)
    for verify in (T.traversal_verify, T.tree_rrs_wor_verify):
        first = {}  # law of the first emitted token (the bonus after an accepted draft is from p)
        for s, w in law_of(lambda o, verify=verify: verify(p, q, tree, o)).items():
            first[s[:1]] = first.get(s[:1], 0.0) + w
        assert law_distance(first, {(y,): want[y] for y in range(V) if want[y] > 0}) < TOL
    a_trav = T.expected_accepted_length(p, q, shape)
    assert a_trav == pytest.approx(T.expected_accepted_length(p, q, shape, "rrs_wor"), abs=TOL)
    if len(shape) == 2:  # REFERENCE §3 closed sum for two drafts without replacement
        p0, q0 = np.asarray(p(()), float), np.asarray(q(()), float)
        r = np.maximum(p0 - q0, 0.0)
        r = r / r.sum() if r.sum() > 0 else p0
        closed = np.minimum(p0, q0).sum()
        for x in np.flatnonzero(q0 > 0):
            rest = np.delete(q0, x).sum()
            if rest <= 0:
                continue
            qx = q0.copy()
            qx[x] = 0.0
            closed += q0[x] * (1 - min(1.0, p0[x] / q0[x])) * np.minimum(r, qx / rest).sum()
        assert a_trav == pytest.approx(closed, abs=1e-9)


def test_lazy_drafting_equals_whole_tree_enumeration():
    V = 3
    p, q = seeded_model(7, V), seeded_model(8, V, alpha=2.0)
    for method, verify in (("traversal", T.traversal_verify), ("rrs_wor", T.tree_rrs_wor_verify),
                           ("rrs", T.tree_rrs_verify)):
        sampling = "iid" if method == "rrs" else "without_replacement"
        full = {}
        total = 0.0
        for prob, tree in T.enumerate_trees(q, (2, 1), sampling=sampling):
            total += prob
            for s, w in law_of(lambda o, tree=tree, verify=verify: verify(p, q, tree, o)).items():
                full[s] = full.get(s, 0.0) + prob * w
        assert total == pytest.approx(1.0, abs=TOL)
        assert law_distance(full, T.tree_output_law(p, q, (2, 1), method, sampling=sampling)) < TOL


# ---------------------------------------------------------------------------------------------------
# traversal vs token-level RRS without replacement
# ---------------------------------------------------------------------------------------------------
@settings(max_examples=40)
@given(problem=tree_problems([(2, 1), (1, 2), (3, 1), ((((),), ()), ()), (1, 1)], equal_allowed=True))
def test_traversal_accepts_at_least_as_much_as_tree_rrs_wor(problem):
    """Checked, not proved: the paper proves optimality on a chain (Theorem 3.4, equal to block
    verification); on trees no theorem is stated. No counterexample in several thousand random trees."""
    p, q, shape, _V = problem
    a = T.expected_accepted_length(p, q, shape, "traversal")
    b = T.expected_accepted_length(p, q, shape, "rrs_wor")
    assert a >= b - 1e-12


def test_traversal_beats_token_level_on_an_example():
    p, q = seeded_model(3, 4), seeded_model(4, 4)
    a = T.expected_accepted_length(p, q, (2, 1), "traversal")
    b = T.expected_accepted_length(p, q, (2, 1), "rrs_wor")
    assert a > b + 1e-3


# ---------------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------------
def test_sampler_matches_exact_law():
    p, q = seeded_model(11, 3), seeded_model(12, 3, alpha=1.0)
    law = T.tree_output_law(p, q, (2, 1))
    rng = np.random.default_rng(0)
    n = 4000
    counts = {}
    for _ in range(n):
        s = T.sample_round(p, q, (2, 1), rng=rng)
        counts[s] = counts.get(s, 0) + 1
    assert set(counts) <= set(law)
    for s, prob in law.items():
        sd = np.sqrt(prob * (1 - prob) / n)
        assert abs(counts.get(s, 0) / n - prob) < 5 * sd + 1e-3


def test_draft_tree_shapes_and_distinct_siblings():
    q = seeded_model(5, 4)
    for seed in range(10):
        t = T.draft_tree(q, (3, 2), rng=seed)
        assert t.shape == T.shape_from_branching((3, 2)) and t.size == 3 + 6 and t.depth == 2
        for node in [t, *t.children]:
            tokens = [c.token for c in node.children]
            assert len(set(tokens)) == len(tokens)
        assert len(t.paths()) == 9
    trees = list(T.enumerate_trees(q, (2, 2)))
    assert sum(w for w, _ in trees) == pytest.approx(1.0, abs=TOL)
    assert len(trees) == (4 * 3) * (4 * 3) ** 2
    # the probability of a tree is the product of the successive-sampling probabilities
    w, t = trees[17]
    want = 1.0
    for node, path in [(t, ())] + [(c, (c.token,)) for c in t.children]:
        rest = np.array(q(path))
        for c in node.children:
            want *= rest[c.token] / rest.sum()
            rest[c.token] = 0.0
    assert w == pytest.approx(want, rel=1e-12)


def test_point_mass_chain_and_root_only():
    # one-hot draft and target: every draft accepted, the bonus from p
    p = lambda path: np.eye(3)[len(path) % 3]
    r = T.tree_round(p, p, (1, 1))
    assert r.law == {(0, 1, 2): 1.0} and r.expected_accepted == 2.0
    # the root alone: nothing drafted, the token from p
    r = T.tree_round([0.2, 0.8], [0.5, 0.5], ())
    assert r.law == pytest.approx({(0,): 0.2, (1,): 0.8}) and r.expected_accepted == 0.0


def test_docstring_examples():
    result = doctest.testmod(T, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 5


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
P3, Q3 = [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]


@pytest.mark.parametrize(
    "shape",
    [(0,), (2, -1), (1.5,), "ab", 3, [[1], []], (2, [1]), np.zeros((2, 2))],
)
def test_bad_shapes(shape):
    with pytest.raises(SpecTheoryValueError, match="shape|branching"):
        T.tree_round(P3, Q3, shape)


def test_shape_forms():
    assert T.check_shape([2, 1]) == T.check_shape([[[]], [[]]]) == (((),), ((),))
    assert T.check_shape(()) == () and T.check_shape([]) == ()


@pytest.mark.parametrize(
    "p, q, match",
    [
        ([0.5, 0.6, 0.1], Q3, "sum to 1"),
        ([0.5, -0.1, 0.6], Q3, "negative"),
        ([0.5, np.nan, 0.5], Q3, "NaN"),
        (P3, [0.5, 0.5], "vocabulary sizes differ"),
        (P3, [[0.5, 0.5, 0.0]] * 2, "shape"),
        (lambda path: P3 if not path else [0.5, 0.5], Q3, "V = 3"),
        ({(): P3}, Q3, "no entry for the path"),
    ],
)
def test_bad_distributions(p, q, match):
    with pytest.raises(SpecTheoryValueError, match=match):
        T.tree_round(p, q, (2, 1))


def test_children_beyond_support():
    with pytest.raises(SpecTheoryValueError, match="support"):
        T.tree_round(P3, [0.5, 0.5, 0.0], (3,))
    with pytest.raises(SpecTheoryValueError, match="support"):  # deeper: only after some paths
        T.tree_round(P3, lambda path: [0.0, 0.0, 1.0] if path == (1,) else [0.5, 0.5, 0.0], (2, 2))
    with pytest.raises(SpecTheoryValueError, match="support"):
        T.draft_tree([1.0, 0.0], (2,), rng=0)
    # i.i.d. siblings may repeat, so the support does not limit them (the repeat is tested again,
    # against the residual, which has no mass on token 0)
    assert T.tree_round(P3, [1.0, 0.0, 0.0], (2,), "rrs").expected_accepted == pytest.approx(0.6)


def test_bad_methods_and_samplings():
    with pytest.raises(SpecTheoryValueError, match="method"):
        T.tree_round(P3, Q3, (2,), "spectr")
    with pytest.raises(SpecTheoryValueError, match="sampling"):
        T.tree_round(P3, Q3, (2,), "traversal", sampling="iid")
    with pytest.raises(SpecTheoryValueError, match="sampling"):
        T.tree_round(P3, Q3, (2,), "rrs_wor", sampling="greedy")
    with pytest.raises(SpecTheoryValueError, match="rng"):
        T.sample_round(P3, Q3, (2,), rng="seed")


@pytest.mark.parametrize(
    "tree, match",
    [
        ([(0, []), (0, [])], "repeat a token"),
        ([(5, [])], "outside the vocabulary"),
        ([(-1, [])], "outside the vocabulary"),
        ([(1.5, [])], "integer id"),
        ([(0,)], "pair"),
        ([(0, 3)], "sequence"),
        (T.DraftNode(2, ()), "root"),
    ],
)
def test_bad_trees(tree, match):
    with pytest.raises(SpecTheoryValueError, match=match):
        T.traversal_verify(P3, Q3, tree, oracle=0)


def test_tree_tokens_must_be_draftable():
    with pytest.raises(SpecTheoryValueError, match="cannot have been drafted"):
        T.tree_rrs_wor_verify(P3, [0.5, 0.5, 0.0], [(2, [])], oracle=0)
    # duplicates are fine for RRS with replacement (i.i.d. siblings)
    path, law = T.tree_rrs_verify(P3, Q3, [(0, []), (0, [])], oracle=0)
    assert path in {(), (0,)} and law.shape == (3,)
    with pytest.raises(SpecTheoryValueError, match="oracle"):
        T.traversal_verify(P3, Q3, [(0, [])], oracle="x")


def test_complete_with_target_errors():
    with pytest.raises(SpecTheoryValueError, match="longer"):
        T.complete_with_target({(0, 1, 2): 1.0}, P3, 2)
    with pytest.raises(SpecTheoryValueError, match="length"):
        T.target_sequence_law(P3, -1)
