"""st.audit: built-in verifiers pass, broken variants are caught with a counterexample, the exact
machinery of the symbolic uniform is right, Monte Carlo agrees with the exact mode, and bad rules
are reported, never a crash of the audit."""

import itertools
import math

import numpy as np
import pytest

import spectheory as st
from spectheory import _audit_rng
from spectheory.verifiers import VERIFIERS, chains, trees

# each verifier at its largest n here (search over n' <= n and V <= 3 or 4)
N_OF = {"sd": 1, "rrs": 3, "rrs_wor": 3, "kseq": 2, "spechub": 2, "greedy": 3, "optimal": 2}
SEARCH = dict(max_V=3, max_examples=25)


class _Oracle:
    """A verifier's coin/choose on the audit's rng; ``float32`` draws coins as float32 uniforms."""

    def __init__(self, rng, float32=False):
        self.rng, self.float32 = rng, float32

    def coin(self, prob):
        if self.float32:
            return self.rng.uniform(np.float32) <= prob  # the defect: u = 0 once in 2^24
        return self.rng.bernoulli(prob)

    def choose(self, weights):
        if self.float32:  # inverse CDF, first i with u·total <= cumsum[i]: index 0 at u = 0 even if w[0] = 0
            w = np.asarray(weights, dtype=np.float64)
            u, c = self.rng.uniform(np.float32), np.cumsum(w)
            return next((i for i in range(len(w) - 1) if u * c[-1] <= c[i]), len(w) - 1)
        return self.rng.categorical(weights)


def _rule_of(v, float32=False):
    def rule(p, q, drafts, rng):
        oracle = _Oracle(rng, float32)
        out = v._rule(p, q, drafts, oracle)
        return oracle.choose(out) if isinstance(out, np.ndarray) else int(out)

    return rule


# --------------------------------------------------------------------------------- built-ins pass
@pytest.mark.parametrize("name", sorted(VERIFIERS))
def test_builtin_verifier_passes(name):
    v = st.verifier(name)
    r = st.audit(v, n=N_OF[name], **SEARCH)
    assert r.lossless, r.summary()
    assert r.worst_tv < 1e-9 and r.cases > 5
    # on a fixed pair the audit's acceptance is the verifier's closed form, and never above α*
    p, q = np.array([0.5, 0.3, 0.15, 0.05]), np.array([0.1, 0.2, 0.3, 0.4])
    n = N_OF[name]
    one = st.audit(v, n=n, p=p, q=q)
    assert one.lossless and one.tv < 1e-12
    assert one.acceptance == pytest.approx(v.acceptance(p, q, n), abs=1e-10)
    assert one.bound == pytest.approx(st.optimal_acceptance(p, q, n, sampling=v.sampling), abs=1e-12)
    assert not one.exceeds_bound


def _chain_rule(method, oracle=_Oracle):
    def rule(p, q, drafts, rng):
        accepted, law = chains._RULES[method](p, q, drafts, oracle(rng))
        return accepted + (rng.categorical(law),)

    return rule


def _tree_rule(method):
    def rule(p, q, tree, rng):
        path, law = trees._RULES[method](trees._Context(p, q), tree, _Oracle(rng))
        return tuple(path) + (rng.categorical(law),)

    return rule


@pytest.mark.parametrize("method", chains.CHAIN_METHODS)
def test_chain_verifiers_pass(method):
    r = st.audit(_chain_rule(method), sampling="chain", n=2, **SEARCH)
    assert r.lossless, r.summary()
    p, q = [[1 / 3, 2 / 3]] * 3, [[2 / 3, 1 / 3]] * 2  # Sun et al.'s example
    one = st.audit(_chain_rule(method), sampling="chain", n=2, p=p, q=q)
    assert one.acceptance == pytest.approx(chains.expected_tokens(p, q, method), abs=1e-12)
    assert one.bound == pytest.approx(chains.expected_tokens_block(p, q), abs=1e-12)


