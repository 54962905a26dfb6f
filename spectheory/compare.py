"""Every verifier against the optimal acceptance of its own draft scheme.

:func:`compare` tabulates, for target p, draft q and a range of n, each verifier's exact acceptance
(mean over positions for a batch), the optimal acceptance α* of the draft scheme it uses and the gap
between them; :func:`plot_comparison` draws acceptance against n. ``spectheory compare`` is the
command-line shell over both.
"""

from __future__ import annotations

import numbers

from dataclasses import asdict, dataclass

import numpy as np

from ._validation import SpecTheoryValueError, check_n, check_pair
from .verifiers import VERIFIERS, verifier

#: Verifiers compared by default, and the schemes whose optimal verifier is listed too.
DEFAULT_VERIFIERS = ("sd", "rrs", "rrs_wor", "kseq", "spechub", "greedy", "optimal")
OPTIMAL_SAMPLINGS = ("iid", "without_replacement")


@dataclass(frozen=True)
class ComparisonRow:
    """One verifier at one draft count.

    ``acceptance`` and ``bound`` are means over positions; ``gap = bound − acceptance`` (≥ 0 up to
    rounding, or up to ``stderr`` for an estimate). ``exact`` is False when the acceptance is an
    estimate (rrs_wor with n > 2 beyond its exact limit), with standard error ``stderr`` of the mean.
    """

    verifier: str
    sampling: str
    n: int
    acceptance: float
    stderr: float
    exact: bool
    method: str
    bound: float
    gap: float
    min_acceptance: float
    max_acceptance: float


def _applies(name: str, n: int) -> bool:
    return not ((name == "sd" and n != 1) or (name == "spechub" and n != 2))


def compare(p, q, ns, verifiers=DEFAULT_VERIFIERS, *, progress: bool = False) -> list[ComparisonRow]:
    """Exact acceptance of each verifier and the optimal acceptance of its draft scheme, for each n.

    Parameters
    ----------
    p, q : array_like, shape (V,) or (B, V)
        Target and draft distributions (one position, or a batch: results are means over positions).
    ns : iterable of int
        Draft counts. ``sd`` is listed at n = 1 only and ``spechub`` at n = 2 only.
    verifiers : iterable of str
        Names from :data:`spectheory.verifiers.VERIFIERS`. ``"optimal"`` adds one row per scheme in
        :data:`OPTIMAL_SAMPLINGS` (its acceptance is the bound).
    progress : bool
        Show a progress bar (tqdm, on stderr).

    Returns
    -------
    list of ComparisonRow

    Examples
    --------
    >>> import spectheory as st
    >>> rows = st.compare([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [1, 2])
    >>> [(r.verifier, r.n, round(r.acceptance, 4), round(r.gap, 4)) for r in rows if r.n == 2][:2]
    [('rrs', 2, 0.76, 0.1), ('rrs_wor', 2, 0.82, 0.1657)]
    """
    if isinstance(ns, (numbers.Integral, float)) and not isinstance(ns, bool):
        ns = [ns]  # compare(p, q, 4): one draft count
    try:
        ns = sorted({check_n(n, "ns") for n in ns})
    except TypeError:
        raise SpecTheoryValueError(f"ns: expected a draft count or a list of them, got {ns!r}") from None
    if not ns:
        raise SpecTheoryValueError("ns: no draft count given")
    names = list(dict.fromkeys(verifiers))
    for name in names:
        if name not in VERIFIERS:
            raise SpecTheoryValueError(f"verifiers: unknown verifier {name!r}; choose from {', '.join(VERIFIERS)}")
    jobs = []
    for n in ns:
        for name in names:
            if not _applies(name, n):
                continue
            if name == "optimal":
                jobs.extend((name, s, n) for s in OPTIMAL_SAMPLINGS)
            else:
                jobs.append((name, VERIFIERS[name].sampling, n))
    if not jobs:
        raise SpecTheoryValueError(
            f"verifiers: none of {', '.join(names)} applies at n = {', '.join(map(str, ns))} "
            "(sd needs n = 1, spechub n = 2)"
        )
    from .solvers.optimal import optimal_acceptance

    bounds: dict = {}
    rows = []
    from tqdm.auto import tqdm

    # every scheme's bound for all its n in one pass of the bound engine
    by_scheme: dict = {}
    for _, sampling, n in jobs:
        by_scheme.setdefault(sampling, [])
        if n not in by_scheme[sampling]:
            by_scheme[sampling].append(n)
    for sampling, sns in by_scheme.items():
        vals = np.asarray(optimal_acceptance(p, q, sns, sampling))
        vals = vals.reshape(-1, len(sns))
        for j, n in enumerate(sns):
            bounds[(sampling, n)] = vals[:, j]
    batched = _batched_acceptances(p, q, jobs)

    for name, sampling, n in tqdm(jobs, desc="compare", disable=not progress, leave=False):
        if (sampling, n) not in bounds:
            bounds[(sampling, n)] = np.atleast_1d(optimal_acceptance(p, q, n, sampling))
        bound = bounds[(sampling, n)]
        v = verifier(name, sampling=sampling) if name == "optimal" else verifier(name)
        if name == "optimal":
            values, errs, exact, method = bound, np.zeros_like(bound), True, "optimal (attains the bound)"
        elif (name, n) in batched:
            values, errs, exact, method = batched[(name, n)]
        else:
            d = v.acceptance_detail(p, q, n)
            values, errs, exact, method = np.atleast_1d(d.value), np.atleast_1d(d.stderr), d.exact, d.method
        B = len(values)
        rows.append(
            ComparisonRow(
                verifier=name,
                sampling=sampling,
                n=n,
                acceptance=float(values.mean()),
                stderr=float(np.sqrt(np.sum(errs**2)) / B),
                exact=bool(exact),
                method=method,
                bound=float(bound.mean()),
                gap=float(bound.mean() - values.mean()),
                min_acceptance=float(values.min()),
                max_acceptance=float(values.max()),
            )
        )
    return rows


