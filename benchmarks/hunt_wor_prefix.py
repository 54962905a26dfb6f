"""Counterexample search for the sorted-prefix property of drafts without replacement.

The property (the subset dual's minimum lies on a prefix of the p/q order) is proved (docs/theory/wor_prefix_proof.rst);
this search now guards the implementation. This compares the prefix dual with brute-force enumeration of all 2^V subsets on
random instances and prints a JSON summary; any counterexample is written to
bench-results/wor_prefix_counterexamples.json (keep it as a regression example and report it).

    python benchmarks/hunt_wor_prefix.py [--instances 20000] [--seed 20261122]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from spectheory.solvers import bound_rows, subset_dual_brute


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--max-seconds", type=float, default=1500.0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    concentrations = [0.05, 0.2, 0.5, 1.0, 3.0]
    worst, count, bad, t0 = 0.0, 0, [], time.time()
    while count < args.instances and time.time() - t0 < args.max_seconds:
        V = int(rng.integers(5, 11))
        n = int(rng.integers(2, 7))
        p = rng.dirichlet(np.full(V, rng.choice(concentrations)))
        q = rng.dirichlet(np.full(V, rng.choice(concentrations)))
        if rng.random() < 0.3:
            q = 0.5 * q + 0.5 * p
        if rng.random() < 0.2:
            q[rng.integers(V)] = 0
            q /= q.sum()
        if rng.random() < 0.2:
            p[rng.integers(V)] = 0
            p /= p.sum()
        m = int((q > 0).sum())
        if math.perm(m, min(n, m)) > 300_000:
            continue
        fast = bound_rows(p[None], q[None], [n], "without_replacement")[0, 0]
        slow = subset_dual_brute(p, q, n, "without_replacement").acceptance
        count += 1
        worst = max(worst, abs(fast - slow))
        if abs(fast - slow) > 1e-9:
            bad.append(dict(p=p.tolist(), q=q.tolist(), n=n, prefix=fast, brute=slow))
    summary = dict(instances=count, worst_abs_diff=worst, counterexamples=len(bad), seconds=round(time.time() - t0, 1))
    print(json.dumps(summary))
    if bad:
        os.makedirs("bench-results", exist_ok=True)
        with open("bench-results/wor_prefix_counterexamples.json", "w") as fh:
            json.dump(bad, fh)


if __name__ == "__main__":
    main()
