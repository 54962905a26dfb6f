"""``spectheory report --pair NAME``: the report on a real pretrained target and the drafts made from it.

For a named pair of :mod:`.pairs` (``smollm2``: SmolLM2-135M-Instruct with an early-exit, a 4-bit
quantized and a distilled draft), :func:`pair_report`

1. loads the target once from its weights package (a one-line error with the pip command when the
   package is missing);
2. builds each draft from the target (:mod:`.drafts`; the distilled one is loaded from its folder);
3. runs the full :func:`.report.report` for each draft in ``OUT/<method>/`` (same prompts, same seed:
   the target's continuations, hence the recorded prefixes, are the same for every draft, so the
   drafts are compared on the same positions);
4. writes ``OUT/summary.json`` (a ``drafts`` list, one entry per draft method, with its settings,
   headline means and bootstrap-by-prompt intervals), ``OUT/summary.md`` (the comparison table) and
   ``OUT/draft_methods.png`` (α* and verifier acceptance against n, per draft).

Resumable as :func:`.report.report` is: a rerun reuses every recorded shard and replay result.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from spectheory._validation import SpecTheoryValueError
from spectheory.io import atomic_path, write_json_atomic

from .stats import format_interval

__all__ = ["pair_report", "HEADLINE"]


def HEADLINE(n: int) -> list:
    """``(key, label)`` of the comparison table's columns at draft count ``n``."""
    return [("verifier/sd/n=1", "α*(n=1)"), (f"bound/iid/n={n}", f"α* iid n={n}"),
            (f"bound/without_replacement/n={n}", f"α* wor n={n}"), (f"verifier/rrs/n={n}", f"rrs n={n}"),
            (f"verifier/kseq/n={n}", f"kseq n={n}"), (f"verifier/rrs_wor/n={n}", f"rrs_wor n={n}")]


def _cell(key, summary, intervals) -> str:
    if intervals and key in intervals:
        c = intervals[key]
        return format_interval(c.mean, c.low, c.high)
    return "–" if summary.get(key) is None else f"{summary[key]:.4f}"


