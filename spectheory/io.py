"""Reading input arrays and writing results.

:func:`load_array` reads the probability or logit arrays the command line takes (``.npy``, ``.npz``,
``.txt``/``.csv``, ``.safetensors``); :func:`write_json_atomic` writes a result file so that a reader
never sees half of it; :func:`example_path` locates the example arrays shipped with the package.

Every error a user can cause (missing or unreadable file, unknown extension, missing key, non-numeric
data) is a :class:`~spectheory.SpecTheoryValueError` whose message starts with the argument's name,
e.g. ``"--target: file not found: x.npy"``.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from ._validation import SpecTheoryValueError

#: File extensions :func:`load_array` understands.
EXTENSIONS = (".npy", ".npz", ".txt", ".csv", ".safetensors")


def _split_key(path, key):
    """Resolve ``path:key`` syntax: a path that does not exist but whose part before the last ``:``
    does (and names a keyed format) is read as ``(path, key)``."""
    path = os.fspath(path)
    if key is None and not os.path.exists(path) and ":" in path:
        head, _, tail = path.rpartition(":")
        if head and tail and Path(head).suffix.lower() in (".safetensors", ".npz"):
            return head, tail
    return path, key


def _pick_key(keys, key, name: str, path: str):
    keys = list(keys)
    if key is not None:
        if key not in keys:
            raise SpecTheoryValueError(
                f"{name}: no tensor {key!r} in {path}; available keys: {', '.join(map(repr, keys)) or 'none'}"
            )
        return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise SpecTheoryValueError(f"{name}: {path} holds no arrays")
    raise SpecTheoryValueError(
        f"{name}: {path} holds {len(keys)} arrays; choose one with {path}:KEY "
        f"(available keys: {', '.join(map(repr, keys))})"
    )


def _bf16_from_header(path: str, key: str) -> np.ndarray:
    """Decode one BF16 tensor of a safetensors file with numpy alone (bf16 is the top half of a float32)."""
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(header_len))
        info = header[key]
        if info["dtype"] != "BF16":
            raise TypeError(f"unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        fh.seek(8 + header_len + start)
        raw = np.frombuffer(fh.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def _load_safetensors(path: str, key, name: str) -> np.ndarray:
    try:
        from safetensors import safe_open
    except ImportError:  # pragma: no cover - safetensors is a test/replay dependency
        raise SpecTheoryValueError(
            f"{name}: reading .safetensors needs the 'safetensors' package (pip install safetensors)"
        ) from None
    try:
        with safe_open(path, framework="np") as fh:
            chosen = _pick_key(fh.keys(), key, name, path)
            try:
                return fh.get_tensor(chosen)
            except TypeError as exc:  # a dtype numpy lacks (bfloat16, float8)
                dtype_error = exc
    except SpecTheoryValueError:
        raise
    except Exception as exc:  # safetensors raises its own error type for corrupt files
        raise SpecTheoryValueError(f"{name}: cannot read {path} as .safetensors ({exc})") from None

    try:
        import torch  # noqa: F401
        from safetensors.torch import load_file as torch_load
    except ImportError:
        torch_load = None
    if torch_load is not None:
        try:
            return torch_load(path)[chosen].float().numpy()
        except Exception as exc:
            raise SpecTheoryValueError(f"{name}: cannot read tensor {chosen!r} of {path} ({exc})") from None
    try:
        return _bf16_from_header(path, chosen)
    except Exception:
        raise SpecTheoryValueError(
            f"{name}: tensor {chosen!r} of {path} has a dtype numpy cannot read ({dtype_error}); "
            "install torch to read it, or save it as float32"
        ) from None


def _load_text(path: str, name: str) -> np.ndarray:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise SpecTheoryValueError(f"{name}: {path} is not a text file") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise SpecTheoryValueError(f"{name}: {path} holds no numbers")
    delimiter = "," if any("," in ln for ln in lines) else None
    try:
        a = np.loadtxt(lines, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise SpecTheoryValueError(
            f"{name}: cannot read {path} as numbers, one row per position ({exc})"
        ) from None
    if a.shape[1] == 1 and a.shape[0] > 1:
        raise SpecTheoryValueError(
            f"{name}: {path} has one value per line; write one row per position, its V values "
            "separated by spaces or commas"
        )
    return a[0] if a.shape[0] == 1 else a


def load_array(path, name: str = "array", key: str | None = None) -> np.ndarray:
    """Read a numeric array from ``.npy``, ``.npz``, ``.txt``/``.csv`` or ``.safetensors``.

    Parameters
    ----------
    path : str or os.PathLike
        The file. For files holding several arrays (``.safetensors``, ``.npz``) the array may be
        chosen as ``"file.safetensors:KEY"``.
    name : str
        The argument's name for error messages (``"--target"``, ``"--draft"``, ...).
    key : str, optional
        The array to read from a file holding several; not needed when the file holds one.

    Returns
    -------
    numpy.ndarray
        A floating-point array (float16/32/64 kept; bfloat16 and integers converted). Text files
        are read as one row per position: one row gives shape (V,), several give (B, V).

    Raises
    ------
    SpecTheoryValueError
        Missing, unreadable or corrupt file, unknown extension, missing key, non-numeric data.
    """
    path, key = _split_key(path, key)
    suffix = Path(path).suffix.lower()
    if not os.path.exists(path):
        raise SpecTheoryValueError(f"{name}: file not found: {path}")
    if os.path.isdir(path):
        raise SpecTheoryValueError(f"{name}: is a directory, not a file: {path}")
    if suffix not in EXTENSIONS:
        raise SpecTheoryValueError(
            f"{name}: unsupported file type {suffix or '(no extension)'!r} for {path}; "
            f"use one of {', '.join(EXTENSIONS)}"
        )
    if key is not None and suffix not in (".safetensors", ".npz"):
        raise SpecTheoryValueError(f"{name}: a key ({key!r}) only applies to .safetensors and .npz files")
    try:
        if suffix == ".npy":
            try:
                a = np.load(path, allow_pickle=False)
            except Exception as exc:
                raise SpecTheoryValueError(f"{name}: cannot read {path} as .npy ({exc})") from None
        elif suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    a = z[_pick_key(z.files, key, name, path)]
            except SpecTheoryValueError:
                raise
            except Exception as exc:
                raise SpecTheoryValueError(f"{name}: cannot read {path} as .npz ({exc})") from None
        elif suffix == ".safetensors":
            a = _load_safetensors(path, key, name)
        else:
            a = _load_text(path, name)
    except OSError as exc:
        raise SpecTheoryValueError(f"{name}: cannot read {path} ({exc.strerror or exc})") from None

    a = np.asarray(a)
    if a.dtype.kind in "iu":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise SpecTheoryValueError(f"{name}: expected a numeric array in {path}, got dtype {a.dtype}")
    return a


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux
    ``/proc/self/status``), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


#: Name pattern of the temporary files :func:`atomic_path` creates: ``.STEM.RANDOM.tmpSUFFIX``.
TEMPORARY_PATTERN = r"^\..+\.tmp(\.[A-Za-z0-9]+)?$"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it is moved onto ``path`` with
    :func:`os.replace` (atomic), on failure it is removed. A reader sees the old file or the new one,
    never a partial one. For writers that take a file name (``savefig``, ``np.save``, CSV).

    The file gets the permissions of a file created with :func:`open` (``0o666`` less the umask),
    not the ``0o600`` of :func:`tempfile.mkstemp`. Its temporary name is ``.STEM.RANDOM.tmpSUFFIX``
    (:data:`TEMPORARY_PATTERN`), which :func:`remove_stale_temporaries` recognises after a kill."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    except (AttributeError, OSError):  # pragma: no cover - no fchmod (Windows)
        pass
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_path`'s temporary names."""
    import re

    return re.match(TEMPORARY_PATTERN, name) is not None


