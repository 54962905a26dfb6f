"""Command line: a thin shell over the public API (``spectheory --help``).

Adding a subcommand: write ``_add_NAME(subparsers)`` that builds its parser and sets
``func=_run_NAME``, write ``_run_NAME(args) -> int``, and list ``_add_NAME`` in :data:`_COMMANDS`.
A user error anywhere (any :class:`ValueError`, including :class:`~spectheory.SpecTheoryValueError`,
or an :class:`OSError`) is printed as one line ``spectheory: error: ...`` on stderr and the exit
status is 2, as for argparse's own usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import numpy as np

PROG = "spectheory"

#: Draft schemes ``bound`` reports when ``--sampling`` is not given (``hub`` only at n = 2).
DEFAULT_SAMPLINGS = ("iid", "without_replacement", "greedy", "hub")
ALL_SAMPLINGS = ("iid", "without_replacement", "greedy", "hub", "independent")
METHODS = ("auto", "dual", "lp", "brute")


class CLIError(ValueError):
    """A user error detected by the command line itself."""


#: Set this environment variable to 1 to see the traceback of an internal error (exit status 1).
TRACEBACK_ENV = "SPECTHEORY_TRACEBACK"


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``spectheory: error: ...`` (no usage
    block), with exit status 2; ``--help`` still prints the full usage."""

    def error(self, message):
        print(f"{PROG}: error: {' '.join(message.split())} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def error_line(exc: BaseException) -> str:
    """The one-line message for a user error: the exception's text, or for an :class:`OSError`
    without one of ours ``FILE: reason`` (not ``[Errno 21] ...``)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        message = f"{where}: {exc.strerror}" if where != "" else exc.strerror
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())


# --------------------------------------------------------------------------- shared helpers


#: Most draft counts one -n list may name (a range like 1-100000000 is refused before it is expanded).
MAX_N_VALUES = 4096


def parse_n_list(tokens, *, option: str = "-n") -> list[int]:
    """``["1", "2", "4"]``, ``["1-8"]`` or ``["1,2,4"]`` → sorted distinct draft counts, each >= 1;
    at most ``MAX_N_VALUES`` of them."""
    out: list[int] = []
    for token in tokens:
        for part in str(token).split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(\d+)-(\d+)", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo < 1:
                    raise CLIError(f"{option}: must be an integer >= 1, got {lo}")
                if hi < lo:
                    raise CLIError(f"{option}: empty range {part!r} (write LOW-HIGH with LOW <= HIGH)")
                if hi - lo + 1 + len(out) > MAX_N_VALUES:
                    raise CLIError(
                        f"{option}: at most {MAX_N_VALUES} draft counts in one call, got the range {part} "
                        f"({hi - lo + 1:,} values)"
                    )
                out.extend(range(lo, hi + 1))
                continue
            try:
                value = int(part)
            except ValueError:
                raise CLIError(
                    f"{option}: expected integers or ranges like 1-8, got {part!r}"
                ) from None
            if value < 1:
                raise CLIError(f"{option}: must be an integer >= 1, got {value}")
            out.append(value)
            if len(out) > MAX_N_VALUES:
                raise CLIError(f"{option}: at most {MAX_N_VALUES} draft counts in one call")
    if not out:
        raise CLIError(f"{option}: no draft count given")
    return sorted(set(out))


def _check_processing(args) -> None:
    """Validate --temperature/--top-k/--top-p and refuse them without --logits."""
    given = [
        opt
        for opt, value in (("--temperature", args.temperature), ("--top-k", args.top_k), ("--top-p", args.top_p))
        if value is not None
    ]
    if given and not args.logits:
        raise CLIError(f"{given[0]}: only applies to logits; add --logits (inputs are read as probabilities)")
    if args.temperature is not None and (not math.isfinite(args.temperature) or args.temperature < 0):
        raise CLIError(f"--temperature: must be a finite number >= 0, got {args.temperature:g}")
    if args.top_k is not None and args.top_k < 1:
        raise CLIError(f"--top-k: must be an integer >= 1, got {args.top_k}")
    if args.top_p is not None and not (0 < args.top_p <= 1):
        raise CLIError(f"--top-p: must lie in (0, 1], got {args.top_p:g}")


def _to_probabilities(array, option: str, args):
    """Logits through st.from_logits (with --logits) or validated probabilities, as float64,
    with every row over the last axis a distribution."""
    from ._validation import SpecTheoryValueError, check_distribution
    from .logits import from_logits

    a = np.asarray(array)
    if a.ndim == 0:
        raise CLIError(f"{option}: expected an array of shape (V,) or (B, V), got a scalar")
    if args.logits:
        temperature = 1.0 if args.temperature is None else args.temperature
        try:
            a = from_logits(a, temperature=temperature, top_k=args.top_k, top_p=args.top_p)
        except SpecTheoryValueError as exc:
            raise CLIError(f"{option}: {exc}") from None
    flat = check_distribution(a.reshape(-1, a.shape[-1]), option)
    return flat.reshape(a.shape)


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """--target/--draft and the logit processing options shared by the bound-like subcommands."""
    parser.add_argument(
        "--target", required=True, metavar="P",
        help="target distribution p: .npy, .npz, .txt/.csv (one row per position) or .safetensors "
        "(FILE:KEY picks a tensor); shape (V,) or (B, V)",
    )
    parser.add_argument(
        "--draft", required=True, metavar="Q",
        help="draft distribution q, same format and shape as --target; for --sampling independent "
        "one row per drafter, shape (n, V) or (B, n, V)",
    )
    parser.add_argument("--logits", action="store_true", help="the inputs are logits: apply softmax (and the options below) to both")
    parser.add_argument("--temperature", type=float, default=None, metavar="T", help="temperature for --logits (default 1.0; 0 = argmax)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K", help="top-k filtering for --logits")
    parser.add_argument("--top-p", type=float, default=None, metavar="P", help="top-p (nucleus) filtering for --logits")


# --------------------------------------------------------------------------- bound


def _add_bound(subparsers) -> None:
    p = subparsers.add_parser(
        "bound",
        help="exact optimal multi-draft acceptance for a target/draft pair",
        description="Exact optimal acceptance rate α*(p, q, n) of n drafts for each draft scheme. "
        "With several positions (B, V) the table shows the mean over positions and its min and max.",
    )
    _add_input_arguments(p)
    p.add_argument(
        "-n", nargs="+", default=None, metavar="N",
        help="draft counts: '-n 1 2 4', '-n 1-8' or '-n 1,2,4' (default 1 2 4 8; 2 when hub is asked "
        "for; for independent: the number of drafter rows)",
    )
    p.add_argument(
        "--sampling", nargs="+", choices=ALL_SAMPLINGS, default=None, metavar="SCHEME",
        help="draft schemes: " + ", ".join(ALL_SAMPLINGS) + " (default: iid without_replacement greedy, "
        "and hub at n = 2)",
    )
    p.add_argument("--method", choices=METHODS, default="auto", help="solver (default auto)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.set_defaults(func=_run_bound)


def _load_pair(args, independent: bool):
    """Read, validate and batch --target and --draft: p as (B, V); q as (B, V) or (B, rows, V)."""
    from .io import load_array

    p = _to_probabilities(load_array(args.target, "--target"), "--target", args)
    q = _to_probabilities(load_array(args.draft, "--draft"), "--draft", args)
    if p.ndim not in (1, 2):
        raise CLIError(f"--target: expected shape (V,) or (B, V), got {p.shape}")
    p2 = p[None] if p.ndim == 1 else p
    B, V = p2.shape
    if independent:
        if q.ndim == 2:
            q2 = q[None]
        elif q.ndim == 3:
            q2 = q
        else:
            raise CLIError(
                f"--draft: sampling 'independent' needs one row per drafter, shape (n, V) or (B, n, V); got {q.shape}"
            )
    else:
        if q.ndim not in (1, 2):
            raise CLIError(f"--draft: expected shape (V,) or (B, V), got {q.shape}")
        q2 = q[None] if q.ndim == 1 else q
    if q2.shape[-1] != V:
        raise CLIError(
            f"--target and --draft: vocabulary sizes differ (--target has V = {V}, --draft has V = {q2.shape[-1]})"
        )
    if q2.shape[0] != B:
        raise CLIError(
            f"--target and --draft: numbers of positions differ (--target has {B}, --draft has {q2.shape[0]})"
        )
    return p2, q2


def _samplings(args) -> list[str]:
    """The requested draft schemes (checked before any file is read)."""
    if args.sampling is None:
        return list(DEFAULT_SAMPLINGS)
    samplings = list(dict.fromkeys(args.sampling))
    if "independent" in samplings and len(samplings) > 1:
        others = ", ".join(s for s in samplings if s != "independent")
        raise CLIError(
            "--sampling: 'independent' reads --draft as one row per drafter and cannot be combined "
            f"with {others}; run them separately"
        )
    return samplings


def _plan(args, samplings: list[str], drafter_rows: int | None):
    """The draft counts and the (sampling, n) pairs to compute, after checking hub and independent."""
    if args.n is None:
        if drafter_rows is not None:
            ns = [drafter_rows]
        elif args.sampling is not None and "hub" in samplings:
            ns = [2]
        else:
            ns = [1, 2, 4, 8]
    else:
        ns = parse_n_list(args.n)
    if samplings == ["independent"]:
        wrong = [n for n in ns if n != drafter_rows]
        if wrong:
            raise CLIError(
                f"-n: --draft holds {drafter_rows} drafter rows, so sampling 'independent' needs n = "
                f"{drafter_rows} (got {', '.join(map(str, wrong))})"
            )
    if args.sampling is not None and "hub" in samplings:
        wrong = [n for n in ns if n != 2]
        if wrong:
            raise CLIError(
                f"-n: sampling 'hub' (SpecHub) is defined for n = 2 only (got {', '.join(map(str, wrong))})"
            )
    return ns, [(s, n) for s in samplings for n in ns if not (s == "hub" and n != 2)]


def _run_bound(args) -> int:
    import spectheory as st

    _check_processing(args)
    samplings = _samplings(args)
    if args.n is not None:
        parse_n_list(args.n)  # a bad -n fails before any file is read
    independent = samplings == ["independent"]
    p, q = _load_pair(args, independent)
    B, V = p.shape
    ns, plan = _plan(args, samplings, q.shape[1] if independent else None)

    results = []
    for sampling, n in plan:
        values = np.atleast_1d(np.asarray(st.optimal_acceptance(p, q, n, sampling=sampling, method=args.method), dtype=float))
        row = {"sampling": sampling, "n": n, "bound": float(values.mean())}
        if B > 1:
            row["min"] = float(values.min())
            row["max"] = float(values.max())
            row["per_position"] = [float(v) for v in values]
        results.append(row)

    if args.json:
        settings = {
            "target": args.target,
            "draft": args.draft,
            "logits": bool(args.logits),
            "temperature": (1.0 if args.temperature is None else args.temperature) if args.logits else None,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "method": args.method,
            "n": ns,
            "sampling": samplings,
        }
        print(json.dumps({"V": V, "positions": B, "results": results, "settings": settings}, indent=2))
        return 0

    where = f"V = {V}, {B} position{'s' if B != 1 else ''}"
    if B > 1:
        where += "; bound = mean over positions"
    print(f"optimal acceptance  ({where})")
    header = ["sampling", "n", "bound"] + (["min", "max"] if B > 1 else [])
    rows = [
        [r["sampling"], str(r["n"]), f"{r['bound']:.6f}"] + ([f"{r['min']:.6f}", f"{r['max']:.6f}"] if B > 1 else [])
        for r in results
    ]
    print(_format_table(header, rows))
    return 0


def _format_table(header, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = []
    for i, cells in enumerate([header, *rows]):
        parts = [
            str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in enumerate(zip(cells, widths))
        ]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- compare

VERIFIER_NAMES = ("sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy", "optimal")


def _add_compare(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="every verifier's exact acceptance against the optimal acceptance of its draft scheme",
        description="For each n: each verifier's exact acceptance, the optimal acceptance α* of the draft "
        "scheme it uses, and the gap. With several positions (B, V) the values are means over positions. "
        "rrs_wor beyond its exact limit (n > 2, large support) is an estimate, shown with ± its standard "
        "error. Also writes a PNG plot of acceptance against n.",
    )
    _add_input_arguments(p)
    p.add_argument("-n", nargs="+", default=None, metavar="N", help="draft counts: '-n 1 2 4 8' (default), '-n 1-8' or '-n 1,2,4'")
    p.add_argument(
        "--verifiers", nargs="+", choices=VERIFIER_NAMES, default=None, metavar="NAME",
        help="verifiers to compare: " + ", ".join(VERIFIER_NAMES) + " (default: all; sd is shown at n = 1 "
        "and spechub at n = 2 only; optimal adds rows for iid and without_replacement)",
    )
    p.add_argument("--plot", default="compare.png", metavar="PNG", help="where to write the plot (default compare.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument("--csv", default=None, metavar="CSV", help="also write the table as CSV")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.set_defaults(func=_run_compare)


def _run_compare(args) -> int:
    from .compare import DEFAULT_VERIFIERS, compare, plot_comparison, rows_as_dicts
    from .io import write_csv_atomic

    _check_processing(args)
    ns = parse_n_list(args.n) if args.n is not None else [1, 2, 4, 8]
    if not args.no_plot and not str(args.plot).lower().endswith(".png"):
        raise CLIError(f"--plot: expected a .png path, got {args.plot!r}")
    from .io import check_output_file

    if args.csv:
        check_output_file(args.csv, "--csv")
    if not args.no_plot:
        check_output_file(args.plot, "--plot")
    p, q = _load_pair(args, independent=False)
    B, V = p.shape
    names = tuple(args.verifiers) if args.verifiers else DEFAULT_VERIFIERS
    rows = compare(p, q, ns, names, progress=sys.stderr.isatty() and not args.json)
    dicts = rows_as_dicts(rows)
    if args.csv:
        write_csv_atomic(args.csv, dicts)
    if not args.no_plot:
        plot_comparison(rows, args.plot, title=f"verifiers vs optimal acceptance (V = {V}, {B} position{'s' if B != 1 else ''})")
    if args.json:
        out = {
            "V": V,
            "positions": B,
            "rows": dicts,
            "plot": None if args.no_plot else args.plot,
            "settings": {"target": args.target, "draft": args.draft, "logits": bool(args.logits),
                         "temperature": (1.0 if args.temperature is None else args.temperature) if args.logits else None,
                         "top_k": args.top_k, "top_p": args.top_p, "n": ns, "verifiers": list(names)},
        }
        print(json.dumps(out, indent=2))
        return 0
    where = f"V = {V}, {B} position{'s' if B != 1 else ''}" + ("; means over positions" if B > 1 else "")
    print(f"verifiers against the optimal acceptance of their draft scheme  ({where})")
    table = []
    for r in rows:
        acc = f"{r.acceptance:.6f}" if r.exact else f"{r.acceptance:.4f} ± {r.stderr:.1g}"
        gap = 0.0 if abs(r.gap) < 5e-13 else r.gap  # rounding noise, not a negative gap
        table.append([r.verifier, r.sampling, str(r.n), acc, f"{r.bound:.6f}", f"{gap:.6f}"])
    print(_format_table(["verifier", "draft scheme", "n", "acceptance", "optimal", "gap"], table))
    if any(not r.exact for r in rows):
        print("± : estimate with its standard error (rrs_wor, n > 2 beyond the exact recursion's limit)")
    if not args.no_plot:
        print(f"plot: {args.plot}")
    if args.csv:
        print(f"csv: {args.csv}")
    return 0


# --------------------------------------------------------------------------- simulate


def _parse_int(text, option: str, minimum: int) -> int:
    """An integer option parsed here (not by argparse) so that a bad value is a one-line error."""
    try:
        value = int(str(text).strip().replace("_", ""))
    except ValueError:
        raise CLIError(f"{option}: must be an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise CLIError(f"{option}: must be an integer >= {minimum}, got {value}")
    return value


def _add_simulate(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="Monte Carlo: multi-round decoding of Markov models, or one verifier's acceptance",
        description="Monte Carlo simulations (numba). 'decoding': multi-round speculative decoding with "
        "Markov target/draft models given as transition matrices. 'acceptance': one verification step "
        "of n drafts, estimated acceptance with its standard error.",
    )
    modes = p.add_subparsers(dest="mode", metavar="MODE")
    modes.required = True

    d = modes.add_parser(
        "decoding",
        help="multi-round speculative decoding of Markov target/draft models",
        description="Speculative decoding of a Markov target model with a Markov draft model: each "
        "round drafts a chain from the current last token, verifies it (token-by-token or block "
        "verification) and emits the accepted drafts plus one token, until --tokens tokens. Reports "
        "tokens per round, per-position acceptance and the tokens-per-round histogram.",
    )
    d.add_argument("--target", required=True, metavar="T",
                   help="target transition matrix, shape (V, V), row c = next-token law after token c "
                   "(.npy, .npz, .txt/.csv, .safetensors)")
    d.add_argument("--draft", required=True, metavar="Q", help="draft transition matrix, same format and shape")
    d.add_argument("--policy", default="fixed:4", metavar="POLICY",
                   help="draft length: fixed:K, or threshold:H[:MIN_K:MAX_K] (SpecDec++: stop drafting "
                   "when 1 - prod P(accept) > H; default caps 1 and 20); default fixed:4")
    d.add_argument("--verifier", default="token", metavar="{token,block}",
                   help="token-by-token or block verification (default token)")
    d.add_argument("--tokens", default="100000", metavar="N", help="tokens to generate (default 100000)")
    d.add_argument("--seed", default="0", metavar="S", help="random seed, an integer >= 0 (default 0)")
    d.add_argument("--initial", default="0", metavar="TOKEN", help="the prompt token decoding starts from (default 0)")
    d.add_argument("--sequence", action="store_true", help="with --json: include the generated tokens")
    d.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown on a terminal's stderr)")
    d.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    d.set_defaults(func=_run_simulate)

    a = modes.add_parser(
        "acceptance",
        help="Monte Carlo acceptance of one multi-draft verifier",
        description="Estimate a verifier's acceptance P(Y is one of the n drafts) by simulating its "
        "draft scheme and sampler (spectheory.simulations.montecarlo.estimate_acceptance).",
    )
    a.add_argument("--target", required=True, metavar="P", help="target distribution p, shape (V,) (.npy, .npz, .txt/.csv, .safetensors)")
    a.add_argument("--draft", required=True, metavar="Q", help="draft distribution q, same format")
    a.add_argument("-n", default="2", metavar="N", help="number of drafts (default 2)")
    a.add_argument("--verifier", default="rrs", metavar="NAME", help="verifier, e.g. rrs, rrs_wor, kseq, spechub (default rrs)")
    a.add_argument("--trials", default="100000", metavar="N", help="Monte Carlo trials (default 100000)")
    a.add_argument("--seed", default="0", metavar="S", help="random seed, an integer >= 0 (default 0)")
    a.add_argument("--json", action="store_true", help="print a JSON object instead of a line")
    a.set_defaults(func=_run_simulate)


def _run_simulate(args) -> int:
    if args.mode == "decoding":
        return _run_simulate_decoding(args)
    return _run_simulate_acceptance(args)


def _run_simulate_decoding(args) -> int:
    import time

    from spectheory.simulations import decoding

    from .io import load_array

    policy = decoding.parse_policy(args.policy, "--policy")
    if args.verifier not in decoding.VERIFIERS:
        raise CLIError(f"--verifier: expected one of {', '.join(decoding.VERIFIERS)}, got {args.verifier!r}")
    tokens = _parse_int(args.tokens, "--tokens", 1)
    seed = _parse_int(args.seed, "--seed", 0)
    initial = _parse_int(args.initial, "--initial", 0)
    T = load_array(args.target, "--target")
    D = load_array(args.draft, "--draft")
    try:
        T, D = decoding.check_markov(T, D)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("target and draft"):
            message = "--target and --draft" + message[len("target and draft"):]
        elif message.startswith(("target:", "draft:")):
            message = "--" + message
        raise CLIError(message) from None
    V = T.shape[0]
    if initial >= V:
        raise CLIError(f"--initial: token id {initial} is outside the vocabulary [0, {V})")
    start = time.perf_counter()
    result = decoding.simulate_decoding(
        T, D, policy, args.verifier, tokens, seed, initial=initial,
        record_sequence=bool(args.sequence), progress=not args.no_progress and sys.stderr.isatty(),
    )
    seconds = time.perf_counter() - start
    if args.json:
        out = result.to_dict()
        if not args.sequence:
            out.pop("sequence")
        out["V"] = V
        out["settings"] = {"target": args.target, "draft": args.draft, "policy": str(policy),
                           "verifier": args.verifier, "tokens": tokens, "seed": seed, "initial": initial}
        print(json.dumps(out, indent=2))
        return 0
    print(f"speculative decoding  (V = {V}, policy {policy}, verifier {args.verifier}, seed {seed})")
    print(f"tokens {result.tokens}, rounds {result.rounds}, "
          f"tokens per round {result.mean_tokens_per_round:.4f} ± {result.stderr:.2g} "
          f"(± assumes independent rounds), {result.tokens / max(seconds, 1e-9):,.0f} tokens/s")
    rows = [
        [str(j + 1), str(result.drafted[j]), str(result.attempted[j]), str(result.accepted[j]),
         "-" if result.attempted[j] == 0 else f"{result.acceptance[j]:.4f}"]
        for j in range(len(result.drafted)) if result.drafted[j] > 0
    ]
    print(_format_table(["position", "drafted", "attempted", "accepted", "acceptance"], rows))
    hist = ", ".join(f"{t}: {c}" for t, c in enumerate(result.tokens_per_round_hist) if c > 0)
    print(f"rounds by tokens emitted: {hist}")
    return 0


def _run_simulate_acceptance(args) -> int:
    from .io import load_array

    n = _parse_int(args.n, "-n", 1)
    trials = _parse_int(args.trials, "--trials", 1)
    seed = _parse_int(args.seed, "--seed", 0)
    p = load_array(args.target, "--target")
    q = load_array(args.draft, "--draft")
    try:
        from spectheory.simulations.montecarlo import SimulationInterrupted, estimate_acceptance
    except ImportError as exc:
        raise CLIError(f"simulate acceptance: the Monte Carlo module is not available ({exc})") from None
    status = 0
    try:
        est = estimate_acceptance(p, q, n, args.verifier, trials, seed, progress=sys.stderr.isatty() and not args.json)
    except SimulationInterrupted as stop:  # Ctrl-C: report the trials completed, exit 130
        if stop.partial is None:
            raise
        est, status = stop.partial.estimate, 130
        print(f"{PROG}: interrupted after {int(est.trials):,} of {trials:,} trials; the estimate below "
              "uses the completed ones", file=sys.stderr)
    mean, stderr, done = float(est.mean), float(est.stderr), int(est.trials)
    if args.json:
        print(json.dumps({
            "mean": mean, "stderr": stderr, "trials": done,
            "settings": {"target": args.target, "draft": args.draft, "n": n, "verifier": args.verifier,
                         "trials": trials, "seed": seed},
        }, indent=2))
        return status
    print(f"acceptance of {args.verifier} with n = {n}: {mean:.6f} ± {stderr:.2g}  ({done} trials, seed {seed})")
    return status


# --------------------------------------------------------------------------- mdp


def _add_mdp(subparsers) -> None:
    from ._cli_mdp import add_arguments

    p = subparsers.add_parser(
        "mdp",
        help="optimal draft length: the exact optimal drafting policy against SpecDec++'s threshold rule and fixed K",
        description="The drafting policy maximising long-run tokens per unit cost (exact MDP: Dinkelbach + "
        "backward induction over (k, S_k, state)), against SpecDec++'s threshold rule (best h, and the "
        "Delta=0 value), the best fixed K and Leviathan's gamma*, for each draft cost. --trace reads .npy "
        "(1-D: one sequence; 2-D: one row per round, NaN-padded) or .csv/.txt (one round per line). "
        "Prints tables (or JSON with --json); --out DIR also writes mdp.json and mdp_policy.png.",
    )
    add_arguments(p)
    p.set_defaults(func=_run_mdp)


def _run_mdp(args) -> int:
    from ._cli_mdp import run

    return run(args)


# --------------------------------------------------------------------------- audit


def _add_audit(subparsers) -> None:
    from ._cli_audit import add_arguments

    p = subparsers.add_parser("audit", help="is this verification rule lossless? exact audit and minimal counterexample",
                              description="Audit a rule rule(p, q, drafts, rng) -> token (see spectheory.audit): "
                              "exact output law over every draft tuple and branch, TV to p, acceptance against the "
                              "bound, minimal counterexample. Exit status 0 lossless, 1 not, 2 user error.")
    add_arguments(p)
    p.set_defaults(func=lambda args: __import__("spectheory._cli_audit", fromlist=["run"]).run(args))


def _add_interval(subparsers) -> None:
    from ._cli_interval import add_arguments

    p = subparsers.add_parser("interval", help="interval of the optimal acceptance from top-k log-probabilities",
                              description="[lower, upper] of α* over every completion of the top-k log-probs a "
                              "serving stack returns (see spectheory.optimal_acceptance_interval); mean over positions.")
    add_arguments(p)
    p.set_defaults(func=lambda args: __import__("spectheory._cli_interval", fromlist=["run"]).run(args))


# --------------------------------------------------------------------------- entry point

#: Subcommand builders, in the order ``--help`` lists them.
def _add_replay_commands():
    from . import cli_replay

    return (cli_replay.add_record, cli_replay.add_replay, cli_replay.add_report)


def _add_sweep(subparsers) -> None:
    from ._cli_sweep import add_arguments

    p = subparsers.add_parser("sweep", help="replay recordings over a grid of settings (in-process, processes or Dask)",
                              description="Run the sweep a TOML config describes; resumable (tasks cached by content hash).")
    add_arguments(p)
    p.set_defaults(func=lambda args: __import__("spectheory._cli_sweep", fromlist=["run"]).run(args))


_COMMANDS = (_add_bound, _add_compare, _add_simulate, _add_mdp, _add_audit, _add_interval, *_add_replay_commands(), _add_sweep)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = OneLineParser(
        prog=PROG,
        description="Acceptance bounds for speculative decoding (p = target, q = draft).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in _COMMANDS:
        add(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status: 0 ok, 2 user error (one line, usage errors
    included), 1 internal error (one line; ``SPECTHEORY_TRACEBACK=1`` adds the traceback), 130
    interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse prints them)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # stdout was closed early (`spectheory ... | head`): not an error of the input. Point
        # stdout at devnull so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's: one line, the traceback on request
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        where = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
        print(f"{PROG}: internal error: {where} (set {TRACEBACK_ENV}=1 for the traceback; please report it)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
