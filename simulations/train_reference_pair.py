"""Train the shipped reference model pair: a small target and a smaller draft causal transformer.

    python -m spectheory.simulations.train_reference_pair --out DIR

Both models share one tokenizer and are trained from scratch, on CPU, reproducibly, on a corpus that
is present on every machine: the Python standard library's own source and docstrings.

Corpus and split
----------------
* Files: every ``*.py`` below ``sysconfig.get_paths()["stdlib"]``, read as UTF-8, **skipping** any
  file with a path component in :data:`EXCLUDED_DIRS` (``test``, ``tests``, ``idle_test``,
  ``site-packages``, ``__pycache__``), files larger than ``max_file_bytes`` (256 KiB: drops e.g.
  ``pydoc_data/topics.py``), files that do not decode as UTF-8 and files containing NUL bytes.
* Split **by file**: a file is held out when ``sha256(f"{seed}:{relpath}")`` read as a 64-bit
  fraction is below ``heldout_fraction`` (10 %). The rule depends on the relative path and the seed
  only, so it is the same on every machine, file system order and Python build. The held-out file
  list and a content fingerprint of each split (sha256 over sorted ``relpath<TAB>sha256(text)``
  lines) are recorded in ``training.json``; a different Python version has a different stdlib, hence
  a different corpus (the version is recorded too).
* Tokenizer: byte-level BPE (``tokenizers``), vocabulary 4096 including the one special token
  ``<|endoftext|>``, trained on the training split only. Each file is encoded and followed by
  ``<|endoftext|>``; the files are concatenated in sorted path order into one stream per split.

Models and training
-------------------
``LlamaForCausalLM`` configurations (:data:`DEFAULTS`), tied input/output embeddings, context
``seq_len`` = 256. Training batches are random windows of the training stream (positions drawn with
a seeded ``torch.Generator``), AdamW, linear warm-up then cosine decay to 10 % of the peak rate,
gradient clipping at 1.0. The loss function is compiled with ``torch.compile`` when it works
(about 3-4x faster on CPU); ``--no-compile`` trains eagerly (same results up to rounding).

* target: 4 layers, hidden 192, 2.56 M parameters, cross-entropy on the data, 2600 steps of
  8 × 256 tokens (5.3 M tokens, about 1.8 passes over the training split);
* draft: 1 layer, hidden 64, 0.31 M parameters, *distilled* from the stored target, the usual way a
  draft is fitted: loss ``CE(target softmax, draft) + 2·(1 − Σ_x min(p, q))`` (forward KL to the
  target plus twice the total variation, i.e. one minus the acceptance), 650 steps of 8 × 256
  tokens. Its size and training length set where the pair sits on the trade-off between the
  cross-entropy gap and the acceptance (shorter training: larger gap, lower acceptance).

``--reuse-target DIR`` / ``--reuse-draft DIR`` copy a model from a previous output folder instead
of retraining it, after checking that it was trained identically (to tune one model of the pair).

The models are stored in float16 (safetensors), and **all metrics are measured after reloading the
stored float16 weights in float32**, so the recorded numbers are those of the shipped files:

* held-out cross-entropy (nats/token) of each model, teacher-forced over the held-out stream cut
  into windows of ``seq_len`` predicted tokens (each token predicted once, with up to ``seq_len − 1``
  tokens of context);
* mean single-draft acceptance ``Σ_x min(p(x), q(x))`` at temperature 1 (p = target softmax,
  q = draft softmax at the same teacher-forced positions), and at a few other temperatures;
* the same two quantities on the shipped prompts (``prompts.txt``).

Output folder (written to a temporary sibling folder, then renamed onto ``--out``)::

    tokenizer/    PreTrainedTokenizerFast (AutoTokenizer.from_pretrained works offline)
    target/       LlamaForCausalLM, float16 safetensors
    draft/        LlamaForCausalLM, float16 safetensors
    training.json corpus, split, seeds, configs, parameter counts, schedule, wall times, metrics, sizes
    prompts.txt   32 short code snippets cut at line ends from held-out files, one per line with each
                  newline written as the two characters ``\\n`` (the ``--prompts`` text format of
                  ``spectheory record``/``report``); snippets never contain a backslash, so this is exact

Reproducibility: seeds are fixed (``torch.manual_seed``, seeded generators), deterministic algorithms
are requested and the thread count is fixed (``--threads``, default 2). Rerunning with the same
Python (stdlib), torch and thread count reproduces the pair; other machines or torch versions may
give slightly different weights and held-out metrics (the shipped ones are recorded).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

EOS = "<|endoftext|>"
EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
PACKAGE_PAIR_PATH = Path(__file__).resolve().parent / "reference_pair"

DEFAULTS: dict = {
    "seed": 20240601,
    "heldout_fraction": 0.10,
    "max_file_bytes": 256 * 1024,
    "vocab_size": 4096,
    "seq_len": 256,
    "n_prompts": 32,
    "temperatures": [0.5, 1.0, 1.5],
    "target": {
        "model": {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3, "intermediate_size": 512},
        "train": {"steps": 2600, "batch_size": 8, "lr": 4e-3, "warmup_steps": 100, "min_lr_ratio": 0.1,
                  "weight_decay": 0.1, "betas": [0.9, 0.95], "grad_clip": 1.0},
    },
    "draft": {
        "model": {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 176},
        "train": {"steps": 650, "batch_size": 8, "lr": 4e-3, "warmup_steps": 60, "min_lr_ratio": 0.1,
                  "weight_decay": 0.1, "betas": [0.9, 0.95], "grad_clip": 1.0, "distill": 1.0, "tv": 2.0},
    },
}


# ----------------------------------------------------------------------------------------- corpus
def stdlib_path() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def collect_corpus(root: Path | None = None, max_file_bytes: int = DEFAULTS["max_file_bytes"]):
    """``(files, skipped)``: ``files`` a list of ``(relpath, text)`` in sorted relpath order (POSIX
    separators); ``skipped`` a dict reason -> count."""
    root = stdlib_path() if root is None else Path(root)
    files, skipped = [], {"too_large": 0, "not_utf8": 0, "nul_bytes": 0}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(part in EXCLUDED_DIRS for part in rel.split("/")[:-1]) or not path.is_file():
            continue
        if path.stat().st_size > max_file_bytes:
            skipped["too_large"] += 1
            continue
        data = path.read_bytes()
        if b"\x00" in data:
            skipped["nul_bytes"] += 1
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            skipped["not_utf8"] += 1
            continue
        files.append((rel, text))
    files.sort(key=lambda f: f[0])
    return files, skipped


def is_heldout(relpath: str, seed: int, fraction: float) -> bool:
    """The split rule: a 64-bit hash fraction of (seed, relative path) below ``fraction``."""
    h = hashlib.sha256(f"{seed}:{relpath}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64 < fraction


def split_corpus(files, seed: int, fraction: float):
    train = [f for f in files if not is_heldout(f[0], seed, fraction)]
    heldout = [f for f in files if is_heldout(f[0], seed, fraction)]
    return train, heldout


def fingerprint(files) -> str:
    """sha256 over the sorted ``relpath<TAB>sha256(text)`` lines of a split."""
    h = hashlib.sha256()
    for rel, text in sorted(files):
        h.update(f"{rel}\t{hashlib.sha256(text.encode()).hexdigest()}\n".encode())
    return h.hexdigest()


# -------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(texts, vocab_size: int):
    """Byte-level BPE trained on ``texts``, wrapped as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS, unk_token=None,
        model_max_length=DEFAULTS["seq_len"], clean_up_tokenization_spaces=False,
    )