def test_tree_verifiers_pass_and_rrs_with_distinct_siblings_is_caught():
    for method in ("traversal", "rrs_wor"):
        r = st.audit(_tree_rule(method), sampling="tree", shape=(2, 1), max_V=3, max_examples=10)
        assert r.lossless, r.summary()
        rows = lambda a: (lambda path: a[min(len(path), len(a) - 1)])  # noqa: E731
        exact = trees.tree_round(rows(r.p), rows(r.q), (2, 1), method)
        assert r.acceptance == pytest.approx(exact.expected_emitted, abs=1e-12)
    # RRS with replacement on siblings drawn without replacement: documented as lossy
    r = st.audit(_tree_rule("rrs"), sampling="tree", shape=(2,), max_V=3, max_examples=30)
    assert not r.lossless and r.tv > 1e-6
    assert st.audit(_tree_rule("rrs"), sampling="tree", shape=(2,), tree_sampling="iid", **SEARCH).lossless


# --------------------------------------------------------------------------------- broken variants
def _broken_modules(monkeypatch, attr, make):
    import importlib

    for mod in ("single", "rrs", "rrs_wor", "kseq", "spechub", "greedy", "optimal"):
        m = importlib.import_module(f"spectheory.verifiers.{mod}")
        if hasattr(m, attr):
            monkeypatch.setattr(m, attr, make(getattr(m, attr)))


def _dropped(residual):
    return lambda R, D: R  # no residual update: the next test / the output still uses R


def _unnormalised(residual):
    return lambda R, D: np.maximum(R - D, 0.0)  # (R - D)+ without its normaliser


def _clipped(accept_prob):
    return lambda a, b: max(accept_prob(a, b), 0.01)  # ratio clipped into [0.01, 1]


# "optimal" (transport-plan construction) draws its output from the plan row: no residual, no ratio
@pytest.mark.parametrize("name", ["sd", "rrs", "rrs_wor", "spechub"])
def test_dropped_residual_update_is_caught(name, monkeypatch):
    _broken_modules(monkeypatch, "residual", _dropped)
    r = st.audit(st.verifier(name), n=N_OF[name], max_V=3, max_examples=100)
    assert not r.lossless and r.counterexample is not None and r.tv > 1e-6


@pytest.mark.parametrize("name", ["rrs", "rrs_wor"])
def test_wrong_normaliser_is_caught(name, monkeypatch):
    _broken_modules(monkeypatch, "residual", _unnormalised)
    r = st.audit(st.verifier(name), n=2, max_V=3, max_examples=100)
    assert not r.lossless and (r.tv > 1e-6 or r.failure.kind == "bad_weights")  # weights summing to 0
    assert r.p.size >= 2


@pytest.mark.parametrize("name", sorted(set(VERIFIERS) - {"optimal"}))
def test_clipped_ratio_is_caught(name, monkeypatch):
    _broken_modules(monkeypatch, "accept_prob", _clipped)
    r = st.audit(st.verifier(name), n=N_OF[name], **SEARCH)
    assert not r.lossless, name
    p, q, n = r.counterexample
    assert p.size <= 3


@pytest.mark.parametrize("name", sorted(VERIFIERS))
def test_float32_uniform_is_caught(name):
    v = st.verifier(name)
    r = st.audit(_rule_of(v, float32=True), sampling=v.sampling, n=N_OF[name], **SEARCH)
    assert not r.lossless, name
    # the defect has the size of the float32 lattice: TV of order 2^-24, far below any sampling test
    assert 0 < r.tv < 1e-6 or r.exceeds_bound


def _greedy_dropped(p, q, drafts, rng):
    q_rest = q.copy()
    q_rest[drafts[:-1]] = 0.0
    q_rest /= q_rest.sum()
    x = int(drafts[-1])
    if rng.bernoulli(min(1.0, p[x] / q_rest[x])):
        return x
    return rng.categorical(p)  # residual update dropped


def _greedy_wrong_normaliser(p, q, drafts, rng):
    q_rest = q.copy()
    q_rest[drafts[:-1]] = 0.0  # not renormalised
    x = int(drafts[-1])
    if rng.bernoulli(min(1.0, p[x] / q_rest[x])):
        return x
    return rng.categorical(p - np.minimum(p, q_rest))


def _kseq_dropped(p, q, drafts, rng):
    from spectheory.verifiers.kseq import kseq_rho

    rho, _ = kseq_rho(p, q, len(drafts))
    for x in drafts:
        if rng.bernoulli(min(1.0, p[x] / (rho * q[x]))):
            return int(x)
    return rng.categorical(p)


