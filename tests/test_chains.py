"""Chains of γ drafts with position-dependent laws: token-by-token and block verification.

Ground truth is exact enumeration (every draft chain, every branch of the verifier's own code), and
an independent brute-force sum Σ_i E[b_i] over all chains for the block formula.
"""

import doctest
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hst

from spectheory import SpecTheoryValueError
from spectheory._validation import check_distribution
from spectheory.testing import distribution_pairs, distributions
from spectheory.verifiers import chains
from spectheory.verifiers.chains import (
    CHAIN_METHODS,
    chain_output_law,
    draft_chain,
    expected_tokens,
    expected_tokens_block,
    expected_tokens_token,
    verify_chain,
)


@hst.composite
def chain_laws(draw, max_V=5, max_gamma=3, min_V=1):
    """(p, q): p of shape (γ+1, V), q of shape (γ, V); each position's pair independent, equal or mixed."""
    V = draw(hst.integers(min_V, max_V))
    gamma = draw(hst.integers(1, max_gamma))
    p = np.stack([draw(distributions(V)) for _ in range(gamma + 1)])
    q = []
    for i in range(gamma):
        relation = draw(hst.sampled_from(["independent", "independent", "equal", "mixed"]))
        if relation == "equal":
            q.append(p[i].copy())
            continue
        qi = draw(distributions(V))
        if relation == "mixed":
            t = draw(hst.floats(0.0, 1.0))
            qi = t * p[i] + (1 - t) * qi
            qi = qi / qi.sum()
        q.append(qi)
    return p, np.stack(q)


def _extended_law(law, p):
    """Joint law of γ+1 tokens: each emitted sequence continued by its missing positions drawn from p."""
    n_pos, V = p.shape
    full = np.zeros((V,) * n_pos)
    for seq, prob in law.items():
        rest = np.ones(())
        for row in p[len(seq):]:
            rest = np.multiply.outer(rest, row)
        full[seq] += prob * rest
    return full


def _product_law(p):
    out = np.ones(())
    for row in p:
        out = np.multiply.outer(out, row)
    return out


def _mean_length(law):
    return sum(prob * len(seq) for seq, prob in law.items())


def _block_brute(p, q):
    """Σ_{i=0..γ} E[b_i] summed over every draft chain (independent of the module's propagation)."""
    total = 1.0
    for chain in itertools.product(*[np.flatnonzero(row > 0) for row in q]):
        w = float(np.prod([q[i, x] for i, x in enumerate(chain)]))
        b = 1.0
        for i, x in enumerate(chain):
            with np.errstate(over="ignore"):
                ratio = p[i, x] / q[i, x]
            b = 0.0 if b == 0.0 else min(b * ratio, 1.0)
            total += w * b
    return total


