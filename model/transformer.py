"""The one-stack transformer: embeddings, a stack of blocks, final norm, unembedding.

With ``config.kind == "decoder"`` it is a GPT (causal self-attention, next-token prediction);
with ``"encoder"`` a BERT-style encoder: the same stack with bidirectional self-attention (only
padding is hidden), trained to predict the tokens hidden behind ``[MASK]``.

``forward(idx, targets=None) -> (logits, loss)`` as in nanoGPT. Without targets only the last
position goes through the unembedding unless ``all_logits=True``. Named capture points record
into a :class:`model.capture.Recording` when one is attached (see :func:`model.capture.capture`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ablation import NO_ABLATION, Ablation
from .attention import CausalSelfAttention, KVCache
from .capture import Recording
from .config import ModelConfig
from .positional import make_positional

# a pass whose norms see at most this many numbers each (B * T * C; 1 MB) keeps what enters
# each norm and computes the statistics of all of them at the end, in one go: a handful of
# operations per pass instead of per norm, which is what they cost at these sizes. Longer passes
# compute them norm by norm, so that no large stacked copy of every norm's input is made.
_STACKED_NORM_STATS = 1 << 18


def _mean_std(x: torch.Tensor) -> list[torch.Tensor]:
    """(N, B, T, C) -> N × (B, T, 2): mean and standard deviation over C (two passes: mean,
    then the length of x - mean; as exact as torch.var_mean and much faster on a CPU)."""
    x = x.float()
    mean = x.mean(-1, keepdim=True)
    std = torch.linalg.vector_norm(x - mean, dim=-1, keepdim=True).div_(math.sqrt(x.size(-1)))
    return list(torch.cat((mean, std), dim=-1).unbind(0))


def _normed(ln: nn.Module, x: torch.Tensor, record: Recording | None) -> torch.Tensor:
    """ln(x), recording the mean and standard deviation of x over its C entries (what the norm
    removes) when the recording asks for them."""
    if record is not None and record.spec.norms:
        if x.numel() <= _STACKED_NORM_STATS:
            record.norm_inputs.append(x.detach())  # GPT.forward computes their statistics
        else:
            record.norm_stats += _mean_std(x.detach().unsqueeze(0))
    return ln(x)


class MLP(nn.Module):
    """Position-wise feed-forward network: Linear → GELU → Linear (section 3.3)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.n_ffn, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh" if config.activation == "gelu_tanh" else "none")
        self.c_proj = nn.Linear(config.n_ffn, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, record: Recording | None = None):
        h = self.gelu(self.c_fc(x))  # (B, T, F)
        if record is not None and record.spec.ffn:
            record.keep("ffn", record.ffn_hidden, h)
        return self.dropout(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    """One layer of self-attention and FFN: a decoder layer (``causal``) or an encoder layer.
    Pre-norm (GPT-2): x + f(LN(x)). Post-norm (Vaswani): LN(x + f(x)).

    ``family`` names the attention family its maps are recorded under. Its FFN, sub-layer outputs
    and norm statistics go to the main lists of the recording it is given (an encoder-decoder
    gives its encoder layers :meth:`Recording.encoder_recording`)."""

    def __init__(self, config: ModelConfig, layer_idx: int, causal: bool = True,
                 family: str = "self"):
        super().__init__()
        self.pre_norm = config.norm == "pre"
        eps = config.layer_norm_epsilon
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_idx, causal=causal, family=family)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, pe, positions, cache=None, record=None, head_mask=None,
                mean_ablation=False, key_pad=None):
        keep = record is not None and record.spec.sublayers
        if self.pre_norm:
            a = self.attn(_normed(self.ln_1, x, record), pe, positions, cache, record,
                          head_mask, mean_ablation, key_pad)
            x = x + a
            m = self.mlp(_normed(self.ln_2, x, record), record)
            x = x + m
        else:
            a = self.attn(x, pe, positions, cache, record, head_mask, mean_ablation, key_pad)
            x = _normed(self.ln_1, x + a, record)
            m = self.mlp(x, record)
            x = _normed(self.ln_2, x + m, record)
        if keep:
            record.keep("attn_out", record.attn_out, a)
            record.keep("mlp_out", record.mlp_out, m)
        return x


class GPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.pe = make_positional(config)
        self.drop = nn.Dropout(config.dropout)
        if config.kind not in ("decoder", "encoder"):
            raise ValueError(f"GPT builds decoders and encoders, not kind={config.kind!r} "
                             "(see model.encoder_decoder.build_model)")
        causal = config.kind == "decoder"
        self.h = nn.ModuleList([Block(config, i, causal) for i in range(config.n_layer)])
        # post-norm blocks already end in a layer norm; pre-norm needs one before the unembedding
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias) \
            if config.norm == "pre" else nn.Identity()
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight  # Press & Wolf 2017
        self.head_mask: torch.Tensor | None = None  # (L, nh) of 0/1, None = all heads on
        self.head_ablation = "zero"  # what an off head outputs: "zero" or "mean" (see below)
        self._recording: Recording | None = None
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by 1/√(2L)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    def new_cache(self, batch_size: int = 1) -> KVCache:
        return KVCache(self.config, batch_size, device=self.device, dtype=self.wte.weight.dtype)

    def set_head_mask(self, mask: torch.Tensor | None, mode: str = "zero") -> None:
        """(n_layer, n_head) with 1 = on and 0 = off; None switches every head back on.

        ``mode`` says what an off head outputs: "zero", or "mean": its mean output over the
        positions of the pass (so a mean-ablated model needs the whole context in one pass, not
        cached steps). A (B, n_layer, n_head) mask gives each batch row its own heads (one
        batched pass for many ablations, :func:`model.ablation.head_effects`)."""
        if mode not in ("zero", "mean"):
            raise ValueError(f"head ablation mode {mode!r} must be 'zero' or 'mean'")
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.float32, device=self.device)
            expected = (self.config.n_layer, self.config.n_head)
            if tuple(mask.shape[-2:]) != expected or mask.dim() not in (2, 3):
                raise ValueError(f"head mask has shape {tuple(mask.shape)}, expected {expected}")
        self.head_mask = mask
        self.head_ablation = mode

    def set_ablation(self, ablation: Ablation) -> None:
        """Run with the heads of ``ablation`` switched off (the empty one removes the mask)."""
        if not ablation:
            self.set_head_mask(None)
            return
        self.set_head_mask(torch.from_numpy(ablation.mask(self.config)), ablation.mode)

    @property
    def ablation(self) -> Ablation:
        """The ablation the model runs with now (read back from a 2-D head mask)."""
        m = self.head_mask
        if m is None or m.dim() != 2:
            return NO_ABLATION
        off = (m == 0).nonzero().tolist()
        return Ablation(frozenset((int(a), int(b)) for a, b in off), self.head_ablation)

    @property
    def mean_ablated(self) -> bool:
        """Some head is replaced by its mean over the context: no cached steps."""
        return self.head_mask is not None and self.head_ablation == "mean"

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None, all_logits: bool = False,
                record: Recording | None = None):
        record = record if record is not None else self._recording
        B, T = idx.shape  # (B, T)
        encoder = self.config.kind == "encoder"
        if encoder and cache is not None:
            raise ValueError("an encoder sees its whole input at once; it has no KV cache")
        past = cache.length if cache is not None else 0
        if past and self.mean_ablated:
            raise ValueError("mean ablation averages a head over the whole context: run the "
                             "context in one pass, not one token through the KV cache")
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of length {past + T} is longer than the block size "
                             f"{self.config.block_size}")
        key_pad = None  # (B, T): an encoder never attends to padding
        if encoder and self.config.pad_id >= 0:
            pad = idx == self.config.pad_id
            key_pad = pad if bool(pad.any()) else None
        if record is not None:
            record.query_offset = past
            record.causal = not encoder
            record.key_padding = key_pad
            record.norm_inputs.clear()  # left over only by a pass that failed
        positions = torch.arange(past, past + T, device=idx.device)  # (T,)
        tok = self.wte(idx)  # (B, T, C)
        pos = self.pe.embed(positions)  # (T, C) or None
        x = tok if pos is None else tok + pos
        x = self.drop(x)
        lens = record is not None and record.spec.logit_lens
        keep_resid = record is not None and (record.spec.residual or lens)
        if record is not None and record.spec.embeddings:
            record.tok_emb = tok.detach()
            record.pos_emb = None if pos is None else pos.detach()
        if keep_resid:
            record.keep("residual", record.resid, x)
        for i, block in enumerate(self.h):
            hm = None if self.head_mask is None else self.head_mask[..., i, :]  # (nh,) | (B, nh)
            x = block(x, self.pe, positions, cache, record, hm, self.head_ablation == "mean",
                      key_pad)
            if keep_resid:
                record.keep("residual", record.resid, x)
        if cache is not None:
            cache.advance(T)
        x = _normed(self.ln_f, x, record) if self.config.norm == "pre" else x  # post: none
        if record is not None and record.norm_inputs:
            record.norm_stats += _mean_std(torch.stack(record.norm_inputs))
            record.norm_inputs.clear()
        if targets is not None:
            logits = self.lm_head(x)  # (B, T, V)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        elif record is not None and record.defer_lens and record.logits_from_lens \
                and not all_logits:
            logits = loss = None  # the caller's lens computes them (model.lens.lens_topk)
        else:
            logits = self.lm_head(x if all_logits else x[:, [-1], :])  # (B, T|1, V)
            loss = None
        if lens and not record.defer_lens:
            # the last residual through ln_f + lm_head is the model's own output. Only this
            # pass's L+1 residuals (a recording may span several passes), and no autograd graph:
            # recorded tensors are plain and detached.
            with torch.no_grad():
                resid = record.resid[-(len(self.h) + 1):]
                # one batched pass over the stacked (L+1, B, T, C) residuals, not L+1 small ones
                record.logit_lens = self.lm_head(self.ln_f(torch.stack(resid)))
        return logits, loss
