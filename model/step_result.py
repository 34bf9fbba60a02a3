"""What one stepper state shows (:class:`StepResult`): plain data and read-only numpy views.

The stepper fills it (its arrays view :mod:`model.capture_buffers`); the GUI reads it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .ablation import NO_ABLATION, Ablation
from .config import ModelConfig, SampleConfig
from .sampling import Distribution, next_token


class QKScores:
    """(L, H, T, Tk) scores QKᵀ/√d, computed on demand from the queries and keys the model used
    (after any positional rotation), instead of kept: at 1,024 tokens a GPT-2-small's scores
    are 0.6 GB, its queries and keys 75 MB.

    Indexing with whole numbers and slices (``s[layer, head]``, ``s[layer, head, query]``)
    computes only that part; anything else, ``np.asarray(s)`` and numpy functions compute the
    whole array (a fresh one each time). ``q`` (L, H, T, hs), ``k`` (L, H, Tk, hs): read-only
    arrays that stay unchanged (the steppers' capture buffers), so the scores do too.
    """

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(self, q: np.ndarray, k: np.ndarray):
        self.q, self.k = q, k
        self.scale = np.float32(1.0 / math.sqrt(q.shape[-1]))  # as the model scales them
        self.shape = (*q.shape[:3], k.shape[2])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def _scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        # float16 buffers (a large model's, model.capture_buffers): multiplied in float32, as
        # numpy has no fast float16 product
        q, k = q.astype(np.float32, copy=False), k.astype(np.float32, copy=False)
        out = np.matmul(q, np.swapaxes(k, -1, -2))
        out *= self.scale
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self._scores(self.q, self.k)
        return out if dtype is None else out.astype(dtype, copy=False)

    def copy(self) -> np.ndarray:
        """The whole array, as a new ndarray."""
        return np.asarray(self)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        return np.asarray(self).astype(dtype, copy=False)

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        simple = (int, np.integer, slice)
        if len(index) > 4 or not all(isinstance(i, simple) for i in index):
            return np.asarray(self)[index]
        index = index + (slice(None),) * (4 - len(index))
        drop = []  # axes that a whole number removes (kept as length 1 until the product)
        sel = []
        for axis, i in enumerate(index):
            if isinstance(i, slice):
                sel.append(i)
                continue
            n = self.shape[axis]
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
            i = int(i) % n
            sel.append(slice(i, i + 1))
            drop.append(axis)
        lh = tuple(sel[:2])
        out = self._scores(self.q[lh][:, :, sel[2]], self.k[lh][:, :, sel[3]])
        out = out.reshape([m for a, m in enumerate(out.shape) if a not in drop])
        return out[()] if out.ndim == 0 else out  # one cell: a number, as numpy gives

    def __repr__(self) -> str:
        return f"QKScores(shape={self.shape})"


@dataclass(frozen=True, eq=False)
class StepResult:
    """What the model saw and predicted for the current context window (T tokens).

    Arrays are read-only views; they stay valid and unchanged whatever the stepper does next.
    """

    ids: np.ndarray  # (T,) int64 token ids of the current context window
    tokens: list[str]  # (T,) the text of each token (Tokenizer.token_strs)
    pieces: list[str]  # (T,) what each token's label shows (Tokenizer.token_pieces)
    n_prompt: int  # leading prompt tokens in the window
    cropped: int  # tokens dropped from the front (long prompt or slid window)
    token_probs: np.ndarray  # (T,) float32 probability of each generated token when chosen; NaN for prompt
    token_ranks: np.ndarray  # (T,) int64 rank of each generated token when chosen; -1 for prompt
    chosen: int | None  # id appended by this step (None for set_prompt/back/reset/redistribute)
    chosen_prob: float | None
    chosen_rank: int | None
    forced: bool
    logits: np.ndarray  # (V,) float32 raw logits for the next token
    dist: Distribution  # next-token distribution under `sample`
    planned: int  # the token the next step() would pick
    sample: SampleConfig
    auto_seed: int  # the stepper's own seed: draws use it while sample.seed is None
    attention: np.ndarray | None  # (L, H, T, T) softmax probabilities, exactly 0 above the diagonal
    # (L, H, T, T) QKᵀ/√d before the mask: from a stepper, a QKScores (computed on demand)
    scores: np.ndarray | QKScores | None
    residual: np.ndarray | None  # (L+1, T, C) after the embedding and after each block
    attn_out: np.ndarray | None  # (L, T, C) attention sublayer output before it is added
    mlp_out: np.ndarray | None  # (L, T, C) FFN sublayer output before it is added
    ffn: np.ndarray | None  # (L, T, F) FFN hidden activations after GELU
    tok_emb: np.ndarray | None  # (T, C)
    pos_emb: np.ndarray | None  # (T, C), None if the positional encoding is not additive
    lens_ids: np.ndarray | None  # (L+1, T, k) int64 logit-lens top-k ids
    lens_probs: np.ndarray | None  # (L+1, T, k) float32 logit-lens top-k probabilities
    n_generated: int  # generated tokens in the whole text, not only the window
    # -- additions --------------------------------------------------------------------------
    config: ModelConfig | None = None
    note: str = ""  # e.g. how an empty prompt was started, or that a long prompt was cropped
    token_forced: np.ndarray | None = None  # (T,) bool: generated tokens that were forced
    draw: int = 0  # draw index `planned` used (resample raises it for a position)
    chosen_draw: int | None = None  # draw index used for `chosen` (None when forced or no step)
    # (N, T, 2) mean and standard deviation of what enters each layer norm, the norms in reading
    # order (ln_1, ln_2 of each layer, then the final norm of a pre-norm model)
    norm_stats: np.ndarray | None = None
    # CaptureSpec.qkv: per layer and head the queries, keys and values (after any positional
    # rotation) and the heads' outputs side by side before W_O
    q: np.ndarray | None = None  # (L, H, T, hs)
    k: np.ndarray | None = None  # (L, H, T, hs)
    v: np.ndarray | None = None  # (L, H, T, hs)
    heads: np.ndarray | None = None  # (L, T, C) = (L, T, H·hs), after any ablation
    w_o: np.ndarray | None = None  # (L, C, C) each layer's output projection W_O (out, in)
    ablation: Ablation = NO_ABLATION  # the heads switched off for this result
    # with an ablation: the next-token logits of the same window with every head on (V,)
    intact_logits: np.ndarray | None = None
    # -- an encoder-decoder (model.seq2seq_stepper): the fields above are about the target (the
    # decoder's input: bos and the tokens generated so far); these about the source and the
    # encoder. S source tokens (with the end token), Le encoder layers.
    source_ids: np.ndarray | None = None  # (S,) int64 the encoder's input
    source_tokens: list[str] | None = None  # (S,)
    source_pieces: list[str] | None = None  # (S,)
    encoder_attention: np.ndarray | None = None  # (Le, H, S, S) no causal mask; padding gets 0
    encoder_scores: np.ndarray | None = None  # (Le, H, S, S) QKᵀ/√d before the padding mask
    cross_attention: np.ndarray | None = None  # (L, H, T, S) each row sums to 1 over the source
    cross_scores: np.ndarray | None = None  # (L, H, T, S)
    cross_out: np.ndarray | None = None  # (L, T, C) cross-attention sublayer output
    encoder_residual: np.ndarray | None = None  # (Le+1, S, C)
    encoder_attn_out: np.ndarray | None = None  # (Le, S, C)
    encoder_mlp_out: np.ndarray | None = None  # (Le, S, C)
    encoder_ffn: np.ndarray | None = None  # (Le, S, F)
    encoder_tok_emb: np.ndarray | None = None  # (S, C)
    encoder_pos_emb: np.ndarray | None = None  # (S, C), None if positions are not additive
    encoder_norm_stats: np.ndarray | None = None  # (2·Le [+1 pre-norm's final], S, 2)
    # -- an encoder (BERT-style, model.masked_stepper): ``attention`` is its self-attention
    # (full rows unless ``causal_view``); ``logits`` and ``dist`` are the prediction for the
    # token at ``predicted_at`` (not a next token); ``ids`` is the input with its [MASK]s
    masked_positions: tuple[int, ...] = ()  # window positions that hold [MASK]
    predicted_at: int | None = None  # the position whose predicted distribution `dist` shows
    causal_view: bool = False  # True: the same weights run under a decoder's causal mask
    original_ids: np.ndarray | None = None  # (T,) int64 the ids before masking (what is hidden)

    @property
    def kind(self) -> str:
        """The model's kind: "decoder", "encoder-decoder" or "encoder"."""
        return self.config.kind if self.config is not None else "decoder"

    @property
    def complete(self) -> bool:
        """An encoder-decoder's target that ended with its end token or filled the block size:
        no more steps (a forced token still goes)."""
        cfg = self.config
        if cfg is None or cfg.kind != "encoder-decoder":
            return False
        return (self.T > 1 and int(self.ids[-1]) == cfg.eos_id) or self.T >= cfg.block_size

    @property
    def S(self) -> int:
        """Source tokens (0 without a source)."""
        return 0 if self.source_ids is None else int(self.source_ids.shape[0])

    @property
    def families(self) -> tuple[str, ...]:
        """The attention families this result holds maps of, in reading order: "encoder"
        (an encoder-decoder's encoder), "self" (the decoder's, or an encoder's, own) and
        "cross" (the decoder's attention over the source)."""
        out = []
        if self.encoder_attention is not None:
            out.append("encoder")
        if self.attention is not None:
            out.append("self")
        if self.cross_attention is not None:
            out.append("cross")
        return tuple(out)

    def family_maps(self, family: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(attention, scores) of ``family`` ("self", "encoder" or "cross")."""
        if family == "self":
            return self.attention, self.scores
        if family == "encoder":
            return self.encoder_attention, self.encoder_scores
        if family == "cross":
            return self.cross_attention, self.cross_scores
        raise ValueError(f"unknown attention family {family!r}: self, encoder or cross")

    def family_mask(self, family: str) -> np.ndarray:
        """(rows, columns) bool, True where a query may see a key: the causal mask (a decoder's
        own attention), or every key that is not padding (an encoder, cross-attention)."""
        if family == "self":
            if self.kind == "encoder" and not self.causal_view:
                return np.ones((self.T, self.T), dtype=bool)
            return np.tril(np.ones((self.T, self.T), dtype=bool))
        if self.source_ids is None:
            raise ValueError(f"this result has no source, so no {family} attention")
        pad = self.config.pad_id if self.config is not None else -1
        keep = self.source_ids != pad
        rows = self.S if family == "encoder" else self.T
        return np.broadcast_to(keep, (rows, self.S)).copy()

    def masked_family_scores(self, family: str) -> np.ndarray:
        """(L, H, rows, columns) scores of ``family`` with -inf where its mask hides a key."""
        scores = self.family_maps(family)[1]
        if scores is None:
            raise ValueError(f"{family} scores were not captured (CaptureSpec.scores is off)")
        return np.where(self.family_mask(family), scores, np.float32(-np.inf)).astype(np.float32)

    @property
    def T(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_layer(self) -> int:
        return self.config.n_layer if self.config is not None else 0

    @property
    def n_head(self) -> int:
        return self.config.n_head if self.config is not None else 0

    @property
    def seed(self) -> int:
        """The seed the draws use."""
        return self.sample.seed if self.sample.seed is not None else self.auto_seed

    @property
    def position(self) -> int:
        """Absolute position of the next token in the whole text (tokens before it)."""
        return self.cropped + self.T

    def with_sample(self, sample: SampleConfig) -> StepResult:
        """This result under other sampling settings, from its cached logits (no forward pass):
        the distribution and planned token the stepper gives after ``redistribute(sample)``."""
        nxt = next_token(self.logits, sample, self.auto_seed, self.position, self.draw)
        return dataclasses.replace(self, dist=nxt.dist, sample=sample, planned=nxt.token)

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the next-token distribution."""
        return self.dist.entropy

    @property
    def text(self) -> str:
        """The window's text."""
        return "".join(self.tokens)

    def intact_dist(self) -> Distribution | None:
        """The next-token distribution with every head on, under the same settings and draw
        (None when nothing is ablated)."""
        if self.intact_logits is None:
            return None
        return next_token(self.intact_logits, self.sample, self.auto_seed, self.position,
                          self.draw).dist

    @property
    def is_causal(self) -> bool:
        """Whether `attention` had the causal mask: a decoder's, or an encoder's under
        `causal_view`. An encoder's own self-attention sees every token."""
        return self.kind != "encoder" or self.causal_view

    def masked_scores(self) -> np.ndarray:
        """(L, H, T, T) scores with -inf where the mask hides a key: after its query (causal), or
        nowhere for an encoder's bidirectional self-attention."""
        if self.scores is None:
            raise ValueError("scores were not captured (CaptureSpec.scores is off)")
        if not self.is_causal:
            return np.array(self.scores, dtype=np.float32)
        keep = np.tril(np.ones((self.T, self.T), dtype=bool))
        return np.where(keep, self.scores, np.float32(-np.inf)).astype(np.float32)
