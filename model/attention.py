"""Multi-head attention of the three kinds a transformer uses, with exact capture, a KV cache
and a head mask.

Implements softmax(QKᵀ/√d_k + M)·V (Vaswani et al. 2017, equation 1). What differs between the
kinds is where the queries, keys and values come from and the mask M:

* :class:`CausalSelfAttention` (a decoder): queries, keys and values from the same sequence; M
  hides every key after its query (the causal mask). In a BERT-style encoder the same layer runs
  with ``causal=False``: every token sees every other one, only padding is hidden.
* :class:`CrossAttention` (the decoder of an encoder-decoder): queries from the decoder, keys and
  values from the encoder's output; M hides the source's padding.

A head mask switches heads off (ablation, :mod:`model.ablation`): an off head's output is zero,
or with ``mean_ablation`` its mean over the positions of the pass.

With nothing recorded each calls ``F.scaled_dot_product_attention``; when a recording asks for
attention it computes the same thing explicitly so the scores and probabilities can be kept.
Recorded maps go to the recording's list of their family (:data:`FAMILIES`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .capture import Recording, additive_causal_mask, additive_padding_mask, causal_mask
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


class _Heads(nn.Module):
    """What every kind shares: the heads' sizes, the output projection, dropout, and the
    attention itself (fast or explicit) once the queries, keys and values are made."""

    def __init__(self, config: ModelConfig, layer_idx: int, family: str,
                 projections: dict[str, nn.Module]):
        super().__init__()
        # the input projections first: the order modules are made in is the order the random
        # initialisation visits them, which keeps a seed's weights as before
        for name, module in projections.items():
            self.add_module(name, module)
        self.layer_idx = layer_idx
        self.family = family  # which list of a Recording its maps go to
        self.n_head = config.n_head
        self.head_size = config.head_size
        self.dropout = config.dropout
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)

    def _attend(self, q, k, v, *, causal: bool, past: int, key_pad: torch.Tensor | None,
                record: Recording | None, head_mask: torch.Tensor | None,
                mean_ablation: bool = False) -> torch.Tensor:
        """q (B, nh, T, hs), k/v (B, nh, Tk, hs); ``key_pad`` (B, Tk) True where a key is
        padding (None: no padding). Returns the projected output (B, T, C)."""
        B, _, T, _ = q.shape
        Tk = k.size(2)
        drop = self.dropout if self.training else 0.0
        # the scores kept in the recording: not the "self" family's with qk_scores (the caller
        # computes them from the recorded queries and keys)
        keep_scores = record is not None and record.spec.scores \
            and not (record.qk_scores and self.family == "self")
        explicit = record is not None and (record.spec.attention or keep_scores)

        if not explicit:  # sdpa: fp32 under CPU autocast
            if causal and past == 0:
                y = sdpa(q, k, v, dropout_p=drop, is_causal=True)
            elif causal and T > 1:
                y = sdpa(q, k, v, attn_mask=causal_mask(T, Tk, past, q.device), dropout_p=drop)
            elif key_pad is not None:  # a key that is not padding may be seen: (B, 1, 1, Tk)
                y = sdpa(q, k, v, attn_mask=~key_pad[:, None, None, :], dropout_p=drop)
            else:  # one new causal query, or no mask at all: every key is seen
                y = sdpa(q, k, v, dropout_p=drop)
        else:
            lists = record.family_lists(self.family)
            shape = torch.Size((B, self.n_head, T, Tk))
            sinks = self.family == "self" and causal  # preallocated out= buffers (the stepper)
            half = record.half_sink("attention", self.layer_idx, shape, q) \
                if sinks and not keep_scores and not self.training else None
            if half is not None:  # float16 buffers (a large model's): a few heads at a time
                mask = _mask(T, Tk, past, causal, key_pad, q.device, q.dtype)
                y = self._weights_into(half, q, k, v, mask)
                if record.spec.attention:
                    lists[1].append(half)
                return self._output(y, record, head_mask, mean_ablation)
            out_p = record.sink("attention", self.layer_idx, shape, q) if sinks else None
            # scores that are not kept are computed where the probabilities go and turned into
            # them there (the mask added and the softmax run in place): no temporary at all
            out_s = (record.sink("scores", self.layer_idx, shape, q) if sinks else None) \
                if keep_scores else out_p
            # in place where possible: each (B, nh, T, Tk) temporary is fresh memory to fault in
            scores = torch.matmul(q, k.transpose(-2, -1), out=out_s)  # (B, nh, T, Tk)
            scores.mul_(1.0 / math.sqrt(self.head_size))
            mask = _mask(T, Tk, past, causal, key_pad, q.device, scores.dtype)
            if mask is None:
                probs = torch.softmax(scores, dim=-1, out=out_p)
            elif keep_scores:  # + 0 / -inf: masked_fill(~mask, -inf)'s numbers, faster
                # the scores stay unmasked: the masked ones are made where the probabilities
                # go, and the softmax overwrites them there (row by row, in place), so a long
                # pass holds no third (B, nh, T, Tk) tensor per layer
                masked = torch.add(scores, mask, out=out_p) if out_p is not None \
                    else scores + mask
                probs = torch.softmax(masked, dim=-1,  # (B, nh, T, Tk)
                                      out=None if masked.requires_grad else masked)
            else:
                probs = torch.softmax(scores.add_(mask), dim=-1, out=out_p)
            if keep_scores:
                lists[0].append(scores.detach())
            if record.spec.attention:
                lists[1].append(probs.detach())
            y = self.attn_dropout(probs) @ v  # (B, nh, T, hs)
        return self._output(y, record, head_mask, mean_ablation)

    def _weights_into(self, dst: torch.Tensor, q, k, v, mask: torch.Tensor | None
                      ) -> torch.Tensor:
        """softmax(QKᵀ/√d + M)·V a group of heads at a time, each group's weights computed in
        float32 and kept in ``dst`` ((B, nh, T, Tk), float16): a whole layer's float32
        weights (50 MB for a GPT-2 at 1,024 tokens) never exist at once. The same operations
        in the same order as the whole-layer path, head by head."""
        group = max(1, -(-self.n_head // 4))
        ys = []
        for h in range(0, self.n_head, group):
            heads = slice(h, h + group)
            w = torch.matmul(q[:, heads], k[:, heads].transpose(-2, -1))
            w.mul_(1.0 / math.sqrt(self.head_size))
            if mask is not None:
                w.add_(mask)
            w = torch.softmax(w, dim=-1, out=w)
            dst[:, heads].copy_(w)
            ys.append(w @ v[:, heads])
        return torch.cat(ys, dim=1)  # (B, nh, T, hs)

    def _output(self, y: torch.Tensor, record: Recording | None,
                head_mask: torch.Tensor | None, mean_ablation: bool) -> torch.Tensor:
        B, _, T, _ = y.shape
        if head_mask is not None:  # ablation: a 0 switches that head's output off
            # (nh,) for every row, or (B, nh): one mask per batch row (model.ablation's ranking)
            m = head_mask.view(-1, self.n_head, 1, 1).to(y.dtype)
            if mean_ablation:  # an off head outputs its mean over this pass's positions
                y = y * m + y.mean(dim=2, keepdim=True) * (1 - m)
            else:
                y = y * m
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_head * self.head_size)  # (B, T, C)
        if record is not None and record.spec.qkv and self.family == "self":
            record.keep("heads", record.heads, y)
        return self.resid_dropout(self.c_proj(y))


def _mask(T: int, Tk: int, past: int, causal: bool, key_pad: torch.Tensor | None,
          device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
    """The additive mask (0 / -inf) of T queries after ``past`` cached positions over Tk keys:
    the causal one (T, Tk), else the padding one (B, 1, 1, Tk), else None (nothing to hide)."""
    if causal and not (T == 1 and past + 1 == Tk):
        return additive_causal_mask(T, Tk, past, device, dtype)
    if key_pad is not None:
        return additive_padding_mask(key_pad, dtype)
    return None


class CausalSelfAttention(_Heads):
    """Self-attention: queries, keys and values from one sequence. ``causal=True`` (a decoder)
    hides the future; ``causal=False`` (an encoder) hides only padding."""

    def __init__(self, config: ModelConfig, layer_idx: int, causal: bool = True,
                 family: str = "self"):
        d = config.n_embd  # c_attn: q, k and v side by side
        super().__init__(config, layer_idx, family,
                         {"c_attn": nn.Linear(d, 3 * d, bias=config.bias)})
        self.causal = causal

    def forward(self, x, pe, positions, cache: KVCache | None = None,
                record: Recording | None = None, head_mask: torch.Tensor | None = None,
                mean_ablation: bool = False, key_pad: torch.Tensor | None = None):
        C = x.size(2)
        q, k, v = (self._split(t) for t in self.c_attn(x).split(C, dim=2))  # (B, nh, T, hs)
        q, k = pe.rotate(q, k, positions)
        main = record is not None and self.family == "self"
        if main and (record.spec.qkv or record.qk_scores):  # this pass's rows only, keys
            record.keep("q", record.q, q)  # before caching
            record.keep("k", record.k, k)
        if main and record.spec.qkv:
            record.keep("v", record.v, v)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.write(self.layer_idx, k, v)  # (B, nh, Tk, hs)
        return self._attend(q, k, v, causal=self.causal, past=past,
                            key_pad=None if self.causal else key_pad, record=record,
                            head_mask=head_mask, mean_ablation=mean_ablation)


class CrossAttention(_Heads):
    """Encoder-decoder attention (Vaswani et al. section 3.2.3): queries from the decoder, keys
    and values from the encoder's output, so each target token looks at the whole source. No
    positional rotation: a target and a source position are not on one axis."""

    def __init__(self, config: ModelConfig, layer_idx: int):
        d = config.n_embd
        super().__init__(config, layer_idx, "cross",
                         {"c_q": nn.Linear(d, d, bias=config.bias),
                          "c_kv": nn.Linear(d, 2 * d, bias=config.bias)})

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the encoder's output (B, S, C), each (B, nh, S, hs): computed
        once per source, then reused by every decoding step."""
        k, v = self.c_kv(memory).split(memory.size(2), dim=2)
        return self._split(k), self._split(v)

    def forward(self, x, kv: tuple[torch.Tensor, torch.Tensor], key_pad: torch.Tensor | None,
                record: Recording | None = None, head_mask: torch.Tensor | None = None):
        q = self._split(self.c_q(x))  # (B, nh, T, hs)
        k, v = kv
        return self._attend(q, k, v, causal=False, past=0, key_pad=key_pad, record=record,
                            head_mask=head_mask)
