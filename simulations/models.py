"""Loading causal language models safely: a hub name, a local folder, or a ``.gguf`` file.

:func:`load_model` is the one loader behind ``spectheory record`` and ``spectheory report``. What it
accepts:

* a **local folder** in the Hugging Face layout (``config.json`` and ``*.safetensors`` weights, a
  tokenizer there or given with ``tokenizer=``);
* a **GGUF file** (``*.gguf``, as llama.cpp writes them); transformers dequantizes its tensors to
  float (needs the ``gguf`` package: ``pip install 'spectheory[models]'``);
* a **hub name** (``owner/name``), loaded through transformers' cache.

Safety rules, checked before transformers sees anything:

* **No model-supplied code, ever.** A folder whose ``config.json`` or tokenizer configuration has an
  ``auto_map`` (custom modelling code), or that holds ``*.py`` files, is refused with one line; every
  transformers call passes ``trust_remote_code=False`` explicitly, so transformers never asks on the
  terminal whether to run such code (it asks when the argument is left unset). The opt-in
  ``ignore_auto_map=True`` (``--ignore-auto-map`` on the command line) loads such a folder anyway
  with *transformers' own* implementation of its ``model_type``, still with
  ``trust_remote_code=False``: the folder's code is never imported, and a folder whose architecture
  transformers does not implement still fails (with one line).
* **No pickle.** Weights are read from safetensors or GGUF only (``use_safetensors=True``); a folder
  whose weights are pickle files (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``) is refused
  with one line: loading pickle can run arbitrary code.
* A path that looks local (absolute, ``./``, ``~``, several ``/``, a ``.gguf`` name) and does not
  exist is an error at once, and a local source is loaded with ``local_files_only=True``, so that no
  network is tried (a mistyped path would otherwise be taken for a hub name and retried for about a
  minute).
* A GGUF file is checked for its magic number and parsed (header, metadata, tensor table, data
  extent) before loading, so a truncated or foreign file is one clear line.

Every refusal is a :class:`~spectheory.SpecTheoryValueError` whose message starts with the option's
name (``--target``, ``--draft``, ``--tokenizer``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path

from spectheory._validation import SpecTheoryValueError

__all__ = ["load_model", "load_tokenizer", "check_gguf", "resolve_source", "DTYPES"]

DTYPES = ("float32", "bfloat16", "float16", "float64")
#: files that hold pickle (refused)
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "training_args.bin")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")
GGUF_MAGIC = b"GGUF"
INSTALL_HINT = "pip install 'spectheory[models]'"


def _looks_local(src: str) -> bool:
    """Whether ``src`` can only mean a local path (hub names are ``name`` or ``owner/name``)."""
    if os.path.isabs(src) or src.startswith((".", "~")) or "\\" in src:
        return True
    if src.count("/") > 1 or src.lower().endswith(".gguf"):
        return True
    return Path(src).exists()


def resolve_source(source, what: str = "--target") -> tuple[str, Path | None]:
    """Classify a model source: ``("gguf", file)``, ``("folder", folder)`` or ``("hub", None)``.

    A local-looking path that does not exist raises at once.
    """
    src = os.path.expanduser(str(source))
    if not src.strip():
        raise SpecTheoryValueError(f"{what}: empty model name")
    if not _looks_local(src):
        return "hub", None
    path = Path(src)
    if not path.exists():
        raise SpecTheoryValueError(f"{what}: no such file or folder: {source}")
    if path.is_dir():
        return "folder", path
    if path.suffix.lower() == ".gguf" or _has_gguf_magic(path):
        return "gguf", path
    raise SpecTheoryValueError(f"{what}: {source} is a file but not a GGUF model; expected a model folder, a .gguf file or a hub name")


def _has_gguf_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def check_gguf(path, what: str = "--target") -> dict:
    """Check that ``path`` is a complete GGUF file: magic number, then a full parse of the header,
    metadata and tensor table with the ``gguf`` package, and that every tensor's data lies inside
    the file. Returns ``{"architecture": ..., "tensors": ..., "bytes": ...}``."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise SpecTheoryValueError(f"{what}: {path} is not a GGUF file (its first bytes are {magic!r}, not b'GGUF')")
    try:
        import gguf
    except ImportError:
        raise SpecTheoryValueError(f"{what}: reading GGUF needs the gguf package; {INSTALL_HINT}") from None
    try:
        reader = gguf.GGUFReader(str(path))
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
        arch_field = reader.fields.get("general.architecture")
        arch = None
        if arch_field is not None:
            arch = bytes(arch_field.parts[arch_field.data[0]]).decode("utf-8", "replace")
    except Exception as exc:  # the reader raises many types on damaged files
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise SpecTheoryValueError(f"{what}: {path} is a truncated or damaged GGUF file ({first})") from None
    if end > size:
        raise SpecTheoryValueError(f"{what}: {path} is a truncated GGUF file ({size} bytes, its tensors need {end})")
    if not reader.tensors:
        raise SpecTheoryValueError(f"{what}: {path} is a GGUF file without tensors (no weights)")
    return {"architecture": arch, "tensors": len(reader.tensors), "bytes": size}


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecTheoryValueError(f"{what}: {path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SpecTheoryValueError(f"{what}: {path} must hold a JSON object")
    return data


def _refuse_custom_code(folder: Path, what: str, ignore_auto_map: bool = False) -> None:
    """Refuse a folder whose configuration asks for model-supplied code (``auto_map``), unless
    ``ignore_auto_map`` (then only the JSON files' readability is checked)."""
    for name in ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        f = folder / name
        if f.is_file() and "auto_map" in _read_json(f, what) and not ignore_auto_map:
            raise SpecTheoryValueError(
                f"{what}: {folder} asks to run its own code ('auto_map' in {name}); spectheory never runs "
                "model-supplied code (--ignore-auto-map loads it with transformers' own implementation instead)"
            )
    if any(folder.glob("*.py")) and not ignore_auto_map:
        py = sorted(p.name for p in folder.glob("*.py"))[0]
        raise SpecTheoryValueError(
            f"{what}: {folder} contains Python code ({py}); spectheory never runs model-supplied code "
            "(--ignore-auto-map loads it with transformers' own implementation instead)"
        )


def _check_weights(folder: Path, what: str) -> Path | None:
    """The folder's weights must be safetensors; returns a lone ``.gguf`` file when that is what the
    folder holds instead."""
    names = {p.name for p in folder.iterdir()}
    if any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names):
        return None
    pickles = sorted(n for n in names if n in PICKLE_WEIGHTS or n.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise SpecTheoryValueError(
            f"{what}: {folder} holds pickle weights ({pickles[0]}), which can run code when loaded; "
            "spectheory loads safetensors and GGUF only (convert the weights to model.safetensors)"
        )
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) == 1:
        return ggufs[0]
    if len(ggufs) > 1:
        raise SpecTheoryValueError(f"{what}: {folder} holds {len(ggufs)} .gguf files; give the one to load")
    raise SpecTheoryValueError(f"{what}: {folder} has no weights (no *.safetensors or .gguf file)")


