"""Intervals from top-k log-probs against the exact full-vocabulary bound, per position.

    python benchmarks/bench_intervals.py [--V 151936] [--positions 32] [--n 1 2 4 8]

For each k (5, 20, 100) and scheme (iid, without_replacement): ms per position of
``st.optimal_acceptance_interval`` on the top-k of synthetic (Zipf-like) target/draft logits, the
exact ``st.optimal_acceptance`` on the full vocabulary in the same run, their ratio, and the mean
interval width (and whether the exact value lay inside every interval).
"""

import argparse
import time

import numpy as np

import spectheory as st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--V", type=int, default=151936)
    ap.add_argument("--positions", type=int, default=32)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    V, B = args.V, args.positions
    base = -1.1 * np.log(np.arange(1, V + 1))
    lt = base[rng.permuted(np.tile(np.arange(V), (B, 1)), axis=1) % V] + rng.normal(0, 1.0, (B, V))
    ld = 0.8 * lt + rng.normal(0, 1.0, (B, V))
    p, q = st.from_logits(lt), st.from_logits(ld)
    print(f"V={V} positions={B}")
    print(f"{'scheme':<20}{'n':>3}{'k':>5}{'interval ms/pos':>17}{'exact ms/pos':>14}{'ratio':>8}{'width':>9}{'inside':>8}")
    for sampling in ("iid", "without_replacement"):
        for n in args.n:
            t0 = time.perf_counter()
            exact = np.asarray(st.optimal_acceptance(p, q, n, sampling))
            t_exact = (time.perf_counter() - t0) / B * 1e3
            for k in (5, 20, 100):
                tg, dr = st.read_topk(np.log(p), k=k), st.read_topk(np.log(q), k=k)
                t0 = time.perf_counter()
                r = st.optimal_acceptance_interval(tg.ids, tg.logprobs, dr.ids, dr.logprobs, n,
                                                   sampling=sampling, vocab_size=V)
                t_int = (time.perf_counter() - t0) / B * 1e3
                inside = bool(np.all((r.lower <= exact + 1e-9) & (exact <= r.upper + 1e-9)))
                print(f"{sampling:<20}{n:>3}{k:>5}{t_int:>17.2f}{t_exact:>14.2f}{t_int / t_exact:>8.2f}"
                      f"{np.mean(r.upper - r.lower):>9.4f}{str(inside):>8}")


if __name__ == "__main__":
    main()
