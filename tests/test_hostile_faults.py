"""Hostile recordings, caches and faults: damaged manifests and shards are refused with one error
naming the field or the shard; files written with normal permissions; temporary files of a killed
writer cleaned on resume; SIGKILL during recording and report resumes to identical results."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat

import numpy as np
import pytest

from spectheory import SpecTheoryValueError
from spectheory.io import atomic_path, folder_lock, is_temporary, remove_stale_temporaries, write_json_atomic
from spectheory.simulations.record import FORMAT, MANIFEST, load_recording

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_shard(path, T, V, dtype=np.float32, tokens=True, extra=None):
    rng = np.random.default_rng(T * 31 + V)
    tensors = {"target": rng.standard_normal((T, V)).astype(dtype), "draft": rng.standard_normal((T, V)).astype(dtype)}
    if tokens:
        tensors["tokens"] = rng.integers(0, V, T).astype(np.int64)
    if extra:
        tensors.update(extra)
    safetensors_numpy.save_file(tensors, str(path))


def _fake_recording(folder, shards=2, T=3, V=5):
    """A recording as record() writes it, without models: float32 shards and the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(shards):
        name = f"shard-{i:05d}.safetensors"
        _write_shard(folder / name, T + i, V)
        entries.append({"prompt": i, "file": name, "positions": T + i, "sha256": _sha(folder / name)})
    manifest = {
        "format": FORMAT,
        "settings": {"target": "t", "draft": "d", "prompts_sha256": "0" * 64,
                     "generation": {"max_new_tokens": 4, "do_sample": True, "temperature": 1.0, "top_k": None,
                                    "top_p": None, "teacher_force": False, "seed": 0},
                     "dtype": "float32"},
        "vocab_size": V,
        "dtype": "float32",
        "prompts": [f"p{i}" for i in range(shards)],
        "shards": entries,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def _rewrite(folder, manifest):
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_fake_recording_loads(tmp_path):
    _fake_recording(tmp_path / "rec")
    rec = load_recording(tmp_path / "rec")
    assert rec.positions == 3 + 4 and rec.shard(1)["target"].shape == (4, 5)


def _drop(key):
    def f(m):
        del m[key]
    return f


def _shard_drop(key):
    def f(m):
        del m["shards"][0][key]
    return f


def _set(path, value):
    def f(m):
        obj = m
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return f


MANIFEST_DAMAGE = [
    ("list", lambda m: m.clear() or None, "(top level)"),  # replaced by a list below
    ("no shards", _drop("shards"), "shards: missing"),
    ("no vocab_size", _drop("vocab_size"), "vocab_size: missing"),
    ("shards null", _set(["shards"], None), "shards: must be a list, got null"),
    ("shards dict", _set(["shards"], {"a": 1}), "shards: must be a list"),
    ("no file", _shard_drop("file"), "shards[0].file: missing"),
    ("no sha256", _shard_drop("sha256"), "shards[0].sha256: missing"),
    ("no positions", _shard_drop("positions"), "shards[0].positions: missing"),
    ("shard not dict", _set(["shards", 0], "shard-00000.safetensors"), "shards[0]: must be a JSON object"),
    ("vocab bool", _set(["vocab_size"], True), "vocab_size: must be an integer"),
    ("vocab str", _set(["vocab_size"], "5"), "vocab_size: must be an integer"),
    ("dtype int8", _set(["dtype"], "int8"), "dtype: must be one of"),
    ("positions float", _set(["shards", 0, "positions"], 3.0), "shards[0].positions: must be an integer"),
    ("sha short", _set(["shards", 0, "sha256"], "abc"), "shards[0].sha256"),
    ("settings list", _set(["settings"], []), "settings: must be a JSON object"),
    ("generation missing", _set(["settings", "generation"], None), "settings.generation"),
    ("parent path", _set(["shards", 0, "file"], "../secret.safetensors"), "shards[0].file: must be a plain"),
    ("absolute path", _set(["shards", 0, "file"], "/etc/secret.safetensors"), "shards[0].file: must be a plain"),
    ("subfolder", _set(["shards", 0, "file"], "sub/shard.safetensors"), "shards[0].file: must be a plain"),
    ("hidden temp", _set(["shards", 0, "file"], ".shard-00000.ab.tmp.safetensors"), "shards[0].file: must be a plain"),
    ("not str", _set(["shards", 0, "file"], 7), "shards[0].file: must be a plain"),
    ("format", _set(["format"], "other/1"), "format:"),
]


@pytest.mark.parametrize("name,damage,match", MANIFEST_DAMAGE, ids=[d[0] for d in MANIFEST_DAMAGE])
def test_damaged_manifest_names_the_field(tmp_path, name, damage, match):
    m = _fake_recording(tmp_path / "rec")
    m2 = copy.deepcopy(m)
    damage(m2)
    if name == "list":
        m2 = [m]
    _rewrite(tmp_path / "rec", m2)
    with pytest.raises(SpecTheoryValueError, match=f"^recording: manifest.json: {__import__('re').escape(match)}"):
        load_recording(tmp_path / "rec")


def test_path_outside_the_folder_is_refused_even_with_a_consistent_hash(tmp_path):
    m = _fake_recording(tmp_path / "rec")
    _write_shard(tmp_path / "secret.safetensors", 3, 5)
    m["shards"][0]["file"] = "../secret.safetensors"
    m["shards"][0]["sha256"] = _sha(tmp_path / "secret.safetensors")
    _rewrite(tmp_path / "rec", m)
    with pytest.raises(SpecTheoryValueError, match=r"shards\[0\]\.file.*'\.\./secret\.safetensors'"):
        load_recording(tmp_path / "rec")


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    m = _fake_recording(tmp_path / "rec")
    _write_shard(tmp_path / "secret.safetensors", 3, 5)
    (tmp_path / "rec" / "shard-00000.safetensors").unlink()
    os.symlink(tmp_path / "secret.safetensors", tmp_path / "rec" / "shard-00000.safetensors")
    m["shards"][0]["sha256"] = _sha(tmp_path / "secret.safetensors")
    _rewrite(tmp_path / "rec", m)
    with pytest.raises(SpecTheoryValueError, match="shard-00000.safetensors is a link out of the recording folder"):
        load_recording(tmp_path / "rec")


def test_shard_listed_twice(tmp_path):
    m = _fake_recording(tmp_path / "rec")
    m["shards"][1] = dict(m["shards"][0], prompt=1)
    _rewrite(tmp_path / "rec", m)
    with pytest.raises(SpecTheoryValueError, match=r"shards\[1\]\.file: shard shard-00000.safetensors is listed twice"):
        load_recording(tmp_path / "rec")
    m["shards"][1] = dict(m["shards"][1], file="shard-00001.safetensors", prompt=0)
    _rewrite(tmp_path / "rec", m)
    with pytest.raises(SpecTheoryValueError, match=r"shards\[1\]\.prompt: prompt 0 is listed twice"):
        load_recording(tmp_path / "rec")


def _replace_shard(folder, m, i, **kw):
    f = folder / m["shards"][i]["file"]
    _write_shard(f, m["shards"][i]["positions"], m["vocab_size"], **kw)
    m["shards"][i]["sha256"] = _sha(f)
    _rewrite(folder, m)


def test_dtype_claimed_differs_from_stored(tmp_path):
    folder = tmp_path / "rec"
    m = _fake_recording(folder)
    m["dtype"] = "int8"
    _rewrite(folder, m)
    with pytest.raises(SpecTheoryValueError, match="manifest.json: dtype: must be one of"):
        load_recording(folder)
    m["dtype"] = "float16"  # float32 stored, float16 claimed
    _rewrite(folder, m)
    with pytest.raises(SpecTheoryValueError, match="shard-00000.safetensors tensor 'target' is stored as F32.*'float16' needs F16"):
        load_recording(folder)
    m["dtype"] = "float32"
    _replace_shard(folder, m, 1, dtype=np.float16)  # float16 stored under float32
    with pytest.raises(SpecTheoryValueError, match="shard-00001.safetensors tensor 'target' is stored as F16"):
        load_recording(folder)


def test_shard_without_tokens_or_with_wrong_tokens(tmp_path):
    folder = tmp_path / "rec"
    m = _fake_recording(folder)
    _replace_shard(folder, m, 1, tokens=False)
    with pytest.raises(SpecTheoryValueError, match="shard-00001.safetensors has no tensor 'tokens'"):
        load_recording(folder)


def _patch_header(path, edit):
    """Rewrite a safetensors file's JSON header with ``edit(header)`` (data kept)."""
    import struct

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header = edit(header)
    hb = json.dumps(header).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + raw[8 + n :])


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda h: [1, 2], "a list, not an object"),
        (lambda h: dict(h, target="x"), "entry 'target' is a str"),
        (lambda h: dict(h, __metadata__=[1]), "__metadata__ is a list"),
        (lambda h: dict(h, target=dict(h["target"], dtype="Q9")), "entry 'target' has dtype 'Q9'"),
        (lambda h: dict(h, target=dict(h["target"], shape=[3, -5])), "entry 'target' has shape"),
        (lambda h: dict(h, target=dict(h["target"], data_offsets=[0])), "entry 'target' has data_offsets"),
        (lambda h: dict(h, target=dict(h["target"], shape=[3, 4])), "do not match shape"),
    ],
)
def test_malformed_shard_header_is_named(tmp_path, edit, match):
    folder = tmp_path / "rec"
    m = _fake_recording(folder)
    f = folder / m["shards"][0]["file"]
    _patch_header(f, edit)
    m["shards"][0]["sha256"] = _sha(f)
    _rewrite(folder, m)
    with pytest.raises(SpecTheoryValueError, match=f"shard-00000.safetensors has a malformed safetensors header .*{match}"):
        load_recording(folder)


