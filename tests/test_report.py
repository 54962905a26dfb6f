"""`spectheory report` end to end in a reduced setting (tiny models built here), its resumption, and
the replay/record subcommands' one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spectheory.cli import main

from test_record import _model, _tokenizer  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    texts = ["def foo(x):\n    return x + 1\n"] * 20 + ["import os, sys\nprint('hello world')\n"] * 20
    tok = _tokenizer(texts)
    _model(tok, 0, hidden=32).save_pretrained(root / "target")
    tok.save_pretrained(root / "target")
    _model(tok, 1).save_pretrained(root / "draft")
    tok.save_pretrained(root / "draft")
    (root / "prompts.txt").write_text("def foo(\nimport os\nclass A:\n")
    return root


def test_report_end_to_end_and_resume(pair, tmp_path, capsys):
    out = tmp_path / "rep"
    args = ["report", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts",
            str(pair / "prompts.txt"), "--out", str(out), "--max-new-tokens", "6", "--n-max", "3", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "summary.md" in printed
    for name in ("summary.md", "summary.json", "per_position.csv", "bound_vs_n.png", "verifier_gap.png",
                 "acceptance_hist.png", "draft_length.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    doc = json.loads((out / "summary.json").read_text())
    s = doc["summary"]
    assert doc["n"] == [1, 2, 3] and doc["positions"] == len((out / "per_position.csv").read_text().splitlines()) - 1
    for n in (1, 2, 3):  # every verifier below the bound of its own scheme; more drafts never hurt
        assert s[f"verifier/rrs/n={n}"] <= s[f"bound/iid/n={n}"] + 1e-12
        assert s[f"verifier/kseq/n={n}"] <= s[f"bound/iid/n={n}"] + 1e-12
        assert s[f"bound/iid/n={n}"] <= s[f"bound/without_replacement/n={n}"] + 1e-12
    assert s["bound/iid/n=1"] <= s["bound/iid/n=3"] + 1e-12
    rows = {r["name"]: r["speedup"] for r in doc["draft_length"]["comparisons"][0]["rows"]}
    assert rows["optimal"] >= rows["best threshold"] - 1e-12 >= rows["best fixed K"] - 2e-12
    md = (out / "summary.md").read_text()
    assert "## Optimal acceptance" in md and "## Draft length" in md
    # every mean has a bootstrap-by-prompt interval; gaps are bound − acceptance >= 0 everywhere
    iv = doc["intervals"]
    assert doc["statistics"]["clusters"] == 3 and "bootstrap by prompt" in doc["statistics"]["method"]
    for key, mean in s.items():
        if not key.startswith("stderr/"):
            assert iv[key]["low"] - 1e-12 <= mean <= iv[key]["high"] + 1e-12 and iv[key]["mean"] == pytest.approx(mean)
    for n in (2, 3):
        assert iv[f"gap/rrs/n={n}"]["mean"] == pytest.approx(s[f"bound/iid/n={n}"] - s[f"verifier/rrs/n={n}"])
        assert iv[f"gap/rrs/n={n}"]["mean"] >= -1e-12
    import re

    assert not re.search(r"\d \(−\d", md) and "gap = α*" in md  # no negative-gap cells "0.64 (−0.04)"
    assert f"on {doc['draft_length']['states']} states" in md
    # a second run reuses the recording and the stored replays and gives the same numbers
    before = {p.name: p.stat().st_mtime_ns for p in (out / "replay").iterdir()}
    assert main(args) == 0
    capsys.readouterr()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "replay").iterdir()} == before
    assert json.loads((out / "summary.json").read_text())["summary"] == s


def test_replay_subcommand_matches_api(pair, tmp_path, capsys):
    from spectheory.simulations.record import load_recording, record
    from spectheory.simulations.replay import replay

    record(pair / "target", pair / "draft", ["def foo("], tmp_path / "rec", max_new_tokens=5, device="cpu")
    assert main(["replay", str(tmp_path / "rec"), "--n-max", "2", "--csv", str(tmp_path / "r.csv"),
                 "--json", str(tmp_path / "r.json"), "--device", "cpu"]) == 0
    assert "α* iid" in capsys.readouterr().out
    rec = load_recording(tmp_path / "rec")
    sh = rec.shard(0)
    ref = replay(sh["target"], sh["draft"], n=[1, 2], device="cpu")
    doc = json.loads((tmp_path / "r.json").read_text())
    np.testing.assert_allclose(doc["columns"]["bound/iid/n=2"], ref["bound/iid/n=2"], atol=1e-12)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["report", "--target", "x"], "give both"),
        (["report", "--temperature", "0"], "--temperature"),
        (["report", "--n-max", "0"], "--n-max"),
        (["report", "--seed", "1.5"], "--seed"),
        (["report", "--max-new-tokens", "x"], "--max-new-tokens"),
        (["replay", "/nonexistent-dir"], "folder not found"),
        (["record", "--target", "/nonexistent-a", "--draft", "/nonexistent-b", "--prompts", "/nonexistent.txt",
          "--out", "/tmp/x"], "--prompts: file not found"),
    ],
)
def test_cli_errors_are_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("spectheory: error:") and match in err and err.count("\n") == 1


def test_record_refuses_unreadable_model_folder(pair, tmp_path, capsys):
    (tmp_path / "p.txt").write_text("def foo(\n")
    (tmp_path / "empty").mkdir()
    code = main(["record", "--target", str(tmp_path / "empty"), "--draft", str(pair / "draft"), "--prompts",
                 str(tmp_path / "p.txt"), "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot load" in err and err.count("\n") == 1
    (tmp_path / "empty.txt").write_text("")
    code = main(["record", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts",
                 str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o2")])
    assert code == 2 and "empty" in capsys.readouterr().err
