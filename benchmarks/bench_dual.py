"""The bound engine at full vocabulary: time per position against fair baselines, in one run.

Synthetic LLM-like pairs (``_common.llm_like_pair``): base = N(0,1)·2.5, target = base + N(0,1),
draft = target + N(0,1), p and q = ``st.from_logits`` (float64, temperature 1).

Baselines (same inputs, same process, same thread settings):

* **stream** — one streaming pass over p and q: a numba loop summing min(p, q) (the cost floor of
  anything that reads both rows once).
* **recipe** — the NumPy i.i.d. recipe with NumPy's *default* (fastest, unstable) argsort of p/q, then
  two cumulative sums and the minimum over the prefixes (the values equal the engine's to 1e-12;
  checked below).

For every (V, scheme) the engine :func:`spectheory.solvers.bound_rows` is timed

* **single ms/pos** — one position per call, every n in ``--ns`` in that one call;
* **batched ms/pos** — all ``--batch`` positions in one call, divided by the batch size;
* **per-n ms/pos** — one call per n (single positions), summed over the n: what all-n-at-once saves;

with ratios against the stream and the recipe, and (iid) max|engine − recipe|. Timings: median of
``--repeats`` calls (single positions: median over positions of the per-position medians). Numba
functions are warmed up first. Report the machine load (``uptime``) with the numbers.

    python benchmarks/bench_dual.py            # V ∈ {4096, 32k, 152k}, n = 1..8, B = 64
    python benchmarks/bench_dual.py --quick    # smoke test, a few seconds

Rows are written to bench-results/bench_dual.json (``--quick``: bench_dual.quick.json).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from numba import njit

import spectheory as st  # noqa: F401  (imports the package the solvers live in)
from spectheory.solvers import bound_rows

from _common import fmt, llm_like_pair, median, print_table, time_call, write_json

SCHEMES = ("iid", "without_replacement", "greedy", "hub", "topk")


@njit(cache=True)
def _stream(p, q):
    out = np.empty(p.shape[0])
    for b in range(p.shape[0]):
        acc = 0.0
        for i in range(p.shape[1]):
            acc += min(p[b, i], q[b, i])
        out[b] = acc
    return out


def recipe(p, q, ns):
    """NumPy i.i.d. recipe: default argsort of p/q (q = 0 last), prefix sums, min over prefixes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(q > 0, p / np.where(q > 0, q, 1.0), np.inf)
    order = np.argsort(r, axis=1)
    ps = np.take_along_axis(p, order, 1)
    qs = np.take_along_axis(q, order, 1)
    zero = np.zeros((p.shape[0], 1))
    P = np.concatenate([zero, np.cumsum(ps, 1)], 1)
    S = np.concatenate([np.cumsum(qs[:, ::-1], 1)[:, ::-1], zero], 1)  # draft mass after the prefix
    S = np.clip(S, 0.0, 1.0)
    return np.stack([np.clip((P + 1.0 - (1.0 - S) ** n).min(1), 0.0, 1.0) for n in ns], 1)


def per_position_ms(fn, P, Q, positions, repeats):
    per = []
    for i in range(positions):
        a, b = P[i : i + 1], Q[i : i + 1]
        fn(a, b)
        per.append(median(time_call(lambda: fn(a, b), repeats)))
    return 1e3 * median(per)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--positions", type=int, default=None, help="single positions timed one by one")
    ap.add_argument("--batch", type=int, default=None, help="positions per batched call (default 64)")
    ap.add_argument("--V", type=int, nargs="*", default=None)
    ap.add_argument("--ns", type=int, nargs="*", default=list(range(1, 9)))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        Vs, repeats, positions, batch = args.V or [2_000], args.repeats or 2, args.positions or 2, args.batch or 4
    else:
        Vs, repeats, positions, batch = args.V or [4_096, 32_000, 152_000], args.repeats or 5, args.positions or 4, args.batch or 64
    ns = list(args.ns)
    positions = min(positions, batch)

    w = np.full((2, 50), 1 / 50)
    _stream(w, w)
    for s in SCHEMES:
        bound_rows(w, w, [2] if s == "hub" else ns, s)
    print(f"bench_dual: n = {ns}, batch = {batch}, repeats = {repeats}, positions = {positions}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    rows = []
    for V in Vs:
        P, Q = llm_like_pair(V, batch, seed=args.seed)
        stream_ms = per_position_ms(_stream, P, Q, positions, repeats)
        recipe_ms = per_position_ms(lambda a, b: recipe(a, b, ns), P, Q, positions, repeats)
        ref = recipe(P, Q, ns)
        for s in SCHEMES:
            use = [2] if s == "hub" else ns
            single = per_position_ms(lambda a, b: bound_rows(a, b, use, s), P, Q, positions, repeats)
            per_n = sum(per_position_ms(lambda a, b: bound_rows(a, b, [n], s), P, Q, positions, repeats) for n in use)
            bound_rows(P, Q, use, s)
            batched = 1e3 * median(time_call(lambda: bound_rows(P, Q, use, s), repeats)) / batch
            diff = float(np.max(np.abs(bound_rows(P, Q, use, s) - ref))) if s == "iid" else None
            rows.append(dict(V=V, sampling=s, ns=use, single_ms=single, batched_ms=batched, per_n_ms=per_n,
                             stream_ms=stream_ms, recipe_ms=recipe_ms, max_diff_vs_recipe=diff))
            print(f"  V={V:>7,} {s:<19} single {single:8.3f} ms  batched {batched:8.3f} ms  per-n {per_n:8.3f} ms",
                  flush=True)
    iid = {r["V"]: r for r in rows if r["sampling"] == "iid"}
    headers = ["V", "scheme", "single ms/pos (all n)", f"batched ms/pos (B={batch})", "per-n calls ms/pos",
               "stream ms", "recipe ms", "single/stream", "single/recipe", "batched/single", "vs iid", "max|diff| (iid)"]
    table = [[f"{r['V']:,}", r["sampling"], fmt(r["single_ms"], ".3f"), fmt(r["batched_ms"], ".3f"),
              fmt(r["per_n_ms"], ".3f"), fmt(r["stream_ms"], ".3f"), fmt(r["recipe_ms"], ".3f"),
              fmt(r["single_ms"] / r["stream_ms"], ".1f") + "x", fmt(r["single_ms"] / r["recipe_ms"], ".2f") + "x",
              fmt(r["batched_ms"] / r["single_ms"], ".2f") + "x",
              fmt(r["single_ms"] / iid[r["V"]]["single_ms"], ".1f") + "x", fmt(r["max_diff_vs_recipe"], ".1e")]
             for r in rows]
    print()
    print_table(headers, table)
    print(f"\nn = {ns} in one call (hub: n = 2); stream = numba Σ min(p, q), one pass; recipe = NumPy default "
          f"argsort of p/q + cumsums (i.i.d. bound, all n). load average {os.getloadavg()[0]:.2f}")
    write_json("bench_dual.quick" if args.quick else "bench_dual", rows, args=vars(args))
    worst = max(r["max_diff_vs_recipe"] for r in rows if r["sampling"] == "iid")
    return 0 if worst <= 1e-12 else 1


if __name__ == "__main__":
    raise SystemExit(main())
