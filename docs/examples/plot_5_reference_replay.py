"""
Replaying the shipped reference pair
====================================

The package ships a small reference model pair (:mod:`spectheory.simulations.reference`): a
Llama-style target and a smaller draft sharing one byte-level BPE tokenizer, trained from scratch
on the Python standard library's source. This example does on a small scale what
``spectheory report`` does on all held-out prompts:

1. :func:`spectheory.simulations.record.record` lets the target continue two held-out prompts and
   stores both models' logits at every generated position (safetensors shards + manifest);
2. :func:`spectheory.simulations.replay.replay` computes, per position and per n, the optimal
   acceptance of every draft scheme and every verifier's exact acceptance.

It needs the ``replay`` extra (torch, transformers) and runs on CPU in well under a minute.
"""

# %%
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import transformers

from spectheory.simulations.record import record
from spectheory.simulations.reference import (load_reference_pair, reference_metadata, reference_pair_path,
                                              reference_prompts)
from spectheory.simulations.replay import replay

# sphinx_gallery_start_ignore
if not (reference_pair_path() / "training.json").is_file():
    raise FileNotFoundError(
        f"the shipped reference pair is missing from {reference_pair_path()}; train it with "
        "python -m spectheory.simulations.train_reference_pair --out simulations/reference_pair"
    )
# sphinx_gallery_end_ignore
torch.set_num_threads(1)        # small models on a shared CPU: one thread is fastest
transformers.utils.logging.disable_progress_bar()
target, draft, tokenizer = load_reference_pair()
meta = reference_metadata()
print("vocabulary:", len(tokenizer), " parameters: target",
      sum(p.numel() for p in target.parameters()), " draft", sum(p.numel() for p in draft.parameters()))
held_out = meta.get("metrics", {}).get("heldout", {})
print("held-out mean single-draft acceptance at T = 1 (training record):", held_out.get("acceptance_T1"))

prompts = reference_prompts()[:2]
print("first prompt:\n" + prompts[0])

# %%
# Record
# ------
# 2 prompts × 128 generated tokens: 256 positions. The names are only recorded in the manifest;
# ``models=`` passes the loaded pair.
start = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    rec = record("spectheory reference pair/target", "spectheory reference pair/draft", prompts, tmp,
                 max_new_tokens=128, temperature=1.0, seed=0, device="cpu",
                 models=(target, draft, tokenizer))
    target_logits, draft_logits, tokens = rec.logits()
print(f"recorded {len(tokens)} positions, V = {target_logits.shape[1]}, "
      f"in {time.perf_counter() - start:.1f} s")
print("the target's continuation of the first prompt:\n" + tokenizer.decode(tokens[:128].tolist()))

# %%
# Replay
# ------
# The same temperature is applied to both models' logits before any bound or verifier.
start = time.perf_counter()
res = replay(target_logits, draft_logits, n=range(1, 9), temperature=1.0, device="cpu")
print(f"replayed {len(res)} positions in {time.perf_counter() - start:.1f} s")
summary = res.summary()
for key in ("bound/iid/n=4", "bound/without_replacement/n=4", "bound/greedy/n=4",
            "verifier/rrs/n=4", "verifier/kseq/n=4", "verifier/rrs_wor/n=4"):
    print(f"{key:32s} {summary[key]:.4f}")

# %%
# Mean acceptance against n
# -------------------------
# Left, solid: the optimal acceptance of each draft scheme; dashed: the verifiers (rrs_wor is an
# estimate for n > 2). Per position the bound is an upper limit for every lossless verifier of that
# scheme. Right: the distribution over positions.
ns = np.arange(1, 9)
fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.3))
for s, col in (("iid", "tab:blue"), ("without_replacement", "tab:orange"), ("greedy", "tab:green")):
    axes[0].plot(ns, [summary[f"bound/{s}/n={n}"] for n in ns], "o-", color=col, ms=4, label=f"α* {s}")
for v, col in (("rrs", "tab:blue"), ("kseq", "tab:purple"), ("rrs_wor", "tab:orange")):
    axes[0].plot(ns, [summary[f"verifier/{v}/n={n}"] if n > 1 else summary["verifier/sd/n=1"] for n in ns],
                 "s--", color=col, ms=3, label=v)
axes[0].plot([2], [summary["bound/hub/n=2"]], "D", color="tab:red", label="α* hub (n = 2)")
axes[0].set_xlabel("number of drafts n")
axes[0].set_ylabel("mean acceptance over positions")
axes[0].set_xticks(ns)
axes[0].grid(alpha=0.3)
axes[0].legend(fontsize=7, ncol=2, loc="best")
axes[0].set_title("reference pair: bounds and verifiers", fontsize=10)


# Right: per position the picture is far from uniform — many positions are easy (the draft agrees
# with the target) and some are hard.
bins = np.linspace(0, 1, 26)
axes[1].hist(res["verifier/sd/n=1"], bins=bins, alpha=0.6, label="one draft: Σ min(p, q)")
axes[1].hist(res["bound/iid/n=4"], bins=bins, alpha=0.6, label="α* i.i.d., n = 4")
axes[1].set_xlabel("acceptance at one position")
axes[1].set_ylabel("positions")
axes[1].legend(fontsize=8, loc="upper left")
axes[1].set_title("distribution over the recorded positions", fontsize=10)
fig.tight_layout()
plt.show()
