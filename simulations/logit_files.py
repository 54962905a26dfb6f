"""Plain logit files for ``spectheory replay``: (T, V) arrays from ``.npy`` or ``.safetensors``.

Besides a recording folder (:mod:`.record`), replay accepts

* one ``.safetensors`` file holding the tensors ``target`` and ``draft`` (shape (T, V) each; a
  ``tokens`` tensor, if present, is ignored), or
* two files, the target's and the draft's logits, each a ``.npy`` array or a ``.safetensors`` file
  holding exactly one tensor (or one named ``logits``).

``.npy`` files are read with ``allow_pickle=False``: an object array is refused, never unpickled.
bfloat16 tensors are widened to float32. Shapes and dtypes are checked here (one error line naming
the file); values are checked by :func:`.replay.replay`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spectheory._validation import SpecTheoryValueError

SUFFIXES = (".npy", ".safetensors")


def _read_safetensors(path: Path, what: str) -> dict:
    from .record import _safetensors_shapes

    try:
        shapes = _safetensors_shapes(path, path.name)  # header checked before any tensor is read
    except SpecTheoryValueError as exc:
        raise SpecTheoryValueError(f"{what}: {path}: {str(exc).split(': ', 1)[-1]}") from None
    if any(dt == "BF16" for _, dt in shapes.values()):
        from safetensors.torch import load_file

        return {k: (v.float().numpy() if v.is_floating_point() else v.numpy()) for k, v in load_file(str(path)).items()}
    from safetensors.numpy import load_file

    return load_file(str(path))


def _read_one(path, what: str) -> np.ndarray:
    p = Path(path)
    if p.is_dir():
        raise SpecTheoryValueError(f"{what}: {path} is a folder; expected a .npy or .safetensors file")
    if not p.is_file():
        raise SpecTheoryValueError(f"{what}: file not found: {path}")
    if p.suffix == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except ValueError as exc:  # object arrays need pickle: refused
            raise SpecTheoryValueError(f"{what}: {path}: not a plain numeric .npy array ({exc})") from None
        except OSError as exc:
            raise SpecTheoryValueError(f"{what}: {path}: cannot read ({exc})") from None
    elif p.suffix == ".safetensors":
        tensors = _read_safetensors(p, what)
        if "logits" in tensors:
            a = tensors["logits"]
        elif len(tensors) == 1:
            (a,) = tensors.values()
        else:
            raise SpecTheoryValueError(
                f"{what}: {path} holds {len(tensors)} tensors ({', '.join(sorted(tensors))}); expected one, or one "
                "named 'logits'"
            )
    else:
        raise SpecTheoryValueError(f"{what}: {path}: expected a .npy or .safetensors file")
    return _check_array(a, f"{what}: {path}")


def _check_array(a, where: str) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise SpecTheoryValueError(f"{where}: logits must be floating point, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise SpecTheoryValueError(f"{where}: logits must have shape (T, V), got {a.shape}")
    return a


def load_logit_pair(path=None, *, target=None, draft=None):
    """``(target_logits, draft_logits)`` as numpy arrays of shape (T, V) from plain files.

    Parameters
    ----------
    path : str or Path, optional
        One ``.safetensors`` file with tensors ``target`` and ``draft``.
    target, draft : str or Path, optional
        Two files (``.npy`` or single-tensor ``.safetensors``); give both, or ``path`` alone.

    Returns
    -------
    tuple of numpy.ndarray
        The target's and the draft's logits, same shape (T, V).
    """
    if path is not None:
        if target is not None or draft is not None:
            raise SpecTheoryValueError("logits: give one file with 'target' and 'draft', or two files, not both")
        p = Path(path)
        if p.suffix != ".safetensors":
            raise SpecTheoryValueError(
                f"logits: {path}: one file must be a .safetensors with tensors 'target' and 'draft' "
                "(for .npy give --target-logits and --draft-logits)"
            )
        if not p.is_file():
            raise SpecTheoryValueError(f"logits: file not found: {path}")
        tensors = _read_safetensors(p, "logits")
        missing = [k for k in ("target", "draft") if k not in tensors]
        if missing:
            raise SpecTheoryValueError(f"logits: {path} has no tensor {missing[0]!r} (has {', '.join(sorted(tensors))})")
        t = _check_array(tensors["target"], f"logits: {path} 'target'")
        d = _check_array(tensors["draft"], f"logits: {path} 'draft'")
    else:
        if target is None or draft is None:
            raise SpecTheoryValueError("--target-logits and --draft-logits: give both")
        t = _read_one(target, "--target-logits")
        d = _read_one(draft, "--draft-logits")
    if t.shape != d.shape:
        raise SpecTheoryValueError(f"logits: target has shape {t.shape}, draft {d.shape}; they must match (T, V)")
    return t, d
