"""The ``priority`` construction of the optimal verifier: build and verify time per position.

Synthetic LLM-like pairs (``_common.llm_like_pair``, float64, temperature 1), V ∈ {1k, 32k, 152k},
n ∈ {2, 4, 8}. Three tables, each with a baseline measured in the same run:

1. **Optimal selection law at full support** (iid, without replacement):
   ``st.solvers.optimal_selection_law`` against ``st.optimal_acceptance`` (the sorted-prefix bound,
   which the law cannot undercut: it needs the minimising prefix H*). No sampler exists at full
   support for these schemes (see docs/theory/priority.rst), so no verify column.
2. **Mixture of priority orders, draft truncated to its 12 likeliest tokens** (iid, without
   replacement; p keeps its full vocabulary): build = ``priority_selector`` (face walk over the
   2^12 subsets of the draft support), verify = ``verifier.verify`` on a built position (median over
   draws; includes the public input validation, O(V)). Baseline: the LP construction
   ``construction="plan"`` where its LP fits (tuples × V ≤ 10^6), else "-".
3. **greedy and hub at full support**: ``FixedSetSelector`` build and ``verify``, against
   ``st.optimal_acceptance`` for the same scheme.

    python benchmarks/bench_priority.py            # full grid
    python benchmarks/bench_priority.py --quick    # smoke test
    python benchmarks/bench_priority.py --vocab 152000 --drafts 8   # one cell of the grid

Rows go to bench-results/bench_priority.json.
"""

from __future__ import annotations

import argparse

import numpy as np

import spectheory as st
from spectheory.solvers import MAX_LP_VARIABLES, optimal_selection_law, priority_selector

from _common import fmt, llm_like_pair, median, print_table, time_call, write_json


def _truncate(q, k):
    top = np.argsort(-q)[:k]
    out = np.zeros_like(q)
    out[top] = q[top]
    return out / out.sum()


def _verify_ms(v, p, q, n, draws, repeats):
    drafts = [v.draft(q, n, draws) for _ in range(repeats)]
    v.verify(p, q, drafts[0], draws)  # builds and caches the position
    return median(time_call(lambda: [v.verify(p, q, d, draws) for d in drafts], 3)) / repeats * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--vocab", type=int, nargs="+", help="vocabulary sizes (default 1000 32000 152000)")
    ap.add_argument("--drafts", type=int, nargs="+", help="draft counts (default 2 4 8)")
    args = ap.parse_args(argv)
    Vs = (1_000, 4_096) if args.quick else (1_000, 32_000, 152_000)
    ns = (2, 4) if args.quick else (2, 4, 8)
    Vs, ns = tuple(args.vocab or Vs), tuple(args.drafts or ns)
    draws = np.random.default_rng(0)
    wp, wq = llm_like_pair(64, 1, seed=9)
    optimal_selection_law(wp[0], wq[0], 2, "without_replacement")  # numba warm-up
    st.optimal_acceptance(wp[0], wq[0], 2, "without_replacement")

    rows, t1, t2, t3 = [], [], [], []
    for V in Vs:
        P, Q = llm_like_pair(V, 1, seed=1)
        p, q = P[0], Q[0]
        qt = _truncate(q, 12)
        for n in ns:
            for sampling in ("iid", "without_replacement"):
                law = median(time_call(lambda: optimal_selection_law(p, q, n, sampling), args.repeats))
                bound = median(time_call(lambda: st.optimal_acceptance(p, q, n, sampling), args.repeats))
                acc = optimal_selection_law(p, q, n, sampling).acceptance
                rows.append(dict(table="law", V=V, n=n, sampling=sampling, law_ms=law * 1e3, bound_ms=bound * 1e3,
                                 x_bound=law / bound, acceptance=acc))
                t1.append([f"{V:,}", str(n), sampling, fmt(law * 1e3, ".3g"), fmt(bound * 1e3, ".3g"),
                           fmt(law / bound, ".2f") + "x", f"{acc:.6f}"])

                build = median(time_call(lambda: priority_selector(p, qt, n, sampling), 1 if n == 8 else args.repeats))
                v = st.verifier("optimal", sampling=sampling, construction="priority")
                ver = _verify_ms(v, p, qt, n, draws, args.draws)
                tuples = 12**n if sampling == "iid" else np.prod(np.arange(12, 12 - n, -1))
                lp_build = None
                if tuples * (V + 1) <= MAX_LP_VARIABLES:
                    lp = st.verifier("optimal", sampling=sampling, construction="plan")
                    lp_build = median(time_call(lambda: lp._solved(p, qt, n), 1))
                rows.append(dict(table="mixture", V=V, n=n, sampling=sampling, build_ms=build * 1e3, verify_ms=ver,
                                 lp_build_ms=None if lp_build is None else lp_build * 1e3,
                                 x_lp=None if lp_build is None else build / lp_build))
                t2.append([f"{V:,}", str(n), sampling, fmt(build * 1e3, ".3g"), fmt(ver, ".3g"),
                           fmt(None if lp_build is None else lp_build * 1e3, ".3g"),
                           "-" if lp_build is None else fmt(build / lp_build, ".3f") + "x"])
            for sampling in ("greedy", "hub"):
                if sampling == "hub" and n != 2:
                    continue
                build = median(time_call(lambda: priority_selector(p, q, n, sampling), args.repeats))
                bound = median(time_call(lambda: st.optimal_acceptance(p, q, n, sampling), args.repeats))
                v = st.verifier("optimal", sampling=sampling, construction="priority")
                ver = _verify_ms(v, p, q, n, draws, args.draws)
                rows.append(dict(table="fixed set", V=V, n=n, sampling=sampling, build_ms=build * 1e3,
                                 verify_ms=ver, bound_ms=bound * 1e3, x_bound=build / bound))
                t3.append([f"{V:,}", str(n), sampling, fmt(build * 1e3, ".3g"), fmt(ver, ".3g"),
                           fmt(bound * 1e3, ".3g"), fmt(build / bound, ".2f") + "x"])

    print("1. optimal selection law at full support (ms) vs the sorted-prefix bound st.optimal_acceptance")
    print_table(["V", "n", "sampling", "law ms", "bound ms", "× bound", "α*"], t1)
    print("\n2. mixture of priority orders, draft truncated to 12 tokens: build (ms), verify (ms/position), "
          "LP construction 'plan' build (ms)")
    print_table(["V", "n", "sampling", "build ms", "verify ms", "LP build ms", "× LP"], t2)
    print("\n3. greedy / hub at full support: build (ms), verify (ms/position), bound (ms)")
    print_table(["V", "n", "sampling", "build ms", "verify ms", "bound ms", "× bound"], t3)
    name = "bench_priority" + (".quick" if args.quick else "") + (".subset" if args.vocab or args.drafts else "")
    path = write_json(name, rows, args=vars(args))
    print(f"\nrows written to {path}")


if __name__ == "__main__":
    main()
