"""Replay over logits (torch) against the NumPy reference path, column by column.

The reference for every exact column is ``st.optimal_acceptance`` / ``st.verifier(name).acceptance``
on ``st.from_logits`` of the same logits in float64; the rrs_wor estimate (n > 2) is checked
against the exact recursion within its standard error, and path by path against the NumPy
Rao–Blackwellised kernel fed the same uniforms.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import spectheory as st  # noqa: E402
from spectheory.simulations import _torch_bounds as tb  # noqa: E402
from spectheory.simulations.replay import ReplayResult, column_names, replay  # noqa: E402
from spectheory.verifiers import batched as bt  # noqa: E402

TOL64 = 1e-9
#: float32 computation against the float64 reference (observed ≤ 1.4e-6, V from 6 to 152k).
TOL32 = 1e-5
NS = (1, 2, 3, 4, 8)


def reference(target, draft, ns=NS, temperature=1.0, top_k=None, top_p=None):
    """Every exact column by the NumPy path (rrs_wor only where it is exact: min(n, |supp q|) ≤ 2)."""
    target = np.asarray(target, dtype=np.float64)
    draft = np.asarray(draft, dtype=np.float64)
    P = st.from_logits(target, temperature, top_k, top_p)
    Q = st.from_logits(draft, temperature, top_k, top_p)
    sup = np.count_nonzero(Q > 0, axis=1)
    cols = {}
    for s in ("iid", "without_replacement", "greedy"):
        for n in ns:
            cols[f"bound/{s}/n={n}"] = st.optimal_acceptance(P, Q, n, s)
    if 2 in ns:
        cols["bound/hub/n=2"] = st.optimal_acceptance(P, Q, 2, "hub")
        cols["verifier/spechub/n=2"] = st.verifier("spechub").acceptance(P, Q, 2)
    if 1 in ns:
        cols["verifier/sd/n=1"] = st.verifier("sd").acceptance(P, Q, 1)
    for v in ("rrs", "kseq", "greedy"):
        for n in ns:
            cols[f"verifier/{v}/n={n}"] = st.verifier(v).acceptance(P, Q, n)
    for n in ns:
        k = np.minimum(n, sup)
        rows = np.flatnonzero(k <= 2)
        val = np.full(len(P), np.nan)
        if rows.size:
            val[rows] = st.verifier("rrs_wor").acceptance(P[rows], Q[rows], n)
        cols[f"verifier/rrs_wor/n={n}"] = val
    return cols


def assert_matches(res, ref, tol, *, skip=()):
    for name, want in ref.items():
        if name in skip:
            continue
        got = res[name]
        mask = ~np.isnan(want)
        err = np.max(np.abs(got[mask] - want[mask])) if mask.any() else 0.0
        assert err <= tol, f"{name}: max |replay - reference| = {err:.3g} > {tol:g}"


def random_logits(rng, T, V, scale=2.5):
    base = rng.standard_normal((T, V)) * scale
    return base + rng.standard_normal((T, V)), base + 1.5 * rng.standard_normal((T, V))


def nasty_logits(V=6):
    """Rows that break naive code: one-hot, p = q, disjoint supports, masked tokens, ties."""
    ninf = -np.inf
    rows_t, rows_d = [], []

    def add(t, d):
        rows_t.append(np.asarray(t, dtype=np.float64))
        rows_d.append(np.asarray(d, dtype=np.float64))

    add([5.0, ninf, ninf, ninf, ninf, ninf], [1.0, 2.0, 0.0, -1.0, 0.5, 0.1])  # one-hot target
    add([1.0, 2.0, 0.0, -1.0, 0.5, 0.1], [ninf, 3.0, ninf, ninf, ninf, ninf])  # one-hot draft
    add([0.3, 1.0, -2.0, 0.0, 0.7, 0.2], [0.3, 1.0, -2.0, 0.0, 0.7, 0.2])  # p = q
    add([2.0, 1.0, 0.5, ninf, ninf, ninf], [ninf, ninf, ninf, 0.0, 1.0, 2.0])  # disjoint supports
    add([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # uniform, all ties
    add([1.0, 1.0, ninf, 0.0, ninf, -3.0], [ninf, 1.0, 0.0, 0.0, 2.0, ninf])  # masked on both
    add([40.0, 0.0, -40.0, 1.0, 2.0, 3.0], [-40.0, 0.0, 40.0, 3.0, 2.0, 1.0])  # near one-hot, crossed
    add([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    add([0.0, 0.0, ninf, ninf, ninf, ninf], [0.0, 5.0, ninf, ninf, ninf, ninf])  # two tokens
    add([3.0, 0.0, 0.0, ninf, 1.0, 1.0], [0.0, 3.0, 3.0, 1.0, ninf, 1.0])
    add([0.0, 3.0, 1.0, 2.0, 0.0, 1.0], [2.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # greedy boundary ties, p differs
    add([0.0, 0.5, 0.2, 0.1, 0.3, 0.0], [35.0, 0.0, 1.0, 2.0, -1.0, 0.5])  # draft one-hot up to 1e-15
    add([0.1, 0.7, -0.3, 1.1, 0.2, 0.4], [0.1, 0.7 + 1e-9, -0.3, 1.1 - 2e-9, 0.2, 0.4])  # p = q up to 1e-9
    return np.stack(rows_t), np.stack(rows_d)


def run64(t, d, **kw):
    kw.setdefault("n", NS)
    return replay(t, d, device="cpu", dtype=torch.float64, **kw)


# --------------------------------------------------------------------------------------------
# float64: equal to the NumPy path
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("V", [7, 300])
def test_random_logits_match_reference(V):
    rng = np.random.default_rng([1, V])
    t, d = random_logits(rng, 24, V)
    res = run64(t, d, chunk_size=10)
    assert_matches(res, reference(t, d), TOL64)


def test_nasty_rows_match_reference():
    t, d = nasty_logits()
    res = run64(t, d, chunk_size=4)
    assert_matches(res, reference(t, d), TOL64)


@pytest.mark.parametrize(
    "processing",
    [dict(temperature=0.0), dict(temperature=0.5, top_k=3), dict(temperature=1.3, top_p=0.8),
     dict(temperature=0.7, top_k=40, top_p=0.9), dict(top_k=1)],
)
def test_processing_matches_from_logits(processing):
    rng = np.random.default_rng(7)
    t, d = random_logits(rng, 12, 60)
    t[:, :5] = t[:, 5:10] = 1.25  # exact ties: T = 0 keeps all of them, top-k keeps boundary ties
    res = run64(t, d, **processing)
    assert_matches(res, reference(t, d, **processing), TOL64)
    if processing.get("temperature") == 0.0:
        # T = 0: one draft is accepted with probability Σ min(p, q) of the argmax-tie laws
        P, Q = st.from_logits(t, 0.0), st.from_logits(d, 0.0)
        np.testing.assert_allclose(res["verifier/sd/n=1"], np.minimum(P, Q).sum(axis=1), atol=1e-15)


def test_probabilities_match_from_logits():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 50)) * 3
    x[:, 7] = -np.inf
    for kw in (dict(), dict(temperature=0.0), dict(temperature=0.6, top_k=5, top_p=0.7), dict(top_p=0.3)):
        want = st.from_logits(x, kw.get("temperature", 1.0), kw.get("top_k"), kw.get("top_p"))
        got = tb.probs_from_logits(torch.from_numpy(x), kw.get("temperature", 1.0), kw.get("top_k"), kw.get("top_p"))
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------------
# the rrs_wor estimate (n > 2)
# --------------------------------------------------------------------------------------------
def test_rrs_wor_is_the_same_number_from_replay_and_the_numpy_api():
    """One estimator, keyed by (seed, position): replay's rrs_wor column equals
    st.verifier("rrs_wor", seed=...).acceptance on the same probabilities (row index = position)."""
    rng = np.random.default_rng(21)
    t, d = random_logits(rng, 5, 300, scale=2.0)
    res = run64(t, d, n=(2, 3, 5), rrs_wor_paths=64, seed=4)
    P, Q = st.from_logits(t), st.from_logits(d)
    for n in (2, 3, 5):
        det = st.verifier("rrs_wor", paths=64, seed=4).acceptance_detail(P, Q, n)
        np.testing.assert_allclose(res[f"verifier/rrs_wor/n={n}"], det.value, rtol=0, atol=1e-12)
        np.testing.assert_allclose(res[f"stderr/rrs_wor/n={n}"], det.stderr, rtol=0, atol=1e-12)
    assert np.all(res["stderr/rrs_wor/n=5"] > 0)


@pytest.mark.parametrize("n", [3, 4])
def test_rrs_wor_estimate_agrees_with_exact_recursion(n):
    rng = np.random.default_rng([5, n])
    t, d = random_logits(rng, 6, 8, scale=1.5)
    P, Q = st.from_logits(t), st.from_logits(d)
    exact = st.verifier("rrs_wor").acceptance(P, Q, n)  # recursion (small support)
    res = run64(t, d, n=n, seed=3)
    np.testing.assert_allclose(res[f"verifier/rrs_wor/n={n}"], exact, rtol=0, atol=1e-12)
    assert np.all(res[f"stderr/rrs_wor/n={n}"] == 0)
    est = bt.rrs_wor(torch.from_numpy(P), torch.from_numpy(Q), (n,), paths=4096, seed=3, max_histories=0)
    value, se = est.value[:, 0].numpy(), est.stderr[:, 0].numpy()
    assert np.all(se > 0) and not est.exact.any()
    assert np.all(np.abs(value - exact) <= 5 * se + 1e-12), (value - exact) / se


def test_rrs_wor_estimate_is_exact_when_support_is_small():
    t, d = nasty_logits()
    res = run64(t, d, n=(3, 5))
    sup = np.count_nonzero(st.from_logits(d) > 0, axis=1)
    small = sup <= 2
    assert small.any()
    assert np.all(res["stderr/rrs_wor/n=5"][small] == 0)


def test_uniforms_are_keyed_by_position():
    pos = torch.arange(10, 20)
    u = bt.history_uniforms(7, pos, 5, 3)
    assert u.shape == (10, 5, 3) and float(u.min()) > 0 and float(u.max()) < 1
    assert torch.equal(u[3:], bt.history_uniforms(7, pos[3:], 5, 3))
    assert not torch.equal(u, bt.history_uniforms(8, pos, 5, 3))
    np.testing.assert_array_equal(u.numpy(), bt.history_uniforms(7, pos.numpy(), 5, 3))  # NumPy = torch
    big = bt.history_uniforms(0, torch.arange(200), 100, 2).flatten()
    assert abs(float(big.mean()) - 0.5) < 0.01 and abs(float(big.var()) - 1 / 12) < 0.005


# --------------------------------------------------------------------------------------------
# precision, chunking, table
# --------------------------------------------------------------------------------------------
def test_float32_close_to_reference():
    rng = np.random.default_rng(2)
    t, d = random_logits(rng, 16, 600)
    res = replay(t, d, n=NS, device="cpu", dtype=torch.float32)
    assert_matches(res, reference(t, d), TOL32)
    assert res.settings["dtype"] == "float32"
    t, d = nasty_logits()
    assert_matches(replay(t, d, n=NS, device="cpu", dtype="float32"), reference(t, d), TOL32)


def test_bfloat16_and_float16_inputs_accepted():
    rng = np.random.default_rng(4)
    t, d = random_logits(rng, 8, 100)
    for dt in (torch.bfloat16, torch.float16):
        tt, dd = torch.from_numpy(t).to(dt), torch.from_numpy(d).to(dt)
        res = replay(tt, dd, n=(1, 2, 4), device="cpu")
        # the reference on the same (rounded) logits, exact in float64
        ref = reference(tt.double().numpy(), dd.double().numpy(), ns=(1, 2, 4))
        assert_matches(res, ref, TOL64)


def test_chunking_and_sharding_invariance():
    rng = np.random.default_rng(9)
    t, d = random_logits(rng, 13, 50)
    whole = run64(t, d, n=(2, 3, 5), chunk_size=13)
    chunks = run64(t, d, n=(2, 3, 5), chunk_size=4)
    for c in whole.columns:
        np.testing.assert_allclose(chunks[c], whole[c], rtol=0, atol=1e-13, err_msg=c)
    shards = ReplayResult.concat(
        [run64(t[:6], d[:6], n=(2, 3, 5)), run64(t[6:], d[6:], n=(2, 3, 5), first_position=6)]
    )
    for c in whole.columns:
        np.testing.assert_allclose(shards[c], whole[c], rtol=0, atol=1e-13, err_msg=c)


def test_table_columns_rows_and_files(tmp_path):
    rng = np.random.default_rng(0)
    t, d = random_logits(rng, 5, 20)
    res = run64(t, d, n=(1, 2, 3))
    assert res.columns == ("position", *column_names((1, 2, 3), ("iid", "without_replacement", "greedy", "hub"),
                                                       ("sd", "rrs", "kseq", "spechub", "greedy", "rrs_wor")))
    assert "verifier/sd/n=2" not in res.columns and "bound/hub/n=3" not in res.columns
    rows = res.to_rows()
    assert len(rows) == 5 and rows[2]["position"] == 2
    summ = res.summary()
    assert summ["bound/iid/n=2"] == pytest.approx(float(np.mean(res["bound/iid/n=2"])))
    se = res["stderr/rrs_wor/n=3"]
    assert summ["stderr/rrs_wor/n=3"] == pytest.approx(math.sqrt(float(np.sum(se**2))) / 5)
    res.to_csv(tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert len(lines) == 6 and lines[0].split(",")[0] == "position"
    res.to_json(tmp_path / "r.json")
    back = ReplayResult.from_json(tmp_path / "r.json")
    assert back.columns == res.columns and back.settings == res.settings
    for c in res.columns:
        np.testing.assert_array_equal(back[c], res[c])
    # bounds dominate verifiers of the same scheme
    for n in (1, 2, 3):
        assert np.all(res[f"verifier/kseq/n={n}"] <= res[f"bound/iid/n={n}"] + 1e-12)
        assert np.all(res[f"verifier/rrs/n={n}"] <= res[f"bound/iid/n={n}"] + 1e-12)


def test_subsets_of_columns():
    rng = np.random.default_rng(6)
    t, d = random_logits(rng, 4, 30)
    res = run64(t, d, n=4, samplings="iid", verifiers=("kseq",))
    assert res.columns == ("position", "bound/iid/n=4", "verifier/kseq/n=4")
    one = replay(t[0], d[0], n=2, device="cpu", samplings=(), verifiers=("spechub",))
    assert len(one) == 1 and one.columns == ("position", "verifier/spechub/n=2")


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "t_shape, d_shape, match",
    [((3, 10), (3, 11), "vocabulary sizes differ"), ((3, 10), (4, 10), "numbers of positions differ"),
     ((0, 10), (0, 10), "empty"), ((2, 3, 4), (2, 3, 4), "shape")],
)
def test_bad_shapes(t_shape, d_shape, match):
    with pytest.raises(ValueError, match=match):
        replay(np.zeros(t_shape), np.zeros(d_shape), device="cpu")


def test_bad_values_and_settings():
    t = np.zeros((3, 5))
    bad = t.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or \\+inf at position 1, token 2"):
        replay(t, bad, device="cpu")
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="target_logits: NaN or \\+inf"):
        replay(bad, t, device="cpu")
    dead = t.copy()
    dead[2] = -np.inf
    with pytest.raises(ValueError, match="position 2 is entirely -inf"):
        replay(t, dead, device="cpu")
    with pytest.raises(ValueError, match="temperature"):
        replay(t, t, temperature=-0.5, device="cpu")
    with pytest.raises(ValueError, match="top_p"):
        replay(t, t, top_p=1.5, device="cpu")
    with pytest.raises(ValueError, match="n: must be an integer >= 1"):
        replay(t, t, n=[2, 0], device="cpu")
    with pytest.raises(ValueError, match="unknown 'optimal'"):
        replay(t, t, verifiers=("optimal",), device="cpu")
    with pytest.raises(ValueError, match="dtype"):
        replay(t, t, dtype=torch.float16, device="cpu")
    with pytest.raises(ValueError, match="float logits"):
        replay(np.array([["a", "b"]]), np.array([["a", "b"]]), device="cpu")
