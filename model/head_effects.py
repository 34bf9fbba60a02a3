"""The per-head ranking: how much switching each attention head off alone changes the
log-probability of one next token, for every head in one batched pass (see :func:`head_effects`).
"""
from __future__ import annotations

import dataclasses

import torch

from .ablation import ABLATION_MODES, HeadEffects
from .capture import Recording
from .config import CAPTURE_NOTHING, ConfigError
from .context_window import inference
from .transformer import GPT

_RESIDUAL_ONLY = dataclasses.replace(CAPTURE_NOTHING, residual=True)


def head_effects(model: GPT, ids, token: int, mode: str = "zero") -> HeadEffects:
    """Switch each head off alone and measure the change in log p(``token``) after ``ids``.

    One pass with every head on records the residual stream; then one batched pass runs the
    n_layer·n_head single-head ablations together. A row that switches off a head of layer l
    joins the batch at layer l, from the recorded input of that layer (the layers before it are
    the same as with every head on), so the batch grows layer by layer: H rows at layer 0, 2H at
    layer 1, … (L(L+1)/2·H row-layers instead of L·L·H). The model's own head mask is untouched.
    """
    if mode not in ABLATION_MODES:
        raise ConfigError(f"ablation mode {mode!r} must be 'zero' or 'mean'")
    cfg = model.config
    L, H = cfg.n_layer, cfg.n_head
    idx = torch.as_tensor(ids, dtype=torch.long, device=model.device).view(1, -1)
    idx = idx[:, -cfg.block_size:]
    T = idx.size(1)
    if T == 0:
        raise ValueError("no tokens to rank the heads on")
    if not 0 <= int(token) < cfg.vocab_size:
        raise ValueError(f"token {token!r} is not a token id (0..{cfg.vocab_size - 1})")
    saved = model.head_mask, model.head_ablation
    rec = Recording(spec=_RESIDUAL_ONLY)
    dev = model.device
    positions = torch.arange(T, device=dev)
    with inference(model):
        try:
            model.set_head_mask(None)
            logits, _ = model(idx, record=rec)  # (1, 1, V)
            base = torch.log_softmax(logits[0, -1].float(), dim=-1)[int(token)]
            x = rec.resid[0].new_zeros((0, T, cfg.n_embd))
            off = 1 - torch.eye(H, device=dev)  # row h: head h off
            for j, block in enumerate(model.h):
                x = torch.cat([x, rec.resid[j].expand(H, T, cfg.n_embd)])  # + this layer's rows
                mask = torch.cat([torch.ones((j * H, H), device=dev), off])  # (rows, H)
                x = block(x, model.pe, positions, None, None, mask, mode == "mean")
            logits = model.lm_head(model.ln_f(x[:, -1]))  # (L·H, V)
            logp = torch.log_softmax(logits.float(), dim=-1)[:, int(token)]
        finally:
            model.head_mask, model.head_ablation = saved
    delta = (logp.double() - base.double()).cpu().numpy().reshape(L, H)
    return HeadEffects(int(token), mode, float(base), delta)


__all__ = ["head_effects"]
