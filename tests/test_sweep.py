"""Sweeps: in-process, process pool and a Dask LocalCluster give identical tables; a worker killed
mid-sweep (SIGKILL) has its tasks retried and nothing lost; a resumed sweep recomputes no finished
task; the rows equal the replay of the whole recording; bad configs are refused with one line."""

from __future__ import annotations

import hashlib
import json
import os
import signal

import numpy as np
import pytest

from spectheory.cli import main
from spectheory.simulations.record import FORMAT, MANIFEST
from spectheory.simulations.sweep import SweepConfig, load_config, make_tasks, summarize, sweep, sweep_report

safetensors_numpy = pytest.importorskip("safetensors.numpy")

V = 12
SHARDS = (4, 6, 5)


def _recording(folder, seed=0):
    """A recording as record() writes it, without models: float32 shards (peaked, overlapping
    target and draft logits) and the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for i, T in enumerate(SHARDS):
        name = f"shard-{i:05d}.safetensors"
        base = 2.0 * rng.standard_normal((T, V))
        tensors = {"target": (base + 0.7 * rng.standard_normal((T, V))).astype(np.float32),
                   "draft": (base + 0.7 * rng.standard_normal((T, V))).astype(np.float32),
                   "tokens": rng.integers(0, V, T).astype(np.int64)}
        safetensors_numpy.save_file(tensors, str(folder / name))
        sha = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        entries.append({"prompt": i, "file": name, "positions": T, "sha256": sha})
    manifest = {"format": FORMAT, "vocab_size": V, "dtype": "float32", "prompts": [f"p{i}" for i in range(len(SHARDS))],
                "settings": {"generation": {"max_new_tokens": 8, "temperature": 1.0, "top_k": None, "top_p": None}},
                "shards": entries}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return _recording(tmp_path_factory.mktemp("sweep") / "rec")


def _config(rec, **kw):
    base = dict(recordings=[str(rec)], temperatures=[0.5, 1.0], top_p=[0.8, None], n=[1, 2, 3], device="cpu",
                samplings=["iid", "greedy", "hub"])  # without_replacement: numba JIT in every worker (slow)
    base.update(kw)
    return SweepConfig(**base)


@pytest.fixture(scope="module")
def reference(rec):
    return sweep(_config(rec))


def test_rows_equal_the_replay_of_the_whole_recording(rec, reference):
    from spectheory.simulations.record import load_recording
    from spectheory.simulations.replay import replay

    assert len(reference.rows) == 4 * len(SHARDS) and reference.computed == len(reference.rows)
    target, draft, _ = load_recording(rec).logits()
    bounds = np.cumsum((0,) + SHARDS)
    for row in reference.rows:
        whole = replay(target, draft, n=[1, 2, 3], samplings=["iid", "greedy"], temperature=row["temperature"], top_p=row["top_p"], device="cpu")
        i = row["prompt"]
        lo, hi = bounds[i], bounds[i + 1]
        assert row["positions"] == hi - lo
        for c in ("bound/iid/n=3", "verifier/kseq/n=2", "verifier/rrs_wor/n=3", "bound/greedy/n=2"):
            assert row[c] == pytest.approx(float(np.mean(whole[c][lo:hi])), rel=0, abs=1e-12), c


def test_process_pool_and_dask_give_identical_tables(rec, reference):
    from spectheory.simulations.sweep import connect

    pool = sweep(_config(rec), workers=2)
    assert pool.rows == reference.rows
    client = connect(dask_local=2)
    try:
        dask = sweep(_config(rec), client=client)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    assert dask.rows == reference.rows


def _killer():
    killed = []

    def on_done(task, result):
        if not killed:
            os.kill(result["pid"], signal.SIGKILL)
            killed.append(result["pid"])

    return on_done, killed


def test_worker_killed_mid_sweep_is_retried_nothing_lost(rec, reference, tmp_path):
    on_done, killed = _killer()
    res = sweep(_config(rec), workers=2, on_done=on_done, cache_dir=tmp_path / "c")
    assert killed and res.restarts >= 1
    assert res.rows == reference.rows
    assert len(os.listdir(tmp_path / "c")) == len(reference.rows)


def test_dask_worker_killed_mid_sweep_is_retried(rec, reference):
    from spectheory.simulations.sweep import connect

    on_done, killed = _killer()
    client = connect(dask_local=2)
    try:
        res = sweep(_config(rec), client=client, on_done=on_done)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    assert killed and res.rows == reference.rows


def test_resumed_sweep_recomputes_no_finished_task(rec, reference, tmp_path):
    cache = tmp_path / "cache"

    class Stop(Exception):
        pass

    def interrupt(task, result, seen=[]):
        seen.append(task)
        if len(seen) == 5:
            raise Stop

    with pytest.raises(Stop):
        sweep(_config(rec), cache_dir=cache, on_done=interrupt)
    computed = []
    res = sweep(_config(rec), cache_dir=cache, on_done=lambda t, r: computed.append(t))
    assert res.cached == 5 and res.computed == len(reference.rows) - 5 == len(computed)
    assert res.rows == reference.rows
    again = sweep(_config(rec), cache_dir=cache, on_done=lambda t, r: computed.append(t))
    assert again.computed == 0 and again.rows == reference.rows
    # a damaged entry (edited value, consistent JSON) is recomputed, the others are not
    files = sorted(cache.iterdir())
    doc = json.loads(files[0].read_text())
    first = next(k for k in doc["row"] if k.startswith("bound/"))
    doc["row"][first] += 0.125
    files[0].write_text(json.dumps(doc))
    files[1].write_text(files[1].read_text()[:-20])
    fixed = sweep(_config(rec), cache_dir=cache)
    assert fixed.computed == 2 and fixed.rows == reference.rows


def test_report_and_intervals(rec, reference, tmp_path):
    summ = summarize(reference)
    assert len(summ) == 4
    for s in summ:
        rows = [r for r in reference.rows if (r["temperature"], r["top_p"]) == (s["temperature"], s["top_p"])]
        w = np.array([r["positions"] for r in rows])
        for c in ("bound/iid/n=3", "verifier/rrs/n=3"):
            assert s["mean"][c] == pytest.approx(np.average([r[c] for r in rows], weights=w), abs=1e-12)
        gap = np.average([r["bound/iid/n=3"] - r["verifier/rrs/n=3"] for r in rows], weights=w)
        assert s["mean"]["gap/rrs/n=3"] == pytest.approx(gap, abs=1e-12) and gap >= -1e-12
        iv = s["intervals"]["gap/rrs/n=3"]
        assert iv["low"] <= s["mean"]["gap/rrs/n=3"] <= iv["high"]
        # 3 prompts: every bootstrap mean lies within the prompts' range of means
        per_prompt = [r["bound/iid/n=3"] for r in rows]
        assert min(per_prompt) - 1e-12 <= s["intervals"]["bound/iid/n=3"]["low"]
        assert s["intervals"]["bound/iid/n=3"]["high"] <= max(per_prompt) + 1e-12
    files = sweep_report(reference, tmp_path / "out")
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def _write_config(tmp_path, rec, text):
    path = tmp_path / "sweep.toml"
    path.write_text(f'recordings = ["{rec}"]\n' + text)
    return path


def test_cli_end_to_end_and_resume(rec, reference, tmp_path, capsys):
    path = _write_config(tmp_path, rec, 'out = "o"\ntemperatures = [0.5, 1.0]\ntop_p = [0.8, 1.0]\nn = [1, 2, 3]\n'
                                        'device = "cpu"\nsamplings = ["iid", "greedy", "hub"]\n')
    assert main(["sweep", str(path), "--no-progress"]) == 0
    assert "12 computed" in capsys.readouterr().out
    doc = json.loads((tmp_path / "o" / "sweep.json").read_text())
    assert doc["rows"] == reference.rows
    assert main(["sweep", str(path), "--no-progress", "--workers", "2"]) == 0
    assert "0 computed, 12 from the cache" in capsys.readouterr().out


def one_line(capsys, argv, match):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("spectheory: error: "), err
    assert match in err, err


def test_bad_configs_are_one_line_exit_2(rec, tmp_path, capsys):
    p = _write_config(tmp_path, rec, 'n = [1]\ntemprature = [1.0]\n')
    one_line(capsys, ["sweep", str(p)], "unknown key 'temprature' (line 3)")
    p = _write_config(tmp_path, rec, 'n = [1,\n')
    one_line(capsys, ["sweep", str(p)], "not valid TOML")
    p = _write_config(tmp_path, rec, 'top_p = [1.5]\n')
    one_line(capsys, ["sweep", str(p)], "top_p: each must lie in (0, 1]")
    p = _write_config(tmp_path, rec, 'verifiers = ["rss"]\n')
    one_line(capsys, ["sweep", str(p)], "verifiers: unknown 'rss'")
    (tmp_path / "none.toml").write_text('recordings = ["nowhere"]\n')
    one_line(capsys, ["sweep", str(tmp_path / "none.toml")], "recording: folder not found")
    one_line(capsys, ["sweep", str(tmp_path / "missing.toml")], "config: file not found")
    one_line(capsys, ["sweep", str(p), "--workers", "0"], "--workers")


def test_corrupted_shard_names_the_task(rec, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(rec, bad)
    f = bad / "shard-00001.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    p = _write_config(tmp_path, bad, 'n = [1]\ndevice = "cpu"\nout = "o2"\n')
    one_line(capsys, ["sweep", str(p), "--no-progress"], "shard-00001.safetensors: shard is corrupted")


def test_unreachable_scheduler_is_one_line(rec, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = _write_config(tmp_path, rec, 'n = [1]\n')
    one_line(capsys, ["sweep", str(p), "--scheduler", f"tcp://127.0.0.1:{port}", "--timeout", "1"], "unreachable after 1 s")


def test_tasks_key_on_content_not_path(rec, tmp_path):
    import shutil

    from spectheory.simulations.sweep import task_key

    shutil.copytree(rec, tmp_path / "copy")
    a = [task_key(t) for t in make_tasks(_config(rec))]
    b = [task_key(t) for t in make_tasks(_config(tmp_path / "copy"))]
    assert a == b and len(set(a)) == len(a)
    cfg = load_config(_write_config(tmp_path, rec, 'top_k = [0, 3]\ntop_p = [1.0]\n'))
    assert cfg.top_k == [None, 3] and cfg.top_p == [None]
