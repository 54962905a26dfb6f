"""The command line: `spectheory bound` output against the API, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import spectheory as st
from spectheory.cli import main, parse_n_list

import safetensors.numpy as safetensors_numpy  # noqa: E402

V = 6
B = 3


def _brute_optimal_acceptance(p, q, n, sampling="iid", method="auto"):
    """Stand-in with the contract of st.optimal_acceptance, from the brute-force subset dual."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.ndim == 1:
        return st.solvers.subset_dual_brute(p, q, n, sampling).acceptance
    return np.array([st.solvers.subset_dual_brute(p[b], q[b], n, sampling).acceptance for b in range(len(p))])


def _is_placeholder() -> bool:
    try:
        st.optimal_acceptance([0.5, 0.5], [0.9, 0.1], 1)
    except NotImplementedError:
        return True
    return False


@pytest.fixture
def optimal(monkeypatch):
    """st.optimal_acceptance as the CLI will call it: the real function, or, while it is still a
    placeholder, the brute-force stand-in patched in its place."""
    if _is_placeholder():
        monkeypatch.setattr(st, "optimal_acceptance", _brute_optimal_acceptance)
    return st.optimal_acceptance


@pytest.fixture
def pair(tmp_path):
    """A small batch (B, V) of related target/draft distributions, with zeros in q, saved as .npy."""
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(V), size=B)
    q = rng.dirichlet(np.ones(V) * 0.5, size=B)
    q[:, 0] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    return p, q, str(tmp_path / "p.npy"), str(tmp_path / "q.npy")


