"""Confidence intervals over prompts for means over recorded positions, and printing to their digits.

Positions of one prompt are not independent (they share the text, the topic, the model's state), so
the standard error of a mean over positions that treats them as independent is too small. Every
interval here is a **percentile bootstrap by prompt** (a cluster bootstrap; Davison & Hinkley 1997,
*Bootstrap Methods and their Application*, §3.8): each replicate draws G prompts with replacement
from the G recorded prompts and recomputes the position-weighted mean

    m* = Σ_g w_g Σ_{t ∈ g} x_t / Σ_g w_g T_g,      (w_1..w_G) ~ Multinomial(G, 1/G),

which is the statistic the report prints (the mean over all positions). The interval is the
(α/2, 1 − α/2) quantiles of m* over the replicates. Replicates are seeded, so a report is
reproducible. Differences of two columns (a bound minus a verifier's acceptance) are bootstrapped
as one column of per-position differences (paired: the same resampled prompts for both), which is
much narrower than the two intervals taken apart.

With few prompts the percentile interval undercovers (it ignores the uncertainty of the spread);
:func:`cluster_bootstrap` refuses fewer than 2 prompts and the report states the number of prompts
next to every table.

Examples
--------
>>> import numpy as np
>>> from spectheory.simulations.stats import cluster_bootstrap, format_interval
>>> x = np.array([0.2, 0.4, 0.6, 0.8, 0.5, 0.5])
>>> ci = cluster_bootstrap(x, groups=[0, 0, 1, 1, 2, 2], seed=0)
>>> round(ci.mean, 4), ci.low <= ci.mean <= ci.high, ci.clusters
(0.5, True, 3)
>>> format_interval(0.53751, 0.5102, 0.5671)
'0.538 [0.510, 0.567]'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spectheory._validation import SpecTheoryValueError

#: Bootstrap replicates used by the report (MC error of a 95% quantile ≈ 0.005 of the CI width).
N_BOOT = 2000
LEVEL = 0.95
METHOD = "percentile bootstrap by prompt (cluster bootstrap), position-weighted mean"


@dataclass(frozen=True)
class Interval:
    """A mean over positions with its bootstrap interval.

    Attributes
    ----------
    mean : float
        The mean over all positions.
    low, high : float
        Bounds of the ``level`` percentile-bootstrap interval (resampling prompts).
    level : float
    clusters : int
        Number of prompts resampled.
    """

    mean: float
    low: float
    high: float
    level: float
    clusters: int

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "level": self.level,
                "clusters": self.clusters}

    def __str__(self) -> str:
        return format_interval(self.mean, self.low, self.high)


def _group_index(groups, n: int) -> tuple[np.ndarray, int]:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise SpecTheoryValueError(f"groups: expected one group label per position ({n}), got shape {g.shape}")
    _, idx = np.unique(g, return_inverse=True)
    return idx.reshape(-1), int(idx.max()) + 1 if n else 0


def bootstrap_weights(n_clusters: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, G) multinomial counts: how often each prompt is drawn in each replicate (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(np.float64)


def cluster_bootstrap_columns(columns: dict, groups, *, n_boot: int = N_BOOT, level: float = LEVEL,
                              seed: int = 0) -> dict:
    """:class:`Interval` of the mean of every column, all from the same resampled prompts.

    Parameters
    ----------
    columns : dict of str to array_like, each of shape (T,)
        Per-position values (NaN not allowed).
    groups : array_like, shape (T,)
        Prompt of each position (any hashable labels).
    n_boot : int
        Bootstrap replicates.
    level : float in (0, 1)
        Coverage of the interval.
    seed : int
        Seed of the replicates (the same for every column: intervals of a table are joint draws).

    Returns
    -------
    dict of str to Interval
    """
    if not (0 < level < 1):
        raise SpecTheoryValueError(f"level: must lie in (0, 1), got {level!r}")
    if int(n_boot) < 10:
        raise SpecTheoryValueError(f"n_boot: must be >= 10, got {n_boot!r}")
    names = list(columns)
    if not names:
        return {}
    X = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in names])
    T = X.shape[0]
    if T == 0:
        raise SpecTheoryValueError("columns: no positions")
    idx, G = _group_index(groups, T)
    if G < 2:
        raise SpecTheoryValueError(f"groups: a bootstrap by prompt needs at least 2 prompts, got {G}")
    if np.isnan(X).any():
        raise SpecTheoryValueError("columns: NaN values")
    sums = np.zeros((G, X.shape[1]))
    np.add.at(sums, idx, X)
    counts = np.bincount(idx, minlength=G).astype(np.float64)
    W = bootstrap_weights(G, int(n_boot), seed)
    reps = (W @ sums) / (W @ counts)[:, None]  # (n_boot, C)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [a, 1.0 - a], axis=0)
    mean = sums.sum(axis=0) / counts.sum()
    return {c: Interval(float(mean[j]), float(lo[j]), float(hi[j]), float(level), G) for j, c in enumerate(names)}


def cluster_bootstrap(values, groups, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval:
    """:class:`Interval` of the mean of ``values`` by a percentile bootstrap over ``groups``
    (see the module docstring)."""
    return cluster_bootstrap_columns({"x": values}, groups, n_boot=n_boot, level=level, seed=seed)["x"]


def decimals_for(half_width: float, *, max_decimals: int = 6) -> int:
    """Decimals that print a value to the precision its interval supports: the half-width's first
    significant digit, or its first two when that digit is 1 or 2 (so 0.028 → 3 decimals, 0.04 → 2)."""
    if not (half_width > 0) or not math.isfinite(half_width):
        return max_decimals
    e = math.floor(math.log10(half_width))
    lead = round(half_width / 10.0**e, 9)
    d = -e + (1 if lead < 3 else 0)
    return int(min(max(d, 0), max_decimals))


def format_interval(mean: float, low: float, high: float) -> str:
    """``"mean [low, high]"`` to the decimals of :func:`decimals_for` of the half-width; a value
    without spread (an exact zero gap, a constant column) prints as ``"0.0000 (no spread)"``."""
    if not (high - low > 1e-12 * max(1.0, abs(mean))):
        return f"{(0.0 if abs(mean) < 5e-5 else mean):.4f} (no spread)"
    d = decimals_for(0.5 * (high - low))
    return f"{mean:.{d}f} [{low:.{d}f}, {high:.{d}f}]"


def format_value(mean: float, half_width: float) -> str:
    """``mean`` alone, to the decimals its interval's half-width supports."""
    return f"{mean:.{decimals_for(half_width)}f}"