# -- losslessness and the exact expected tokens, by enumeration ------------------------------------
@pytest.mark.parametrize("method", CHAIN_METHODS)
@given(laws=chain_laws())
def test_lossless_by_exact_enumeration(method, laws):
    p, q = laws
    law = chain_output_law(p, q, method)
    assert sum(law.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(1 <= len(seq) <= q.shape[0] + 1 for seq in law)
    np.testing.assert_allclose(_extended_law(law, p), _product_law(p), rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", CHAIN_METHODS)
@given(laws=chain_laws(max_V=4))
def test_expected_tokens_equal_mean_length_of_exact_law(method, laws):
    p, q = laws
    law = chain_output_law(p, q, method)
    assert expected_tokens(p, q, method) == pytest.approx(_mean_length(law), abs=1e-10)


@given(laws=chain_laws(max_V=4, max_gamma=5))
def test_block_formula_equals_brute_force_sum(laws):
    p, q = laws
    assert expected_tokens_block(p, q) == pytest.approx(_block_brute(p, q), abs=1e-10)


@given(laws=chain_laws(max_V=8, max_gamma=5))
def test_block_never_below_token(laws):
    p, q = laws
    tok, blk = expected_tokens_token(p, q), expected_tokens_block(p, q)
    assert 1.0 - 1e-12 <= tok <= blk + 1e-12
    assert blk <= q.shape[0] + 1 + 1e-12


@given(pair=distribution_pairs(max_V=8), gamma=hst.integers(1, 6))
def test_token_matches_leviathan_closed_form(pair, gamma):
    p1, q1 = (check_distribution(x, "x") for x in pair)  # the normalisation the module applies
    alpha = float(np.minimum(p1, q1).sum())
    got = expected_tokens_token(np.tile(p1, (gamma + 1, 1)), np.tile(q1, (gamma, 1)))
    if 1 - alpha > 1e-4:
        assert got == pytest.approx((1 - alpha ** (gamma + 1)) / (1 - alpha), rel=1e-12)
    else:  # the closed form cancels catastrophically near α = 1: its limit form Σ_i α^i
        assert got == pytest.approx(sum(alpha**i for i in range(gamma + 1)), rel=1e-12)


@given(laws=chain_laws(max_V=5, max_gamma=1))
def test_gamma_one_block_is_token(laws):
    p, q = laws
    assert expected_tokens_block(p, q) == pytest.approx(expected_tokens_token(p, q), abs=1e-12)
    a, b = chain_output_law(p, q, "token"), chain_output_law(p, q, "block")
    for key in set(a) | set(b):
        assert a.get(key, 0.0) == pytest.approx(b.get(key, 0.0), abs=1e-12)


def test_paper_motivating_example():
    """Sun et al. §2: target (1/3, 2/3), draft (2/3, 1/3), γ = 2: 10/9 vs 11/9 accepted drafts."""
    p, q = [[1 / 3, 2 / 3]] * 3, [[2 / 3, 1 / 3]] * 2
    assert expected_tokens_token(p, q) - 1 == pytest.approx(10 / 9, abs=1e-14)
    assert expected_tokens_block(p, q) - 1 == pytest.approx(11 / 9, abs=1e-14)
    assert _mean_length(chain_output_law(p, q, "block")) - 1 == pytest.approx(11 / 9, abs=1e-14)


def test_extreme_ratios_and_zero_weights():
    """Tiny draft masses (ratios overflow to inf) and p_i(X_i) = 0 (b drops to 0 and stays there)."""
    p = np.array([[0.5, 0.5 - 1e-300, 1e-300], [0.0, 0.5, 0.5], [1 - 2e-300, 1e-300, 1e-300],
                  [1 / 3, 1 / 3, 1 / 3]])
    q = np.array([[1 - 1e-300, 0.0, 1e-300], [1e-300, 0.5, 0.5 - 1e-300],
                  [0.2, 0.3, 0.5]])
    q = q / q.sum(axis=1, keepdims=True)
    for method in CHAIN_METHODS:
        law = chain_output_law(p, q, method)
        np.testing.assert_allclose(_extended_law(law, p), _product_law(p), rtol=0, atol=1e-10)
        assert expected_tokens(p, q, method) == pytest.approx(_mean_length(law), abs=1e-10)
    assert expected_tokens_block(p, q) == pytest.approx(_block_brute(p, q), abs=1e-12)


# -- samplers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", CHAIN_METHODS)
def test_sampler_frequencies_match_exact_law(method):
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(3), 3)
    q = rng.dirichlet(np.ones(3), 2)
    law = chain_output_law(p, q, method)
    n = 4000
    counts: dict = {}
    for _ in range(n):
        tokens, accepted = verify_chain(p, q, draft_chain(q, rng), rng, method)
        assert len(tokens) == accepted + 1
        counts[tuple(tokens.tolist())] = counts.get(tuple(tokens.tolist()), 0) + 1
    assert set(counts) <= set(law)
    for seq, prob in law.items():
        se = np.sqrt(prob * (1 - prob) / n)
        assert abs(counts.get(seq, 0) / n - prob) <= 5 * se + 1e-12, seq


@pytest.mark.parametrize("method", CHAIN_METHODS)
def test_monte_carlo_expected_tokens_at_V_1000(method):
    rng = np.random.default_rng(2024)
    V, gamma = 1000, 4
    base = rng.normal(size=(gamma + 1, V)) * 2
    p = np.exp(base)
    q = np.exp(base[:gamma] + 0.7 * rng.normal(size=(gamma, V)))
    p /= p.sum(axis=1, keepdims=True)
    q /= q.sum(axis=1, keepdims=True)
    exact = expected_tokens(p, q, method)
    n = 4000
    lengths = np.empty(n)
    for k in range(n):
        _, accepted = verify_chain(p, q, draft_chain(q, rng), rng, method)
        lengths[k] = accepted + 1
    se = lengths.std(ddof=1) / np.sqrt(n)
    assert abs(lengths.mean() - exact) <= 5 * se
    if method == "block":  # the instance is one where block verification gains visibly
        assert exact > expected_tokens_token(p, q) + 0.05


def test_draft_chain_draws_each_position_from_its_law():
    rng = np.random.default_rng(3)
    q = np.array([[0.0, 1.0, 0.0], [0.2, 0.0, 0.8]])
    draws = np.array([draft_chain(q, rng) for _ in range(3000)])
    assert np.all(draws[:, 0] == 1)
    assert set(np.unique(draws[:, 1]).tolist()) == {0, 2}
    assert abs(np.mean(draws[:, 1] == 0) - 0.2) <= 5 * np.sqrt(0.16 / 3000)
    np.testing.assert_array_equal(draft_chain(q, 11), draft_chain(q, 11))


def test_rules_follow_the_oracle():
    """With coins forced, each rule returns the branch the algorithm prescribes."""

    class Always:
        def __init__(self, answer):
            self.answer = answer
            self.probs = []

        def coin(self, prob):
            self.probs.append(prob)
            return self.answer

    p = np.array([[1 / 3, 2 / 3]] * 3)
    q = np.array([[2 / 3, 1 / 3]] * 2)
    o = Always(False)
    accepted, last = chains.token_verify(p, q, [0, 1], o)
    assert accepted == () and o.probs == [pytest.approx(0.5)]
    np.testing.assert_allclose(last, [0.0, 1.0])
    o = Always(False)
    accepted, last = chains.block_verify(p, q, [0, 0], o)
    # b = (1, 1/2, 1/4): h_2 = 1/4, r_1 = Σ(p/2 − q)+ = 0 so h_1 = 0; τ = 0, Y ~ norm((p − q)+)
    assert accepted == () and o.probs == [pytest.approx(0.25), pytest.approx(0.0)]
    np.testing.assert_allclose(last, [0.0, 1.0])
    o = Always(True)
    accepted, last = chains.block_verify(p, q, [0, 0], o)
    assert accepted == (0, 0) and len(o.probs) == 1
    np.testing.assert_allclose(last, p[2])


# -- bad inputs ------------------------------------------------------------------------------------
P3 = np.full((3, 2), 0.5)
Q2 = np.full((2, 2), 0.5)


@pytest.mark.parametrize(
    "p, q, match",
    [
        (P3, np.full((3, 2), 0.5), "rows"),  # p needs γ+1 rows
        (np.full((3, 3), 1 / 3), Q2, "vocabulary sizes differ"),
        (np.full(2, 0.5), Q2, "shape"),
        (P3, np.full(2, 0.5), "shape"),
        (np.full((1, 2), 0.5), np.zeros((0, 2)), "empty"),  # γ = 0
        (np.full((3, 2), 0.6), Q2, "sum to 1"),
        (P3, np.array([[0.5, np.nan], [0.5, 0.5]]), "NaN"),
        (P3, np.array([[1.5, -0.5], [0.5, 0.5]]), "negative"),
        (np.full((2, 2, 2), 0.5), Q2, "shape"),
    ],
)
def test_bad_laws(p, q, match):
    for call in (
        lambda: expected_tokens_token(p, q),
        lambda: expected_tokens_block(p, q),
        lambda: chain_output_law(p, q, "block"),
        lambda: verify_chain(p, q, [0, 0], 0, "token"),
    ):
        with pytest.raises(SpecTheoryValueError, match=match):
            call()


@pytest.mark.parametrize(
    "drafts, match",
    [
        ([0, 2], "outside the vocabulary"),
        ([-1, 0], "outside the vocabulary"),
        ([0], "γ = 2"),
        ([[0, 1]], "γ = 2"),
        ([0.5, 1], "integers"),
        ([1, 1], "q_2 = 0"),
    ],
)
def test_bad_drafts(drafts, match):
    q = np.array([[0.5, 0.5], [1.0, 0.0]])
    for method in CHAIN_METHODS:
        with pytest.raises(SpecTheoryValueError, match=match):
            verify_chain(P3, q, drafts, 0, method)
    with pytest.raises(SpecTheoryValueError, match=match):
        chains.block_verify(P3, q, drafts, None)
    with pytest.raises(SpecTheoryValueError, match=match):
        chains.token_verify(P3, q, drafts, None)


def test_bad_options_and_size_limits():
    with pytest.raises(SpecTheoryValueError, match="method"):
        verify_chain(P3, Q2, [0, 1], 0, "tree")
    with pytest.raises(SpecTheoryValueError, match="method"):
        expected_tokens(P3, Q2, "Block")
    with pytest.raises(SpecTheoryValueError, match="rng"):
        verify_chain(P3, Q2, [0, 1], "seed")
    with pytest.raises(SpecTheoryValueError, match="max_support"):
        expected_tokens_block(P3, Q2, max_support=0)
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(50), 7), rng.dirichlet(np.ones(50), 6)
    with pytest.raises(SpecTheoryValueError, match="max_support.*Monte Carlo"):
        expected_tokens_block(p, q, max_support=10_000)
    with pytest.raises(SpecTheoryValueError, match="MAX_CHAINS"):
        chain_output_law(p, q, "token")
    assert expected_tokens_block(p, q) >= expected_tokens_token(p, q)  # 50^3 points: within the default


def test_module_doctests():
    result = doctest.testmod(chains, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