def _kseq_wrong_normaliser(p, q, drafts, rng):
    from spectheory.verifiers.kseq import kseq_rho

    rho, b = kseq_rho(p, q, len(drafts))
    for x in drafts:
        if rng.bernoulli(min(1.0, p[x] / (rho * q[x]))):
            return int(x)
    res = np.maximum(p - np.minimum(q, p / rho), 0.0)  # the factor (1 − (1 − β)^n)/β is missing
    return rng.categorical(res) if res.sum() > 0 else rng.categorical(p)


@pytest.mark.parametrize("rule,sampling,n", [
    (_greedy_dropped, "greedy", 2), (_greedy_wrong_normaliser, "greedy", 3),
    (_kseq_dropped, "iid", 2), (_kseq_wrong_normaliser, "iid", 2),
])
def test_handwritten_broken_variants_are_caught(rule, sampling, n):
    r = st.audit(rule, sampling=sampling, n=n, **SEARCH)
    assert not r.lossless and r.counterexample is not None


def test_broken_block_verification_is_caught():
    def block_no_min(p, q, drafts, rng):
        # b_i without the min(·, 1): the weights run above 1
        gamma = q.shape[0]
        b = [1.0]
        for i in range(gamma):
            b.append(b[-1] * p[i, drafts[i]] / q[i, drafts[i]])
        for i in range(gamma, 0, -1):
            r = np.maximum(b[i] * p[i] - q[i], 0).sum() if i < gamma else 0.0
            h = min(b[i], 1.0) if i == gamma else (1.0 if r + 1 - b[i] <= 0 else min(1.0, r / (r + 1 - b[i])))
            if rng.bernoulli(h):
                tail = p[gamma] if i == gamma else np.maximum(b[i] * p[i] - q[i], 0)
                return tuple(int(t) for t in drafts[:i]) + (rng.categorical(tail if tail.sum() > 0 else p[i]),)
        return (rng.categorical(np.maximum(p[0] - q[0], 0) if np.any(p[0] > q[0]) else p[0]),)

    r = st.audit(block_no_min, sampling="chain", n=2, **SEARCH)
    assert not r.lossless
    # the block-verification paper's V = 2 example: optimum 20/9 expected tokens; the unclipped
    # weights accept more than that, which no lossless rule can
    P, Q = np.array([[1 / 3, 2 / 3]] * 3), np.array([[2 / 3, 1 / 3]] * 2)
    bad = st.audit(block_no_min, sampling="chain", n=2, p=P, q=Q)
    assert bad.bound == pytest.approx(20 / 9, abs=1e-12)
    assert bad.exceeds_bound and bad.acceptance > bad.bound + 0.1 and not bad.lossless


# --------------------------------------------------------------------------------- the SpecHub-code RRS
def _rrs(p, q, drafts, rng, skip_repeats=False):
    R, seen = p, set()
    for x in drafts:
        x = int(x)
        if skip_repeats and x in seen:
            continue
        seen.add(x)
        if rng.uniform() < R[x] / q[x]:
            return x
        r = np.maximum(R - q, 0.0)
        R = r / r.sum() if r.sum() > 0 else R
    return rng.categorical(R)


def test_rrs_skipping_repeats_is_lossy_and_beats_the_true_rrs():
    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.4, 0.2])
    for n in (2, 3):
        good = st.audit(_rrs, n=n, p=p, q=q)
        bad = st.audit(lambda *a: _rrs(*a, skip_repeats=True), n=n, p=p, q=q)
        assert good.lossless and good.acceptance == pytest.approx(st.acceptance(p, q, n, "rrs"), abs=1e-12)
        assert not bad.lossless and bad.tv > 0.01
        assert bad.acceptance > good.acceptance + 0.005 if n == 3 else True


