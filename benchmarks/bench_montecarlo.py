"""The Monte Carlo engine: trials per second per verifier, numba (1 and 2 threads) against NumPy.

Synthetic LLM-like pairs (``_common.llm_like_pair``, one position, seed 0): base = N(0,1)·2.5,
target = base + N(0,1), draft = target + N(0,1), softmax at temperature 1. At V = 32 the top draft
token has q ≈ 0.54, so rrs_wor often leaves the alias fast path for its sum tree.

For every V, n and verifier (sd only at n = 1, spechub only at n = 2):

* **numba 1 thr / 2 thr** — trials per second of the public call
  ``spectheory.simulations.montecarlo.estimate_acceptance(p, q, n, name, trials, seed)`` with
  ``numba.set_num_threads(1)`` and ``(2)`` (preparation and validation included), trials chosen so a
  call lasts about ``--seconds`` (calibrated on one thread; the same trial count on two); the best of
  ``--repeats`` calls, since the machine may be shared.
* **numpy** — the same sampler vectorised over trials in NumPy (batches of 2^16 trials; the same
  prepared tables from ``montecarlo._prepare``; ``numpy.random.Generator`` uniforms; rrs_wor redraws
  duplicate drafts in vectorised passes and falls back to an O(V) masked inverse CDF for rows still
  unresolved after 64 passes). Single-threaded, like NumPy itself.
* **numpy choice** — the same NumPy code, but every draw from a fixed law is
  ``Generator.choice(V, size, p=law)`` (a CDF per call, a binary search per draw) instead of the
  alias tables: what a textbook vectorised implementation does.
* **x numpy / x choice** — numba 1-thread rate / NumPy rate: the per-core speedup.
* **2/1 thr** — scaling from 1 to 2 threads.
* **z numba / z numpy / z choice** — (estimate − exact acceptance) / combined standard error, a sanity
  check of every sampler (the exact side is itself an estimate for rrs_wor with n > 2 at these sizes).

Goals: per-core speedup ≥ 20× NumPy on every row; ≥ 5·10^6 rrs trials/s on one core at V = 32, n = 4.

    python benchmarks/bench_montecarlo.py            # V ∈ {32, 32k}, n ∈ {1, 2, 4, 8}
    python benchmarks/bench_montecarlo.py --quick    # smoke test, well under a minute

Rows go to bench-results/bench_montecarlo.json (``--quick``: bench_montecarlo.quick.json). The machine
may be shared: the load average at start and end is recorded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numba
import numpy as np

import spectheory as st
from spectheory.simulations import _mc_kernels as K
from spectheory.simulations import montecarlo as mc
from spectheory.simulations._alias import alias_law

from _common import fmt, llm_like_pair, print_table, time_call, write_json

VERIFIERS = ("sd", "rrs", "kseq", "spechub", "greedy", "rrs_wor")
GOAL_SPEEDUP = 20.0
GOAL_RRS_RATE = 5e6
BATCH = 1 << 16


# --------------------------------------------------------------------------------------------
# the NumPy baseline: the same samplers, vectorised over trials
# --------------------------------------------------------------------------------------------
#: how the NumPy baseline draws from a fixed law: "alias" (the engine's tables, O(1) per draw) or
#: "choice" (``Generator.choice(V, size, p=law)``: a CDF per call and a binary search per draw)
DRAW = {"mode": "alias"}
_LAWS: dict = {}


def _draw(prob, alias, size, rng):
    V = prob.shape[0]
    if DRAW["mode"] == "choice":
        entry = _LAWS.get(id(prob))
        if entry is None or entry[0] is not prob:
            if len(_LAWS) > 16:
                _LAWS.clear()
            entry = _LAWS[id(prob)] = (prob, alias_law(prob, alias))
        return rng.choice(V, size=size, p=entry[1])
    x = rng.random(size) * V
    i = np.minimum(x.astype(np.int64), V - 1)
    return np.where(x - i < prob[i], i, alias[i])


def np_sequential(args, B, rng):
    qp, qa, table, t_steps, m_steps, p, q, rp, ra, also, n = args
    rows = table.shape[0]
    y = np.full(B, -1, np.int64)
    alive = np.arange(B)
    drafts = np.empty((B, n), np.int64)
    for i in range(n):
        x = _draw(qp, qa, alive.size, rng)
        drafts[alive, i] = x
        u = rng.random(alive.size)
        if rows > 0:
            ok = u < table[i if rows > 1 else 0, x]
        else:
            num = p[x] - t_steps[i] * q[x]
            ok = (num > 0) & (u * (m_steps[i] * q[x]) < num)
        y[alive[ok]] = x[ok]
        alive = alive[~ok]
    accepted = B - alive.size
    yr = _draw(rp, ra, alive.size, rng)
    y[alive] = yr
    hit = also[yr] | np.any(drafts[alive] == yr[:, None], axis=1)
    return accepted + int(hit.sum()), y


def np_hub(args, B, rng):
    qp, qa, op, oa, a, acc_first, c_first, acc_second, c_second, rp, ra = args
    x1 = _draw(qp, qa, B, rng)
    first = x1 != a
    x2 = np.where(first, a, _draw(op, oa, B, rng))
    u1 = rng.random(B)
    u2 = rng.random(B)
    y = np.full(B, -1, np.int64)
    take1 = first & (u1 < acc_first[x1])
    y[take1] = x1[take1]
    hub1 = first & ~take1 & (u2 < c_first)
    take2 = ~first & (u1 < acc_second[x2])
    y[take2] = x2[take2]
    hub2 = ~first & ~take2 & (u2 < c_second)
    y[hub1 | hub2] = a
    rest = y < 0
    y[rest] = _draw(rp, ra, int(rest.sum()), rng)
    return int(np.sum((y == x1) | (y == x2))), y


def np_without_replacement(args, B, rng):
    (p, q, qp, qa, order, ratio_desc, cum_p, cum_q, state0, state1, rest1, t2, m2, j2, _tree, _L, n) = args
    neg_ratio = -ratio_desc  # ascending: #(ratio > t) = searchsorted(-ratio, -t, 'left')
    t = np.zeros(B)
    M = np.full(B, state0[1])
    J = np.full(B, int(state0[2]), np.int64)
    rest = np.full(B, state0[3])
    S = np.full((B, n), -1, np.int64)
    y = np.full(B, -1, np.int64)
    alive = np.arange(B)
    for i in range(n):
        x = _draw(qp, qa, alive.size, rng)
        if i > 0:  # redraw duplicates of earlier drafts
            dup = np.flatnonzero(np.any(S[alive, :i] == x[:, None], axis=1))
            passes = 0
            while dup.size and passes < 64:
                x[dup] = _draw(qp, qa, dup.size, rng)
                dup = dup[np.any(S[alive[dup], :i] == x[dup][:, None], axis=1)]
                passes += 1
            if dup.size:  # masked inverse CDF, O(V) per row
                W = np.broadcast_to(q, (dup.size, q.size)).copy()
                np.put_along_axis(W, S[alive[dup], :i], 0.0, axis=1)
                c = np.cumsum(W, axis=1)
                w = rng.random(dup.size) * c[:, -1]
                x[dup] = np.minimum((c <= w[:, None]).sum(axis=1), q.size - 1)
                rest[alive[dup]] = c[:, -1]
        S[alive, i] = x
        ra, ta, Ma = rest[alive], t[alive], M[alive]
        num = p[x] - ta * q[x]
        ok = (num > 0) & (rng.random(alive.size) * (Ma * q[x]) < num * ra)
        y[alive[ok]] = x[ok]
        rej = alive[~ok]
        xr = x[~ok]
        if i == 0:  # precomputed: the state after the first rejection, and rest without x1
            t[rej], M[rej], J[rej] = state1[0], state1[1], int(state1[2])
            rest[rej] = rest1[xr]
        else:
            if i == 1:  # precomputed: the state after the second rejection depends on x1 only
                x1 = S[rej, 0]
                t_new, M_new, J_new = t2[x1], m2[x1], j2[x1]
            else:
                t_new = t[rej] + M[rej] / rest[rej]
                J_new = np.searchsorted(neg_ratio, -t_new, "left")
                M_new = cum_p[J_new] - t_new * cum_q[J_new]
            keep = M_new > 0
            t[rej[keep]], M[rej[keep]], J[rej[keep]] = t_new[keep], M_new[keep], J_new[keep]
            rest[rej] -= q[xr]
        alive = rej
    accepted = B - alive.size
    # Y ~ (p − t q)+ / M: vectorised bisection for the smallest j in [1, J] with F(j) > w
    ta, w = t[alive], rng.random(alive.size) * M[alive]
    lo = np.ones(alive.size, np.int64)
    hi = J[alive].copy()
    while np.any(lo < hi):
        mid = (lo + hi) >> 1
        up = cum_p[mid] - ta * cum_q[mid] > w
        hi = np.where((lo < hi) & up, mid, hi)
        lo = np.where((lo < hi) & ~up, mid + 1, lo)
    yr = order[lo - 1]
    y[alive] = yr
    hit = np.any(S[alive] == yr[:, None], axis=1)
    return accepted + int(hit.sum()), y


NUMPY_KERNELS = {K.run_sequential: np_sequential, K.run_hub: np_hub, K.run_without_replacement: np_without_replacement}


def numpy_estimate(p, q, n, name, trials, seed):
    """The NumPy baseline end to end: validation and preparation as in the engine, then batches."""
    v = st.verifier(name)
    p, q, n = st._validation.check_single_pair(p, q, n, v.scheme)
    kernel, args = mc._prepare(name, np.ascontiguousarray(p), np.ascontiguousarray(q), v.check_n(n))
    fn = NUMPY_KERNELS[kernel]
    rng = np.random.default_rng(seed)
    accepted = 0
    done = 0
    while done < trials:
        B = min(BATCH, trials - done)
        a, _ = fn(args, B, rng)
        accepted += a
        done += B
    mean = accepted / trials
    return mc.Estimate(mean, float(np.sqrt(mean * (1 - mean) / trials)), trials)


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
def rate(fn, seconds, repeats, start_trials, fixed=None):
    """Trials per second of ``fn(trials)``: calibrate the trial count to last ``seconds`` (or use
    ``fixed``), then the best of ``repeats`` timed calls (the machine is shared: the fastest call is
    the least disturbed one). Returns (rate, trials, last result)."""
    if fixed is not None:
        holder = {}
        times = time_call(lambda: holder.__setitem__("out", fn(fixed)), repeats)
        return fixed / min(times), fixed, holder["out"]
    trials = start_trials
    while True:
        t0 = time.perf_counter()
        fn(trials)
        dt = time.perf_counter() - t0
        if dt >= 0.25 * seconds or trials >= 1 << 34:
            break
        trials = int(trials * min(64.0, max(2.0, 0.5 * seconds / max(dt, 1e-6))))
    trials = max(1, int(trials * seconds / max(dt, 1e-9)))
    holder = {}
    times = time_call(lambda: holder.__setitem__("out", fn(trials)), repeats)
    return trials / min(times), trials, holder["out"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small grid, short timings (a smoke test)")
    ap.add_argument("--seconds", type=float, default=None, help="target wall time per timed call (default 0.3; quick 0.05)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 3; quick 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    Vs = (32, 32_000)
    ns = (1, 4) if args.quick else (1, 2, 4, 8)
    seconds = args.seconds or (0.05 if args.quick else 0.3)
    repeats = args.repeats or (1 if args.quick else 3)

    default_threads = int(numba.config.NUMBA_NUM_THREADS)
    threads = sorted({1, min(2, default_threads)})
    t_start = time.perf_counter()
    loadavg_start = os.getloadavg()
    # compile / load every kernel before timing
    for name in VERIFIERS:
        for th in threads:
            numba.set_num_threads(th)
            mc.estimate_acceptance([0.5, 0.5], [0.3, 0.7], 2 if name == "spechub" else 1, name, trials=10, seed=0)
    print(
        f"bench_montecarlo: seconds/call={seconds}, repeats={repeats}, threads {threads} "
        f"({numba.threading_layer()}), CHUNK={mc.CHUNK}, load average {loadavg_start[0]:.2f}"
        f"{' (quick)' if args.quick else ''}",
        flush=True,
    )

    rows = []
    for V in Vs:
        P, Q = llm_like_pair(V, 1, seed=args.seed)
        p, q = P[0], Q[0]
        for n in ns:
            for name in VERIFIERS:
                if (name == "sd" and n != 1) or (name == "spechub" and n != 2):
                    continue
                v = st.verifier(name, paths=4096) if name == "rrs_wor" else st.verifier(name)
                exact = v.acceptance_detail(p, q, n)
                row = dict(V=V, n=n, verifier=name, exact=exact.value, exact_stderr=exact.stderr)
                T = None
                for th in threads:  # calibrated on one thread; the same trials on two
                    numba.set_num_threads(th)
                    r, T, est = rate(
                        lambda T, p=p, q=q, n=n, name=name: mc.estimate_acceptance(p, q, n, name, trials=T, seed=args.seed + 1), seconds, repeats,
                        1 << 16, fixed=T,
                    )
                    row[f"numba_{th}thr_per_s"] = r
                    row[f"numba_{th}thr_trials"] = T
                    row["z_numba"] = (est.mean - exact.value) / np.hypot(est.stderr, exact.stderr)
                numba.set_num_threads(default_threads)
                def fn_np(T, p=p, q=q, n=n, name=name):
                    return numpy_estimate(p, q, n, name, T, args.seed + 1)

                r, T, est = rate(fn_np, seconds, repeats, 1 << 12)
                row["numpy_per_s"] = r
                row["numpy_trials"] = T
                row["z_numpy"] = (est.mean - exact.value) / np.hypot(est.stderr, exact.stderr)
                DRAW["mode"] = "choice"
                rc, T, est = rate(fn_np, seconds, repeats, 1 << 12)
                DRAW["mode"] = "alias"
                row["numpy_choice_per_s"] = rc
                row["z_numpy_choice"] = (est.mean - exact.value) / np.hypot(est.stderr, exact.stderr)
                row["speedup_choice_1thr"] = row["numba_1thr_per_s"] / rc
                row["loadavg"] = os.getloadavg()[0]
                row["speedup_1thr"] = row["numba_1thr_per_s"] / r
                top = max(threads)
                row["speedup_top"] = row[f"numba_{top}thr_per_s"] / r
                row["scaling"] = row[f"numba_{top}thr_per_s"] / row["numba_1thr_per_s"]
                rows.append(row)
                print(
                    f"  V={V:>6,} n={n} {name:<8} numba 1thr {row['numba_1thr_per_s']:.3g}/s  "
                    f"{top}thr {row[f'numba_{top}thr_per_s']:.3g}/s  numpy {r:.3g}/s",
                    file=sys.stderr,
                    flush=True,
                )
    numba.set_num_threads(default_threads)
    top = max(threads)

    headers = ["V", "n", "verifier", "numba 1 thr /s", f"numba {top} thr /s", f"{top}/1 thr", "numpy /s",
               "x numpy", "numpy choice /s", "x choice", "z numba", "z numpy", "z choice", "load"]
    table = [
        [f"{r['V']:,}", str(r["n"]), r["verifier"], fmt(r["numba_1thr_per_s"], ".3g"),
         fmt(r[f"numba_{top}thr_per_s"], ".3g"), fmt(r["scaling"], ".2f") + "x", fmt(r["numpy_per_s"], ".3g"),
         fmt(r["speedup_1thr"], ".1f") + "x", fmt(r["numpy_choice_per_s"], ".3g"),
         fmt(r["speedup_choice_1thr"], ".1f") + "x", fmt(r["z_numba"], "+.1f"), fmt(r["z_numpy"], "+.1f"),
         fmt(r["z_numpy_choice"], "+.1f"), fmt(r["loadavg"], ".1f")]
        for r in rows
    ]
    print()
    print_table(headers, table)
    print(
        "\ntrials/s of one estimate_acceptance call (validation and preparation included), best of the repeats.\n"
        "numpy = the same sampler vectorised over trials (batches of 2^16, the engine's alias tables);\n"
        "numpy choice = the same with Generator.choice(V, p=law) for every fixed-law draw.\n"
        "x numpy, x choice = numba on 1 thread / the NumPy rate (per core; NumPy is single-threaded).\n"
        f"{top}/1 thr = numba {top}-thread rate / 1-thread rate (same trial count). z = (estimate - exact) /\n"
        "combined standard error. load = 1-min load average when the row finished (2 cores, shared)."
    )

    checks = []
    worst = min(rows, key=lambda r: r["speedup_1thr"])
    checks.append(
        (f"per-core speedup >= {GOAL_SPEEDUP:g}x numpy (alias tables) on every row",
         (f"min {worst['speedup_1thr']:.1f}x ({worst['verifier']}, V={worst['V']:,}, n={worst['n']}), "
          f"max {max(r['speedup_1thr'] for r in rows):.1f}x"),
         worst["speedup_1thr"] >= GOAL_SPEEDUP)
    )
    worst_c = min(rows, key=lambda r: r["speedup_choice_1thr"])
    checks.append(
        (f"per-core speedup >= {GOAL_SPEEDUP:g}x numpy (Generator.choice) on every row",
         (f"min {worst_c['speedup_choice_1thr']:.1f}x ({worst_c['verifier']}, V={worst_c['V']:,}, "
          f"n={worst_c['n']}), max {max(r['speedup_choice_1thr'] for r in rows):.1f}x"),
         worst_c["speedup_choice_1thr"] >= GOAL_SPEEDUP)
    )
    rrs = [r for r in rows if r["verifier"] == "rrs" and r["V"] == 32 and r["n"] == 4]
    if rrs:
        checks.append(
            (f"rrs >= {GOAL_RRS_RATE:.0e} trials/s on one core at V=32, n=4", f"{rrs[0]['numba_1thr_per_s']:.3g}/s",
             rrs[0]["numba_1thr_per_s"] >= GOAL_RRS_RATE)
        )
    zmax = max(max(abs(r["z_numba"]), abs(r["z_numpy"]), abs(r["z_numpy_choice"])) for r in rows)
    checks.append(("|z| <= 5 against the exact acceptance (all samplers)", f"max {zmax:.1f}", zmax <= 5))
    print("\ngoals:")
    for g, value, ok in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {g}: {value}")

    path = write_json(
        "bench_montecarlo.quick" if args.quick else "bench_montecarlo",
        rows,
        args=dict(quick=args.quick, seconds=seconds, repeats=repeats, seed=args.seed, V=list(Vs), n=list(ns)),
        extra=dict(
            goals=[dict(goal=g, value=v, met=bool(ok)) for g, v, ok in checks],
            threading_layer=numba.threading_layer(),
            chunk=mc.CHUNK,
            loadavg_start=loadavg_start,
            loadavg_end=os.getloadavg(),
        ),
    )
    print(f"\nwrote {path.relative_to(path.parent.parent)} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
