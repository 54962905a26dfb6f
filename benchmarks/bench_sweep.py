"""``spectheory.simulations.sweep``: wall time of a 3-temperature × 3-top-p sweep with each executor.

A synthetic recording (``--shards`` prompts of ``--positions`` positions at vocabulary ``--V``,
LLM-like logits from ``_common.llm_like_logits``) is replayed at temperatures {0.5, 0.8, 1.0} ×
top-p {0.9, 0.95, none}, n = 1..4, every scheme and verifier (9 × shards tasks), without a cache:

* in-process (the baseline), a process pool of 1 and 2 workers, a Dask LocalCluster of 2 workers;
* ratio = in-process time / executor time (> 1: faster); pool and Dask times include starting the
  workers (importing torch, compiling numba), which a long sweep amortises;
* Dask overhead per task = (Dask time − in-process time × (1 / 2 workers)) / tasks, an upper bound.

    python benchmarks/bench_sweep.py            # V = 4096, 6 shards × 32 positions
    python benchmarks/bench_sweep.py --quick    # V = 512, 4 shards × 8 positions

Rows go to bench-results/bench_sweep.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import fmt, llm_like_logits, print_table, write_json


def make_recording(folder: Path, V: int, shards: int, T: int) -> Path:
    from safetensors.numpy import save_file

    from spectheory.simulations.record import FORMAT, MANIFEST

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for i in range(shards):
        target, draft = llm_like_logits(V, T, rng)
        name = f"shard-{i:05d}.safetensors"
        save_file({"target": target.astype(np.float32), "draft": draft.astype(np.float32),
                   "tokens": rng.integers(0, V, T).astype(np.int64)}, str(folder / name))
        sha = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        entries.append({"prompt": i, "file": name, "positions": T, "sha256": sha})
    manifest = {"format": FORMAT, "vocab_size": V, "dtype": "float32", "shards": entries,
                "settings": {"generation": {"max_new_tokens": T, "temperature": 1.0, "top_k": None, "top_p": None}}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--V", type=int, default=None)
    ap.add_argument("--shards", type=int, default=None)
    ap.add_argument("--positions", type=int, default=None)
    args = ap.parse_args(argv)
    V = args.V or (512 if args.quick else 4096)
    shards = args.shards or (4 if args.quick else 6)
    T = args.positions or (8 if args.quick else 32)

    from spectheory.simulations.sweep import SweepConfig, connect, sweep

    with tempfile.TemporaryDirectory() as tmp:
        rec = make_recording(Path(tmp) / "rec", V, shards, T)
        cfg = SweepConfig(recordings=[str(rec)], temperatures=[0.5, 0.8, 1.0], top_p=[0.9, 0.95, None],
                          n=[1, 2, 3, 4], device="cpu")
        sweep(SweepConfig(recordings=[str(rec)], n=[1, 2, 3], device="cpu"))  # warm: imports, numba JIT
        results, rows = {}, []

        def timed(name, **kw):
            t0 = time.perf_counter()
            res = sweep(cfg, **kw)
            results[name] = (time.perf_counter() - t0, res)

        timed("in-process")
        timed("pool, 1 worker", workers=1)
        timed("pool, 2 workers", workers=2)
        t0 = time.perf_counter()
        client = connect(dask_local=2)
        start = time.perf_counter() - t0
        try:
            timed("dask local, 2 workers", client=client)
            timed("dask local, 2 workers (warm)", client=client)
        finally:
            cluster = client.cluster
            client.close()
            cluster.close()
        base, ref = results["in-process"]
        tasks = len(ref.rows)
        for name, (t, res) in results.items():
            assert res.rows == ref.rows, name
            over = (t - base / 2) / tasks if name.startswith("dask") else None
            rows.append({"executor": name, "tasks": tasks, "wall_s": t, "ratio": base / t,
                         "per_task_s": t / tasks, "dask_overhead_per_task_s": over})
    print(f"V = {V}, {shards} shards × {T} positions, {tasks} tasks; Dask LocalCluster start {start:.1f} s")
    print_table(["executor", "wall (s)", "in-process / this", "s per task", "Dask overhead / task (s)"],
                [[r["executor"], fmt(r["wall_s"]), fmt(r["ratio"]), fmt(r["per_task_s"]),
                  fmt(r["dask_overhead_per_task_s"])] for r in rows])
    write_json("bench_sweep", rows, args=vars(args), extra={"V": V, "shards": shards, "positions": T,
                                                            "dask_start_s": start})


if __name__ == "__main__":
    main()
