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

from ._progress import progress as progress_iter
from .stats import LEVEL, N_BOOT, cluster_bootstrap_columns, format_interval
from .stats import METHOD as STATS_METHOD

SCHEMES = ("iid", "without_replacement", "greedy")
VERIFIERS = ("sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy")
#: the draft scheme each verifier draws with (its gap is measured to that scheme's bound)
NATIVE = {"sd": "iid", "rrs": "iid", "rrs_wor": "without_replacement", "kseq": "iid", "spechub": "hub",
          "greedy": "greedy"}
REFERENCE_NAME = "spectheory reference pair"
#: the draft-length section's fit: bins requested, value lattice exp(-RESOLUTION i), survival floor
N_BINS = 8
RESOLUTION = 0.02
S_FLOOR = 1e-4


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and its headline numbers.

    ``summary``: mean over positions of every column; ``intervals``: their bootstrap-by-prompt
    :class:`~.stats.Interval` (also of the ``gap/...`` columns), None with a single prompt."""

    out: Path
    positions: int
    summary: dict
    files: list
    intervals: dict | None = None


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
    from spectheory import __version__

    from .replay import DEFAULT_SAMPLINGS, VERIFIERS, column_names, replay, ReplayResult

    ns = list(n)
    settings = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        settings = {"n": ns, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
                    "recording": [s["sha256"] for s in rec.shards], "version": __version__}
        tag = _settings_key(settings)
        columns = ["position"] + column_names(sorted(set(ns)), DEFAULT_SAMPLINGS, VERIFIERS)
    results = []
    first = 0
    for i, s in enumerate(progress_iter(rec.shards, desc="replay", unit="shard", enabled=progress)):
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
    per draft-step cost (relative to one target verification, c0 = 1, c1 = 0); and the speedup of
    every fixed K for the draft-length figure."""
    from spectheory.solvers import mdp

    process = mdp.fit_trace(traces, model="markov", n_bins=N_BINS, resolution=RESOLUTION)
    comparisons = [mdp.compare_policies(process, float(c), max_k=max_k, s_floor=S_FLOOR)
                   for c in progress_iter(c_draft_ratios, desc="draft length", unit="cost", enabled=progress)]
    fixed = [mdp.best_fixed_k(process, float(c), max_k=max_k) for c in c_draft_ratios]
    return process, comparisons, fixed


def _settings_label(g: dict) -> str:
    """``"T = 1, top-k 50, top-p 0.9"`` from a recording's generation settings."""
    if not g.get("do_sample", True):
        s = "greedy generation"
    else:
        s = f"T = {g['temperature']:g}"
    if g.get("top_k"):
        s += f", top-k {g['top_k']}"
    if g.get("top_p"):
        s += f", top-p {g['top_p']:g}"
    return s


def _short(name: str) -> str:
    name = str(name)
    if name.startswith(REFERENCE_NAME):
        return "reference " + name.rsplit("/", 1)[-1]
    return Path(name).name or name


def _gap_columns(table: dict, ns) -> dict:
    """Per-position gap = α*(the verifier's own scheme) − the verifier's acceptance (≥ 0), the sign
    used everywhere (``spectheory compare``, ``verifier_gap.png``, summary.md)."""
    out = {}
    for v in VERIFIERS:
        for n in ns:
            a, b = f"verifier/{v}/n={n}", f"bound/{NATIVE[v]}/n={n}"
            if a in table and b in table:
                out[f"gap/{v}/n={n}"] = table[b] - table[a]
    return out


def _intervals(columns: dict, groups, seed: int):
    """Bootstrap-by-prompt intervals of every column's mean, or None with fewer than 2 prompts."""
    if len(np.unique(groups)) < 2:
        return None
    return cluster_bootstrap_columns(columns, groups, seed=seed)


