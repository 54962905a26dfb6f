"""``spectheory mdp``: the optimal drafting policy against SpecDec++'s threshold rule, fixed K and
Leviathan's γ* (a thin shell over :func:`spectheory.solvers.mdp.compare_policies`).

Inputs (exactly one process):

* ``--iid VALUES[:WEIGHTS]`` — e.g. ``0.6,0.9:0.5,0.5`` (weights default uniform);
* ``--markov STATE/STATE/...`` with ``--transition ROWS`` — each hidden state ``VALUES[:WEIGHTS]``,
  rows ``0.9,0.1;0.2,0.8``; ``--initial LAW`` (default stationary), ``--observed`` if the drafter
  sees the state;
* ``--trace FILE`` — recorded acceptance probabilities a_j: ``.npy`` (1-D: one sequence of
  consecutive positions; 2-D: one row per round, NaN-padded at the end) or ``.csv``/``.txt`` (one
  round per line, values separated by commas or spaces; a flat sequence is one line). Fitted with
  :func:`~spectheory.solvers.mdp.fit_trace` (``--trace-model``, ``--bins``, ``--resolution``).

Discretisation is exact for ``--iid``/``--markov`` unless ``--resolution`` or ``--s-floor`` is given;
for traces the values are rounded down (and, for the bracket, up) to the lattice exp(−δ i) and
survivals below ``--s-floor`` (default 1e-4) are floored, and the table reports the optimum of the
rounded-up model as an upper bound.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from ._validation import SpecTheoryValueError


def add_arguments(p) -> None:
    src = p.add_argument_group("acceptance process (exactly one of --iid, --markov, --trace)")
    src.add_argument("--iid", metavar="VALUES[:WEIGHTS]", default=None,
                     help="i.i.d. acceptance, e.g. 0.6,0.9:0.5,0.5 (values : weights; weights default uniform)")
    src.add_argument("--markov", metavar="STATE/STATE/...", default=None,
                     help="Markov-modulated acceptance: one VALUES[:WEIGHTS] per hidden state, separated by '/', "
                     "e.g. 0.9,1:0.3,0.7/0.2,0.6 (needs --transition)")
    src.add_argument("--transition", metavar="ROWS", default=None,
                     help="hidden-state transition matrix for --markov, rows separated by ';', e.g. 0.95,0.05;0.1,0.9")
    src.add_argument("--initial", metavar="LAW", default=None,
                     help="law of the first draft's hidden state for --markov (default: stationary)")
    src.add_argument("--observed", action="store_true", help="--markov: the drafter observes the hidden state")
    src.add_argument("--trace", metavar="FILE", default=None,
                     help="recorded a_j: .npy (1-D sequence, or 2-D one row per round, NaN-padded) or .csv/.txt "
                     "(one round per line)")
    src.add_argument("--trace-model", choices=("markov", "iid", "positional"), default="markov",
                     help="process fitted to --trace (default markov on --bins bins of a)")
    src.add_argument("--bins", default="8", metavar="N", help="Markov states (bins of a) for --trace (default 8)")
    src.add_argument("--resolution", default=None, metavar="DELTA",
                     help="round acceptance values to the lattice exp(-DELTA i) (default 0.02 for --trace, "
                     "exact otherwise)")
    cost = p.add_argument_group("costs (a round with K drafts costs c_draft*K + c0 + c1*K)")
    cost.add_argument("--c-draft", default="0.1", metavar="C",
                      help="cost of one draft step; a comma-separated list sweeps it (default 0.1)")
    cost.add_argument("--c0", default="1", metavar="C", help="target verification cost c_target(0) (default 1)")
    cost.add_argument("--c1", default="0", metavar="C", help="target cost per verified draft (default 0)")
    p.add_argument("--max-k", default="20", metavar="K", help="most drafts per round (default 20)")
    p.add_argument("--s-floor", default=None, metavar="S",
                   help="survival values below S are floored (default 0, i.e. exact; 1e-4 for --trace)")
    p.add_argument("--belief-grid", default=None, metavar="G",
                   help="hidden --markov: posterior grid resolution (default: exact posteriors when there are "
                   "at most 512 per layer, else a grid)")
    p.add_argument("--out", default=None, metavar="DIR", help="write mdp.json and mdp_policy.png there (atomically)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of tables")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal's stderr)")


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------
def _floats(text: str, option: str) -> list[float]:
    parts = [t for t in str(text).replace(" ", "").split(",") if t != ""]
    if not parts:
        raise SpecTheoryValueError(f"{option}: no numbers in {text!r}")
    out = []
    for t in parts:
        try:
            x = float(t)
        except ValueError:
            raise SpecTheoryValueError(f"{option}: expected numbers separated by commas, got {t!r} in {text!r}") from None
        if not math.isfinite(x):
            raise SpecTheoryValueError(f"{option}: expected finite numbers, got {t!r}")
        out.append(x)
    return out


def _number(text: str, option: str) -> float:
    xs = _floats(text, option)
    if len(xs) != 1:
        raise SpecTheoryValueError(f"{option}: expected one number, got {text!r}")
    return xs[0]


def _int(text: str, option: str, minimum: int) -> int:
    try:
        x = int(str(text).strip())
    except ValueError:
        raise SpecTheoryValueError(f"{option}: must be an integer >= {minimum}, got {text!r}") from None
    if x < minimum:
        name = option.lstrip("-").replace("-", "_")
        raise SpecTheoryValueError(f"{option}: {name} must be an integer >= {minimum}, got {x}")
    return x


def _values_weights(spec: str, option: str):
    head, sep, tail = str(spec).partition(":")
    values = _floats(head, option)
    weights = _floats(tail, option) if sep else [1.0 / len(values)] * len(values)
    if len(weights) != len(values):
        raise SpecTheoryValueError(f"{option}: {len(values)} values but {len(weights)} weights in {spec!r}")
    return values, weights


def _matrix(text: str, option: str) -> np.ndarray:
    rows = [r for r in str(text).replace("/", ";").split(";") if r.strip()]
    M = [_floats(r, option) for r in rows]
    if len({len(r) for r in M}) != 1:
        raise SpecTheoryValueError(f"{option}: rows of different lengths in {text!r}")
    return np.array(M)


def load_trace(path: str):
    """Read a trace file: a 1-D array, a 2-D NaN-padded array, or a list of rows (text)."""
    from .io import load_array

    if not os.path.exists(path):
        raise SpecTheoryValueError(f"--trace: file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".csv", ".txt"):
        try:
            with open(path, encoding="utf-8") as fh:
                lines = [ln.strip() for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecTheoryValueError(f"--trace: cannot read {path} ({exc})") from None
        rows = []
        for i, ln in enumerate(lines):
            cells = [c for c in ln.replace(",", " ").split() if c]
            try:
                rows.append(np.array([float(c) for c in cells]))
            except ValueError:
                raise SpecTheoryValueError(f"--trace: line {i + 1} of {path} is not numbers: {ln[:60]!r}") from None
        if not rows:
            raise SpecTheoryValueError(f"--trace: {path} holds no acceptance probabilities")
        return rows if len(rows) > 1 else [rows[0]]
    a = load_array(path, "--trace")
    if a.ndim not in (1, 2):
        raise SpecTheoryValueError(f"--trace: expected a 1-D sequence or a 2-D array (one row per round), got shape {a.shape}")
    return a


def build_process(args):
    """The process, the rounded-up process for the bracket (or None), and the default s_floor."""
    from .solvers import mdp

    given = [o for o, v in (("--iid", args.iid), ("--markov", args.markov), ("--trace", args.trace)) if v is not None]
    if len(given) != 1:
        raise SpecTheoryValueError(
            "process: give exactly one of --iid, --markov, --trace" + (f" (got {', '.join(given)})" if given else "")
        )
    resolution = None
    if args.resolution is not None and str(args.resolution).lower() != "none":
        resolution = _number(args.resolution, "--resolution")
        if not 0 < resolution <= 1:
            raise SpecTheoryValueError(f"--resolution: must lie in (0, 1], got {resolution:g}")
    if args.trace is not None:
        for opt, val in (("--transition", args.transition), ("--initial", args.initial)):
            if val is not None:
                raise SpecTheoryValueError(f"{opt}: only applies to --markov")
        trace = load_trace(args.trace)
        bins = _int(args.bins, "--bins", 1)
        if args.resolution is None:
            resolution = 0.02
        down = mdp.fit_trace(trace, model=args.trace_model, n_bins=bins, resolution=resolution, rounding="down")
        up = mdp.fit_trace(trace, model=args.trace_model, n_bins=bins, resolution=resolution, rounding="up") \
            if resolution is not None else None
        return down, up, 1e-4
    if args.iid is not None:
        if args.transition is not None or args.initial is not None or args.observed:
            raise SpecTheoryValueError("--transition/--initial/--observed: only apply to --markov")
        values, weights = _values_weights(args.iid, "--iid")
        try:
            proc = mdp.iid_process(values, weights)
        except SpecTheoryValueError as exc:
            raise SpecTheoryValueError(f"--iid: {exc}") from None
    else:
        if args.transition is None:
            raise SpecTheoryValueError("--markov: needs --transition (the hidden-state transition matrix)")
        states = [s for s in str(args.markov).split("/") if s.strip()]
        specs = [_values_weights(s, "--markov") for s in states]
        union = sorted({v for vals, _ in specs for v in vals})
        E = np.zeros((len(specs), len(union)))
        for z, (vals, ws) in enumerate(specs):
            for v, w in zip(vals, ws):
                E[z, union.index(v)] += w
        P = _matrix(args.transition, "--transition")
        if P.shape != (len(specs), len(specs)):
            raise SpecTheoryValueError(
                f"--transition: expected a {len(specs)}x{len(specs)} matrix for {len(specs)} hidden states, got {P.shape[0]}x{P.shape[1]}"
            )
        init = _floats(args.initial, "--initial") if args.initial is not None else None
        try:
            proc = mdp.markov_process(union, E, P, init, observed=args.observed)
        except SpecTheoryValueError as exc:
            msg = str(exc)
            for name, opt in (("transition:", "--transition:"), ("initial:", "--initial:"), ("emission:", "--markov:"), ("values:", "--markov:")):
                if msg.startswith(name):
                    msg = opt + msg[len(name):]
            raise SpecTheoryValueError(msg) from None
    if resolution is not None:
        return mdp.quantise(proc, resolution, "down"), mdp.quantise(proc, resolution, "up"), 0.0
    return proc, None, 0.0


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def _table(header, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = []
    for i, cells in enumerate([header, *rows]):
        parts = [str(c).ljust(w) if j in (0, len(cells) - 1) else str(c).rjust(w)
                 for j, (c, w) in enumerate(zip(cells, widths))]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args) -> int:
    from .solvers import mdp

    c_drafts = _floats(args.c_draft, "--c-draft")
    c0 = _number(args.c0, "--c0")
    c1 = _number(args.c1, "--c1")
    costs_list = []
    for cd in c_drafts:
        try:
            costs_list.append(mdp.Costs(cd, c0, c1))
        except SpecTheoryValueError as exc:
            raise SpecTheoryValueError(f"{exc} (--c-draft/--c0/--c1)") from None
    max_k = _int(args.max_k, "--max-k", 1)
    belief_grid = _int(args.belief_grid, "--belief-grid", 1) if args.belief_grid is not None else None
    process, upper, default_floor = build_process(args)
    s_floor = default_floor if args.s_floor is None else _number(args.s_floor, "--s-floor")
    if not 0 <= s_floor < 1:
        raise SpecTheoryValueError(f"--s-floor: must lie in [0, 1), got {s_floor:g}")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise SpecTheoryValueError(f"--out: not a directory: {args.out}")

    progress = not args.no_progress and not args.json and sys.stderr.isatty()
    from tqdm.auto import tqdm

    belief = "grid" if belief_grid is not None else "auto"
    model = mdp.compile_model(process, max_k, s_floor=s_floor, belief=belief, belief_grid=belief_grid)
    obs_model = model if model.belief == "observed" else mdp.compile_model(process.as_observed(), max_k, s_floor=s_floor)
    bracket = upper is not None or s_floor > 0
    if bracket:
        up_proc = upper if upper is not None else process
        up_model = mdp.compile_model(up_proc, max_k, s_floor=s_floor, floor_mode="up", belief=belief,
                                     belief_grid=belief_grid)
    results = []
    for costs in tqdm(costs_list, desc="mdp", disable=not progress, leave=False, file=sys.stderr):
        cmp = mdp.compare_policies(process, costs, max_k=max_k, s_floor=s_floor, belief=belief,
                                   belief_grid=belief_grid, model=model, observed_model=obs_model)
        upper_speedup = cmp.optimal.upper_bound * costs.c0
        if bracket:
            up = mdp.optimal_policy(up_proc, costs, max_k=max_k, model=up_model)
            upper_speedup = max(upper_speedup, up.upper_bound * costs.c0)
        results.append((cmp, upper_speedup))

    doc = {
        "process": process.describe(),
        "settings": {"max_k": max_k, "s_floor": s_floor, "belief_grid": belief_grid, "c0": c0, "c1": c1,
                     "c_draft": c_drafts, "trace": args.trace, "resolution": args.resolution},
        "model": {"n_states": model.n_states, "n_reachable": model.n_reachable, "n_transitions": model.n_transitions,
                  "discretisation": model.discretisation(), "exact": model.exact and upper is None},
        "results": [dict(cmp.as_dict(), upper_bound_speedup=ub) for cmp, ub in results],
    }
    paths = {}
    if args.out is not None:
        from .io import write_json_atomic

        os.makedirs(args.out, exist_ok=True)
        png = os.path.join(args.out, "mdp_policy.png")
        mdp.plot_policy([cmp for cmp, _ in results], png,
                        title=f"optimal drafting policy — {process.label}"[:110])
        paths = {"json": os.path.join(args.out, "mdp.json"), "png": png}
        doc["files"] = paths
        write_json_atomic(paths["json"], doc)
    if args.json:
        import json

        print(json.dumps(doc, indent=2, default=_json_default))
        return 0

    print(f"spectheory mdp: {process.label}")
    print(f"max_k = {max_k}; model: {model.n_states:,} states ({model.discretisation()})")
    print("speedup = tokens per unit cost × c0 (against one target call per token)")
    for cmp, ub in results:
        c = cmp.costs
        print()
        print(f"c_draft = {c.c_draft:g}, c0 = {c.c0:g}, c1 = {c.c1:g}:  SpecDec++ Δ=0 value h0 = {cmp.h_delta0:.4g}; "
              f"stopping is optimal whenever 1 - S_k > {cmp.sufficient_h:.4g}")
        rows = [[r.name, f"{r.speedup:.5f}", f"{r.tokens_per_round:.4f}", f"{r.drafts_per_round:.3f}", r.detail]
                for r in cmp.rows]
        print(_table(["policy", "speedup", "tokens/round", "drafts/round", "detail"], rows))
        if abs(ub - cmp.optimal.speedup) > 1e-9 * ub:
            print(f"optimal speedup of the process lies in [{cmp.optimal.speedup:.5f}, {ub:.5f}] (discretisation bracket)")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
