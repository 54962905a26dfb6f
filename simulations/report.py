"""``spectheory report``: record a model pair's logits, replay them, and write tables and plots.

The main job of the package. :func:`report`

1. records target and draft logits on the same prefixes (:mod:`.record`): by default the shipped
   reference pair (:mod:`.reference`) continuing its held-out prompts; or any Hugging Face pair;
2. replays every recorded shard (:mod:`.replay`): per position, the optimal acceptance of each draft
   scheme and every verifier's acceptance at n = 1..N;
3. fits an acceptance process to the recorded per-position acceptance and compares the exactly
   optimal draft-length policy with SpecDec++'s threshold rule and fixed K (:mod:`spectheory.solvers.mdp`);
4. writes ``summary.md`` (tables), ``summary.json``, ``per_position.csv`` and PNG plots into ``out``.

Every step is resumable: the recording resumes at the first missing shard, each shard's replay is
stored (``replay/shard-NNNNN.json``, keyed by the replay settings) and reused, and every file is
written atomically, so an interrupted report loses nothing already computed.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectheory._validation import SpecTheoryValueError
from spectheory.io import atomic_path, folder_lock, remove_stale_temporaries, write_json_atomic

SCHEMES = ("iid", "without_replacement", "greedy")
VERIFIERS = ("sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy")
#: the draft scheme each verifier draws with (its gap is measured to that scheme's bound)
NATIVE = {"sd": "iid", "rrs": "iid", "rrs_wor": "without_replacement", "kseq": "iid", "spechub": "hub",
          "greedy": "greedy"}
REFERENCE_NAME = "spectheory reference pair"


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and its headline numbers."""

    out: Path
    positions: int
    summary: dict
    files: list


CACHE_FORMAT = "spectheory-replay-cache/1"


