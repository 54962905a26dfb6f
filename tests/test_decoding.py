"""Multi-round speculative decoding of Markov models (spectheory.simulations.decoding).

Ground truth: Leviathan's formula and the exact block-verification formula for context-free laws
(every row equal, so acceptance is i.i.d.); exact Markov path probabilities of the target chain for
the law of the decoded sequence (Pearson chi-square, fixed seeds); the exact per-round statistics of
`round_law` (matrix powers, and an independent enumeration of every draft chain).

Statistical thresholds (all seeds fixed, so every test is deterministic):
* means: |estimate − exact| < 5 standard errors;
* laws: the chi-square p-value must exceed 1e-4 (and a law 3% off must give p < 1e-10: the test has power);
* pooled per-round frequencies with Markov-dependent rounds: 3x the binomial 5-sigma band, or 0.01.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import types

import numpy as np
import pytest
from scipy import stats
from spectheory.simulations import decoding
from spectheory.simulations.decoding import (
    FixedK,
    Threshold,
    fixed_k,
    leviathan_expected_tokens,
    parse_policy,
    round_law,
    sample_sequences,
    simulate_decoding,
    threshold,
)

from spectheory import SpecTheoryValueError
from spectheory.cli import main
from spectheory.verifiers.chains import expected_tokens_block, expected_tokens_token

Z = 5.0  # standard errors
P_MIN = 1e-4  # chi-square p-value threshold


def _iid_pair(V, seed, mix=0.5):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(V))
    q = mix * p + (1 - mix) * rng.dirichlet(np.ones(V) * 0.5)
    return p, q / q.sum()


def _tile(p, q):
    V = len(p)
    return np.tile(p, (V, 1)), np.tile(q, (V, 1))


# Markov pair with context-dependent rows, zeros in the draft where the target has mass (never
# drafted), zeros in the target where the draft has mass (always rejected) and one equal row.
T3 = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
D3 = np.array([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [0.3, 0.3, 0.4]])

T4 = np.array([
    [0.40, 0.30, 0.20, 0.10],
    [0.05, 0.05, 0.45, 0.45],
    [0.25, 0.25, 0.25, 0.25],
    [0.70, 0.00, 0.10, 0.20],
])
D4 = np.array([
    [0.10, 0.20, 0.30, 0.40],
    [0.00, 0.30, 0.30, 0.40],
    [0.60, 0.10, 0.10, 0.20],
    [0.40, 0.40, 0.00, 0.20],
])

POLICIES = [fixed_k(3), threshold(0.5, 1, 4)]
VERIFIERS = ["token", "block"]


# ------------------------------------------------------------------------------------------------
# expected tokens per round: Leviathan's formula and the block formula (i.i.d. acceptance)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("V,seed,K", [(2, 0, 1), (5, 1, 3), (8, 2, 5), (16, 3, 4)])
def test_token_matches_leviathan(V, seed, K):
    p, q = _iid_pair(V, seed)
    alpha = float(np.minimum(p, q).sum())
    exact = leviathan_expected_tokens(alpha, K)
    T, D = _tile(p, q)
    assert exact == pytest.approx(expected_tokens_token(np.tile(p, (K + 1, 1)), np.tile(q, (K, 1))), rel=1e-12)
    res = simulate_decoding(T, D, fixed_k(K), "token", tokens=200_000, seed=100 + seed)
    assert abs(res.mean_tokens_per_round - exact) < Z * res.stderr
    # each position's conditional acceptance is α (binomial standard error)
    se = np.sqrt(alpha * (1 - alpha) / res.attempted)
    assert np.all(np.abs(res.acceptance - alpha) < Z * se + 1e-12)
    assert res.mean_tokens_per_round == pytest.approx(res.tokens / res.rounds)
    assert res.tokens >= 200_000 and res.tokens < 200_000 + K + 1
    assert res.tokens_per_round_hist.sum() == res.rounds
    assert np.dot(np.arange(K + 2), res.tokens_per_round_hist) == res.tokens
    assert res.draft_length_hist[K] == res.rounds and np.all(res.drafted == res.rounds)


@pytest.mark.parametrize("V,seed,K", [(2, 4, 2), (5, 5, 3), (8, 6, 4)])
def test_block_matches_exact_formula(V, seed, K):
    p, q = _iid_pair(V, seed, mix=0.3)
    exact = expected_tokens_block(np.tile(p, (K + 1, 1)), np.tile(q, (K, 1)))
    T, D = _tile(p, q)
    res = simulate_decoding(T, D, fixed_k(K), "block", tokens=200_000, seed=200 + seed)
    assert abs(res.mean_tokens_per_round - exact) < Z * res.stderr
    # block verification is never worse than token-by-token (REFERENCE §3)
    assert exact >= leviathan_expected_tokens(float(np.minimum(p, q).sum()), K) - 1e-12


def test_sun_et_al_example():
    """Sun et al. §2: target (1/3, 2/3), draft (2/3, 1/3), γ = 2: 20/9 tokens per round (block),
    19/9 (token-by-token)."""
    T, D = _tile(np.array([1 / 3, 2 / 3]), np.array([2 / 3, 1 / 3]))
    for verifier, exact in (("block", 20 / 9), ("token", 19 / 9)):
        res = simulate_decoding(T, D, "fixed:2", verifier, tokens=200_000, seed=7)
        assert abs(res.mean_tokens_per_round - exact) < Z * res.stderr
        assert round_law(T, D, "fixed:2", verifier).mean_tokens_per_round == pytest.approx(exact, abs=1e-12)


def test_draft_equal_to_target_accepts_everything():
    T = T4
    for verifier in VERIFIERS:
        res = simulate_decoding(T, T, fixed_k(4), verifier, tokens=1000, seed=1)
        assert res.mean_tokens_per_round == 5.0 and np.all(res.acceptance == 1.0)
        res = simulate_decoding(T, T, threshold(0.3, 1, 6), verifier, tokens=1000, seed=1)
        assert res.draft_length_hist[6] == res.rounds  # 1 − Π 1 = 0 ≤ h: drafts to max_k


def test_threshold_rule_is_deterministic_where_it_should_be():
    """Draft always token 0 and the target gives it 1/2: P(accept_j) = 1/2, 1 − 2^−k > h decides."""
    T = np.full((2, 2), 0.5)
    D = np.array([[1.0, 0.0], [1.0, 0.0]])
    # h = 0.8: 1 − 1/2 = 0.5, 1 − 1/4 = 0.75 (continue), 1 − 1/8 = 0.875 > 0.8 (stop at 3)
    cases = [(Threshold(0.8, 1, 10), 3), (Threshold(0.8, 5, 10), 5), (Threshold(0.8, 1, 2), 2), (Threshold(0.4, 1, 9), 1)]
    for policy, k in cases:
        for verifier in VERIFIERS:
            res = simulate_decoding(T, D, policy, verifier, tokens=500, seed=0)
            assert res.draft_length_hist[k] == res.rounds, (policy, verifier)
            assert round_law(T, D, policy, verifier).draft_length[k] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# exact per-round statistics (round_law) against the simulation, with context-dependent laws
# ------------------------------------------------------------------------------------------------
def test_round_law_matrix_form_equals_enumeration():
    for T, D in ((T3, D3), (T4, D4)):
        for K in (1, 2, 4):
            a = round_law(T, D, FixedK(K), "token")
            b = decoding._per_start_enumerated(*decoding.check_markov(T, D), FixedK(K), False)
            np.testing.assert_allclose(a.tokens_from, b[0], atol=1e-12)
            np.testing.assert_allclose(a.transition, b[1] / b[1].sum(axis=1, keepdims=True), atol=1e-12)
            np.testing.assert_allclose(a.transition.sum(axis=1), 1.0)


def test_round_law_iid_closed_forms():
    p, q = _iid_pair(4, 9, mix=0.2)
    T, D = _tile(p, q)
    for K in (1, 3):
        block = round_law(T, D, FixedK(K), "block")
        token = round_law(T, D, FixedK(K), "token")
        assert block.mean_tokens_per_round == pytest.approx(
            expected_tokens_block(np.tile(p, (K + 1, 1)), np.tile(q, (K, 1))), abs=1e-12
        )
        assert token.mean_tokens_per_round == pytest.approx(
            leviathan_expected_tokens(float(np.minimum(p, q).sum()), K), abs=1e-12
        )
        # context-free laws: the round's last token does not depend on the round's context (its law
        # is not p: a correction token follows the residual)
        for law in (token, block):
            np.testing.assert_allclose(law.transition, np.tile(law.transition[0], (4, 1)), atol=1e-12)


@pytest.mark.parametrize("verifier", VERIFIERS)
@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_markov_tokens_per_round_match_round_law(policy, verifier):
    """Rounds are Markov-dependent here: the standard error comes from 16 independent seeds."""
    exact = round_law(T4, D4, policy, verifier)
    runs = [simulate_decoding(T4, D4, policy, verifier, tokens=40_000, seed=s) for s in range(16)]
    means = np.array([r.mean_tokens_per_round for r in runs])
    se = means.std(ddof=1) / np.sqrt(len(means))
    assert abs(means.mean() - exact.mean_tokens_per_round) < Z * se
    # per-position counters per round and the histograms, pooled over the runs
    rounds = sum(r.rounds for r in runs)
    hist = sum(r.tokens_per_round_hist for r in runs) / rounds
    dl = sum(r.draft_length_hist for r in runs) / rounds
    acc = sum(r.accepted for r in runs) / rounds
    # binomial standard errors, widened 3x because consecutive rounds are dependent here
    tol = Z * np.sqrt(np.maximum(exact.tokens_per_round * (1 - exact.tokens_per_round), 1e-12) / rounds) * 3
    assert np.all(np.abs(hist - exact.tokens_per_round) < tol + 1e-4)
    assert np.all(np.abs(dl - exact.draft_length) < 0.01)
    assert np.all(np.abs(acc - exact.accepted) < 0.01)


# ------------------------------------------------------------------------------------------------
# the law of the decoded sequence is the target chain's law (losslessness)
# ------------------------------------------------------------------------------------------------
def _path_law(T, init, L):
    """Exact law of x_1..x_L for x_0 ~ init and x_t ~ T[x_{t−1}], as an array of shape (V,)*L."""
    V = T.shape[0]
    law = np.zeros((V,) * L)
    for seq in itertools.product(range(V), repeat=L):
        prob = sum(init[x0] * np.prod([T[a, b] for a, b in zip((x0,) + seq[:-1], seq)]) for x0 in range(V))
        law[seq] = prob
    return law


def _chi_square(samples, law):
    V, L = law.shape[0], law.ndim
    counts = np.bincount(np.ravel_multi_index(samples.T, (V,) * L), minlength=V**L)
    expected = law.ravel() * len(samples)
    support = expected > 0
    assert counts[~support].sum() == 0, "a sequence of probability 0 under the target was decoded"
    chi2 = float(np.sum((counts[support] - expected[support]) ** 2 / expected[support]))
    return stats.chi2.sf(chi2, int(support.sum()) - 1)


@pytest.mark.parametrize("verifier", VERIFIERS)
@pytest.mark.parametrize("policy", POLICIES, ids=str)
@pytest.mark.parametrize("case", ["V3", "V4"])
def test_decoded_law_is_target_chain_law(case, policy, verifier):
    if case == "V3":  # 5 tokens: at least two rounds with K ≤ 4
        T, D, L, init = T3, D3, 5, 0
        init_law = np.eye(3)[0]
    else:  # an initial distribution instead of a fixed prompt token
        T, D, L, init = T4, D4, 4, np.array([0.1, 0.2, 0.3, 0.4])
        init_law = init
    seed = 1000 + (0 if case == "V3" else 10) + POLICIES.index(policy) * 2 + VERIFIERS.index(verifier)
    s = sample_sequences(T, D, policy, verifier, tokens=L, replicas=150_000, seed=seed, initial=init)
    law = _path_law(T, init_law, L)
    assert _chi_square(s.tokens, law) > P_MIN
    if case == "V4":  # the prompt tokens follow the initial law
        counts = np.bincount(s.initial, minlength=4)
        assert stats.chisquare(counts, init_law * len(s.initial)).pvalue > P_MIN
    else:
        assert np.all(s.initial == 0)


def test_chi_square_has_power():
    """At this sample size the test rejects a law 3% away from the target chain's (a decoder that
    emitted the draft chain's token with probability 0.03 at each step), and the draft chain itself."""
    L = 5
    s = sample_sequences(T3, D3, fixed_k(3), "token", tokens=L, replicas=150_000, seed=3)
    assert _chi_square(s.tokens, _path_law(T3, np.eye(3)[0], L)) > P_MIN
    wrong = _path_law(0.97 * T3 + 0.03 * D3, np.eye(3)[0], L)
    assert _chi_square(s.tokens, wrong) < 1e-10
    drafts = sample_sequences(D3, D3, fixed_k(3), "token", tokens=L, replicas=150_000, seed=3)
    with pytest.raises(AssertionError, match="probability 0"):
        _chi_square(drafts.tokens, _path_law(T3, np.eye(3)[0], L))


