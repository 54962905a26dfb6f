"""``st.compare`` against ``replay`` on the same arrays: time per position, all verifiers, n = 1..8.

Both entry points call the one batched implementation of the verifiers' acceptance
(:mod:`spectheory.verifiers.batched`): ``compare`` on NumPy probabilities, ``replay`` on torch
tensors (CPU) from the logits of the same probabilities. Two workloads, each at B positions:

* **verifiers** — sd, rrs, kseq, spechub, greedy, rrs_wor for n = 1..8 (``compare`` with
  ``verifiers`` without "optimal"; it still computes each verifier's scheme bound for the gap
  column, so ``replay`` computes every scheme's bound too);
* **everything** — the default of both: every verifier plus every scheme's optimal acceptance.

``compare / replay`` is the ratio (≤ 1: compare is at least as fast). Thread count: whatever the
process has (set ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` before running to compare).

    python benchmarks/bench_compare_replay.py            # V ∈ {4096, 152k}
    python benchmarks/bench_compare_replay.py --quick    # V = 4096, B = 8

Rows go to bench-results/bench_compare_replay.json.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import spectheory as st
from spectheory.simulations.replay import replay

from _common import fmt, llm_like_pair, median, print_table, time_call, write_json

NS = tuple(range(1, 9))
VERIFIERS = ("sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--positions", type=int, default=None, help="B (default 64 at V ≤ 16k, 8 above)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    Vs = (4_096,) if args.quick else (4_096, 152_000)

    wp, wq = llm_like_pair(64, 2, seed=9)  # warm-up: imports, numba compilation
    st.compare(wp, wq, NS)
    replay(np.log(wp), np.log(wq), n=NS, device="cpu")

    rows, table = [], []
    for V in Vs:
        B = args.positions or (8 if args.quick or V > 16_384 else 64)
        p, q = llm_like_pair(V, B, seed=1)
        lp, lq = np.log(p), np.log(q)
        work = {
            "verifiers": (lambda: st.compare(p, q, NS, verifiers=VERIFIERS),
                          lambda: replay(lp, lq, n=NS, verifiers=VERIFIERS, device="cpu")),
            "everything": (lambda: st.compare(p, q, NS), lambda: replay(lp, lq, n=NS, device="cpu")),
        }
        for what, (c, r) in work.items():
            reps = 1 if (what == "everything" and V > 16_384) else args.repeats
            tc = median(time_call(c, reps)) / B
            tr = median(time_call(r, reps)) / B
            # the same numbers: mean rrs_wor at n = 8 from both
            a = [row.acceptance for row in c() if row.verifier == "rrs_wor" and row.n == 8][0]
            b = float(np.mean(r()["verifier/rrs_wor/n=8"]))
            row = dict(V=V, B=B, workload=what, compare_ms=tc * 1e3, replay_ms=tr * 1e3, ratio=tc / tr,
                       rrs_wor8_compare=a, rrs_wor8_replay=b)
            rows.append(row)
            table.append([f"{V:,}", str(B), what, fmt(tc * 1e3, ".3g"), fmt(tr * 1e3, ".3g"),
                          fmt(tc / tr, ".2f") + "x", f"{abs(a - b):.1e}"])
    print(f"time per position (ms), n = 1..8, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'default')}")
    print_table(["V", "B", "workload", "compare", "replay", "compare / replay", "|Δ rrs_wor n=8|"], table)
    path = write_json("bench_compare_replay" + (".quick" if args.quick else ""), rows, args=vars(args))
    print(f"\nrows written to {path}")


if __name__ == "__main__":
    main()