def _skip_repeats_law_by_hand(p, q, n):
    """Independent truth: the skip-repeats RRS's output law and acceptance, enumerated over the i.i.d.
    draft tuples with the accept probabilities written out (no symbolic uniforms)."""
    law, acc = np.zeros(len(p)), 0.0
    for drafts in itertools.product(range(len(p)), repeat=n):
        w = float(np.prod(q[list(drafts)]))
        if w == 0:
            continue
        R, seen, alive = p.copy(), set(), w
        for x in drafts:
            if x in seen:
                continue
            seen.add(x)
            a = min(1.0, R[x] / q[x])
            law[x] += alive * a
            acc += alive * a
            alive *= 1 - a
            r = np.maximum(R - q, 0.0)
            R = r / r.sum() if r.sum() > 0 else R
        law += alive * R
    return law, acc


def test_spechub_code_rrs_defect_has_the_published_size():
    # SpecHub's public with-replacement RRS baseline skips repeated drafts: TV 0.020 at n = 2; TV 0.028
    # and acceptance 0.968 against the true RRS's 0.956 at n = 3 (p = (0.2, 0.5, 0.3), q = (0.4, 0.4, 0.2))
    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.4, 0.2])
    for n, tv, acc in ((2, "0.020", None), (3, "0.028", "0.968")):
        bad = st.audit(lambda *a: _rrs(*a, skip_repeats=True), n=n, p=p, q=q)
        law, a = _skip_repeats_law_by_hand(p, q, n)
        np.testing.assert_allclose(bad.law, law, rtol=0, atol=1e-12)
        assert bad.tv == pytest.approx(0.5 * np.abs(law - p).sum(), abs=1e-12)
        assert bad.acceptance == pytest.approx(a, abs=1e-12)
        assert f"{bad.tv:.3f}" == tv and (acc is None or f"{bad.acceptance:.3f}" == acc)
    assert f"{st.acceptance(p, q, 3, 'rrs'):.3f}" == "0.956"


# --------------------------------------------------------------------------------- symbolic uniform
def _law(run):
    out = {}
    for w, o in _audit_rng.enumerate_runs(run, max_branches=10_000, max_draws=100, min_prob=0.0):
        out[o] = out.get(o, 0.0) + w
    return out


@pytest.mark.parametrize("t", [0.0, 0.3, 1 / 3, 0.5, 1.0, 1.5, -2.0, 2.0 ** -60])
def test_uniform_comparisons_have_lattice_probabilities(t):
    N = 2 ** 53
    lt = _law(lambda rng: rng.uniform() < t)
    le = _law(lambda rng: rng.uniform() <= t)
    count_lt = min(max(math.ceil(t * N), 0), N)  # k / N < t
    count_le = min(max(math.floor(t * N) + 1, 0), N)
    assert lt.get(True, 0.0) == pytest.approx(count_lt / N, rel=1e-15, abs=0)
    assert le.get(True, 0.0) == pytest.approx(count_le / N, rel=1e-15, abs=0)
    # reflected comparisons and affine forms give the same events
    assert _law(lambda rng: t > rng.uniform()) == lt
    if not 0 < abs(t) < 1e-6:  # an affine form is solved in float64: (2t - 1 + 1)/2 loses a tiny t
        assert _law(lambda rng: 2 * rng.uniform() - 1 < 2 * t - 1) == lt


def test_uniform_float32_lattice_and_conditioning():
    assert _law(lambda rng: rng.uniform(np.float32) <= 0.0)[True] == 2.0 ** -24
    assert _law(lambda rng: rng.uniform() <= 0.0)[True] == 2.0 ** -53

    def two(rng):  # the second comparison is conditioned on the first
        u = rng.uniform()
        return (u < 0.5, u < 0.25, 1 - u > 0.9)

    law = _law(two)
    assert law == pytest.approx({(True, True, True): 0.1, (True, True, False): 0.15, (True, False, False): 0.25,
                                 (False, False, False): 0.5}, abs=1e-15)


# --------------------------------------------------------------------------------- Monte Carlo
def _rrs_batched(P, Q, D, rng):
    B, V = P.shape
    rows = np.arange(B)
    R, out = P.copy(), np.full(B, -1)
    for i in range(D.shape[1]):
        x = D[:, i]
        take = (out < 0) & (rng.random(B) < R[rows, x] / Q[rows, x])
        out[take] = x[take]
        r = np.maximum(R - Q, 0.0)
        m = r.sum(axis=1, keepdims=True)
        R = np.where(m > 0, r / np.where(m > 0, m, 1.0), R)
    left = out < 0
    c = np.cumsum(R[left], axis=1)
    out[left] = np.minimum((c <= rng.random(left.sum())[:, None] * c[:, -1:]).sum(axis=1), V - 1)
    return out


