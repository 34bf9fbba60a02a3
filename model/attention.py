"""Causal multi-head self-attention with exact capture, a KV cache and a head mask.

A head mask switches heads off (ablation, :mod:`model.ablation`): an off head's output is zero,
or with ``mean_ablation`` its mean over the positions of the pass.

Implements softmax(QKᵀ/√d_k + M)·V (Vaswani et al. 2017, equation 1) with M the causal mask.
With nothing recorded it calls ``F.scaled_dot_product_attention``; when a recording asks for
attention it computes the same thing explicitly so the scores and probabilities can be kept.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .capture import Recording, additive_causal_mask, causal_mask
from .config import ModelConfig
from .speedups import scaled_dot_product_attention as sdpa


class KVCache:
    """Keys and values of every layer for the tokens seen so far (batch of sequences).

    Preallocated to the block size so a decoding step writes one slot instead of concatenating.
    ``length`` counts committed positions; the model advances it after a full forward pass.
    """

    def __init__(self, config: ModelConfig, batch_size: int = 1, device=None, dtype=None):
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.head_size)
        self.k = torch.zeros(shape, device=device, dtype=dtype or torch.float32)
        self.v = torch.zeros(shape, device=device, dtype=dtype or torch.float32)
        self.length = 0
        self.capacity = config.block_size

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store the new k/v (B, nh, t, hs) after the committed ones; return all keys/values."""
        t = k.size(2)
        end = self.length + t
        if end > self.capacity:
            raise ValueError(f"KV cache is full: {self.length} + {t} > block size {self.capacity}")
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]  # (B, nh, Tk, hs)

    def advance(self, t: int) -> None:
        self.length += t

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on (used to undo generation steps)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of length {self.length} to {length}")
        self.length = length

    def reset(self) -> None:
        self.length = 0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head = config.n_head
        self.head_size = config.head_size
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, pe, positions, cache: KVCache | None = None,
                record: Recording | None = None, head_mask: torch.Tensor | None = None,
                mean_ablation: bool = False):
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        q, k = pe.rotate(q, k, positions)
        if record is not None and record.want_queries:
            record.queries.append(q.detach())
        if record is not None and record.spec.qkv:  # this pass's rows only, keys before caching
            record.q.append(q.detach())
            record.k.append(k.detach())
            record.v.append(v.detach())
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.write(self.layer_idx, k, v)  # (B, nh, Tk, hs)
        Tk = k.size(2)
        drop = self.dropout if self.training else 0.0

        if record is None or not record.wants_attention:  # sdpa: fp32 under CPU autocast
            if past == 0:
                y = sdpa(q, k, v, dropout_p=drop, is_causal=True)
            elif T == 1:  # one new query sees every cached key
                y = sdpa(q, k, v, dropout_p=drop)
            else:
                mask = causal_mask(T, Tk, past, x.device)  # (T, Tk)
                y = sdpa(q, k, v, attn_mask=mask, dropout_p=drop)
        else:
            # in place where possible: each (B, nh, T, Tk) temporary is fresh memory to fault in
            shape = torch.Size((B, self.n_head, T, Tk))
            out_s = record.sink("scores", self.layer_idx, shape, q) if record.spec.scores \
                else None
            out_p = record.sink("attention", self.layer_idx, shape, q)
            scores = torch.matmul(q, k.transpose(-2, -1), out=out_s)  # (B, nh, T, Tk)
            scores.mul_(1.0 / math.sqrt(self.head_size))
            if T == 1 and past + 1 == Tk:  # one new query sees every key: nothing to mask
                probs = torch.softmax(scores, dim=-1, out=out_p)  # (B,nh,1,Tk)
            else:  # + 0 / -inf: the same numbers as masked_fill(~mask, -inf), but faster
                mask = additive_causal_mask(T, Tk, past, x.device, scores.dtype)  # (T, Tk)
                masked = scores + mask if record.spec.scores else scores.add_(mask)
                probs = torch.softmax(masked, dim=-1, out=out_p)  # (B,nh,T,Tk)
            if record.spec.scores:
                record.attn_scores.append(scores.detach())
            if record.spec.attention:
                record.attn_probs.append(probs.detach())
            y = self.attn_dropout(probs) @ v  # (B, nh, T, hs)

        if head_mask is not None:  # ablation: a 0 switches that head's output off
            # (nh,) for every row, or (B, nh): one mask per batch row (model.ablation's ranking)
            m = head_mask.view(-1, self.n_head, 1, 1).to(y.dtype)
            if mean_ablation:  # an off head outputs its mean over this pass's positions
                y = y * m + y.mean(dim=2, keepdim=True) * (1 - m)
            else:
                y = y * m
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) heads side by side
        if record is not None and record.spec.qkv:
            record.heads.append(y.detach())
        return self.resid_dropout(self.c_proj(y))
