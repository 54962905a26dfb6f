"""Recording throughput: generated positions per second, batched against one prompt at a time, in the
same run, on the shipped reference pair; and bytes stored per position.

Both rows record the same prompts with the same seeds into fresh folders (``record(...,
batch_size=B)``); the tokens are identical (each prompt has its own generator), so the rows do the
same work apart from padding. ``positions/s`` counts recorded positions (both models' logits stored,
float32, full vocabulary) over wall time including generation, both forward passes and the
safetensors writes. ``bytes/position`` is the size of the shards over the positions (full store:
2 · V · 4 bytes plus the token).

    python benchmarks/bench_record.py                 # 32 prompts × 32 tokens, B = 1, 8, 32
    python benchmarks/bench_record.py --quick         # 8 prompts × 8 tokens, B = 1, 8

Torch uses ``--threads`` threads (default 1). Rows go to bench-results/bench_record.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    from spectheory.simulations.record import record
    from spectheory.simulations.reference import load_reference_pair, reference_prompts

    torch.set_num_threads(args.threads)
    prompts_n, tokens, sizes = (8, 8, (1, 8)) if args.quick else (32, 32, (1, 8, 32))
    models = load_reference_pair()
    prompts = (reference_prompts() * 10)[:prompts_n]
    rows = []
    base = None
    for B in sizes:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            rec = record("t", "d", prompts, Path(d) / "rec", max_new_tokens=tokens, device=args.device,
                         models=models, batch_size=B)
            wall = time.perf_counter() - t0
            size = sum((Path(d) / "rec" / s["file"]).stat().st_size for s in rec.shards)
            rate = rec.positions / wall
            base = base or rate
            rows.append({"batch_size": B, "prompts": prompts_n, "positions": rec.positions, "V": rec.vocab_size,
                         "wall_s": round(wall, 3), "positions/s": round(rate, 1), "vs B=1": round(rate / base, 2),
                         "bytes/position": round(size / rec.positions)})
    heads = list(rows[0])
    _common.print_table(heads, [[str(r[h]) for h in heads] for r in rows])
    _common.write_json("bench_record" + (".quick" if args.quick else ""), rows, args=vars(args))


if __name__ == "__main__":
    main()
