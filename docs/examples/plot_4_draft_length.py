"""
Optimal draft length against SpecDec++'s threshold and fixed K
==============================================================

How many tokens should the drafter propose per round? :mod:`spectheory.solvers.mdp` computes the
exactly optimal stopping rule (Dinkelbach iteration + backward induction, :doc:`/theory/draft_length`)
and compares it with SpecDec++'s rule "stop when 1 − S_k > h" (S_k the probability that every
draft so far is accepted) and with a fixed number K of drafts.

The acceptance process here is Markov-modulated: the text alternates between *easy* stretches
(acceptance mostly 0.95 or 1) and *hard* ones (mostly 0.3 or 0.7), and the drafter observes which
one it is in. A draft step costs ``c_draft`` target calls.
"""

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import spectheory as st

mdp = st.solvers.mdp
process = mdp.markov_process(
    values=[0.3, 0.7, 0.95, 1.0],
    emission=[[0.5, 0.4, 0.1, 0.0],      # hard state
              [0.0, 0.1, 0.5, 0.4]],     # easy state
    transition=[[0.7, 0.3], [0.1, 0.9]],
    observed=True,
)
max_k = 16
costs = (0.02, 0.05, 0.1, 0.2)
comparisons = [mdp.compare_policies(process, c, max_k=max_k) for c in costs]

for c, cmp in zip(costs, comparisons):
    print(f"c_draft = {c}: h0 = {cmp.h_delta0:.3f}, every optimal threshold <= {cmp.sufficient_h:.3f}")
    for row in cmp.rows:
        print(f"    {row.name:18s} speedup {row.speedup:6.3f}   {row.detail}")

# %%
# Speedup against the threshold h and against fixed K
# ---------------------------------------------------
# Left: SpecDec++'s rule at every h (caps 1..16). Its best h is close to the optimum, but it lies
# below the sufficient-stop level 1 − λ*(c_draft + c1), itself below SpecDec++'s Δ = 0 value
# h0 = c0/(c0 + c_draft + c1): the rule at h0 drafts too long. Right: fixed K, and Leviathan's γ*
# computed from the mean acceptance.
fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.3))
colors = plt.get_cmap("tab10").colors
for i, (c, cmp) in enumerate(zip(costs, comparisons)):
    col = colors[i]
    caps = cmp.threshold_caps
    axes[0].plot(caps.curve_h, caps.curve_speedup, color=col, lw=1.2, label=f"c_draft = {c}")
    axes[0].axhline(cmp.row("optimal").speedup, color=col, ls=":", lw=0.9)
    axes[0].axvline(cmp.h_delta0, color=col, ls="--", lw=0.9)
    axes[0].plot([cmp.sufficient_h], [cmp.row("optimal").speedup], "v", color=col, ms=7)
    fk = mdp.best_fixed_k(process, c, max_k=max_k)
    axes[1].plot(fk.ks, fk.speedups, "o-", color=col, ms=3, label=f"c_draft = {c}")
    axes[1].axhline(cmp.row("optimal").speedup, color=col, ls=":", lw=0.9)
    g = cmp.gamma_star
    if g >= fk.ks[0]:
        axes[1].plot([g], [fk.speedups[g - fk.ks[0]]], "s", color=col, mfc="none", ms=9)
axes[0].set_xlabel("SpecDec++ threshold h (stop when 1 − S_k > h)")
axes[0].set_ylabel("speedup (tokens per target-call cost)")
axes[0].set_title("threshold rule; dotted: optimal, dashed: h0, ▼: sufficient-stop level", fontsize=9)
axes[0].set_xlim(0, 1)
axes[0].grid(alpha=0.3)
axes[0].legend(fontsize=8, loc="lower center")
axes[1].set_xlabel("fixed number of drafts K")
axes[1].set_title("fixed K; dotted: optimal, □: Leviathan's γ*", fontsize=9)
axes[1].grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
# The optimal policy's stop region
# --------------------------------
# :func:`spectheory.solvers.mdp.plot_policy` draws every reachable (k, S_k) state: green where the
# optimal policy drafts again, red where it stops, orange where the decision depends on the
# (easy/hard) state — which a single threshold h cannot express.
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "policy.png")
    mdp.plot_policy(comparisons[1:3], path)
    image = plt.imread(path)
fig, ax = plt.subplots(figsize=(10, 4.2))
ax.imshow(image)
ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# With i.i.d. acceptance the threshold rule is exactly optimal
# ------------------------------------------------------------
# The problem is then monotone, and the one-step look-ahead rule — stop iff S_k E[a] ≤
# λ*(c_draft + c1) — is a single threshold in S_k.
iid = mdp.iid_process([0.4, 0.9, 1.0], [0.2, 0.5, 0.3])
cmp = mdp.compare_policies(iid, 0.05, max_k=max_k)
print("i.i.d.: optimal", round(cmp.row("optimal").speedup, 6), " best SpecDec++ h",
      round(cmp.row("SpecDec++ best h").speedup, 6), " best fixed K", round(cmp.row("best fixed K").speedup, 6))
