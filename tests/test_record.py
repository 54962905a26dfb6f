"""The logit recorder: round trip with tiny transformers models built here, resumption after an
interruption (including SIGKILL), and clear errors for corrupted, truncated or mismatched inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import torch  # noqa: E402
import transformers  # noqa: E402,F401

from spectheory.simulations.record import load_recording, read_prompts, record  # noqa: E402

PROMPTS = ["def foo(", "import os", "class A:", "for i in range(", "x = [1, 2"]


def _tokenizer(texts, vocab=300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<eos>")


def _model(tok, seed, hidden=16):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      eos_token_id=1, bos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    texts = ["def foo(x):\n    return x + 1\n"] * 20 + ["import os, sys\nprint('hello world')\n"] * 20
    tok = _tokenizer(texts)
    for name, seed in (("target", 0), ("draft", 1)):
        _model(tok, seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    other = _tokenizer(texts + ["completely different text with other merges"] * 30, vocab=320)
    _model(other, 2).save_pretrained(root / "other")
    other.save_pretrained(root / "other")
    return root


def test_round_trip_equals_direct_forward(pair, tmp_path):
    rec = record(pair / "target", pair / "draft", PROMPTS[:2], tmp_path / "rec", max_new_tokens=6, device="cpu")
    assert len(rec.shards) == 2 and rec.vocab_size == 300
    m = rec.manifest
    assert m["dtype"] == "float32" and m["prompts"] == PROMPTS[:2] and m["settings"]["generation"]["max_new_tokens"] == 6
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tm = AutoModelForCausalLM.from_pretrained(pair / "target")
    dm = AutoModelForCausalLM.from_pretrained(pair / "draft")
    tok = AutoTokenizer.from_pretrained(pair / "target")
    for i, s in enumerate(rec.shards):
        shard = rec.shard(i)
        ids = tok(PROMPTS[i], return_tensors="pt")["input_ids"]
        seq = torch.cat([ids, torch.as_tensor(shard["tokens"])[None]], dim=1)
        with torch.no_grad():
            lt = tm(seq).logits[0, ids.shape[1] - 1 : -1].numpy()
            ld = dm(seq).logits[0, ids.shape[1] - 1 : -1].numpy()
        np.testing.assert_allclose(shard["target"], lt, atol=1e-5)
        np.testing.assert_allclose(shard["draft"], ld, atol=1e-5)
    T, D, toks = rec.logits()
    assert T.shape == D.shape == (rec.positions, 300) and toks.shape == (rec.positions,)


def test_teacher_forcing_and_bfloat16(pair, tmp_path):
    rec = record(pair / "target", pair / "draft", ["def foo(x):\n    return x"], tmp_path / "tf",
                 teacher_force=True, dtype="bfloat16", device="cpu")
    shard = rec.shard(0)
    assert shard["target"].dtype == np.float32  # bf16 widened on load
    assert rec.positions == len(shard["tokens"]) >= 3


def test_interrupted_recording_resumes_with_nothing_lost(pair, tmp_path):
    full = record(pair / "target", pair / "draft", PROMPTS, tmp_path / "full", max_new_tokens=5, device="cpu")
    part = record(pair / "target", pair / "draft", PROMPTS, tmp_path / "part", max_new_tokens=5, device="cpu",
                  stop_after=2)
    assert len(part.shards) == 2
    first = {s["file"]: s["sha256"] for s in part.shards}
    resumed = record(pair / "target", pair / "draft", PROMPTS, tmp_path / "part", max_new_tokens=5, device="cpu")
    assert [s["sha256"] for s in resumed.shards] == [s["sha256"] for s in full.shards]
    assert all(first[s["file"]] == s["sha256"] for s in resumed.shards if s["file"] in first)


def test_sigkill_mid_recording_then_resume(pair, tmp_path):
    out = tmp_path / "killed"
    prompts = PROMPTS * 8
    code = (
        "import sys, time\n"
        "import spectheory.simulations.record as r\n"
        "orig = r.write_json_atomic\n"
        "def slow(*a, **k):\n"
        "    orig(*a, **k); time.sleep(0.3)\n"
        "r.write_json_atomic = slow\n"
        f"r.record({str(pair / 'target')!r}, {str(pair / 'draft')!r}, {prompts!r}, {str(out)!r}, max_new_tokens=4, device='cpu')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.is_file():
            try:
                if len(json.loads(manifest.read_text())["shards"]) >= 3:
                    break
            except json.JSONDecodeError:  # pragma: no cover - atomic writes make this impossible
                pytest.fail("manifest was read half-written")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = load_recording(out)  # valid as it stands
    assert 3 <= len(partial.shards) < len(prompts)
    resumed = record(pair / "target", pair / "draft", prompts, out, max_new_tokens=4, device="cpu")
    reference = record(pair / "target", pair / "draft", prompts, tmp_path / "ref", max_new_tokens=4, device="cpu")
    assert [s["sha256"] for s in resumed.shards] == [s["sha256"] for s in reference.shards]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp") or ".tmp." in f]


def test_corrupted_and_truncated_shards(pair, tmp_path):
    rec = record(pair / "target", pair / "draft", PROMPTS[:2], tmp_path / "rec", max_new_tokens=4, device="cpu")
    shard = tmp_path / "rec" / rec.shards[0]["file"]
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="shard-00000.safetensors is corrupted"):
        load_recording(tmp_path / "rec")
    shard.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="truncated"):
        load_recording(tmp_path / "rec", verify_hashes=False)
    shard.unlink()
    with pytest.raises(ValueError, match="missing"):
        load_recording(tmp_path / "rec")
    (tmp_path / "rec" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted"):
        load_recording(tmp_path / "rec")
    with pytest.raises(ValueError, match="no manifest.json"):
        load_recording(tmp_path)


def test_mismatched_shapes_are_reported(pair, tmp_path):
    rec = record(pair / "target", pair / "draft", PROMPTS[:1], tmp_path / "rec", max_new_tokens=4, device="cpu")
    m = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    m["vocab_size"] = 301
    (tmp_path / "rec" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="expected .*301"):
        load_recording(tmp_path / "rec")


def test_user_errors(pair, tmp_path):
    with pytest.raises(ValueError, match="tokenizer differs"):
        record(pair / "target", pair / "other", PROMPTS[:1], tmp_path / "x", device="cpu")
    with pytest.raises(ValueError, match="^--target: .* has no weights"):
        record(tmp_path, pair / "draft", PROMPTS[:1], tmp_path / "y", device="cpu")
    with pytest.raises(ValueError, match="temperature"):
        record(pair / "target", pair / "draft", PROMPTS[:1], tmp_path / "z", temperature=0.0, device="cpu")
    record(pair / "target", pair / "draft", PROMPTS[:1], tmp_path / "w", max_new_tokens=3, device="cpu")
    with pytest.raises(ValueError, match="different settings"):
        record(pair / "target", pair / "draft", PROMPTS[:1], tmp_path / "w", max_new_tokens=4, device="cpu")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="empty"):
        read_prompts(empty)
    with pytest.raises(ValueError, match="not found"):
        read_prompts(tmp_path / "none.txt")
