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
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectheory._validation import SpecTheoryValueError
from spectheory.io import atomic_path, folder_lock, remove_stale_temporaries, write_json_atomic

from .models import load_model, resolve_source  # the one model loader (load_model re-exported for callers)

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
    """The torch device for ``device`` ("auto": CUDA when present); one check shared with replay
    (refuses CUDA on a machine without it, instead of torch's AssertionError)."""
    from .replay import _check_device

    return _check_device(device)


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
    """Prompts from a file: a JSON list of strings (``.json``), JSON lines (``.jsonl``, see
    :func:`read_prompt_file`) or one prompt per non-empty line, where ``\\n`` stands for a newline."""
    return read_prompt_file(path)[0]


def read_prompt_file(path):
    """``(prompts, categories)`` from a prompts file; ``categories`` is None unless a ``.jsonl`` file
    gives some.

    A ``.jsonl`` file holds one JSON object per non-empty line with a string ``prompt`` (or ``text``)
    and an optional string ``category``; a bad line is an error naming its line number."""
    p = Path(path)
    if p.suffix == ".jsonl":
        text = _read_text(p, path)
        prompts, cats = [], []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecTheoryValueError(f"--prompts: {path} line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise SpecTheoryValueError(f"--prompts: {path} line {lineno}: expected a JSON object, got {type(obj).__name__}")
            key = "prompt" if "prompt" in obj else "text"
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise SpecTheoryValueError(f"--prompts: {path} line {lineno}: needs a non-empty string 'prompt' (or 'text')")
            cat = obj.get("category")
            if cat is not None and not isinstance(cat, str):
                raise SpecTheoryValueError(f"--prompts: {path} line {lineno}: 'category' must be a string, got {type(cat).__name__}")
            prompts.append(obj[key])
            cats.append(cat)
        if not prompts:
            raise SpecTheoryValueError(f"--prompts: no prompts in {path} (the file is empty)")
        return prompts, (cats if any(c is not None for c in cats) else None)
    return _read_plain_prompts(p, path), None


def _read_text(p: Path, path) -> str:
    if p.is_dir():
        raise SpecTheoryValueError(f"--prompts: is a directory, not a file: {path}")
    if not p.is_file():
        raise SpecTheoryValueError(f"--prompts: file not found: {path}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecTheoryValueError(
            f"--prompts: {path} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    except OSError as exc:
        raise SpecTheoryValueError(f"--prompts: cannot read {path} ({exc.strerror or exc})") from None


def _read_plain_prompts(p: Path, path) -> list[str]:
    text = _read_text(p, path)
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


#: safetensors dtype code of each recording dtype
_ST_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "float64": "F64"}
_ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _bad(field: str, problem: str):
    return SpecTheoryValueError(f"recording: {MANIFEST}: {field}: {problem}")


def check_manifest(manifest) -> dict:
    """Check the schema of a recording's manifest (a parsed ``manifest.json``) and return it.

    Checked: a JSON object; ``format``; ``vocab_size`` an integer >= 1; ``dtype`` one of
    :data:`DTYPES`; ``settings`` an object whose ``generation`` holds the generation settings;
    ``shards`` a list of objects, each with ``prompt`` (integer >= 0, distinct), ``file`` (a plain
    ``*.safetensors`` name, so inside the recording folder, distinct; no path separators, no leading
    dot), ``positions`` (integer >= 1) and ``sha256`` (64 hex digits). Every problem is a
    :class:`~spectheory.SpecTheoryValueError` naming the field, e.g.
    ``"recording: manifest.json: shards[2].file: ..."``.
    """
    if not isinstance(manifest, dict):
        raise _bad("(top level)", f"must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise _bad("format", f"is {manifest.get('format')!r}, expected {FORMAT!r}")
    for key in ("vocab_size", "dtype", "shards", "settings"):
        if key not in manifest:
            raise _bad(key, "missing")
    V = manifest["vocab_size"]
    if not _is_int(V) or V < 1:
        raise _bad("vocab_size", f"must be an integer >= 1, got {V!r}")
    if manifest["dtype"] not in DTYPES:
        raise _bad("dtype", f"must be one of {', '.join(DTYPES)}, got {manifest['dtype']!r}")
    settings = manifest["settings"]
    if not isinstance(settings, dict):
        raise _bad("settings", f"must be a JSON object, got {type(settings).__name__}")
    gen = settings.get("generation")
    if not isinstance(gen, dict):
        raise _bad("settings.generation", f"must be a JSON object, got {type(gen).__name__}")
    for key, kinds in (("max_new_tokens", (int,)), ("temperature", (int, float)), ("top_k", (int, type(None))),
                       ("top_p", (int, float, type(None)))):
        if key not in gen:
            raise _bad(f"settings.generation.{key}", "missing")
        if isinstance(gen[key], bool) or not isinstance(gen[key], kinds):
            raise _bad(f"settings.generation.{key}", f"has the wrong type ({type(gen[key]).__name__})")
    if "prompts" in manifest and not (
        isinstance(manifest["prompts"], list) and all(isinstance(t, str) for t in manifest["prompts"])
    ):
        raise _bad("prompts", "must be a list of strings")
    if "categories" in manifest:
        cats = manifest["categories"]
        if not (isinstance(cats, list) and all(c is None or isinstance(c, str) for c in cats)):
            raise _bad("categories", "must be a list of strings (or null)")
        if "prompts" in manifest and len(cats) != len(manifest["prompts"]):
            raise _bad("categories", f"{len(cats)} categories for {len(manifest['prompts'])} prompts")
    shards = manifest["shards"]
    if not isinstance(shards, list):
        raise _bad("shards", f"must be a list, got {type(shards).__name__ if shards is not None else 'null'}")
    files, prompts = set(), set()
    for i, s in enumerate(shards):
        where = f"shards[{i}]"
        if not isinstance(s, dict):
            raise _bad(where, f"must be a JSON object, got {type(s).__name__}")
        for key in ("prompt", "file", "positions", "sha256"):
            if key not in s:
                raise _bad(f"{where}.{key}", "missing")
        f = s["file"]
        if (not isinstance(f, str) or not f.endswith(".safetensors") or f.startswith(".") or "/" in f
                or "\\" in f or "\0" in f or os.path.basename(f) != f or f != f.strip()):
            raise _bad(f"{where}.file", f"must be a plain *.safetensors file name inside the recording folder, got {f!r}")
        if f in files:
            raise _bad(f"{where}.file", f"shard {f} is listed twice")
        files.add(f)
        if not _is_int(s["prompt"]) or s["prompt"] < 0:
            raise _bad(f"{where}.prompt", f"must be an integer >= 0, got {s['prompt']!r}")
        if s["prompt"] in prompts:
            raise _bad(f"{where}.prompt", f"prompt {s['prompt']} is listed twice")
        prompts.add(s["prompt"])
        if not _is_int(s["positions"]) or s["positions"] < 1:
            raise _bad(f"{where}.positions", f"must be an integer >= 1, got {s['positions']!r}")
        if not isinstance(s["sha256"], str) or not _SHA256.match(s["sha256"]):
            raise _bad(f"{where}.sha256", f"must be 64 lowercase hex digits, got {s['sha256']!r}")
    return manifest


def load_recording(path, *, verify_hashes: bool = True) -> Recording:
    """Open and validate a recording folder written by :func:`record`.

    Checks the manifest's schema (:func:`check_manifest`), that every listed shard is a file inside
    the folder (not a link out of it), that its SHA-256 matches (unless ``verify_hashes=False``), and
    that its header is a well-formed safetensors header holding ``target`` and ``draft`` of shape
    (positions, V) in the manifest's dtype and ``tokens`` of shape (positions,) in int64. Temporary
    files an interrupted writer left behind are not shards and are ignored. Every problem is a
    :class:`~spectheory.SpecTheoryValueError` naming the shard or the manifest field.
    """
    folder = Path(path)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise SpecTheoryValueError(f"recording: folder not found: {folder}")
    if not mpath.is_file():
        raise SpecTheoryValueError(f"recording: {folder} has no {MANIFEST} (not a recording, or recording never started)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecTheoryValueError(f"recording: {mpath} is corrupted ({getattr(exc, 'msg', exc)})") from None
    check_manifest(manifest)
    V = manifest["vocab_size"]
    want = _ST_DTYPES[manifest["dtype"]]
    root = folder.resolve()
    for s in manifest["shards"]:
        f = folder / s["file"]
        if not f.is_file():
            raise SpecTheoryValueError(f"recording: shard {s['file']} is listed in the manifest but missing")
        if f.is_symlink() or f.resolve().parent != root:
            raise SpecTheoryValueError(f"recording: shard {s['file']} is a link out of the recording folder")
        if verify_hashes and _sha256(f) != s["sha256"]:
            raise SpecTheoryValueError(
                f"recording: shard {s['file']} is corrupted or truncated (SHA-256 differs from the manifest's)"
            )
        shapes = _safetensors_shapes(f, s["file"])
        expected = {"target": ((s["positions"], V), want), "draft": ((s["positions"], V), want),
                    "tokens": ((s["positions"],), "I64")}
        for key, (shape_want, dt_want) in expected.items():
            if key not in shapes:
                raise SpecTheoryValueError(f"recording: shard {s['file']} has no tensor {key!r}")
            shape, dt = shapes[key]
            if tuple(shape) != shape_want:
                raise SpecTheoryValueError(
                    f"recording: shard {s['file']} tensor {key!r} has shape {tuple(shape)}, "
                    f"expected {shape_want} from the manifest"
                )
            if dt != dt_want:
                raise SpecTheoryValueError(
                    f"recording: shard {s['file']} tensor {key!r} is stored as {dt}, but the manifest's dtype "
                    f"{manifest['dtype']!r} needs {dt_want}"
                )
    return Recording(folder, manifest)


def _safetensors_shapes(path: Path, name: str) -> dict:
    """{tensor: (shape, dtype)} from a safetensors header, checking that the header is well formed
    (every entry an object with a known dtype, an integer shape and data offsets that match it) and
    that the file is long enough."""
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
    except (ValueError, json.JSONDecodeError) as exc:  # UnicodeDecodeError is a ValueError
        raise SpecTheoryValueError(f"recording: shard {name} is truncated or not a safetensors file ({exc})") from None

    def bad(problem):
        return SpecTheoryValueError(f"recording: shard {name} has a malformed safetensors header ({problem})")

    if not isinstance(header, dict):
        raise bad(f"a {type(header).__name__}, not an object")
    out, end = {}, 0
    for key, v in header.items():
        if key == "__metadata__":
            if not isinstance(v, dict):
                raise bad(f"__metadata__ is a {type(v).__name__}, not an object")
            continue
        if not isinstance(v, dict):
            raise bad(f"entry {key!r} is a {type(v).__name__}, not an object")
        dt, shape, offs = v.get("dtype"), v.get("shape"), v.get("data_offsets")
        if dt not in _ST_ITEMSIZE:
            raise bad(f"entry {key!r} has dtype {dt!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"entry {key!r} has shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs) and 0 <= offs[0] <= offs[1]):
            raise bad(f"entry {key!r} has data_offsets {offs!r}")
        if offs[1] - offs[0] != math.prod(shape) * _ST_ITEMSIZE[dt]:
            raise bad(f"entry {key!r}: data_offsets {offs} do not match shape {shape} of {dt}")
        out[key] = (shape, dt)
        end = max(end, offs[1])
    if 8 + n + end > size:
        raise SpecTheoryValueError(f"recording: shard {name} is truncated ({size} bytes, needs {8 + n + end})")
    return out


def _settings(target_name, draft_name, prompts, *, max_new_tokens, temperature, top_k, top_p, do_sample,
              teacher_force, seed, dtype, chat=False) -> dict:
    from ._batched import SAMPLER

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
            "chat": bool(chat),
            "sampler": SAMPLER,
        },
        "dtype": dtype,
    }


