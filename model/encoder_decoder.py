"""The encoder-decoder transformer of "Attention Is All You Need" (Vaswani et al. 2017).

The encoder reads the whole source at once (bidirectional self-attention; padding is hidden) and
turns it into one vector per source token, the *memory*. The decoder writes the target token by
token: causal self-attention over the target so far, then cross-attention whose queries come
from the decoder and whose keys and values come from the memory, then the feed-forward network;
a residual connection and a layer norm around each sub-layer (post-norm as in the paper, or
pre-norm). Source and target share one vocabulary; with ``shared_embeddings`` also one
embedding matrix (section 3.4), and with ``tie_weights`` the unembedding is that matrix too.

Sequences: a source is its tokens, ``eos`` and padding; the decoder's input is ``bos`` and the
target, and it learns to predict the target followed by ``eos``.

:func:`build_model` makes the model of any :data:`model.config.MODEL_KINDS`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import CausalSelfAttention, CrossAttention, KVCache
from .capture import Recording
from .config import ModelConfig
from .positional import make_positional
from .transformer import GPT, MLP, Block, _mean_std, _normed


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention over the memory, FFN; each in a residual + norm."""

    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.pre_norm = config.norm == "pre"
        eps = config.layer_norm_epsilon
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_idx, causal=True)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.cross_attn = CrossAttention(config, layer_idx)
        self.ln_3 = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, pe, positions, kv, src_pad, cache=None, record=None, head_mask=None,
                cross_mask=None):
        keep = record is not None and record.spec.sublayers
        if self.pre_norm:
            a = self.attn(_normed(self.ln_1, x, record), pe, positions, cache, record, head_mask)
            x = x + a
            c = self.cross_attn(_normed(self.ln_2, x, record), kv, src_pad, record, cross_mask)
            x = x + c
            m = self.mlp(_normed(self.ln_3, x, record), record)
            x = x + m
        else:
            a = self.attn(x, pe, positions, cache, record, head_mask)
            x = _normed(self.ln_1, x + a, record)
            c = self.cross_attn(x, kv, src_pad, record, cross_mask)
            x = _normed(self.ln_2, x + c, record)
            m = self.mlp(x, record)
            x = _normed(self.ln_3, x + m, record)
        if keep:
            record.attn_out.append(a.detach())
            record.cross_out.append(c.detach())
            record.mlp_out.append(m.detach())
        return x


@dataclass
class Seq2SeqCache:
    """What a decoding step reuses: the encoder's output for the source (computed once), the
    keys and values every decoder layer's cross-attention made of it, and the decoder's own
    KV cache of the target so far."""

    memory: torch.Tensor  # (B, S, C)
    src_pad: torch.Tensor | None  # (B, S) True where the source is padding
    decoder: KVCache
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.decoder.length


