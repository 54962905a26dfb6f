"""The subset dual at full vocabulary: time per position, one core and batched, against the NumPy recipe.

Synthetic LLM-like pairs (``_common.llm_like_pair``): base = N(0,1)·2.5, target = base + N(0,1),
draft = target + N(0,1), p and q = ``st.from_logits`` (float64, temperature 1).

For every (V, n, sampling):

* **1-core ms/pos** — ``numba.set_num_threads(1)``; ``spectheory.solvers.prefix_dual(p[None], q[None],
  n, sampling)`` (greedy: ``greedy_bound``) on single positions: per position the median of the
  repeats, then the median over the positions.
* **batched ms/pos** — all ``--batch`` positions in one call with numba's default thread count;
  median over the repeats, divided by the batch size.
* **recipe ms/pos** — the baseline ``prefix_dual_numpy`` (argsort of p/q and two cumsums; it computes
  the i.i.d. bound) on the same single positions, timed like the 1-core column.
* **speedup vs recipe** — recipe / 1-core. For without_replacement and greedy it compares with the
  cost of that sort-based i.i.d. recipe, not with an equivalent algorithm.
* **ratio vs iid** — this scheme's 1-core time / the iid 1-core time at the same (V, n).
* **max|diff|** (iid only) — max over all batch positions of |fast − recipe|, fast from both the
  single-position and the batched calls.

Numba functions are warmed up (compiled / loaded from cache) on a tiny input before any timing.

    python benchmarks/bench_dual.py            # full: V ∈ {32k, 128k, 152k}, n ∈ {2, 4, 8}
    python benchmarks/bench_dual.py --quick    # smoke test, a few seconds

Rows are written to bench-results/bench_dual.json (``--quick``: bench_dual.quick.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numba
import numpy as np

import spectheory as st  # noqa: F401  (imports the package the solvers live in)
from spectheory.solvers import greedy_bound, prefix_dual, prefix_dual_numpy

from _common import fmt, llm_like_pair, median, print_table, time_call, write_json

SAMPLINGS = ("iid", "without_replacement", "greedy")

# goals stated for this benchmark
GOAL_DIFF = 1e-12
GOAL_SPEEDUP = 5.0
GOAL_SPEEDUP_V = 152_000
GOAL_WOR_RATIO = 10.0
GOAL_WOR_N = 8


def fast(p, q, n, sampling):
    if sampling == "greedy":
        return greedy_bound(p, q, n)
    return prefix_dual(p, q, n, sampling)


def warm_up(default_threads: int) -> None:
    """Compile (or load from numba's cache) every jitted path on a tiny input, at both thread counts."""
    rng = np.random.default_rng(12345)
    p = rng.dirichlet(np.ones(50), size=3)
    q = rng.dirichlet(np.ones(50), size=3)
    for threads in (1, default_threads):
        numba.set_num_threads(threads)
        for n in (1, 2, 3):
            for s in SAMPLINGS:
                fast(p[:1], q[:1], n, s)
                fast(p, q, n, s)
            prefix_dual_numpy(p[:1], q[:1], n)


def per_position_ms(fn, P, Q, positions: int, repeats: int) -> float:
    """Median over positions of (median over repeats of one single-position call), in ms."""
    per = []
    for i in range(positions):
        pi, qi = P[i : i + 1], Q[i : i + 1]
        fn(pi, qi)  # touch this position's arrays (cache / page faults) before timing
        per.append(median(time_call(lambda: fn(pi, qi), repeats)))
    return 1e3 * median(per)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test (< 60 s)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 5; quick 3)")
    ap.add_argument("--positions", type=int, default=None, help="single positions timed one by one (default 8)")
    ap.add_argument("--batch", type=int, default=None, help="positions per batched call (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.quick:
        Vs, ns = (2_000, 8_000), (2, 8)
        repeats, positions, batch = args.repeats or 3, args.positions or 3, args.batch or 4
    else:
        Vs, ns = (32_000, 128_000, 152_000), (2, 4, 8)
        repeats, positions, batch = args.repeats or 5, args.positions or 8, args.batch or 16
    positions = min(positions, batch)

    default_threads = int(numba.config.NUMBA_NUM_THREADS)
    t_start = time.perf_counter()
    loadavg_start = os.getloadavg()
    warm_up(default_threads)
    print(
        f"bench_dual: repeats={repeats}, single positions={positions}, batch={batch}, "
        f"numba default threads={default_threads} ({numba.threading_layer()}), seed={args.seed}, "
        f"load average {os.getloadavg()[0]:.2f}{' (quick)' if args.quick else ''}",
        flush=True,
    )

    rows = []
    for V in Vs:
        P, Q = llm_like_pair(V, batch, seed=args.seed)
        for n in ns:
            # baseline: the NumPy recipe, single positions (NumPy's argsort is single-threaded)
            recipe_ms = per_position_ms(lambda a, b: prefix_dual_numpy(a, b, n), P, Q, positions, repeats)
            recipe_vals = prefix_dual_numpy(P, Q, n)
            iid_one_core = None
            for s in SAMPLINGS:
                numba.set_num_threads(1)
                one_core_ms = per_position_ms(lambda a, b: fast(a, b, n, s), P, Q, positions, repeats)
                singles = np.array([fast(P[i : i + 1], Q[i : i + 1], n, s)[0] for i in range(batch)])
                numba.set_num_threads(default_threads)
                fast(P, Q, n, s)  # untimed first batched call
                batched_ms = 1e3 * median(time_call(lambda: fast(P, Q, n, s), repeats)) / batch
                batched_vals = fast(P, Q, n, s)
                if s == "iid":
                    iid_one_core = one_core_ms
                    max_diff = float(
                        max(np.max(np.abs(singles - recipe_vals)), np.max(np.abs(batched_vals - recipe_vals)))
                    )
                    ratio_iid = 1.0
                else:
                    max_diff = None
                    ratio_iid = one_core_ms / iid_one_core
                row = dict(
                    V=V,
                    n=n,
                    sampling=s,
                    one_core_ms_per_pos=one_core_ms,
                    batched_ms_per_pos=batched_ms,
                    batch=batch,
                    batched_threads=default_threads,
                    recipe_ms_per_pos=recipe_ms,
                    speedup_vs_recipe=recipe_ms / one_core_ms,
                    ratio_vs_iid=ratio_iid,
                    max_abs_diff_vs_recipe=max_diff,
                    mean_bound=float(np.mean(batched_vals)),
                )
                rows.append(row)
                print(
                    f"  V={V:>7,} n={n} {s:<19} 1-core {one_core_ms:8.3f} ms  batched {batched_ms:8.3f} ms  "
                    f"recipe {recipe_ms:8.3f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    numba.set_num_threads(default_threads)

    headers = [
        "V",
        "n",
        "sampling",
        "1-core ms/pos",
        f"batched ms/pos (B={batch}, {default_threads} thr)",
        "recipe ms/pos",
        "speedup vs recipe",
        "ratio vs iid",
        "max|diff| (iid)",
    ]
    table = [
        [
            f"{r['V']:,}",
            str(r["n"]),
            r["sampling"],
            fmt(r["one_core_ms_per_pos"], ".3f"),
            fmt(r["batched_ms_per_pos"], ".3f"),
            fmt(r["recipe_ms_per_pos"], ".3f"),
            fmt(r["speedup_vs_recipe"], ".1f") + "x",
            "-" if r["sampling"] == "iid" else fmt(r["ratio_vs_iid"], ".1f") + "x",
            fmt(r["max_abs_diff_vs_recipe"], ".1e"),
        ]
        for r in rows
    ]
    print()
    print_table(headers, table)
    print(
        "\nrecipe = prefix_dual_numpy (argsort of p/q + two cumsums; the i.i.d. bound), single positions, "
        "same inputs.\nFor without_replacement and greedy, 'speedup vs recipe' compares with that sort-based "
        "cost; 'ratio vs iid' = 1-core time / iid 1-core time at the same (V, n)."
    )

    # goals
    checks = []
    iid = [r for r in rows if r["sampling"] == "iid"]
    worst = max(r["max_abs_diff_vs_recipe"] for r in iid)
    checks.append((f"iid max|fast - recipe| <= {GOAL_DIFF:g}", f"{worst:.1e}", worst <= GOAL_DIFF))
    goal_v = GOAL_SPEEDUP_V if any(r["V"] == GOAL_SPEEDUP_V for r in iid) else max(r["V"] for r in iid)
    sp = [r["speedup_vs_recipe"] for r in iid if r["V"] == goal_v]
    checks.append(
        (f"iid speedup vs recipe >= {GOAL_SPEEDUP:g}x at V={goal_v:,}", f"min {min(sp):.1f}x", min(sp) >= GOAL_SPEEDUP)
    )
    goal_n = GOAL_WOR_N if GOAL_WOR_N in ns else max(ns)
    wr = [r for r in rows if r["sampling"] == "without_replacement" and r["n"] == goal_n]
    worst_wr = max(r["ratio_vs_iid"] for r in wr)
    checks.append(
        (
            f"without_replacement n={goal_n} within {GOAL_WOR_RATIO:g}x of iid (1-core)",
            f"max {worst_wr:.1f}x (" + ", ".join(f"V={r['V']:,}: {r['ratio_vs_iid']:.1f}x" for r in wr) + ")",
            worst_wr <= GOAL_WOR_RATIO,
        )
    )
    print("\ngoals:")
    for name, value, ok in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {name}: {value}")

    name = "bench_dual.quick" if args.quick else "bench_dual"
    path = write_json(
        name,
        rows,
        args=dict(quick=args.quick, repeats=repeats, positions=positions, batch=batch, seed=args.seed, V=list(Vs), n=list(ns)),
        extra=dict(
            goals=[dict(goal=g, value=v, met=bool(ok)) for g, v, ok in checks],
            threading_layer=numba.threading_layer(),
            loadavg_start=loadavg_start,
            loadavg_end=os.getloadavg(),
        ),
    )
    print(f"\nwrote {path.relative_to(path.parent.parent)} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
