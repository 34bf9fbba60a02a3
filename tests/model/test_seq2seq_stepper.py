"""Stepping an encoder-decoder (model.seq2seq_stepper): the source encoded once, the target one
token at a time through the decoder's KV cache, and every attention family recorded by the
model's own capture path — checked against a full recompute, against maps recomputed by hand
from the recorded inputs, and against the SDPA fast path."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.ablation import Ablation
from model.anatomy import describe
from model.capture import capture
from model.config import CAPTURE_ALL, CAPTURE_NOTHING, CaptureSpec, SampleConfig
from model.encoder_decoder import build_model
from model.loading import open_model
from model.seq2seq_stepper import FINISHED_NOTE, Seq2SeqStepper
from model.shipped import resolve_checkpoint

GREEDY = SampleConfig(temperature=0.0)


@pytest.fixture(scope="module")
def shipped():
    return open_model(resolve_checkpoint("numbers_to_words"))


def random_model(shipped, **kw):
    """A random encoder-decoder with the shipped tokenizer's vocabulary and special tokens."""
    cfg = dataclasses.replace(shipped.config, n_layer=2, n_enc_layer=2, n_head=2, n_embd=32,
                              n_ffn=64, **kw)
    torch.manual_seed(0)
    return build_model(cfg).eval()


def steps(st: Seq2SeqStepper, n: int):
    """``n`` steps; where the model would end the target, a digit word's letter instead."""
    r = st.result
    for _ in range(n):
        r = st.step() if r.planned != st.config.eos_id else st.step(force=7)
    return r


def full_pass(model, src: list[int], tgt: list[int], spec=CAPTURE_ALL):
    """One uncached pass over the whole target, recorded: (logits of every position, rec)."""
    with torch.no_grad(), capture(model, spec) as rec:
        logits, _ = model(torch.tensor([src]), torch.tensor([tgt]), all_logits=True)
    return logits[0].numpy(), rec


def t2n(tensors) -> np.ndarray:
    return torch.stack([t[0] for t in tensors]).numpy()


# -- what a result holds -----------------------------------------------------------------------
def test_the_shipped_model_translates_step_by_step_and_stops_at_its_end_token(shipped):
    st = Seq2SeqStepper(shipped.model, shipped.tokenizer, GREEDY)
    r = st.set_prompt("307")
    assert r.kind == "encoder-decoder" and r.families == ("encoder", "self", "cross")
    assert r.source_pieces == ["3", "0", "7", "<eos>"] and r.pieces == ["<bos>"] and r.n_prompt == 1
    while not st.finished:
        r = st.step()
    assert st.text == "three hundred seven"
    assert r.note == FINISHED_NOTE and r.ids[-1] == shipped.config.eos_id
    with pytest.raises(ValueError, match="end token"):
        st.step()
    r = st.back()  # one back: steps are offered again
    assert not st.finished and r.note == ""
    r = st.step(force=shipped.tokenizer.encode("s")[0])  # forcing is always allowed
    assert r.forced and r.pieces[-1] == "s"


def test_result_shapes_follow_the_contract(shipped):
    cfg = shipped.config
    st = Seq2SeqStepper(shipped.model, shipped.tokenizer, GREEDY)
    st.set_prompt("1234")
    r = steps(st, 5)
    L, Le, H, C, F = cfg.n_layer, cfg.n_enc_layer, cfg.n_head, cfg.n_embd, cfg.n_ffn
    S, T = 5, 6
    assert r.source_ids.shape == (S,) and len(r.source_tokens) == S
    assert r.encoder_attention.shape == r.encoder_scores.shape == (Le, H, S, S)
    assert r.cross_attention.shape == r.cross_scores.shape == (L, H, T, S)
    assert r.attention.shape == r.scores.shape == (L, H, T, T)
    assert r.cross_out.shape == r.attn_out.shape == r.mlp_out.shape == (L, T, C)
    assert r.encoder_residual.shape == (Le + 1, S, C)
    assert r.encoder_attn_out.shape == r.encoder_mlp_out.shape == (Le, S, C)
    assert r.encoder_ffn.shape == (Le, S, F) and r.ffn.shape == (L, T, F)
    assert r.encoder_tok_emb.shape == r.encoder_pos_emb.shape == (S, C)
    assert r.encoder_norm_stats.shape == (2 * Le + 1, S, 2)  # pre-norm: and enc_ln_f
    assert r.norm_stats.shape == (3 * L + 1, T, 2)  # ln_1..ln_3 per layer and ln_f
    assert r.residual.shape == (L + 1, T, C) and r.lens_ids.shape[:2] == (L + 1, T)
    for name in ("encoder_attention", "cross_attention", "attention", "encoder_residual"):
        assert not getattr(r, name).flags.writeable


