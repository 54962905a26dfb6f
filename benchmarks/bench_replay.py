"""Replay over logits: positions per second of ``spectheory.simulations.replay.replay`` against the
NumPy/numba reference path on the same positions.

Synthetic LLM-like logits (``_common.llm_like_logits``: base = N(0,1)·2.5, target = base + N(0,1),
draft = target + N(0,1)), float64, temperature 1, at V = 4096 (the reference pair's vocabulary) and
V = 152,000 (a Qwen-sized vocabulary). Cases, n = 1..8 throughout:

* **full** — every column: bounds iid, without_replacement, greedy, hub (n = 2); verifiers sd, rrs,
  kseq, spechub, greedy, rrs_wor (n > 2: the estimate, 256 sampled histories).
  Reference: ``st.from_logits`` then, per n, ``st.optimal_acceptance(P, Q, n, sampling)`` and
  ``st.verifier(name).acceptance_detail(P, Q, n)`` (rrs_wor n > 2: the numba estimate, 256 histories).
* **torch only** — the same without the without_replacement bound (the part replay delegates to the
  the bound engine ``spectheory.solvers.bound_rows``). Reference: the reference path of those columns.
* **iid bound** — ``samplings=("iid",), verifiers=()``. Reference: ``st.from_logits`` and
  ``st.optimal_acceptance(P, Q, n)`` (the bound engine ``bound_rows``, batched over positions).
* **iid bound f32** — the same in float32 (reference unchanged, float64).

Replay runs on CPU (``device="cpu"``; there is no GPU here). torch and numba both use ``--threads``
threads (default 1: on a shared machine torch's OpenMP barriers stall for a scheduler quantum
whenever another process holds a core, which made 2-thread timings swing by 10x here). Times are medians over repeats (the reference is
repeated only while it stays under ``--max-ref-s``), reported as positions per second; ``speedup`` is
replay / reference. ``max|diff|`` is the largest difference over the exact columns (estimates
excluded); ``max z`` the largest |replay − reference| / sqrt(se_replay² + se_ref²) over the rrs_wor
estimates.

    python benchmarks/bench_replay.py            # full: V = 4096 (256 positions), 152k (16 positions)
    python benchmarks/bench_replay.py --quick    # smoke test, about a minute
    python benchmarks/bench_replay.py --threads 2

Rows are written to bench-results/bench_replay.json (``--quick``: bench_replay.quick.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numba
import numpy as np
import torch

import spectheory as st
from spectheory.simulations.replay import replay

from _common import fmt, llm_like_logits, median, print_table, time_call, write_json

NS = tuple(range(1, 9))
ALL_SAMPLINGS = ("iid", "without_replacement", "greedy", "hub")
ALL_VERIFIERS = ("sd", "rrs", "kseq", "spechub", "greedy", "rrs_wor")
CASES = {
    "full": dict(samplings=ALL_SAMPLINGS, verifiers=ALL_VERIFIERS),
    "torch only": dict(samplings=("iid", "greedy", "hub"), verifiers=ALL_VERIFIERS),
    "iid bound": dict(samplings=("iid",), verifiers=()),
    "iid bound f32": dict(samplings=("iid",), verifiers=(), dtype=torch.float32),
}
GOAL_GPU_IID = 20_000  # positions/s, iid bound alone at V = 152k, on a GPU (not measurable here)


def reference(target, draft, samplings, verifiers, ns=NS) -> dict:
    """The NumPy/numba reference path: the same columns as replay (rrs_wor n > 2: its estimate)."""
    P = st.from_logits(target)
    Q = st.from_logits(draft)
    cols = {}
    for s in samplings:
        for n in ns:
            if s == "hub" and n != 2:
                continue
            cols[f"bound/{s}/n={n}"] = st.optimal_acceptance(P, Q, n, s)
    for v in verifiers:
        for n in ns:
            if (v == "sd" and n != 1) or (v == "spechub" and n != 2):
                continue
            acc = st.verifier(v).acceptance_detail(P, Q, n)
            cols[f"verifier/{v}/n={n}"] = acc.value
            if v == "rrs_wor":
                cols[f"stderr/rrs_wor/n={n}"] = acc.stderr
    return cols


def compare(res, ref) -> tuple[float, float | None]:
    """(max |diff| over exact columns, max z-score over the rrs_wor estimates)."""
    diff, z = 0.0, None
    estimates = set(res.settings["estimates"])
    for name, want in ref.items():
        if name.startswith("stderr/"):
            continue
        got = res[name]
        if name in estimates:
            key = "stderr/" + name[len("verifier/"):]
            se = np.sqrt(res[key] ** 2 + ref[key] ** 2 + 1e-24)  # floor: deterministic "estimates"
            zz = np.abs(got - want) / se
            z = max(z or 0.0, float(np.max(zz)))
        else:
            diff = max(diff, float(np.max(np.abs(got - want))))
    return diff, z


def warm_up() -> None:
    rng = np.random.default_rng(1)
    t, d = llm_like_logits(64, 3, rng)
    for case in CASES.values():
        replay(t, d, n=NS, device="cpu", **case)
        reference(t, d, case["samplings"], case["verifiers"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats of replay (default 3; quick 2)")
    ap.add_argument("--max-ref-s", type=float, default=None, help="stop repeating the reference after this many s")
    ap.add_argument("--threads", type=int, default=1, help="torch and numba threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if args.quick:
        sizes = ((4096, 16, 16), (152_000, 2, 1))  # (V, replay positions, reference positions)
        repeats, max_ref_s = args.repeats or 1, args.max_ref_s or 5.0
    else:
        sizes = ((4096, 256, 256), (152_000, 16, 4))
        repeats, max_ref_s = args.repeats or 3, args.max_ref_s or 30.0

    t_start = time.perf_counter()
    loadavg_start = os.getloadavg()
    warm_up()
    print(
        f"bench_replay: device=cpu, torch {torch.__version__} ({torch.get_num_threads()} threads), numba "
        f"{numba.get_num_threads()} threads, repeats={repeats}, n=1..8, seed={args.seed}, "
        f"load average {os.getloadavg()[0]:.2f}{' (quick)' if args.quick else ''}",
        flush=True,
    )
    rows = []
    for V, T, T_ref in sizes:
        rng = np.random.default_rng([args.seed, V])
        target, draft = llm_like_logits(V, T, rng)
        for case_name, case in CASES.items():
            res = replay(target, draft, n=NS, device="cpu", **case)
            times = time_call(lambda t=target, d=draft, c=case: replay(t, d, n=NS, device="cpu", **c), repeats)
            replay_pps = T / median(times)
            ref_times = time_call(
                lambda t=target[:T_ref], d=draft[:T_ref], c=case: reference(t, d, c["samplings"], c["verifiers"]),
                repeats,
                max_total_s=max_ref_s,
            )
            ref_pps = T_ref / median(ref_times)
            ref = reference(target[:T_ref], draft[:T_ref], case["samplings"], case["verifiers"])
            sub = replay(target[:T_ref], draft[:T_ref], n=NS, device="cpu", **case)
            diff, z = compare(sub, ref)
            row = dict(
                V=V,
                case=case_name,
                dtype=str(case.get("dtype", torch.float64)).replace("torch.", ""),
                columns=len(res.columns) - 1,
                positions=T,
                reference_positions=T_ref,
                replay_pos_per_s=replay_pps,
                reference_pos_per_s=ref_pps,
                speedup=replay_pps / ref_pps,
                max_abs_diff=diff,
                max_z_estimates=z,
                mean_bound_iid_n4=float(np.mean(res["bound/iid/n=4"])),
            )
            rows.append(row)
            print(
                f"  V={V:>7,} {case_name:<14} replay {replay_pps:9.1f} pos/s  reference {ref_pps:9.2f} pos/s  "
                f"max|diff| {diff:.1e}",
                file=sys.stderr,
                flush=True,
            )

    headers = ["V", "case", "columns", "positions (ref)", "replay pos/s", "reference pos/s", "speedup",
               "max|diff|", "max z (est.)"]
    table = [
        [
            f"{r['V']:,}",
            r["case"],
            str(r["columns"]),
            f"{r['positions']} ({r['reference_positions']})",
            fmt(r["replay_pos_per_s"], ".1f"),
            fmt(r["reference_pos_per_s"], ".2f"),
            fmt(r["speedup"], ".1f") + "x",
            fmt(r["max_abs_diff"], ".1e"),
            fmt(r["max_z_estimates"], ".2f"),
        ]
        for r in rows
    ]
    print()
    print_table(headers, table)
    print(
        "\nreplay: torch on CPU (without_replacement bound: bound_rows, numba on CPU float64); reference: "
        "st.from_logits + st.optimal_acceptance / st.verifier(...).acceptance_detail on the first "
        "'(ref)' positions.\nmax|diff| over exact columns (float64 cases vs float64 reference); "
        "max z = |replay - reference| / combined stderr over the rrs_wor estimates (n > 2)."
    )

    checks = []
    exact = [r for r in rows if r["dtype"] == "float64"]
    worst = max(r["max_abs_diff"] for r in exact)
    checks.append(("float64 max|replay - reference| <= 1e-9", f"{worst:.1e}", worst <= 1e-9))
    zs = [r["max_z_estimates"] for r in rows if r["max_z_estimates"] is not None]
    if zs:
        checks.append(("rrs_wor estimates agree (max z <= 5)", f"{max(zs):.2f}", max(zs) <= 5))
    iid_big = [r for r in rows if r["case"] == "iid bound" and r["V"] == max(v for v, _, _ in sizes)]
    if iid_big:
        r = iid_big[0]
        checks.append(
            (
                f"iid bound alone at V={r['V']:,}: >= {GOAL_GPU_IID:,} pos/s (goal on GPU; CPU measured here)",
                f"{r['replay_pos_per_s']:.1f} pos/s on CPU",
                r["replay_pos_per_s"] >= GOAL_GPU_IID,
            )
        )
    print("\ngoals:")
    for name, value, ok in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {name}: {value}")

    name = "bench_replay.quick" if args.quick else "bench_replay"
    path = write_json(
        name,
        rows,
        args=dict(quick=args.quick, repeats=repeats, max_ref_s=max_ref_s, seed=args.seed, sizes=[list(s) for s in sizes], n=list(NS)),
        extra=dict(
            goals=[dict(goal=g, value=v, met=bool(ok)) for g, v, ok in checks],
            device="cpu",
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            numba_threads=numba.get_num_threads(),
            loadavg_start=loadavg_start,
            loadavg_end=os.getloadavg(),
        ),
    )
    print(f"\nwrote {path.relative_to(path.parent.parent)} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