def test_monte_carlo_agrees_with_exact():
    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.4, 0.2])
    exact = st.audit(_rrs, n=3, p=p, q=q)
    mc = st.audit(_rrs_batched, n=3, p=p, q=q, mode="monte_carlo", trials=100_000, seed=1)
    assert exact.lossless and mc.lossless and mc.p_value > 1e-3
    assert abs(mc.acceptance - exact.acceptance) < 4 * mc.stderr
    assert 0 < mc.detectable_tv < 0.01
    # the skip-repeats defect (TV 0.028 exactly): caught by both
    bad = lambda *a: _rrs(*a, skip_repeats=True)  # noqa: E731
    ex_bad = st.audit(bad, n=3, p=p, q=q)
    mc_bad = st.audit(bad, n=3, p=p, q=q, mode="monte_carlo", trials=10_000, seed=2, vectorized=False)
    assert not ex_bad.lossless and not mc_bad.lossless and mc_bad.p_value < 1e-6
    assert abs(mc_bad.acceptance - ex_bad.acceptance) < 4 * mc_bad.stderr
    assert ex_bad.tv > mc_bad.detectable_tv


def test_monte_carlo_torch_backend():
    torch = pytest.importorskip("torch")

    def rule(P, Q, D, gen):  # speculative sampling on torch tensors
        rows = torch.arange(P.shape[0])
        x = D[:, 0]
        acc = torch.rand(P.shape[0], generator=gen, dtype=torch.float64) < P[rows, x] / Q[rows, x]
        res = torch.clamp(P - Q, min=0)
        y = torch.multinomial(res, 1, generator=gen)[:, 0]
        return torch.where(acc, x, y)

    p, q = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.2, 0.6])
    r = st.audit(rule, n=1, p=p, q=q, mode="monte_carlo", trials=20_000, seed=0, backend="torch")
    assert r.lossless and abs(r.acceptance - 0.5) < 4 * r.stderr


# --------------------------------------------------------------------------------- bad rules
def _raises(p, q, d, rng):
    raise ZeroDivisionError("boom")


def _outside(p, q, d, rng):
    return len(p)


def _float(p, q, d, rng):
    return 0.5


def _vector(p, q, d, rng):
    return p


def _global(p, q, d, rng):
    return int(np.random.randint(len(p)))


def _own_generator(p, q, d, rng):
    return int(np.random.default_rng().integers(len(p)))


def _log_uniform(p, q, d, rng):
    return int(d[0]) if np.log(rng.uniform()) < 0 else 0


def _other_method(p, q, d, rng):
    return rng.choice(d)


def _endless_draws(p, q, d, rng):
    while True:
        rng.bernoulli(0.5)


def _nan(p, q, d, rng):
    return rng.categorical(p - p)


def _mutates(p, q, d, rng):
    p[0] = 1.0
    return 0


@pytest.mark.parametrize("rule,kind", [
    (_raises, "raised"), (_outside, "bad_token"), (_float, "bad_type"), (_vector, "bad_type"),
    (_global, "outside_randomness"), (_own_generator, "outside_randomness"),
    (_log_uniform, "unsupported_uniform"), (_other_method, "raised"), (_endless_draws, "too_many_draws"),
    (_nan, "bad_weights"), (_mutates, "raised"),
])
def test_bad_rules_are_reported(rule, kind):
    r = st.audit(rule, n=1, p=[0.5, 0.3, 0.2], q=[0.2, 0.3, 0.5])
    assert not r.lossless and r.failure is not None and r.failure.kind == kind, r.failure
    assert r.counterexample is not None
    assert kind in r.summary()


def test_rejection_loop_terminates_by_the_probability_floor():
    def geometric(p, q, d, rng):
        while not rng.bernoulli(0.5):
            pass
        return rng.categorical(p)

    r = st.audit(geometric, n=1, p=[0.5, 0.5], q=[0.5, 0.5])
    assert r.lossless and 0 < r.unresolved < 1e-11


