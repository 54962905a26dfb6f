"""``spectheory audit MODULE:FUNCTION``: a thin shell over :func:`spectheory.audit`.

The rule is imported from the module the user names (a dotted module name, looked up from the
current directory first, or a path to a ``.py`` file); nothing else is imported. Exit status: 0 when
no counterexample is found, 1 when the rule is not lossless, 2 on a user error (one line).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys

import numpy as np

from ._validation import SpecTheoryValueError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rule", metavar="MODULE:FUNCTION",
                   help="the rule rule(p, q, drafts, rng) -> token: a module name or a path to a .py file, "
                        "then ':' and the function's name")
    p.add_argument("--sampling", default="iid",
                   help="draft scheme: iid, without_replacement, greedy, hub, independent, chain or tree (default iid)")
    p.add_argument("-n", default="2", help="number of drafts (γ for chains; default 2); the search tries every n' <= n")
    p.add_argument("--shape", help="tree shape as branching factors per depth, e.g. 2,1 (for --sampling tree)")
    p.add_argument("--tree-sampling", default="without_replacement", choices=("without_replacement", "iid"))
    p.add_argument("--target", help="one target distribution to audit: a file (.npy, .txt, ...) or values a,b,c")
    p.add_argument("--draft", help="the draft distribution, same forms as --target")
    p.add_argument("--max-V", default="4", help="largest vocabulary the search tries (default 4)")
    p.add_argument("--examples", default="200", help="cases the search generates (default 200)")
    p.add_argument("--seed", help="random seed for the search (default: derandomised)")
    p.add_argument("--mode", default="exact", choices=("exact", "monte_carlo"))
    p.add_argument("--trials", default="200000", help="Monte Carlo trials (default 200000)")
    p.add_argument("--scalar", action="store_true",
                   help="Monte Carlo with the per-position rule (default: the rule takes (B, V) batches)")
    p.add_argument("--backend", default="numpy", choices=("numpy", "torch"), help="Monte Carlo batches as NumPy or torch")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def load_rule(spec: str):
    """The function named by ``MODULE:FUNCTION`` (the module by name, or a path to a .py file)."""
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise SpecTheoryValueError(f"rule: expected MODULE:FUNCTION (e.g. myrules:verify), got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        if not os.path.isfile(module_name):
            raise SpecTheoryValueError(f"rule: no such file {module_name!r}")
        name = "_spectheory_audited_" + os.path.splitext(os.path.basename(module_name))[0]
        loader_spec = importlib.util.spec_from_file_location(name, module_name)
        module = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise SpecTheoryValueError(f"rule: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    else:
        added = os.getcwd() not in sys.path
        if added:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise SpecTheoryValueError(f"rule: importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from None
        finally:
            if added:
                sys.path.remove(os.getcwd())
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise SpecTheoryValueError(f"rule: module {module_name!r} has no attribute {func_name!r}") from None


def _vector(text: str, option: str):
    if os.path.exists(text):
        from .io import load_array

        return load_array(text, option)
    try:
        return np.array([float(x) for x in text.split(",")])
    except ValueError:
        raise SpecTheoryValueError(f"{option}: neither a file nor comma-separated numbers: {text!r}") from None


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, dict):
        return [{"sequence": list(k), "probability": v} for k, v in x.items()]
    if isinstance(x, tuple):
        return [_jsonable(v) for v in x]
    return x


def run(args) -> int:
    from .cli import _parse_int
    from .rule_audit import audit

    rule = load_rule(args.rule)
    if (args.target is None) != (args.draft is None):
        raise SpecTheoryValueError("--target and --draft: give both (one case) or neither (search)")
    p = q = None
    if args.target is not None:
        p, q = _vector(args.target, "--target"), _vector(args.draft, "--draft")
    shape = None
    if args.shape is not None:
        shape = tuple(_parse_int(k, "--shape", 1) for k in args.shape.split(","))
    seed = None if args.seed is None else _parse_int(args.seed, "--seed", 0)
    result = audit(
        rule, sampling=args.sampling, n=_parse_int(args.n, "-n", 1), p=p, q=q, shape=shape,
        tree_sampling=args.tree_sampling, mode=args.mode, max_V=_parse_int(args.max_V, "--max-V", 1),
        max_examples=_parse_int(args.examples, "--examples", 1), seed=seed,
        trials=_parse_int(args.trials, "--trials", 1), vectorized=not args.scalar, backend=args.backend,
    )
    if args.json:
        out = {k: _jsonable(getattr(result, k)) for k in (
            "lossless", "tv", "acceptance", "bound", "exceeds_bound", "sampling", "mode", "cases", "worst_tv",
            "branches", "unresolved", "stderr", "p_value", "detectable_tv", "trials", "p", "q", "n", "law")}
        out["counterexample"] = None if result.counterexample is None else dict(
            zip(("p", "q", "n"), (_jsonable(v) for v in result.counterexample)))
        out["failure"] = None if result.failure is None else {
            "kind": result.failure.kind, "message": result.failure.message,
            "drafts": _jsonable(getattr(result.failure.drafts, "tolist", lambda: None)())}
        print(json.dumps(out, indent=2, allow_nan=True))
    else:
        print(result.summary())
    return 0 if result.lossless else 1