def encode_stream(tokenizer, texts):
    """One int64 tensor: each text's tokens followed by the end-of-text id."""
    import torch

    eos = tokenizer.convert_tokens_to_ids(EOS)
    ids: list[int] = []
    for enc in tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.int64)


# ------------------------------------------------------------------------------------------ models
def make_model(model_cfg: dict, vocab_size: int, seq_len: int, eos_id: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=model_cfg["hidden_size"],
        num_hidden_layers=model_cfg["num_hidden_layers"],
        num_attention_heads=model_cfg["num_attention_heads"],
        num_key_value_heads=model_cfg.get("num_key_value_heads", model_cfg["num_attention_heads"]),
        intermediate_size=model_cfg["intermediate_size"],
        max_position_embeddings=seq_len,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return LlamaForCausalLM(config)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied embeddings counted once


def _lr_at(step: int, cfg: dict) -> float:
    warm, total, lo = cfg["warmup_steps"], cfg["steps"], cfg["min_lr_ratio"]
    if step < warm:
        return cfg["lr"] * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg["lr"] * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t)))


def train_model(model, stream, train_cfg: dict, seq_len: int, seed: int, *, teacher=None, compile_: bool = True,
                desc: str = "train", log=print):
    """Train in place on random windows of ``stream``; returns a dict of training statistics.

    With ``teacher`` and ``train_cfg["distill"]`` = a > 0 the loss is
    ``(1 − a)·CE(data) + a·CE(teacher softmax, model)`` (soft targets at temperature 1: the forward
    KL to the teacher plus a constant), the usual way a draft is fitted to its target; with
    ``train_cfg["tv"]`` = b > 0 it adds ``b·(1 − Σ_x min(p, q))``, the total variation to the teacher
    (one minus the single-draft acceptance), which the draft then trades against cross-entropy."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    V = model.config.vocab_size
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train_cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=train_cfg["lr"], betas=tuple(train_cfg["betas"]), eps=1e-8,
    )

    a = float(train_cfg.get("distill", 0.0)) if teacher is not None else 0.0
    tv = float(train_cfg.get("tv", 0.0)) if teacher is not None else 0.0
    if teacher is not None:
        teacher.eval().requires_grad_(False)

    def loss_fn(x, y):
        logits = model(input_ids=x).logits.float().reshape(-1, V)
        loss = F.cross_entropy(logits, y.reshape(-1))
        if a > 0 or tv > 0:
            with torch.no_grad():
                soft = torch.softmax(teacher(input_ids=x).logits.float().reshape(-1, V), -1)
            loss = (1 - a) * loss + a * F.cross_entropy(logits, soft)
            if tv > 0:  # total variation = 1 − acceptance Σ min(p, q)
                loss = loss + tv * (1 - torch.minimum(soft, torch.softmax(logits, -1)).sum(-1).mean())
        return loss

    step_fn = loss_fn
    compiled = False
    if compile_:
        try:
            step_fn = torch.compile(loss_fn)
            compiled = True
        except Exception as exc:  # noqa: BLE001 - pragma: no cover - depends on the toolchain
            log(f"torch.compile unavailable ({exc!r}); training eagerly")
    model.train()
    B, steps = train_cfg["batch_size"], train_cfg["steps"]
    offsets = torch.arange(seq_len + 1)
    losses = []
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, dynamic_ncols=True, mininterval=2.0)
    for step in bar:
        starts = torch.randint(0, len(stream) - seq_len - 1, (B,), generator=gen)
        batch = stream[starts[:, None] + offsets]
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, train_cfg)
        try:
            loss = step_fn(batch[:, :-1], batch[:, 1:])
        except Exception as exc:  # pragma: no cover - compile failures surface on the first call
            if not compiled or step > 0:
                raise
            log(f"torch.compile failed ({type(exc).__name__}); training eagerly")
            step_fn, compiled = loss_fn, False
            loss = step_fn(batch[:, :-1], batch[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg["grad_clip"])
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
    bar.close()
    wall = time.perf_counter() - t0
    model.eval()
    tail = losses[-20:]
    return {
        "wall_time_s": round(wall, 1),
        "compiled": compiled,
        "tokens_seen": steps * B * seq_len,
        "final_train_loss_last20": round(sum(tail) / len(tail), 4),
        "train_loss_every_50": [round(x, 4) for x in losses[::50]],
    }


# ---------------------------------------------------------------------------------------- metrics
def pair_metrics(target, draft, windows, temperatures=(1.0,), batch_size: int = 16, desc: str = "eval"):
    """Teacher-forced metrics of (target, draft) over ``windows`` (list of 1-D int64 tensors, each
    predicting its tokens 1..len−1): cross-entropies (nats/token), mean acceptance
    ``Σ_x min(p, q)`` at each temperature, top-1 agreement. Softmax in float32 (per-position sums
    accurate to ~1e-6), accumulated in float64."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    n = 0
    ce_t = ce_d = agree = 0.0
    acc = {float(T): 0.0 for T in temperatures}
    with torch.inference_mode():
        for i in tqdm(range(0, len(windows), batch_size), desc=desc, dynamic_ncols=True, mininterval=2.0):
            group = windows[i : i + batch_size]
            L = max(len(w) for w in group)
            x = torch.zeros(len(group), L, dtype=torch.int64)
            mask = torch.zeros(len(group), L - 1, dtype=torch.bool)
            for j, w in enumerate(group):
                x[j, : len(w)] = w
                mask[j, : len(w) - 1] = True
            lt = target(input_ids=x).logits[:, :-1].float()[mask]
            ld = draft(input_ids=x).logits[:, :-1].float()[mask]
            y = x[:, 1:][mask]
            ce_t += F.cross_entropy(lt, y, reduction="none").sum(dtype=torch.float64).item()
            ce_d += F.cross_entropy(ld, y, reduction="none").sum(dtype=torch.float64).item()
            agree += (lt.argmax(-1) == ld.argmax(-1)).sum().item()
            for T in acc:
                both = torch.minimum(torch.softmax(lt / T, -1), torch.softmax(ld / T, -1))
                acc[T] += both.sum(-1, dtype=torch.float64).sum().item()
            n += len(y)
    out = {
        "tokens": n,
        "ce_target": ce_t / n,
        "ce_draft": ce_d / n,
        "ce_ratio": (ce_d / n) / (ce_t / n),
        "acceptance_T1": acc.get(1.0, float("nan")) / n if 1.0 in acc else None,
        "acceptance_by_temperature": {str(T): a / n for T, a in acc.items()},
        "top1_agreement": agree / n,
    }
    return out


