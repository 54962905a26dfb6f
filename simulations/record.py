"""Record target and draft logits from a Hugging Face causal-LM pair, resumably, as safetensors shards.

For each prompt the target generates a continuation (or, with ``teacher_force=True``, the prompt is a
text taken as it is); then the target and the draft are both evaluated on the same token sequence,
and the logits that predict every generated token (every token after the first, for texts) are
stored. One prompt gives one shard ``shard-NNNNN.safetensors`` with tensors

* ``target`` and ``draft``: logits, shape (T, V), in the recording dtype (one dtype for both models:
  REFERENCE §5, "use one precision for a position's p and q");
* ``tokens``: the token that followed each position, shape (T,), int64.

``manifest.json`` records the models, the tokenizer, the vocabulary size, the dtype, the prompts,
the generation settings and, per shard, its file name, number of positions and SHA-256. Shards and
the manifest are written atomically (temporary file, then :func:`os.replace`), the manifest after
every shard: a recording interrupted at any point resumes with :func:`record` (same ``out`` and
settings) at the first prompt without a shard, and nothing already recorded is lost or recomputed.
Generation is seeded per prompt from (seed, prompt index), so a resumed recording equals an
uninterrupted one. No pickle anywhere: safetensors and JSON only.

:func:`load_recording` validates a recording before use and reports missing, truncated, corrupted
or mismatched shards with the shard's name.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectheory._validation import SpecTheoryValueError
from spectheory.io import atomic_path, write_json_atomic

from .models import load_model  # noqa: F401  (the one model loader; re-exported for callers)

MANIFEST = "manifest.json"
FORMAT = "spectheory-recording/1"
DTYPES = ("float32", "bfloat16", "float16", "float64")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise SpecTheoryValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)


def _resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise SpecTheoryValueError(f"device: {exc}") from None


def check_same_tokenizer(tok_target, tok_draft) -> None:
    """Refuse a pair whose tokenizers differ (vocabulary, or special tokens)."""
    vt, vd = tok_target.get_vocab(), tok_draft.get_vocab()
    if vt != vd:
        only_t = len(set(vt) - set(vd))
        only_d = len(set(vd) - set(vt))
        raise SpecTheoryValueError(
            f"--draft: the draft's tokenizer differs from the target's ({len(vt)} vs {len(vd)} tokens; "
            f"{only_t} only in the target's, {only_d} only in the draft's, or ids differ); the pair must share one tokenizer"
        )
    st_t = {k: str(v) for k, v in tok_target.special_tokens_map.items()}
    st_d = {k: str(v) for k, v in tok_draft.special_tokens_map.items()}
    if st_t != st_d:
        raise SpecTheoryValueError(
            f"--draft: special tokens differ between the target's and the draft's tokenizers ({st_t} vs {st_d})"
        )


def read_prompts(path) -> list[str]:
    """Prompts from a file: a JSON list of strings (``.json``) or one prompt per non-empty line,
    where ``\\n`` stands for a newline."""
    p = Path(path)
    if not p.is_file():
        raise SpecTheoryValueError(f"--prompts: file not found: {path}")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            prompts = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecTheoryValueError(f"--prompts: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(prompts, list) or not all(isinstance(s, str) for s in prompts):
            raise SpecTheoryValueError("--prompts: a .json prompts file must hold a list of strings")
    else:
        prompts = [ln.replace("\\n", "\n") for ln in text.splitlines() if ln.strip()]
    prompts = [s for s in prompts if s.strip()]
    if not prompts:
        raise SpecTheoryValueError(f"--prompts: no prompts in {path} (the file is empty)")
    return prompts


@dataclass(frozen=True)
class Recording:
    """A validated recording: ``manifest`` (dict) and the folder; :meth:`shard` loads one shard."""

    path: Path
    manifest: dict

    @property
    def shards(self) -> list[dict]:
        return self.manifest["shards"]

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    @property
    def positions(self) -> int:
        return int(sum(s["positions"] for s in self.shards))

    def shard(self, i: int, dtype=None) -> dict:
        """Tensors of shard ``i`` as numpy arrays: ``target`` (T, V), ``draft`` (T, V), ``tokens`` (T,).
        Logits come back as float32 (bfloat16 is widened) unless ``dtype`` is given."""
        from safetensors.numpy import load_file as _np_load

        path = self.path / self.shards[i]["file"]
        if self.manifest["dtype"] == "bfloat16":
            from safetensors.torch import load_file

            t = load_file(str(path))
            out = {k: (v.float().numpy() if v.is_floating_point() else v.numpy()) for k, v in t.items()}
        else:
            out = _np_load(str(path))
        if dtype is not None:
            out["target"] = out["target"].astype(dtype)
            out["draft"] = out["draft"].astype(dtype)
        return out

    def logits(self, dtype=np.float32):
        """All positions: (target (N, V), draft (N, V), tokens (N,)) concatenated over shards."""
        parts = [self.shard(i, dtype) for i in range(len(self.shards))]
        return (
            np.concatenate([p["target"] for p in parts]),
            np.concatenate([p["draft"] for p in parts]),
            np.concatenate([p["tokens"] for p in parts]),
        )


def load_recording(path, *, verify_hashes: bool = True) -> Recording:
    """Open and validate a recording folder written by :func:`record`.

    Checks the manifest's format, that every listed shard exists, that its SHA-256 matches (unless
    ``verify_hashes=False``), and that its header is readable with the recorded shapes (V, positions,
    dtype). Every problem is a :class:`~spectheory.SpecTheoryValueError` naming the shard.
    """
    folder = Path(path)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise SpecTheoryValueError(f"recording: folder not found: {folder}")
    if not mpath.is_file():
        raise SpecTheoryValueError(f"recording: {folder} has no {MANIFEST} (not a recording, or recording never started)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecTheoryValueError(f"recording: {mpath} is corrupted ({exc.msg})") from None
    if manifest.get("format") != FORMAT:
        raise SpecTheoryValueError(f"recording: {mpath} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    V = int(manifest["vocab_size"])
    for s in manifest["shards"]:
        f = folder / s["file"]
        if not f.is_file():
            raise SpecTheoryValueError(f"recording: shard {s['file']} is listed in the manifest but missing")
        if verify_hashes and _sha256(f) != s["sha256"]:
            raise SpecTheoryValueError(
                f"recording: shard {s['file']} is corrupted or truncated (SHA-256 differs from the manifest's)"
            )
        shapes = _safetensors_shapes(f, s["file"])
        for key in ("target", "draft"):
            if key not in shapes:
                raise SpecTheoryValueError(f"recording: shard {s['file']} has no tensor {key!r}")
            shape, dt = shapes[key]
            if tuple(shape) != (s["positions"], V):
                raise SpecTheoryValueError(
                    f"recording: shard {s['file']} tensor {key!r} has shape {tuple(shape)}, "
                    f"expected ({s['positions']}, {V}) from the manifest"
                )
    return Recording(folder, manifest)


def _safetensors_shapes(path: Path, name: str) -> dict:
    """{tensor: (shape, dtype)} from a safetensors header, checking the file is long enough."""
    import struct

    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise ValueError("header length beyond the end of the file")
            header = json.loads(fh.read(n))
    except (ValueError, json.JSONDecodeError) as exc:
        raise SpecTheoryValueError(f"recording: shard {name} is truncated or not a safetensors file ({exc})") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise SpecTheoryValueError(f"recording: shard {name} is truncated ({size} bytes, needs {8 + n + end})")
    return {k: (v["shape"], v["dtype"]) for k, v in header.items() if k != "__metadata__"}


def _settings(target_name, draft_name, prompts, *, max_new_tokens, temperature, top_k, top_p, do_sample,
              teacher_force, seed, dtype) -> dict:
    return {
        "target": str(target_name),
        "draft": str(draft_name),
        "prompts_sha256": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(),
        "generation": {
            "max_new_tokens": int(max_new_tokens),
            "do_sample": bool(do_sample),
            "temperature": float(temperature),
            "top_k": None if top_k is None else int(top_k),
            "top_p": None if top_p is None else float(top_p),
            "teacher_force": bool(teacher_force),
            "seed": int(seed),
        },
        "dtype": dtype,
    }


def record(target, draft, prompts, out, *, max_new_tokens: int = 64, temperature: float = 1.0,
           top_k=None, top_p=None, do_sample: bool = True, teacher_force: bool = False, seed: int = 0,
           dtype: str = "float32", device: str = "auto", progress: bool = False, models=None,
           stop_after=None, tokenizer=None) -> Recording:
    """Record target and draft logits on the same prefixes; resumable (see the module docstring).

    Parameters
    ----------
    target, draft : str or Path
        Model folders, ``.gguf`` files or hub names, loaded by :func:`.models.load_model` (no
        model-supplied code, no pickle); they must share one tokenizer.
    prompts : list of str
        Prompts the target continues, or, with ``teacher_force=True``, texts evaluated as they are.
    out : str or Path
        Output folder; an existing recording there with the same settings is resumed, one with
        different settings is refused.
    max_new_tokens, temperature, top_k, top_p, do_sample
        The target's generation settings (``do_sample=False``: greedy generation).
    seed : int
        Generation for prompt i is seeded with ``seed + i``.
    dtype : {"float32", "bfloat16", "float16", "float64"}
        Model and storage dtype (one dtype for both models).
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ...
    models : tuple, optional
        Already loaded ``(target_model, draft_model, tokenizer)``, used instead of loading
        ``target`` and ``draft`` (whose names are still recorded).
    stop_after : int, optional
        Stop after writing this many new shards (for tests of resumption).
    tokenizer : str or Path, optional
        The tokenizer's folder, ``.gguf`` file or hub name, for model folders that do not hold it
        (used for both models).

    Returns
    -------
    Recording
    """
    import torch

    if not prompts:
        raise SpecTheoryValueError("prompts: no prompts given")
    if int(max_new_tokens) < 1 and not teacher_force:
        raise SpecTheoryValueError(f"max_new_tokens: must be >= 1, got {max_new_tokens}")
    if do_sample and not (temperature > 0):
        raise SpecTheoryValueError(
            f"temperature: must be > 0 for sampled generation, got {temperature}; use greedy generation instead"
        )
    tdtype = _torch_dtype(dtype)
    dev = _resolve_device(device)
    out = Path(out)
    settings = _settings(target, draft, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                         top_k=top_k, top_p=top_p, do_sample=do_sample, teacher_force=teacher_force,
                         seed=seed, dtype=dtype)
    mpath = out / MANIFEST
    if mpath.is_file():
        existing = load_recording(out)
        if existing.manifest["settings"] != settings:
            raise SpecTheoryValueError(
                f"--out: {out} already holds a recording with different settings; choose a new folder "
                "(or delete it) to record these"
            )
        manifest = existing.manifest
    else:
        out.mkdir(parents=True, exist_ok=True)
        manifest = None

    if models is not None:
        tm, dm, tok = models
        tm.to(dev).eval()
        dm.to(dev).eval()
    else:
        tm, tok = load_model(target, "--target", dtype, dev, tokenizer=tokenizer)
        dm, tok_d = load_model(draft, "--draft", dtype, dev, tokenizer=tokenizer)
        check_same_tokenizer(tok, tok_d)
    V = int(min(tm.get_output_embeddings().weight.shape[0], dm.get_output_embeddings().weight.shape[0]))
    Vt = tm.get_output_embeddings().weight.shape[0]
    Vd = dm.get_output_embeddings().weight.shape[0]
    if Vt != Vd and V < len(tok):
        raise SpecTheoryValueError(
            f"--draft: the models' output sizes differ ({Vt} vs {Vd}) and the smaller is below the tokenizer's {len(tok)}"
        )
    if manifest is None:
        manifest = {
            "format": FORMAT,
            "settings": settings,
            "models": {"target": str(target), "draft": str(draft),
                       "target_output_size": int(Vt), "draft_output_size": int(Vd)},
            "tokenizer": {"name_or_path": getattr(tok, "name_or_path", ""), "size": len(tok)},
            "vocab_size": V,
            "truncated_to_common_vocab": bool(Vt != Vd),
            "dtype": dtype,
            "prompts": list(prompts),
            "shards": [],
        }
        write_json_atomic(mpath, manifest)
    done = {s["prompt"] for s in manifest["shards"]}
    todo = [i for i in range(len(prompts)) if i not in done]
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    written = 0
    bar = tqdm(total=len(prompts), initial=len(done), desc="record", unit="prompt", disable=not progress)
    for i in todo:
        ids = tok(prompts[i], return_tensors="pt")["input_ids"].to(dev)
        if ids.shape[1] == 0:
            raise SpecTheoryValueError(f"prompts: prompt {i} tokenizes to nothing")
        with torch.no_grad():
            if teacher_force:
                seq = ids
                start = 1
            else:
                torch.manual_seed(int(seed) + i)
                gen_kwargs = dict(max_new_tokens=int(max_new_tokens), do_sample=bool(do_sample),
                                  attention_mask=torch.ones_like(ids), pad_token_id=tok.pad_token_id or tok.eos_token_id)
                if do_sample:
                    gen_kwargs.update(temperature=float(temperature), top_k=top_k if top_k is not None else 0,
                                      top_p=top_p if top_p is not None else 1.0)
                seq = tm.generate(ids, **gen_kwargs)
                start = ids.shape[1]
            if seq.shape[1] <= start:
                raise SpecTheoryValueError(f"prompts: prompt {i} gives no position to record (text of one token?)")
            lt = tm(seq).logits[0, start - 1 : -1, :V].to(tdtype).contiguous().cpu()
            ld = dm(seq).logits[0, start - 1 : -1, :V].to(tdtype).contiguous().cpu()
        nxt = seq[0, start:].to(torch.int64).contiguous().cpu()
        name = f"shard-{i:05d}.safetensors"
        with atomic_path(out / name) as tmp:
            save_file({"target": lt, "draft": ld, "tokens": nxt}, tmp)
        manifest["shards"].append(
            {"prompt": i, "file": name, "positions": int(lt.shape[0]), "sha256": _sha256(out / name)}
        )
        manifest["shards"].sort(key=lambda s: s["prompt"])
        write_json_atomic(mpath, manifest)
        bar.update(1)
        written += 1
        if stop_after is not None and written >= stop_after:
            break
    bar.close()
    return load_recording(out)