def _settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _content_sha256(key: dict, result: dict) -> str:
    """SHA-256 of the canonical JSON of a cache entry's key and result (floats round-trip exactly
    through JSON, so the hash recomputed from a file read back equals the one written)."""
    text = json.dumps({"key": key, "result": result}, sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _write_cache(path, key: dict, res) -> None:
    """Store one shard's replay with its key (settings, shard hash, first position) and a content
    hash of key and table, so that :func:`_read_cache` can tell an edited or truncated file."""
    result = {"settings": res.settings, "info": res.info, "columns": {k: v.tolist() for k, v in res.table.items()}}
    write_json_atomic(path, {"format": CACHE_FORMAT, "key": key, "content_sha256": _content_sha256(key, result),
                             "result": result})


def _read_cache(path, key: dict, positions: int, columns):
    """The cached :class:`~.replay.ReplayResult` at ``path`` if it verifies, else None.

    It verifies when it is a complete JSON document of :data:`CACHE_FORMAT` whose key equals ``key``
    (same settings, same shard SHA-256, same first position), whose content hash matches its key and
    table, and whose table has exactly ``columns`` with ``positions`` rows numbered from the key's
    first position. Anything else (edited, truncated, missing rows or columns, an older format) is
    recomputed, never used."""
    from .replay import ReplayResult

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or doc.get("key") != key:
            return None
        result = doc["result"]
        if doc.get("content_sha256") != _content_sha256(key, result):
            return None
        cols = result["columns"]
        if list(cols) != list(columns) or any(len(v) != positions for v in cols.values()):
            return None
        table = {k: np.asarray(v, dtype=np.int64 if k == "position" else np.float64) for k, v in cols.items()}
        first = key["first_position"]
        if not np.array_equal(table["position"], np.arange(first, first + positions)):
            return None
        return ReplayResult(table, result["settings"], result["info"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # unreadable or malformed: recompute
        return None


def replay_recording(rec, *, n, temperature=1.0, top_k=None, top_p=None, device="auto", seed=0,
                     progress=False, cache_dir=None):
    """Replay every shard of a :class:`~.record.Recording` and join the tables.

    Shard i starts at the position after shard i − 1's last, so the rows (and the rrs_wor estimate's
    random numbers) are those of one replay of the whole recording. With ``cache_dir``, each shard's
    table is stored there with its key (the settings, the shard's SHA-256 and first position, the
    package version) and a content hash, and reused by later calls only when it verifies
    (:func:`_read_cache`); a damaged entry is recomputed and rewritten.
    """
    from tqdm.auto import tqdm

    from spectheory import __version__

    from .replay import SAMPLINGS, VERIFIERS, column_names, replay, ReplayResult

    ns = list(n)
    settings = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        settings = {"n": ns, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
                    "recording": [s["sha256"] for s in rec.shards], "version": __version__}
        tag = _settings_key(settings)
        columns = ["position"] + column_names(sorted(set(ns)), SAMPLINGS, VERIFIERS)
    results = []
    first = 0
    for i, s in enumerate(tqdm(rec.shards, desc="replay", unit="shard", disable=not progress)):
        res = path = None
        if settings is not None:
            path = cache_dir / f"{Path(s['file']).stem}.{tag}.json"
            key = dict(settings, shard=s["file"], shard_sha256=s["sha256"], first_position=first)
            if path.is_file():
                res = _read_cache(path, key, s["positions"], columns)
        if res is None:
            shard = rec.shard(i)
            res = replay(shard["target"], shard["draft"], n=ns, temperature=temperature, top_k=top_k, top_p=top_p,
                         device=device, seed=seed, first_position=first)
            if path is not None:
                _write_cache(path, key, res)
        results.append(res)
        first += s["positions"]
    return ReplayResult.concat(results)


def _acceptance_traces(rec, temperature, top_k, top_p, seed):
    """Per prompt, the acceptance probability a = min(1, p(Y)/q(Y)) of one draft token Y ~ q at each
    recorded position (seeded): what a drafter would see along the recorded text."""
    from spectheory.logits import from_logits

    rng = np.random.default_rng(seed)
    traces = []
    for i in range(len(rec.shards)):
        shard = rec.shard(i, np.float64)
        p = from_logits(shard["target"], temperature=temperature, top_k=top_k, top_p=top_p)
        q = from_logits(shard["draft"], temperature=temperature, top_k=top_k, top_p=top_p)
        u = rng.random(len(q))
        y = np.minimum((np.cumsum(q, axis=1) < u[:, None]).sum(axis=1), q.shape[1] - 1)
        rows = np.arange(len(q))
        qy = q[rows, y]
        a = np.where(qy > 0, np.minimum(1.0, p[rows, y] / np.where(qy > 0, qy, 1.0)), 0.0)
        traces.append(a)
    return traces


def _draft_length_section(traces, c_draft_ratios, max_k, progress):
    """Optimal policy vs threshold vs fixed K on a Markov process fitted to the traces, one comparison
    per draft-step cost (relative to one target verification, c0 = 1, c1 = 0)."""
    from spectheory.solvers import mdp
    from tqdm.auto import tqdm

    process = mdp.fit_trace(traces, model="markov", n_bins=8, resolution=0.02)
    comparisons = [mdp.compare_policies(process, float(c), max_k=max_k, s_floor=1e-4)
                   for c in tqdm(c_draft_ratios, desc="draft length", unit="cost", disable=not progress)]
    return process, comparisons


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _md_table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _plots(out: Path, summ: dict, per_pos, ns, files: list):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name):
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        files.append(name)

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for s in SCHEMES:
        ax.plot(ns, [summ[f"bound/{s}/n={n}"] for n in ns], "o-", ms=4, label=s)
    if "bound/hub/n=2" in summ:
        ax.plot([2], [summ["bound/hub/n=2"]], "s", label="hub (n = 2)")
    ax.set(xlabel="number of drafts n", ylabel="mean optimal acceptance α*", title="optimal acceptance by draft scheme")
    ax.set_xticks(ns)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save(fig, "bound_vs_n.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for v in VERIFIERS:
        pts = [(n, summ[f"bound/{NATIVE[v]}/n={n}"] - summ[f"verifier/{v}/n={n}"]) for n in ns
               if f"verifier/{v}/n={n}" in summ and f"bound/{NATIVE[v]}/n={n}" in summ]
        if pts:
            ax.plot(*zip(*pts), "o-" if len(pts) > 1 else "o", ms=4, label=f"{v} (vs α* {NATIVE[v]})")
    ax.set(xlabel="number of drafts n", ylabel="α*(scheme) − acceptance", title="each verifier's gap to its scheme's bound")
    ax.set_xticks(ns)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, "verifier_gap.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    bins = np.linspace(0, 1, 41)
    ax.hist(per_pos["verifier/sd/n=1"], bins=bins, alpha=0.6, label="n = 1 (Σ min(p, q))")
    nmax = max(ns)
    ax.hist(per_pos[f"bound/iid/n={nmax}"], bins=bins, alpha=0.5, label=f"α* iid, n = {nmax}")
    ax.set(xlabel="acceptance at one position", ylabel="positions", title="per-position acceptance")
    ax.legend()
    fig.tight_layout()
    save(fig, "acceptance_hist.png")


def report(out="report", *, target=None, draft=None, prompts=None, max_new_tokens: int = 48, n_max: int = 8,
           temperature: float = 1.0, top_k=None, top_p=None, seed: int = 0, device: str = "auto",
           max_prompts=None, c_draft_ratios=(0.05, 0.1, 0.2, 0.4), max_k: int = 16,
           progress: bool = False) -> ReportResult:
    """Record, replay and summarise a model pair (the shipped reference pair by default).

    Parameters
    ----------
    out : str or Path
        Output folder (created; resumed if it holds an earlier run).
    target, draft : str, optional
        Hugging Face model folders or hub names; both or neither (neither: the shipped pair).
    prompts : list of str, optional
        Prompts to continue (default: the shipped held-out prompts).
    max_new_tokens : int
        Tokens the target generates per prompt (the recorded positions).
    n_max : int
        Draft counts 1..n_max.
    temperature, top_k, top_p
        Sampling settings, applied to both models in generation and in every bound (REFERENCE §5).
    seed : int
        Generation and estimate seed.
    max_prompts : int, optional
        Use only the first prompts (a reduced run).
    c_draft_ratios : sequence of float
        Draft-step costs, relative to one target verification, for the draft-length section.
    max_k : int
        Longest draft the draft-length section considers.

    Returns
    -------
    ReportResult

    Notes
    -----
    One report runs in a folder at a time: a second one started on the same ``out`` waits for the
    first (an advisory lock, released when its process ends, also by SIGKILL), then finds everything
    computed. Temporary files a killed run left behind are removed when the next one starts.
    """
    kwargs = dict(locals())
    del kwargs["out"]
    if (target is None) != (draft is None):
        raise SpecTheoryValueError("--target and --draft: give both, or neither for the shipped reference pair")
    if isinstance(n_max, bool) or int(n_max) < 1:
        raise SpecTheoryValueError(f"n_max: must be >= 1, got {n_max}")
    if temperature is None or not (temperature > 0):
        raise SpecTheoryValueError(f"--temperature: must be > 0 (the target samples its continuations), got {temperature}")
    from .replay import _check_device

    _check_device(device)  # before any model is loaded or folder created
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecTheoryValueError(f"--out: not a folder: {out}")
    with folder_lock(out):
        remove_stale_temporaries(out)
        remove_stale_temporaries(out / "replay")
        return _report_locked(out, **kwargs)


def _report_locked(out, *, target=None, draft=None, prompts=None, max_new_tokens: int = 48, n_max: int = 8,
           temperature: float = 1.0, top_k=None, top_p=None, seed: int = 0, device: str = "auto",
           max_prompts=None, c_draft_ratios=(0.05, 0.1, 0.2, 0.4), max_k: int = 16,
           progress: bool = False) -> ReportResult:
    """The body of :func:`report`, run while holding its folder's lock."""
    from .record import load_recording, record

    t0 = time.perf_counter()
    ns = list(range(1, int(n_max) + 1))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = None
    if target is None:
        from .reference import load_reference_pair, reference_prompts

        target_name, draft_name = f"{REFERENCE_NAME}/target", f"{REFERENCE_NAME}/draft"
        models = load_reference_pair()
        prompts = reference_prompts() if prompts is None else prompts
    else:
        target_name, draft_name = str(target), str(draft)
        if prompts is None:
            from .reference import reference_prompts

            prompts = reference_prompts()
    if max_prompts is not None:
        prompts = prompts[: int(max_prompts)]
    if not prompts:
        raise SpecTheoryValueError("--prompts: no prompts")
    rec = record(target_name if models else target, draft_name if models else draft, prompts, out / "recording",
                 max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                 device=device, progress=progress, models=models)
    rec = load_recording(out / "recording")
    t_record = time.perf_counter() - t0

    res = replay_recording(rec, n=ns, temperature=temperature, top_k=top_k, top_p=top_p, device=device, seed=seed,
                           progress=progress, cache_dir=out / "replay")
    t_replay = time.perf_counter() - t0 - t_record
    files: list = []
    res.to_csv(out / "per_position.csv")
    files.append("per_position.csv")
    summ = res.summary()

    traces = _acceptance_traces(rec, temperature, top_k, top_p, seed)
    process, comparisons = _draft_length_section(traces, c_draft_ratios, max_k, progress)
    section_mdp = {"process": process.describe(), "comparisons": [c.as_dict() for c in comparisons]}

    _plots(out, summ, res.table, ns, files)
    from spectheory.solvers import mdp

    mdp.plot_policy(comparisons, out / "draft_length.png",
                    title="optimal drafting policy on the recorded acceptance (stop region)")
    files.append("draft_length.png")

    elapsed = time.perf_counter() - t0
    doc = {
        "pair": {"target": target_name, "draft": draft_name, "vocab_size": rec.vocab_size,
                 "recording": rec.manifest["settings"]},
        "positions": len(res),
        "n": ns,
        "summary": summ,
        "draft_length": section_mdp,
        "timing_s": {"record": t_record, "replay": t_replay, "total": elapsed},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    write_json_atomic(out / "summary.json", doc)
    files.append("summary.json")
    _write_markdown(out / "summary.md", doc, summ, ns, files)
    files.append("summary.md")
    return ReportResult(out, len(res), summ, files)


def _write_markdown(path, doc, summ, ns, files):
    lines = [f"# spectheory report: {doc['pair']['target']} vs {doc['pair']['draft']}", ""]
    g = doc["pair"]["recording"]["generation"]
    lines += [
        f"{doc['positions']} positions, V = {doc['pair']['vocab_size']}; the target continued each prompt with "
        f"{g['max_new_tokens']} tokens at temperature {g['temperature']:g}"
        + (f", top-k {g['top_k']}" if g["top_k"] else "") + (f", top-p {g['top_p']:g}" if g["top_p"] else "")
        + "; the same processing is applied to p and q in every number below. Means over positions.",
        "",
        "## Optimal acceptance α* by draft scheme",
        "",
    ]
    header = ["n"] + list(SCHEMES) + ["hub"]
    rows = []
    for n in ns:
        rows.append([n] + [_fmt(summ.get(f"bound/{s}/n={n}")) for s in SCHEMES] + [_fmt(summ.get(f"bound/hub/n={n}"))])
    lines += [_md_table(header, rows), "", "![bound](bound_vs_n.png)", "", "## Verifiers (acceptance; gap to the bound of their own scheme)", ""]
    header = ["n"] + [f"{v} ({NATIVE[v]})" for v in VERIFIERS]
    rows = []
    for n in ns:
        row = [n]
        for v in VERIFIERS:
            key = f"verifier/{v}/n={n}"
            if key not in summ:
                row.append("–")
                continue
            acc = summ[key]
            gap = summ.get(f"bound/{NATIVE[v]}/n={n}", math.nan) - acc
            se = summ.get(f"stderr/{v}/n={n}", 0.0)
            cell = f"{acc:.4f} (−{max(gap, 0):.4f})"
            if se:
                cell = f"{acc:.4f} ± {se:.1g} (−{max(gap, 0):.4f})"
            row.append(cell)
        rows.append(row)
    lines += [_md_table(header, rows), "",
              "rrs_wor at n > 2 is an estimate (± standard error of the mean over positions).", "",
              "![gap](verifier_gap.png)", "", "## Per-position acceptance", ""]
    sd = summ.get("verifier/sd/n=1")
    lines += [f"Mean single-draft acceptance Σ min(p, q): {_fmt(sd)}.", "", "![hist](acceptance_hist.png)", ""]
    mdp = doc["draft_length"]
    lines += ["## Draft length: optimal policy vs SpecDec++ threshold vs fixed K", "",
              "A Markov acceptance process (8 states, values on the lattice exp(−0.02 i), rounded down) is "
              "fitted to the recorded acceptance a = min(1, p(Y)/q(Y)) of one draft token Y ~ q per position; "
              "each round restarts from its initial law. Costs: one target verification = 1, one draft step = "
              "c_draft. Speedup = tokens per unit cost against one target call per token.", ""]
    names = ["optimal", "best threshold", "SpecDec++ best h", "SpecDec++ h=Δ0", "best fixed K", "Leviathan γ*",
             "no speculation"]
    header = ["c_draft"] + names
    rows = []
    details = []
    for c in mdp["comparisons"]:
        by = {r["name"]: r for r in c["rows"]}
        rows.append([f"{c['costs']['c_draft']:g}"] + [f"{by[n]['speedup']:.3f}" if n in by else "–" for n in names])
        details.append(f"- c_draft = {c['costs']['c_draft']:g}: " + "; ".join(
            f"{n}: {by[n]['detail']}" for n in names[1:6] if n in by))
    lines += ["Speedup of each policy:", "", _md_table(header, rows), ""] + details + ["", "![draft length](draft_length.png)", ""]
    t = doc["timing_s"]
    lines += ["## Run", "", f"record {t['record']:.1f} s, replay {t['replay']:.1f} s, total {t['total']:.1f} s "
              f"({doc['machine']['platform']}, Python {doc['machine']['python']}).", "",
              "Files: " + ", ".join(f"`{f}`" for f in files + ["summary.md"]) + "; recording in `recording/`."]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