def heldout_windows(stream, seq_len: int):
    """Cut a stream into windows of ``seq_len + 1`` tokens overlapping by one, so every token after
    the first is predicted exactly once."""
    return [stream[i : i + seq_len + 1] for i in range(0, len(stream) - 1, seq_len) if len(stream[i : i + seq_len + 1]) > 1]


def prompt_windows(tokenizer, prompts):
    import torch

    eos = tokenizer.convert_tokens_to_ids(EOS)
    return [torch.tensor([eos] + tokenizer(p, add_special_tokens=False)["input_ids"], dtype=torch.int64) for p in prompts]


# ---------------------------------------------------------------------------------------- prompts
def select_prompts(heldout, n: int, seed: int, max_chars: int = 240) -> list[str]:
    """``n`` short snippets from distinct held-out files: from a random non-blank, non-comment line
    start, whole lines until at least 3 non-blank lines or 120 characters (at most ``max_chars``),
    each ending with a newline; snippets with a backslash, a tab or a carriage return are redrawn
    (so that :func:`format_prompts` is exact)."""
    rng = random.Random(seed)
    files = [f for f in sorted(heldout) if len(f[1].splitlines()) >= 8]
    chosen = rng.sample(files, n) if len(files) >= n else [files[i % len(files)] for i in range(n)]
    prompts = []
    for rel, text in chosen:
        lines = text.splitlines()
        starts = [i for i, line in enumerate(lines)
                  if line.strip() and not line.lstrip().startswith("#") and len(line) <= max_chars]
        for _ in range(100):
            i = rng.choice(starts)
            snippet, nonblank = [], 0
            for line in lines[i:]:
                if len("\n".join(snippet + [line])) > max_chars:
                    break
                snippet.append(line)
                nonblank += bool(line.strip())
                if nonblank >= 3 or len("\n".join(snippet)) >= 120:
                    break
            s = "\n".join(snippet).rstrip()
            if len(s) >= 40 and not any(c in s for c in "\\\t\r"):
                prompts.append(s + "\n")
                break
        else:  # pragma: no cover - every selected file has a usable line in practice
            prompts.append("\n".join(lines[:3]) + "\n")
    return prompts


