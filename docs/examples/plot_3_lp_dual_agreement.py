"""
The transport LP and the subset dual agree
==========================================

Two independent ways to the optimal acceptance α* (:doc:`/theory/optimal_acceptance`):

* :func:`spectheory.solvers.transport_lp` — SpecTr's optimal-transport LP over draft tuples ×
  tokens, exact by construction, small V and n only;
* :func:`spectheory.optimal_acceptance` — the subset dual: sorted prefixes for i.i.d. drafts
  (proved) and drafts without replacement (proved; this is a check of the implementation), closed
  forms for greedy and hub, enumeration for independent drafters.

Here both run on random small pairs, including sparse ones (exact zeros in p or q).
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import spectheory as st

rng = np.random.default_rng(2024)


def random_pair(V):
    """A random target/draft pair; a third of them with exact zeros."""
    conc = rng.choice([0.3, 1.0, 3.0])
    p, q = rng.dirichlet(np.full(V, conc)), rng.dirichlet(np.full(V, conc))
    if rng.random() < 1 / 3:
        p[rng.integers(V)] = 0.0
        q[rng.integers(V)] = 0.0
        p, q = p / p.sum(), q / q.sum()
    return p, q


cases = []
start = time.perf_counter()
for sampling, n_range in (("iid", (1, 2, 3)), ("without_replacement", (2, 3, 4)), ("greedy", (2, 3)),
                          ("hub", (2,)), ("independent", (2, 3))):
    for _ in range(24):
        V = int(rng.integers(3, 7))
        n = int(rng.choice(n_range))
        p, q = random_pair(V)
        if sampling == "independent":
            q = np.vstack([q] + [random_pair(V)[1] for _ in range(n - 1)])
        lp = st.solvers.transport_lp(p, q, n, sampling=sampling).acceptance
        dual = st.optimal_acceptance(p, q, n, sampling=sampling)
        cases.append((sampling, V, n, lp, dual))
elapsed = time.perf_counter() - start

diff = np.array([abs(c[3] - c[4]) for c in cases])
print(f"{len(cases)} random pairs in {elapsed:.1f} s; largest |LP − dual| = {diff.max():.2e}")
for sampling in ("iid", "without_replacement", "greedy", "hub", "independent"):
    d = [abs(c[3] - c[4]) for c in cases if c[0] == sampling]
    print(f"  {sampling:20s} {len(d):3d} pairs, max |LP − dual| = {max(d):.2e}")
assert diff.max() < 1e-7, "the LP and the dual disagree"

# %%
# LP against dual, and the size of the disagreement (the LP solver's tolerance).
colors = {"iid": "tab:blue", "without_replacement": "tab:orange", "greedy": "tab:green", "hub": "tab:red",
          "independent": "tab:purple"}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
for sampling, color in colors.items():
    pts = np.array([(c[3], c[4]) for c in cases if c[0] == sampling])
    axes[0].scatter(pts[:, 0], pts[:, 1], s=14, color=color, label=sampling, alpha=0.8)
axes[0].plot([0, 1], [0, 1], color="0.5", lw=0.8)
axes[0].set_xlabel("transport LP")
axes[0].set_ylabel("subset dual (st.optimal_acceptance)")
axes[0].set_title("α* from the LP and from the dual")
axes[0].legend(fontsize=8)
axes[0].grid(alpha=0.3)
axes[1].hist(np.log10(np.maximum(diff, 1e-17)), bins=30, color="0.4")
axes[1].set_xlabel("log10 |LP − dual|  (1e-17 stands for exact equality)")
axes[1].set_ylabel("pairs")
axes[1].set_title("disagreement: rounding and solver tolerance only")
fig.tight_layout()
plt.show()
