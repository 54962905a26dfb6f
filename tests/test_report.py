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
        (["report", "--temperature", "-1"], "--temperature"),
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
    assert code == 2 and "--target:" in err and "has no weights" in err and err.count("\n") == 1
    (tmp_path / "empty.txt").write_text("")
    code = main(["record", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts",
                 str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o2")])
    assert code == 2 and "empty" in capsys.readouterr().err


def test_report_rebuilt_without_models_and_settings_sweep(pair, tmp_path, capsys, monkeypatch):
    """A complete recording rebuilds the report without loading a model; a new temperature in the same
    --out replays that recording into its own subfolder with its own cached replay; T = 0 is the greedy
    limit (every bound equals the argmax-match rate, for every n)."""
    from spectheory.simulations import record as record_mod
    from spectheory.simulations.record import load_recording
    from spectheory.simulations.replay import replay

    out = tmp_path / "rep"
    base = ["report", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts",
            str(pair / "prompts.txt"), "--out", str(out), "--max-new-tokens", "5", "--n-max", "3", "--device", "cpu"]
    assert main(base) == 0
    capsys.readouterr()
    first = json.loads((out / "summary.json").read_text())["summary"]

    def refuse(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(record_mod, "load_model", refuse)
    (out / "summary.json").unlink()
    assert main(base) == 0
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["summary"] == first
    rec = load_recording(out / "recording")
    for T in ("0.5", "0"):
        assert main(base + ["--temperature", T]) == 0, capsys.readouterr().err
        capsys.readouterr()
        sub = out / f"settings-T={T}"
        doc = json.loads((sub / "summary.json").read_text())
        assert doc["processing"]["temperature"] == float(T) and not doc["processing"]["same_as_generation"]
        assert load_recording(out / "recording").manifest == rec.manifest  # nothing re-recorded
        tgt, drf, _ = rec.logits(np.float64)
        ref = replay(tgt, drf, n=[1, 2, 3], temperature=float(T), device="cpu")
        for key in ("bound/iid/n=3", "verifier/sd/n=1", "bound/without_replacement/n=2"):
            assert doc["summary"][key] == pytest.approx(float(np.mean(ref[key])), abs=1e-6)
        md = (sub / "summary.md").read_text()
        assert "recorded prefixes" in md
    match = float(np.mean(np.argmax(tgt, 1) == np.argmax(drf, 1)))
    s0 = json.loads((out / "settings-T=0" / "summary.json").read_text())["summary"]
    for key in ("verifier/sd/n=1", "bound/iid/n=3", "bound/without_replacement/n=3", "bound/greedy/n=2"):
        assert s0[key] == pytest.approx(match, abs=1e-9)
    assert "greedy limit" in (out / "settings-T=0" / "summary.md").read_text()
    tags = {p.name.split(".")[1] for p in (out / "replay").iterdir()}
    assert len(tags) == 3  # one cached replay per setting


def test_replay_plain_logit_files(tmp_path, capsys):
    """`spectheory replay` on plain (T, V) logits: one .safetensors with target/draft, or two .npy /
    single-tensor .safetensors files; all equal the API on the same arrays. Bad files: one line, exit 2."""
    from safetensors.numpy import save_file

    from spectheory.simulations.replay import replay

    rng = np.random.default_rng(3)
    t = rng.normal(size=(7, 11)).astype(np.float32)
    d = rng.normal(size=(7, 11)).astype(np.float32)
    ref = replay(t, d, n=[1, 2], temperature=0.7, device="cpu")
    save_file({"target": t, "draft": d}, str(tmp_path / "pair.safetensors"))
    np.save(tmp_path / "t.npy", t)
    save_file({"logits": d}, str(tmp_path / "d.safetensors"))
    for argv in ([str(tmp_path / "pair.safetensors")],
                 ["--target-logits", str(tmp_path / "t.npy"), "--draft-logits", str(tmp_path / "d.safetensors")]):
        out = tmp_path / "r.json"
        assert main(["replay", *argv, "--n-max", "2", "--temperature", "0.7", "--device", "cpu", "--json", str(out)]) == 0
        assert "7 positions, V = 11" in capsys.readouterr().out
        doc = json.loads(out.read_text())
        for key in ("bound/iid/n=2", "verifier/kseq/n=2", "bound/without_replacement/n=2"):
            np.testing.assert_array_equal(doc["columns"][key], ref[key])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "short.npy", t[:3])
    np.save(tmp_path / "int.npy", np.ones((2, 3), dtype=np.int64))
    (tmp_path / "x.txt").write_text("1 2 3")
    save_file({"target": t}, str(tmp_path / "half.safetensors"))
    for argv, match in (
        (["--target-logits", str(tmp_path / "obj.npy"), "--draft-logits", str(tmp_path / "t.npy")], "not a plain numeric"),
        (["--target-logits", str(tmp_path / "short.npy"), "--draft-logits", str(tmp_path / "t.npy")], "must match"),
        (["--target-logits", str(tmp_path / "int.npy"), "--draft-logits", str(tmp_path / "int.npy")], "floating"),
        (["--target-logits", str(tmp_path / "t.npy")], "give both"),
        (["--target-logits", str(tmp_path / "x.txt"), "--draft-logits", str(tmp_path / "t.npy")], ".npy or .safetensors"),
        ([str(tmp_path / "half.safetensors")], "no tensor 'draft'"),
        ([str(tmp_path / "t.npy")], "--target-logits"),
        ([], "PATH"),
    ):
        assert main(["replay", *argv, "--device", "cpu"]) == 2, argv
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1, (argv, err)


def test_report_jsonl_categories_batched(pair, tmp_path, capsys):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "def foo(", "category": "def"}\n{"prompt": "import os", "category": "imp"}\n'
                 '{"prompt": "class A:", "category": "def"}\n')
    out = tmp_path / "rep"
    assert main(["report", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts", str(f),
                 "--out", str(out), "--max-new-tokens", "4", "--n-max", "2", "--device", "cpu",
                 "--batch-size", "2"]) == 0
    capsys.readouterr()
    doc = json.loads((out / "summary.json").read_text())
    cats = doc["categories"]
    assert set(cats) == {"def", "imp"} and cats["def"]["prompts"] == 2 and cats["imp"]["prompts"] == 1
    assert sum(c["positions"] for c in cats.values()) == doc["positions"]
    assert "## By category" in (out / "summary.md").read_text()