def record(target, draft, prompts, out, *, max_new_tokens: int = 64, temperature: float = 1.0,
           top_k=None, top_p=None, do_sample: bool = True, teacher_force: bool = False, seed: int = 0,
           dtype: str = "float32", device: str = "auto", progress: bool = False, models=None,
           stop_after=None, tokenizer=None, ignore_auto_map: bool = False, batch_size: int = 1, chat: bool = False,
           categories=None) -> Recording:
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
    ignore_auto_map : bool
        Opt-in: load folders whose configuration names their own code with transformers' own
        implementation instead of refusing them (their code is never run); see :mod:`.models`.
    batch_size : int
        Prompts per forward pass (left padding, attention masks; :mod:`._batched`). The tokens do not
        depend on it (each prompt has its own generator), the logits only up to float rounding.
    chat : bool
        Wrap each prompt in the tokenizer's chat template as a user message (instruct models).
    categories : list of str, optional
        A category per prompt, stored in the manifest (``categories``) for the report's tables.

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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SpecTheoryValueError(f"--batch-size: must be an integer >= 1, got {batch_size!r}")
    if categories is not None:
        categories = [None if c is None else str(c) for c in categories]
        if len(categories) != len(prompts):
            raise SpecTheoryValueError(f"categories: {len(categories)} given for {len(prompts)} prompts")
    tdtype = _torch_dtype(dtype)
    dev = _resolve_device(device)
    out = Path(out)
    settings = _settings(target, draft, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                         top_k=top_k, top_p=top_p, do_sample=do_sample, teacher_force=teacher_force,
                         seed=seed, dtype=dtype, chat=chat)
    if categories is not None and any(c is not None for c in categories):
        settings["categories_sha256"] = hashlib.sha256(json.dumps(categories).encode()).hexdigest()
    else:
        categories = None
    if out.exists() and not out.is_dir():
        raise SpecTheoryValueError(f"--out: not a folder: {out}")
    if models is None:  # a mistyped local path fails before anything is written
        resolve_source(target, "--target")
        resolve_source(draft, "--draft")
        if tokenizer is not None:
            resolve_source(tokenizer, "--tokenizer")
    with folder_lock(out):
        # one writer at a time: a concurrent record() of the same folder waits, then finds the shards
        # done; the temporary files of a writer that was killed are removed (no live writer owns them)
        remove_stale_temporaries(out)
        return _record_locked(target, draft, prompts, out, settings, tdtype, dev, max_new_tokens=max_new_tokens,
                              temperature=temperature, top_k=top_k, top_p=top_p, do_sample=do_sample,
                              teacher_force=teacher_force, seed=seed, dtype=dtype, progress=progress, models=models,
                              stop_after=stop_after, tokenizer=tokenizer,
                              ignore_auto_map=ignore_auto_map, batch_size=batch_size, chat=chat, categories=categories)