class EncoderDecoder(nn.Module):
    """``forward(src, tgt, targets=None) -> (logits, loss)``; src (B, S), tgt (B, T) ids."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.kind != "encoder-decoder":
            raise ValueError(f"EncoderDecoder needs kind='encoder-decoder', not {config.kind!r}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # the target's (and shared)
        self.enc_wte = None if config.shared_embeddings else \
            nn.Embedding(config.vocab_size, config.n_embd)
        self.pe = make_positional(config)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList([Block(config, i, causal=False, family="encoder")
                                      for i in range(config.n_enc_layer)])
        self.h = nn.ModuleList([DecoderBlock(config, i) for i in range(config.n_layer)])
        pre, eps = config.norm == "pre", config.layer_norm_epsilon
        # post-norm layers already end in a layer norm
        self.enc_ln_f = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias) if pre \
            else nn.Identity()
        self.ln_f = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias) if pre \
            else nn.Identity()
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        # family -> (layers, heads) of 0/1; a missing family has every head on
        self.head_masks: dict[str, torch.Tensor] = {}
        self._recording: Recording | None = None
        self.apply(GPT._init_weights)
        n_res = 2 * config.n_layer + config.n_enc_layer  # residual projections on the paths
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_res))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    def layers(self, family: str) -> int:
        return self.config.n_enc_layer if family == "encoder" else self.config.n_layer

    def set_head_mask(self, mask: torch.Tensor | None, family: str = "self") -> None:
        """(layers, n_head) with 1 = on and 0 = off for the heads of one family ("encoder",
        "self" = the decoder's self-attention, "cross"); None switches them all back on."""
        if family not in ("self", "encoder", "cross"):
            raise ValueError(f"unknown attention family {family!r}: self, encoder or cross")
        if mask is None:
            self.head_masks.pop(family, None)
            return
        mask = torch.as_tensor(mask, dtype=torch.float32, device=self.device)
        expected = (self.layers(family), self.config.n_head)
        if tuple(mask.shape) != expected:
            raise ValueError(f"{family} head mask has shape {tuple(mask.shape)}, expected "
                             f"{expected}")
        self.head_masks[family] = mask

    def _head_mask(self, family: str, layer: int) -> torch.Tensor | None:
        m = self.head_masks.get(family)
        return None if m is None else m[layer]

    def _check_length(self, what: str, n: int) -> None:
        if n > self.config.block_size:
            raise ValueError(f"the {what} has {n} tokens, more than the block size "
                             f"{self.config.block_size}")

    def _embed(self, table: nn.Embedding, idx: torch.Tensor, positions: torch.Tensor):
        tok = table(idx)  # (B, T, C)
        pos = self.pe.embed(positions)  # (T, C) or None
        return self.drop(tok if pos is None else tok + pos)

    # -- the two halves ------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, record: Recording | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The memory (B, S, C) of a source (B, S) and its padding (B, S) (None: no padding).
        With a recording, the encoder's maps go to its "encoder" family and the encoder stack's
        other values to ``record.encoder`` (:meth:`Recording.encoder_recording`)."""
        record = record if record is not None else self._recording
        S = src.size(1)
        self._check_length("source", S)
        pad = src == self.config.pad_id
        src_pad = pad if bool(pad.any()) else None
        sub = None
        if record is not None:
            record.key_padding = src_pad
            sub = record.encoder_recording()
        positions = torch.arange(S, device=src.device)
        tok = (self.enc_wte or self.wte)(src)  # (B, S, C)
        pos = self.pe.embed(positions)  # (S, C) or None
        x = self.drop(tok if pos is None else tok + pos)
        keep_resid = sub is not None and sub.spec.residual
        if sub is not None and sub.spec.embeddings:
            sub.tok_emb = tok.detach()
            sub.pos_emb = None if pos is None else pos.detach()
        if keep_resid:
            sub.resid.append(x.detach())
        for i, block in enumerate(self.encoder):
            x = block(x, self.pe, positions, None, sub, self._head_mask("encoder", i),
                      key_pad=src_pad)
            if keep_resid:
                sub.resid.append(x.detach())
        x = _normed(self.enc_ln_f, x, sub) if self.config.norm == "pre" else x
        _finish_norm_stats(sub)
        return x, src_pad

    def new_cache(self, src: torch.Tensor, record: Recording | None = None) -> Seq2SeqCache:
        """Encode ``src`` once (recording into ``record`` if given) and make room for decoding
        its target step by step."""
        memory, src_pad = self.encode(src, record)
        cache = KVCache(self.config, src.size(0), device=self.device, dtype=self.wte.weight.dtype)
        kv = [block.cross_attn.memory_kv(memory) for block in self.h]
        return Seq2SeqCache(memory=memory, src_pad=src_pad, decoder=cache, cross_kv=kv)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor | None, *,
               cache: Seq2SeqCache | None = None, record: Recording | None = None
               ) -> torch.Tensor:
        """The decoder's final hidden states (B, T, C) for ``tgt`` (after the cached part)."""
        record = record if record is not None else self._recording
        T = tgt.size(1)
        past = cache.length if cache is not None else 0
        self._check_length("target", past + T)
        if record is not None:
            record.query_offset = past
            record.causal = True
            record.key_padding = src_pad
            record.norm_inputs.clear()  # left over only by a pass that failed
        positions = torch.arange(past, past + T, device=tgt.device)
        x = self._embed(self.wte, tgt, positions)
        keep_resid = record is not None and (record.spec.residual or record.spec.logit_lens)
        if record is not None and record.spec.embeddings:
            record.tok_emb = self.wte(tgt).detach()
            pos = self.pe.embed(positions)
            record.pos_emb = None if pos is None else pos.detach()
        if keep_resid:
            record.resid.append(x.detach())
        for i, block in enumerate(self.h):
            kv = cache.cross_kv[i] if cache is not None else block.cross_attn.memory_kv(memory)
            x = block(x, self.pe, positions, kv, src_pad,
                      cache.decoder if cache is not None else None, record,
                      self._head_mask("self", i), self._head_mask("cross", i))
            if keep_resid:
                record.resid.append(x.detach())
        if cache is not None:
            cache.decoder.advance(T)
        x = _normed(self.ln_f, x, record) if self.config.norm == "pre" else x
        _finish_norm_stats(record)
        return x

    def forward(self, src: torch.Tensor, tgt: torch.Tensor,
                targets: torch.Tensor | None = None, *, cache: Seq2SeqCache | None = None,
                all_logits: bool = False, record: Recording | None = None):
        """Logits for the next target token after each position of ``tgt`` (only the last one
        unless ``targets`` or ``all_logits``); the loss ignores targets of -1 (padding). With a
        ``cache`` the source is not encoded again: ``src`` may be None."""
        record = record if record is not None else self._recording
        if cache is None:
            memory, src_pad = self.encode(src, record)
        else:
            memory, src_pad = cache.memory, cache.src_pad
        x = self.decode(tgt, memory, src_pad, cache=cache, record=record)
        if targets is not None:
            logits = self.lm_head(x)  # (B, T, V)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-1)
        else:
            logits = self.lm_head(x if all_logits else x[:, [-1], :])
            loss = None
        if record is not None and record.spec.logit_lens:
            with torch.no_grad():
                resid = record.resid[-(len(self.h) + 1):]
                record.logit_lens = self.lm_head(self.ln_f(torch.stack(resid)))
        return logits, loss

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int | None = None) -> list[list[int]]:
        """The most likely target of each source (B, S), without ``bos`` and ``eos``; decoding
        uses the KV cache and stops at ``eos`` or after ``max_len`` tokens."""
        cfg = self.config
        limit = min(max_len or cfg.block_size - 1, cfg.block_size - 1)
        cache = self.new_cache(src)
        B = src.size(0)
        out: list[list[int]] = [[] for _ in range(B)]
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        nxt = torch.full((B, 1), cfg.bos_id, dtype=torch.long, device=src.device)
        for _ in range(limit):
            logits, _ = self(None, nxt, cache=cache)
            nxt = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            done |= nxt[:, 0] == cfg.eos_id
            for b in (~done).nonzero().flatten().tolist():
                out[b].append(int(nxt[b, 0]))
            if bool(done.all()):
                break
        return out


def _finish_norm_stats(record: Recording | None) -> None:
    """Turn what entered the norms of a short pass into their statistics (as GPT.forward)."""
    if record is not None and record.norm_inputs:
        record.norm_stats += _mean_std(torch.stack(record.norm_inputs))
        record.norm_inputs.clear()


def build_model(config: ModelConfig) -> GPT | EncoderDecoder:
    """A fresh model of ``config.kind``: a GPT (decoder or encoder) or an encoder-decoder."""
    if config.kind == "encoder-decoder":
        return EncoderDecoder(config)
    return GPT(config)


__all__ = ["DecoderBlock", "EncoderDecoder", "Seq2SeqCache", "build_model"]
