"""Hostile command lines: every user error is one line ``spectheory: error: ...`` naming the option,
exit status 2 (usage errors included, no usage block); an internal error is one line, exit 1, with
the traceback only on request (SPECTHEORY_TRACEBACK=1)."""

from __future__ import annotations

import numpy as np
import pytest

from spectheory.cli import main


def one_line(capsys, argv, match, status=2):
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert code == status, err
    assert err.count("\n") == 1, err
    assert match in err, err
    return err


@pytest.fixture
def files(tmp_path):
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.3, 0.5])
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    return tmp_path, str(tmp_path / "p.npy"), str(tmp_path / "q.npy")


@pytest.mark.parametrize(
    "argv,match",
    [
        (["bound"], "the following arguments are required: --target, --draft"),
        (["bound", "--target", "a"], "required: --draft"),
        (["bound", "--target", "a", "--draft", "b", "--method", "zz"], "argument --method: invalid choice: 'zz'"),
        (["bound", "--target", "a", "--draft", "b", "--temperature", "hot"], "argument --temperature: invalid float"),
        (["frob"], "argument COMMAND: invalid choice: 'frob'"),
        (["simulate"], "required: MODE"),
        (["mdp", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "required: COMMAND"),
    ],
)
def test_usage_errors_are_one_line_without_usage_block(capsys, argv, match):
    err = one_line(capsys, argv, match)
    assert err.startswith("spectheory: error: ") and "usage:" not in err


def test_help_still_prints_usage(capsys):
    assert main(["bound", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: spectheory bound")


def test_internal_error_is_one_line_exit_1_with_traceback_on_request(files, capsys, monkeypatch):
    import spectheory as st

    def bug(*a, **k):
        raise ZeroDivisionError("a bug\nin two lines")

    monkeypatch.setattr(st, "optimal_acceptance", bug)
    _, p, q = files
    monkeypatch.delenv("SPECTHEORY_TRACEBACK", raising=False)
    err = one_line(capsys, ["bound", "--target", p, "--draft", q, "-n", "2"], "internal error: ZeroDivisionError: a bug in two lines",
                   status=1)
    assert "Traceback" not in err and "SPECTHEORY_TRACEBACK=1" in err
    monkeypatch.setenv("SPECTHEORY_TRACEBACK", "1")
    assert main(["bound", "--target", p, "--draft", q, "-n", "2"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: a bug" in err


def test_oserror_without_our_message_is_file_and_reason(files, capsys, monkeypatch):
    import spectheory as st

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", "/some/file")

    monkeypatch.setattr(st, "optimal_acceptance", denied)
    _, p, q = files
    err = one_line(capsys, ["bound", "--target", p, "--draft", q, "-n", "2"], "error: /some/file: Permission denied")
    assert "Errno" not in err


def test_compare_output_paths_are_checked_first(files, capsys):
    tmp, p, q = files
    (tmp / "adir").mkdir()
    base = ["compare", "--target", p, "--draft", q, "-n", "1", "2"]
    one_line(capsys, base + ["--csv", str(tmp / "adir"), "--no-plot"], f"--csv: is a directory, not a file: {tmp / 'adir'}")
    one_line(capsys, base + ["--csv", str(tmp / "nowhere" / "x.csv"), "--no-plot"], "--csv: folder does not exist")
    one_line(capsys, base + ["--plot", str(tmp / "nowhere" / "x.png")], "--plot: folder does not exist")
    assert main(base + ["--csv", str(tmp / "ok.csv"), "--no-plot"]) == 0
    assert (tmp / "ok.csv").read_text().count("\n") >= 2
    capsys.readouterr()


def test_replay_output_paths_are_checked_first(tmp_path, capsys):
    from test_hostile_faults import _fake_recording

    _fake_recording(tmp_path / "rec")
    (tmp_path / "d").mkdir()
    one_line(capsys, ["replay", str(tmp_path / "rec"), "--n-max", "2", "--device", "cpu", "--csv", str(tmp_path / "d")],
             "--csv: is a directory")
    one_line(capsys, ["replay", str(tmp_path / "rec"), "--n-max", "2", "--device", "cpu", "--json",
                      str(tmp_path / "no" / "r.json")], "--json: folder does not exist")


def test_replay_of_a_damaged_manifest_is_one_line(tmp_path, capsys):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "manifest.json").write_text("[]")
    one_line(capsys, ["replay", str(tmp_path / "rec"), "--device", "cpu"], "recording: manifest.json: (top level): must be a JSON object")


@pytest.mark.parametrize("kind", ["latin1", "dir", "binary"])
def test_read_prompts_refuses_non_text(tmp_path, kind, capsys):
    from spectheory import SpecTheoryValueError
    from spectheory.simulations.record import read_prompts

    path = tmp_path / "prompts.txt"
    if kind == "dir":
        path.mkdir()
        match = "--prompts: is a directory"
    else:
        path.write_bytes("caf\xe9\n".encode("latin-1") if kind == "latin1" else b"\x00\xff\xfe\x80\x81")
        match = "--prompts: .* is not UTF-8 text"
    with pytest.raises(SpecTheoryValueError, match=match):
        read_prompts(path)
    one_line(capsys, ["record", "--target", str(tmp_path), "--draft", str(tmp_path), "--prompts", str(path), "--out",
                      str(tmp_path / "o")], "--prompts:")


def test_out_that_is_a_file_is_refused(tmp_path):
    from spectheory import SpecTheoryValueError
    from spectheory.simulations.record import record
    from spectheory.simulations.report import report

    (tmp_path / "f").write_text("x")
    with pytest.raises(SpecTheoryValueError, match="--out: not a folder"):
        record("a", "b", ["x"], tmp_path / "f", device="cpu")
    with pytest.raises(SpecTheoryValueError, match="--out: not a folder"):
        report(tmp_path / "f", device="cpu")
