"""The shipped reference model pair: a small target and a smaller draft sharing one tokenizer.

Both are ``LlamaForCausalLM`` models trained from scratch on the Python standard library's source
by :mod:`spectheory.simulations.train_reference_pair` (corpus, split, configurations, training and
held-out metrics are recorded in ``training.json`` next to the weights). The weights are stored in
float16 and loaded in float32 by default. Needs ``pip install 'spectheory[replay]'`` (torch,
transformers); everything loads offline from the package folder.

>>> from spectheory.simulations.reference import reference_pair_path, reference_prompts
>>> (reference_pair_path() / "training.json").is_file()
True
>>> len(reference_prompts()) > 0
True
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["load_reference_pair", "reference_metadata", "reference_pair_path", "reference_prompts"]


def reference_pair_path() -> Path:
    """Folder of the shipped pair: ``tokenizer/``, ``target/``, ``draft/``, ``training.json``,
    ``prompts.txt``."""
    return Path(__file__).resolve().parent / "reference_pair"


def reference_metadata() -> dict:
    """The training record (``training.json``): corpus, split, models, training, metrics."""
    return json.loads((reference_pair_path() / "training.json").read_text(encoding="utf-8"))


def reference_prompts() -> list[str]:
    """Short code snippets from held-out standard-library files (``prompts.txt``: one prompt per
    line, each newline inside a prompt written as backslash + ``n``, the ``--prompts`` text format;
    the snippets contain no backslash, so the encoding is exact). Each is whole source lines ending
    with a newline."""
    text = (reference_pair_path() / "prompts.txt").read_text(encoding="utf-8")
    return [line.replace("\\n", "\n") for line in text.splitlines() if line.strip()]


def load_reference_pair(dtype="float32"):
    """``(target_model, draft_model, tokenizer)``, models in eval mode on CPU.

    ``dtype``: a ``torch.dtype`` or its name (``"float32"``, the default, or ``"float64"``; the
    stored float16 weights are converted exactly)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # callers show their own progress
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    root = reference_pair_path()
    target = AutoModelForCausalLM.from_pretrained(root / "target", dtype=dtype, local_files_only=True).eval()
    draft = AutoModelForCausalLM.from_pretrained(root / "draft", dtype=dtype, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    return target, draft, tokenizer
