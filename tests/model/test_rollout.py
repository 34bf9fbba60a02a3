"""Attention rollout (Abnar & Zuidema 2020) against a plain loop written from the paper."""
from __future__ import annotations

import numpy as np
import pytest

from model.rollout import rollout, rollout_row


def reference(att: np.ndarray) -> np.ndarray:
    """Element by element: Â_l = normalise(mean_h A_l + I); R = Â_L ⋯ Â_1."""
    L, H, T, _ = att.shape
    att = att.astype(np.float64).tolist()  # Python floats: every sum in double precision
    r = [[1.0 if i == j else 0.0 for j in range(T)] for i in range(T)]
    for layer in range(L):
        a = [[sum(att[layer][h][i][j] for h in range(H)) / H + (1.0 if i == j else 0.0)
              for j in range(T)] for i in range(T)]
        a = [[v / sum(row) for v in row] for row in a]
        r = [[sum(a[i][k] * r[k][j] for k in range(T)) for j in range(T)] for i in range(T)]
    return np.array(r)


def causal_softmax(rng, L, H, T) -> np.ndarray:
    x = rng.normal(size=(L, H, T, T)) * 2
    x = np.where(np.tril(np.ones((T, T), bool)), x, -np.inf)
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 4, 7), (2, 2, 1)])
def test_rollout_equals_the_reference(shape):
    att = causal_softmax(np.random.default_rng(sum(shape)), *shape)
    got = rollout(att)
    np.testing.assert_allclose(got, reference(att), atol=1e-10)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-12)
    assert np.all(np.triu(got, 1) == 0)  # causal: nothing flows back from later tokens
    for t in range(shape[2]):
        np.testing.assert_allclose(rollout_row(att, t), got[t, :t + 1], atol=1e-12)


def test_rollout_rejects_bad_input():
    with pytest.raises(ValueError, match="layers, heads"):
        rollout(np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="outside the context"):
        rollout_row(causal_softmax(np.random.default_rng(0), 1, 1, 3), 3)


def test_bidirectional_rows_take_every_token():
    """An encoder's attention (no causal mask): the row of token t draws on the later tokens
    too, and equals the full rollout's row."""
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 6, 6))
    a /= a.sum(-1, keepdims=True)
    row = rollout_row(a, 2, causal=False)
    assert row.shape == (6,) and row[3:].sum() > 0.1
    np.testing.assert_allclose(row, rollout(a)[2])
    np.testing.assert_allclose(row.sum(), 1.0)