def test_endless_loop_hits_the_time_limit():
    def spin(p, q, d, rng):
        while True:
            pass

    r = st.audit(spin, n=1, p=[0.5, 0.5], q=[0.5, 0.5], time_limit=0.2)
    assert r.failure.kind == "timeout"


@pytest.mark.parametrize("kwargs,match", [
    (dict(rule=3), "rule"), (dict(rule=_raises, sampling="nope"), "sampling"),
    (dict(rule=_raises, n=0), "n"), (dict(rule=_raises, sampling="hub", n=3), "n"),
    (dict(rule=_raises, p=[0.5, 0.5]), "p and q"), (dict(rule=_raises, sampling="tree"), "shape"),
    (dict(rule=_raises, mode="fast"), "mode"), (dict(rule=_raises, max_examples=0), "max_examples"),
])
def test_bad_arguments_raise_one_clear_error(kwargs, match):
    with pytest.raises(st.SpecTheoryValueError, match=match):
        st.audit(**kwargs)


def test_rule_failure_cannot_be_swallowed_by_the_rule():
    def swallow(p, q, d, rng):
        try:
            return rng.categorical([np.nan, 1.0])
        except Exception:
            return 0

    r = st.audit(swallow, n=1, p=[0.5, 0.5], q=[0.5, 0.5])
    assert r.failure is not None and r.failure.kind == "bad_weights"


def test_custom_draft_padding_beyond_support_is_caught():
    def draft(q, n, rng):  # successive sampling, padded with q = 0 tokens beyond the support
        remaining, out = np.array(q), []
        for _ in range(n):
            if remaining.sum() > 0:
                x = rng.categorical(remaining)
            else:
                x = next(i for i in range(len(q)) if i not in out)
            remaining[x] = 0.0
            out.append(x)
        return np.array(out)

    def rrs_wor(p, q, drafts, rng):
        R, D = p, np.array(q)
        for x in drafts:
            if rng.bernoulli(min(1.0, R[x] / D[x])):
                return int(x)
            r = np.maximum(R - D, 0)
            R = r / r.sum() if r.sum() > 0 else R
            D[x] = 0
            D = D / D.sum()
        return rng.categorical(R)

    with np.errstate(all="ignore"):
        r = st.audit(rrs_wor, draft=draft, n=3, **SEARCH)
    assert not r.lossless and r.failure is not None
    assert r.bound is None


# --------------------------------------------------------------------------------- command line
_RULES_FILE = '''
import numpy as np

def skip(p, q, drafts, rng):
    R, seen = p, set()
    for x in drafts:
        x = int(x)
        if x in seen:
            continue
        seen.add(x)
        if rng.uniform() < R[x] / q[x]:
            return x
        r = np.maximum(R - q, 0.0)
        R = r / r.sum() if r.sum() > 0 else R
    return rng.categorical(R)

def sd(p, q, drafts, rng):
    x = drafts[0]
    return int(x) if rng.uniform() < p[x] / q[x] else rng.categorical(np.maximum(p - q, 0.0))

NOT_CALLABLE = 3
'''


def test_cli_audit(tmp_path, monkeypatch, capsys):
    import json

    from spectheory.cli import main

    (tmp_path / "myrules.py").write_text(_RULES_FILE)
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "myrules:skip", "-n", "3", "--target", "0.2,0.5,0.3", "--draft", "0.4,0.4,0.2"]) == 1
    out = capsys.readouterr().out
    assert "NOT LOSSLESS" in out and "0.028" in out and "0.968" in out
    assert main(["audit", str(tmp_path / "myrules.py") + ":sd", "-n", "1", "--max-V", "3", "--examples", "20",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lossless"] is True and data["counterexample"] is None
    for argv, msg in ((["audit", "myrules:nope"], "no attribute"), (["audit", "nomodule_xyz:f"], "nomodule_xyz"),
                      (["audit", "myrules:NOT_CALLABLE"], "callable"), (["audit", "skip"], "MODULE:FUNCTION"),
                      (["audit", "myrules:sd", "--target", "0.5,0.5"], "--draft")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err
