"""The encoder's masked stepper: bidirectional attention, the causal comparison, predictions that
equal a direct forward pass with [MASK] in place, and clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.ablation import Ablation
from model.capture import capture
from model.checkpoints import load_checkpoint
from model.config import CAPTURE_ALL, CaptureSpec, ModelConfig, SampleConfig
from model.masked_stepper import EMPTY_TEXT_NOTE, MaskedStepper
from model.tokenizer import MASK_CHAR, PAD_CHAR, CharTokenizer
from model.transformer import GPT

ENCODER = Path(__file__).resolve().parents[2] / "model" / "assets" / "models" / \
    "sonnets_encoder.safetensors"
TEXT = "Shall I compare thee to a summer's day?"


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(ENCODER)


@pytest.fixture
def stepper(shipped):
    s = MaskedStepper(shipped.model, shipped.tokenizer, SampleConfig(temperature=1.0, seed=0))
    s.set_prompt(TEXT)
    return s


def _direct(model: GPT, ids: list[int], causal: bool = False) -> np.ndarray:
    """(T, V) softmax of a plain forward pass (the fast SDPA path, nothing recorded)."""
    before = [b.attn.causal for b in model.h]
    try:
        for b in model.h:
            b.attn.causal = causal
        with torch.no_grad():
            logits, _ = model.eval()(torch.tensor([ids]), all_logits=True)
    finally:
        for b, c in zip(model.h, before, strict=True):
            b.attn.causal = c
    return torch.softmax(logits[0].double(), dim=-1).numpy()


def test_encoder_rows_are_full_distributions(stepper):
    r = stepper.result
    a = r.attention
    assert a.shape == (3, 4, len(TEXT), len(TEXT))
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
    upper = np.triu(np.ones((r.T, r.T), dtype=bool), k=1)
    assert (a[..., upper] > 0).mean() > 0.99  # every query looks at later tokens too
    assert not r.causal_view and not r.is_causal
    assert np.array_equal(r.masked_scores(), r.scores)  # nothing is masked


def test_causal_view_empties_the_upper_triangle(stepper):
    full = stepper.result
    r = stepper.set_causal_view(True)
    assert r.causal_view and r.is_causal
    upper = np.triu(np.ones((r.T, r.T), dtype=bool), k=1)
    assert np.all(r.attention[..., upper] == 0.0)
    np.testing.assert_allclose(r.attention.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.isneginf(r.masked_scores()[..., upper]))
    assert not np.allclose(r.attention, full.attention)  # the earlier result is untouched
    assert (full.attention[..., upper] > 0).mean() > 0.99
    # the same weights under the mask: equal to a direct causal pass
    np.testing.assert_allclose(r.dist.full_probs, _direct(stepper.model, list(r.ids),
                                                          causal=True)[r.predicted_at],
                               atol=1e-5)
    back = stepper.set_causal_view(False)
    np.testing.assert_allclose(back.attention, full.attention, atol=1e-6)
    assert all(not b.attn.causal for b in stepper.model.h)  # the model is left as it was


def test_masked_prediction_equals_a_direct_forward(stepper, shipped):
    tok = shipped.tokenizer
    p = TEXT.index("mmer") + 1  # "su█mer"
    r = stepper.toggle_mask(p)
    assert r.masked_positions == (p,) and r.predicted_at == p
    assert r.ids[p] == shipped.config.mask_id and r.pieces[p] == MASK_CHAR
    assert r.original_ids[p] == tok.encode("m")[0]
    ids = tok.encode(TEXT)
    ids[p] = shipped.config.mask_id
    direct = _direct(shipped.model, ids)
    np.testing.assert_allclose(r.dist.full_probs, direct[p], atol=1e-5)
    assert int(r.dist.order[0]) == int(direct[p].argmax())
    # another position: the kept logits, no forward pass, still equal to the direct pass
    q = TEXT.index("compare") + 3  # "com_are"
    r2 = stepper.select(q)
    assert r2.predicted_at == q and r2.masked_positions == (p,)
    np.testing.assert_allclose(r2.dist.full_probs, direct[q], atol=1e-5)


def test_masking_twice_restores(stepper):
    before = stepper.result
    p = 5
    masked = stepper.toggle_mask(p)
    assert masked.masked_positions == (p,)
    restored = stepper.toggle_mask(p)
    assert restored.masked_positions == ()
    assert np.array_equal(restored.ids, before.ids)
    np.testing.assert_allclose(restored.attention, before.attention, atol=1e-6)


def test_typed_mask_counts_and_cannot_be_restored(shipped):
    s = MaskedStepper(shipped.model, shipped.tokenizer)
    r = s.set_prompt("Shall I com[MASK]are thee")
    p = len("Shall I com")
    assert r.masked_positions == (p,) and r.predicted_at == p
    assert r.T == len("Shall I com_are thee")
    with pytest.raises(ValueError, match="no original to restore"):
        s.toggle_mask(p)
    assert s.result.masked_positions == (p,)  # unchanged


@pytest.mark.parametrize("bad", [-1, len(TEXT), 1000])
def test_positions_out_of_range_are_refused(stepper, bad):
    with pytest.raises(ValueError, match=rf"position {bad} is outside the text: it has "
                                         rf"{len(TEXT)} tokens"):
        stepper.toggle_mask(bad)
    with pytest.raises(ValueError, match="outside the text"):
        stepper.select(bad)
    with pytest.raises(ValueError, match="not a whole number"):
        stepper.select(1.5)
    assert stepper.result.masked_positions == ()


def test_temperature_reranks_the_shown_prediction(stepper):
    r = stepper.toggle_mask(3)
    hot = stepper.redistribute(SampleConfig(temperature=2.0, seed=0))
    assert np.array_equal(hot.logits, r.logits)
    assert hot.dist.entropy > r.dist.entropy
    # the GUI's re-ranking from the cached logits gives the same distribution
    np.testing.assert_allclose(r.with_sample(hot.sample).dist.probs, hot.dist.probs)
    assert r.with_sample(hot.sample).planned == hot.planned


def test_ablation_keeps_the_intact_prediction(stepper):
    r0 = stepper.toggle_mask(3)
    r = stepper.set_ablation(Ablation(frozenset({(0, 0), (1, 2)})))
    assert r.ablation and r.intact_logits is not None
    np.testing.assert_allclose(r.intact_logits, r0.logits, atol=1e-5)
    assert not np.allclose(r.logits, r0.logits)
    assert np.all(r.attention.sum(-1) > 0.99)
    r1 = stepper.set_ablation(Ablation(frozenset()))
    assert r1.intact_logits is None
    np.testing.assert_allclose(r1.logits, r0.logits, atol=1e-5)


def test_capture_follows_the_spec(stepper):
    r = stepper.set_capture(CaptureSpec.nothing())
    assert r.attention is None and r.residual is None
    r = stepper.set_capture(CAPTURE_ALL)
    L, T = stepper.config.n_layer, r.T
    assert r.residual.shape == (L + 1, T, stepper.config.n_embd)
    assert r.lens_ids.shape == (L + 1, T, 5) and r.q.shape[:3] == (L, 4, T)
    assert r.w_o.shape == (L, stepper.config.n_embd, stepper.config.n_embd)


def test_long_and_empty_texts(shipped):
    s = MaskedStepper(shipped.model, shipped.tokenizer)
    block = shipped.config.block_size
    r = s.set_prompt("a" * (block + 7))
    assert r.T == block and r.cropped == 7 and "cropped" in r.note
    r = s.set_prompt("")
    assert r.T == 1 and r.masked_positions == (0,) and r.note == EMPTY_TEXT_NOTE


def test_refuses_decoders_and_mismatched_tokenizers(shipped):
    tok = CharTokenizer(list("ab") + [MASK_CHAR, PAD_CHAR])
    decoder = GPT(ModelConfig(vocab_size=4, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="explores encoder models"):
        MaskedStepper(decoder, tok)
    with pytest.raises(ValueError, match="do not belong together"):
        MaskedStepper(shipped.model, tok)


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("causal", [False, True])
def test_head_ranking_equals_single_head_ablations(stepper, shipped, mode, causal):
    p = TEXT.index("mmer") + 1
    stepper.set_causal_view(causal)
    r = stepper.toggle_mask(p)
    eff = stepper.rank_heads(mode)
    m_id = shipped.tokenizer.encode("m")[0]
    assert eff.token == m_id and eff.mode == mode
    np.testing.assert_allclose(eff.base_logprob, np.log(_softmax(r.logits)[m_id]), atol=1e-5)
    for layer, head in [(0, 0), (1, 3), (2, 1)]:
        rr = stepper.set_ablation(Ablation(frozenset({(layer, head)}), mode))
        lp = np.log(_softmax(rr.logits)[m_id])
        np.testing.assert_allclose(eff.delta[layer, head], lp - eff.base_logprob, atol=1e-4)
    stepper.set_ablation(Ablation(frozenset()))
    assert stepper.model.head_mask is None  # the model's own mask is back
    with pytest.raises(ValueError, match="ablation mode"):
        stepper.rank_heads("half")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max())
    return e / e.sum()


@pytest.mark.parametrize("causal", [False, True])
def test_scores_equal_a_recorded_pass(stepper, shipped, causal):
    """The encoder's scores (computed on demand from its queries and keys) equal the QKᵀ/√d a
    recorded pass of the same input keeps, bidirectional and under the causal view."""
    r = stepper.set_causal_view(True) if causal else stepper.result
    model = shipped.model
    before = [b.attn.causal for b in model.h]
    try:
        for b in model.h:
            b.attn.causal = causal
        with torch.no_grad(), capture(model, CAPTURE_ALL) as rec:
            model.eval()(torch.tensor([[int(i) for i in r.ids]]))
    finally:
        for b, c in zip(model.h, before, strict=True):
            b.attn.causal = c
    want = torch.stack(rec.attn_scores)[:, 0].numpy()
    assert r.scores.shape == want.shape
    np.testing.assert_allclose(np.asarray(r.scores), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.scores[2, 3], want[2, 3], rtol=1e-5, atol=1e-5)
