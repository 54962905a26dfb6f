"""Subcommands over recorded logits: ``record``, ``replay`` and ``report`` (registered in
:mod:`spectheory.cli`). The simulations subpackage (torch, transformers) is imported only when one of
them runs."""

from __future__ import annotations

import sys


def _ints(args, *names):
    """Parse the integer options ``names`` (>= 1; None passes through) with :func:`cli._parse_int`,
    so that a bad value is one error line, exit 2."""
    from .cli import _parse_int

    for name in names:
        value = getattr(args, name)
        if value is not None:
            setattr(args, name, _parse_int(value, "--" + name.replace("_", "-"), 1))


def _seed(args):
    from .cli import _parse_int

    args.seed = _parse_int(args.seed, "--seed", 0)


def add_record(subparsers) -> None:
    p = subparsers.add_parser(
        "record",
        help="record target and draft logits from a Hugging Face causal-LM pair",
        description="The target continues each prompt (or, with --teacher-force, each line is a text "
        "evaluated as it is); both models are evaluated on the same prefixes and the logits are stored as "
        "safetensors shards with a JSON manifest. An interrupted recording resumes when run again with "
        "the same --out and settings.",
    )
    p.add_argument("--target", required=True, metavar="MODEL", help="target model: local folder, .gguf file or hub name")
    p.add_argument("--draft", required=True, metavar="MODEL", help="draft model sharing the target's tokenizer")
    _model_options(p)
    p.add_argument("--prompts", required=True, metavar="FILE", help="prompts: one per line (\\n for newlines) or a .json list")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (resumed if it holds this recording)")
    p.add_argument("--max-new-tokens", type=str, default=64, metavar="N")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="generation temperature (> 0)")
    p.add_argument("--top-k", type=str, default=None, metavar="K")
    p.add_argument("--top-p", type=float, default=None, metavar="P")
    p.add_argument("--greedy", action="store_true", help="greedy generation instead of sampling")
    p.add_argument("--teacher-force", action="store_true", help="evaluate the prompts as texts, no generation")
    p.add_argument("--seed", type=str, default=0, help="generation seed (integer >= 0)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16", "float64"))
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    _add_batch_options(p)
    p.set_defaults(func=run_record)


def _add_batch_options(p) -> None:
    p.add_argument("--batch-size", type=str, default=1, metavar="B",
                   help="prompts per forward pass (left padding; tokens do not depend on it; default 1)")
    p.add_argument("--chat", action="store_true", help="wrap each prompt in the tokenizer's chat template (instruct models)")


def _model_options(p) -> None:
    p.add_argument("--tokenizer", default=None, metavar="SRC",
                   help="tokenizer folder, .gguf file or hub name, for model folders that do not hold it")
    p.add_argument("--ignore-auto-map", action="store_true",
                   help="load a folder whose config names its own code (auto_map) with transformers' own "
                   "implementation instead of refusing it; the folder's code is never run")


def run_record(args) -> int:
    from .cli import CLIError

    _ints(args, "max_new_tokens", "top_k", "batch_size")
    _seed(args)
    if args.top_p is not None and not (0 < args.top_p <= 1):
        raise CLIError(f"--top-p: must lie in (0, 1], got {args.top_p:g}")
    if not args.greedy and not args.teacher_force and not (args.temperature > 0):
        raise CLIError(f"--temperature: must be > 0 for sampled generation, got {args.temperature:g}; or use --greedy")
    from spectheory.simulations.record import read_prompt_file, record

    prompts, categories = read_prompt_file(args.prompts)
    rec = record(args.target, args.draft, prompts, args.out, max_new_tokens=args.max_new_tokens,
                 temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, do_sample=not args.greedy,
                 teacher_force=args.teacher_force, seed=args.seed, dtype=args.dtype, device=args.device,
                 progress=True, tokenizer=args.tokenizer, ignore_auto_map=args.ignore_auto_map,
                 batch_size=args.batch_size, chat=args.chat, categories=categories)
    print(f"recorded {rec.positions} positions from {len(rec.shards)} prompts, V = {rec.vocab_size}, "
          f"{rec.manifest['dtype']}: {args.out}/manifest.json")
    return 0