def test_corrupted_truncated_swapped_missing_shards_are_named(tmp_path):
    folder = tmp_path / "rec"
    m = _fake_recording(folder, shards=3)
    a, b = folder / "shard-00000.safetensors", folder / "shard-00001.safetensors"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db), b.write_bytes(da)  # swapped
    with pytest.raises(SpecTheoryValueError, match="shard shard-00000.safetensors is corrupted"):
        load_recording(folder)
    with pytest.raises(SpecTheoryValueError, match="shard-00000.safetensors tensor 'target' has shape"):
        load_recording(folder, verify_hashes=False)
    a.write_bytes(da), b.write_bytes(db)
    c = folder / "shard-00002.safetensors"
    dc = c.read_bytes()
    c.write_bytes(dc[: len(dc) - 7])
    with pytest.raises(SpecTheoryValueError, match="shard shard-00002.safetensors is corrupted or truncated"):
        load_recording(folder)
    with pytest.raises(SpecTheoryValueError, match="shard shard-00002.safetensors is truncated"):
        load_recording(folder, verify_hashes=False)
    c.unlink()
    with pytest.raises(SpecTheoryValueError, match="shard shard-00002.safetensors is listed in the manifest but missing"):
        load_recording(folder)
    assert m  # the manifest itself was never edited


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.bin") as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"x")
        os.umask(0o027)
        write_json_atomic(tmp_path / "c.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b.bin").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "c.json").st_mode) == 0o640


