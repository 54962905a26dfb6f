"""Sweeps: replay recordings over a grid of settings, in-process, in a process pool or on Dask.

A sweep is a set of **pure tasks**, one per (shard, settings): a task reads one recorded shard by
path (checking its SHA-256 against the recording's manifest), replays it with
:func:`~spectheory.simulations.replay.replay` at one (temperature, top-k, top-p) and every n, and
returns a *small* table: one row holding the shard's number of positions and the mean over its
positions of every replay column. Shard i of a recording starts at the position after shard
i − 1's last (``first_position``), so its rows, and the random numbers of the rrs_wor estimate,
are those of one replay of the whole recording (as :func:`~spectheory.simulations.report.replay_recording`).

Every finished task is cached in ``cache_dir`` under the SHA-256 of its key (the settings, the
shard's SHA-256, its first position and the package version), written atomically with a content
hash and verified on read; a damaged entry is recomputed. An interrupted sweep therefore resumes,
and a resumed sweep recomputes no finished task. Results merge into one table (one row per task,
in task order, whatever the executor), and :func:`sweep_report` writes the sweep report: α* and
verifier gaps (α* of the verifier's own draft scheme minus its acceptance) against temperature,
top-p and n, with percentile-bootstrap-by-prompt intervals (:mod:`.stats`; a prompt's positions
are resampled together; the bootstrap of a position-weighted mean needs only each prompt's mean
and number of positions, which is what a task returns).

Executors: ``"inprocess"`` (default), ``"processes"`` (a :class:`concurrent.futures.ProcessPoolExecutor`
of ``workers`` spawned processes; a worker that dies has the unfinished tasks resubmitted to a
fresh pool, at most ``max_retries`` times), and Dask distributed (pass ``client=`` a
:class:`dask.distributed.Client`, which reschedules the tasks of a worker that dies). Only plain
dicts of numbers and strings travel between processes (never logits); workers read shards from
the shared filesystem. Every task computes with one torch thread, so the tables of all executors
are identical to the last bit.

Examples
--------
>>> from spectheory.simulations.sweep import SweepConfig
>>> cfg = SweepConfig(recordings=["rec"], temperatures=[0.5, 1.0], top_p=[0.9, None], n=[1, 2])
>>> [(g["temperature"], g["top_p"]) for g in cfg.grid()]
[(0.5, 0.9), (0.5, None), (1.0, 0.9), (1.0, None)]
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spectheory._validation import SpecTheoryValueError

TASK_FORMAT = "spectheory-sweep-task/1"
#: Keys a sweep config (TOML) may hold.
CONFIG_KEYS = ("recordings", "out", "n", "temperatures", "top_k", "top_p", "samplings", "verifiers", "seed",
               "device", "rrs_wor_paths")
#: Columns of the merged table that identify a task (the value columns follow them).
ID_COLUMNS = ("recording", "shard", "prompt", "positions", "temperature", "top_k", "top_p")


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepConfig:
    """What a sweep replays: recordings × temperatures × top-k × top-p, every n at once.

    Attributes
    ----------
    recordings : list of path
        Recording folders (:func:`~spectheory.simulations.record.record`).
    temperatures : list of float >= 0
    top_k : list of (int >= 1 or None)
        None: no top-k truncation.
    top_p : list of (float in (0, 1] or None)
        None: no nucleus truncation.
    n : list of int >= 1
        Draft counts (columns of every task's table).
    samplings, verifiers : list of str
        Draft schemes and verifiers (as :func:`~spectheory.simulations.replay.replay`).
    seed : int
        Key of the rrs_wor estimate's random numbers.
    device : str
        Device of every task ("cpu", "cuda" or "auto").
    rrs_wor_paths : int
        Sampled rejection histories per position for the rrs_wor estimate.
    out : path or None
        Output folder (the CLI's default: ``sweep`` next to the config file).
    """

    recordings: list
    temperatures: list = field(default_factory=lambda: [1.0])
    top_k: list = field(default_factory=lambda: [None])
    top_p: list = field(default_factory=lambda: [None])
    n: list = field(default_factory=lambda: [1, 2, 4, 8])
    samplings: list = field(default_factory=lambda: ["iid", "without_replacement", "greedy", "hub"])
    verifiers: list = field(default_factory=lambda: ["sd", "rrs", "kseq", "spechub", "greedy", "rrs_wor"])
    seed: int = 0
    device: str = "cpu"
    rrs_wor_paths: int = 256
    out: object = None

    def __post_init__(self):
        from .replay import MAX_N, SAMPLINGS, VERIFIERS

        if not isinstance(self.recordings, (list, tuple)) or not self.recordings:
            raise SpecTheoryValueError("recordings: give at least one recording folder")
        for name, allowed in (("samplings", SAMPLINGS), ("verifiers", VERIFIERS)):
            vals = getattr(self, name)
            if not isinstance(vals, (list, tuple)) or not vals:
                raise SpecTheoryValueError(f"{name}: must be a non-empty list")
            for v in vals:
                if v not in allowed:
                    raise SpecTheoryValueError(f"{name}: unknown {v!r} (known: {', '.join(allowed)})")
        for name in ("temperatures", "top_k", "top_p", "n"):
            vals = getattr(self, name)
            if not isinstance(vals, (list, tuple)) or not vals:
                raise SpecTheoryValueError(f"{name}: must be a non-empty list")
            if len(set(vals)) != len(vals):
                raise SpecTheoryValueError(f"{name}: values listed twice in {list(vals)}")
        for t in self.temperatures:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t >= 0 and math.isfinite(t)):
                raise SpecTheoryValueError(f"temperatures: each must be a finite number >= 0, got {t!r}")
        for k in self.top_k:
            if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
                raise SpecTheoryValueError(f"top_k: each must be an integer >= 1 (or 0 for none), got {k!r}")
        for p in self.top_p:
            if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not (0 < p <= 1)):
                raise SpecTheoryValueError(f"top_p: each must lie in (0, 1], got {p!r}")
        for k in self.n:
            if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= MAX_N):
                raise SpecTheoryValueError(f"n: each must be an integer in [1, {MAX_N}], got {k!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecTheoryValueError(f"seed: must be an integer >= 0, got {self.seed!r}")
        if (isinstance(self.rrs_wor_paths, bool) or not isinstance(self.rrs_wor_paths, int)
                or self.rrs_wor_paths < 2):
            raise SpecTheoryValueError(f"rrs_wor_paths: must be an integer >= 2, got {self.rrs_wor_paths!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise SpecTheoryValueError(f"device: must be 'cpu', 'cuda' or 'auto', got {self.device!r}")

    def grid(self) -> list[dict]:
        """The processing settings, temperature-major: [{temperature, top_k, top_p}, ...]."""
        return [{"temperature": float(t), "top_k": k, "top_p": None if p is None else float(p)}
                for t, k, p in itertools.product(self.temperatures, self.top_k, self.top_p)]


def _key_line(text: str, key: str) -> int | None:
    for i, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return i
    return None


def load_config(path) -> SweepConfig:
    """Read a sweep config (TOML; keys :data:`CONFIG_KEYS`).

    Recording folders and ``out`` are relative to the config file's folder. ``top_k = 0`` and
    ``top_p = 1.0`` mean no truncation (TOML has no null). An unknown key is refused naming it and
    its line; every other problem names the key.
    """
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecTheoryValueError(f"config: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecTheoryValueError(f"config: cannot read {path}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecTheoryValueError(f"config: {path}: not valid TOML ({exc})") from None
    for key, value in doc.items():
        if key not in CONFIG_KEYS:
            line = _key_line(text, key)
            where = f" (line {line})" if line else ""
            raise SpecTheoryValueError(
                f"config: {path}: unknown key {key!r}{where}; known keys: {', '.join(CONFIG_KEYS)}")
    base = path.parent

    def as_list(key, default):
        v = doc.get(key, default)
        return list(v) if isinstance(v, list) else [v]

    recs = as_list("recordings", [])
    if not all(isinstance(r, str) for r in recs):
        raise SpecTheoryValueError(f"config: {path}: recordings: must be a list of folder names")
    kw = {}
    for key in ("n", "temperatures", "samplings", "verifiers"):
        if key in doc:
            kw[key] = as_list(key, None)
    if "top_k" in doc:
        kw["top_k"] = [None if k == 0 else k for k in as_list("top_k", None)]
    if "top_p" in doc:
        kw["top_p"] = [None if (not isinstance(p, bool) and p == 1) else p for p in as_list("top_p", None)]
    for key in ("seed", "device", "rrs_wor_paths"):
        if key in doc:
            kw[key] = doc[key]
    out = doc.get("out", "sweep")
    if not isinstance(out, str):
        raise SpecTheoryValueError(f"config: {path}: out: must be a folder name")
    try:
        return SweepConfig(recordings=[str(base / r) for r in recs], out=base / out, **kw)
    except SpecTheoryValueError as exc:
        raise SpecTheoryValueError(f"config: {path}: {exc}") from None


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------
def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=True, separators=(",", ":"))


def task_key(task: dict) -> str:
    """SHA-256 of a task's content (settings, shard SHA-256, first position, version): its cache name."""
    return hashlib.sha256(_canonical(task["key"]).encode()).hexdigest()


def make_tasks(config: SweepConfig) -> list[dict]:
    """The sweep's tasks in order (recording, then settings, then shard). Each recording is
    validated (:func:`~spectheory.simulations.record.load_recording`, hashes not re-read: each
    task checks its shard's)."""
    from spectheory import __version__

    from .record import load_recording

    tasks = []
    for rpath in config.recordings:
        rec = load_recording(rpath, verify_hashes=False)
        for g in config.grid():
            first = 0
            for s in rec.shards:
                settings = {"n": sorted(config.n), "samplings": list(config.samplings),
                            "verifiers": list(config.verifiers), "seed": config.seed,
                            "rrs_wor_paths": config.rrs_wor_paths, **g}
                key = {"format": TASK_FORMAT, "settings": settings, "shard_sha256": s["sha256"],
                       "first_position": first, "positions": s["positions"], "version": __version__}
                tasks.append({"key": key, "path": str(Path(rpath) / s["file"]), "recording": str(rpath),
                              "shard": s["file"], "prompt": s["prompt"], "device": config.device})
                first += s["positions"]
    return tasks


def run_task(task: dict) -> dict:
    """Compute one task (pure: the result depends only on ``task["key"]`` and the shard's bytes).

    Returns ``{"key": SHA-256, "row": {...}, "pid": process id}``; the row holds
    :data:`ID_COLUMNS` and the mean over the shard's positions of every replay column.
    Raises :class:`~spectheory.SpecTheoryValueError` naming the task when the shard is missing or
    its SHA-256 differs from the manifest's.
    """
    import torch
    from safetensors.torch import load_file

    from .record import _sha256
    from .replay import replay

    key = task["key"]
    where = f"task {task['recording']}:{task['shard']}"
    try:
        sha = _sha256(task["path"])
    except OSError as exc:
        raise SpecTheoryValueError(f"{where}: shard cannot be read ({exc.strerror or exc})") from None
    if sha != key["shard_sha256"]:
        raise SpecTheoryValueError(f"{where}: shard is corrupted or truncated (SHA-256 differs from the manifest's)")
    tensors = load_file(task["path"])
    s = key["settings"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = replay(tensors["target"], tensors["draft"], n=s["n"], samplings=s["samplings"],
                     verifiers=s["verifiers"], temperature=s["temperature"], top_k=s["top_k"], top_p=s["top_p"],
                     device=task["device"], seed=s["seed"], rrs_wor_paths=s["rrs_wor_paths"],
                     first_position=key["first_position"])
    finally:
        torch.set_num_threads(threads)
    row = {"recording": task["recording"], "shard": task["shard"], "prompt": task["prompt"],
           "positions": len(res), "temperature": s["temperature"], "top_k": s["top_k"], "top_p": s["top_p"]}
    row.update(res.summary())
    return {"key": task_key(task), "row": row, "pid": os.getpid()}


def _content_sha256(key: dict, row: dict) -> str:
    return hashlib.sha256(_canonical({"key": key, "row": row}).encode()).hexdigest()


def _cache_path(cache_dir: Path, task: dict) -> Path:
    return cache_dir / f"{task_key(task)}.json"


def _write_task(cache_dir: Path, task: dict, row: dict) -> None:
    from spectheory.io import write_json_atomic

    write_json_atomic(_cache_path(cache_dir, task), {"format": TASK_FORMAT, "key": task["key"], "row": row,
                                                     "content_sha256": _content_sha256(task["key"], row)})


def _read_task(cache_dir: Path, task: dict):
    """The cached row of ``task`` if its entry verifies (same key, content hash matches), else None."""
    path = _cache_path(cache_dir, task)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if (not isinstance(doc, dict) or doc.get("format") != TASK_FORMAT or doc.get("key") != task["key"]
                or doc.get("content_sha256") != _content_sha256(task["key"], doc["row"])):
            return None
        row = doc["row"]
        return row if isinstance(row, dict) and all(c in row for c in ID_COLUMNS) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------------------------
# executors
# --------------------------------------------------------------------------------------------
def _run_inprocess(tasks, done):
    for t in tasks:
        done(t, run_task(t))


def _run_processes(tasks, done, workers: int, max_retries: int) -> int:
    """Process pool; on a dead worker (BrokenProcessPool) resubmit the unfinished tasks to a fresh pool."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    todo = list(tasks)
    restarts = 0
    while todo:
        broken = False
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(run_task, t): t for t in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    try:
                        result = f.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    done(futures[f], result)
                    todo.remove(futures[f])
        if broken:
            restarts += 1
            if restarts > max_retries:
                raise SpecTheoryValueError(
                    f"sweep: worker processes died {restarts} times; {len(todo)} tasks unfinished (rerun to resume)")
    return restarts


def _run_dask(tasks, done, client) -> None:
    from distributed import as_completed

    futures = {}
    for t in tasks:
        futures[client.submit(run_task, t, pure=False)] = t
    for f in as_completed(list(futures)):
        done(futures[f], f.result())


def connect(scheduler=None, dask_local=None, *, timeout: float = 10.0):
    """A :class:`dask.distributed.Client`: to ``scheduler`` (an address; an unreachable one is a
    :class:`~spectheory.SpecTheoryValueError` after ``timeout`` seconds), or to a new
    ``LocalCluster`` of ``dask_local`` worker processes (one thread each). Needs the
    ``spectheory[distributed]`` extra."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SpecTheoryValueError(
            "Dask is not installed: pip install 'spectheory[distributed]' for --scheduler/--dask-local") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as exc:
            raise SpecTheoryValueError(
                f"scheduler {scheduler}: unreachable after {timeout:g} s ({type(exc).__name__})") from None
        except ValueError as exc:
            raise SpecTheoryValueError(f"scheduler {scheduler}: {exc}") from None
    if isinstance(dask_local, bool) or not isinstance(dask_local, int) or dask_local < 1:
        raise SpecTheoryValueError(f"dask_local: must be an integer >= 1, got {dask_local!r}")
    cluster = LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


@dataclass(frozen=True)
class SweepResult:
    """The merged table of a sweep.

    Attributes
    ----------
    rows : list of dict
        One row per task, in task order: :data:`ID_COLUMNS` then the mean over the shard's positions
        of every replay column.
    computed : int
        Tasks computed by this call.
    cached : int
        Tasks read back from the cache.
    restarts : int
        Times the process pool was rebuilt after a worker died.
    """

    rows: list
    computed: int = 0
    cached: int = 0
    restarts: int = 0

    @property
    def columns(self) -> tuple:
        return tuple(self.rows[0]) if self.rows else ()

    def to_csv(self, path) -> None:
        """The table as CSV (empty cell: no top-k / top-p), atomically."""
        from spectheory.io import write_csv_atomic

        write_csv_atomic(path, [{k: ("" if v is None else v) for k, v in r.items()} for r in self.rows])

    def to_json(self, path) -> None:
        """``{"columns", "rows"}`` as JSON, atomically."""
        from spectheory.io import write_json_atomic

        write_json_atomic(path, {"columns": list(self.columns), "rows": self.rows})


def sweep(config: SweepConfig, *, cache_dir=None, workers: int | None = None, client=None, progress: bool = False,
          max_retries: int = 3, on_done=None) -> SweepResult:
    """Run a sweep (see the module docstring) and merge its tables.

    Parameters
    ----------
    config : SweepConfig
    cache_dir : path, optional
        Folder of the task cache (default ``config.out / "tasks"`` when ``config.out`` is set).
    workers : int, optional
        Run in a local pool of this many processes (default: in this process).
    client : dask.distributed.Client, optional
        Submit the tasks to this Dask client instead (workers must see the recordings' paths).
    progress : bool
        Show a progress bar (stderr) advanced by each finished task.
    max_retries : int
        Times the process pool is rebuilt after a worker dies before giving up.
    on_done : callable, optional
        Called as ``on_done(task, result)`` after each computed task (result: :func:`run_task`'s).

    Returns
    -------
    SweepResult
    """
    from ._progress import progress as progress_iter

    if not isinstance(config, SweepConfig):
        raise SpecTheoryValueError(f"config: expected a SweepConfig, got {type(config).__name__}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SpecTheoryValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if workers is not None and client is not None:
        raise SpecTheoryValueError("workers and client: give one executor, not both")
    tasks = make_tasks(config)
    if cache_dir is None and config.out is not None:
        cache_dir = Path(config.out) / "tasks"
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    if cache_dir is not None:
        for t in tasks:
            row = _read_task(cache_dir, t)
            if row is not None:
                rows[task_key(t)] = row
    todo = [t for t in tasks if task_key(t) not in rows]
    cached = len(rows)

    import queue
    ticks: queue.SimpleQueue = queue.SimpleQueue()
    bar = progress_iter(iter(ticks.get, None), desc="sweep", unit="task", total=len(todo), enabled=progress)

    def done(task, result):
        rows[task_key(task)] = result["row"]
        if cache_dir is not None:
            _write_task(cache_dir, task, result["row"])
        if on_done is not None:
            on_done(task, result)
        ticks.put(1)
        next(bar, None)

    restarts = 0
    if client is not None:
        _run_dask(todo, done, client)
    elif workers is not None:
        restarts = _run_processes(todo, done, workers, max_retries)
    else:
        _run_inprocess(todo, done)
    ticks.put(None)
    for _ in bar:
        pass
    return SweepResult([rows[task_key(t)] for t in tasks], computed=len(todo), cached=cached, restarts=restarts)


# --------------------------------------------------------------------------------------------
# the sweep report
# --------------------------------------------------------------------------------------------
def _value_columns(rows) -> list:
    return [c for c in rows[0] if c not in ID_COLUMNS and not c.startswith("stderr/")]


def summarize(result: SweepResult, *, seed: int = 0) -> list[dict]:
    """Per (temperature, top-k, top-p): the position-weighted mean of every column and of every
    ``gap/V/n=N`` (α* of verifier V's own scheme minus its acceptance), with a bootstrap-by-prompt
    interval (prompts of all recordings resampled; None with fewer than 2 prompts)."""
    from .report import _gap_columns
    from .stats import cluster_bootstrap_columns

    rows = result.rows
    if not rows:
        return []
    cols = _value_columns(rows)
    ns = sorted({int(c.rsplit("=", 1)[1]) for c in cols})
    groups_of = {}
    for r in rows:
        groups_of.setdefault((r["temperature"], r["top_k"], r["top_p"]), []).append(r)
    out = []
    for (t, k, p), rs in groups_of.items():
        counts = np.array([r["positions"] for r in rs])
        # a prompt's positions enter the position-weighted mean and its bootstrap only through
        # (mean, count): repeating each prompt's mean count times gives the same sums per prompt
        table = {c: np.repeat([r[c] for r in rs], counts) for c in cols}
        table.update(_gap_columns(table, ns))
        groups = np.repeat([f"{r['recording']}\0{r['prompt']}" for r in rs], counts)
        mean = {c: float(np.average([r[c] for r in rs], weights=counts)) if c in cols else float(np.mean(v))
                for c, v in table.items()}
        iv = None
        if len(set(groups.tolist())) >= 2:
            iv = {c: i.as_dict() for c, i in cluster_bootstrap_columns(table, groups, seed=seed).items()}
        out.append({"temperature": t, "top_k": k, "top_p": p, "positions": int(counts.sum()),
                    "prompts": len(set(groups.tolist())), "mean": mean, "intervals": iv})
    return out


def sweep_report(result: SweepResult, out, *, seed: int = 0) -> list:
    """Write ``sweep.csv``, ``sweep.json`` (merged table), ``summary.json``, ``summary.md`` and
    ``sweep.png`` (α*_iid and each verifier's gap at the largest n against temperature, one line
    per top-p) into ``out``; return the files written."""
    from spectheory.io import write_json_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summ = summarize(result, seed=seed)
    files = [out / "sweep.csv", out / "sweep.json", out / "summary.json", out / "summary.md"]
    result.to_csv(files[0])
    result.to_json(files[1])
    write_json_atomic(files[2], {"settings": summ, "tasks": len(result.rows)})
    _write_text(files[3], _markdown(summ))
    png = out / "sweep.png"
    _plot(png, summ)
    files.append(png)
    return files


def _write_text(path: Path, text: str) -> None:
    from spectheory.io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _cell(s, c):
    m = s["mean"].get(c)
    if m is None:
        return "–"
    iv = (s["intervals"] or {}).get(c)
    if iv is None:
        return f"{m:.4f}"
    from .stats import format_interval

    return format_interval(m, iv["low"], iv["high"])


def _markdown(summ) -> str:
    if not summ:
        return "# Sweep\n\nNo tasks.\n"
    keys = [c for c in summ[0]["mean"] if c.startswith("bound/iid/") or c.startswith("gap/")]
    lines = ["# Sweep", "", "Means over positions; intervals: 95% percentile bootstrap by prompt.", "",
             "| temperature | top-k | top-p | prompts | positions | " + " | ".join(keys) + " |",
             "|" + "---|" * (5 + len(keys))]
    for s in summ:
        lines.append(f"| {s['temperature']:g} | {s['top_k'] or '–'} | {s['top_p'] if s['top_p'] else '–'} | "
                     f"{s['prompts']} | {s['positions']} | " + " | ".join(_cell(s, c) for c in keys) + " |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, summ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectheory.io import atomic_path

    keys = [c for c in summ[0]["mean"]] if summ else []
    ns = sorted({int(c.rsplit("=", 1)[1]) for c in keys}) or [1]
    nmax = ns[-1]
    panels = [f"bound/iid/n={nmax}"] + [c for c in keys if c.startswith("gap/") and c.endswith(f"/n={nmax}")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    lines = {}
    for s in summ:
        lines.setdefault((s["top_k"], s["top_p"]), []).append(s)
    for ax, c in zip(axes[0], panels):
        for (k, p), ss in lines.items():
            ss = sorted(ss, key=lambda s: s["temperature"])
            x = [s["temperature"] for s in ss]
            y = [s["mean"][c] for s in ss]
            yerr = None
            if all(s["intervals"] for s in ss):
                yerr = np.maximum([[m - s["intervals"][c]["low"] for m, s in zip(y, ss)],
                                   [s["intervals"][c]["high"] - m for m, s in zip(y, ss)]], 0)
            ax.errorbar(x, y, yerr=yerr, marker="o", capsize=3, label=f"top-k {k or '–'}, top-p {p or '–'}")
        ax.set_title(c)
        ax.set_xlabel("temperature")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
