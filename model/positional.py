"""Positional encodings behind one interface, plus the views the GUI plots.

Kinds: ``learned`` (GPT-2: a trained table), ``sinusoidal`` (Vaswani et al. 2017, section 3.5),
``rotary`` (Su et al. 2021, RoFormer: rotates query/key pairs by position-dependent angles) and
``none`` (NoPE: the causal mask is the only source of order).

Each encoding offers ``embed(positions)`` (added to the token embedding, or ``None``) and
``rotate(q, k, positions)`` (applied inside attention; identity except for rotary).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from .config import ModelConfig
from .positional_view import DESCRIPTIONS, PositionalView


def sinusoidal_table(n_positions: int, dim: int) -> torch.Tensor:
    """The fixed sinusoidal table of "Attention Is All You Need" (equation in section 3.5)."""
    pos = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    i = torch.arange(0, dim, 2, dtype=torch.float64)  # (D/2,)
    div = torch.exp(-math.log(10000.0) * i / dim)  # 1 / 10000^(2i/d)
    pe = torch.zeros(n_positions, dim, dtype=torch.float64)  # (P, D)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.float()


def rotary_frequencies(head_size: int, base: float) -> torch.Tensor:
    """θ_i = base^(-2i/d) for each of the head_size/2 rotated pairs."""
    i = torch.arange(0, head_size, 2, dtype=torch.float64)
    return (base ** (-i / head_size)).float()  # (hs/2,)


def cosine_similarity_matrix(m: np.ndarray) -> np.ndarray:
    """(P, D) -> (P, P) cosine similarity between rows (rows of zeros give 0)."""
    m = np.asarray(m, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    unit = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    return (unit @ unit.T).astype(np.float32)


class PositionalEncoding(nn.Module):
    """Common interface. Subclasses override what applies to them."""

    kind = "none"
    additive = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    def embed(self, positions: torch.Tensor) -> torch.Tensor | None:  # (T,) -> (T, C) or None
        return None

    def rotate(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
        return q, k

    # -- views for plotting ------------------------------------------------------------------
    @torch.no_grad()
    def matrix(self, n_positions: int | None = None) -> np.ndarray:
        """Position × dimension matrix (P, D). For rotary: angles (P, head_size/2)."""
        n = n_positions or self.config.block_size
        return np.zeros((n, 0), dtype=np.float32)

    def similarity(self, n_positions: int | None = None) -> np.ndarray:
        """Position-to-position cosine similarity (P, P) of the encoding vectors."""
        n = n_positions or self.config.block_size
        m = self.matrix(n)
        if m.shape[1] == 0:
            return np.zeros((n, n), dtype=np.float32)
        return cosine_similarity_matrix(m)

    def view(self) -> PositionalView:
        """Everything the positional panel shows, for the block size, as numpy copies (the GUI
        thread gets these, never this module or its weights)."""
        m = np.array(self.matrix(), dtype=np.float32, copy=True)
        sim = np.array(self.similarity(), dtype=np.float32, copy=True)
        for a in (m, sim):  # shared by every panel that shows them
            a.setflags(write=False)
        return PositionalView(kind=self.kind, matrix=m, similarity=sim, formula=self.formula,
                              explanation=self.explanation)

    @property
    def formula(self) -> str:
        return DESCRIPTIONS[self.kind][0]

    @property
    def explanation(self) -> str:
        return DESCRIPTIONS[self.kind][1]


class NoPositionalEncoding(PositionalEncoding):
    kind = "none"


class LearnedPositionalEncoding(PositionalEncoding):
    """GPT-2 style: a trained (block_size, n_embd) table."""

    kind = "learned"
    additive = True

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)

    def embed(self, positions):
        return self.wpe(positions)  # (T, C)

    @torch.no_grad()
    def matrix(self, n_positions=None):
        n = min(n_positions or self.config.block_size, self.config.block_size)
        return self.wpe.weight[:n].detach().float().cpu().numpy()


class SinusoidalPositionalEncoding(PositionalEncoding):
    """Vaswani et al.: fixed sine/cosine table, not trained."""

    kind = "sinusoidal"
    additive = True

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        # not persistent: it is a pure function of the config, so checkpoints need not carry it
        self.register_buffer("table", sinusoidal_table(config.block_size, config.n_embd),
                             persistent=False)

    def embed(self, positions):
        return self.table[positions]  # (T, C)

    @torch.no_grad()
    def matrix(self, n_positions=None):
        n = n_positions or self.config.block_size
        if n <= self.table.shape[0]:
            return self.table[:n].cpu().numpy()
        return sinusoidal_table(n, self.config.n_embd).numpy()


class RotaryPositionalEncoding(PositionalEncoding):
    """RoFormer: rotate each (even, odd) pair of q and k by pos·θ_i."""

    kind = "rotary"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        inv_freq = rotary_frequencies(config.head_size, config.rope_base)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        angles = torch.outer(torch.arange(config.block_size, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)  # (block, hs/2)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def rotate(self, q, k, positions):
        cos = self.cos[positions].to(q.dtype)  # (T, hs/2)
        sin = self.sin[positions].to(q.dtype)
        return _apply_rotary(q, cos, sin), _apply_rotary(k, cos, sin)

    @torch.no_grad()
    def matrix(self, n_positions=None):
        n = n_positions or self.config.block_size
        pos = torch.arange(n, dtype=torch.float64)
        return torch.outer(pos, self.inv_freq.double().cpu()).float().numpy()  # (P, hs/2) radians

    def similarity(self, n_positions=None):
        # The score between a query at m and a key at n is modulated by cos((m-n)·θ_i) per pair;
        # the mean over pairs is the cosine similarity of the concatenated unit rotation vectors.
        ang = self.matrix(n_positions).astype(np.float64)  # (P, hs/2)
        vec = np.concatenate([np.cos(ang), np.sin(ang)], axis=1)  # (P, hs)
        return cosine_similarity_matrix(vec)


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, nh, T, hs), pairs are (even, odd) dimensions; cos/sin: (T, hs/2)."""
    x1 = x[..., 0::2]  # (B, nh, T, hs/2)
    x2 = x[..., 1::2]
    r1 = x1 * cos - x2 * sin
    r2 = x1 * sin + x2 * cos
    return torch.stack((r1, r2), dim=-1).flatten(-2)  # (B, nh, T, hs)


_KINDS = {
    "learned": LearnedPositionalEncoding,
    "sinusoidal": SinusoidalPositionalEncoding,
    "rotary": RotaryPositionalEncoding,
    "none": NoPositionalEncoding,
}


def make_positional(config: ModelConfig) -> PositionalEncoding:
    return _KINDS[config.pos_kind](config)
