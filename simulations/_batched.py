"""Batched recording: several prompts per forward pass, each with its own random stream.

Prompts are left-padded to one length with an attention mask (and position ids counted from each
prompt's first real token), so a row's logits are its unbatched logits up to float rounding. The
target's continuation is sampled by :class:`RowSampler`: each prompt i has its own
``torch.Generator`` seeded with ``seed + i`` and draws one uniform per generated token, and the token is
the inverse CDF of the processed law (temperature, top-k, top-p exactly as the replay and
:func:`spectheory.from_logits`). The tokens of a prompt therefore do not depend on the batch it is
in, on the batch size or on the device (identical unless a uniform falls within float rounding of a
CDF step). Greedy generation is the argmax. Generation uses a fresh ``GenerationConfig``: a model's
own defaults (repetition penalty, its top-k) are not applied.
"""

from __future__ import annotations

import torch

from spectheory._validation import SpecTheoryValueError

#: the generation procedure; recorded in the settings, so a recording never mixes two of them
SAMPLER = "per-prompt-generator-inverse-cdf/1"


def prompt_ids(tok, text: str, chat: bool) -> list:
    """Token ids of a prompt; with ``chat``, the prompt as a user message in the tokenizer's chat
    template followed by the assistant turn's opening."""
    if chat:
        if not getattr(tok, "chat_template", None):
            raise SpecTheoryValueError("--chat: the tokenizer has no chat template (not an instruct model?)")
        text = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                       tokenize=False)
        return list(tok(text, add_special_tokens=False)["input_ids"])
    return list(tok(text)["input_ids"])


def left_pad(seqs, pad_id: int, device):
    """``(input_ids, attention_mask, position_ids)`` of left-padded sequences (lists of ints)."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, L - len(s):] = torch.as_tensor(s, dtype=torch.long)
            mask[i, L - len(s):] = 1
    pos = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


class RowSampler:
    """A logits processor that samples each row's next token with that row's generator and returns
    scores that are 0 at the chosen token and -inf elsewhere (so greedy selection in ``generate``
    picks it). Used with ``do_sample=False`` and no other processor."""

    def __init__(self, generators, temperature, top_k, top_p):
        self.generators = generators
        self.temperature, self.top_k, self.top_p = float(temperature), top_k, top_p

    def __call__(self, input_ids, scores):
        from ._torch_bounds import probs_from_logits

        p = probs_from_logits(scores.to(torch.float64), self.temperature, self.top_k, self.top_p)
        c = torch.cumsum(p, dim=-1)
        u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators]).to(c.device)
        idx = (c < (u * c[:, -1])[:, None]).sum(dim=-1).clamp(max=p.shape[-1] - 1)
        out = torch.full_like(scores, -float("inf"))
        out[torch.arange(out.shape[0], device=out.device), idx] = 0.0
        return out


def generate(model, batch_ids, seeds, *, max_new_tokens, do_sample, temperature, top_k, top_p, pad_id, eos_ids,
             device):
    """Continuations of a batch of prompts (lists of ids): per row the generated ids, cut after the
    first end-of-sequence token (which is kept, as unbatched generation stops there)."""
    from transformers import GenerationConfig, LogitsProcessorList

    ids, mask, _ = left_pad(batch_ids, pad_id, device)
    cfg = GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                           pad_token_id=int(pad_id), eos_token_id=list(eos_ids) or None)
    procs = LogitsProcessorList()
    if do_sample:
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        procs.append(RowSampler(gens, temperature, top_k, top_p))
    saved = model.generation_config
    model.generation_config = GenerationConfig()  # the model's own defaults are not merged in
    try:
        out = model.generate(ids, attention_mask=mask, generation_config=cfg, logits_processor=procs)
    finally:
        model.generation_config = saved
    gen = out[:, ids.shape[1]:].cpu().tolist()
    eos = set(int(e) for e in eos_ids)
    res = []
    for row in gen:
        cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
        res.append(row[:cut])
    return res


def forward_logits(model, seqs, starts, V, dtype, pad_id, device):
    """Per row, the logits (len(seq) − start, V) that predict tokens ``seq[start:]``, from one forward
    pass over the left-padded batch (no padding, no mask for a single row)."""
    if len(seqs) == 1:
        x = torch.as_tensor([seqs[0]], dtype=torch.long, device=device)
        lg = model(x).logits
        return [lg[0, starts[0] - 1 : -1, :V].to(dtype).contiguous().cpu()]
    ids, mask, pos = left_pad(seqs, pad_id, device)
    lg = model(ids, attention_mask=mask, position_ids=pos).logits
    L = ids.shape[1]
    out = []
    for i, (s, st) in enumerate(zip(seqs, starts)):
        o = L - len(s)
        out.append(lg[i, o + st - 1 : L - 1, :V].to(dtype).contiguous().cpu())
    return out