def _transformers(what: str):
    try:
        import transformers  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise SpecTheoryValueError(f"{what}: loading models needs transformers; pip install 'spectheory[replay]'") from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # callers show their own progress
    return transformers


@contextlib.contextmanager
def _quiet_gguf():
    """transformers' GGUF reader shows its own tqdm bar, which ``disable_progress_bar`` does not
    reach; silence it while loading (callers show their own progress)."""
    try:
        import transformers.modeling_gguf_pytorch_utils as mod
    except ImportError:  # pragma: no cover - older transformers
        yield
        return
    orig = getattr(mod, "tqdm", None)
    if orig is not None:
        mod.tqdm = functools.partial(orig, disable=True)
    try:
        yield
    finally:
        if orig is not None:
            mod.tqdm = orig


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def load_tokenizer(source, what: str = "--tokenizer", *, ignore_auto_map: bool = False):
    """The tokenizer of a folder, a ``.gguf`` file or a hub name, with the same safety rules as
    :func:`load_model` (no custom code)."""
    transformers = _transformers(what)
    kind, path = resolve_source(source, what)
    kwargs = {"trust_remote_code": False}
    try:
        if kind == "gguf":
            check_gguf(path, what)
            return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name,
                                                             local_files_only=True, **kwargs)
        if kind == "folder":
            _refuse_custom_code(path, what, ignore_auto_map)
            if not any((path / n).is_file() for n in TOKENIZER_FILES):
                lone = list(path.glob("*.gguf"))
                if len(lone) == 1:
                    return load_tokenizer(lone[0], what)
                raise SpecTheoryValueError(
                    f"{what}: {path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...); "
                    "give the tokenizer's folder with --tokenizer"
                )
            return transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)
        return transformers.AutoTokenizer.from_pretrained(str(source), **kwargs)
    except SpecTheoryValueError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as exc:
        raise SpecTheoryValueError(f"{what}: cannot load a tokenizer from {str(source)!r}: {_one_line(exc)}") from None