def format_prompts(prompts) -> str:
    """The ``prompts.txt`` text: one prompt per line, newlines written as backslash + ``n``."""
    for p in prompts:
        if "\\" in p or "\r" in p:
            raise ValueError(f"prompt with a backslash or carriage return cannot be written: {p!r}")
    return "".join(p.replace("\n", "\\n") + "\n" for p in prompts)


def parse_prompts(text: str) -> list[str]:
    """Inverse of :func:`format_prompts` (non-empty lines, backslash + ``n`` -> newline)."""
    return [line.replace("\\n", "\n") for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------- main
def _portable_tokenizer_config(folder: Path) -> None:
    """Name the class ``PreTrainedTokenizerFast`` in ``tokenizer_config.json`` (transformers 5 writes
    its own ``TokenizersBackend``, unknown to transformers 4; both load the former)."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _normalise_permissions(folder: Path) -> None:
    """Folders 0755 and files 0644 (minus the umask), like any file written normally."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, (0o755 if p.is_dir() else 0o644) & ~umask)


def _dir_sizes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def _reuse_model(src: Path, name: str, tmp: Path, cfg: dict, train_files, log) -> dict:
    """Copy model ``name`` from a previous output folder ``src`` instead of retraining it; only when
    that run used the same corpus, tokenizer, configuration, schedule and seed (training is
    deterministic, so retraining would give the same model). Returns its training record entry."""
    src = Path(src).resolve()
    old = json.loads((src / "training.json").read_text(encoding="utf-8"))
    entry = old["models"][name]
    problems = []
    if old["corpus"]["train"]["fingerprint_sha256"] != fingerprint(train_files):
        problems.append("training corpus differs")
    if (src / "tokenizer" / "tokenizer.json").read_bytes() != (tmp / "tokenizer" / "tokenizer.json").read_bytes():
        problems.append("tokenizer differs")
    if any(entry["config"].get(k) != v for k, v in cfg[name]["model"].items()):
        problems.append("model configuration differs")
    if any(entry["training"].get(k) != v for k, v in cfg[name]["train"].items()):
        problems.append("training configuration differs")
    if entry["seed"] != cfg["seed"] + (1 if name == "target" else 2):
        problems.append("seed differs")
    if name == "draft" and (src / "target" / "model.safetensors").read_bytes() != (
            tmp / "target" / "model.safetensors").read_bytes():
        problems.append("its teacher (the target) differs")
    if problems:
        raise ValueError(f"cannot reuse {name} from {src}: " + "; ".join(problems))
    shutil.copytree(src / name, tmp / name)
    log(f"{name}: reused from {src} (same corpus, tokenizer, configuration and seed)")
    return entry | {"reused_from_previous_run": True}


def build(out: Path, cfg: dict | None = None, *, threads: int = 2, compile_: bool = True, reuse: dict | None = None,
          log=print) -> dict:
    """Build the pair into ``out`` (atomically: a temporary sibling folder renamed onto ``out``).
    ``reuse``: optional ``{"target" and/or "draft": previous output folder}`` to copy a model
    trained identically before (checked: corpus, tokenizer, configuration, schedule, seed, and for
    the draft its teacher) rather than retrain it, e.g. while tuning the other one. Training is
    deterministic, so this gives the files a full run would give; ``training.json`` marks such a
    model ``"reused_from_previous_run": true`` and keeps its original training record.
    Returns the training record (also written to ``out/training.json``)."""
    reuse = dict(reuse or {})
    import tokenizers
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    cfg = json.loads(json.dumps(DEFAULTS if cfg is None else cfg))
    seed, seq_len = cfg["seed"], cfg["seq_len"]
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    t_start = time.perf_counter()

    root = stdlib_path()
    files, skipped = collect_corpus(root, cfg["max_file_bytes"])
    train_files, held_files = split_corpus(files, seed, cfg["heldout_fraction"])
    log(f"corpus: {len(files)} files under {root} -> {len(train_files)} train / {len(held_files)} held-out")

    t0 = time.perf_counter()
    tokenizer = train_tokenizer([t for _, t in train_files], cfg["vocab_size"])
    tokenizer_time = time.perf_counter() - t0
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    train_stream = encode_stream(tokenizer, [t for _, t in train_files])
    held_stream = encode_stream(tokenizer, [t for _, t in held_files])
    log(f"tokens: {len(train_stream)} train / {len(held_stream)} held-out (vocab {len(tokenizer)})")

    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tokenizer.save_pretrained(tmp / "tokenizer")
        _portable_tokenizer_config(tmp / "tokenizer")
        record_models = {}
        for k, name in enumerate(("target", "draft")):
            if name in reuse:
                record_models[name] = _reuse_model(reuse[name], name, tmp, cfg, train_files, log)
                continue
            model = make_model(cfg[name]["model"], len(tokenizer), seq_len, eos_id)
            teacher = None
            if name == "draft" and cfg[name]["train"].get("distill", 0) > 0:  # the stored target, in float32
                teacher = AutoModelForCausalLM.from_pretrained(tmp / "target", dtype=torch.float32,
                                                               local_files_only=True)
            stats = train_model(model, train_stream, cfg[name]["train"], seq_len, seed + 1 + k, teacher=teacher,
                                compile_=compile_, desc=f"train {name}", log=log)
            teacher_used = teacher is not None
            del teacher
            log(f"{name}: {n_params(model):,} parameters, {stats['wall_time_s']} s, "
                f"final train loss {stats['final_train_loss_last20']}")
            model.to(torch.float16).save_pretrained(tmp / name)
            record_models[name] = {
                "architecture": "LlamaForCausalLM",
                "config": cfg[name]["model"] | {"vocab_size": len(tokenizer), "max_position_embeddings": seq_len,
                                                "tie_word_embeddings": True},
                "parameters": n_params(model),
                "stored_dtype": "float16",
                "seed": seed + 1 + k,
                "training": cfg[name]["train"] | {"sequence_length": seq_len, "optimizer": "AdamW",
                                                  "schedule": "linear warm-up, cosine decay to min_lr_ratio·lr",
                                                  "batches": "random windows of the training stream",
                                                  "loss": ("(1 - distill)·CE(data) + distill·CE(target softmax, draft)"
                                                           " + tv·(1 - Σ min(target softmax, draft softmax))"
                                                           if teacher_used else "CE(data)")} | stats,
            }
            del model

        # Metrics of the stored (float16) weights, reloaded in float32.
        target = AutoModelForCausalLM.from_pretrained(tmp / "target", dtype=torch.float32, local_files_only=True).eval()
        draft = AutoModelForCausalLM.from_pretrained(tmp / "draft", dtype=torch.float32, local_files_only=True).eval()
        t0 = time.perf_counter()
        held = pair_metrics(target, draft, heldout_windows(held_stream, seq_len), cfg["temperatures"],
                            desc="held-out eval")
        eval_time = time.perf_counter() - t0
        log(f"held-out: CE target {held['ce_target']:.4f}, draft {held['ce_draft']:.4f}, "
            f"ratio {held['ce_ratio']:.3f}, acceptance(T=1) {held['acceptance_T1']:.4f}")

        prompts = select_prompts(held_files, cfg["n_prompts"], seed)
        (tmp / "prompts.txt").write_text(format_prompts(prompts), encoding="utf-8")
        on_prompts = pair_metrics(target, draft, prompt_windows(tokenizer, prompts), [1.0], desc="prompt eval")

        record = {
            "description": "Reference target/draft pair of spectheory, trained from scratch on the Python "
                           "standard library's own source by simulations/train_reference_pair.py",
            "command": "python -m spectheory.simulations.train_reference_pair --out DIR",
            "environment": {
                "python": platform.python_version(), "implementation": platform.python_implementation(),
                "platform": platform.platform(), "machine": platform.machine(), "torch": torch.__version__,
                "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "threads": threads, "device": "cpu",
            },
            "corpus": {
                "source": "Python standard library *.py files",
                "stdlib_path": str(root),
                "pattern": 'sysconfig.get_paths()["stdlib"]/**/*.py',
                "excluded_dirs": sorted(EXCLUDED_DIRS),
                "max_file_bytes": cfg["max_file_bytes"],
                "skipped": skipped,
                "split_rule": f'held out iff int.from_bytes(sha256(f"{{seed}}:{{relpath}}")[:8], "big") / 2**64 '
                              f'< {cfg["heldout_fraction"]} (relpath POSIX, relative to the stdlib folder)',
                "seed": seed,
                "train": {"files": len(train_files), "characters": sum(len(t) for _, t in train_files),
                          "tokens": len(train_stream), "fingerprint_sha256": fingerprint(train_files)},
                "heldout": {"files": len(held_files), "characters": sum(len(t) for _, t in held_files),
                            "tokens": len(held_stream), "fingerprint_sha256": fingerprint(held_files),
                            "file_list": [r for r, _ in held_files]},
                "fingerprint_rule": "sha256 over sorted lines 'relpath<TAB>sha256(utf-8 text)<LF>'",
                "stream": f"each file's tokens followed by {EOS}, files in sorted relpath order",
            },
            "tokenizer": {"type": "byte-level BPE (tokenizers), PreTrainedTokenizerFast", "vocab_size": len(tokenizer),
                          "special_tokens": [EOS], "eos_token_id": eos_id, "min_frequency": 2,
                          "trained_on": "training split only", "training_time_s": round(tokenizer_time, 1)},
            "models": record_models,
            "metrics": {
                "heldout": held | {"evaluation": f"teacher-forced windows of {seq_len} predicted tokens "
                                                 "(overlap 1), float16 weights reloaded in float32",
                                   "wall_time_s": round(eval_time, 1)},
                "prompts": on_prompts | {"evaluation": f"each prompt prefixed by {EOS}, teacher-forced"},
            },
            "prompts": {"file": "prompts.txt", "count": len(prompts),
                        "format": "one prompt per line, each newline inside a prompt written as the two characters "
                                  "backslash n (prompts contain no backslash)",
                        "rule": "one snippet per distinct held-out file (random.Random(seed)), whole lines, "
                                "at least 3 non-blank lines or 120 characters, at most 240 characters"},
        }
        # file sizes: everything but training.json itself, then training.json
        sizes = _dir_sizes(tmp)
        record["files"] = {"bytes": sizes, "total_bytes_excluding_training_json": sum(sizes.values())}
        record["total_wall_time_s"] = round(time.perf_counter() - t_start, 1)
        (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

        _normalise_permissions(tmp)  # mkdtemp makes 0700, some writers 0600: make it readable as package data
        # atomic replace: move the old folder aside, rename the new one, then delete the old one
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spectheory.simulations.train_reference_pair",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=PACKAGE_PAIR_PATH,
                    help=f"output folder (replaced atomically); default: the shipped one, {PACKAGE_PAIR_PATH}")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (results depend on it slightly)")
    ap.add_argument("--no-compile", action="store_true", help="train eagerly instead of with torch.compile")
    ap.add_argument("--target-steps", type=int, default=None)
    ap.add_argument("--draft-steps", type=int, default=None)
    ap.add_argument("--config", type=Path, default=None, help="JSON file replacing DEFAULTS (same keys)")
    ap.add_argument("--reuse-target", type=Path, default=None, metavar="DIR",
                    help="copy the target from a previous output folder trained identically (checked) "
                         "instead of retraining it, e.g. while tuning the draft")
    ap.add_argument("--reuse-draft", type=Path, default=None, metavar="DIR",
                    help="likewise for the draft (also checks that the target, its teacher, is identical)")
    args = ap.parse_args(argv)
    cfg = json.loads(json.dumps(DEFAULTS))
    if args.config is not None:
        cfg = json.loads(args.config.read_text())
    if args.target_steps is not None:
        cfg["target"]["train"]["steps"] = args.target_steps
    if args.draft_steps is not None:
        cfg["draft"]["train"]["steps"] = args.draft_steps
    reuse = {k: v for k, v in (("target", args.reuse_target), ("draft", args.reuse_draft)) if v is not None}
    record = build(args.out, cfg, threads=args.threads, compile_=not args.no_compile, reuse=reuse,
                   log=lambda s: print(s, file=sys.stderr, flush=True))
    m = record["metrics"]["heldout"]
    print(json.dumps({"out": str(Path(args.out).resolve()), "ce_target": m["ce_target"], "ce_draft": m["ce_draft"],
                      "ce_ratio": m["ce_ratio"], "acceptance_T1": m["acceptance_T1"],
                      "total_bytes": record["files"]["total_bytes_excluding_training_json"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
