"""Positional encodings: the tables against the papers' formulas, rotary's relative property,
and the plotting views (matrix, similarity, formula, explanation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.capture import capture
from model.config import CAPTURE_ALL, POS_KINDS, ModelConfig
from model.positional import (
    DESCRIPTIONS,
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
    _apply_rotary,
    cosine_similarity_matrix,
    make_positional,
    rotary_frequencies,
    sinusoidal_table,
)
from model.transformer import GPT


def cfg_for(kind: str, **kw) -> ModelConfig:
    base = dict(vocab_size=10, block_size=24, n_layer=1, n_head=2, n_embd=16, pos_kind=kind)
    base.update(kw)
    return ModelConfig(**base)


def paper_sinusoid(n_positions: int, d: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    pe = np.zeros((n_positions, d))
    for pos in range(n_positions):
        for i in range(d // 2):
            angle = pos / (10000 ** (2 * i / d))
            pe[pos, 2 * i] = math.sin(angle)
            pe[pos, 2 * i + 1] = math.cos(angle)
    return pe


def paper_theta(head_size: int, base: float) -> np.ndarray:
    """RoFormer: θ_i = base^(-2(i-1)/d), i = 1..d/2 (0-based here)."""
    return np.array([base ** (-2 * i / head_size) for i in range(head_size // 2)])


# -- sinusoidal ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "d"), [(1, 2), (50, 16), (128, 64), (7, 6)])
def test_sinusoidal_table_matches_paper(n, d):
    table = sinusoidal_table(n, d)
    assert table.shape == (n, d)
    assert table.dtype == torch.float32
    np.testing.assert_allclose(table.numpy(), paper_sinusoid(n, d), atol=1e-6, rtol=0)


def test_sinusoidal_first_row_and_range():
    table = sinusoidal_table(40, 8).numpy()
    np.testing.assert_array_equal(table[0, 0::2], 0.0)  # sin 0
    np.testing.assert_array_equal(table[0, 1::2], 1.0)  # cos 0
    assert np.all(np.abs(table) <= 1.0)


def test_sinusoidal_module_matrix_embed_and_extrapolation():
    pe = SinusoidalPositionalEncoding(cfg_for("sinusoidal"))
    np.testing.assert_allclose(pe.matrix(), paper_sinusoid(24, 16), atol=1e-6)
    np.testing.assert_allclose(pe.matrix(10), paper_sinusoid(10, 16), atol=1e-6)
    # a fixed formula extends past the block size
    np.testing.assert_allclose(pe.matrix(40), paper_sinusoid(40, 16), atol=1e-6)
    pos = torch.tensor([3, 0, 5])
    torch.testing.assert_close(pe.embed(pos), pe.table[pos])
    q, k = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    q2, k2 = pe.rotate(q, k, pos)
    assert q2 is q and k2 is k
    assert pe.additive
    assert not list(pe.parameters())  # nothing to train
    assert "pe.table" not in GPT(cfg_for("sinusoidal")).state_dict()


def test_sinusoidal_table_reaches_the_model():
    model = GPT(cfg_for("sinusoidal")).eval()
    idx = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad(), capture(model, CAPTURE_ALL) as rec:
        model(idx)
    np.testing.assert_allclose(rec.pos_emb.numpy(), paper_sinusoid(5, 16), atol=1e-6)
    torch.testing.assert_close(rec.resid[0], rec.tok_emb + rec.pos_emb)


# -- learned ------------------------------------------------------------------------------------
def test_learned_matrix_is_wpe_weight():
    pe = LearnedPositionalEncoding(cfg_for("learned"))
    w = pe.wpe.weight.detach().numpy()
    np.testing.assert_array_equal(pe.matrix(), w)
    np.testing.assert_array_equal(pe.matrix(5), w[:5])
    pos = torch.arange(4)
    torch.testing.assert_close(pe.embed(pos), pe.wpe.weight[:4])
    assert pe.additive
    assert list(pe.parameters())  # trained


def test_learned_matrix_follows_training_updates():
    model = GPT(cfg_for("learned"))
    with torch.no_grad():
        model.pe.wpe.weight[3].fill_(0.5)
    assert np.all(model.pe.matrix()[3] == 0.5)


# -- rotary -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n_embd", "n_head", "base"), [(16, 2, 10000.0), (24, 2, 500.0),
                                                         (8, 4, 10000.0)])
def test_rotary_angles_are_pos_times_theta(n_embd, n_head, base):
    cfg = cfg_for("rotary", n_embd=n_embd, n_head=n_head, rope_base=base)
    pe = RotaryPositionalEncoding(cfg)
    theta = paper_theta(cfg.head_size, base)
    np.testing.assert_allclose(rotary_frequencies(cfg.head_size, base).numpy(), theta, rtol=1e-6)
    angles = pe.matrix()
    assert angles.shape == (cfg.block_size, cfg.head_size // 2)
    expected = np.outer(np.arange(cfg.block_size), theta)
    np.testing.assert_allclose(angles, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pe.matrix(50), np.outer(np.arange(50), theta), rtol=1e-6, atol=1e-5)
    assert pe.embed(torch.arange(3)) is None
    assert not pe.additive


def test_rotary_rotation_matches_complex_multiplication():
    cfg = cfg_for("rotary", n_embd=16, n_head=2)
    pe = RotaryPositionalEncoding(cfg)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 2, 6, 8, generator=g)
    k = torch.randn(2, 2, 6, 8, generator=g)
    pos = torch.tensor([0, 1, 2, 7, 11, 23])
    rq, rk = pe.rotate(q, k, pos)
    theta = paper_theta(8, cfg.rope_base)
    phase = np.exp(1j * np.outer(pos.numpy(), theta))  # (T, hs/2)
    for x, rx in ((q, rq), (k, rk)):
        xc = x.double().numpy()[..., 0::2] + 1j * x.double().numpy()[..., 1::2]
        out = xc * phase
        expected = np.stack([out.real, out.imag], axis=-1).reshape(x.shape)
        np.testing.assert_allclose(rx.numpy(), expected, atol=1e-5)
    # position 0 is the identity
    torch.testing.assert_close(rq[..., 0, :], q[..., 0, :])


def test_rotary_preserves_norms():
    cfg = cfg_for("rotary", n_embd=32, n_head=2, block_size=64)
    pe = RotaryPositionalEncoding(cfg)
    g = torch.Generator().manual_seed(1)
    q = torch.randn(3, 2, 64, 16, generator=g)
    k = torch.randn(3, 2, 64, 16, generator=g)
    rq, rk = pe.rotate(q, k, torch.arange(64))
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rk.norm(dim=-1), k.norm(dim=-1), rtol=1e-5, atol=1e-5)
    # and each rotated pair keeps its own length
    pair = (q[..., 0::2] ** 2 + q[..., 1::2] ** 2)
    rpair = (rq[..., 0::2] ** 2 + rq[..., 1::2] ** 2)
    torch.testing.assert_close(rpair, pair, rtol=1e-5, atol=1e-5)


def _rotary_scores(pe: RotaryPositionalEncoding, q: torch.Tensor, k: torch.Tensor, n: int):
    """score[m, j] = R(m·θ)q · R(j·θ)k for the same q and k vectors placed at every position."""
    cos, sin = pe.cos[:n].double(), pe.sin[:n].double()
    rq = _apply_rotary(q.double().expand(n, -1), cos, sin)  # (n, hs)
    rk = _apply_rotary(k.double().expand(n, -1), cos, sin)
    return (rq @ rk.T).numpy()  # (n, n)


def test_rotary_score_depends_only_on_relative_distance():
    cfg = cfg_for("rotary", n_embd=16, n_head=2, block_size=32)
    pe = RotaryPositionalEncoding(cfg)
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(8, generator=g), torch.randn(8, generator=g)
    scores = _rotary_scores(pe, q, k, 32)
    for offset in range(-31, 32):
        diag = np.diagonal(scores, offset=offset)
        np.testing.assert_allclose(diag, np.full_like(diag, diag[0]), atol=1e-5,
                                   err_msg=f"q·k varies along distance {offset}")
    # ... and it does depend on the distance (the test above is not vacuous)
    firsts = np.array([np.diagonal(scores, o)[0] for o in range(-31, 32)])
    assert np.ptp(firsts) > 1e-2
    # shifting both positions by the same amount leaves the score unchanged
    assert scores[5, 2] == pytest.approx(scores[20, 17], abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 31), n=st.integers(0, 31), s=st.integers(0, 31), seed=st.integers(0, 99))
def test_rotary_shift_invariance_property(m, n, s, seed):
    cfg = cfg_for("rotary", n_embd=16, n_head=2, block_size=64)
    pe = RotaryPositionalEncoding(cfg)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 1, 1, 8, generator=g, dtype=torch.float64)
    k = torch.randn(1, 1, 1, 8, generator=g, dtype=torch.float64)

    def score(pq, pk):
        cos, sin = pe.cos.double(), pe.sin.double()
        a = _apply_rotary(q, cos[[pq]], sin[[pq]])
        b = _apply_rotary(k, cos[[pk]], sin[[pk]])
        return float((a * b).sum())

    assert score(m, n) == pytest.approx(score(m + s, n + s), abs=1e-4)


# -- none ---------------------------------------------------------------------------------------
def test_none_has_empty_matrix_and_explanation():
    pe = NoPositionalEncoding(cfg_for("none"))
    assert pe.matrix().shape == (24, 0)
    assert pe.matrix(7).shape == (7, 0)
    assert pe.embed(torch.arange(4)) is None
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)
    assert pe.rotate(q, k, torch.arange(4)) == (q, k)
    assert "causal mask" in pe.explanation
    assert "no positional" in pe.explanation.lower()
    sim = pe.similarity(9)
    assert sim.shape == (9, 9)
    assert not sim.any()
    assert not pe.additive


# -- common views -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", POS_KINDS)
def test_make_positional_returns_the_kind(kind):
    pe = make_positional(cfg_for(kind))
    assert pe.kind == kind
    expected = {"learned": LearnedPositionalEncoding, "sinusoidal": SinusoidalPositionalEncoding,
                "rotary": RotaryPositionalEncoding, "none": NoPositionalEncoding}[kind]
    assert type(pe) is expected
    assert type(GPT(cfg_for(kind)).pe) is expected


@pytest.mark.parametrize("kind", [k for k in POS_KINDS if k != "none"])
@pytest.mark.parametrize("n", [None, 1, 10])
def test_similarity_shape_symmetric_unit_diagonal(kind, n):
    pe = make_positional(cfg_for(kind))
    sim = pe.similarity(n)
    p = n or 24
    assert sim.shape == (p, p)
    assert sim.dtype == np.float32
    np.testing.assert_allclose(sim, sim.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    assert np.all(sim <= 1.0 + 1e-5) and np.all(sim >= -1.0 - 1e-5)
    matrix = pe.matrix(n)
    assert matrix.shape[0] == p
    assert matrix.dtype == np.float32


def test_rotary_similarity_is_mean_cosine_of_distance():
    cfg = cfg_for("rotary", n_embd=16, n_head=2)
    pe = RotaryPositionalEncoding(cfg)
    theta = paper_theta(8, cfg.rope_base)
    sim = pe.similarity(20)
    dist = np.subtract.outer(np.arange(20), np.arange(20))
    expected = np.cos(dist[..., None] * theta).mean(-1)
    np.testing.assert_allclose(sim, expected, atol=1e-5)


def test_sinusoidal_similarity_is_shift_invariant():
    # sum_i cos((m-n)ω_i) / (d/2): depends only on m - n, like rotary
    pe = SinusoidalPositionalEncoding(cfg_for("sinusoidal"))
    sim = pe.similarity()
    for offset in range(-23, 24):
        diag = np.diagonal(sim, offset)
        np.testing.assert_allclose(diag, diag[0], atol=1e-5)


@pytest.mark.parametrize("kind", POS_KINDS)
def test_formula_and_explanation_per_kind(kind):
    pe = make_positional(cfg_for(kind))
    assert isinstance(pe.formula, str) and len(pe.formula) > 5
    assert isinstance(pe.explanation, str) and len(pe.explanation) > 40
    assert (pe.formula, pe.explanation) == DESCRIPTIONS[kind]


def test_descriptions_cover_kinds_and_differ():
    assert set(DESCRIPTIONS) == set(POS_KINDS)
    assert len({v[0] for v in DESCRIPTIONS.values()}) == len(POS_KINDS)
    assert len({v[1] for v in DESCRIPTIONS.values()}) == len(POS_KINDS)
    assert "sin" in DESCRIPTIONS["sinusoidal"][0] and "cos" in DESCRIPTIONS["sinusoidal"][0]
    assert "θ" in DESCRIPTIONS["rotary"][0]


def test_cosine_similarity_matrix():
    m = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [-3.0, 0.0]])
    sim = cosine_similarity_matrix(m)
    expected = np.array([[1, 0, 0, -1], [0, 1, 0, 0], [0, 0, 0, 0], [-1, 0, 0, 1]])
    np.testing.assert_allclose(sim, expected, atol=1e-7)
    assert sim.dtype == np.float32
