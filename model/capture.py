"""Opt-in recording of a forward pass, without changing the math.

Usage::

    with capture(model, CaptureSpec(attention=True)) as rec:
        logits, _ = model(idx)
    rec.attn_probs[layer]   # (B, n_head, T, T) plain tensors, detached

Attention maps are kept per family (:data:`FAMILIES`): ``self`` is the self-attention of the
stack that makes the output (a GPT's decoder, the decoder of an encoder-decoder, an encoder's
encoder), ``encoder`` the encoder stack of an encoder-decoder and ``cross`` its decoder's
attention over the source.

As in TransformerLens' ``run_with_cache``, the context manager always detaches the recording
again, so with nothing attached the model runs its fast path (SDPA) untouched.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .config import CAPTURE_ALL, CaptureSpec

FAMILIES = ("self", "encoder", "cross")


@dataclass
class Recording:
    """Plain tensors recorded during one forward pass. Lists are indexed by layer."""

    spec: CaptureSpec = CAPTURE_ALL
    query_offset: int = 0  # position of the first query (length of the KV cache before the pass)
    tok_emb: torch.Tensor | None = None  # (B, T, C)
    pos_emb: torch.Tensor | None = None  # (T, C), None when the encoding is not additive
    resid: list[torch.Tensor] = field(default_factory=list)  # L+1 × (B, T, C)
    attn_scores: list[torch.Tensor] = field(default_factory=list)  # L × (B, nh, T, Tk) QKᵀ/√d
    attn_probs: list[torch.Tensor] = field(default_factory=list)  # L × (B, nh, T, Tk)
    attn_out: list[torch.Tensor] = field(default_factory=list)  # L × (B, T, C) after c_proj
    ffn_hidden: list[torch.Tensor] = field(default_factory=list)  # L × (B, T, F) after GELU
    mlp_out: list[torch.Tensor] = field(default_factory=list)  # L × (B, T, C)
    # every layer norm in reading order (ln_1, ln_2 of each layer, then ln_f when there is one):
    # the mean and standard deviation over C of its input, N × (B, T, 2)
    norm_stats: list[torch.Tensor] = field(default_factory=list)
    # what entered the norms of a short pass so far; the pass turns them into norm_stats
    norm_inputs: list[torch.Tensor] = field(default_factory=list)
    logit_lens: torch.Tensor | None = None  # (L+1, B, T, V) each residual through ln_f + lm_head
    # encoder-decoder: the encoder's self-attention, L_enc × (B, nh, S, S), and the decoder's
    # attention over the source, L × (B, nh, T, S)
    enc_attn_scores: list[torch.Tensor] = field(default_factory=list)
    enc_attn_probs: list[torch.Tensor] = field(default_factory=list)
    cross_attn_scores: list[torch.Tensor] = field(default_factory=list)
    cross_attn_probs: list[torch.Tensor] = field(default_factory=list)
    # encoder-decoder: each decoder layer's cross-attention sublayer output before it is added,
    # L × (B, T, C) (CaptureSpec.sublayers)
    cross_out: list[torch.Tensor] = field(default_factory=list)
    # encoder-decoder: the encoder stack's own values (embeddings, residual stream, sublayer
    # outputs, FFN activations, norm statistics) in a recording of their own, made by
    # :meth:`encoder_recording`; the encoder's attention maps stay in this one's "encoder" family
    encoder: Recording | None = None
    causal: bool = True  # whether the "self" family has the causal mask (False: an encoder)
    key_padding: torch.Tensor | None = None  # (B, S) True where the source is padding
    # the "self" family's scores are not recorded (nor computed unless the probabilities are):
    # its queries and keys are, in ``q`` and ``k`` (as with CaptureSpec.qkv), for a caller that
    # computes QKᵀ/√d from them on demand (the steppers' results, model.step_result.QKScores)
    qk_scores: bool = False
    # the caller computes the lens's top-k from ``resid`` itself (model.lens, in chunks): the
    # forward pass then leaves ``logit_lens`` None instead of making the whole (L+1, B, T, V)
    defer_lens: bool = False
    # with ``defer_lens``: the caller also takes the next-token logits from the lens (its last
    # row is the last position's final residual through ln_f + lm_head), so the pass skips its
    # own unembedding and returns None for the logits (no targets only)
    logits_from_lens: bool = False
    # CaptureSpec.qkv (q and k also with qk_scores): L × (B, nh, T, hs) queries, keys and
    # values of this pass's positions
    # (after the positional rotation), and L × (B, T, C) the heads' outputs side by side, after
    # any ablation, before the output projection W_O
    q: list[torch.Tensor] = field(default_factory=list)
    k: list[torch.Tensor] = field(default_factory=list)
    v: list[torch.Tensor] = field(default_factory=list)
    heads: list[torch.Tensor] = field(default_factory=list)
    # optional preallocated destinations, name ("attention" or "scores") -> (L, B, nh, T, Tk):
    # a layer whose shapes match computes straight into its slice, which saves a copy for a
    # caller that keeps them (the stepper's buffers); what is recorded is the same either way.
    # For the per-layer values ("residual", "attn_out", "mlp_out", "ffn", "q", "k", "v",
    # "heads") a destination (L or L+1, *shape of one layer's value) gets each layer's value
    # copied in as it is recorded (see :meth:`keep`), so the pass never holds them twice
    out: dict[str, torch.Tensor] = field(default_factory=dict)

    def keep(self, name: str, values: list[torch.Tensor], t: torch.Tensor) -> None:
        """Record ``t`` (detached) as the next layer's entry of ``values``, the list of
        ``name``. With a destination for ``name`` in :attr:`out` whose next layer slice has the
        shape and device of ``t`` (and a floating dtype, which may differ: float16 buffers),
        ``t`` is copied there (converted) and the list holds that slice."""
        dst = self.out.get(name)
        i = len(values)
        if dst is not None and i < dst.shape[0] and not t.requires_grad:
            d = dst[i]
            if d.shape == t.shape and d.device == t.device and (
                    d.dtype == t.dtype or (d.is_floating_point() and t.is_floating_point())):
                d.copy_(t)
                values.append(d)
                return
        values.append(t.detach())

    def sink(self, name: str, layer: int, shape: torch.Size, like: torch.Tensor
             ) -> torch.Tensor | None:
        """The destination for ``name`` at ``layer`` if one of exactly ``shape`` was given, with
        the dtype and device of ``like`` and no autograd graph to join (else None)."""
        t = self.out.get(name)
        if (t is None or layer >= t.shape[0] or t[layer].shape != shape or t.dtype != like.dtype
                or t.device != like.device or like.requires_grad):
            return None
        return t[layer]

    def half_sink(self, name: str, layer: int, shape: torch.Size, like: torch.Tensor
                  ) -> torch.Tensor | None:
        """Like :meth:`sink`, for a destination of another floating dtype than ``like``
        (float16 buffers): the caller computes in ``like``'s dtype and copies there."""
        t = self.out.get(name)
        if (t is None or layer >= t.shape[0] or t[layer].shape != shape or t.dtype == like.dtype
                or not t.is_floating_point() or t.device != like.device or like.requires_grad):
            return None
        return t[layer]

    def encoder_recording(self) -> Recording:
        """A fresh recording for an encoder stack's values, kept as ``encoder``: its main lists
        (``resid``, ``attn_out``, ``ffn_hidden``, …) are the encoder's; its "encoder" family
        lists are this recording's own, so the maps land here."""
        self.encoder = Recording(spec=self.spec, causal=False, key_padding=self.key_padding,
                                 enc_attn_scores=self.enc_attn_scores,
                                 enc_attn_probs=self.enc_attn_probs)
        return self.encoder

    @property
    def wants_attention(self) -> bool:
        return self.spec.attention or self.spec.scores

    def family_lists(self, family: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(scores, probabilities) lists of an attention family."""
        if family == "self":
            return self.attn_scores, self.attn_probs
        if family == "encoder":
            return self.enc_attn_scores, self.enc_attn_probs
        if family == "cross":
            return self.cross_attn_scores, self.cross_attn_probs
        raise ValueError(f"unknown attention family {family!r}: one of {', '.join(FAMILIES)}")

    def masked_scores(self, layer: int, family: str = "self") -> torch.Tensor:
        """Scores with the family's mask applied: -inf where a key lies after its query (causal
        self-attention) or is padding (an encoder, cross-attention)."""
        s = self.family_lists(family)[0][layer]
        if family == "self" and self.causal:
            t, tk = s.shape[-2], s.shape[-1]
            return s.masked_fill(~causal_mask(t, tk, self.query_offset, s.device),
                                 float("-inf"))
        if self.key_padding is None:
            return s
        return s.masked_fill(self.key_padding[:, None, None, :].to(s.device), float("-inf"))

    def stacked_probs(self) -> torch.Tensor:
        """(L, B, nh, T, Tk)"""
        return torch.stack(self.attn_probs)


def causal_mask(t: int, tk: int, offset: int, device=None) -> torch.Tensor:
    """(t, tk) boolean, True where query (offset + i) may attend to key j, i.e. j <= offset + i."""
    q = torch.arange(offset, offset + t, device=device).unsqueeze(1)
    k = torch.arange(tk, device=device).unsqueeze(0)
    return k <= q


_ADDITIVE_MASKS: dict = {}


def additive_causal_mask(t: int, tk: int, offset: int, device=None,
                         dtype=torch.float32) -> torch.Tensor:
    """(t, tk) with 0 where query (offset + i) may attend to key j and -inf where it may not.

    ``scores + additive_causal_mask(...)`` equals ``scores.masked_fill(~causal_mask(...), -inf)``
    exactly for finite scores (x + 0 == x), and is several times faster on a CPU. Cached: every
    layer of a forward pass uses the same mask. Do not write into the returned tensor."""
    key = (t, tk, offset, str(device), dtype)
    m = _ADDITIVE_MASKS.get(key)
    if m is None:
        if len(_ADDITIVE_MASKS) >= 8:  # a few shapes at a time (a (1024, 1024) mask is 4 MB)
            _ADDITIVE_MASKS.clear()
        with torch.inference_mode(False):  # a normal tensor: usable with and without autograd
            m = torch.zeros((t, tk), device=device, dtype=dtype)
            m.masked_fill_(~causal_mask(t, tk, offset, device), float("-inf"))
        _ADDITIVE_MASKS[key] = m
    return m


def additive_padding_mask(key_pad: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, 1, 1, Tk) with 0 for a key that may be seen and -inf for padding (``key_pad`` True)."""
    m = torch.zeros(key_pad.shape, device=key_pad.device, dtype=dtype)
    return m.masked_fill_(key_pad, float("-inf"))[:, None, None, :]


@contextmanager
def capture(model: torch.nn.Module, spec: CaptureSpec = CAPTURE_ALL) -> Iterator[Recording]:
    """Record what ``spec`` asks for during forward passes inside the block."""
    rec = Recording(spec=spec)
    previous = getattr(model, "_recording", None)
    model._recording = rec  # type: ignore[attr-defined]
    try:
        yield rec
    finally:
        model._recording = previous  # type: ignore[attr-defined]
