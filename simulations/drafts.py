"""Drafts built from a target model alone: early exit and low-bit quantization.

Both share the target's tokenizer by construction (same embedding, same LM head, same vocabulary)
and are deterministic functions of the target's weights: building one twice gives identical
weights, so no seed is involved.

* :func:`early_exit_draft` — the first ``L`` decoder layers of the target, then the target's final
  norm and LM head: the self-draft of LayerSkip (Elhoushi et al., 2024, "LayerSkip: Enabling Early
  Exit Inference and Self-Speculative Decoding", https://arxiv.org/abs/2404.16710) and of Draft &
  Verify (Zhang et al., 2024, https://arxiv.org/abs/2309.08168), here without any fine-tuning for
  early exit.
* :func:`quantized_draft` — the target with every linear layer of its decoder blocks replaced by its
  group-wise round-to-nearest (RTN) quantization to ``bits`` bits, dequantized back to float: the
  low-precision draft of QSpec (Zhao et al., 2024, https://arxiv.org/abs/2410.11305). For each
  output row and each group of ``group_size`` consecutive input weights :math:`w_1..w_g`,

  .. math::

     s = \\frac{\\max_j w_j - \\min_j w_j}{2^b - 1},\\quad z = \\operatorname{round}(-\\min_j w_j / s),\\quad
     \\hat w_j = s\\,(\\operatorname{clamp}(\\operatorname{round}(w_j / s) + z,\\ 0,\\ 2^b - 1) - z)

  (asymmetric min-max RTN, the baseline of GPTQ, Frantar et al., 2023). Embeddings, norms and the LM
  head are kept (the head is often tied to the embedding).

:func:`plain_copy` turns a model loaded from GGUF into an ordinary one (transformers 5 refuses
``save_pretrained`` on a GGUF-loaded model: the weights are copied into ``from_config`` of the same
configuration without its ``quantization_config``).
"""

from __future__ import annotations

import copy

from spectheory._validation import SpecTheoryValueError

__all__ = ["early_exit_draft", "quantized_draft", "plain_copy", "rtn_quantize", "decoder_layers", "num_layers"]


def _clean_config(config):
    cfg = copy.deepcopy(config)
    if hasattr(cfg, "quantization_config"):
        try:
            delattr(cfg, "quantization_config")
        except AttributeError:  # pragma: no cover - set on the class
            cfg.quantization_config = None
    return cfg


def plain_copy(model):
    """A copy of ``model`` built by ``from_config`` (without ``quantization_config``) holding the
    same weights: one that ``save_pretrained`` accepts even when ``model`` was loaded from GGUF."""
    from transformers import AutoModelForCausalLM

    cfg = _clean_config(model.config)
    new = AutoModelForCausalLM.from_config(cfg, dtype=model.dtype, trust_remote_code=False)
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    tied = set(getattr(new, "_tied_weights_keys", None) or [])
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise SpecTheoryValueError(f"model: cannot copy the weights ({len(missing)} missing, {len(unexpected)} unexpected)")
    if hasattr(new, "tie_weights"):
        new.tie_weights()
    return new.eval()


def num_layers(model) -> int:
    """Number of decoder layers (``num_hidden_layers`` of the text configuration)."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(cfg.num_hidden_layers)


def decoder_layers(model):
    """``(parent_module, attribute_name)`` of the model's list of decoder layers: the
    ``torch.nn.ModuleList`` whose length is the number of layers (``model.layers`` for Llama-like
    models, ``transformer.h`` for GPT-2, ``gpt_neox.layers``, ``model.decoder.layers`` for OPT,
    ``backbone.layers`` for Mamba)."""
    import torch

    L = num_layers(model)
    for name, module in model.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == L:
                return module, attr
    raise SpecTheoryValueError(f"model: cannot find its {L} decoder layers ({type(model).__name__})")


def early_exit_draft(target, layers: int):
    """The first ``layers`` decoder layers of ``target``, then its final norm and LM head.

    Parameters
    ----------
    target : transformers.PreTrainedModel
    layers : int
        ``1 <= layers <= num_layers(target)``.

    Returns
    -------
    transformers.PreTrainedModel
        A new model (the target is unchanged) whose configuration says ``num_hidden_layers = layers``.
    """
    total = num_layers(target)
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= total:
        raise SpecTheoryValueError(f"layers: must be an integer in 1..{total}, got {layers!r}")
    draft = plain_copy(target)
    parent, attr = decoder_layers(draft)
    kept = getattr(parent, attr)[:layers]
    setattr(parent, attr, kept)
    for cfg in {id(c): c for c in (draft.config, draft.config.get_text_config())}.values():
        cfg.num_hidden_layers = layers
        lt = getattr(cfg, "layer_types", None)
        if isinstance(lt, (list, tuple)) and len(lt) == total:
            cfg.layer_types = list(lt[:layers])
    return draft.eval()


def rtn_quantize(weight, bits: int, group_size: int):
    """Group-wise asymmetric round-to-nearest quantization of a 2-d weight (out × in), groups of
    ``group_size`` consecutive input columns per row (the last group may be shorter), dequantized
    back to the weight's dtype. See the module docstring for the formula."""
    import torch

    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise SpecTheoryValueError(f"bits: must be an integer in 1..16, got {bits!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise SpecTheoryValueError(f"group_size: must be an integer >= 1, got {group_size!r}")
    w = weight.detach().to(torch.float64)
    out_f, in_f = w.shape
    pad = (-in_f) % group_size
    if pad:
        w = torch.cat([w, w[:, -1:].expand(out_f, pad)], dim=1)  # repeats a value: min/max unchanged
    g = w.reshape(out_f, -1, group_size)
    lo = g.amin(dim=2, keepdim=True)
    hi = g.amax(dim=2, keepdim=True)
    levels = 2**bits - 1
    scale = (hi - lo) / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-lo / safe)
    q = torch.clamp(torch.round(g / safe) + zero, 0, levels)
    deq = torch.where(scale > 0, (q - zero) * safe, g)  # a constant group is exact
    return deq.reshape(out_f, -1)[:, :in_f].to(weight.dtype)


def quantized_draft(target, bits: int = 4, group_size: int = 64):
    """``target`` with the linear layers of its decoder blocks RTN-quantized to ``bits`` bits in
    groups of ``group_size`` (:func:`rtn_quantize`); embeddings, norms and LM head unchanged.

    Returns
    -------
    transformers.PreTrainedModel
        A new model; ``draft.config.spectheory_quantization`` records ``bits``, ``group_size`` and
        the number of quantized matrices.
    """
    import torch

    rtn_quantize(torch.zeros(1, 1), bits, group_size)  # validates bits and group_size
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        Conv1D = ()
    draft = plain_copy(target)
    parent, attr = decoder_layers(draft)
    count = 0
    with torch.no_grad():
        for module in getattr(parent, attr).modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(rtn_quantize(module.weight, bits, group_size))
                count += 1
            elif Conv1D and isinstance(module, Conv1D):  # GPT-2: weight is (in, out)
                module.weight.copy_(rtn_quantize(module.weight.T, bits, group_size).T)
                count += 1
    if count == 0:
        raise SpecTheoryValueError(f"model: no linear layers to quantize in {type(target).__name__}")
    draft.config.spectheory_quantization = {"method": "rtn", "bits": bits, "group_size": group_size,
                                            "matrices": count}
    return draft.eval()