def test_stale_temporaries_are_recognised_and_removed(tmp_path):
    names = [".shard-00003.k2j3h.tmp.safetensors", ".manifest.x8y_1.tmp.json", ".tmp"]
    keep = ["shard-00001.safetensors", "manifest.json", ".lock", "notes.tmp.txt"]
    for n in names + keep:
        (tmp_path / n).write_text("x")
    assert [is_temporary(n) for n in names[:2]] == [True, True]
    assert not any(is_temporary(n) for n in keep)
    with folder_lock(tmp_path):
        removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(names[:2])
    assert sorted(os.listdir(tmp_path)) == sorted(keep + [".tmp"])


# --------------------------------------------------------------------------- the report's replay cache


def _cache_files(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".json")


def _replay_all(folder, cache):
    from spectheory.simulations.report import replay_recording

    return replay_recording(load_recording(folder), n=[1, 2, 3], device="cpu", cache_dir=cache)


def _edit_value(path):
    doc = json.loads(path.read_text())
    doc["result"]["columns"]["bound/iid/n=2"][0] = 0.123
    path.write_text(json.dumps(doc))


def _edit_value_and_hash(path):  # a consistent-looking hash over a wrong key is still refused
    doc = json.loads(path.read_text())
    doc["result"]["columns"]["bound/iid/n=2"][0] = 0.123
    doc["key"]["seed"] = 99
    from spectheory.simulations.report import _content_sha256

    doc["content_sha256"] = _content_sha256(doc["key"], doc["result"])
    path.write_text(json.dumps(doc))


def _drop_last_row(path):
    doc = json.loads(path.read_text())
    for v in doc["result"]["columns"].values():
        v.pop()
    from spectheory.simulations.report import _content_sha256

    doc["content_sha256"] = _content_sha256(doc["key"], doc["result"])  # even with a matching hash
    path.write_text(json.dumps(doc))


def _drop_column(path):
    doc = json.loads(path.read_text())
    del doc["result"]["columns"]["verifier/rrs/n=3"]
    from spectheory.simulations.report import _content_sha256

    doc["content_sha256"] = _content_sha256(doc["key"], doc["result"])
    path.write_text(json.dumps(doc))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-40])


def _not_an_object(path):
    path.write_text("[1, 2]")


