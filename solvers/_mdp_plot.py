"""PNG of drafting policies in the (k, S_k) plane (re-exported as
:func:`spectheory.solvers.mdp.plot_policy`; needs matplotlib)."""

from __future__ import annotations

import numpy as np

from spectheory._validation import SpecTheoryValueError

#: Most panels (cost settings) drawn in one figure.
MAX_PANELS = 6


def plot_policy(comparisons, path, *, title: str | None = None) -> list:
    """Draw the optimal policy's stop region in the (k, S_k) plane, one panel per comparison.

    Every state reachable when always drafting is a dot at (k, S_k): green where the optimal policy
    drafts again, red where it stops, orange where the decision depends on the information state.
    Horizontal lines: the best SpecDec++ rule at caps (1, max_k) (S = 1 − h), SpecDec++'s Δ = 0
    value (S = 1 − h₀) and the sufficient stop level S = λ*(c_draft + c1) below which stopping is
    always optimal; the vertical line is the best fixed K. Written atomically to ``path`` (PNG);
    at most :data:`MAX_PANELS` panels. Returns the comparisons drawn.

    Examples
    --------
    >>> import os, tempfile, spectheory as st
    >>> mdp = st.solvers.mdp
    >>> cmp = mdp.compare_policies(mdp.iid_process([0.3, 0.95], [0.3, 0.7]), 0.1, max_k=8)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = mdp.plot_policy([cmp], os.path.join(d, "policy.png"))
    ...     os.path.getsize(os.path.join(d, "policy.png")) > 1000
    True
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise SpecTheoryValueError(
            "plot: matplotlib is not installed; pip install 'spectheory[plot]' (or leave the plot out)"
        ) from None
    from spectheory.io import atomic_path

    comparisons = list(comparisons)[:MAX_PANELS]
    if not comparisons:
        raise SpecTheoryValueError("plot: nothing to draw")
    n = len(comparisons)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), dpi=110, squeeze=False)
    for ax, cmp in zip(axes.ravel(), comparisons):
        opt = cmp.optimal
        model = opt.policy.model
        ks, ss, colors = [], [], []
        floor = None
        for k in range(model.max_k):
            L = model.layers[k]
            reach = model.reach[k] > 0
            cont = opt.policy.conts[k]
            for s in range(L.S.shape[0]):
                r = reach[s]
                if not np.any(r) or L.S[s] <= 0:
                    continue
                c = cont[s][r]
                ks.append(k)
                ss.append(L.S[s])
                colors.append("tab:green" if np.all(c) else ("tab:red" if not np.any(c) else "tab:orange"))
        ss = np.asarray(ss)
        if ss.size:
            floor = max(ss.min() / 2, 1e-12)
        ax.scatter(ks, ss, c=colors, s=9, linewidths=0, zorder=2)
        caps = cmp.threshold_caps
        if not caps.is_fixed_k:
            ax.axhline(1 - caps.policy.h, color="tab:blue", ls="--", lw=1.2,
                       label=f"best SpecDec++ h = {caps.policy.h:.3g} (S = 1 − h)")
        ax.axhline(1 - cmp.h_delta0, color="tab:purple", ls=":", lw=1.4, label=f"Δ=0 value h₀ = {cmp.h_delta0:.3g}")
        suff = opt.tokens_per_cost * cmp.costs.step
        if suff > 0 and (floor is None or suff > floor):
            ax.axhline(suff, color="0.4", ls="-.", lw=1.0, label="always stop below λ*·(c_draft+c1)")
        fk = cmp.row("best fixed K").params["k"]
        ax.axvline(fk, color="0.6", ls="-", lw=0.8, label=f"best fixed K = {fk}")
        ax.set_yscale("log")
        if floor is not None:
            ax.set_ylim(floor, 1.5)
        ax.set_xlim(-0.5, model.max_k - 0.5)
        ax.set_xlabel("drafts so far k")
        ax.set_ylabel("survival S_k = Π a_j")
        c = cmp.costs
        ax.set_title(f"c_draft={c.c_draft:g}, c0={c.c0:g}, c1={c.c1:g}: optimal ×{opt.speedup:.3f}", fontsize=9)
        ax.grid(alpha=0.25, which="both")
        ax.scatter([], [], c="tab:green", s=12, label="draft again")
        ax.scatter([], [], c="tab:red", s=12, label="stop and verify")
        if any(col == "tab:orange" for col in colors):
            ax.scatter([], [], c="tab:orange", s=12, label="depends on state")
        ax.legend(fontsize=6.5, loc="lower left")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title or "optimal drafting policy: stop region in the (k, S_k) plane", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return comparisons