def test_every_recorded_field_the_anatomy_names_is_in_a_result(shipped):
    cfg = shipped.config
    st = Seq2SeqStepper(shipped.model, shipped.tokenizer, GREEDY)
    st.set_prompt("42")
    r = steps(st, 2)
    anatomy = describe(cfg)
    names = set()
    for box in anatomy.boxes():
        for rec in box.recorded:
            value = getattr(r, rec.field)
            assert value is not None, rec.field
            if rec.index is not None:
                assert rec.index < len(value), (box.key, rec.field, rec.index)
            names.add(rec.field)
    assert {"encoder_attention", "encoder_scores", "encoder_attn_out", "encoder_ffn",
            "encoder_mlp_out", "encoder_residual", "encoder_tok_emb", "encoder_pos_emb",
            "encoder_norm_stats", "cross_attention", "cross_scores", "cross_out",
            "attention", "norm_stats", "logits", "dist"} <= names
    # the last norm of each stack is the last row of its statistics
    enc_final = anatomy.box("enc.final.ln").recorded[0]
    assert enc_final.field == "encoder_norm_stats" and enc_final.index == 2 * cfg.n_enc_layer
    assert anatomy.box("final.ln").recorded[0].index == 3 * cfg.n_layer


# -- the three families ------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_encoder_rows_are_full_distributions_and_cross_rows_sum_to_one(shipped, norm):
    st = Seq2SeqStepper(random_model(shipped, norm=norm), shipped.tokenizer, GREEDY)
    st.set_prompt("90210")
    r = steps(st, 4)
    S = 6
    np.testing.assert_allclose(r.encoder_attention.sum(-1), 1, atol=1e-5)
    upper = np.triu(np.ones((S, S), dtype=bool), 1)
    assert (r.encoder_attention[..., upper] > 0).all()  # no causal mask: later tokens seen
    np.testing.assert_allclose(r.cross_attention.sum(-1), 1, atol=1e-5)
    assert (r.cross_attention > 0).all()
    T = r.T
    assert (r.attention[..., np.triu(np.ones((T, T), dtype=bool), 1)] == 0).all()
    assert np.isfinite(r.masked_family_scores("encoder")).all()  # no padding: nothing hidden
    assert np.isfinite(r.masked_family_scores("cross")).all()
    assert np.isinf(r.masked_family_scores("self")[..., upper[:T, :T] if T <= S else
                                                    np.triu(np.ones((T, T), bool), 1)]).all()


def test_padding_gets_no_encoder_or_cross_weight_and_the_encoder_values_are_recorded(shipped):
    model = random_model(shipped)
    cfg = model.config
    src = torch.tensor([[5, 6, 7, cfg.eos_id, cfg.pad_id, cfg.pad_id],
                        [5, 6, 7, 8, 9, cfg.eos_id]])
    tgt = torch.tensor([[cfg.bos_id, 9, 8], [cfg.bos_id, 8, 7]])
    with torch.no_grad(), capture(model) as rec:
        model(src, tgt)
    for probs in rec.enc_attn_probs + rec.cross_attn_probs:
        np.testing.assert_allclose(probs.sum(-1).numpy(), 1, atol=1e-5)
        assert (probs[0, ..., 4:] == 0).all() and (probs[1] > 0).all()
    enc = rec.encoder
    assert len(enc.resid) == cfg.n_enc_layer + 1 and len(enc.ffn_hidden) == cfg.n_enc_layer
    assert enc.tok_emb.shape == (2, 6, cfg.n_embd)
    assert len(enc.norm_stats) == 2 * cfg.n_enc_layer + 1
    # the decoder's own lists hold only the decoder's values
    assert len(rec.resid) == cfg.n_layer + 1 and len(rec.ffn_hidden) == cfg.n_layer
    assert len(rec.cross_out) == cfg.n_layer and len(rec.norm_stats) == 3 * cfg.n_layer + 1


def _ln(mod, x):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), mod.weight, mod.bias, mod.eps)


def _softmax_rows(q, k, mask=None):
    s = q @ k.transpose(-2, -1) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1)