def _batched_acceptances(p, q, jobs) -> dict:
    """Every verifier of :data:`spectheory.verifiers.batched.BATCHED_VERIFIERS` in ``jobs`` for all its
    n in one call of :func:`spectheory.verifiers.batched.acceptances` (one shared ratio sort), with
    the default options of :func:`spectheory.verifier` (so the numbers are those of
    ``st.verifier(name).acceptance_detail``). Returns {(name, n): (values, stderr, exact, method)}."""
    from .verifiers import batched as bt
    from .verifiers.rrs_wor import method_name

    want: dict = {}
    for name, _, n in jobs:
        if name in bt.BATCHED_VERIFIERS:
            want.setdefault(name, []).append(n)
    if not want:
        return {}
    P, Q, _, _ = check_pair(p, q, 1, "iid")
    res = bt.acceptances(P, Q, want)
    support = np.count_nonzero(Q > 0, axis=1)
    out = {}
    for (name, n), (value, stderr, exact) in res.items():
        exact_all = bool(np.all(exact))
        method = method_name(np.minimum(n, support), exact, bt.ESTIMATE_PATHS) if name == "rrs_wor" else "closed form"
        out[(name, n)] = (np.clip(value, 0.0, 1.0), np.asarray(stderr), exact_all, method)
    return out


def rows_as_dicts(rows) -> list[dict]:
    """The rows as plain dicts (for JSON and CSV)."""
    return [asdict(r) for r in rows]


def plot_comparison(rows, path, *, title: str | None = None) -> None:
    """Acceptance against n: one solid line per verifier, one dashed line per scheme's optimum α*.

    Written atomically to ``path`` (PNG). Needs matplotlib (``pip install 'spectheory[plot]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise SpecTheoryValueError(
            "plot: matplotlib is not installed; pip install 'spectheory[plot]' (or leave the plot out)"
        ) from None
    from .io import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    bounds: dict = {}
    for r in rows:
        bounds.setdefault(r.sampling, {})[r.n] = r.bound
    dashes = {"iid": "--", "without_replacement": ":", "greedy": "-.", "hub": (0, (5, 2, 1, 2)), "independent": (0, (1, 1))}
    for sampling, pts in sorted(bounds.items()):
        ns = sorted(pts)
        ax.plot(ns, [pts[n] for n in ns], color="0.35", ls=dashes.get(sampling, "--"), lw=1.3, zorder=1,
                label=f"α* {sampling}")
    curves: dict = {}
    for r in rows:
        if r.verifier == "optimal":
            continue
        curves.setdefault(r.verifier, []).append(r)
    colors = plt.get_cmap("tab10").colors
    for i, (name, rs) in enumerate(curves.items()):
        rs = sorted(rs, key=lambda r: r.n)
        ns = [r.n for r in rs]
        acc = [r.acceptance for r in rs]
        ax.errorbar(ns, acc, yerr=[2 * r.stderr for r in rs], fmt="o-" if len(rs) > 1 else "o", ms=4,
                    capsize=2, color=colors[i % len(colors)], zorder=2, label=f"{name} ({rs[0].sampling})")
    ax.set_xlabel("number of drafts n")
    ax.set_ylabel("acceptance P(Y ∈ drafts)")
    all_n = sorted({r.n for r in rows})
    ax.set_xticks(all_n)
    ax.set_title(title or "verifiers against the optimal acceptance of their draft scheme")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
