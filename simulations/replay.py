"""Replay recorded logits: per-position optimal acceptance and every verifier's acceptance, batched in torch.

Given the logits of a target and a draft model at the same T positions (shape (T, V) each; p = target,
q = draft, REFERENCE §2), :func:`replay` applies temperature / top-k / top-p to *both* (exactly
:func:`spectheory.from_logits`, REFERENCE §5) and computes, for every position and every requested n:

==================================  ===============================================================
column                              value
==================================  ===============================================================
``bound/iid/n=N``                   α*_iid = min(1, min_k [P(H_k) + 1 − Q(H_k)^N]) over the sorted
                                    prefixes H_k (p/q ascending, q = 0 last), exact
``bound/without_replacement/n=N``   α* for drafts without replacement: the sorted-prefix dual with
                                    the exponential-race quadrature (prefix property proved)
``bound/greedy/n=N``                p(T) + Σ_{x∉T} min(p, q'), T the N − 1 most likely draft tokens
``bound/hub/n=2``                   min(1, p(a) + Σ_{x≠a} min(p, q/(1 − q(a))))
``bound/topk/n=N``                  p(T), T the N most likely draft tokens (on request)
``verifier/sd/n=1``                 Σ min(p, q) — torch, exact
``verifier/rrs/n=N``                1 − Π_{i≤N} (1 − Σ min(R_i, q)) — torch, exact
``verifier/kseq/n=N``               1 − (1 − β(ρ*))^N, ρ* by batched bisection — torch, exact
``verifier/spechub/n=2``            SpecHub's closed form — torch, exact
``verifier/greedy/n=N``             equal to ``bound/greedy/n=N`` (the verifier attains it)
``verifier/rrs_wor/n=N``            N ≤ 2 (or |supp q| ≤ 2): closed form, exact. Otherwise an
                                    **estimate**: Rao–Blackwellised Monte Carlo over ``rrs_wor_paths``
                                    sampled rejection histories — torch
``stderr/rrs_wor/n=N``              its standard error (0 where exact)
==================================  ===============================================================

All bound columns come from :func:`spectheory.solvers.bounds.bound_rows`, the package's one
implementation of each bound, every n in one pass, in float64 (numba on the CPU for iid without a
shared sort and for without_replacement).

Columns appear only where they are defined: ``sd`` and nothing else at n = 1 for sd, ``spechub`` and
``hub`` only at n = 2. Distinct-draft schemes (without replacement, greedy, and rrs_wor) draw
min(N, |supp q|) drafts per position, as the NumPy path (:mod:`spectheory.schemes`).

Exactness: in float64 every exact column equals the NumPy reference path
(``st.optimal_acceptance(p, q, n, sampling)``, ``st.verifier(name).acceptance(p, q, n)`` on
``st.from_logits`` of the same logits) to 1e-9 (``tests/test_replay.py``; the differences seen are
rounding, ~1e-13 at V = 152k). In float32 the torch columns agree with it to about 1.5e-6 (measured
at V = 4096 and 152k; the tests use 1e-5); the without-replacement bound is always computed in
float64.

The rrs_wor column is the one implementation every entry point calls
(:func:`spectheory.verifiers.batched.rrs_wor`): exact (closed form, or the recursion over rejection
histories where their number is small), otherwise the keyed Rao–Blackwellised estimate, the same
number as ``st.verifier("rrs_wor", seed=seed).acceptance`` on the same probabilities with the row
index as position (``tests/test_batched_verifiers.py``). After
rejections of x_1..x_j, recursive rejection without replacement has residual R = (p − θq)+/Z(θ)
and draft law D = q/m off the rejected tokens (θ' = θ + Z(θ)/m after each rejection), so a step
costs O(log V) per sampled history. The uniforms are a hash of (``seed``, position, history, step):
results do not depend on the chunking, the device or the thread count.

Computation is batched over ``chunk_size`` positions at a time on ``device`` (no Python loop over
positions); the per-chunk work is a pure function of (logits, settings) returning columns, so shards
of a sweep can be replayed independently and joined with :meth:`ReplayResult.concat`. On a CPU shared
with other processes, torch's intra-op threads can stall at every operation (OpenMP barriers waiting
for a descheduled thread): ``torch.set_num_threads(1)`` was up to 10x faster on a busy 2-core machine.

Examples
--------
>>> import numpy as np
>>> from spectheory.simulations.replay import replay
>>> target = np.log([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]])     # logits of two positions, V = 3
>>> draft = np.log([[0.2, 0.3, 0.5], [0.1, 0.3, 0.6]])
>>> res = replay(target, draft, n=2, device="cpu")
>>> len(res), res.columns[:4]
(2, ('position', 'bound/iid/n=2', 'bound/without_replacement/n=2', 'bound/greedy/n=2'))
>>> [round(float(x), 6) for x in res["bound/iid/n=2"]]
[0.86, 0.59]
>>> round(float(res["verifier/kseq/n=2"][0]), 6), round(float(res["verifier/rrs_wor/n=2"][0]), 6)
(0.791355, 0.82)
>>> round(res.summary()["verifier/spechub/n=2"], 6)          # mean of 0.9 and 0.65
0.775
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from spectheory._validation import SpecTheoryValueError, check_int, check_n

SAMPLINGS = ("iid", "without_replacement", "greedy", "hub", "topk")
#: Schemes reported by default (``topk`` on request).
DEFAULT_SAMPLINGS = ("iid", "without_replacement", "greedy", "hub")
VERIFIERS = ("sd", "rrs", "kseq", "spechub", "greedy", "rrs_wor")
DEFAULT_N = tuple(range(1, 9))
#: Default number of sampled rejection histories per position for the rrs_wor estimate (n > 2).
RRS_WOR_PATHS = 256
#: Largest draft count replay accepts (checked before any allocation; beyond it n exceeds any
#: vocabulary's useful range and the per-n columns would not fit).
MAX_N = 1024
#: Largest number of rrs_wor sampled histories per position (memory grows with it).
MAX_RRS_WOR_PATHS = 1 << 16
#: Default chunk: about this many (position, token) entries per (B, V) tensor (CPU; 8x on CUDA).
CHUNK_ENTRIES = 1 << 22

_METHODS = {
    "bound/iid": "sorted-prefix dual (spectheory.solvers.bounds, exact)",
    "bound/without_replacement": "sorted-prefix dual with exponential-race quadrature, numba on CPU float64 "
    "(spectheory.solvers.bounds; prefix property proved)",
    "bound/greedy": "closed form (spectheory.solvers.bounds, exact)",
    "bound/hub": "closed form (spectheory.solvers.bounds, exact)",
    "bound/topk": "closed form p(top-n draft tokens) (spectheory.solvers.bounds, exact)",
    "verifier/sd": "closed form, torch (exact)",
    "verifier/rrs": "closed form, torch (exact)",
    "verifier/kseq": "bisection for rho*, torch (exact)",
    "verifier/spechub": "closed form, torch (exact)",
    "verifier/greedy": "closed form, torch (exact)",
    "verifier/rrs_wor": "closed form for min(n, |supp q|) <= 2 (exact); otherwise Rao-Blackwellised Monte Carlo "
    "over sampled rejection histories, torch (estimate, see stderr/rrs_wor)",
}


# --------------------------------------------------------------------------------------------
# the result table
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayResult:
    """Per-position table of a replay: named columns of equal length.

    Attributes
    ----------
    table : dict of str to numpy.ndarray
        ``position`` (int64) and the value columns (float64) described in the module docstring,
        in a fixed order.
    settings : dict
        Everything the values depend on (n, samplings, verifiers, temperature, top_k, top_p, dtype,
        rrs_wor_paths, seed, V) and which columns hold estimates.
    info : dict
        Provenance that does not change the values (device, chunk size, method per column family).
    """

    table: dict
    settings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        lengths = {len(v) for v in self.table.values()}
        if len(lengths) > 1:
            raise SpecTheoryValueError(f"table: columns of different lengths {sorted(lengths)}")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.table)

    def __len__(self) -> int:
        return len(next(iter(self.table.values()))) if self.table else 0

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.table[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns: {', '.join(self.table)}") from None

    def to_rows(self) -> list[dict]:
        """One dict per position (Python ints and floats)."""
        names = self.columns
        cols = [self.table[c].tolist() for c in names]
        return [dict(zip(names, vals)) for vals in zip(*cols)]

    def summary(self) -> dict:
        """Mean over positions of each value column; for ``stderr/...`` columns the standard error of
        that mean, sqrt(Σ_t se_t²)/T (positions' estimates are independent)."""
        out = {}
        T = len(self)
        for name, col in self.table.items():
            if name == "position":
                continue
            if name.startswith("stderr/"):
                out[name] = float(np.sqrt(np.sum(np.square(col)))) / T if T else math.nan
            else:
                out[name] = float(np.mean(col)) if T else math.nan
        return out

    def to_csv(self, path) -> None:
        """Write the table as CSV, one row per position, atomically."""
        from spectheory.io import write_csv_atomic

        write_csv_atomic(path, self.to_rows())

    def to_json(self, path) -> None:
        """Write ``{"settings", "info", "summary", "columns"}`` as JSON, atomically (read back with
        :meth:`from_json`)."""
        from spectheory.io import write_json_atomic

        doc = {
            "settings": self.settings,
            "info": self.info,
            "summary": self.summary(),
            "columns": {k: v.tolist() for k, v in self.table.items()},
        }
        write_json_atomic(path, doc)

    @classmethod
    def from_json(cls, path) -> ReplayResult:
        """Read a file written by :meth:`to_json`."""
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        table = {
            k: np.asarray(v, dtype=np.int64 if k == "position" else np.float64) for k, v in doc["columns"].items()
        }
        return cls(table, doc.get("settings", {}), doc.get("info", {}))

    @classmethod
    def concat(cls, results) -> ReplayResult:
        """Join the tables of shards replayed with the same settings (positions in the given order)."""
        results = list(results)
        if not results:
            raise SpecTheoryValueError("results: nothing to concatenate")
        first = results[0]
        for r in results[1:]:
            if r.columns != first.columns or r.settings != first.settings:
                raise SpecTheoryValueError("results: shards were replayed with different settings or columns")
        table = {c: np.concatenate([r.table[c] for r in results]) for c in first.columns}
        return cls(table, dict(first.settings), dict(first.info))


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is the replay extra
        raise SpecTheoryValueError("replay needs torch: pip install 'spectheory[replay]'") from None
    return torch


def _as_logits(x, name: str):
    torch = _torch()
    if np.ndim(x) == 0:
        raise SpecTheoryValueError(f"{name}: expected logits of shape (T, V) or (V,), got a scalar")
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dtype == torch.bool or t.is_complex():
            raise SpecTheoryValueError(f"{name}: expected float logits, got a tensor of dtype {t.dtype}")
    else:
        a = np.asarray(x)
        if a.dtype.kind not in "fiu":
            raise SpecTheoryValueError(f"{name}: expected float logits, got an array of dtype {a.dtype}")
        if a.dtype.kind in "iu":
            a = a.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.ndim == 1:
        t = t[None, :]
    if t.ndim != 2:
        raise SpecTheoryValueError(f"{name}: expected logits of shape (T, V), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise SpecTheoryValueError(f"{name}: empty logits of shape {tuple(t.shape)}")
    return t


def _check_finite(t, name: str, start: int, stop: int) -> None:
    torch = _torch()
    block = t[start:stop]
    if not block.dtype.is_floating_point:
        return
    bad = torch.isnan(block) | torch.isposinf(block)
    if bool(bad.any()):
        pos, tok = (int(i) for i in torch.nonzero(bad)[0])
        raise SpecTheoryValueError(
            f"{name}: NaN or +inf at position {start + pos}, token {tok} (only -inf may mask a token)"
        )
    dead = torch.isneginf(block).all(dim=1)
    if bool(dead.any()):
        pos = int(torch.nonzero(dead)[0, 0])
        raise SpecTheoryValueError(f"{name}: position {start + pos} is entirely -inf (no token left)")


def _check_n_list(n) -> tuple[int, ...]:
    if isinstance(n, (numbers.Number, str)):
        items = [n]
    else:
        try:
            items = list(n)
        except TypeError:
            raise SpecTheoryValueError(f"n: expected an integer or a list of integers, got {n!r}") from None
    if not items:
        raise SpecTheoryValueError("n: no draft counts given")
    return tuple(sorted({check_n(v, maximum=MAX_N, why="replay's documented limit") for v in items}))


def _check_names(values, allowed, name: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise SpecTheoryValueError(f"{name}: expected names from {', '.join(allowed)}, got {values!r}") from None
    for v in values:
        if v not in allowed:
            extra = " (the optimal acceptance is the bound: use samplings=)" if v == "optimal" else ""
            raise SpecTheoryValueError(f"{name}: unknown {v!r}{extra}; choose from {', '.join(allowed)}")
    return tuple(a for a in allowed if a in values)  # canonical order, no duplicates


def _check_temperature(temperature, top_k, top_p):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not math.isfinite(temperature) or temperature < 0:
        raise SpecTheoryValueError(f"temperature: must be a finite number >= 0, got {temperature!r}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise SpecTheoryValueError(f"top_k: must be an integer >= 1 or None, got {top_k!r}")
        top_k = int(top_k)
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not (0 < top_p <= 1):
            raise SpecTheoryValueError(f"top_p: must lie in (0, 1] or be None, got {top_p!r}")
        top_p = float(top_p)
    return float(temperature), top_k, top_p


def _check_device(device):
    torch = _torch()
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SpecTheoryValueError(f"device: {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SpecTheoryValueError(f"device: {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def _check_dtype(dtype):
    torch = _torch()
    names = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32, "float": torch.float32}
    if isinstance(dtype, str) and dtype in names:
        return names[dtype]
    if dtype in (torch.float64, torch.float32):
        return dtype
    if dtype in (np.float64, np.float32) or isinstance(dtype, np.dtype) and dtype in (np.float64, np.float32):
        return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    raise SpecTheoryValueError(f"dtype: computation runs in torch.float64 or torch.float32, got {dtype!r}")


def _check_int(value, name: str, low: int, high: int | None = None, why: str = "") -> int:
    return check_int(value, name, minimum=low, maximum=high, why=why)


# --------------------------------------------------------------------------------------------
# one chunk: a pure function of (logits, settings)
# --------------------------------------------------------------------------------------------
def column_names(ns, samplings, verifiers) -> list[str]:
    """The value columns :func:`replay` produces for these settings, in order."""
    cols = []
    for s in samplings:
        for n in ns:
            if s == "hub" and n != 2:
                continue
            cols.append(f"bound/{s}/n={n}")
    for v in verifiers:
        for n in ns:
            if (v == "sd" and n != 1) or (v == "spechub" and n != 2):
                continue
            cols.append(f"verifier/{v}/n={n}")
    if "rrs_wor" in verifiers:
        cols += [f"stderr/rrs_wor/n={n}" for n in ns]
    return cols


def replay_chunk(target_logits, draft_logits, positions, settings: dict) -> dict:
    """Columns (name → float64 numpy array) for one chunk of positions.

    ``target_logits``, ``draft_logits``: validated (B, V) tensors already on the computing device;
    ``positions``: their position indices (B,), int64 (the random numbers of the rrs_wor estimate
    are keyed by them); ``settings``: as built by :func:`replay`.
    """
    import torch

    from spectheory.verifiers import batched as bt

    from . import _torch_bounds as tb

    ns = settings["n"]
    samplings, verifiers = settings["samplings"], settings["verifiers"]
    dtype = settings["_torch_dtype"]
    temp, top_k, top_p = settings["temperature"], settings["top_k"], settings["top_p"]
    p = tb.probs_from_logits(target_logits.to(dtype), temp, top_k, top_p)
    q = tb.probs_from_logits(draft_logits.to(dtype), temp, top_k, top_p)
    out: dict[str, torch.Tensor | np.ndarray] = {}

    from spectheory.solvers.bounds import bound_rows

    need_sort = bool(set(verifiers) & {"rrs", "kseq", "rrs_wor"})
    sr = bt.sort_by_ratio(p, q) if need_sort else None
    nl = list(ns)
    # the bounds are computed in float64 on rows renormalised there (float32 / bf16 input)
    p64, q64 = p.to(torch.float64), q.to(torch.float64)
    if dtype != torch.float64:
        p64, q64 = p64 / p64.sum(dim=1, keepdim=True), q64 / q64.sum(dim=1, keepdim=True)
    greedy = None
    if "greedy" in samplings or "greedy" in verifiers:
        g = bound_rows(p64, q64, nl, "greedy")
        greedy = {n: g[:, j] for j, n in enumerate(nl)}

    for s in samplings:
        if s == "greedy":
            for n in ns:
                out[f"bound/greedy/n={n}"] = greedy[n]
            continue
        if s == "hub":
            if 2 not in ns:
                continue
            use = [2]
        else:
            use = nl
        # one pass for every n (the i.i.d. bound reuses the verifiers' ratio sort when there is one)
        vals = bound_rows(p64, q64, use, s, sr=sr if (s == "iid" and sr is not None and dtype == torch.float64) else None)
        for j, n in enumerate(use):
            out[f"bound/{s}/n={n}"] = vals[:, j]

    # verifiers: the one batched implementation (spectheory.verifiers.batched)
    for v in verifiers:
        if v == "sd" and 1 in ns:
            out["verifier/sd/n=1"] = bt.sd(p, q)
        elif v in ("rrs", "kseq"):
            vals = (bt.rrs if v == "rrs" else bt.kseq)(sr, ns)
            for j, n in enumerate(ns):
                out[f"verifier/{v}/n={n}"] = vals[:, j]
        elif v == "spechub" and 2 in ns:
            out["verifier/spechub/n=2"] = bt.spechub(p, q)
        elif v == "greedy":
            for n in ns:
                out[f"verifier/greedy/n={n}"] = greedy[n]
        elif v == "rrs_wor":
            res = bt.rrs_wor(p, q, ns, seed=settings["seed"], positions=positions, paths=settings["rrs_wor_paths"], sr=sr)
            for j, n in enumerate(ns):
                out[f"verifier/rrs_wor/n={n}"] = res.value[:, j]
                out[f"stderr/rrs_wor/n={n}"] = res.stderr[:, j]

    cols = {}
    for name in column_names(ns, samplings, verifiers):
        val = out[name]
        if isinstance(val, np.ndarray):
            cols[name] = val.astype(np.float64)
        else:
            cols[name] = val.to(device="cpu", dtype=torch.float64).numpy()
    return cols


# --------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------
def replay(
    target_logits,
    draft_logits,
    *,
    n=DEFAULT_N,
    samplings=DEFAULT_SAMPLINGS,
    verifiers=VERIFIERS,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    device="auto",
    dtype=None,
    chunk_size: int | None = None,
    rrs_wor_paths: int = RRS_WOR_PATHS,
    seed: int = 0,
    first_position: int = 0,
) -> ReplayResult:
    """Per-position optimal acceptance and verifier acceptance over recorded logits.

    Both logit arrays go through the same temperature, top-k and top-p processing as
    :func:`spectheory.from_logits` (Hugging Face warper order; T = 0 is the argmax limit, uniform over
    ties); then, per position and per n, the columns of the module docstring are computed in
    batches of ``chunk_size`` positions on ``device``.

    Parameters
    ----------
    target_logits, draft_logits : torch.Tensor or array_like, shape (T, V) (or (V,) for one position)
        Logits of the target (p) and the draft (q) at the same positions, any float dtype (bfloat16,
        float16, float32, float64) on any device. ``-inf`` masks a token; NaN and +inf are errors.
    n : int or iterable of int, default 1..8
        Draft counts, each at most ``MAX_N`` (1024).
    samplings : iterable of {"iid", "without_replacement", "greedy", "hub", "topk"}
        Draft schemes whose optimal acceptance is reported (``hub`` at n = 2 only); default all but
        ``topk``.
    verifiers : iterable of {"sd", "rrs", "kseq", "spechub", "greedy", "rrs_wor"}
        Verifiers whose exact acceptance (rrs_wor at n > 2: an estimate) is reported; ``sd`` at n = 1
        and ``spechub`` at n = 2 only.
    temperature : float >= 0
    top_k : int >= 1 or None
    top_p : float in (0, 1] or None
    device : "auto", "cpu", "cuda", torch.device
        "auto": CUDA when available, else CPU. The without-replacement bound always runs on CPU
        (numba, float64).
    dtype : torch.float64 (default) or torch.float32
        Precision of the torch computation (inputs are converted to it before the softmax).
    chunk_size : int, optional
        Positions per batch; default about 4M / V on CPU (32M / V on CUDA), at least 1.
    rrs_wor_paths : int >= 2
        Sampled rejection histories per position for the rrs_wor estimate (n > 2); its standard
        error shrinks like 1/sqrt(rrs_wor_paths); at most :data:`MAX_RRS_WOR_PATHS` (65536).
    seed : int
        Key of the rrs_wor estimate's random numbers (with the position index).
    first_position : int
        Index of the first position (``position`` column, and the random-number key), so that a
        shard replayed alone gives the rows it gives inside the whole recording.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ValueError
        (:class:`~spectheory.SpecTheoryValueError`) Logits of different shapes, empty, with NaN or
        +inf, or a position entirely masked; a negative temperature; bad n, names, device or dtype.
    """
    torch = _torch()
    x_t = _as_logits(target_logits, "target_logits")
    x_d = _as_logits(draft_logits, "draft_logits")
    if x_t.shape[1] != x_d.shape[1]:
        raise SpecTheoryValueError(
            f"target_logits and draft_logits: vocabulary sizes differ (V = {x_t.shape[1]} and V = {x_d.shape[1]})"
        )
    if x_t.shape[0] != x_d.shape[0]:
        raise SpecTheoryValueError(
            f"target_logits and draft_logits: numbers of positions differ ({x_t.shape[0]} and {x_d.shape[0]})"
        )
    ns = _check_n_list(n)
    samplings = _check_names(samplings, SAMPLINGS, "samplings")
    verifiers = _check_names(verifiers, VERIFIERS, "verifiers")
    temperature, top_k, top_p = _check_temperature(temperature, top_k, top_p)
    dev = _check_device(device)
    tdtype = _check_dtype(torch.float64 if dtype is None else dtype)
    paths = _check_int(rrs_wor_paths, "rrs_wor_paths", 2, MAX_RRS_WOR_PATHS, "replay's documented limit")
    seed = _check_int(seed, "seed", 0)
    first_position = _check_int(first_position, "first_position", 0)
    T, V = x_t.shape
    if chunk_size is None:
        entries = CHUNK_ENTRIES * (8 if dev.type == "cuda" else 1)
        chunk_size = max(1, entries // V)
    chunk_size = _check_int(chunk_size, "chunk_size", 1)

    for start in range(0, T, chunk_size):
        _check_finite(x_t, "target_logits", start, start + chunk_size)
        _check_finite(x_d, "draft_logits", start, start + chunk_size)

    settings = {
        "n": list(ns),
        "samplings": list(samplings),
        "verifiers": list(verifiers),
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "dtype": str(tdtype).replace("torch.", ""),
        "rrs_wor_paths": paths,
        "seed": seed,
        "V": int(V),
        "estimates": [f"verifier/rrs_wor/n={k}" for k in ns if k >= 3] if "rrs_wor" in verifiers else [],
    }
    work = dict(settings, n=ns, samplings=samplings, verifiers=verifiers, _torch_dtype=tdtype)
    names = column_names(ns, samplings, verifiers)
    parts: dict[str, list] = {c: [] for c in names}
    with torch.no_grad():
        for start in range(0, T, chunk_size):
            stop = min(T, start + chunk_size)
            pos = torch.arange(first_position + start, first_position + stop, dtype=torch.int64)
            cols = replay_chunk(x_t[start:stop].to(dev), x_d[start:stop].to(dev), pos, work)
            for c in names:
                parts[c].append(cols[c])
    table = {"position": np.arange(first_position, first_position + T, dtype=np.int64)}
    for c in names:
        table[c] = np.concatenate(parts[c])
    info = {
        "device": str(dev),
        "chunk_size": chunk_size,
        "methods": {k: m for k, m in _METHODS.items() if any(c.startswith(k + "/") for c in names)},
        "first_position": first_position,
    }
    return ReplayResult(table, settings, info)
