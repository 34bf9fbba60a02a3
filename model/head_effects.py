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
from .speedups import scaled_dot_product_attention as sdpa
from .transformer import GPT, Block

#: how much memory the batched rows of the ranking may take at once (about)
RANKING_BATCH_BYTES = 512 * 2**20
_WHAT_THE_RANKING_READS = dataclasses.replace(CAPTURE_NOTHING, residual=True, qkv=True,
                                              sublayers=True)


def head_effects(model: GPT, ids, token: int, mode: str = "zero") -> HeadEffects:
    """Switch each head off alone and measure the change in log p(``token``) after ``ids``.

    One pass with every head on records the residual stream, each layer's heads (before W_O) and
    its attention output; then one batched pass runs the n_layer·n_head single-head ablations
    together. A row that switches off head h of layer l joins the batch at layer l, from the
    recorded input of that layer (the layers before it are the same as with every head on), so
    the batch grows layer by layer. At layer l itself only head h's share of the output changes:
    W_O applied to what the head loses (its output, or its output minus its mean over the
    positions), subtracted from the recorded attention output. In the last layer only the last
    position goes on (the keys and values still come from every position). The model's own head
    mask is untouched; the result equals separate single-head ablations (tests).
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
    rec = Recording(spec=_WHAT_THE_RANKING_READS)
    positions = torch.arange(T, device=model.device)
    with inference(model):
        try:
            model.set_head_mask(None)
            logits, _ = model(idx, record=rec)  # (1, 1, V)
        finally:
            model.head_mask, model.head_ablation = saved
        base = torch.log_softmax(logits[0, -1].float(), dim=-1)[int(token)]
        # a batch row holds (heads, T, T) attention weights per layer: a large model at a long
        # context takes the heads a few at a time (GPT-2 small at 1024 tokens: one at a time)
        per_row = cfg.n_head * T * T * 4 + 8 * T * cfg.n_embd * 4
        chunk = max(1, min(H, RANKING_BATCH_BYTES // max(1, per_row * L)))
        logp = torch.empty((L, H), device=model.device)
        for h0 in range(0, H, chunk):
            heads = slice(h0, min(H, h0 + chunk))
            x = rec.resid[0].new_zeros((0, T, cfg.n_embd))
            for j, block in enumerate(model.h):
                last = j == L - 1
                if x.size(0):  # rows that switched off a head of an earlier layer: all on here
                    x = _last_position(block, x, model.pe, positions) if last else \
                        block(x, model.pe, positions)
                x = torch.cat([x, _one_head_off(block, rec, j, mode, last)[heads]])
            logits = model.lm_head(model.ln_f(x[:, -1]))  # (L·chunk, V), layer by layer
            lp = torch.log_softmax(logits.float(), dim=-1)[:, int(token)]
            logp[:, heads] = lp.view(L, -1)
    delta = (logp.double() - base.double()).cpu().numpy()
    return HeadEffects(int(token), mode, float(base), delta)


def _one_head_off(block: Block, rec: Recording, j: int, mode: str, last: bool) -> torch.Tensor:
    """(H, T, C) block j's output with head h off in row h (only the last position if
    ``last``), from what the pass with every head on recorded for that block."""
    attn = block.attn
    H, hs = attn.n_head, attn.head_size
    y = rec.heads[j][0]  # (T, C): the heads side by side, before W_O
    T, C = y.shape
    lost = y.view(T, H, hs)
    if mode == "mean":
        lost = lost - lost.mean(dim=0, keepdim=True)
    if last:
        lost = lost[-1:]
    w = attn.c_proj.weight.view(C, H, hs)  # W_O's columns, grouped by the head they read
    a = rec.attn_out[j][0, -lost.size(0):] - torch.einsum("thd,chd->htc", lost, w)  # (H, t, C)
    x = rec.resid[j][0, -lost.size(0):].expand_as(a)
    return _rest_of_block(block, x, a)


def _last_position(block: Block, x: torch.Tensor, pe, positions: torch.Tensor) -> torch.Tensor:
    """(B, 1, C) block output at the last position only, every head on: keys and values from
    every position, one query."""
    attn = block.attn
    B, T, C = x.shape
    h = block.ln_1(x) if block.pre_norm else x
    q, k, v = attn.c_attn(h).split(C, dim=2)
    q = q[:, -1:].view(B, 1, attn.n_head, attn.head_size).transpose(1, 2)  # (B, nh, 1, hs)
    k = k.view(B, T, attn.n_head, attn.head_size).transpose(1, 2)  # (B, nh, T, hs)
    v = v.view(B, T, attn.n_head, attn.head_size).transpose(1, 2)
    q = pe.rotate(q, q, positions[-1:])[0]
    k = pe.rotate(k, k, positions)[1]
    y = sdpa(q, k, v)  # the last query sees every key: no mask
    a = attn.c_proj(y.transpose(1, 2).reshape(B, 1, C))
    return _rest_of_block(block, x[:, -1:], a)


def _rest_of_block(block: Block, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """What Block.forward does after its attention: add (and norm), then the MLP."""
    if block.pre_norm:
        x = x + a
        return x + block.mlp(block.ln_2(x))
    x = block.ln_1(x + a)
    return block.ln_2(x + block.mlp(x))


__all__ = ["RANKING_BATCH_BYTES", "head_effects"]
