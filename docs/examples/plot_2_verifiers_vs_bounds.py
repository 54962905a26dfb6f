"""
Every verifier against the bound of its draft scheme
====================================================

:func:`spectheory.compare` lists, for each n, every verifier's exact acceptance next to the optimal
acceptance α* of the draft scheme it uses (:doc:`/theory/verifiers`). The pair is the single
position shipped with the package (``target.npy``, ``draft.npy``: V = 1000).

``greedy`` attains its bound and so does ``spechub`` here; RRS and K-SEQ fall short of the i.i.d.
bound; RRS without replacement (an estimate with its standard error for n > 2 at this support size)
falls short of the without-replacement bound.
"""

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import spectheory as st
from spectheory.compare import plot_comparison
from spectheory.io import example_path

p = np.load(example_path("target.npy"))      # target
q = np.load(example_path("draft.npy"))       # draft
ns = list(range(1, 9))
rows = st.compare(p, q, ns)

print(f"{'verifier':8} {'scheme':20} {'n':>2} {'acceptance':>11} {'bound':>7} {'gap':>7}")
for r in rows:
    if r.n in (1, 2, 4, 8):
        est = "" if r.exact else f" ± {r.stderr:.1e}"
        gap = round(r.gap, 4) + 0.0          # no "-0.0000" from rounding
        print(f"{r.verifier:8} {r.sampling:20} {r.n:>2} {r.acceptance:>11.4f} {r.bound:>7.4f} {gap:>7.4f}{est}")

# %%
# The package's own plot
# ----------------------
# :func:`spectheory.compare.plot_comparison` writes a PNG (it is what ``spectheory compare --plot``
# draws); here it is read back and shown.
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "compare.png")
    plot_comparison(rows, path, title="example pair (V = 1000): verifiers and their bounds")
    image = plt.imread(path)
fig, ax = plt.subplots(figsize=(8, 5.2))
ax.imshow(image)
ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# The gap to the bound
# --------------------
# ``gap = bound − acceptance`` per verifier (error bars: two standard errors of the estimates).
fig, ax = plt.subplots(figsize=(8, 4))
for name in ("rrs", "rrs_wor", "kseq", "greedy", "spechub"):
    rs = [r for r in rows if r.verifier == name]
    ax.errorbar([r.n for r in rs], [r.gap for r in rs], yerr=[2 * r.stderr for r in rs],
                fmt="o-", ms=4, capsize=2, label=f"{name} ({rs[0].sampling})")
ax.axhline(0.0, color="0.5", lw=0.8)
ax.set_xlabel("number of drafts n")
ax.set_ylabel("α* of the scheme − acceptance")
ax.set_xticks(ns)
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
ax.set_title("how far each verifier is from the optimum of its own draft scheme")
fig.tight_layout()
plt.show()