# ------------------------------------------------------------------------------------------------
# reproducibility
# ------------------------------------------------------------------------------------------------
def test_same_seed_identical_different_seed_different():
    a = simulate_decoding(T4, D4, threshold(0.6, 1, 5), "block", tokens=5000, seed=11, record_sequence=True)
    b = simulate_decoding(T4, D4, threshold(0.6, 1, 5), "block", tokens=5000, seed=11, record_sequence=True)
    c = simulate_decoding(T4, D4, threshold(0.6, 1, 5), "block", tokens=5000, seed=12, record_sequence=True)
    assert a.to_dict() == b.to_dict()
    assert not np.array_equal(a.sequence[:100], c.sequence[:100])
    assert len(a.sequence) == a.tokens


def test_chunked_run_equals_single_run(capsys):
    a = simulate_decoding(T3, D3, fixed_k(4), "token", tokens=20_000, seed=5, record_sequence=True)
    b = simulate_decoding(T3, D3, fixed_k(4), "token", tokens=20_000, seed=5, record_sequence=True, _chunk_tokens=777)
    c = simulate_decoding(T3, D3, fixed_k(4), "token", tokens=20_000, seed=5, record_sequence=True, progress=True)
    assert a.to_dict() == b.to_dict() == c.to_dict()
    capsys.readouterr()