def run_json(capsys, *args):
    rc = main(["bound", *args, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err == ""
    return json.loads(out)


def assert_one_line_error(capsys, argv, *fragments):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("spectheory: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- results


def test_json_matches_api_batch(capsys, optimal, pair):
    p, q, pf, qf = pair
    data = run_json(capsys, "--target", pf, "--draft", qf, "-n", "1", "2", "3")
    assert data["V"] == V and data["positions"] == B
    got = {(r["sampling"], r["n"]): r for r in data["results"]}
    expected_keys = {(s, n) for s in ("iid", "without_replacement", "greedy") for n in (1, 2, 3)} | {("hub", 2)}
    assert set(got) == expected_keys
    for (sampling, n), row in got.items():
        direct = np.asarray(optimal(p, q, n, sampling=sampling))
        brute = [st.solvers.subset_dual_brute(p[b], q[b], n, sampling).acceptance for b in range(B)]
        np.testing.assert_allclose(row["per_position"], direct, rtol=0, atol=1e-12)
        np.testing.assert_allclose(row["per_position"], brute, rtol=0, atol=1e-8)
        assert row["bound"] == pytest.approx(np.mean(direct), abs=1e-12)
        assert row["min"] == pytest.approx(np.min(direct), abs=1e-12)
        assert row["max"] == pytest.approx(np.max(direct), abs=1e-12)
    assert data["settings"]["n"] == [1, 2, 3]
    assert data["settings"]["method"] == "auto"


def test_json_single_position(capsys, optimal, tmp_path, pair):
    p, q, _, _ = pair
    np.savetxt(tmp_path / "p.txt", p[:1])
    np.savetxt(tmp_path / "q.csv", q[:1], delimiter=",", fmt="%.17g")
    data = run_json(
        capsys, "--target", str(tmp_path / "p.txt"), "--draft", str(tmp_path / "q.csv"),
        "-n", "1-4", "--sampling", "iid", "without_replacement", "--method", "auto",
    )
    assert data["positions"] == 1
    assert [(r["sampling"], r["n"]) for r in data["results"]] == [
        (s, n) for s in ("iid", "without_replacement") for n in (1, 2, 3, 4)
    ]
    for row in data["results"]:
        assert "per_position" not in row
        expected = optimal(np.loadtxt(tmp_path / "p.txt"), q[0], row["n"], sampling=row["sampling"])
        assert row["bound"] == pytest.approx(float(expected), abs=1e-9)
        brute = st.solvers.subset_dual_brute(p[0], q[0], row["n"], row["sampling"]).acceptance
        assert row["bound"] == pytest.approx(brute, abs=1e-8)


def test_logits_safetensors_with_processing(capsys, optimal, tmp_path):
    rng = np.random.default_rng(3)
    lt = rng.normal(size=(4, V)).astype(np.float32)
    ld = (0.7 * lt + rng.normal(size=(4, V))).astype(np.float32)
    safetensors_numpy.save_file({"logits": lt, "other": ld}, str(tmp_path / "t.safetensors"))
    safetensors_numpy.save_file({"logits": ld}, str(tmp_path / "d.safetensors"))
    data = run_json(
        capsys, "--target", f"{tmp_path / 't.safetensors'}:logits", "--draft", str(tmp_path / "d.safetensors"),
        "--logits", "--temperature", "0.8", "--top-k", "4", "--top-p", "0.95", "-n", "2", "--sampling", "hub", "iid",
    )
    p = st.from_logits(lt, temperature=0.8, top_k=4, top_p=0.95)
    q = st.from_logits(ld, temperature=0.8, top_k=4, top_p=0.95)
    for row in data["results"]:
        np.testing.assert_allclose(row["per_position"], optimal(p, q, 2, sampling=row["sampling"]), atol=1e-9)
    assert data["settings"]["temperature"] == 0.8 and data["settings"]["top_k"] == 4


def test_temperature_zero_is_valid(capsys, optimal, tmp_path):
    np.save(tmp_path / "lt.npy", np.array([2.0, 1.0, 0.0, -1.0]))
    np.save(tmp_path / "ld.npy", np.array([1.0, 2.0, 0.0, -1.0]))
    data = run_json(capsys, "--target", str(tmp_path / "lt.npy"), "--draft", str(tmp_path / "ld.npy"),
                    "--logits", "--temperature", "0", "-n", "1", "--sampling", "iid")
    assert data["results"][0]["bound"] == pytest.approx(0.0, abs=1e-12)  # two different argmaxes


def test_independent_drafters(capsys, optimal, tmp_path, pair):
    p, q, pf, _ = pair
    drafters = np.stack([q[0], q[1]])
    np.save(tmp_path / "qs.npy", drafters)
    np.save(tmp_path / "p1.npy", p[0])
    data = run_json(capsys, "--target", str(tmp_path / "p1.npy"), "--draft", str(tmp_path / "qs.npy"),
                    "--sampling", "independent")
    [row] = data["results"]
    assert row["n"] == 2
    assert row["bound"] == pytest.approx(float(optimal(p[0], drafters, 2, sampling="independent")), abs=1e-9)
    assert row["bound"] == pytest.approx(
        st.solvers.subset_dual_brute(p[0], drafters, 2, "independent").acceptance, abs=1e-8
    )


def test_table_output(capsys, optimal, pair):
    p, q, pf, qf = pair
    assert main(["bound", "--target", pf, "--draft", qf, "-n", "2", "--sampling", "greedy"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.strip().splitlines()
    assert "V = 6" in lines[0] and "3 positions" in lines[0]
    assert lines[1].split() == ["sampling", "n", "bound", "min", "max"]
    cells = lines[3].split()
    assert cells[:2] == ["greedy", "2"]
    values = np.asarray(optimal(p, q, 2, sampling="greedy"))
    np.testing.assert_allclose([float(c) for c in cells[2:]], [values.mean(), values.min(), values.max()], atol=1e-6)


def test_table_single_position_has_no_min_max(capsys, optimal, tmp_path, pair):
    p, q, _, _ = pair
    np.save(tmp_path / "a.npy", p[0])
    np.save(tmp_path / "b.npy", q[0])
    assert main(["bound", "--target", str(tmp_path / "a.npy"), "--draft", str(tmp_path / "b.npy"), "-n", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split() == ["sampling", "n", "bound"]
    assert [ln.split()[0] for ln in lines[3:]] == ["iid", "without_replacement", "greedy"]  # no hub at n = 1


def test_method_is_passed_through(capsys, monkeypatch, pair):
    calls = []

    def spy(p, q, n, sampling="iid", method="auto"):
        calls.append((sampling, n, method))
        return np.full(len(p), 0.5)

    monkeypatch.setattr(st, "optimal_acceptance", spy)
    _, _, pf, qf = pair
    run_json(capsys, "--target", pf, "--draft", qf, "-n", "2", "--sampling", "iid", "--method", "lp")
    assert calls == [("iid", 2, "lp")]


@pytest.mark.parametrize(
    "tokens, expected",
    [(["1", "2", "4"], [1, 2, 4]), (["1-4"], [1, 2, 3, 4]), (["1,2", "8"], [1, 2, 8]), (["4", "2", "2"], [2, 4])],
)
def test_parse_n_list(tokens, expected):
    assert parse_n_list(tokens) == expected


# ----------------------------------------------------------------------------- errors


def test_missing_file(capsys, pair):
    _, _, pf, _ = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", "nope.npy"], "--draft: file not found: nope.npy")


def test_bad_extension(capsys, tmp_path, pair):
    _, _, pf, _ = pair
    (tmp_path / "q.json").write_text("[1]")
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", str(tmp_path / "q.json")],
                          "--draft: unsupported file type '.json'")


@pytest.mark.parametrize("suffix", [".npy", ".safetensors", ".txt"])
def test_corrupt_file(capsys, tmp_path, pair, suffix):
    _, _, _, qf = pair
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"\x93NUMPY garbage \x00\xff" if suffix != ".txt" else b"0.5 zero.5\n")
    assert_one_line_error(capsys, ["bound", "--target", str(bad), "--draft", qf], "--target: cannot read")


def test_nan_entries(capsys, tmp_path, pair):
    p, _, _, qf = pair
    p = p.copy()
    p[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", p)
    assert_one_line_error(capsys, ["bound", "--target", str(tmp_path / "nan.npy"), "--draft", qf], "--target", "NaN")


def test_nan_logits(capsys, tmp_path):
    np.save(tmp_path / "l.npy", np.array([0.0, np.nan, 1.0]))
    np.save(tmp_path / "m.npy", np.array([0.0, 0.0, 1.0]))
    assert_one_line_error(capsys, ["bound", "--target", str(tmp_path / "m.npy"), "--draft", str(tmp_path / "l.npy"),
                                   "--logits"], "--draft", "NaN")


def test_not_a_distribution(capsys, tmp_path, pair):
    _, _, pf, _ = pair
    np.save(tmp_path / "counts.npy", np.array([[3.0, 1, 0, 0, 0, 1]] * B))
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", str(tmp_path / "counts.npy")],
                          "--draft: does not sum to 1")


def test_wrong_shape(capsys, tmp_path, pair):
    p, _, _, qf = pair
    np.save(tmp_path / "cube.npy", np.stack([p, p]))
    assert_one_line_error(capsys, ["bound", "--target", str(tmp_path / "cube.npy"), "--draft", qf], "--target", "shape")


def test_mismatched_vocabulary(capsys, tmp_path, pair):
    p, _, pf, _ = pair
    np.save(tmp_path / "q7.npy", np.full((B, V + 1), 1 / (V + 1)))
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", str(tmp_path / "q7.npy")],
                          "vocabulary sizes differ", f"V = {V}", f"V = {V + 1}")


def test_mismatched_positions(capsys, tmp_path, pair):
    _, q, pf, _ = pair
    np.save(tmp_path / "q2.npy", q[:2])
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", str(tmp_path / "q2.npy")], "positions differ")


@pytest.mark.parametrize("n", ["0", "-1", "1.5", "3-1"])
def test_bad_n(capsys, pair, n):
    _, _, pf, qf = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", qf, "-n", n], "-n: ")


def test_hub_needs_n_2(capsys, pair):
    _, _, pf, qf = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", qf, "-n", "3", "--sampling", "hub"],
                          "hub", "n = 2")


def test_hub_alone_defaults_to_n_2(capsys, optimal, pair):
    p, q, pf, qf = pair
    data = run_json(capsys, "--target", pf, "--draft", qf, "--sampling", "iid", "hub")
    assert [(r["sampling"], r["n"]) for r in data["results"]] == [("iid", 2), ("hub", 2)]
    np.testing.assert_allclose(data["results"][1]["per_position"], optimal(p, q, 2, sampling="hub"), atol=1e-12)


def test_independent_row_count_must_equal_n(capsys, tmp_path, pair):
    p, q, _, _ = pair
    np.save(tmp_path / "p1.npy", p[0])
    np.save(tmp_path / "qs.npy", q)  # 3 drafter rows
    assert_one_line_error(capsys, ["bound", "--target", str(tmp_path / "p1.npy"), "--draft", str(tmp_path / "qs.npy"),
                                   "--sampling", "independent", "-n", "2"], "3 drafter rows", "n = 3")


def test_independent_not_combined(capsys, pair):
    _, _, pf, qf = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", qf, "--sampling", "independent", "iid"],
                          "cannot be combined")


@pytest.mark.parametrize("temperature", ["-1", "-0.001", "nan", "inf"])
def test_negative_temperature_with_logits(capsys, pair, temperature):
    _, _, pf, qf = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", qf, "--logits", "--temperature", temperature],
                          "--temperature")


@pytest.mark.parametrize("option, value", [("--top-k", "0"), ("--top-p", "0"), ("--top-p", "1.5")])
def test_bad_filtering(capsys, pair, option, value):
    _, _, pf, qf = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", qf, "--logits", option, value], option)


def test_processing_without_logits(capsys, pair):
    _, _, pf, qf = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", qf, "--temperature", "0.5"], "--logits")


def test_solver_value_error_is_one_line(capsys, monkeypatch, pair):
    def refuse(*args, **kwargs):
        raise st.SpecTheoryValueError("p: problem too large\n(limit 10)")

    monkeypatch.setattr(st, "optimal_acceptance", refuse)
    _, _, pf, qf = pair
    assert_one_line_error(capsys, ["bound", "--target", pf, "--draft", qf], "problem too large (limit 10)")


def test_usage_errors_exit_2(capsys):
    assert main(["bound", "--draft", "q.npy"]) == 2  # --target missing
    assert "--target" in capsys.readouterr().err
    assert main(["bound", "--target", "a", "--draft", "b", "--sampling", "nope"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "bound" in capsys.readouterr().out


# ----------------------------------------------------------------------------- real processes


def test_subprocess_error_exit_status_and_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "spectheory", "bound", "--target", str(tmp_path / "x.npy"), "--draft", "y.npy"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"spectheory: error: --target: file not found: {tmp_path / 'x.npy'}"]


def test_subprocess_hub_n3(tmp_path, pair):
    _, _, pf, qf = pair
    proc = subprocess.run(
        [sys.executable, "-m", "spectheory", "bound", "--target", pf, "--draft", qf, "--sampling", "hub", "-n", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_subprocess_help():
    proc = subprocess.run([sys.executable, "-m", "spectheory", "bound", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    assert "--target" in proc.stdout and "--sampling" in proc.stdout


def test_subprocess_shipped_example_json():
    from spectheory.io import example_path

    proc = subprocess.run(
        [sys.executable, "-m", "spectheory", "bound", "--target", str(example_path("target.npy")),
         "--draft", str(example_path("draft.npy")), "-n", "1", "2", "4", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    p = np.load(example_path("target.npy"))
    q = np.load(example_path("draft.npy"))
    for row in data["results"]:
        assert row["bound"] == pytest.approx(float(st.optimal_acceptance(p, q, row["n"], sampling=row["sampling"])),
                                             abs=1e-12)
    assert data["results"][0]["bound"] == pytest.approx(np.minimum(p, q).sum(), abs=1e-9)  # n = 1: 1 - TV
