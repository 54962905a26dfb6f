"""spectheory.io: loading arrays in every supported format, atomic JSON, shipped examples."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

import spectheory as st
from spectheory.io import example_path, load_array, write_json_atomic

import safetensors.numpy as safetensors_numpy  # noqa: E402


@pytest.fixture
def probs():
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.ones(7), size=3)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_npy_round_trip_keeps_float_dtype(tmp_path, probs, dtype):
    a = probs.astype(dtype)
    np.save(tmp_path / "a.npy", a)
    b = load_array(tmp_path / "a.npy", "--target")
    assert b.dtype == dtype
    np.testing.assert_array_equal(a, b)


def test_npy_integers_become_float(tmp_path):
    np.save(tmp_path / "i.npy", np.array([1, 0, 3]))
    b = load_array(str(tmp_path / "i.npy"), "x")
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, [1.0, 0.0, 3.0])


@pytest.mark.parametrize(
    "suffix, text",
    [
        (".txt", "0.1 0.2 0.7\n0.3  0.3\t0.4\n"),
        (".csv", "0.1,0.2,0.7\n0.3, 0.3, 0.4\n"),
        (".txt", "# a comment\n0.1,0.2,0.7\n\n0.3,0.3,0.4\n"),
    ],
)
def test_text_round_trip_one_row_per_position(tmp_path, suffix, text):
    path = tmp_path / f"a{suffix}"
    path.write_text(text)
    b = load_array(path, "--draft")
    np.testing.assert_allclose(b, [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])


def test_text_single_row_is_one_position(tmp_path, probs):
    path = tmp_path / "one.txt"
    np.savetxt(path, probs[:1])
    b = load_array(path, "--target")
    assert b.shape == (7,)
    np.testing.assert_allclose(b, probs[0], rtol=1e-15)


def test_text_savetxt_round_trip(tmp_path, probs):
    np.savetxt(tmp_path / "b.csv", probs, delimiter=",", fmt="%.17g")
    np.testing.assert_array_equal(load_array(tmp_path / "b.csv", "x"), probs)


def test_safetensors_single_tensor(tmp_path, probs):
    safetensors_numpy.save_file({"whatever": probs.astype(np.float32)}, str(tmp_path / "a.safetensors"))
    b = load_array(tmp_path / "a.safetensors", "--target")
    assert b.dtype == np.float32
    np.testing.assert_array_equal(b, probs.astype(np.float32))


def test_safetensors_several_tensors_key_selection(tmp_path, probs):
    path = tmp_path / "two.safetensors"
    safetensors_numpy.save_file({"target": probs, "draft": probs[::-1].copy()}, str(path))
    np.testing.assert_array_equal(load_array(f"{path}:draft", "--draft"), probs[::-1])
    np.testing.assert_array_equal(load_array(path, "--target", key="target"), probs)
    with pytest.raises(st.SpecTheoryValueError, match=r"^--target: .*holds 2 arrays; choose one with .*:KEY \(available keys: '\w+', '\w+'\)$"):
        load_array(path, "--target")
    with pytest.raises(st.SpecTheoryValueError, match=r"^--draft: no tensor 'nope'.*available keys"):
        load_array(f"{path}:nope", "--draft")


def test_npz_key_selection(tmp_path, probs):
    path = tmp_path / "z.npz"
    np.savez(path, a=probs, b=2 * probs)
    np.testing.assert_array_equal(load_array(f"{path}:b", "x"), 2 * probs)
    with pytest.raises(st.SpecTheoryValueError, match="available keys"):
        load_array(path, "x")
    np.savez(tmp_path / "one.npz", only=probs)
    np.testing.assert_array_equal(load_array(tmp_path / "one.npz", "x"), probs)


def _bf16_file(tmp_path, values):
    """A safetensors file with one BF16 tensor, written by hand (no torch needed)."""
    bits = (np.asarray(values, dtype=np.float32).view(np.uint32) >> 16).astype("<u2")
    header = json.dumps(
        {"logits": {"dtype": "BF16", "shape": list(bits.shape), "data_offsets": [0, bits.nbytes]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    return path


BF16_EXACT = [[1.0, -2.5, 0.15625, -np.inf], [3.0, 0.0, -0.75, 8.0]]  # exactly representable in bf16


def test_safetensors_bf16(tmp_path):
    path = _bf16_file(tmp_path, BF16_EXACT)
    b = load_array(path, "--target")
    assert b.dtype.kind == "f"
    np.testing.assert_array_equal(b, np.array(BF16_EXACT, dtype=np.float32))


def test_safetensors_bf16_without_torch(tmp_path, monkeypatch):
    # None in sys.modules makes `import torch` raise ImportError: the numpy-only decoder takes over.
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    path = _bf16_file(tmp_path, BF16_EXACT)
    b = load_array(path, "--target")
    np.testing.assert_array_equal(b, np.array(BF16_EXACT, dtype=np.float32))


# ----------------------------------------------------------------------------- errors


def test_missing_file_names_argument(tmp_path):
    with pytest.raises(st.SpecTheoryValueError, match=r"^--target: file not found: .*x\.npy$"):
        load_array(tmp_path / "x.npy", "--target")


def test_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        load_array(tmp_path / "x.npy", "--target")


def test_bad_extension(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[0.5, 0.5]")
    with pytest.raises(st.SpecTheoryValueError, match=r"^--draft: unsupported file type '\.json'.*\.npy"):
        load_array(path, "--draft")
    path = tmp_path / "noext"
    path.write_text("0.5 0.5")
    with pytest.raises(st.SpecTheoryValueError, match="no extension"):
        load_array(path, "--draft")


def test_directory(tmp_path):
    d = tmp_path / "d.npy"
    d.mkdir()
    with pytest.raises(st.SpecTheoryValueError, match="^--target: is a directory"):
        load_array(d, "--target")


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".safetensors"])
def test_corrupt_binary_file(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"\x00\x01 this is not an array file \xff" * 3)
    with pytest.raises(st.SpecTheoryValueError, match=rf"^--target: cannot read .*bad\{suffix}"):
        load_array(path, "--target")


def test_truncated_npy(tmp_path, probs):
    path = tmp_path / "t.npy"
    np.save(path, probs)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(st.SpecTheoryValueError, match="^x: cannot read"):
        load_array(path, "x")


def test_pickled_npy_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(st.SpecTheoryValueError, match="^x: cannot read"):
        load_array(path, "x")


@pytest.mark.parametrize(
    "text, match",
    [
        ("0.5 abc 0.5\n", "cannot read .* as numbers"),
        ("0.5 0.5\n0.2 0.3 0.5\n", "cannot read .* as numbers"),
        ("", "holds no numbers"),
        ("0.5\n0.5\n", "one value per line"),
    ],
)
def test_bad_text(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(st.SpecTheoryValueError, match=f"^--draft: .*{match}"):
        load_array(path, "--draft")


def test_binary_text_file(tmp_path):
    path = tmp_path / "bin.txt"
    path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(st.SpecTheoryValueError, match="^--draft: "):
        load_array(path, "--draft")


def test_key_on_keyless_format(tmp_path, probs):
    np.save(tmp_path / "a.npy", probs)
    with pytest.raises(st.SpecTheoryValueError, match="only applies"):
        load_array(tmp_path / "a.npy", "x", key="k")


def test_non_numeric_dtype(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(st.SpecTheoryValueError, match="numeric"):
        load_array(tmp_path / "s.npy", "x")


# ----------------------------------------------------------------------------- JSON


def test_write_json_atomic(tmp_path):
    path = tmp_path / "out.json"
    write_json_atomic(path, {"a": np.float32(0.5), "b": np.arange(3), "c": [1, 2]})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": [1, 2]}
    write_json_atomic(path, {"replaced": True})
    assert json.loads(path.read_text()) == {"replaced": True}
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_json_atomic_failure_keeps_old_file(tmp_path):
    path = tmp_path / "out.json"
    write_json_atomic(path, {"old": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"old": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_json_atomic_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_json_atomic("rel.json", [1, 2])
    assert json.loads((tmp_path / "rel.json").read_text()) == [1, 2]


# ----------------------------------------------------------------------------- shipped examples


def test_shipped_probability_pair():
    p = load_array(example_path("target.npy"), "--target")
    q = load_array(example_path("draft.npy"), "--draft")
    assert p.shape == q.shape == (1000,)
    for a in (p, q):
        assert np.all(a >= 0) and abs(a.sum() - 1) < 1e-12
    assert 0.3 < np.minimum(p, q).sum() < 0.95  # related but different


def test_shipped_logit_batch():
    for name in ("logits_target.safetensors", "logits_draft.safetensors"):
        a = load_array(f"{example_path(name)}:logits", "--target")
        assert a.shape == (16, 1000) and a.dtype == np.float32
        assert np.all(np.isfinite(a))
        probs = st.from_logits(a)
        np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_examples_are_small():
    folder = example_path("target.npy").parent
    assert sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) < 200_000


def test_examples_regenerate_identically(tmp_path):
    # Same seed, same arrays: equal up to the last bit of libm's exp/log, which differs between NumPy
    # builds (SIMD paths), so 4 ulp relative, and exactly equal float32 logits after rounding.
    script = example_path("target.npy").parent / "make_examples.py"
    spec = importlib.util.spec_from_file_location("_make_examples", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make(tmp_path)
    for name in ("target.npy", "draft.npy", "logits_target.safetensors", "logits_draft.safetensors"):
        np.testing.assert_allclose(load_array(tmp_path / name, "x"), load_array(example_path(name), "x"), rtol=1e-15, atol=0)


def test_example_path_unknown():
    with pytest.raises(st.SpecTheoryValueError, match="available: .*target.npy"):
        example_path("nope.npy")
