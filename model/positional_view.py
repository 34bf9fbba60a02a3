"""What the positional panel shows of a model's encoding, as plain numpy data (no torch).

The inference worker computes a :class:`PositionalView` from the loaded model once
(:meth:`model.positional.PositionalEncoding.view`) and hands it to the GUI thread with the rest of
the model's description, so the panel never reads the model itself. The formula and explanation
of every kind live here too: the panel shows them before any model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DESCRIPTIONS = {
    "learned": (
        "PE[pos] = W_pos[pos]  (a trained table, one row per position)",
        "Each position has its own vector, learned by gradient descent like any other weight. "
        "The model can only handle positions it saw during training (up to the block size).",
    ),
    "sinusoidal": (
        "PE(pos, 2i) = sin(pos / 10000^(2i/d)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d))",
        "Each pair of dimensions is a sine/cosine wave of a different wavelength, from 2π up to "
        "10000·2π. Nearby positions get similar vectors, and a fixed offset is a linear map, so "
        "attention can learn relative position.",
    ),
    "rotary": (
        "θ_i = base^(-2i/d_head),  q'_pos = R(pos·θ) q,  k'_pos = R(pos·θ) k",
        "Nothing is added to the embedding: each query and key pair of dimensions is rotated by "
        "an angle proportional to its position, so the score q'·k' depends only on the distance "
        "between the two tokens.",
    ),
    "none": (
        "x = E[token]  (no positional term)",
        "This model has no positional encoding. Order still leaks in through the causal mask: a "
        "token at position t attends over t+1 tokens, so the model can count, but it has no "
        "explicit notion of where a token is.",
    ),
}


@dataclass(frozen=True, eq=False)
class PositionalView:
    """A model's positional encoding for its block size: copies, never views of live weights."""

    kind: str  # learned | sinusoidal | rotary | none
    matrix: np.ndarray  # (P, D) float32 position × dimension; rotary: angles (P, head_size/2)
    similarity: np.ndarray  # (P, P) float32 cosine similarity between positions
    formula: str
    explanation: str
