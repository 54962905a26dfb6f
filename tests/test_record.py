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


def _loaded(pair):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(pair / "target")
    return (AutoModelForCausalLM.from_pretrained(pair / "target"), AutoModelForCausalLM.from_pretrained(pair / "draft"),
            tok)


@pytest.mark.parametrize("kw", [dict(max_new_tokens=7), dict(max_new_tokens=5, do_sample=False),
                                dict(max_new_tokens=6, temperature=0.8, top_k=20, top_p=0.9),
                                dict(teacher_force=True)])
def test_batched_equals_unbatched(pair, tmp_path, kw):
    """Several prompts of different lengths per forward pass (left padding, masks): the same tokens
    as one prompt at a time under the same seeds, the logits to float tolerance; and unbatched rows
    equal a direct forward of the recorded sequence."""
    models = _loaded(pair)
    texts = ["def foo(x):\n    return x", "import os", "print('hello world')", "x = 1", "class A:\n    pass"]
    one = record("t", "d", texts, tmp_path / "b1", device="cpu", models=models, seed=4, **kw)
    many = record("t", "d", texts, tmp_path / "b3", device="cpu", models=models, seed=4, batch_size=3, **kw)
    assert [s["positions"] for s in one.shards] == [s["positions"] for s in many.shards]
    for i in range(len(texts)):
        a, b = one.shard(i), many.shard(i)
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
        np.testing.assert_allclose(a["target"], b["target"], atol=2e-5, rtol=0)
        np.testing.assert_allclose(a["draft"], b["draft"], atol=2e-5, rtol=0)
    if not kw.get("teacher_force"):  # generated continuations differ between prompts (not all EOS)
        assert len({tuple(many.shard(i)["tokens"].tolist()) for i in range(len(texts))}) > 1
    # a batch size that does not divide the prompts, resumed with another batch size: same tokens
    part = record("t", "d", texts, tmp_path / "mix", device="cpu", models=models, seed=4, batch_size=2,
                  stop_after=3, **kw)
    assert len(part.shards) == 3
    full = record("t", "d", texts, tmp_path / "mix", device="cpu", models=models, seed=4, batch_size=4, **kw)
    for i in range(len(texts)):
        np.testing.assert_array_equal(full.shard(i)["tokens"], one.shard(i)["tokens"])


def test_sampled_tokens_follow_the_processed_law(pair):
    """The per-row sampler draws from the processed law (chi-square over many seeds at one position)."""
    from spectheory.logits import from_logits
    from spectheory.simulations import _batched

    tm, _, tok = _loaded(pair)
    ids = _batched.prompt_ids(tok, "def foo(", False)
    with torch.no_grad():
        logits = tm(torch.as_tensor([ids])).logits[0, -1].double().numpy()
    p = from_logits(logits, temperature=1.3, top_k=8)
    seeds = list(range(4000))
    toks = []
    for b in range(0, len(seeds), 500):
        conts = _batched.generate(tm, [ids] * 500, seeds[b:b + 500], max_new_tokens=1, do_sample=True,
                                  temperature=1.3, top_k=8, top_p=None, pad_id=0, eos_ids=[], device="cpu")
        toks += [c[0] for c in conts]
    counts = np.bincount(toks, minlength=len(p))
    assert set(np.flatnonzero(counts)) <= set(np.flatnonzero(p))
    from scipy.stats import chisquare

    sup = np.flatnonzero(p)
    assert chisquare(counts[sup], p[sup] / p[sup].sum() * len(toks)).pvalue > 1e-4


def test_jsonl_prompts_categories_and_chat(pair, tmp_path, capsys):
    from spectheory.cli import main
    from spectheory.simulations.record import read_prompt_file

    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "def foo(", "category": "code"}\n\n{"text": "import os"}\n'
                 '{"prompt": "class A:", "category": "code"}\n')
    prompts, cats = read_prompt_file(f)
    assert prompts == ["def foo(", "import os", "class A:"] and cats == ["code", None, "code"]
    out = tmp_path / "rec"
    assert main(["record", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts", str(f),
                 "--out", str(out), "--max-new-tokens", "3", "--device", "cpu", "--batch-size", "2"]) == 0
    capsys.readouterr()
    assert load_recording(out).manifest["categories"] == cats
    for text, match in (('{"prompt": "a"}\n{"prompt": 3}\n', "line 2"), ('{"prompt": "a"}\nnot json\n', "line 2"),
                        ('["a"]\n', "line 1"), ('{"prompt": "a", "category": 1}\n', "line 1"), ("\n\n", "empty")):
        f.write_text(text)
        code = main(["record", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts",
                     str(f), "--out", str(tmp_path / "bad"), "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and match in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()
    (tmp_path / "ok.txt").write_text("def foo(\n")
    for extra, match in ((["--batch-size", "0"], "--batch-size"), (["--chat"], "chat template")):
        code = main(["record", "--target", str(pair / "target"), "--draft", str(pair / "draft"), "--prompts",
                     str(tmp_path / "ok.txt"), "--out", str(tmp_path / "bad2"), "--device", "cpu", *extra])
        err = capsys.readouterr().err
        assert code == 2 and match in err and err.count("\n") == 1, err
    # with a chat template: the prompt is wrapped, the template's tokens precede the generation
    tm, dm, tok = _loaded(pair)
    tok.chat_template = "{% for m in messages %}<eos>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}:{% endif %}"
    rec = record("t", "d", ["def foo("], tmp_path / "chat", device="cpu", models=(tm, dm, tok), chat=True,
                 max_new_tokens=2, batch_size=2)
    from spectheory.simulations import _batched

    assert _batched.prompt_ids(tok, "def foo(", True) == tok("<eos>def foo(:", add_special_tokens=False)["input_ids"]
    assert rec.manifest["settings"]["generation"]["chat"] is True