def _old_format(path):  # the previous cache layout, with no key or hash
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(doc["result"]))


@pytest.mark.parametrize("damage", [_edit_value, _edit_value_and_hash, _drop_last_row, _drop_column, _truncate,
                                    _not_an_object, _old_format])
def test_damaged_replay_cache_is_recomputed_not_used(tmp_path, damage):
    folder = tmp_path / "rec"
    _fake_recording(folder, shards=2)
    cache = tmp_path / "cache"
    fresh = _replay_all(folder, cache)
    files = _cache_files(cache)
    assert len(files) == 2
    good = files[1].read_bytes()
    damage(files[1])
    again = _replay_all(folder, cache)
    for c in fresh.columns:
        np.testing.assert_array_equal(again[c], fresh[c])
    assert files[1].read_bytes() == good  # rewritten with the verified content
    assert _replay_all(folder, cache).summary() == fresh.summary()


def test_replay_cache_is_used_when_it_verifies(tmp_path, monkeypatch):
    folder = tmp_path / "rec"
    _fake_recording(folder, shards=2)
    cache = tmp_path / "cache"
    fresh = _replay_all(folder, cache)
    import spectheory.simulations.replay as replay_mod

    def fail(*a, **k):
        raise AssertionError("replay recomputed a verified cache entry")

    monkeypatch.setattr(replay_mod, "replay", fail)
    assert _replay_all(folder, cache).summary() == fresh.summary()


def test_replay_cache_of_another_shard_is_not_used(tmp_path):
    folder = tmp_path / "rec"
    m = _fake_recording(folder, shards=2)
    cache = tmp_path / "cache"
    fresh = _replay_all(folder, cache)
    a, b = _cache_files(cache)
    a.write_bytes(b.read_bytes())  # shard 1's table under shard 0's name
    np.testing.assert_array_equal(_replay_all(folder, cache)["bound/iid/n=3"], fresh["bound/iid/n=3"])
    assert m


# --------------------------------------------------------------------------- faults with real (tiny) models

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