def _record_locked(target, draft, prompts, out, settings, tdtype, dev, *, max_new_tokens, temperature, top_k, top_p,
                   do_sample, teacher_force, seed, dtype, progress, models, stop_after, tokenizer=None, ignore_auto_map=False,
                   batch_size=1, chat=False, categories=None) -> Recording:
    import torch

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
        opts = {"tokenizer": tokenizer, "ignore_auto_map": ignore_auto_map}
        tm, tok = load_model(target, "--target", dtype, dev, **opts)
        dm, tok_d = load_model(draft, "--draft", dtype, dev, **opts)
        check_same_tokenizer(tok, tok_d)
    if chat and not getattr(tok, "chat_template", None):  # before anything is written
        raise SpecTheoryValueError("--chat: the tokenizer has no chat template (not an instruct model?)")
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
        if categories is not None:
            manifest["categories"] = list(categories)
        write_json_atomic(mpath, manifest)
    done = {s["prompt"] for s in manifest["shards"]}
    todo = [i for i in range(len(prompts)) if i not in done]
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    written = 0
    bar = tqdm(total=len(prompts), initial=len(done), desc="record", unit="prompt", disable=not progress)
    gen = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
               do_sample=do_sample, teacher_force=teacher_force, seed=seed, chat=chat)
    if stop_after is not None:
        todo = todo[: int(stop_after)]
    for b in range(0, len(todo), int(batch_size)):
        batch = todo[b : b + int(batch_size)]
        for i, lt, ld, nxt in _record_batch(tm, dm, tok, prompts, batch, V, tdtype, dev, gen):
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
    bar.close()
    return load_recording(out)


