"""Exact acceptance of the verifiers at full vocabulary: time per position against V and n.

Synthetic LLM-like pairs (``_common.llm_like_pair``, float64, temperature 1). For every (V, n) and
verifier, ``st.verifier(name).acceptance_detail(p, q, n)`` on single positions (median over
``--positions`` positions of the median over ``--repeats`` calls).

Baselines measured in the same run, at the same V:

* **sd** — Σ min(p, q), one O(V) pass: the floor any exact acceptance pays. ``× sd`` is the ratio.
* **sort** — ``np.argsort(p / q)``, the O(V log V) step of the sorted-prefix bound and of kseq.
  ``× sort`` is the ratio.

rrs_wor is exact (closed form) at n = 2 and an estimate (Rao–Blackwellised Monte Carlo over
``paths`` rejection histories, standard error reported) for n > 2 at these sizes.

    python benchmarks/bench_verifiers.py           # V ∈ {32k, 128k, 152k}, n ∈ {2, 4, 8}
    python benchmarks/bench_verifiers.py --quick   # smoke test

Rows go to bench-results/bench_verifiers.json.
"""

from __future__ import annotations

import argparse

import numpy as np

import spectheory as st

from _common import fmt, llm_like_pair, median, print_table, time_call, write_json

VERIFIERS = ("rrs", "kseq", "spechub", "greedy", "rrs_wor")


def per_position(fn, p, q, repeats):
    return median(median(time_call(lambda b=b: fn(p[b], q[b]), repeats)) for b in range(len(p)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--positions", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    Vs = (4_096, 16_384) if args.quick else (32_000, 128_000, 152_000)
    ns = (2, 4) if args.quick else (2, 4, 8)

    # warm up numba kernels (rrs_wor estimate) and the import of every module
    wp, wq = llm_like_pair(64, 1, seed=9)
    for name in VERIFIERS:
        st.verifier(name).acceptance(wp[0], wq[0], 2)
    st.verifier("rrs_wor", max_histories=0).acceptance(wp[0], wq[0], 3)

    rows = []
    table = []
    for V in Vs:
        p, q = llm_like_pair(V, args.positions, seed=1)
        sd = per_position(lambda a, b: np.minimum(a, b).sum(), p, q, args.repeats)
        srt = per_position(lambda a, b: np.argsort(a / b), p, q, args.repeats)
        for n in ns:
            for name in VERIFIERS:
                if name == "spechub" and n != 2:
                    continue
                v = st.verifier(name)
                t = per_position(lambda a, b: v.acceptance_detail(a, b, n), p, q, args.repeats)
                d = v.acceptance_detail(p[0], q[0], n)
                row = dict(V=V, n=n, verifier=name, ms=t * 1e3, sd_ms=sd * 1e3, sort_ms=srt * 1e3,
                           x_sd=t / sd, x_sort=t / srt, acceptance=d.value, stderr=d.stderr, exact=d.exact,
                           method=d.method)
                rows.append(row)
                table.append([f"{V:,}", str(n), name, fmt(row["ms"], ".3g"), fmt(row["x_sd"], ".1f") + "x",
                              fmt(row["x_sort"], ".2f") + "x", f"{d.value:.6f}",
                              "exact" if d.exact else f"± {d.stderr:.1g}"])
    print("exact acceptance per position (ms); baselines: sd = Σ min(p, q), sort = np.argsort(p/q), same V")
    print_table(["V", "n", "verifier", "ms/pos", "× sd", "× sort", "acceptance", ""], table)
    path = write_json("bench_verifiers" + (".quick" if args.quick else ""), rows, args=vars(args))
    print(f"\nrows written to {path}")


if __name__ == "__main__":
    main()
