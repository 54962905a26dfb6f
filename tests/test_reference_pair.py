"""The shipped reference model pair (spectheory/simulations/reference_pair/): files, offline loading,
recorded metrics, and a quick re-measurement on the shipped held-out prompts."""

from __future__ import annotations

import pytest

from spectheory.simulations.reference import reference_metadata, reference_pair_path, reference_prompts

MAX_BYTES = 25 * 1024 * 1024
REQUIRED = [
    "training.json",
    "prompts.txt",
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json",
    "target/config.json",
    "target/model.safetensors",
    "draft/config.json",
    "draft/model.safetensors",
]


def test_files_exist_and_fit():
    root = reference_pair_path()
    for rel in REQUIRED:
        assert (root / rel).is_file(), rel
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, total
    assert not (root / "__init__.py").exists()  # a data folder, not a package


def test_recorded_metrics_meet_requirements():
    meta = reference_metadata()
    m = meta["metrics"]["heldout"]
    assert m["ce_target"] <= 0.85 * m["ce_draft"]  # target CE at least 15 % below the draft's
    assert 0.5 <= m["acceptance_T1"] <= 0.9
    assert m["tokens"] > 100_000
    assert meta["tokenizer"]["vocab_size"] >= 2000
    corpus = meta["corpus"]
    assert corpus["train"]["files"] > corpus["heldout"]["files"] > 0
    assert meta["files"]["total_bytes_excluding_training_json"] <= MAX_BYTES
    assert meta["models"]["target"]["parameters"] > meta["models"]["draft"]["parameters"]


def test_prompts_are_heldout_snippets():
    prompts = reference_prompts()
    assert len(prompts) == reference_metadata()["prompts"]["count"] >= 8
    assert all(isinstance(p, str) and p.strip() and p.endswith("\n") and "\\" not in p for p in prompts)
    # prompts.txt is in the --prompts text format: read_prompts gives the same list
    record = pytest.importorskip("spectheory.simulations.record")
    assert record.read_prompts(reference_pair_path() / "prompts.txt") == prompts


@pytest.fixture(scope="module")
def pair():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from spectheory.simulations.reference import load_reference_pair

    return load_reference_pair()


def test_models_and_tokenizer_load_offline(pair):
    import torch

    target, draft, tok = pair
    V = len(tok)
    assert V >= 2000
    assert target.config.vocab_size == draft.config.vocab_size == V
    assert target.dtype == draft.dtype == torch.float32
    assert target.num_parameters() > draft.num_parameters()
    ids = tok("def f(x):\n    return x\n")["input_ids"]
    assert tok.decode(ids) == "def f(x):\n    return x\n"  # byte-level BPE round trip


def test_quick_remeasurement_on_heldout_prompts(pair):
    """Teacher-forced over the first 12 held-out prompts (a few hundred tokens): acceptance at
    T = 1 within [0.5, 0.9] and target CE below draft CE."""
    import torch
    import torch.nn.functional as F

    target, draft, tok = pair
    eos = tok.eos_token_id
    n = 0
    ce_t = ce_d = acc = 0.0
    with torch.inference_mode():
        for prompt in reference_prompts()[:12]:
            x = torch.tensor([[eos] + tok(prompt, add_special_tokens=False)["input_ids"]])
            lt = target(input_ids=x).logits[0, :-1].double()
            ld = draft(input_ids=x).logits[0, :-1].double()
            y = x[0, 1:]
            ce_t += F.cross_entropy(lt, y, reduction="sum").item()
            ce_d += F.cross_entropy(ld, y, reduction="sum").item()
            acc += torch.minimum(lt.softmax(-1), ld.softmax(-1)).sum().item()
            n += len(y)
    assert n >= 200
    assert ce_t < ce_d
    assert 0.5 <= acc / n <= 0.9
    # and it agrees with what the training script recorded for the full prompt set's statistics
    recorded = reference_metadata()["metrics"]["prompts"]
    assert 0.5 <= recorded["acceptance_T1"] <= 0.9