PROMPTS = ["def foo(", "import os", "class A:", "x = [1, 2"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    pytest.importorskip("transformers")
    from test_record import _model, _tokenizer  # tests/ is on sys.path under pytest

    root = tmp_path_factory.mktemp("hostile-pair")
    texts = ["def foo(x):\n    return x + 1\n"] * 20 + ["import os, sys\nprint('hello world')\n"] * 20
    tok = _tokenizer(texts)
    for name, seed in (("target", 0), ("draft", 1)):
        _model(tok, seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    (root / "prompts.txt").write_text("\n".join(PROMPTS[:3]) + "\n")
    return root


def _spawn(code: str):
    """Run ``code`` in a second Python with this process's thread counts.

    Float reductions in torch's matmuls (and numba's parallel loops) depend on the number of threads,
    so a recording made with 2 threads differs in the last bits from one made with 1; the child must
    compute exactly as this process does for "resume equals an uninterrupted run" to be testable.
    """
    import torch

    prefix = f"import torch\ntorch.set_num_threads({torch.get_num_threads()})\n"
    return subprocess.Popen([sys.executable, "-c", prefix + code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ))


def _wait_for(predicate, proc, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def _n_shards(out):
    try:
        return len(json.loads((out / MANIFEST).read_text())["shards"])
    except (OSError, ValueError):
        return 0


def test_sigkills_during_recording_resume_identically_and_clean_temporaries(pair, tmp_path):
    from spectheory.simulations.record import record

    out = tmp_path / "killed"
    # each save is slowed down so that a kill lands while a shard's temporary file exists
    code = (
        "import time\n"
        "import spectheory.simulations.record as r\n"
        "orig = r.atomic_path\n"
        "import contextlib\n"
        "@contextlib.contextmanager\n"
        "def slow(path):\n"
        "    with orig(path) as tmp:\n"
        "        yield tmp\n"
        "        time.sleep(0.4)\n"
        "r.atomic_path = slow\n"
        f"r.record({str(pair / 'target')!r}, {str(pair / 'draft')!r}, {PROMPTS!r}, {str(out)!r}, max_new_tokens=3,"
        " device='cpu')\n"
    )
    for kill in range(2):
        before = _n_shards(out)
        proc = _spawn(code)
        ok = _wait_for(lambda: _n_shards(out) > before and any(is_temporary(f) for f in os.listdir(out)), proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert ok, proc.stderr.read().decode()[-2000:]
        left = [f for f in os.listdir(out) if is_temporary(f)]
        assert left  # the kill left a temporary file behind, as a real crash would
        partial = load_recording(out)  # valid as it stands; temporaries are not shards
        assert before < len(partial.shards) < len(PROMPTS)
        assert all(not is_temporary(s["file"]) for s in partial.shards)
    resumed = record(pair / "target", pair / "draft", PROMPTS, out, max_new_tokens=3, device="cpu")
    assert not [f for f in os.listdir(out) if is_temporary(f)]
    reference = record(pair / "target", pair / "draft", PROMPTS, tmp_path / "ref", max_new_tokens=3, device="cpu")
    assert [s["sha256"] for s in resumed.shards] == [s["sha256"] for s in reference.shards]
    assert resumed.manifest["shards"] == reference.manifest["shards"]
    assert sorted(f for f in os.listdir(out) if f.endswith(".safetensors")) == [s["file"] for s in reference.shards]


def _report_code(pair, out, extra=""):
    return (
        "import json\n"
        f"{extra}"
        "from spectheory.simulations.report import report\n"
        f"r = report({str(out)!r}, target={str(pair / 'target')!r}, draft={str(pair / 'draft')!r}, **{REPORT_KW!r})\n"
        "print(json.dumps(r.summary, sort_keys=True))\n"
    )


REPORT_KW = dict(prompts=PROMPTS[:3], max_new_tokens=4, n_max=3, device="cpu", c_draft_ratios=(0.1,), max_k=6)


@pytest.fixture(scope="module")
def fresh_report(pair, tmp_path_factory):
    """An uninterrupted report of the pair, alone in its folder."""
    from spectheory.simulations.report import report

    out = tmp_path_factory.mktemp("fresh-report")
    return report(out, target=str(pair / "target"), draft=str(pair / "draft"), **REPORT_KW)


def test_sigkill_during_report_then_resume_gives_the_same_numbers(pair, tmp_path, fresh_report):
    from spectheory.simulations.report import report

    out = tmp_path / "rep"
    slow = (
        "import time\n"
        "import spectheory.simulations.report as rp\n"
        "orig = rp._write_cache\n"
        "def slow(*a, **k):\n"
        "    orig(*a, **k); time.sleep(2)\n"
        "rp._write_cache = slow\n"
    )
    proc = _spawn(_report_code(pair, out, slow))
    ok = _wait_for(lambda: (out / "replay").is_dir() and len(_cache_files(out / "replay")) >= 1, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ok, proc.stderr.read().decode()[-2000:]
    assert not (out / "summary.json").exists()
    resumed = report(out, target=str(pair / "target"), draft=str(pair / "draft"), **REPORT_KW)
    assert resumed.summary == fresh_report.summary
    assert (out / "per_position.csv").read_bytes() == (fresh_report.out / "per_position.csv").read_bytes()
    assert not [f for f in os.listdir(out) if is_temporary(f)]
    assert not [f for f in os.listdir(out / "replay") if is_temporary(f)]
    mode = stat.S_IMODE(os.stat(out / "summary.json").st_mode)
    assert mode == 0o666 & ~_current_umask()


def _current_umask():
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_two_concurrent_reports_into_one_folder_agree(pair, tmp_path, fresh_report):
    from spectheory.simulations.report import report

    out = tmp_path / "shared"
    proc = _spawn(_report_code(pair, out))  # one in a second process, one here, at the same time
    assert _wait_for(lambda: (out / "recording").is_dir() or (out / ".lock").exists(), proc)
    here = report(out, target=str(pair / "target"), draft=str(pair / "draft"), **REPORT_KW)
    o, e = proc.communicate(timeout=300)
    assert proc.returncode == 0, e.decode()[-2000:]
    there = json.loads(o.decode().strip().splitlines()[-1])
    assert json.loads(json.dumps(here.summary, sort_keys=True)) == there
    assert json.loads((out / "summary.json").read_text())["summary"] == there
    assert here.summary == fresh_report.summary
    assert load_recording(out / "recording").positions > 0


def test_device_cuda_without_cuda_is_one_line(pair, tmp_path, capsys, monkeypatch):
    import torch

    from spectheory.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts", str(pair / "prompts.txt")]
    for argv in (["record", *base, "--out", str(tmp_path / "r"), "--device", "cuda"],
                 ["report", *base, "--out", str(tmp_path / "p"), "--device", "cuda"],
                 ["report", *base, "--out", str(tmp_path / "p"), "--device", "cuda:1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("spectheory: error: device:") and "CUDA is not available" in err
        assert err.count("\n") == 1
    assert not (tmp_path / "p").exists()  # refused before any folder is created
