"""Importers for what serving stacks return: top-k log-probabilities per position.

:func:`read_topk` turns one model's output into a :class:`TopKLogprobs` (token ids and natural-log
probabilities, shape (T, k), ragged rows padded with id −1), ready for
:func:`spectheory.optimal_acceptance_interval`::

    tgt = st.read_topk("target.json")                       # vLLM / SGLang / OpenAI JSON
    drf = st.read_topk("draft.json")
    r = st.optimal_acceptance_interval(tgt.ids, tgt.logprobs, drf.ids, drf.logprobs, n=4,
                                       vocab_size=151936)

Understood sources (``format="auto"`` detects them):

* **vLLM** — ``RequestOutput.outputs[0].logprobs`` or ``.prompt_logprobs``: one dict per position
  mapping token id → ``Logprob`` (or a float, or ``{"logprob": x}``); the JSON of such a list (ids
  become string keys), or ``{"outputs": [{"logprobs": ...}], "prompt_logprobs": ...}``. Leading
  ``None`` entries (the prompt's first token) are dropped.
* **SGLang** — the ``/generate`` response's ``meta_info["output_top_logprobs"]`` (or
  ``"input_top_logprobs"`` with ``which="prompt"``): per position a list of
  ``[logprob, token_id, text]``.
* **OpenAI-style** — chat (``choices[0].logprobs.content[i].top_logprobs``, a list of
  ``{"token", "logprob"}``) and completions (``choices[0].logprobs.top_logprobs``, dicts token →
  logprob). Token *strings* are mapped to ids with ``tokenizer`` (a mapping str → id, or an object
  with ``decode`` and ``__len__`` such as a Hugging Face tokenizer); a string that several ids
  decode to is refused, naming the ids. ``"token_id:123"`` strings (vLLM's
  ``return_tokens_as_token_ids``) need no tokenizer.
* **Hugging Face** ``generate(..., output_scores=True, return_dict_in_generate=True)``: the
  ``scores`` tuple (one (batch, V) tensor per step; ``row`` picks the sequence).
* **Full-vocabulary arrays** — logits or log-probs of shape (T, V): NumPy arrays, ``.npy`` files
  (opened as memory maps and read in blocks of rows, never whole), torch tensors (any float dtype,
  bf16 included) and ``.pt`` files, read with ``torch.load(weights_only=True)`` only (never a
  pickle). Rows are log-softmax normalised; ``k`` keeps the top k per row (default: all V).
  ``.pt`` / ``.npz`` files holding ``ids`` and ``logprobs`` arrays are read as top-k directly.

Every malformed input raises :class:`~spectheory.SpecTheoryValueError` naming the field.

Examples
--------
>>> import spectheory as st
>>> vllm = [{"5": -0.1, "7": -2.5}, {"7": -0.3, "2": -1.9, "5": -3.0}]
>>> t = st.read_topk(vllm)
>>> t.ids.tolist(), t.logprobs.shape
([[5, 7, -1], [7, 2, 5]], (2, 3))
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import SpecTheoryValueError

FORMATS = ("auto", "vllm", "sglang", "openai", "hf", "array", "topk")
#: Rows of a full-vocabulary array processed at once (bounds the memory of a memory-mapped read).
BLOCK_ROWS = 256


@dataclass(frozen=True)
class TopKLogprobs:
    """Known log-probabilities of one model: ``ids`` (T, k) int64 with −1 padding, ``logprobs``
    (T, k) float64 (−inf at padding); ``vocab_size`` when the source tells it (full arrays)."""

    ids: np.ndarray
    logprobs: np.ndarray
    vocab_size: int | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


# ----------------------------------------------------------------------------- helpers


def _pad(rows, field: str) -> TopKLogprobs:
    """rows: list of lists of (id, logprob)."""
    if not rows:
        raise SpecTheoryValueError(f"{field}: no positions")
    k = max(len(r) for r in rows)
    if k == 0:
        raise SpecTheoryValueError(f"{field}: k = 0 (no log-probabilities at any position)")
    ids = np.full((len(rows), k), -1, dtype=np.int64)
    lps = np.full((len(rows), k), -np.inf)
    for t, r in enumerate(rows):
        for j, (i, lp) in enumerate(r):
            ids[t, j] = i
            lps[t, j] = lp
    return TopKLogprobs(ids, lps)


def _number(x, field: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.floating, np.integer)):
        lp = getattr(x, "logprob", None)
        if lp is None and isinstance(x, Mapping):
            lp = x.get("logprob")
        if lp is None:
            raise SpecTheoryValueError(f"{field}: expected a log-probability, got {type(x).__name__}")
        x = lp
    v = float(x)
    if math.isnan(v):
        raise SpecTheoryValueError(f"{field}: NaN log-probability")
    return v


def _token_id(x, field: str) -> int:
    try:
        i = int(x)
    except (TypeError, ValueError):
        raise SpecTheoryValueError(f"{field}: token id {x!r} is not an integer") from None
    if isinstance(x, float) and x != i:
        raise SpecTheoryValueError(f"{field}: token id {x!r} is not an integer")
    if i < 0:
        raise SpecTheoryValueError(f"{field}: negative token id {i}")
    return i


def _drop_leading_none(seq, field):
    seq = list(seq)
    start = 0
    while start < len(seq) and seq[start] is None:
        start += 1
    if any(x is None for x in seq[start:]):
        raise SpecTheoryValueError(f"{field}: a position without log-probabilities (None) after the first")
    return seq[start:]


# ----------------------------------------------------------------------------- vLLM


def _is_vllm_rows(obj) -> bool:
    return isinstance(obj, (list, tuple)) and any(isinstance(x, Mapping) for x in obj) and all(
        x is None or (isinstance(x, Mapping) and all(_intlike(k) for k in x)) for x in obj)


def _intlike(k) -> bool:
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        return True
    return isinstance(k, str) and k.strip().lstrip("-").isdigit()


def _from_vllm(obj, which: str) -> TopKLogprobs:
    field = "vllm"
    if not isinstance(obj, (list, tuple)):
        # a RequestOutput object or its JSON
        get = (lambda o, a: o.get(a)) if isinstance(obj, Mapping) else getattr
        if which == "prompt":
            seq = get(obj, "prompt_logprobs")
            field = "vllm prompt_logprobs"
        else:
            outs = get(obj, "outputs")
            if not outs:
                raise SpecTheoryValueError("vllm outputs: missing or empty")
            first = outs[0]
            seq = first.get("logprobs") if isinstance(first, Mapping) else getattr(first, "logprobs", None)
            field = "vllm outputs[0].logprobs"
        if seq is None:
            raise SpecTheoryValueError(f"{field}: missing (request logprobs / prompt_logprobs from vLLM)")
        obj = seq
    rows = []
    for t, d in enumerate(_drop_leading_none(obj, field)):
        if not isinstance(d, Mapping):
            raise SpecTheoryValueError(f"{field}[{t}]: expected a dict token id -> logprob")
        rows.append([(_token_id(k, f"{field}[{t}]"), _number(v, f"{field}[{t}][{k}]")) for k, v in d.items()])
    return _pad(rows, field)


# ----------------------------------------------------------------------------- SGLang


def _from_sglang(obj, which: str) -> TopKLogprobs:
    key = "input_top_logprobs" if which == "prompt" else "output_top_logprobs"
    field = f"sglang meta_info.{key}"
    if isinstance(obj, Mapping):
        meta = obj.get("meta_info", obj)
        if key not in meta:
            raise SpecTheoryValueError(f"{field}: missing (request return_logprob=True, top_logprobs_num=k)")
        obj = meta[key]
    rows = []
    for t, pos in enumerate(_drop_leading_none(obj, field)):
        row = []
        for j, e in enumerate(pos):
            if not isinstance(e, (list, tuple)) or len(e) < 2:
                raise SpecTheoryValueError(f"{field}[{t}][{j}]: expected [logprob, token_id, text]")
            row.append((_token_id(e[1], f"{field}[{t}][{j}]"), _number(e[0], f"{field}[{t}][{j}]")))
        rows.append(row)
    return _pad(rows, field)


def _is_sglang_rows(obj) -> bool:
    if not isinstance(obj, (list, tuple)):
        return False
    for pos in obj:
        if pos is None:
            continue
        return (isinstance(pos, (list, tuple)) and len(pos) > 0 and isinstance(pos[0], (list, tuple))
                and len(pos[0]) >= 2 and isinstance(pos[0][0], (int, float)) and _intlike(pos[0][1]))
    return False


# ----------------------------------------------------------------------------- OpenAI


class _TokenMap:
    """Token string -> id, refusing strings that several ids decode to."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._map = None

    def _build(self):
        tok = self.tokenizer
        m: dict[str, list[int]] = {}
        if isinstance(tok, Mapping):
            for s, i in tok.items():
                m.setdefault(str(s), []).append(int(i))
        elif hasattr(tok, "decode") and hasattr(tok, "__len__"):
            for i in range(len(tok)):
                m.setdefault(tok.decode([i]), []).append(i)
        else:
            raise SpecTheoryValueError(
                "tokenizer: expected a mapping token string -> id or an object with decode() and len() "
                f"(a Hugging Face tokenizer), got {type(tok).__name__}")
        self._map = m

    def __call__(self, s, field: str) -> int:
        if isinstance(s, str) and s.startswith("token_id:"):
            return _token_id(s[len("token_id:"):], field)
        if self.tokenizer is None:
            raise SpecTheoryValueError(
                f"tokenizer: required to map the token strings of {field} to ids (pass tokenizer=..., "
                "or ask the server for token ids)")
        if self._map is None:
            self._build()
        ids = self._map.get(s)
        if not ids:
            raise SpecTheoryValueError(f"{field}: token string {s!r} is not in the tokenizer's vocabulary")
        if len(ids) > 1:
            raise SpecTheoryValueError(
                f"{field}: token string {s!r} is ambiguous: ids {', '.join(map(str, ids[:8]))} all decode to it "
                "(ask the server for token ids, e.g. vLLM's return_tokens_as_token_ids)")
        return ids[0]


