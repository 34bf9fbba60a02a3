"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

How much of each earlier token flows into a token through all layers, if attention were the only
path: per layer, average the heads, add the identity for the residual connection and renormalise
each row; then multiply the layers' matrices from the first to the last. Plain numpy: it reads
the attention a :class:`~model.step_result.StepResult` holds.
"""
from __future__ import annotations

import numpy as np


def rollout(attention: np.ndarray) -> np.ndarray:
    """(T, T) rollout from (L, H, T, T) softmax weights: row i says how much of each token
    j ≤ i reaches token i after the last layer. Every row sums to 1."""
    a = np.asarray(attention)  # one layer at a time in float64: a GPT-2's 12 × 12 × 1024² in
    # float64 at once would be 1.2 GB
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attention must be (layers, heads, T, T), got shape {a.shape}")
    t = a.shape[-1]
    flow = np.eye(t)
    for layer in a:
        m = layer.mean(axis=0, dtype=np.float64) + np.eye(t)
        m /= m.sum(axis=-1, keepdims=True)
        flow = m @ flow  # this layer mixes what the layers below already mixed
    return flow


def rollout_row(attention: np.ndarray, token: int, causal: bool = True) -> np.ndarray:
    """(token + 1,) how much of each token 0..token flows into ``token`` through all layers;
    ``causal=False`` (an encoder's bidirectional attention): (T,), from every token."""
    t = np.asarray(attention).shape[-1]
    if not 0 <= token < t:
        raise ValueError(f"token {token} is outside the context of {t} tokens")
    if not causal:
        return rollout(np.asarray(attention))[token]
    # only the first token + 1 rows and columns matter under causal attention
    return rollout(np.asarray(attention)[..., :token + 1, :token + 1])[token]


__all__ = ["rollout", "rollout_row"]
