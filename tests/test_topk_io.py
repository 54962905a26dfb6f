"""Importers of serving stacks' top-k log-probabilities (spectheory.read_topk): round trips through
fixtures written in each API's documented shape, and one clear error per malformed input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import spectheory as st


def _truth(rng, T=4, V=50, k=5):
    logits = rng.normal(size=(T, V)) * 2
    lp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    ids = np.argsort(-lp, axis=1)[:, :k]
    return logits, lp, ids, np.take_along_axis(lp, ids, 1)


def _check(t, ids, lps):
    np.testing.assert_array_equal(t.ids[:, : ids.shape[1]], ids)
    np.testing.assert_allclose(t.logprobs[:, : ids.shape[1]], lps, rtol=1e-12)


def test_vllm_json_and_objects(tmp_path):
    _, _, ids, lps = _truth(np.random.default_rng(0))
    rows = [{str(i): float(v) for i, v in zip(r, l)} for r, l in zip(ids, lps)]
    path = tmp_path / "vllm.json"
    path.write_text(json.dumps({"prompt_logprobs": [None] + rows, "outputs": [{"logprobs": rows}]}))
    _check(st.read_topk(path), ids, lps)
    _check(st.read_topk(path, which="prompt"), ids, lps)  # leading None dropped

    class Logprob:  # vLLM's Logprob(logprob, rank, decoded_token)
        def __init__(self, v):
            self.logprob, self.rank, self.decoded_token = v, 1, "x"

    class Completion:
        def __init__(self, lp):
            self.logprobs = lp

    class RequestOutput:
        def __init__(self, lp):
            self.outputs, self.prompt_logprobs = [Completion(lp)], None

    objs = [{int(i): Logprob(float(v)) for i, v in zip(r, l)} for r, l in zip(ids, lps)]
    _check(st.read_topk(RequestOutput(objs)), ids, lps)
    _check(st.read_topk(objs), ids, lps)
    # vLLM adds the sampled token when it is outside the top k: ragged rows are padded
    objs[1][49] = Logprob(-9.0)
    t = st.read_topk(objs)
    assert t.ids.shape == (4, 6) and t.ids[0, 5] == -1 and t.ids[1, 5] == 49


def test_sglang(tmp_path):
    _, _, ids, lps = _truth(np.random.default_rng(1))
    tops = [[[float(v), int(i), f"t{i}"] for i, v in zip(r, l)] for r, l in zip(ids, lps)]
    path = tmp_path / "sglang.json"
    path.write_text(json.dumps({"text": "...", "meta_info": {"output_top_logprobs": tops,
                                                              "input_top_logprobs": [None] + tops}}))
    _check(st.read_topk(path), ids, lps)
    _check(st.read_topk(path, which="prompt"), ids, lps)
    _check(st.read_topk(tops, format="sglang"), ids, lps)


class _Pickled:
    """An arbitrary object: saving it needs pickle, which torch.load(weights_only=True) refuses."""


class _Tok:
    """A tokenizer-like object: decode([i]) and len()."""

    def __init__(self, pieces):
        self.pieces = pieces

    def __len__(self):
        return len(self.pieces)

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


def test_openai_chat_and_completions(tmp_path):
    _, _, ids, lps = _truth(np.random.default_rng(2))
    pieces = [f"w{i}" for i in range(50)]
    chat = {"choices": [{"logprobs": {"content": [
        {"token": pieces[r[0]], "logprob": float(l[0]), "bytes": [],
         "top_logprobs": [{"token": pieces[i], "logprob": float(v), "bytes": []} for i, v in zip(r, l)]}
        for r, l in zip(ids, lps)]}}]}
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(chat))
    _check(st.read_topk(path, tokenizer=_Tok(pieces)), ids, lps)
    _check(st.read_topk(chat, tokenizer={p: i for i, p in enumerate(pieces)}), ids, lps)
    legacy = {"choices": [{"logprobs": {"tokens": [], "token_logprobs": [],
                                        "top_logprobs": [{f"token_id:{i}": float(v) for i, v in zip(r, l)}
                                                         for r, l in zip(ids, lps)]}}]}
    _check(st.read_topk(legacy), ids, lps)  # token ids as strings need no tokenizer
    with pytest.raises(ValueError, match="tokenizer"):
        st.read_topk(chat)
    amb = list(pieces)
    amb[ids[0, 1]] = pieces[ids[0, 0]]  # two ids decode to the same string
    with pytest.raises(ValueError, match="ambiguous"):
        st.read_topk(chat, tokenizer=_Tok(amb))


def test_hf_generate_scores_pt_and_memmap(tmp_path):
    torch = pytest.importorskip("torch")
    logits, lp, ids, lps = _truth(np.random.default_rng(3))

    class GenerateOutput:
        def __init__(self, scores):
            self.scores = scores

    scores = tuple(torch.tensor(np.stack([logits[t], logits[t][::-1]])) for t in range(len(logits)))
    _check(st.read_topk(GenerateOutput(scores), k=5), ids, lps)
    full = st.read_topk(GenerateOutput(scores))
    assert full.ids.shape == (4, 50) and full.vocab_size == 50
    np.testing.assert_allclose(np.take_along_axis(full.logprobs, np.argsort(full.ids, 1), 1), lp, rtol=1e-12)
    # bf16 tensors are accepted
    assert st.read_topk(torch.tensor(logits).to(torch.bfloat16), k=5).ids.shape == (4, 5)
    # .pt: a tensor of logits, and a dict of top-k arrays, through torch.load(weights_only=True)
    torch.save(torch.tensor(logits), tmp_path / "l.pt")
    _check(st.read_topk(tmp_path / "l.pt", k=5), ids, lps)
    torch.save({"ids": torch.tensor(ids), "logprobs": torch.tensor(lps)}, tmp_path / "k.pt")
    _check(st.read_topk(tmp_path / "k.pt"), ids, lps)

    torch.save({"x": _Pickled()}, tmp_path / "pickle.pt")
    with pytest.raises(ValueError, match="weights_only"):
        st.read_topk(tmp_path / "pickle.pt")
    # .npy: memory-mapped, read in blocks
    big = np.concatenate([logits] * 100)
    np.save(tmp_path / "l.npy", big)
    t = st.read_topk(tmp_path / "l.npy", k=5)
    assert t.ids.shape == (400, 5)
    _check(type(t)(t.ids[300:304], t.logprobs[300:304]), ids, lps)


def test_imported_intervals_contain_the_exact_value():
    rng = np.random.default_rng(4)
    lt, lpt, _, _ = _truth(rng, T=6, V=40)
    ld, lpd, _, _ = _truth(rng, T=6, V=40)
    tgt, drf = st.read_topk(lt, k=8), st.read_topk(ld, k=8)
    r = st.optimal_acceptance_interval(tgt.ids, tgt.logprobs, drf.ids, drf.logprobs, 3, vocab_size=40)
    exact = st.optimal_acceptance(np.exp(lpt), np.exp(lpd), 3)
    assert np.all(r.lower <= exact + 1e-9) and np.all(exact <= r.upper + 1e-9)


@pytest.mark.parametrize("obj, field", [
    ({"foo": 1}, "source"),
    ([1, 2, 3], "source"),
    ({"choices": []}, "choices"),
    ({"choices": [{"logprobs": {"content": [{"token": "a", "logprob": -1.0}]}}]}, "top_logprobs"),
    ({"meta_info": {"text": 1}}, "output_top_logprobs"),
    ([{"5": "x"}], r"vllm\[0\]\[5\]"),
    ([{"5": float("nan")}], "NaN"),
    ([{"a5": -1.0}], "source"),
    ({"ids": np.array([[1.5]]), "logprobs": np.array([[-1.0]])}, "ids"),
])
def test_bad_sources_name_the_field(obj, field):
    with pytest.raises(ValueError, match=field):
        st.read_topk(obj)


def test_bad_files(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        st.read_topk(tmp_path / "x.json")
    with pytest.raises(ValueError, match="file not found"):
        st.read_topk(tmp_path / "missing.json")
    (tmp_path / "x.bin").write_text("")
    with pytest.raises(ValueError, match="unknown file type"):
        st.read_topk(tmp_path / "x.bin")
    with pytest.raises(ValueError, match="format"):
        st.read_topk([], format="bogus")


def test_cli_interval(tmp_path, capsys):
    from spectheory.cli import main

    rng = np.random.default_rng(5)
    _, _, ids, lps = _truth(rng)
    rows = [{str(i): float(v) for i, v in zip(r, l)} for r, l in zip(ids, lps)]
    (tmp_path / "t.json").write_text(json.dumps(rows))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    assert main(["interval", "--target", str(tmp_path / "t.json"), "--draft", str(tmp_path / "d.json"),
                 "--vocab-size", "50", "-n", "1", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in out["rows"]] == [1, 2] and all(r["mean_lower"] <= r["mean_upper"] for r in out["rows"])
    assert main(["interval", "--target", str(tmp_path / "t.json"), "--draft", str(tmp_path / "d.json")]) == 2
    assert "--vocab-size" in capsys.readouterr().err