def _from_openai(obj, tokenizer) -> TopKLogprobs:
    tmap = _TokenMap(tokenizer)
    choices = obj.get("choices") if isinstance(obj, Mapping) else None
    if not choices:
        raise SpecTheoryValueError("openai choices: missing or empty")
    lp = choices[0].get("logprobs") if isinstance(choices[0], Mapping) else None
    if not isinstance(lp, Mapping):
        raise SpecTheoryValueError("openai choices[0].logprobs: missing (request logprobs=True, top_logprobs=k)")
    rows = []
    if "content" in lp:  # chat completions
        for t, e in enumerate(lp["content"] or []):
            field = f"openai choices[0].logprobs.content[{t}].top_logprobs"
            tops = e.get("top_logprobs") if isinstance(e, Mapping) else None
            if tops is None:
                raise SpecTheoryValueError(f"{field}: missing (request top_logprobs=k)")
            row = []
            for j, x in enumerate(tops):
                if not isinstance(x, Mapping) or "token" not in x or "logprob" not in x:
                    raise SpecTheoryValueError(f"{field}[{j}]: expected {{'token': ..., 'logprob': ...}}")
                row.append((tmap(x["token"], f"{field}[{j}]"), _number(x["logprob"], f"{field}[{j}]")))
            rows.append(row)
        return _pad(rows, "openai choices[0].logprobs.content")
    if "top_logprobs" in lp:  # legacy completions
        for t, d in enumerate(_drop_leading_none(lp["top_logprobs"], "openai top_logprobs")):
            field = f"openai choices[0].logprobs.top_logprobs[{t}]"
            if not isinstance(d, Mapping):
                raise SpecTheoryValueError(f"{field}: expected a dict token -> logprob")
            rows.append([(tmap(s, field), _number(v, f"{field}[{s!r}]")) for s, v in d.items()])
        return _pad(rows, "openai choices[0].logprobs.top_logprobs")
    raise SpecTheoryValueError("openai choices[0].logprobs: neither 'content' (chat) nor 'top_logprobs' (completions)")