def test_replica_zero_is_the_single_run():
    run = simulate_decoding(T4, D4, fixed_k(3), "block", tokens=30, seed=21, record_sequence=True, initial=np.full(4, 0.25))
    seqs = sample_sequences(T4, D4, fixed_k(3), "block", tokens=30, replicas=3, seed=21, initial=np.full(4, 0.25))
    assert seqs.initial[0] == run.initial_token
    np.testing.assert_array_equal(seqs.tokens[0], run.sequence[:30])
    assert not np.array_equal(seqs.tokens[1], seqs.tokens[2])
    again = sample_sequences(T4, D4, fixed_k(3), "block", tokens=30, replicas=3, seed=21, initial=np.full(4, 0.25))
    np.testing.assert_array_equal(seqs.tokens, again.tokens)


def test_reproducible_across_processes_and_thread_counts(tmp_path):
    code = (
        "import numpy as np, sys\n"
        "from spectheory.simulations.decoding import simulate_decoding\n"
        "T = np.load(sys.argv[1]); D = np.load(sys.argv[2])\n"
        "r = simulate_decoding(T, D, 'threshold:0.5:1:4', 'token', tokens=3000, seed=99, record_sequence=True)\n"
        "print(r.rounds, ''.join(map(str, r.sequence.tolist())))\n"
    )
    np.save(tmp_path / "T.npy", T4)
    np.save(tmp_path / "D.npy", D4)
    here = simulate_decoding(T4, D4, "threshold:0.5:1:4", "token", tokens=3000, seed=99, record_sequence=True)
    expected = f"{here.rounds} {''.join(map(str, here.sequence.tolist()))}"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code, str(tmp_path / "T.npy"), str(tmp_path / "D.npy")],
        capture_output=True, text=True, check=True, cwd=tmp_path, env={**__import__("os").environ, "NUMBA_NUM_THREADS": "1"},
    )
    assert out.stdout.strip() == expected


