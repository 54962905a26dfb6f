"""``spectheory interval``: intervals of α* from top-k log-probabilities (a thin shell over
:func:`spectheory.read_topk` and :func:`spectheory.optimal_acceptance_interval`)."""

from __future__ import annotations

import json

import numpy as np

from ._validation import SpecTheoryValueError


def add_arguments(p) -> None:
    p.add_argument("--target", required=True, metavar="FILE",
                   help="target top-k log-probs: vLLM/SGLang/OpenAI JSON, .pt, .npy (T, V) logits, .npz ids/logprobs")
    p.add_argument("--draft", required=True, metavar="FILE", help="draft top-k log-probs, same formats")
    p.add_argument("--vocab-size", type=int, default=None, metavar="V",
                   help="vocabulary size (required unless a file is a full-vocabulary array)")
    p.add_argument("-n", type=int, nargs="+", default=[1, 2, 4], metavar="N", help="draft counts (default 1 2 4)")
    p.add_argument("--sampling", default="iid", help="draft scheme (default iid)")
    p.add_argument("--k", type=int, default=None, help="keep the top k of full-vocabulary inputs")
    p.add_argument("--which", choices=("output", "prompt"), default="output", help="vLLM/SGLang: generated or prompt log-probs")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")


def run(args) -> int:
    import spectheory as st

    tgt = st.read_topk(args.target, k=args.k, which=args.which)
    drf = st.read_topk(args.draft, k=args.k, which=args.which)
    V = args.vocab_size or tgt.vocab_size or drf.vocab_size
    if V is None:
        raise SpecTheoryValueError("--vocab-size: required for top-k inputs")
    if len(tgt) != len(drf):
        raise SpecTheoryValueError(f"--draft: {len(drf)} positions, the target has {len(tgt)}")
    rows = []
    for n in args.n:
        r = st.optimal_acceptance_interval(tgt.ids, tgt.logprobs, drf.ids, drf.logprobs, n,
                                           sampling=args.sampling, vocab_size=V)
        rows.append({"sampling": args.sampling, "n": n, "positions": len(tgt),
                     "mean_lower": float(np.mean(r.lower)), "mean_upper": float(np.mean(r.upper)),
                     "tight_fraction": float(np.mean(r.tight))})
    if args.json:
        print(json.dumps({"vocab_size": V, "rows": rows}))
        return 0
    print(f"{'sampling':<20}{'n':>4}{'positions':>10}{'mean lower':>12}{'mean upper':>12}{'tight':>7}")
    for row in rows:
        print(f"{row['sampling']:<20}{row['n']:>4}{row['positions']:>10}{row['mean_lower']:>12.6f}"
              f"{row['mean_upper']:>12.6f}{row['tight_fraction']:>7.2f}")
    return 0