# ----------------------------------------------------------------------------- full arrays


def _torch_to_numpy(x):
    """A torch tensor (any device, bf16/fp16 included) as a NumPy array; floats in float64."""
    import torch

    x = x.detach()
    if x.is_floating_point():
        x = x.to(dtype=torch.float64)
    return x.cpu().numpy()


def _log_softmax_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if np.any(np.isnan(a)) or np.any(a == np.inf):
        raise SpecTheoryValueError("logits: NaN or +inf")
    m = a.max(axis=1, keepdims=True)
    if np.any(m == -np.inf):
        raise SpecTheoryValueError("logits: a row with every entry -inf")
    z = a - m
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _from_full(arr, k, field: str) -> TopKLogprobs:
    """(T, V) logits or log-probs (any array with shape and row slicing, e.g. a memmap), in blocks."""
    shape = tuple(arr.shape)
    if len(shape) == 3 and shape[1] == 1:
        arr = arr[:, 0]
        shape = (shape[0], shape[2])
    if len(shape) == 1:
        arr = arr.reshape(1, -1)
        shape = (1, shape[0])
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise SpecTheoryValueError(f"{field}: expected logits of shape (T, V), got {shape}")
    T, V = shape
    if k is not None:
        if isinstance(k, bool) or int(k) != k or not 1 <= int(k):
            raise SpecTheoryValueError(f"k: must be an integer >= 1, got {k!r}")
        k = min(int(k), V)
    kk = V if k is None else k
    ids = np.empty((T, kk), dtype=np.int64)
    lps = np.empty((T, kk))
    for s in range(0, T, BLOCK_ROWS):
        block = arr[s:s + BLOCK_ROWS]
        if hasattr(block, "detach"):
            block = _torch_to_numpy(block)
        lp = _log_softmax_rows(np.asarray(block))
        if kk == V:
            ids[s:s + len(lp)] = np.arange(V)
            lps[s:s + len(lp)] = lp
            continue
        part = np.argpartition(-lp, kk - 1, axis=1)[:, :kk]
        vals = np.take_along_axis(lp, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        ids[s:s + len(lp)] = np.take_along_axis(part, order, axis=1)
        lps[s:s + len(lp)] = np.take_along_axis(vals, order, axis=1)
    return TopKLogprobs(ids, lps, vocab_size=V)


def _from_hf(obj, k, row: int) -> TopKLogprobs:
    scores = obj.get("scores") if isinstance(obj, Mapping) else getattr(obj, "scores", None)
    if scores is None:
        raise SpecTheoryValueError("hf scores: missing (call generate with output_scores=True, return_dict_in_generate=True)")
    if len(scores) == 0:
        raise SpecTheoryValueError("hf scores: no generation steps")
    steps = []
    for t, s in enumerate(scores):
        a = _torch_to_numpy(s) if hasattr(s, "detach") else np.asarray(s)
        if a.ndim != 2:
            raise SpecTheoryValueError(f"hf scores[{t}]: expected shape (batch, V), got {a.shape}")
        if not 0 <= row < a.shape[0]:
            raise SpecTheoryValueError(f"row: {row} out of range for a batch of {a.shape[0]}")
        steps.append(a[row])
    return _from_full(np.stack(steps), k, "hf scores")


def _from_topk_arrays(d, field: str) -> TopKLogprobs:
    ids_key = next((x for x in ("ids", "token_ids", "topk_ids", "indices") if x in d), None)
    lp_key = next((x for x in ("logprobs", "topk_logprobs", "values") if x in d), None)
    if ids_key is None or lp_key is None:
        raise SpecTheoryValueError(f"{field}: expected keys 'ids' and 'logprobs', found {sorted(map(str, d))}")
    ids, lps = d[ids_key], d[lp_key]
    ids = _torch_to_numpy(ids) if hasattr(ids, "detach") else np.asarray(ids)
    lps = _torch_to_numpy(lps) if hasattr(lps, "detach") else np.asarray(lps)
    if ids.shape != lps.shape or ids.ndim not in (1, 2):
        raise SpecTheoryValueError(f"{field}: '{ids_key}' {ids.shape} and '{lp_key}' {lps.shape} must share a shape (T, k)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise SpecTheoryValueError(f"{field}: '{ids_key}' must hold integers, got {ids.dtype}")
    ids = np.atleast_2d(ids).astype(np.int64)
    lps = np.where(ids >= 0, np.atleast_2d(lps).astype(np.float64), -np.inf)
    V = d.get("vocab_size") if hasattr(d, "get") else None
    V = int(np.asarray(V)) if V is not None else None
    return TopKLogprobs(ids, lps, vocab_size=V)


# ----------------------------------------------------------------------------- entry point


def _detect(obj) -> str:
    if isinstance(obj, TopKLogprobs):
        return "topk"
    if isinstance(obj, np.ndarray) or hasattr(obj, "detach"):
        return "array"
    if isinstance(obj, Mapping):
        if "choices" in obj:
            return "openai"
        if "meta_info" in obj or "output_top_logprobs" in obj or "input_top_logprobs" in obj:
            return "sglang"
        if "outputs" in obj or "prompt_logprobs" in obj:
            return "vllm"
        if "scores" in obj:
            return "hf"
        if any(x in obj for x in ("ids", "token_ids", "topk_ids")):
            return "topk"
    if hasattr(obj, "scores") and not isinstance(obj, (list, tuple)):
        return "hf"
    if hasattr(obj, "outputs") or hasattr(obj, "prompt_logprobs"):
        return "vllm"
    if _is_vllm_rows(obj):
        return "vllm"
    if _is_sglang_rows(obj):
        return "sglang"
    raise SpecTheoryValueError(
        "source: none of the known shapes (vLLM logprobs list or RequestOutput, SGLang meta_info, OpenAI "
        "choices[0].logprobs, Hugging Face generate output with scores, ids/logprobs arrays, (T, V) logits)")


def _load_file(path: Path):
    ext = path.suffix.lower()
    if not path.exists():
        raise SpecTheoryValueError(f"source: file not found: {path}")
    if ext in (".json", ".jsonl"):
        try:
            text = path.read_text(encoding="utf-8")
            if ext == ".jsonl":
                lines = [json.loads(x) for x in text.splitlines() if x.strip()]
                return lines[0] if len(lines) == 1 else lines
            return json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecTheoryValueError(f"source: {path.name} is not valid JSON ({exc})") from None
    if ext == ".pt":
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - refused pickles and corrupt files alike
            raise SpecTheoryValueError(
                f"source: {path.name} cannot be read with torch.load(weights_only=True) "
                f"({' '.join(str(exc).split())[:200]}); only tensors and dicts of tensors are accepted") from None
    if ext == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise SpecTheoryValueError(f"source: {path.name}: {exc}") from None
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    raise SpecTheoryValueError(f"source: unknown file type {ext!r} (expected .json, .jsonl, .pt, .npy, .npz)")


def read_topk(source, *, format: str = "auto", which: str = "output", tokenizer=None, k=None,
              row: int = 0) -> TopKLogprobs:
    """Read one model's per-position top-k log-probabilities from a serving stack's output.

    Parameters
    ----------
    source : path or object
        A ``.json``/``.jsonl``/``.pt``/``.npy``/``.npz`` file, or the object itself: a vLLM
        ``RequestOutput`` or its ``logprobs`` list, an SGLang response dict, an OpenAI-style
        response dict, a Hugging Face ``generate`` output, an array or tensor of (T, V) logits.
    format : {"auto", "vllm", "sglang", "openai", "hf", "array", "topk"}
        Force a format instead of detecting it.
    which : {"output", "prompt"}
        vLLM / SGLang: the generated tokens' log-probs or the prompt's.
    tokenizer : mapping or tokenizer, optional
        For token strings (OpenAI-style): a mapping string → id or an object with ``decode`` and
        ``__len__``.
    k : int, optional
        For full-vocabulary sources: keep the top k per position (default all V).
    row : int
        For Hugging Face batches: which sequence.

    Returns
    -------
    TopKLogprobs
        ``ids`` and ``logprobs`` of shape (T, k), padded with id −1 / −inf.

    Raises
    ------
    ValueError
        A file or object in none of the known shapes, a missing field, non-integer ids, NaN
        log-probs, token strings that are unknown or ambiguous; the message names the field.

    Examples
    --------
    >>> import numpy as np, spectheory as st
    >>> sg = {"meta_info": {"output_top_logprobs": [[[-0.2, 11, "a"], [-1.8, 4, "b"]]]}}
    >>> st.read_topk(sg).ids.tolist()
    [[11, 4]]
    >>> st.read_topk(np.log([[0.7, 0.2, 0.1]]), k=2).ids.tolist()
    [[0, 1]]
    """
    if format not in FORMATS:
        raise SpecTheoryValueError(f"format: unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if which not in ("output", "prompt"):
        raise SpecTheoryValueError(f"which: 'output' or 'prompt', got {which!r}")
    if isinstance(source, (str, os.PathLike)):
        source = _load_file(Path(source))
    fmt = _detect(source) if format == "auto" else format
    if fmt == "topk":
        if isinstance(source, TopKLogprobs):
            return source
        if not isinstance(source, Mapping):
            raise SpecTheoryValueError("source: format 'topk' needs a dict with 'ids' and 'logprobs'")
        return _from_topk_arrays(source, "source")
    if fmt == "array":
        if isinstance(source, Mapping):
            raise SpecTheoryValueError("source: format 'array' needs an array or tensor of logits (T, V)")
        return _from_full(source, k, "logits")
    if fmt == "hf":
        return _from_hf(source, k, row)
    if fmt == "vllm":
        return _from_vllm(source, which)
    if fmt == "sglang":
        return _from_sglang(source, which)
    return _from_openai(source, tokenizer)