# ------------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tokens", [0, -3, 1.5, 10.0, True, "10", None])
def test_bad_tokens(tokens):
    with pytest.raises(ValueError, match="tokens"):
        simulate_decoding(T3, D3, fixed_k(2), "token", tokens=tokens, seed=0)


@pytest.mark.parametrize("seed", [1.5, 2.0, True, "3", None, -1, np.float64(1.0)])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        simulate_decoding(T3, D3, fixed_k(2), "token", tokens=10, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        sample_sequences(T3, D3, fixed_k(2), "token", tokens=3, replicas=2, seed=seed)


def test_numpy_integer_seed_and_tokens_accepted():
    a = simulate_decoding(T3, D3, fixed_k(2), "token", tokens=np.int64(50), seed=np.int32(4))
    b = simulate_decoding(T3, D3, fixed_k(2), "token", tokens=50, seed=4)
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize(
    "make",
    [
        lambda: FixedK(0),
        lambda: FixedK(2.0),
        lambda: FixedK(True),
        lambda: Threshold(0.0),
        lambda: Threshold(1.0),
        lambda: Threshold(-0.2),
        lambda: Threshold(float("nan")),
        lambda: Threshold(0.5, min_k=3, max_k=2),
        lambda: Threshold(0.5, min_k=0, max_k=2),
        lambda: Threshold(0.5, 1, 2.5),
        lambda: parse_policy("fixed:x"),
        lambda: parse_policy("threshold:0.5:2"),
        lambda: parse_policy("greedy:3"),
    ],
)
def test_bad_policies(make):
    with pytest.raises(ValueError):
        make()


def test_policies_parse_and_freeze():
    assert parse_policy("fixed:4") == FixedK(4)
    assert parse_policy("threshold:0.6") == Threshold(0.6, 1, decoding.DEFAULT_MAX_K)
    assert parse_policy("threshold:0.6:2:20") == Threshold(0.6, 2, 20)
    assert str(Threshold(0.6, 2, 20)) == "threshold:0.6:2:20" and str(FixedK(3)) == "fixed:3"
    with pytest.raises(AttributeError):
        FixedK(3).k = 4


@pytest.mark.parametrize(
    "target,draft,match",
    [
        (T3 * 1.1, D3, "target: row"),
        (T3, D3[:, ::-1] * 0.5, "draft: row"),
        (np.where(T3 == 0.5, -0.1, T3), D3, "negative"),
        (np.where(T3 == 0.5, np.nan, T3), D3, "NaN"),
        (T3[:2], D3, "square"),
        (T3[0], D3, "square"),
        (T3, D4, "vocabulary sizes differ"),
        ([["a", "b"], ["c", "d"]], D3, "numeric"),
    ],
)
def test_bad_matrices(target, draft, match):
    with pytest.raises(SpecTheoryValueError, match=match):
        simulate_decoding(target, draft, fixed_k(2), "token", tokens=10, seed=0)


def test_bad_verifier_policy_initial():
    with pytest.raises(ValueError, match="verifier"):
        simulate_decoding(T3, D3, fixed_k(2), "rrs", tokens=10, seed=0)
    with pytest.raises(ValueError, match="policy"):
        simulate_decoding(T3, D3, 3, "token", tokens=10, seed=0)
    with pytest.raises(ValueError, match="initial"):
        simulate_decoding(T3, D3, fixed_k(2), "token", tokens=10, seed=0, initial=3)
    with pytest.raises(ValueError, match="initial"):
        simulate_decoding(T3, D3, fixed_k(2), "token", tokens=10, seed=0, initial=[0.5, 0.5])
    with pytest.raises(ValueError, match="replicas"):
        sample_sequences(T3, D3, fixed_k(2), "token", tokens=3, replicas=0, seed=0)


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def markov_files(tmp_path):
    np.save(tmp_path / "T.npy", T4)
    np.save(tmp_path / "D.npy", D4)
    np.save(tmp_path / "bad.npy", T4 * 0.9)
    np.save(tmp_path / "rect.npy", T4[:3])
    return str(tmp_path / "T.npy"), str(tmp_path / "D.npy"), str(tmp_path / "bad.npy"), str(tmp_path / "rect.npy")


def test_cli_decoding_json_matches_api(markov_files, capsys):
    T, D, _, _ = markov_files
    status = main(["simulate", "decoding", "--target", T, "--draft", D, "--policy", "threshold:0.6:1:5",
                   "--verifier", "block", "--tokens", "3000", "--seed", "8", "--json", "--sequence"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    api = simulate_decoding(T4, D4, Threshold(0.6, 1, 5), "block", tokens=3000, seed=8, record_sequence=True).to_dict()
    for key, value in api.items():
        assert out[key] == value, key
    assert out["V"] == 4 and out["settings"]["policy"] == "threshold:0.6:1:5"


def test_cli_decoding_table(markov_files, capsys):
    T, D, _, _ = markov_files
    assert main(["simulate", "decoding", "--target", T, "--draft", D, "--tokens", "2000", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "tokens per round" in out and "acceptance" in out


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--policy", "fixed:0"], "--policy"),
        (["--policy", "threshold:1.5"], "--policy"),
        (["--policy", "threshold:0.5:4:2"], "min_k"),
        (["--policy", "sometimes"], "--policy"),
        (["--tokens", "0"], "--tokens"),
        (["--tokens", "1e5"], "--tokens"),
        (["--seed", "1.5"], "--seed"),
        (["--seed", "-2"], "--seed"),
        (["--verifier", "rrs"], "--verifier"),
        (["--initial", "9"], "--initial"),
        (["--target", "BAD"], "--target: row"),
        (["--target", "RECT"], "--target: expected a square"),
        (["--target", "missing.npy"], "file not found"),
    ],
)
def test_cli_decoding_errors(markov_files, capsys, extra, match):
    T, D, bad, rect = markov_files
    extra = [bad if e == "BAD" else rect if e == "RECT" else e for e in extra]
    args = {"--target": T, "--draft": D}
    rest = []
    it = iter(extra)
    for opt in it:
        val = next(it)
        if opt in args:
            args[opt] = val
        else:
            rest += [opt, val]
    argv = ["simulate", "decoding", "--target", args["--target"], "--draft", args["--draft"], "--tokens", "100", *rest]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("spectheory: error: ") and err.count("\n") == 1, err
    assert match in err


def test_cli_acceptance_calls_estimate(monkeypatch, tmp_path, capsys):
    """The acceptance mode's wiring, with a stand-in for spectheory.simulations.montecarlo."""
    calls = []

    class Estimate(types.SimpleNamespace):
        pass

    def estimate_acceptance(p, q, n, verifier, trials, seed, progress=False):
        calls.append((np.asarray(p), np.asarray(q), n, verifier, trials, seed))
        if verifier == "nope":
            raise SpecTheoryValueError("verifier: unknown verifier 'nope'")
        return Estimate(mean=0.75, stderr=0.01, trials=trials)

    fake = types.ModuleType("spectheory.simulations.montecarlo")
    fake.estimate_acceptance = estimate_acceptance
    fake.SimulationInterrupted = type("SimulationInterrupted", (KeyboardInterrupt,), {})  # the CLI catches it
    monkeypatch.setitem(sys.modules, "spectheory.simulations.montecarlo", fake)
    np.save(tmp_path / "p.npy", np.array([0.5, 0.5]))
    np.save(tmp_path / "q.npy", np.array([0.9, 0.1]))
    base = ["simulate", "acceptance", "--target", str(tmp_path / "p.npy"), "--draft", str(tmp_path / "q.npy")]
    assert main([*base, "-n", "4", "--verifier", "rrs", "--trials", "5000", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mean"] == 0.75 and out["stderr"] == 0.01 and out["trials"] == 5000
    _, q, n, verifier, trials, seed = calls[-1]
    assert n == 4 and verifier == "rrs" and trials == 5000 and seed == 3
    np.testing.assert_array_equal(q, [0.9, 0.1])
    assert main([*base, "-n", "2"]) == 0
    assert "0.750000" in capsys.readouterr().out
    for extra in (["--verifier", "nope"], ["-n", "0"], ["--trials", "x"], ["--seed", "-1"]):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("spectheory: error: ") and err.count("\n") == 1, err


def test_cli_simulate_needs_a_mode(capsys):
    assert main(["simulate"]) == 2
    capsys.readouterr()


def test_cli_acceptance_with_the_real_engine(tmp_path, capsys):
    import spectheory.simulations.montecarlo as montecarlo
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    argv = ["simulate", "acceptance", "--target", str(tmp_path / "p.npy"), "--draft", str(tmp_path / "q.npy"),
            "-n", "2", "--verifier", "rrs", "--trials", "20000", "--seed", "4", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    est = montecarlo.estimate_acceptance(p, q, 2, "rrs", 20000, 4)
    assert out["mean"] == est.mean and out["stderr"] == est.stderr and out["trials"] == 20000
