"""``st.audit``: time to audit a rule exhaustively, and to find a counterexample for broken rules.

1. **Exhaustive audit at V = 4, n = 3** of typical rules on one random pair: the package's RRS
   (i.i.d. drafts) and RRS without replacement, given as verifier objects, and a hand-written RRS
   against the documented interface. Baseline in the same run: the package's own exact output law
   of the same verifier (``spectheory.verifiers.exact_output_law``, which enumerates the same draft
   tuples and branches through the verifier's oracle, without the audit's symbolic uniforms and
   interface checks).
2. **Counterexample search** (``max_V=4``, 200 generated cases, derandomised) for broken variants of
   speculative sampling / RRS — a dropped residual update, a wrong normaliser, a clipped ratio, a
   float32 uniform — and for the public defects of the gallery example (RRS skipping repeats,
   block verification without the clip). Baseline: the same search on the corrected rule (all
   200 cases pass; refuting also shrinks the counterexample, which is most of its time).

    python benchmarks/bench_audit.py            # full
    python benchmarks/bench_audit.py --quick    # fewer repeats and cases

Rows go to bench-results/bench_audit.json.
"""

from __future__ import annotations

import argparse

import numpy as np

import spectheory as st
from spectheory.verifiers import exact_output_law

from _common import fmt, median, print_table, time_call, write_json


# ------------------------------------------------------------------------------ rules
def sd(p, q, drafts, rng, *, dropped=False, unnormalised=False, clipped=False, float32=False):
    x = int(drafts[0])
    ratio = p[x] / q[x]
    if clipped:
        ratio = max(min(ratio, 1.0), 0.01)  # ratio clipped into [0.01, 1]
    u = rng.uniform(np.float32) if float32 else rng.uniform()
    if (u <= ratio) if float32 else (u < ratio):
        return x
    if dropped:
        return rng.categorical(p)  # no residual: the output still uses p
    res = np.maximum(p - q, 0.0)
    if unnormalised:  # a normaliser applied to the wrong vector: (p - q)+ / Σ p... mixed with p
        res = res + (1.0 - res.sum()) * p
    return rng.categorical(res if res.sum() > 0 else p)


def rrs(p, q, drafts, rng, skip_repeats=False):
    R, seen = p, set()
    for x in drafts:
        x = int(x)
        if skip_repeats and x in seen:
            continue
        seen.add(x)
        if rng.uniform() < R[x] / q[x]:
            return x
        res = np.maximum(R - q, 0.0)
        R = res / res.sum() if res.sum() > 0 else R
    return rng.categorical(R)


def block(p, q, drafts, rng, clip=True):
    gamma = q.shape[0]
    b = [1.0]
    for i in range(gamma):
        w = b[-1] * p[i, drafts[i]] / q[i, drafts[i]]
        b.append(min(w, 1.0) if clip else w)
    for i in range(gamma, 0, -1):
        res = np.maximum(b[i] * p[i] - q[i], 0) if i < gamma else None
        if i == gamma:
            h = min(b[i], 1.0)
        else:
            r = res.sum()
            h = 1.0 if r + 1 - b[i] <= 0 else min(1.0, r / (r + 1 - b[i]))
        if rng.bernoulli(h):
            tail = p[gamma] if i == gamma else res
            return tuple(int(t) for t in drafts[:i]) + (rng.categorical(tail if tail.sum() > 0 else p[i]),)
    res0 = np.maximum(p[0] - q[0], 0)
    return (rng.categorical(res0 if res0.sum() > 0 else p[0]),)


BROKEN = [  # (name, rule, corrected rule, sampling, n)
    ("SD, dropped residual", lambda *a: sd(*a, dropped=True), sd, "iid", 1),
    ("SD, wrong normaliser", lambda *a: sd(*a, unnormalised=True), sd, "iid", 1),
    ("SD, clipped ratio", lambda *a: sd(*a, clipped=True), sd, "iid", 1),
    ("SD, float32 uniform", lambda *a: sd(*a, float32=True), sd, "iid", 1),
    ("RRS skipping repeats", lambda *a: rrs(*a, skip_repeats=True), rrs, "iid", 3),
    ("block verification, no clip", lambda *a: block(*a, clip=False), block, "chain", 2),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    examples = 50 if args.quick else 200
    rng = np.random.default_rng(4)
    p, q = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(4))
    st.audit(st.verifier("sd"), n=1, p=p, q=q)  # warm-up (imports, hypothesis)

    rows, t1, t2 = [], [], []
    for name, rule, sampling, baseline in (
        ("rrs (verifier object)", st.verifier("rrs"), "iid", st.verifier("rrs")),
        ("rrs_wor (verifier object)", st.verifier("rrs_wor"), "without_replacement", st.verifier("rrs_wor")),
        ("hand-written RRS", rrs, "iid", st.verifier("rrs")),
    ):
        t = median(time_call(lambda: st.audit(rule, sampling=sampling, n=3, p=p, q=q), repeats))
        r = st.audit(rule, sampling=sampling, n=3, p=p, q=q)
        b = median(time_call(lambda: exact_output_law(baseline, p, q, 3), repeats))
        rows.append(dict(table="exhaustive", rule=name, V=4, n=3, audit_s=t, branches=r.branches,
                         exact_law_s=b, x_exact_law=t / b, lossless=r.lossless))
        t1.append([name, "4", "3", str(r.branches), fmt(t * 1e3, ".3g"), fmt(b * 1e3, ".3g"),
                   fmt(t / b, ".1f") + "x", str(r.lossless)])

    for name, bad, good, sampling, n in BROKEN:
        kw = dict(sampling=sampling, n=n, max_V=4, max_examples=examples)
        with np.errstate(all="ignore"):
            t = median(time_call(lambda: st.audit(bad, **kw), repeats))
            r = st.audit(bad, **kw)
            g = median(time_call(lambda: st.audit(good, **kw), 1))
            ok = st.audit(good, **kw)
        cp, cq, cn = r.counterexample if r.counterexample is not None else (np.zeros(0), None, None)
        V = cp.shape[-1] if cp.size else None
        rows.append(dict(table="search", rule=name, sampling=sampling, n=n, find_s=t, counterexample_V=V,
                         counterexample_n=cn, tv=r.tv, exceeds_bound=r.exceeds_bound, corrected_s=g,
                         corrected_lossless=ok.lossless, corrected_cases=ok.cases))
        t2.append([name, sampling, fmt(t, ".3g"), "-" if V is None else f"V={V}, n={cn}", fmt(r.tv, ".2g"),
                   str(r.exceeds_bound), fmt(g, ".3g"), str(ok.lossless)])

    print("1. exhaustive audit of one pair, V = 4, n = 3 (ms); baseline: exact_output_law of the same verifier")
    print_table(["rule", "V", "n", "branches", "audit ms", "exact law ms", "× exact law", "lossless"], t1)
    print(f"\n2. counterexample search (max_V = 4, {examples} cases): time to refute (s), "
          "and the corrected rule's full search (s)")
    print_table(["rule", "scheme", "find s", "counterexample", "TV", "> bound", "corrected s", "corrected lossless"], t2)
    path = write_json("bench_audit" + (".quick" if args.quick else ""), rows, args=vars(args))
    print(f"\nrows written to {path}")


if __name__ == "__main__":
    main()
