"""The exact optimal drafting policy on a process fitted from recorded acceptance traces: time and size.

Traces: ``--positions`` recorded acceptance probabilities (default 10^5: ``--rounds`` rounds of
``--length`` drafts) sampled from a hidden Markov-modulated process — an "easy" state (a ~ Beta(12, 1.2))
and a "hard" state (a ~ Beta(2, 3)), switching with probabilities 0.05 (easy → hard) and 0.15 per
draft, and a = 1 (draft equals the target's choice) with probability 0.25 in either state.

For each lattice resolution δ: ``fit_trace(model="markov", n_bins=8, resolution=δ)`` (values rounded
down to exp(−δ i); the same fit rounded up gives an upper-bound process), then, with max_k = 32,
s_floor = 1e-4, c_draft = 0.05, c0 = 1, c1 = 0:

* **compile s** — ``compile_model`` (the layered state space (k, S_k, state));
* **states / reachable / transitions** — its size (all states; reachable when always drafting;
  nonzero (state, value, next state) entries);
* **solve s** — ``optimal_policy`` on the compiled model (Dinkelbach; median of the repeats) and its
  number of backward passes;
* **bisection s** — the baseline, in the same run: the same backward pass driven by bisection on λ
  until the bracket is below 1e-12 relative; **ratio** = bisection / Dinkelbach time;
* **speedup** of the optimum, the upper bound from the rounded-up process (discretisation bracket),
  the best SpecDec++ threshold rule and the best fixed K.

    python benchmarks/bench_mdp.py            # δ ∈ {0.05, 0.02, 0.01}
    python benchmarks/bench_mdp.py --quick    # δ = 0.05 only, 2·10^4 positions

Rows are written to bench-results/bench_mdp.json (``--quick``: bench_mdp.quick.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from _common import fmt, median, print_table, time_call, write_json
from spectheory.solvers._mdp_model import backward

import spectheory as st

mdp = st.solvers.mdp


def synthetic_trace(rounds: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = np.zeros((rounds, length), dtype=np.int64)
    z[:, 0] = rng.random(rounds) < 0.25
    for j in range(1, length):
        flip = rng.random(rounds) < np.where(z[:, j - 1] == 1, 0.15, 0.05)
        z[:, j] = np.where(flip, 1 - z[:, j - 1], z[:, j - 1])
    a = np.where(z == 1, rng.beta(2.0, 3.0, (rounds, length)), rng.beta(12.0, 1.2, (rounds, length)))
    return np.where(rng.random((rounds, length)) < 0.25, 1.0, a)


def bisection(model, costs, max_k: int, rel: float = 1e-12):
    """Baseline: the optimal ratio by bisection on λ (J(λ) = 1 + W_0 − λ c0 is decreasing)."""
    lo = 1.0 / costs.c0
    hi = max(1.0 / costs.c0, 1.0 / costs.step) * 1.0000001
    passes = 0
    while hi - lo > rel * lo:
        lam = 0.5 * (lo + hi)
        _, _, W0, _, _ = backward(model, lam, costs.step, 0, 1e-12)
        passes += 1
        if 1.0 + W0 - lam * costs.c0 > 0:
            lo = lam
        else:
            hi = lam
    return lo, passes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one resolution, fewer positions (a few seconds)")
    ap.add_argument("--rounds", type=int, default=None, help="recorded rounds (default 5000; quick 1000)")
    ap.add_argument("--length", type=int, default=20, help="drafts per recorded round (default 20)")
    ap.add_argument("--max-k", type=int, default=32)
    ap.add_argument("--c-draft", type=float, default=0.05)
    ap.add_argument("--s-floor", type=float, default=1e-4)
    ap.add_argument("--bins", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats of the solve (default 3; quick 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rounds = args.rounds or (1000 if args.quick else 5000)
    repeats = args.repeats or (1 if args.quick else 3)
    resolutions = (0.05,) if args.quick else (0.05, 0.02, 0.01)
    costs = mdp.Costs(args.c_draft)
    K = args.max_k

    t_start = time.perf_counter()
    trace = synthetic_trace(rounds, args.length, args.seed)
    print(
        f"bench_mdp: {trace.size:,} recorded positions ({rounds} rounds x {args.length}), max_k={K}, "
        f"s_floor={args.s_floor:g}, c_draft={costs.c_draft:g}, c0=1, c1=0, {args.bins} bins, repeats={repeats}, "
        f"load average {os.getloadavg()[0]:.2f}{' (quick)' if args.quick else ''}",
        flush=True,
    )
    rows = []
    for delta in resolutions:
        t0 = time.perf_counter()
        proc = mdp.fit_trace(trace, model="markov", n_bins=args.bins, resolution=delta, rounding="down")
        proc_up = mdp.fit_trace(trace, model="markov", n_bins=args.bins, resolution=delta, rounding="up")
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = mdp.compile_model(proc, K, s_floor=args.s_floor)
        compile_s = time.perf_counter() - t0
        res_box = []

        def solve(proc=proc, model=model, res_box=res_box):
            res_box.append(mdp.optimal_policy(proc, costs, max_k=K, model=model))

        solve_times = time_call(solve, repeats)
        res = res_box[-1]
        solve_s = median(solve_times)
        t0 = time.perf_counter()
        lam_b, passes_b = bisection(model, costs, K)
        bisect_s = time.perf_counter() - t0
        model_up = mdp.compile_model(proc_up, K, s_floor=args.s_floor, floor_mode="up")
        up = mdp.optimal_policy(proc_up, costs, max_k=K, model=model_up)
        t0 = time.perf_counter()
        thr = mdp.best_threshold(proc, costs, max_k=K, s_floor=args.s_floor, model=model)
        thr_s = time.perf_counter() - t0
        caps = mdp.best_threshold(proc, costs, max_k=K, min_k=1, vary_max_k=False, s_floor=args.s_floor, model=model)
        fk = mdp.best_fixed_k(proc, costs, max_k=K)
        row = {
            "resolution": delta, "values": proc.n_values, "bins": proc.n_states, "states": model.n_states,
            "reachable": model.n_reachable, "transitions": model.n_transitions, "fit_s": fit_s,
            "compile_s": compile_s, "solve_s": solve_s, "iterations": res.iterations,
            "ms_per_pass": 1e3 * solve_s / res.iterations, "bisection_s": bisect_s, "bisection_passes": passes_b,
            "ratio_bisection_over_dinkelbach": bisect_s / solve_s, "speedup_optimal": res.speedup,
            "speedup_upper": up.upper_bound * costs.c0, "speedup_threshold_family": thr.speedup,
            "speedup_specdec_caps": caps.speedup, "specdec_h": caps.policy.h, "speedup_fixed_k": fk.speedup,
            "fixed_k": fk.k, "threshold_search_s": thr_s, "is_threshold": res.is_threshold,
            "max_abs_diff_bisection": abs(lam_b - res.tokens_per_cost),
        }
        rows.append(row)
        print(f"  δ={delta:g}: {model.n_states:,} states, compile {compile_s:.2f} s, solve {solve_s:.2f} s "
              f"({res.iterations} passes), bisection {bisect_s:.2f} s ({passes_b} passes)", file=sys.stderr, flush=True)

    headers = ["δ", "values", "bins", "states", "reachable", "transitions", "compile s", "solve s", "passes",
               "ms/pass", "bisection s (passes)", "ratio", "optimal", "upper", "best thr", "SpecDec++ h*",
               "fixed K", "|λ diff|"]
    table = [
        [
            fmt(r["resolution"], "g"), str(r["values"]), str(r["bins"]), f"{r['states']:,}", f"{r['reachable']:,}",
            f"{r['transitions']:,}", fmt(r["compile_s"], ".2f"), fmt(r["solve_s"], ".2f"), str(r["iterations"]),
            fmt(r["ms_per_pass"], ".0f"), f"{r['bisection_s']:.2f} ({r['bisection_passes']})",
            fmt(r["ratio_bisection_over_dinkelbach"], ".1f") + "x", fmt(r["speedup_optimal"], ".5f"),
            fmt(r["speedup_upper"], ".5f"), fmt(r["speedup_threshold_family"], ".5f"),
            f"{r['speedup_specdec_caps']:.5f} (h={r['specdec_h']:.3f})", f"{r['speedup_fixed_k']:.5f} (K={r['fixed_k']})",
            fmt(r["max_abs_diff_bisection"], ".1e"),
        ]
        for r in rows
    ]
    print()
    print_table(headers, table)
    print(
        "\nspeedups = tokens per unit cost × c0 on the fitted (rounded-down) process; 'upper' = optimum of the "
        "rounded-up fit\n(the unrounded process's optimum lies in [optimal, upper]); ratio = bisection time / "
        "Dinkelbach time, same backward pass."
    )
    name = "bench_mdp.quick" if args.quick else "bench_mdp"
    path = write_json(
        name, rows,
        args={"quick": args.quick, "rounds": rounds, "length": args.length, "max_k": K, "c_draft": costs.c_draft,
              "s_floor": args.s_floor, "bins": args.bins, "repeats": repeats, "seed": args.seed},
        extra={"positions": int(trace.size), "loadavg_end": os.getloadavg()},
    )
    print(f"\nwrote {path.relative_to(path.parent.parent)} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