def remove_stale_temporaries(folder) -> list[str]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` when its process was killed
    (``.shard-00003.x1y2.tmp.safetensors``, ``.manifest.ab12.tmp.json``). Call it only while holding
    :func:`folder_lock` on ``folder``, so that no live writer's temporary file is removed.
    Returns the names removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in sorted(os.listdir(folder)):
        if is_temporary(entry) and (folder / entry).is_file():
            try:
                os.unlink(folder / entry)
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder):
    """Hold an exclusive advisory lock on ``folder`` (file ``folder/.lock``, :func:`fcntl.flock`)
    for the duration of the block: a second process using the same folder waits. The lock goes with
    its process, so a SIGKILL never leaves the folder locked. Where ``fcntl`` is missing (Windows)
    the block runs unlocked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_output_file(path, name: str) -> Path:
    """Check, before any work, that ``path`` can be written as a file: not a directory, in a folder
    that exists. Raises :class:`~spectheory.SpecTheoryValueError` naming the option ``name``."""
    p = Path(os.fspath(path))
    if str(p) in ("", "."):
        raise SpecTheoryValueError(f"{name}: no file name given")
    if p.is_dir():
        raise SpecTheoryValueError(f"{name}: is a directory, not a file: {p}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise SpecTheoryValueError(f"{name}: folder does not exist: {parent}")
    if not parent.is_dir():
        raise SpecTheoryValueError(f"{name}: not a folder: {parent}")
    if not os.access(parent, os.W_OK):
        raise SpecTheoryValueError(f"{name}: folder is not writable: {parent}")
    return p


def write_json_atomic(path, obj, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (see :func:`atomic_path`). NumPy scalars and
    arrays are converted to Python numbers and lists."""

    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=indent, default=default, allow_nan=True)
            fh.write("\n")


def write_csv_atomic(path, rows: list[dict]) -> None:
    """Write a list of flat dicts as CSV (header from the first row's keys) atomically."""
    import csv

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            if rows:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)


def example_path(name: str) -> Path:
    """Path of an example file shipped in ``spectheory/examples`` (``"target.npy"``, ``"draft.npy"``,
    ``"logits_target.safetensors"``, ``"logits_draft.safetensors"``)."""
    folder = resources.files("spectheory") / "examples"
    candidate = folder / name
    if not candidate.is_file():
        available = sorted(
            p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith((".py", ".pyc"))
        ) if folder.is_dir() else []
        raise SpecTheoryValueError(
            f"name: no example {name!r}; available: {', '.join(available) or 'none'}"
        )
    return Path(str(candidate))