def load_model(source, what: str = "--target", dtype: str = "float32", device="cpu", *, tokenizer=None,
               ignore_auto_map: bool = False):
    """``(model, tokenizer)``: a causal LM in eval mode on ``device`` and its tokenizer.

    Parameters
    ----------
    source : str or Path
        A model folder (``config.json`` + safetensors), a ``.gguf`` file, a folder holding one
        ``.gguf`` file, or a hub name.
    what : str
        The option name errors start with (``"--target"``, ``"--draft"``).
    dtype : {"float32", "bfloat16", "float16", "float64"}
        Weight dtype (GGUF tensors are dequantized to it).
    device : str or torch.device
    tokenizer : str or Path, optional
        Where the tokenizer is when the model's folder does not hold it (a folder, ``.gguf`` file or
        hub name); default: the model's own source.
    ignore_auto_map : bool
        Opt-in: load a folder whose configuration names its own code (``auto_map``) with
        transformers' built-in implementation of its ``model_type`` instead of refusing it. The
        folder's code is never run either way (``trust_remote_code=False``).

    Returns
    -------
    (transformers.PreTrainedModel, tokenizer)

    Raises
    ------
    SpecTheoryValueError
        One line naming ``what``: a missing local path, a folder without weights, pickle weights,
        model-supplied code (``auto_map``), a truncated or non-GGUF file, or a load failure.
    """
    transformers = _transformers(what)
    import torch

    if dtype not in DTYPES:
        raise SpecTheoryValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    tdtype = getattr(torch, dtype)
    kind, path = resolve_source(source, what)
    kwargs = {"trust_remote_code": False, "dtype": tdtype}
    if kind == "folder":
        if not (path / "config.json").is_file():
            lone = list(path.glob("*.gguf"))
            if len(lone) != 1:
                _check_weights(path, what)  # a clearer message when there are no weights at all
                raise SpecTheoryValueError(f"{what}: {path} has no config.json (not a Hugging Face model folder)")
        _refuse_custom_code(path, what, ignore_auto_map)
        gguf = _check_weights(path, what)
        if gguf is not None:
            kind, path = "gguf", gguf
    tok_source = tokenizer if tokenizer is not None else (path if kind != "hub" else source)
    tok = load_tokenizer(tok_source, "--tokenizer" if tokenizer is not None else what, ignore_auto_map=ignore_auto_map)
    Auto = transformers.AutoModelForCausalLM
    try:
        if kind == "gguf":
            check_gguf(path, what)
            with _quiet_gguf():
                model = Auto.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True, **kwargs)
        elif kind == "folder":
            model = Auto.from_pretrained(str(path), local_files_only=True, use_safetensors=True, **kwargs)
        else:
            model = Auto.from_pretrained(str(source), use_safetensors=True, **kwargs)
    except SpecTheoryValueError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError, RuntimeError) as exc:
        where = {"gguf": "GGUF file", "folder": "folder", "hub": "model (not a local path; hub name?)"}[kind]
        hint = f"; {INSTALL_HINT}" if kind == "gguf" and "gguf" in str(exc).lower() and "install" in str(exc).lower() else ""
        raise SpecTheoryValueError(f"{what}: cannot load {where} {str(source)!r}: {_one_line(exc)}{hint}") from None
    model.to(device)
    model.eval()
    return model, tok
