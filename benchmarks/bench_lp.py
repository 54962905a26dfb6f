"""Transport LP vs the subset dual: how far the LP scales, and how much slower it is.

For each sampling (iid, without_replacement), n ∈ {2, 3, 4} and V = 4, 8, 16, 32, ... with a
random Dirichlet(1) pair p, q (one fixed-seed instance per V, shared by every n, sampling and
backend):

* **LP s** — ``transport_lp(p, q, n, sampling, backend)`` for backend ∈ {"highs", "cvxpy"}: median
  of up to ``--repeats`` solves (fewer once the solves so far take over a second). Each solve runs in
  a worker process, killed when it exceeds ``--budget`` seconds (default 60): status ``timeout``.
  ``transport_lp`` refuses LPs above its size limit (``MAX_LP_VARIABLES``) with a ValueError: status
  ``refused``. Either ends that (sampling, n, backend) series.
* **dual ms** — ``st.optimal_acceptance(p, q, n, sampling, method="dual")`` on the same instance
  (median of repeats, after a warm-up of numba's JIT), on ``--dual-threads`` numba threads
  (default 1: a single position gains nothing from threads, and the LP solvers use one core).
* **ratio** — LP time / dual time; **|diff|** — |LP − dual| (expected ≤ 1e-8; status ``DIFF`` if not).
* **variables** — number of draft tuples × V (iid: V^n·V; without replacement: V!/(V−n)!·V).

At the end: for each sampling, backend and n, the largest V solved and its time.

    python benchmarks/bench_lp.py                # full, 60 s budget per solve
    python benchmarks/bench_lp.py --budget 20    # smaller budget
    python benchmarks/bench_lp.py --quick        # smoke test (< 60 s)

Rows are written to bench-results/bench_lp.json (``--quick``: bench_lp.quick.json).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time

import numpy as np

import spectheory as st

from _common import fmt, median, print_table, time_call, write_json

BACKENDS = ("highs", "cvxpy")
TOL = 1e-8


def fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def n_variables(V: int, n: int, sampling: str) -> int:
    """Tuples × V for a full-support q (every Dirichlet draw is positive)."""
    if sampling == "iid":
        return V**n * V
    return math.perm(V, min(n, V)) * V


def instance(V: int, seed: int):
    rng = np.random.default_rng([seed, V])
    return rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))


# --------------------------------------------------------------------------------------------
# LP worker: a separate process, so that a solve over budget can be killed
# --------------------------------------------------------------------------------------------
def _worker(conn) -> None:
    from spectheory.solvers import transport_lp

    # warm-up: imports, cvxpy's first canonicalisation, solver libraries
    rng = np.random.default_rng(1)
    wp, wq = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(4))
    for backend in BACKENDS:
        for s in ("iid", "without_replacement"):
            transport_lp(wp, wq, 2, s, backend)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        p, q, n, sampling, backend, repeats, repeat_total_s, max_variables = msg
        try:
            out = {}

            def solve():
                out["acc"] = transport_lp(p, q, n, sampling, backend, max_variables=max_variables).acceptance

            times = time_call(solve, repeats, max_total_s=repeat_total_s)
            conn.send(("ok", out["acc"], times))
        except ValueError as exc:  # SpecTheoryValueError: the LP's size limit
            conn.send(("refused", str(exc), None))
        except Exception as exc:  # noqa: BLE001 - reported as a status
            conn.send(("error", f"{type(exc).__name__}: {exc}", None))


class LPWorker:
    def __init__(self):
        self.ctx = mp.get_context("spawn")
        self.proc = None
        self.conn = None

    def start(self):
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise RuntimeError("bench_lp: the LP worker did not start")

    def solve(self, p, q, n, sampling, backend, repeats, budget, max_variables=None):
        """Returns (status, acceptance or message, times)."""
        if self.proc is None or not self.proc.is_alive():
            self.start()
        self.conn.send((p, q, n, sampling, backend, repeats, 1.0, max_variables))
        # repeats only happen while the solves so far total under a second, hence the small slack
        if self.conn.poll(budget + 2.0):
            try:
                return self.conn.recv()
            except EOFError:
                pass
            self.stop(kill=True)
            return ("crashed", "worker died (out of memory?)", None)
        self.stop(kill=True)
        return ("timeout", f"killed after {budget:g} s", None)

    def stop(self, kill=False):
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.proc = None
        self.conn = None


def dual_time(p, q, n, sampling, repeats):
    val = st.optimal_acceptance(p, q, n, sampling, method="dual")
    times = time_call(lambda: st.optimal_acceptance(p, q, n, sampling, method="dual"), repeats)
    return float(val), median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test (< 60 s)")
    ap.add_argument("--budget", type=float, default=None, help="seconds per LP solve before it is killed (default 60; quick 20)")
    ap.add_argument("--repeats", type=int, default=3, help="LP solves per point while they total under 1 s (default 3)")
    ap.add_argument("--dual-repeats", type=int, default=7, help="timed dual calls per point (default 7)")
    ap.add_argument("--max-v", type=int, default=None, help="largest V tried (default 4096; quick 8)")
    ap.add_argument("--n", type=int, nargs="+", default=None, help="draft counts (default 2 3 4; quick 2 3)")
    ap.add_argument("--sampling", nargs="+", default=["iid", "without_replacement"], choices=["iid", "without_replacement"])
    ap.add_argument(
        "--dual-threads", type=int, default=1,
        help="numba threads for the dual (default 1: one position gains nothing from threads, and the "
        "LP solvers run on one core); 0 = numba's default",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-variables", type=int, default=None,
        help="passed to transport_lp: measure beyond the package's refusal limit (default: that limit)",
    )
    ap.add_argument("--fine", action="store_true", help="V grid 4, 6, 8, 12, 16, 24, ... instead of powers of 2")
    args = ap.parse_args(argv)

    budget = args.budget if args.budget is not None else (20.0 if args.quick else 60.0)
    max_v = args.max_v or (8 if args.quick else 4096)
    ns = args.n or ([2, 3] if args.quick else [2, 3, 4])
    t_start = time.perf_counter()

    import numba

    dual_threads = args.dual_threads or int(numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(dual_threads)
    # warm-up of the dual (numba JIT / cache load)
    wp, wq = instance(5, 999)
    for s in args.sampling:
        st.optimal_acceptance(wp, wq, 2, s, method="dual")

    worker = LPWorker()
    worker.start()
    print(
        f"bench_lp: budget {budget:g} s per solve, LP repeats <= {args.repeats} (while < 1 s), dual repeats "
        f"{args.dual_repeats} on {dual_threads} numba thread(s), MAX_LP_VARIABLES = {st.solvers.MAX_LP_VARIABLES:,}, seed {args.seed}, "
        f"load average {os.getloadavg()[0]:.2f}{' (quick)' if args.quick else ''}",
        flush=True,
    )

    rows = []
    try:
        for sampling in args.sampling:
            for n in ns:
                active = list(BACKENDS)
                V = 4
                while active and V <= max_v:
                    p, q = instance(V, args.seed)
                    dual_val, dual_s = dual_time(p, q, n, sampling, args.dual_repeats)
                    for backend in list(active):
                        status, res, times = worker.solve(p, q, n, sampling, backend, args.repeats, budget, args.max_variables)
                        row = dict(
                            sampling=sampling,
                            n=n,
                            V=V,
                            variables=n_variables(V, n, sampling),
                            backend=backend,
                            lp_s=None,
                            lp_repeats=0,
                            dual_ms=1e3 * dual_s,
                            ratio=None,
                            abs_diff=None,
                            lp_value=None,
                            dual_value=dual_val,
                            status=status,
                            message=None,
                        )
                        if status == "ok":
                            lp_s = median(times)
                            diff = abs(res - dual_val)
                            row.update(lp_s=lp_s, lp_repeats=len(times), ratio=lp_s / dual_s, abs_diff=diff, lp_value=res)
                            if diff > TOL:
                                row["status"] = "DIFF"
                            if max(times) > budget:
                                row["status"] = "over budget"
                                active.remove(backend)
                        else:
                            row["message"] = res
                            active.remove(backend)
                        rows.append(row)
                        print(
                            f"  {sampling:<19} n={n} V={V:<5} {backend:<5} {row['status']:<8} "
                            f"LP {fmt(row['lp_s'], '.3g')} s  dual {row['dual_ms']:.3g} ms",
                            file=sys.stderr,
                            flush=True,
                        )
                    V = (V * 3 // 2 if V & (V - 1) == 0 else V * 4 // 3) if args.fine else V * 2
    finally:
        worker.stop()

    headers = ["sampling", "n", "V", "variables", "backend", "LP s", "dual ms", "ratio", "|diff|", "status"]
    table = [
        [
            r["sampling"],
            str(r["n"]),
            str(r["V"]),
            f"{r['variables']:,}",
            r["backend"],
            fmt(r["lp_s"], ".3g") if r["status"] != "timeout" else f">{budget:g}",
            fmt(r["dual_ms"], ".3g"),
            fmt_ratio(r["ratio"]),
            fmt(r["abs_diff"], ".1e"),
            r["status"],
        ]
        for r in rows
    ]
    print()
    print_table(headers, table, right={1, 2, 3, 5, 6, 7, 8})

    # summary: largest V solved per (sampling, backend, n)
    summary = []
    for sampling in args.sampling:
        for backend in BACKENDS:
            for n in ns:
                series = [r for r in rows if r["sampling"] == sampling and r["backend"] == backend and r["n"] == n]
                solved = [r for r in series if r["lp_s"] is not None]
                best = max(solved, key=lambda r: r["V"]) if solved else None
                stop = next((r for r in series if r["status"] in ("refused", "timeout", "crashed", "error", "over budget")), None)
                summary.append(
                    dict(
                        sampling=sampling,
                        backend=backend,
                        n=n,
                        largest_V=best["V"] if best else None,
                        variables=best["variables"] if best else None,
                        lp_s=best["lp_s"] if best else None,
                        stopped_by=f"{stop['status']} at V={stop['V']}" if stop else f"V limit {max_v}",
                    )
                )
    print("\nlargest V solved:")
    print_table(
        ["sampling", "backend", "n", "largest V", "variables", "LP s", "series ended by"],
        [
            [
                s["sampling"],
                s["backend"],
                str(s["n"]),
                fmt(s["largest_V"], "d"),
                fmt(s["variables"], ",d"),
                fmt(s["lp_s"], ".3g"),
                s["stopped_by"],
            ]
            for s in summary
        ],
        right={2, 3, 4, 5},
    )
    bad = [r for r in rows if r["status"] in ("DIFF", "error", "crashed")]
    if bad:
        print(f"\n{len(bad)} row(s) with status DIFF/error/crashed:")
        for r in bad:
            print(f"  {r['sampling']} n={r['n']} V={r['V']} {r['backend']}: {r['status']} {r['message'] or ''}".rstrip())

    name = "bench_lp.quick" if args.quick else "bench_lp"
    path = write_json(
        name,
        rows,
        args=dict(
            quick=args.quick, budget_s=budget, repeats=args.repeats, dual_repeats=args.dual_repeats,
            max_v=max_v, n=ns, sampling=args.sampling, seed=args.seed, dual_threads=dual_threads,
        ),
        extra=dict(summary=summary, max_lp_variables=st.solvers.MAX_LP_VARIABLES, loadavg_end=os.getloadavg()),
    )
    print(f"\nwrote {path.relative_to(path.parent.parent)} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
