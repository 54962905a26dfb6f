"""
The optimal acceptance against the number of drafts, for each draft scheme
==========================================================================

:func:`spectheory.optimal_acceptance` gives α*, the best acceptance any lossless verifier can
reach, for each way of drawing the n drafts (see :doc:`/theory/schemes`). Here it is plotted
against n for

* the example batch shipped with the package (16 positions of V = 1000 logits, a Zipf-like target
  and a flatter, noisier draft), averaged over positions — i.i.d., without replacement, greedy and
  the SpecHub pair (n = 2 only);
* a toy pair with V = 8, where independent non-identical drafters can be solved exactly too (by
  enumeration: no sort order is known for them, so only small V and n).
"""

# %%
# The example batch
# -----------------
# ``from_logits`` applies the same temperature (and top-k / top-p) to both models before any bound.
import matplotlib.pyplot as plt
import numpy as np

import spectheory as st
from spectheory.io import example_path, load_array

target_logits = load_array(str(example_path("logits_target.safetensors")))
draft_logits = load_array(str(example_path("logits_draft.safetensors")))
P = st.from_logits(target_logits, temperature=1.0)
Q = st.from_logits(draft_logits, temperature=1.0)
print("positions, vocabulary:", P.shape)

ns = np.arange(1, 9)
curves = {}
for sampling in ("iid", "without_replacement", "greedy"):
    curves[sampling] = [float(np.mean(st.optimal_acceptance(P, Q, n, sampling=sampling))) for n in ns]
hub2 = float(np.mean(st.optimal_acceptance(P, Q, 2, sampling="hub")))

print(f"{'n':>2} " + " ".join(f"{s:>20}" for s in curves))
for i, n in enumerate(ns):
    print(f"{n:>2} " + " ".join(f"{curves[s][i]:>20.4f}" for s in curves))
print(f"hub (n = 2): {hub2:.4f}")

# %%
# A toy pair with independent drafters
# ------------------------------------
# Drafter i has its own law q_i (the first one is q itself); ``sampling="independent"`` takes q of
# shape (n, V), one row per drafter.
rng = np.random.default_rng(2)
V = 8
p = rng.dirichlet(np.full(V, 0.6))
q = 0.5 * rng.dirichlet(np.full(V, 0.6)) + 0.5 * np.roll(p, 1)   # a draft that is off by one token
drafters = np.vstack([q, rng.dirichlet(np.full(V, 0.6), size=5)])
drafters = 0.5 * drafters + 0.5 * q          # every further drafter is a noisy copy of q

toy = {s: [st.optimal_acceptance(p, q, n, sampling=s) for n in ns] for s in ("iid", "without_replacement", "greedy")}
toy_hub = st.optimal_acceptance(p, q, 2, sampling="hub")
n_indep = np.arange(1, 7)                     # exact enumeration of V^n tuples: n <= 6 at V = 8
toy_indep = [st.optimal_acceptance(p, drafters[:n], n, sampling="independent") for n in n_indep]

# %%
# The plot
# --------
# Drafts without replacement never do worse than i.i.d. drafts here (a repeated draft adds
# nothing) and reach acceptance 1 first; greedy drafting is held back by its deterministic top
# tokens; the hub pair is one point at n = 2; in the toy pair, drafters that differ
# from each other beat n i.i.d. drafts from q.
styles = {"iid": ("tab:blue", "o-"), "without_replacement": ("tab:orange", "s-"), "greedy": ("tab:green", "^-")}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
for ax, data, hub, title in ((axes[0], curves, hub2, "example batch (V = 1000, mean of 16 positions)"),
                             (axes[1], toy, toy_hub, "toy pair (V = 8)")):
    for s, vals in data.items():
        color, fmt = styles[s]
        ax.plot(ns, vals, fmt, color=color, ms=4, label=s)
    ax.plot([2], [hub], "D", color="tab:red", ms=7, label="hub (n = 2)")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("number of drafts n")
    ax.set_xticks(ns)
    ax.grid(alpha=0.3)
axes[1].plot(n_indep, toy_indep, "v--", color="tab:purple", ms=4, label="independent drafters")
axes[0].set_ylabel("optimal acceptance α*")
axes[1].legend(fontsize=8, loc="lower right")
fig.suptitle("optimal acceptance of each draft scheme against n")
fig.tight_layout()
plt.show()