def _heads(x, H):
    T, C = x.shape
    return x.view(T, H, C // H).transpose(0, 1)  # (H, T, hs)


def test_captured_maps_equal_a_recompute_by_hand_from_the_recorded_inputs(shipped):
    """Each family's map, recomputed from the layer's input (the recorded residual stream) with
    the layer's weights and plain torch ops, equals what the stepper published."""
    model = shipped.model  # pre-norm, learned positions
    H = model.config.n_head
    st = Seq2SeqStepper(model, shipped.tokenizer, GREEDY)
    st.set_prompt("8086")
    r = steps(st, 6)
    C = model.config.n_embd
    with torch.no_grad():
        enc_res = torch.from_numpy(r.encoder_residual.copy())
        for i, block in enumerate(model.encoder):
            q, k, _ = block.attn.c_attn(_ln(block.ln_1, enc_res[i])).split(C, -1)
            want = _softmax_rows(_heads(q, H), _heads(k, H))
            np.testing.assert_allclose(r.encoder_attention[i], want.numpy(), atol=1e-5)
        memory = _ln(model.enc_ln_f, enc_res[-1])
        res = torch.from_numpy(r.residual.copy())
        T = r.T
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        for i, block in enumerate(model.h):
            q, k, _ = block.attn.c_attn(_ln(block.ln_1, res[i])).split(C, -1)
            want = _softmax_rows(_heads(q, H), _heads(k, H), causal)
            np.testing.assert_allclose(r.attention[i], want.numpy(), atol=1e-5)
            x = res[i] + torch.from_numpy(r.attn_out[i].copy())
            qc = block.cross_attn.c_q(_ln(block.ln_2, x))
            kc, _ = block.cross_attn.c_kv(memory).split(C, -1)
            want = _softmax_rows(_heads(qc, H), _heads(kc, H))
            np.testing.assert_allclose(r.cross_attention[i], want.numpy(), atol=1e-5)
            np.testing.assert_allclose(  # the residual stream adds up
                r.residual[i + 1], (x + torch.from_numpy(r.cross_out[i].copy())
                                    + torch.from_numpy(r.mlp_out[i].copy())).numpy(), atol=1e-5)


@pytest.mark.parametrize("pos_kind", ["learned", "sinusoidal", "rotary", "none"])
def test_a_cached_step_equals_a_full_recompute(shipped, pos_kind):
    model = random_model(shipped, pos_kind=pos_kind, norm="post" if pos_kind == "none" else "pre")
    st = Seq2SeqStepper(model, shipped.tokenizer, SampleConfig(temperature=1.0, seed=3))
    st.set_prompt("1999")
    r = steps(st, 7)
    logits, rec = full_pass(model, r.source_ids.tolist(), r.ids.tolist())
    np.testing.assert_allclose(r.logits, logits[-1], atol=1e-5)
    np.testing.assert_allclose(r.attention, t2n(rec.attn_probs), atol=1e-5)
    np.testing.assert_allclose(r.scores, t2n(rec.attn_scores), atol=1e-5)  # upper triangle too
    np.testing.assert_allclose(r.cross_attention, t2n(rec.cross_attn_probs), atol=1e-5)
    np.testing.assert_allclose(r.cross_scores, t2n(rec.cross_attn_scores), atol=1e-5)
    np.testing.assert_allclose(r.encoder_attention, t2n(rec.enc_attn_probs), atol=1e-5)
    np.testing.assert_allclose(r.encoder_scores, t2n(rec.enc_attn_scores), atol=1e-5)
    np.testing.assert_allclose(r.residual, t2n(rec.resid), atol=1e-5)
    np.testing.assert_allclose(r.norm_stats, t2n(rec.norm_stats), atol=1e-5)
    np.testing.assert_allclose(r.encoder_residual, t2n(rec.encoder.resid), atol=1e-5)
    # every logit kept on the way equals the uncached pass's logits at that position
    for n in range(r.n_generated + 1):
        np.testing.assert_allclose(st.logits_at(n), logits[n], atol=1e-5)


def test_the_explicit_path_gives_the_sdpa_path_s_logits(shipped):
    """With capture the attention is computed explicitly; without, by SDPA: same text and
    logits to 1e-5 for all three kinds (encoder, masked self, cross)."""
    model = random_model(shipped, pos_kind="rotary")
    sample = SampleConfig(temperature=1.0, seed=11)
    a = Seq2SeqStepper(model, shipped.tokenizer, sample, capture=CAPTURE_ALL)
    b = Seq2SeqStepper(model, shipped.tokenizer, sample, capture=CAPTURE_NOTHING)
    a.auto_seed = b.auto_seed
    ra, rb = a.set_prompt("5150"), b.set_prompt("5150")
    assert rb.attention is None and rb.encoder_attention is None and rb.cross_attention is None
    for _ in range(6):
        np.testing.assert_allclose(ra.logits, rb.logits, atol=1e-5)
        ra, rb = a.step(), b.step()
        assert ra.chosen == rb.chosen


# -- undo ----------------------------------------------------------------------------------------
def test_back_and_rewind_give_what_stepping_there_gave_and_old_results_never_change(shipped):
    st = Seq2SeqStepper(random_model(shipped), shipped.tokenizer,
                        SampleConfig(temperature=1.0, seed=5))
    st.set_prompt("777")
    r3 = steps(st, 3)
    kept = {n: getattr(r3, n).copy() for n in ("attention", "cross_attention", "scores")}
    r6 = steps(st, 3)
    back = st.back()
    assert back.ids.tolist() == r6.ids[:-1].tolist()
    rw = st.rewind_to(3)
    assert rw.ids.tolist() == r3.ids.tolist() and rw.planned == r3.planned
    np.testing.assert_allclose(rw.logits, r3.logits)
    other = st.step(force=int((r3.planned + 1) % shipped.config.vocab_size))
    for n, before in kept.items():  # copy-on-write: r3's arrays are as they were
        np.testing.assert_array_equal(getattr(r3, n), before)
    logits, rec = full_pass(st.model, other.source_ids.tolist(), other.ids.tolist())
    np.testing.assert_allclose(other.cross_attention, t2n(rec.cross_attn_probs), atol=1e-5)
    np.testing.assert_allclose(other.logits, logits[-1], atol=1e-5)
    assert st.reset().ids.tolist() == [shipped.config.bos_id]
    with pytest.raises(ValueError, match="nothing to undo"):
        st.back()


def test_planned_is_what_step_picks_and_resample_draws_again(shipped):
    st = Seq2SeqStepper(shipped.model, shipped.tokenizer, SampleConfig(temperature=2.0, seed=1))
    st.set_prompt("64")
    for _ in range(4):
        planned = st.result.planned
        assert st.step().chosen == planned
    hot = st.redistribute(SampleConfig(temperature=0.0))
    assert hot.planned == int(np.argmax(hot.logits))
    st.redistribute(SampleConfig(temperature=2.0, seed=1))
    r = st.resample()
    assert r.draw == 0 and r.chosen_draw == 1 and r.n_generated == 4


# -- bad input, capture, head masks ----------------------------------------------------------
def test_a_source_longer_than_the_block_size_gets_a_clear_message(shipped):
    st = Seq2SeqStepper(shipped.model, shipped.tokenizer, GREEDY)
    block = shipped.config.block_size
    with pytest.raises(ValueError, match=f"the source has {block} tokens; .* block size {block}"):
        st.set_prompt("1" * block)
    with pytest.raises(RuntimeError, match="no source yet"):
        st.step()
    st.set_prompt("1" * (block - 1))  # with its end token exactly the block size
    assert st.result.S == block


def test_the_stepper_refuses_other_kinds_and_a_foreign_tokenizer(shipped):
    from model.tokenizer import CharTokenizer
    from model.transformer import GPT

    gpt = GPT(dataclasses.replace(shipped.config, kind="decoder", n_enc_layer=0, bos_id=-1,
                                  eos_id=-1, pad_id=-1))
    with pytest.raises(ValueError, match="needs an encoder-decoder"):
        Seq2SeqStepper(gpt, shipped.tokenizer)
    with pytest.raises(ValueError, match="do not belong together"):
        Seq2SeqStepper(shipped.model, CharTokenizer("abc"))


def test_set_capture_and_head_masks(shipped):
    model = random_model(shipped)
    st = Seq2SeqStepper(model, shipped.tokenizer, GREEDY)
    st.set_prompt("31")
    steps(st, 3)
    r = st.set_capture(CaptureSpec(attention=True, scores=False, residual=False, ffn=False,
                                   logit_lens=False, embeddings=False, sublayers=False,
                                   norms=False))
    assert r.cross_attention is not None and r.cross_scores is None and r.residual is None
    intact = r.logits.copy()
    r = st.set_ablation(Ablation.parse("0.1,1.0"))
    assert r.ablation == Ablation.parse("0.1,1.0")
    np.testing.assert_allclose(r.intact_logits, intact, atol=1e-6)
    assert not np.allclose(r.logits, intact)
    with pytest.raises(ValueError, match="zero ablation"):
        st.set_ablation(Ablation.parse("0.1", mode="mean"))
    r = st.set_ablation(Ablation(frozenset()))
    np.testing.assert_allclose(r.logits, intact, atol=1e-6)
    # a cross-attention head switched off: its weights are still recorded, the output changes
    mask = np.ones((model.config.n_layer, model.config.n_head), dtype=np.float32)
    mask[1, 0] = 0
    r = st.set_head_mask(mask, "cross")
    assert not np.allclose(r.logits, intact)
    r = st.set_head_mask(None, "cross")
    np.testing.assert_allclose(r.logits, intact, atol=1e-6)