def pair_report(name: str, out="report", *, max_prompts=None, max_new_tokens=None, n_max: int = 8,
                temperature: float = 1.0, top_k=None, top_p=None, seed: int = 0, device: str = "cpu",
                prompts=None, methods=None, progress: bool = False, dtype: str = "float32", loaded=None) -> dict:
    """Run the report on the named real pair ``name`` with each of its drafts.

    Parameters
    ----------
    name : str
        A pair of :data:`.pairs.PAIRS` (``"smollm2"``, ``"gemma3"``).
    out : str or Path
        Output folder: ``OUT/<method>/`` holds each draft's full report.
    max_prompts, max_new_tokens : int, optional
        Default: the pair's (16 prompts × 32 tokens for ``smollm2``).
    n_max, temperature, top_k, top_p, seed, prompts, progress
        As for :func:`.report.report`.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    methods : list of str, optional
        A subset of the pair's draft methods (default: all of them).
    dtype : str
        The dtype the target is dequantized to.
    loaded : tuple, optional
        The target already loaded, ``(model, tokenizer)`` (from :func:`.models.load_model` of the
        pair's weights file), so that callers running several reports load it once.

    Returns
    -------
    dict
        The ``summary.json`` document.
    """
    from .pairs import build_draft, get_pair, target_source
    from .report import report
    from .replay import _check_device

    spec = get_pair(name)  # an unknown name: one line, before anything is written
    wanted = [d.method for d in spec.drafts] if methods is None else list(methods)
    unknown = [m for m in wanted if m not in {d.method for d in spec.drafts}]
    if unknown:
        raise SpecTheoryValueError(f"--draft-methods: {name} has no draft {unknown[0]!r}; "
                                   f"it has {', '.join(d.method for d in spec.drafts)}")
    dev = _check_device(device)
    f = target_source(name)  # MissingWeights (with the pip command) when not installed
    t0 = time.perf_counter()
    from .models import load_model

    target, tok = load_model(f, "--target", dtype, dev) if loaded is None else loaded
    t_load = time.perf_counter() - t0
    out = Path(out)
    max_prompts = spec.max_prompts if max_prompts is None else max_prompts
    max_new_tokens = spec.max_new_tokens if max_new_tokens is None else max_new_tokens
    entries = []
    for d in spec.drafts:
        if d.method not in wanted:
            continue
        t1 = time.perf_counter()
        draft = build_draft(d, target, f, dtype=dtype, device=dev)
        t_build = time.perf_counter() - t1
        if len(draft.get_output_embeddings().weight) < len(tok):  # pragma: no cover - a broken draft
            raise SpecTheoryValueError(f"--pair {name}: the {d.method} draft's vocabulary is smaller than the tokenizer's")
        res = report(out / d.method, target=f"{name}/target", draft=f"{name}/{d.method}", prompts=prompts,
                     max_new_tokens=max_new_tokens, n_max=n_max, temperature=temperature, top_k=top_k, top_p=top_p,
                     seed=seed, device=device, max_prompts=max_prompts, progress=progress,
                     models=(target, draft, tok))
        iv = res.intervals or {}
        settings = dict(d.settings)
        if d.method == "early_exit":
            settings["of_layers"] = int(target.config.num_hidden_layers)
        entries.append({
            "method": d.method, "description": d.describe(), "settings": settings,
            "parameters": int(sum(p.numel() for p in draft.parameters())),
            "folder": d.method, "positions": res.positions,
            "means": {k: float(v) for k, v in res.summary.items() if k.startswith(("bound/", "verifier/"))},
            "intervals": {k: c.as_dict() for k, c in iv.items()} or None,
            "build_s": t_build, "report_s": time.perf_counter() - t1,
        })
        del draft
    doc = {
        "pair": name, "target": spec.target, "license": spec.license,
        "target_file": f.name, "target_parameters": int(sum(p.numel() for p in target.parameters())),
        "vocab_size": int(target.get_output_embeddings().weight.shape[0]),
        "n": list(range(1, int(n_max) + 1)), "max_prompts": max_prompts, "max_new_tokens": max_new_tokens,
        "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
        "drafts": entries,
        "timing_s": {"load_target": t_load, "total": time.perf_counter() - t0},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    write_json_atomic(out / "summary.json", doc)
    _markdown(out / "summary.md", doc, int(n_max))
    _plot(out / "draft_methods.png", doc)
    return doc


def _markdown(path: Path, doc: dict, n: int) -> None:
    cols = HEADLINE(n)
    lines = [f"# spectheory report: {doc['target']} with drafts made from it", "",
             f"Pair `{doc['pair']}` (target licence: {doc['license']}), V = {doc['vocab_size']}, "
             f"{doc['max_prompts']} prompts × up to {doc['max_new_tokens']} tokens at temperature "
             f"{doc['temperature']:g}, seed {doc['seed']}. Every draft is evaluated on the same prefixes (the target's "
             "continuations). Each cell: mean over positions and its 95% bootstrap-by-prompt interval. "
             "α*(n=1) = Σ min(p, q); α* iid / wor: the optimal acceptance of n i.i.d. / without-replacement drafts; "
             "rrs, kseq, rrs_wor: those verifiers' acceptance (rrs_wor at n > 2: an unbiased estimate).", "",
             "| draft | " + " | ".join(label for _, label in cols) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for e in doc["drafts"]:
        iv = e["intervals"] or {}
        cells = []
        for k, _ in cols:
            if k in iv:
                cells.append(format_interval(iv[k]["mean"], iv[k]["low"], iv[k]["high"]))
            else:
                cells.append("–" if k not in e["means"] else f"{e['means'][k]:.4f}")
        lines.append(f"| {e['method']} ({e['description']}) | " + " | ".join(cells) + " |")
    lines += ["", "![draft methods](draft_methods.png)", "",
              "Each draft's full report (tables, plots, draft-length section): "
              + ", ".join(f"[{e['method']}]({e['folder']}/summary.md)" for e in doc["drafts"]), ""]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")


def _plot(path: Path, doc: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = doc["n"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for e in doc["drafts"]:
        m = e["means"]
        line, = axes[0].plot(ns, [m.get(f"bound/iid/n={n}") for n in ns], marker="o", label=f"{e['method']} α* iid")
        axes[0].plot(ns, [m.get(f"bound/without_replacement/n={n}") for n in ns], ls="--", color=line.get_color(),
                     label=f"{e['method']} α* wor")
        for v, ls in (("rrs", "-"), ("kseq", ":"), ("rrs_wor", "--")):
            axes[1].plot(ns, [m.get(f"verifier/{v}/n={n}") for n in ns], ls=ls, color=line.get_color(),
                         label=f"{e['method']} {v}")
    axes[0].set_title("optimal acceptance α* by draft scheme")
    axes[1].set_title("verifier acceptance")
    for ax in axes:
        ax.set_xlabel("number of drafts n")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("acceptance probability")
    fig.suptitle(f"{doc['target']}: drafts made from it", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
