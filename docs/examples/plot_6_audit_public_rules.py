"""
Auditing published verification rules
======================================

:func:`spectheory.audit` runs a verification rule over every draft tuple of its draft scheme and
every branch of its random decisions, so the rule's exact output law comes from the rule's own code.
Here four defects found in public code are written again from their descriptions, in a few lines
each, and audited next to the corrected rule:

1. a with-replacement recursive rejection sampler (RRS) that skips repeated drafts without
   updating the residual (the baseline in SpecHub's public code);
2. a block-verification rule whose prefix weights are not clipped at 1 (a defect of this kind was
   once merged in a serving plugin and later fixed upstream);
3. top-k drafting with a width larger than the draft's support, which fills slots with q = 0
   tokens so that verification meets a 0/0 residual;
4. a float32 uniform tested with ``u <= p/q``: float32 uniforms are exactly 0 once in 2^24 draws,
   so tokens with p = 0 are accepted at that rate.

The rule interface is ``rule(p, q, drafts, rng) -> token``, with every random decision through
``rng.uniform()``, ``rng.bernoulli(prob)`` or ``rng.categorical(weights)``.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import spectheory as st


def show(name, r):
    bound = "-" if r.bound is None else f"{r.bound:.4f}"
    failure = "" if r.failure is None else f"  failure: {r.failure.kind}"
    print(f"{name:<34} lossless={r.lossless!s:<5}  TV={r.tv:.2e}  acceptance={r.acceptance:.4f}  "
          f"bound={bound}  exceeds={r.exceeds_bound}{failure}")


# %%
# 1. RRS that skips repeated drafts
# ---------------------------------
# With i.i.d. drafts the same token can be drafted twice. RRS must test the repeat again against
# the updated residual; skipping it without updating the residual changes the output law.


def rrs(p, q, drafts, rng, skip_repeats=False):
    R, seen = p, set()
    for x in drafts:
        x = int(x)
        if skip_repeats and x in seen:
            continue  # the defect: the residual is not updated for the skipped draft
        seen.add(x)
        if rng.uniform() < R[x] / q[x]:
            return x
        res = np.maximum(R - q, 0.0)
        R = res / res.sum() if res.sum() > 0 else R
    return rng.categorical(R)


def rrs_skipping_repeats(p, q, drafts, rng):
    return rrs(p, q, drafts, rng, skip_repeats=True)


p, q = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.4, 0.2])
laws = {}
for n in (2, 3):
    good = st.audit(rrs, sampling="iid", n=n, p=p, q=q)
    bad = st.audit(rrs_skipping_repeats, sampling="iid", n=n, p=p, q=q)
    show(f"RRS, n={n}", good)
    show(f"RRS skipping repeats, n={n}", bad)
    laws[n] = bad.law
print("RRS acceptance (closed form), n=3:", round(st.acceptance(p, q, 3, "rrs"), 4))

# %%
# The skipping rule's exact output law against the target:

fig, ax = plt.subplots(figsize=(6, 3))
width = 0.25
tokens = np.arange(len(p))
ax.bar(tokens - width, p, width, label="target p")
for k, n in enumerate((2, 3)):
    ax.bar(tokens + k * width, laws[n], width, label=f"skip repeats, n={n}")
ax.set_xticks(tokens)
ax.set_xlabel("token")
ax.set_ylabel("probability")
ax.set_title("RRS skipping repeated drafts: exact output law")
ax.legend()
fig.tight_layout()

# %%
# The audit also finds a counterexample on its own, searching over degenerate distributions:

found = st.audit(rrs_skipping_repeats, sampling="iid", n=2)
print("counterexample (p, q, n):", found.counterexample)

# %%
# 2. Block verification without the clip
# --------------------------------------
# Block verification (Sun et al., arXiv 2403.10444) weighs the prefix X_1..X_i by
# b_i = min(b_{i-1} p_i(X_i)/q_i(X_i), 1). Leaving out the ``min`` lets the weights run above 1:
# the rule then accepts more than any lossless rule can. The paper's V = 2 example (p = (1/3, 2/3),
# q = (2/3, 1/3) at every position, γ = 2) has optimum 20/9 = 2.222 expected tokens per round.


def block_verification(p, q, drafts, rng, clip=True):
    gamma = q.shape[0]
    b = [1.0]
    for i in range(gamma):
        w = b[-1] * p[i, drafts[i]] / q[i, drafts[i]]
        b.append(min(w, 1.0) if clip else w)
    for i in range(gamma, 0, -1):  # the longest prefix kept, from the end
        res = np.maximum(b[i] * p[i] - q[i], 0) if i < gamma else None
        if i == gamma:
            h = min(b[i], 1.0)
        else:
            r = res.sum()
            h = 1.0 if r + 1 - b[i] <= 0 else min(1.0, r / (r + 1 - b[i]))
        if rng.bernoulli(h):
            tail = p[gamma] if i == gamma else res
            return tuple(int(t) for t in drafts[:i]) + (rng.categorical(tail if tail.sum() > 0 else p[i]),)
    res0 = np.maximum(p[0] - q[0], 0)
    return (rng.categorical(res0 if res0.sum() > 0 else p[0]),)


def block_verification_unclipped(p, q, drafts, rng):
    return block_verification(p, q, drafts, rng, clip=False)


P, Q = np.array([[1 / 3, 2 / 3]] * 3), np.array([[2 / 3, 1 / 3]] * 2)
show("block verification", st.audit(block_verification, sampling="chain", n=2, p=P, q=Q))
show("block verification, no clip", st.audit(block_verification_unclipped, sampling="chain", n=2, p=P, q=Q))

# %%
# 3. Top-k drafting wider than the draft's support
# ------------------------------------------------
# Sampled top-k tree drafting (Gumbel-top-k: k draws without replacement from q) is verified by
# recursive rejection sampling without replacement. When k exceeds the number of tokens with q > 0,
# the drafter fills the extra slots with q = 0 tokens; after the supported drafts are rejected the
# renormalised draft mass is 0/0 and the verification reads NaN. The audit takes the custom
# drafter (``draft=``; its random choices are enumerated too) and reports what happened, instead
# of crashing. The package's own scheme, ``sampling="without_replacement"``, stops at the support.


def topk_padded(q, n, rng):
    remaining, out = np.array(q), []
    for _ in range(n):
        if remaining.sum() > 0:
            x = rng.categorical(remaining)
        else:  # the defect: slots beyond the support get q = 0 tokens
            x = next(i for i in range(len(q)) if i not in out)
        remaining[x] = 0.0
        out.append(x)
    return np.array(out)


def rrs_without_replacement(p, q, drafts, rng):
    R, D = p, np.array(q)
    for x in drafts:
        if rng.bernoulli(np.minimum(1.0, R[x] / D[x])):  # NaN when D is 0/0
            return int(x)
        res = np.maximum(R - D, 0)
        R = res / res.sum() if res.sum() > 0 else R
        D[x] = 0
        D = D / D.sum()
    return rng.categorical(R)


p3, q3 = np.array([0.3, 0.3, 0.4]), np.array([0.5, 0.5, 0.0])
with np.errstate(all="ignore"):
    padded = st.audit(rrs_without_replacement, draft=topk_padded, n=3, p=p3, q=q3)
    proper = st.audit(rrs_without_replacement, sampling="without_replacement", n=3, p=p3, q=q3)
show("top-3, padded beyond the support", padded)
if padded.failure is not None:
    print("  ", padded.failure.kind, "-", padded.failure.message)
show("top-3 of a 2-token draft, stopped", proper)

# %%
# 4. Float32 uniforms
# -------------------
# ``torch.rand`` draws float32 uniforms k·2^-24, so u = 0 has probability 2^-24, and a test
# ``u <= p/q`` then accepts a drafted token whose target probability is 0. The exact audit treats
# the uniform symbolically on its lattice and sees that mass.


def sd_float32(p, q, drafts, rng):
    x = int(drafts[0])
    if rng.uniform(np.float32) <= p[x] / q[x]:
        return x
    return rng.categorical(np.maximum(p - q, 0))


def sd_float64_strict(p, q, drafts, rng):
    x = int(drafts[0])
    if rng.uniform() < p[x] / q[x]:  # u >= 0, so a token with p = 0 is never accepted
        return x
    return rng.categorical(np.maximum(p - q, 0))


p4, q4 = np.array([0.0, 1.0]), np.array([0.5, 0.5])
bad = st.audit(sd_float32, sampling="iid", n=1, p=p4, q=q4)
show("SD with float32 u <= p/q", bad)
print(f"   P(output = token 0) = {bad.law[0]:.3e}  (2^-25 = {2.0 ** -25:.3e})")
show("SD with float64 u < p/q", st.audit(sd_float64_strict, sampling="iid", n=1, p=p4, q=q4))