def _cell(key, summ, iv, digits=4):
    """A table cell: the mean with its interval when there is one."""
    if iv is not None and key in iv:
        return str(iv[key])
    return _fmt(summ.get(key), digits)


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _md_table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _yerr(iv, keys, means):
    if iv is None:
        return None
    lo = [m - iv[k].low for k, m in zip(keys, means)]
    hi = [iv[k].high - m for k, m in zip(keys, means)]
    return np.maximum([lo, hi], 0.0)


def _plots(out: Path, summ: dict, iv, per_pos, ns, files: list, label: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name):
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        files.append(name)

    bars = "" if iv is None else "; bars: 95% bootstrap-by-prompt intervals"
    fig, ax = plt.subplots(figsize=(6.5, 4.4), dpi=120)
    for s in SCHEMES:
        keys = [f"bound/{s}/n={n}" for n in ns]
        means = [summ[k] for k in keys]
        ax.errorbar(ns, means, yerr=_yerr(iv, keys, means), fmt="o-", ms=4, capsize=3, label=s)
    if "bound/hub/n=2" in summ:
        ax.errorbar([2], [summ["bound/hub/n=2"]], yerr=_yerr(iv, ["bound/hub/n=2"], [summ["bound/hub/n=2"]]),
                    fmt="s", capsize=3, label="hub (n = 2)")
    ax.set(xlabel="number of drafts n", ylabel="mean optimal acceptance α*")
    ax.set_title(f"optimal acceptance by draft scheme\n{label}{bars}", fontsize=9)
    ax.set_xticks(ns)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save(fig, "bound_vs_n.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.4), dpi=120)
    gaps = _gap_columns({k: np.asarray([v]) for k, v in summ.items()}, ns)
    for v in VERIFIERS:
        keys = [f"gap/{v}/n={n}" for n in ns if f"gap/{v}/n={n}" in gaps]
        if not keys:
            continue
        xs = [int(k.rsplit("=", 1)[1]) for k in keys]
        means = [float(gaps[k][0]) for k in keys]
        ax.errorbar(xs, means, yerr=_yerr(iv, keys, means), fmt="o-" if len(xs) > 1 else "o", ms=4, capsize=3,
                    label=f"{v} (vs α* {NATIVE[v]})")
    ax.set(xlabel="number of drafts n", ylabel="gap = α*(own scheme) − acceptance")
    ax.set_title(f"each verifier's gap to its scheme's bound (≥ 0)\n{label}{bars}", fontsize=9)
    ax.set_xticks(ns)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, "verifier_gap.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.4), dpi=120)
    bins = np.linspace(0, 1, 41)
    ax.hist(per_pos["verifier/sd/n=1"], bins=bins, alpha=0.6, label="α₁ = Σ min(p, q) (n = 1)")
    nmax = max(ns)
    ax.hist(per_pos[f"bound/iid/n={nmax}"], bins=bins, alpha=0.5, label=f"α* iid, n = {nmax}")
    ax.set(xlabel="acceptance at one position", ylabel="positions")
    ax.set_title(f"per-position acceptance\n{label}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    save(fig, "acceptance_hist.png")


def _plot_draft_length(path, comparisons, fixed, label: str) -> None:
    """Top: per draft-step cost, the optimal policy's decision at every state (k, S_k) it reaches
    with positive probability (states it never reaches — below its stop region — are not drawn).
    Bottom: speedup against fixed K, with each cost's optimal policy as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectheory.solvers._mdp_model import forward

    n = len(comparisons)
    fig = plt.figure(figsize=(max(4.0 * n, 8.0), 7.6), dpi=110)
    gs = fig.add_gridspec(2, n, height_ratios=[1.0, 0.9])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, cmp in enumerate(comparisons):
        ax = fig.add_subplot(gs[0, j])
        opt = cmp.optimal
        model, conts = opt.policy.model, list(opt.policy.conts)
        mu = forward(model, conts)
        pts = {"tab:green": ([], []), "tab:red": ([], []), "tab:orange": ([], [])}
        for k in range(model.max_k):
            S = model.layers[k].S
            for s in range(S.shape[0]):
                r = mu[k][s] > 0
                if not np.any(r) or S[s] <= 0:
                    continue
                c = conts[k][s][r]
                col = "tab:green" if np.all(c) else ("tab:red" if not np.any(c) else "tab:orange")
                pts[col][0].append(k)
                pts[col][1].append(S[s])
        names = {"tab:green": "draft again", "tab:red": "stop and verify", "tab:orange": "depends on state"}
        for col, (ks, ss) in pts.items():
            if ks:
                ax.scatter(ks, ss, c=col, s=10, linewidths=0, label=names[col])
        caps = cmp.threshold_caps
        if not caps.is_fixed_k:
            ax.axhline(1 - caps.policy.h, color="tab:blue", ls="--", lw=1.0,
                       label=f"best SpecDec++ h = {caps.policy.h:.3g}")
        ax.set_yscale("log")
        cont = pts["tab:green"][1] + pts["tab:orange"][1]
        if cont:  # show the decision boundary, not the whole red stop region below it
            low = min(cont) / 30.0
            ax.set_ylim(low, 1.5)
            ax.text(0.98, 0.02, "every reachable state below: stop", transform=ax.transAxes, ha="right",
                    va="bottom", fontsize=7, color="tab:red")
        ax.set_xlabel("drafts so far k")
        if j == 0:
            ax.set_ylabel("survival S_k = Π a_j (reachable states)")
        ax.set_title(f"c_draft = {cmp.costs.c_draft:g}: optimal ×{opt.speedup:.3f}", fontsize=9)
        ax.grid(alpha=0.25, which="both")
        ax.legend(fontsize=6.5, loc="upper right")
    ax = fig.add_subplot(gs[1, :])
    for j, (cmp, fk) in enumerate(zip(comparisons, fixed)):
        col = colors[j % len(colors)]
        ax.plot(fk.ks, fk.speedups, "o-", ms=3, color=col, label=f"fixed K, c_draft = {cmp.costs.c_draft:g}")
        ax.axhline(cmp.optimal.speedup, color=col, ls="--", lw=1.0)
        ax.plot([fk.k], [fk.speedup], "*", ms=10, color=col)
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set(xlabel="draft length K (fixed)", ylabel="speedup (tokens per target-call cost)")
    ax.set_title("speedup against fixed K (★ best K; dashed: optimal policy at the same cost)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"draft length on the fitted acceptance process — {label}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _effective_temperature(g: dict) -> float:
    """A recording's generation temperature, 0 for greedy generation."""
    return 0.0 if not g.get("do_sample", True) else float(g["temperature"])


def _same_processing(g: dict, processing: dict) -> bool:
    """Whether the replay's (temperature, top-k, top-p) is the recording's generation law."""
    T = _effective_temperature(g)
    if T == 0.0 or processing["temperature"] == 0.0:
        return T == processing["temperature"]  # greedy: top-k / top-p keep the argmax
    return (T == processing["temperature"] and (g.get("top_k") or None) == (processing["top_k"] or None)
            and (g.get("top_p") or None) == processing["top_p"])


def _draft_length_lines(dl) -> list:
    lines = ["## Draft length: optimal policy vs SpecDec++ threshold vs fixed K", "",
              f"A Markov acceptance process on {dl['states']} states ({dl['requested_bins']} equal-mass bins of "
              f"the trace values requested; bins that coincide because values repeat are merged) is fitted to the "
              f"trace a_t (above); values are rounded down to the lattice exp(−{dl['resolution']:g} i) and survival "
              f"below {dl['s_floor']:g} is treated as 0, so the speedups are lower bounds for the fitted chain. "
              "Each round restarts from the chain's initial law. Costs: one target verification = 1, one draft "
              "step = c_draft. Speedup = tokens per unit cost against one target call per token. The speedups are "
              "point values of the fitted model (no interval).", ""]
    names = ["optimal", "best threshold", "SpecDec++ best h", "SpecDec++ h=Δ0", "best fixed K", "Leviathan γ*",
             "no speculation"]
    header = ["c_draft"] + names
    rows = []
    details = []
    for c in dl["comparisons"]:
        by = {r["name"]: r for r in c["rows"]}
        rows.append([f"{c['costs']['c_draft']:g}"] + [f"{by[n]['speedup']:.3f}" if n in by else "–" for n in names])
        details.append(f"- c_draft = {c['costs']['c_draft']:g}: " + "; ".join(
            f"{n}: {by[n]['detail']}" for n in names[1:6] if n in by))
    lines += ["Speedup of each policy:", "", _md_table(header, rows), ""] + details + [
        "", "![draft length](draft_length.png)", "",
        "Top: the optimal policy at every state (k, S_k) it reaches; bottom: speedup against fixed K.", ""]
    return lines


def _processing_sentence(pr: dict) -> str:
    if pr["same_as_generation"]:
        s = "the same processing is applied to p and q in every number below."
    else:
        s = (f"every number below applies {_processing_label(pr)} to p and q at these recorded prefixes "
             "(a settings sweep on one recording: the prefixes follow the recording's generation law, "
             "not this one; the per-position values are exact for the prefixes seen).")
    if pr["temperature"] == 0:
        s += ("\n\n**Temperature 0 is the greedy limit**: p and q are uniform over their maximal logits "
              "(one-hot without ties). α₁ is then the fraction of positions where the draft's argmax is the "
              "target's, and the bounds no longer grow with n: a one-hot draft proposes the same token n times "
              "(iid) or has one token to propose (without replacement, greedy), so α*(n) = α₁ up to ties. "
              "Verifying greedy drafts against greedy target decoding is lossless for the greedy output.")
    return s


def _processing_label(processing: dict) -> str:
    if processing["temperature"] == 0:
        return "T = 0 (greedy limit)"
    return _settings_label(dict(processing, do_sample=True))


def _settings_slug(processing: dict) -> str:
    """The subfolder of a setting that is not the recording's own: ``settings-T=0.7_top-k=50``."""
    s = f"settings-T={processing['temperature']:g}"
    if processing["top_k"]:
        s += f"_top-k={processing['top_k']}"
    if processing["top_p"] is not None:
        s += f"_top-p={processing['top_p']:g}"
    return s


def generation_for(rec_dir, target_name, draft_name, prompts, *, max_new_tokens, temperature, top_k, top_p,
                   seed, chat=False) -> dict:
    """The generation settings a report uses for its recording folder ``rec_dir``.

    A recording already there for the same pair, prompts, length, seed and dtype keeps its own
    generation settings (a report at another temperature replays it, it does not re-record); otherwise
    the requested ones, greedy when ``temperature == 0``."""
    from .record import MANIFEST, _settings

    want = _settings(target_name, draft_name, prompts, max_new_tokens=max_new_tokens,
                     temperature=temperature, top_k=top_k, top_p=top_p, do_sample=temperature > 0,
                     teacher_force=False, seed=seed, dtype="float32", chat=chat)
    try:
        have = json.loads((Path(rec_dir) / MANIFEST).read_text(encoding="utf-8"))["settings"]
        ident = ("target", "draft", "prompts_sha256", "dtype")
        hg = have["generation"]
        if all(have[k] == want[k] for k in ident) and all(
                hg.get(k) == want["generation"][k] for k in ("max_new_tokens", "teacher_force", "seed", "chat",
                                                              "sampler")):
            return dict(hg, _settings=have)
    except (OSError, ValueError, KeyError, TypeError):  # no recording yet, or damaged: record() decides
        pass
    return dict(want["generation"], _settings=want)


def _complete_recording(rec_dir, gen: dict):
    """The recording in ``rec_dir`` when it is complete for ``gen``'s settings (no model needed),
    else None."""
    from .record import MANIFEST, load_recording

    if not (Path(rec_dir) / MANIFEST).is_file():
        return None
    rec = load_recording(rec_dir)  # validates; a damaged recording is one error line
    if rec.manifest["settings"] != gen["_settings"]:
        return None  # record() refuses it with its own message
    if len(rec.shards) != len(rec.manifest.get("prompts", [])):
        return None
    return rec


def report(out="report", *, target=None, draft=None, prompts=None, max_new_tokens: int = 48, n_max: int = 8,
           temperature: float = 1.0, top_k=None, top_p=None, seed: int = 0, device: str = "auto",
           max_prompts=None, c_draft_ratios=(0.05, 0.1, 0.2, 0.4), max_k: int = 16,
           progress: bool = False, categories=None, tokenizer=None, ignore_auto_map: bool = False,
           models=None, batch_size: int = 1, chat: bool = False) -> ReportResult:
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
        ``temperature = 0`` is the greedy limit (greedy generation; p and q uniform over their argmax).
        When ``out`` already holds a recording of the same pair, prompts, length and seed made at other
        settings, it is replayed at these settings (not re-recorded) and the files go to
        ``out/settings-T=..[_top-k=..][_top-p=..]/``; each setting has its own cached replay in
        ``out/replay``. A complete recording is never re-opened with the models: the report is rebuilt
        from the stored logits alone.
    seed : int
        Generation and estimate seed.
    max_prompts : int, optional
        Use only the first prompts (a reduced run).
    c_draft_ratios : sequence of float
        Draft-step costs, relative to one target verification, for the draft-length section.
    max_k : int
        Longest draft the draft-length section considers.
    progress : bool
        Show progress on stderr: a bar on a terminal, log lines otherwise.
    categories : list of str, optional
        A category per prompt (after ``max_prompts``); summary.md and summary.json then carry a
        table per category (stored in the recording's manifest when it is made).
    tokenizer : str or Path, optional
        The tokenizer's source for model folders that do not hold it.
    ignore_auto_map : bool
        Opt-in to load folders naming their own code with transformers' implementation (their code
        is never run); see :func:`spectheory.simulations.models.load_model`.
    models : tuple, optional
        Already loaded ``(target_model, draft_model, tokenizer)``; ``target`` and ``draft`` are then
        only their names (used by the named real pairs, whose drafts are built in memory).
    batch_size, chat
        Prompts per forward pass, and the chat template, for the recording (:func:`.record.record`).

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
    if temperature is None or not (temperature >= 0):
        raise SpecTheoryValueError(f"--temperature: must be >= 0 (0: the greedy limit), got {temperature}")
    from .replay import _check_device

    _check_device(device)  # before any model is loaded or folder created
    if models is None and target is not None:  # a mistyped local path fails before anything is written
        from .models import resolve_source

        resolve_source(target, "--target")
        resolve_source(draft, "--draft")
        if tokenizer is not None:
            resolve_source(tokenizer, "--tokenizer")
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
           progress: bool = False, categories=None, tokenizer=None, ignore_auto_map: bool = False,
           models=None, batch_size: int = 1, chat: bool = False) -> ReportResult:
    """The body of :func:`report`, run while holding its folder's lock."""
    from .record import load_recording, record

    t0 = time.perf_counter()
    ns = list(range(1, int(n_max) + 1))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if target is None and models is None:
        target_name, draft_name = f"{REFERENCE_NAME}/target", f"{REFERENCE_NAME}/draft"
    else:
        target_name, draft_name = str(target), str(draft)
    if prompts is None:
        from .reference import reference_prompts

        prompts = reference_prompts()
    if max_prompts is not None:
        prompts = prompts[: int(max_prompts)]
        categories = None if categories is None else list(categories)[: int(max_prompts)]
    if not prompts:
        raise SpecTheoryValueError("--prompts: no prompts")
    if categories is not None and len(categories) != len(prompts):
        raise SpecTheoryValueError(f"categories: {len(categories)} given for {len(prompts)} prompts")
    gen = generation_for(out / "recording", target_name, draft_name, prompts, max_new_tokens=max_new_tokens,
                         temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, chat=chat)
    rec = _complete_recording(out / "recording", gen)
    if rec is None:  # record (or resume): only now are the models loaded
        if target is None and models is None:
            from .reference import load_reference_pair

            models = load_reference_pair()
        record(target_name if models else target, draft_name if models else draft, prompts, out / "recording",
               max_new_tokens=max_new_tokens, temperature=gen["temperature"], top_k=gen["top_k"], top_p=gen["top_p"],
               do_sample=gen["do_sample"], seed=seed, device=device, progress=progress, models=models,
               tokenizer=tokenizer, ignore_auto_map=ignore_auto_map, batch_size=batch_size, chat=chat,
               categories=categories)
        rec = load_recording(out / "recording")
    t_record = time.perf_counter() - t0
    processing = {"temperature": float(temperature), "top_k": None if top_k is None else int(top_k),
                  "top_p": None if top_p is None else float(top_p)}
    g_rec = rec.manifest["settings"]["generation"]
    same = _same_processing(g_rec, processing)
    if not same:  # a settings sweep in one folder: this setting's files in their own subfolder
        out = out / _settings_slug(processing)
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)

    res = replay_recording(rec, n=ns, temperature=temperature, top_k=top_k, top_p=top_p, device=device, seed=seed,
                           progress=progress, cache_dir=rec.path.parent / "replay")
    t_replay = time.perf_counter() - t0 - t_record
    files: list = []
    res.to_csv(out / "per_position.csv")
    files.append("per_position.csv")
    summ = res.summary()

    traces = _acceptance_traces(rec, temperature, top_k, top_p, seed)
    if temperature == 0:
        # the trace is the 0/1 indicator "draft argmax = target argmax": the lattice-rounded process
        # fit used below is not meaningful for it (and its solver fails on 0/1 traces)
        comparisons, fixed = [], []
        section_mdp = {"process": None, "states": None, "requested_bins": N_BINS, "resolution": RESOLUTION,
                       "s_floor": S_FLOOR, "comparisons": [], "fixed_k": [],
                       "skipped": "temperature 0: the acceptance trace is the 0/1 argmax-match indicator"}
    else:
        process, comparisons, fixed = _draft_length_section(traces, c_draft_ratios, max_k, progress)
        section_mdp = {"process": process.describe(), "states": int(len(process.initial)),
                       "requested_bins": N_BINS, "resolution": RESOLUTION, "s_floor": S_FLOOR,
                       "comparisons": [c.as_dict() for c in comparisons],
                       "fixed_k": [{"c_draft": float(c), "k": fk.ks.tolist(), "speedup": fk.speedups.tolist()}
                                   for c, fk in zip(c_draft_ratios, fixed)]}

    # statistics over prompts: every mean with a bootstrap-by-prompt interval
    shards = rec.shards
    groups = np.repeat([s["prompt"] for s in shards], [s["positions"] for s in shards])
    cats_by_prompt = rec.manifest.get("categories") or categories
    cols = {k: v for k, v in res.table.items() if k != "position" and not k.startswith("stderr/")}
    cols.update(_gap_columns(res.table, ns))
    cols["trace/a"] = np.concatenate(traces)
    iv = _intervals(cols, groups, seed)
    by_category = {}
    if cats_by_prompt is not None:
        pos_cat = np.asarray(["(none)" if cats_by_prompt[g] is None else str(cats_by_prompt[g]) for g in groups])
        heads = _headline_keys(ns)
        for cat in sorted(set(pos_cat.tolist())):
            m = pos_cat == cat
            sub = {k: cols[k][m] for k in heads if k in cols}
            entry = {"prompts": int(len(np.unique(groups[m]))), "positions": int(m.sum()),
                     "means": {k: float(np.mean(v)) for k, v in sub.items()}}
            civ = _intervals(sub, groups[m], seed)
            entry["intervals"] = None if civ is None else {k: c.as_dict() for k, c in civ.items()}
            by_category[cat] = entry

    label = f"{_short(target_name)} vs {_short(draft_name)}, {_processing_label(processing)}"
    if not same:
        label += f" (recorded at {_settings_label(g_rec)})"
    _plots(out, summ, iv, res.table, ns, files, label)
    if comparisons:
        _plot_draft_length(out / "draft_length.png", comparisons, fixed, label)
        files.append("draft_length.png")

    elapsed = time.perf_counter() - t0
    doc = {
        "pair": {"target": target_name, "draft": draft_name, "vocab_size": rec.vocab_size,
                 "recording": rec.manifest["settings"]},
        "processing": dict(processing, same_as_generation=bool(same)),
        "positions": len(res),
        "prompts": int(len(shards)),
        "n": ns,
        "summary": summ,
        "statistics": {"method": STATS_METHOD, "replicates": N_BOOT, "level": LEVEL, "seed": int(seed),
                       "clusters": int(len(np.unique(groups)))},
        "intervals": None if iv is None else {k: c.as_dict() for k, c in iv.items()},
        "categories": by_category or None,
        "acceptance": {"alpha_1": summ.get("verifier/sd/n=1"), "trace_mean": float(np.mean(cols["trace/a"])),
                       "alpha_hat_fitted": comparisons[0].alpha_hat if comparisons else None},
        "draft_length": section_mdp,
        "timing_s": {"record": t_record, "replay": t_replay, "total": None},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    doc["timing_s"]["total"] = time.perf_counter() - t0
    write_json_atomic(out / "summary.json", doc)
    files.append("summary.json")
    _write_markdown(out / "summary.md", doc, summ, iv, ns, files)
    files.append("summary.md")
    return ReportResult(out, len(res), summ, files, None if iv is None else dict(iv))


def _headline_keys(ns):
    nmax = max(ns)
    return ["verifier/sd/n=1", f"bound/iid/n={nmax}", f"bound/without_replacement/n={nmax}",
            f"verifier/rrs/n={nmax}", f"verifier/kseq/n={nmax}", f"gap/kseq/n={nmax}"]


def _write_markdown(path, doc, summ, iv, ns, files):
    pair = doc["pair"]
    g = pair["recording"]["generation"]
    st_ = doc["statistics"]
    G = doc["prompts"]
    nmax = max(ns)
    lines = [f"# spectheory report: {pair['target']} vs {pair['draft']}", ""]
    how = "greedily" if not g.get("do_sample", True) else f"at temperature {g['temperature']:g}"
    lines += [
        f"{doc['positions']} positions from {G} prompts, V = {pair['vocab_size']}; the target continued each "
        f"prompt with up to {g['max_new_tokens']} tokens {how}"
        + (f", top-k {g['top_k']}" if g["top_k"] else "") + (f", top-p {g['top_p']:g}" if g["top_p"] else "")
        + "; " + _processing_sentence(doc["processing"]),
        "",
        "## How to read the numbers",
        "",
    ]
    if iv is not None:
        lines.append(f"Every value is a mean over positions, followed by its {st_['level']:.0%} interval "
                     f"[low, high]: a {st_['method']} ({st_['replicates']} replicates over the {st_['clusters']} "
                     f"prompts, seed {st_['seed']}). Values are printed to the digits their interval supports. "
                     "With few prompts a percentile interval tends to be too narrow.")
    else:
        lines.append("One prompt only: no interval over prompts can be given; values are printed to 4 decimals "
                     "and carry an unknown sampling error.")
    a = doc["acceptance"]
    lines += [
        "",
        "- **α₁ = Σ_x min(p(x), q(x))**: the single-draft acceptance, exact at each position (the n = 1 "
        "row of every table: every scheme and verifier coincide there).",
        "- **α\\*(scheme, n)**: the optimal acceptance of a draft scheme with n drafts (an upper bound on "
        "every lossless verifier that drafts with that scheme).",
        "- **acceptance(verifier, n)**: a published verifier's exact acceptance (rrs_wor at n > 2: an "
        "unbiased estimate, its Monte Carlo error is inside the interval).",
        "- **gap = α\\*(the verifier's own scheme) − acceptance ≥ 0**: how much a verifier leaves on the "
        "table; the same sign in `spectheory compare` and `verifier_gap.png`. Its interval is of the "
        "per-position difference (paired), narrower than the two intervals apart.",
        "- **ā = mean of a_t = min(1, p(Y_t)/q(Y_t))** with one draft token Y_t ~ q sampled per position "
        "(seeded): the acceptance trace the draft-length section is fitted to. E[a_t] = α₁, so ā is a "
        "Monte Carlo estimate of α₁.",
        "- **α̂ (Leviathan's α)**: the fitted process's mean acceptance over the first "
        f"{doc['draft_length']['comparisons'][0]['max_k'] if doc['draft_length']['comparisons'] else '–'} "
        "drafts of a round, with the trace values rounded *down* to the lattice exp(−0.02 i): below ā by "
        "the rounding and the fitted chain's restart law; used only to pick Leviathan's γ*.",
        "",
        f"Here α₁ = {_cell('verifier/sd/n=1', summ, iv)}, ā = {_cell('trace/a', {'trace/a': a['trace_mean']}, iv)}, "
        f"α̂ = {_fmt(a['alpha_hat_fitted'])}.",
        "",
        "## Optimal acceptance α* by draft scheme",
        "",
    ]
    header = ["n"] + [f"α* {s}" for s in SCHEMES] + ["α* hub"]
    rows = [[n] + [_cell(f"bound/{s}/n={n}", summ, iv) for s in SCHEMES] + [_cell(f"bound/hub/n={n}", summ, iv)]
            for n in ns]
    lines += [_md_table(header, rows), "", "![bound](bound_vs_n.png)", "",
              "## Verifiers: acceptance", ""]
    header = ["n"] + [f"{v} ({NATIVE[v]})" for v in VERIFIERS]
    rows = [[n] + [_cell(f"verifier/{v}/n={n}", summ, iv) for v in VERIFIERS] for n in ns]
    lines += [_md_table(header, rows), "", "## Gap to the bound of each verifier's own scheme", "",
              "gap = α*(scheme) − acceptance ≥ 0 (n = 1: every verifier is exact, gap 0).", ""]
    gaps = _gap_columns({k: np.asarray([v]) for k, v in summ.items()}, ns)
    gsum = {k: float(v[0]) for k, v in gaps.items()}
    rows = [[n] + [_cell(f"gap/{v}/n={n}", gsum, iv) for v in VERIFIERS] for n in ns if n > 1]
    lines += [_md_table(header, rows), "", "![gap](verifier_gap.png)", ""]
    cats = doc.get("categories")
    if cats:
        heads = _headline_keys(ns)
        names = ["α₁", f"α* iid n={nmax}", f"α* wor n={nmax}", f"rrs n={nmax}", f"kseq n={nmax}", f"gap kseq n={nmax}"]
        lines += ["## By category", "", "Each category's own bootstrap over its prompts (no interval with one prompt).", ""]
        rows = []
        for cat, e in cats.items():
            civ = e["intervals"]
            row = [cat, e["prompts"], e["positions"]]
            for k in heads:
                if civ and k in civ:
                    c = civ[k]
                    row.append(format_interval(c["mean"], c["low"], c["high"]))
                else:
                    row.append(_fmt(e["means"].get(k)))
            rows.append(row)
        lines += [_md_table(["category", "prompts", "positions"] + names, rows), ""]
    lines += ["## Per-position acceptance", "", "![hist](acceptance_hist.png)", ""]
    dl = doc["draft_length"]
    if dl.get("skipped"):
        lines += ["## Draft length", "", f"Not computed: {dl['skipped']} (every draft is accepted or rejected "
                  "with certainty; the expected tokens per round follow from α₁ directly).", ""]
        dl = None
    if dl is not None:
        lines += _draft_length_lines(dl)
    t = doc["timing_s"]
    lines += ["## Run", "", f"record {t['record']:.1f} s, replay {t['replay']:.1f} s, total {t['total']:.1f} s "
              f"({doc['machine']['platform']}, Python {doc['machine']['python']}).", "",
              "Files: " + ", ".join(f"`{f}`" for f in files + ["summary.md"]) + "; recording in `recording/`."]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
