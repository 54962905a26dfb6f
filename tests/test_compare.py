"""`st.compare` and `spectheory compare`: the table against the API, the plot, JSON/CSV, errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import spectheory as st
from spectheory.cli import main


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(40, 0.3), size=3)
    q = 0.6 * p + 0.4 * rng.dirichlet(np.full(40, 0.3), size=3)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    return tmp_path, p, q


def test_compare_rows_match_the_api(files):
    _, p, q = files
    rows = st.compare(p, q, [1, 2, 3])
    seen = {(r.verifier, r.sampling, r.n) for r in rows}
    assert ("sd", "iid", 1) in seen and ("sd", "iid", 2) not in seen
    assert ("spechub", "hub", 2) in seen and ("spechub", "hub", 3) not in seen
    assert ("optimal", "without_replacement", 3) in seen
    for r in rows:
        bound = np.mean(st.optimal_acceptance(p, q, r.n, r.sampling))
        assert r.bound == pytest.approx(bound, abs=1e-12)
        if r.verifier != "optimal":
            assert r.acceptance == pytest.approx(np.mean(st.acceptance(p, q, r.n, r.verifier)), abs=1e-12)
        assert r.gap == pytest.approx(r.bound - r.acceptance, abs=1e-15)
        assert r.gap >= -1e-10 - 5 * r.stderr
        assert r.min_acceptance <= r.acceptance <= r.max_acceptance


def test_cli_compare_table_json_csv_plot(files, capsys):
    d, p, q = files
    png, csvp = d / "c.png", d / "c.csv"
    args = ["compare", "--target", str(d / "p.npy"), "--draft", str(d / "q.npy"), "-n", "1-3", "--plot", str(png)]
    assert main(args + ["--csv", str(csvp)]) == 0
    out = capsys.readouterr().out
    assert "kseq" in out and "gap" in out and str(png) in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(csvp) as fh:
        table = list(csv.DictReader(fh))
    assert {r["verifier"] for r in table} == {"sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy", "optimal"}
    assert main(args + ["--json", "--verifiers", "rrs", "kseq"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["V"] == 40 and doc["positions"] == 3
    kseq3 = [r for r in doc["rows"] if r["verifier"] == "kseq" and r["n"] == 3][0]
    assert kseq3["acceptance"] == pytest.approx(np.mean(st.acceptance(p, q, 3, "kseq")), abs=1e-12)
    assert {r["verifier"] for r in doc["rows"]} == {"rrs", "kseq"}


def test_cli_compare_marks_estimates(tmp_path, capsys):
    rng = np.random.default_rng(1)
    V = 400
    p = rng.dirichlet(np.full(V, 0.5))
    q = rng.dirichlet(np.full(V, 0.5))
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    code = main(["compare", "--target", str(tmp_path / "p.npy"), "--draft", str(tmp_path / "q.npy"),
                 "-n", "4", "--verifiers", "rrs_wor", "--no-plot"])
    assert code == 0
    out = capsys.readouterr().out
    assert "±" in out and "estimate" in out
    assert not (tmp_path / "compare.png").exists()


@pytest.mark.parametrize(
    "extra,match",
    [
        (["-n", "3", "--verifiers", "spechub"], "spechub n = 2"),
        (["-n", "0"], "-n: must be an integer >= 1"),
        (["--plot", "x.pdf"], "--plot: expected a .png"),
        (["--temperature", "0.5"], "--temperature: only applies to logits"),
    ],
)
def test_cli_compare_user_errors(files, capsys, extra, match):
    d, _, _ = files
    code = main(["compare", "--target", str(d / "p.npy"), "--draft", str(d / "q.npy")] + extra)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("spectheory: error:") and match in err and err.count("\n") == 1


def test_cli_compare_missing_file(files, capsys):
    d, _, _ = files
    assert main(["compare", "--target", str(d / "p.npy"), "--draft", str(d / "none.npy")]) == 2
    assert "file not found" in capsys.readouterr().err