def add_replay(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="per-position bounds and verifier acceptance over a recording",
        description="Replays a recording made by 'spectheory record': per position, the optimal acceptance of "
        "each draft scheme and every verifier's acceptance at n = 1..N, with the same temperature / top-k / "
        "top-p applied to both models. Prints the means; writes the per-position table with --csv/--json.",
    )
    p.add_argument("dir", metavar="PATH", nargs="?", default=None,
                   help="recording folder (with manifest.json), or one .safetensors file with (T, V) tensors "
                   "'target' and 'draft'")
    p.add_argument("--target-logits", default=None, metavar="FILE",
                   help="instead of PATH: the target's (T, V) logits, .npy (no pickle) or one-tensor .safetensors")
    p.add_argument("--draft-logits", default=None, metavar="FILE", help="the draft's (T, V) logits (with --target-logits)")
    p.add_argument("--n-max", type=str, default=8, metavar="N", help="draft counts 1..N (default 8)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="temperature (>= 0; 0 = argmax)")
    p.add_argument("--top-k", type=str, default=None, metavar="K")
    p.add_argument("--top-p", type=float, default=None, metavar="P")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the per-position table as CSV")
    p.add_argument("--json", default=None, metavar="FILE", help="write the per-position table and means as JSON")
    p.set_defaults(func=run_replay)


def run_replay(args) -> int:
    from .cli import CLIError

    _ints(args, "n_max", "top_k")
    if not (args.temperature >= 0):
        raise CLIError(f"--temperature: must be >= 0, got {args.temperature:g}")
    if args.top_p is not None and not (0 < args.top_p <= 1):
        raise CLIError(f"--top-p: must lie in (0, 1], got {args.top_p:g}")
    from spectheory.io import check_output_file
    from spectheory.simulations.record import load_recording
    from spectheory.simulations.report import replay_recording

    for option, value in (("--csv", args.csv), ("--json", args.json)):
        if value:
            check_output_file(value, option)

    files = args.target_logits is not None or args.draft_logits is not None
    if files and args.dir is not None:
        raise CLIError("PATH and --target-logits/--draft-logits: give one or the other")
    if not files and args.dir is None:
        raise CLIError("PATH: give a recording folder, a .safetensors logits file, or --target-logits and --draft-logits")
    from pathlib import Path

    if files or Path(args.dir).is_file():
        from spectheory.simulations.logit_files import load_logit_pair
        from spectheory.simulations.replay import replay

        if files:
            tgt, drf = load_logit_pair(target=args.target_logits, draft=args.draft_logits)
            where = f"{args.target_logits} vs {args.draft_logits}"
        else:
            tgt, drf = load_logit_pair(args.dir)
            where = args.dir
        res = replay(tgt, drf, n=list(range(1, args.n_max + 1)), temperature=args.temperature, top_k=args.top_k,
                     top_p=args.top_p, device=args.device)
        V = tgt.shape[1]
    else:
        rec = load_recording(args.dir)
        res = replay_recording(rec, n=range(1, args.n_max + 1), temperature=args.temperature, top_k=args.top_k,
                               top_p=args.top_p, device=args.device, progress=True)
        V, where = rec.vocab_size, args.dir
    if args.csv:
        res.to_csv(args.csv)
    if args.json:
        res.to_json(args.json)
    summ = res.summary()
    print(f"replay of {where}: {len(res)} positions, V = {V}; means over positions")
    from .cli import _format_table

    rows = []
    for n in range(1, args.n_max + 1):
        row = [str(n)]
        for key in ("bound/iid", "bound/without_replacement", "bound/greedy", "verifier/rrs", "verifier/kseq",
                    "verifier/rrs_wor"):
            v = summ.get(f"{key}/n={n}")
            row.append("-" if v is None else f"{v:.4f}")
        rows.append(row)
    print(_format_table(["n", "α* iid", "α* wor", "α* greedy", "rrs", "kseq", "rrs_wor"], rows))
    return 0


def add_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="the main job: record, replay and summarise a model pair (default: the shipped reference pair)",
        description="Records target and draft logits (default: the shipped reference pair on its held-out "
        "prompts), replays them, and writes OUT/summary.md with tables, summary.json, per_position.csv and "
        "PNG plots (bound against n per draft scheme, each verifier's gap to its bound, per-position acceptance, "
        "optimal draft length against threshold and fixed-K policies). Resumes an interrupted run.",
    )
    p.add_argument("--target", default=None, metavar="MODEL", help="target model folder, .gguf file or hub name (with --draft)")
    p.add_argument("--draft", default=None, metavar="MODEL", help="draft model sharing the target's tokenizer")
    p.add_argument("--pair", default=None, metavar="NAME",
                   help="a named real pair: a pretrained target and drafts made from it (smollm2, gemma3)")
    _model_options(p)
    p.add_argument("--prompts", default=None, metavar="FILE", help="prompts file (default: the shipped held-out prompts)")
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default report/)")
    p.add_argument("--max-new-tokens", type=str, default=None, metavar="N",
                   help="tokens generated per prompt (default 48; with --pair, the pair's)")
    p.add_argument("--max-prompts", type=str, default=None, metavar="N",
                   help="use only the first N prompts (a quick run; with --pair default the pair's)")
    p.add_argument("--n-max", type=str, default=8, metavar="N", help="draft counts 1..N (default 8)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="sampling temperature (>= 0; 0: greedy limit); a new value in an existing --out replays "
                   "its recording (no model loaded when it is complete), files in OUT/settings-T=.../")
    p.add_argument("--top-k", type=str, default=None, metavar="K")
    p.add_argument("--top-p", type=float, default=None, metavar="P")
    p.add_argument("--seed", type=str, default=0, help="generation seed (integer >= 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    _add_batch_options(p)
    p.set_defaults(func=run_report)


def _run_pair_report(args) -> int:
    """``report --pair NAME``: the report on a named real pair, one per draft method."""
    from .cli import CLIError

    if args.target is not None or args.draft is not None:
        raise CLIError("--pair: give either --pair or --target and --draft, not both")
    if args.tokenizer is not None or args.ignore_auto_map:
        raise CLIError("--pair: --tokenizer and --ignore-auto-map apply to --target/--draft only")
    from spectheory.simulations.pair_report import HEADLINE, pair_report
    from spectheory.simulations.pairs import get_pair

    get_pair(args.pair)
    prompts = None
    if args.prompts is not None:
        from spectheory.simulations.record import read_prompts

        prompts = read_prompts(args.prompts)
    doc = pair_report(args.pair, args.out, max_prompts=args.max_prompts,
                      max_new_tokens=None if args.max_new_tokens_default else args.max_new_tokens, n_max=args.n_max,
                      temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                      device=args.device, prompts=prompts, progress=True)
    print(f"report: {args.out}/summary.md ({doc['target']}, {len(doc['drafts'])} drafts)")
    for e in doc["drafts"]:
        iv = e["intervals"] or {}
        cells = [f"{label} {iv[k]['mean']:.4f}" if k in iv else f"{label} {e['means'].get(k, float('nan')):.4f}"
                 for k, label in HEADLINE(args.n_max)]
        print(f"  {e['method']}: " + ", ".join(cells))
    return 0


def run_report(args) -> int:
    from .cli import CLIError

    args.max_new_tokens_default = args.max_new_tokens is None
    if args.max_new_tokens is None:
        args.max_new_tokens = 48
    _ints(args, "max_new_tokens", "max_prompts", "n_max", "top_k", "batch_size")
    _seed(args)
    if args.pair is not None:
        return _run_pair_report(args)
    if (args.target is None) != (args.draft is None):
        raise CLIError("--target and --draft: give both, or neither for the shipped reference pair")
    if not (args.temperature >= 0):
        raise CLIError(f"--temperature: must be >= 0 (0: the greedy limit), got {args.temperature:g}")
    if args.top_p is not None and not (0 < args.top_p <= 1):
        raise CLIError(f"--top-p: must lie in (0, 1], got {args.top_p:g}")
    from spectheory.simulations.report import report

    prompts = categories = None
    if args.prompts is not None:
        from spectheory.simulations.record import read_prompt_file

        prompts, categories = read_prompt_file(args.prompts)
    res = report(args.out, target=args.target, draft=args.draft, prompts=prompts, max_new_tokens=args.max_new_tokens,
                 n_max=args.n_max, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                 device=args.device, max_prompts=args.max_prompts, progress=True, tokenizer=args.tokenizer,
                 ignore_auto_map=args.ignore_auto_map, categories=categories, batch_size=args.batch_size,
                 chat=args.chat)
    s = res.summary
    n = args.n_max
    iv = res.intervals or {}

    def val(key):
        return str(iv[key]) if key in iv else f"{s[key]:.4f}"

    print(f"report: {res.out}/summary.md ({res.positions} positions)")
    print(f"  single-draft acceptance α₁ {val('verifier/sd/n=1')}; at n = {n}: α* iid {val(f'bound/iid/n={n}')}, "
          f"without replacement {val(f'bound/without_replacement/n={n}')}, rrs {val(f'verifier/rrs/n={n}')}, "
          f"kseq {val(f'verifier/kseq/n={n}')}" + (" (95% bootstrap-by-prompt intervals)" if iv else ""))
    print("  files: " + ", ".join(res.files))
    return 0