def _record_batch(tm, dm, tok, prompts, batch, V, tdtype, dev, gen):
    """Yield ``(prompt index, target logits, draft logits, next tokens)`` for a batch of prompts:
    one generation call and one forward pass per model for the whole batch (:mod:`._batched`)."""
    import torch

    from . import _batched

    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    eos = tm.generation_config.eos_token_id if tm.generation_config.eos_token_id is not None else tok.eos_token_id
    eos_ids = [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])
    ids = []
    for i in batch:
        x = _batched.prompt_ids(tok, prompts[i], gen["chat"])
        if not x:
            raise SpecTheoryValueError(f"prompts: prompt {i} tokenizes to nothing")
        ids.append(x)
    with torch.no_grad():
        if gen["teacher_force"]:
            seqs, starts = ids, [1] * len(ids)
        else:
            conts = _batched.generate(tm, ids, [int(gen["seed"]) + i for i in batch],
                                      max_new_tokens=gen["max_new_tokens"], do_sample=gen["do_sample"],
                                      temperature=gen["temperature"], top_k=gen["top_k"], top_p=gen["top_p"],
                                      pad_id=pad_id, eos_ids=eos_ids, device=dev)
            seqs = [x + c for x, c in zip(ids, conts)]
            starts = [len(x) for x in ids]
        for i, sq, st in zip(batch, seqs, starts):
            if len(sq) <= st:
                raise SpecTheoryValueError(f"prompts: prompt {i} gives no position to record (text of one token?)")
        lts = _batched.forward_logits(tm, seqs, starts, V, tdtype, pad_id, dev)
        lds = _batched.forward_logits(dm, seqs, starts, V, tdtype, pad_id, dev)
    for i, sq, st, lt, ld in zip(batch, seqs, starts, lts, lds):
        yield i, lt, ld, torch.as_tensor(sq[st:], dtype=torch.int64)
