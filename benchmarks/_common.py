"""Shared helpers for the benchmarks in this folder (not part of the package).

* :func:`time_call` / :func:`median` — ``time.perf_counter`` timings, median of repeats.
* :func:`llm_like_pair` — synthetic LLM-like target/draft distributions over a large vocabulary.
* :func:`print_table` — plain, aligned text tables.
* :func:`write_json` — rows (plus machine and argument metadata) to ``bench-results/<name>.json``.

The benchmark scripts import this module as ``_common``: ``python benchmarks/bench_x.py`` puts
``benchmarks/`` first on ``sys.path``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench-results"


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
def time_call(fn, repeats: int, *, max_total_s: float | None = None) -> list[float]:
    """Call ``fn()`` ``repeats`` times and return the wall times in seconds (``time.perf_counter``).

    With ``max_total_s``, stop early (after at least one call) once the calls so far took longer
    than that in total, so slow cases are not repeated needlessly.
    """
    times: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if max_total_s is not None and sum(times) > max_total_s:
            break
    return times


def median(xs) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------------------------
# synthetic inputs
# --------------------------------------------------------------------------------------------
def llm_like_logits(V: int, B: int, rng: np.random.Generator, scale: float = 2.5, noise: float = 1.0):
    """Synthetic LLM-like logits, float64, shape (B, V) each:

    base = N(0, 1)·``scale``; target = base + N(0, ``noise``²); draft = target + N(0, ``noise``²).
    The draft is a noisy copy of the target, as a small model's logits are of a large one's.
    """
    base = rng.standard_normal((B, V)) * scale
    target = base + rng.standard_normal((B, V)) * noise
    draft = target + rng.standard_normal((B, V)) * noise
    return target, draft


def llm_like_pair(V: int, B: int, seed: int = 0, temperature: float = 1.0):
    """(p, q): softmax (``st.from_logits``, float64) of :func:`llm_like_logits`, shape (B, V) each."""
    import spectheory as st

    rng = np.random.default_rng([seed, V])
    target, draft = llm_like_logits(V, B, rng)
    p = np.ascontiguousarray(st.from_logits(target, temperature=temperature), dtype=np.float64)
    q = np.ascontiguousarray(st.from_logits(draft, temperature=temperature), dtype=np.float64)
    return p, q


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------
def fmt(x, spec: str = ".3g", none: str = "-") -> str:
    """Format a number for a table cell; None / NaN print as ``none``; strings pass through."""
    if x is None:
        return none
    if isinstance(x, str):
        return x
    if isinstance(x, float) and math.isnan(x):
        return none
    return format(x, spec)


def print_table(headers: list[str], rows: list[list[str]], *, right: set[int] | None = None, file=None) -> None:
    """Print ``rows`` (lists of already formatted strings) under ``headers``, columns aligned.

    Columns whose index is in ``right`` are right-aligned (default: every column whose cells all
    look numeric).
    """
    file = file or sys.stdout
    cols = len(headers)
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    if right is None:
        right = set()
        for i in range(cols):
            cells = [r[i] for r in rows if r[i] not in ("-", "")]
            if cells and all(_looks_numeric(c) for c in cells):
                right.add(i)

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    print(line(headers), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in rows:
        print(line(r), file=file)
    file.flush()


def _looks_numeric(s: str) -> bool:
    s = s.strip().rstrip("x%").lstrip("<>≤≥")
    s = s.replace(",", "").replace("_", "")
    try:
        float(s)
        return True
    except ValueError:
        return False


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }
    for mod in ("numba", "scipy", "cvxpy", "spectheory"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional
            pass
    try:
        import numba

        info["numba_default_threads"] = int(numba.config.NUMBA_NUM_THREADS)
    except Exception:  # pragma: no cover
        pass
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_json(name: str, rows: list[dict], *, args: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``{"benchmark", "created", "args", "machine", "rows", ...extra}`` to
    ``bench-results/<name>.json`` (the folder is created; it is git-ignored). Returns the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {
        "benchmark": name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "args": args or {},
        "machine": machine_info(),
        "rows": rows,
    }
    if extra:
        doc.update(extra)
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
