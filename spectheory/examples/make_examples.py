"""Regenerate the example arrays shipped in this folder (fixed seed, so the files are reproducible).

    python spectheory/examples/make_examples.py

* ``target.npy``, ``draft.npy``: one position, V = 1000, float64 probabilities. The target is a
  Zipf-like distribution (logits -1.1 · log rank, plus noise) over a shuffled vocabulary; the draft
  is a smaller "model" of it: the same logits flattened (×0.8) and perturbed, so it agrees with the
  target on the head and is noisier on the tail.
* ``logits_target.safetensors``, ``logits_draft.safetensors``: a batch of B = 16 positions of
  float32 logits (V = 1000) built the same way with varying sharpness, each under the key ``"logits"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 20240601
V = 1000
B = 16
HERE = Path(__file__).resolve().parent


def _pair_logits(rng: np.random.Generator, V: int, sharpness: float):
    """Target and draft logits for one position: Zipf-like target, a flatter noisy draft."""
    ranks = rng.permutation(V) + 1
    target = -sharpness * np.log(ranks) + rng.normal(0.0, 0.3, V)
    draft = 0.8 * target + rng.normal(0.0, 0.6, V)
    return target, draft


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def make(out: Path = HERE) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(SEED)
    t, d = _pair_logits(rng, V, sharpness=1.1)
    np.save(out / "target.npy", _softmax(t))
    np.save(out / "draft.npy", _softmax(d))

    rows = [_pair_logits(rng, V, sharpness=s) for s in rng.uniform(0.7, 2.0, B)]
    save_file({"logits": np.stack([r[0] for r in rows]).astype(np.float32)}, str(out / "logits_target.safetensors"))
    save_file({"logits": np.stack([r[1] for r in rows]).astype(np.float32)}, str(out / "logits_draft.safetensors"))


if __name__ == "__main__":
    make()
