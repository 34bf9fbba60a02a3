"""The three attention kinds and the encoder-decoder: masks, capture, SDPA against the explicit
path, the KV-cached decoder, head masks of every family and checkpoints of every kind."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from model.attention import CausalSelfAttention, CrossAttention
from model.capture import Recording, capture
from model.checkpoints import load_checkpoint, save_checkpoint
from model.config import CAPTURE_ALL, ConfigError, ModelConfig
from model.encoder_decoder import EncoderDecoder, build_model
from model.positional import make_positional
from model.tokenizer import CharTokenizer
from model.transformer import GPT

PAD, BOS, EOS, MASK = 0, 1, 2, 3
V = 14
POS_KINDS = ("learned", "sinusoidal", "rotary", "none")


def seq2seq_config(**kw) -> ModelConfig:
    base = dict(kind="encoder-decoder", vocab_size=V, block_size=16, n_layer=2, n_enc_layer=3,
                n_head=2, n_embd=16, pad_id=PAD, bos_id=BOS, eos_id=EOS)
    base.update(kw)
    return ModelConfig(**base)


def encoder_config(**kw) -> ModelConfig:
    base = dict(kind="encoder", vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16,
                pad_id=PAD, mask_id=MASK)
    base.update(kw)
    return ModelConfig(**base)


def make(cfg: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(cfg).eval()


# a padded batch: the first source has two padding positions
SRC = torch.tensor([[5, 6, 7, 8, EOS, PAD, PAD], [9, 10, 11, 12, 13, 4, EOS]])
TGT = torch.tensor([[BOS, 8, 7, 6, 5], [BOS, 4, 13, 12, 11]])


# -- config ------------------------------------------------------------------------------------
def test_kinds_need_their_special_tokens_and_decoders_load_unchanged():
    assert ModelConfig().kind == "decoder"  # every existing checkpoint's config
    with pytest.raises(ConfigError, match="bos_id"):
        ModelConfig(kind="encoder-decoder", vocab_size=V, pad_id=0, eos_id=2)
    with pytest.raises(ConfigError, match="mask_id"):
        ModelConfig(kind="encoder", vocab_size=V)
    with pytest.raises(ConfigError, match="kind"):
        ModelConfig(kind="transducer")
    with pytest.raises(ConfigError, match="n_enc_layer"):
        ModelConfig(n_enc_layer=2)
    assert seq2seq_config(n_enc_layer=0).n_enc_layer == 2  # 0: as many as the decoder


@pytest.mark.parametrize("cfg", [seq2seq_config(), seq2seq_config(shared_embeddings=False),
                                 seq2seq_config(norm="post", tie_weights=False),
                                 encoder_config()])
def test_parameter_count_matches_the_built_model(cfg):
    assert make(cfg).num_params() == cfg.n_params()


# -- masks and capture -------------------------------------------------------------------------
def test_encoder_rows_are_full_distributions_without_a_causal_mask():
    m = make(encoder_config())
    ids = torch.tensor([[4, 5, MASK, 7, 8, 9]])
    with capture(m) as rec:
        m(ids, all_logits=True)
    for probs in rec.attn_probs:  # (1, H, T, T)
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
        upper = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
        assert (probs[..., upper] > 0).all()  # every later token is seen too
    assert not rec.causal
    assert torch.isfinite(rec.masked_scores(0)).all()  # nothing hidden without padding


def test_encoder_decoder_encoder_sees_the_whole_source_and_hides_padding():
    m = make(seq2seq_config())
    with capture(m) as rec:
        m(SRC, TGT)
    assert len(rec.enc_attn_probs) == 3
    for probs in rec.enc_attn_probs:  # (B, H, S, S)
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
        assert (probs[0, :, :, 5:] == 0).all()  # padding keys get nothing
        assert (probs[1][..., torch.triu(torch.ones(7, 7, dtype=torch.bool), 1)] > 0).all()


def test_cross_attention_rows_sum_to_one_over_the_source_and_ignore_padding():
    m = make(seq2seq_config())
    with capture(m) as rec:
        m(SRC, TGT)
    assert len(rec.cross_attn_probs) == 2
    for layer, probs in enumerate(rec.cross_attn_probs):  # (B, H, T, S)
        assert probs.shape == (2, 2, 5, 7)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 5))
        assert (probs[0, :, :, 5:] == 0).all()
        assert (probs[1] > 0).all()
        masked = rec.masked_scores(layer, "cross")
        assert torch.isinf(masked[0, :, :, 5:]).all() and torch.isfinite(masked[1]).all()
        assert torch.isfinite(rec.cross_attn_scores[layer]).all()  # scores before the mask
    # the decoder's own attention keeps the causal mask
    assert (rec.attn_probs[0][..., torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)]
            == 0).all()


def test_padding_does_not_change_what_the_decoder_predicts():
    m = make(seq2seq_config())
    alone, _ = m(SRC[:1, :5], TGT[:1], all_logits=True)
    padded, _ = m(SRC[:1], TGT[:1], all_logits=True)
    torch.testing.assert_close(alone, padded, atol=1e-6, rtol=0)


# -- explicit path against SDPA ----------------------------------------------------------------
@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_explicit_path_matches_sdpa_for_all_three_kinds(pos_kind):
    cfg = seq2seq_config(pos_kind=pos_kind)
    torch.manual_seed(0)
    pe = make_positional(cfg)
    x = torch.randn(2, 5, cfg.n_embd)
    mem = torch.randn(2, 7, cfg.n_embd)
    positions = torch.arange(5)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, 3:] = True
    src_pad = SRC == PAD
    kinds = {
        "causal": (CausalSelfAttention(cfg, 0), lambda a, r: a(x, pe, positions, record=r)),
        "bidirectional": (CausalSelfAttention(cfg, 0, causal=False, family="encoder"),
                          lambda a, r: a(x, pe, positions, record=r, key_pad=pad)),
        "cross": (CrossAttention(cfg, 0),
                  lambda a, r: a(x, a.memory_kv(mem), src_pad, record=r)),
    }
    for name, (attn, call) in kinds.items():
        attn.eval()
        fast = call(attn, None)
        rec = Recording(spec=CAPTURE_ALL)
        explicit = call(attn, rec)
        torch.testing.assert_close(explicit, fast, atol=1e-5, rtol=0, msg=name)
        scores, probs = rec.family_lists(attn.family)
        assert len(scores) == len(probs) == 1, name


def test_whole_models_match_with_and_without_capture():
    for cfg in (seq2seq_config(), seq2seq_config(norm="post", pos_kind="rotary"),
                encoder_config()):
        m = make(cfg)
        args = (SRC, TGT) if cfg.kind == "encoder-decoder" else (SRC,)
        fast, _ = m(*args, all_logits=True)
        with capture(m):
            explicit, _ = m(*args, all_logits=True)
        torch.testing.assert_close(explicit, fast, atol=1e-5, rtol=0)


# -- decoding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_cached_decoder_steps_equal_a_full_recompute(pos_kind):
    m = make(seq2seq_config(pos_kind=pos_kind))
    full, _ = m(SRC, TGT, all_logits=True)
    cache = m.new_cache(SRC)
    memory = cache.memory.clone()
    steps = [m(None, TGT[:, :2], cache=cache)[0]]  # a first chunk of two, then one at a time
    steps += [m(None, TGT[:, t:t + 1], cache=cache)[0] for t in range(2, TGT.size(1))]
    got = torch.cat([steps[0][:, -1:]] + steps[1:], dim=1)
    torch.testing.assert_close(got, full[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(cache.memory, memory)  # the source is encoded once
    assert cache.length == TGT.size(1)


def test_greedy_equals_argmax_by_full_recompute_and_respects_the_block():
    m = make(seq2seq_config(), seed=5)
    got = m.greedy(SRC, max_len=6)
    for b in range(2):
        tgt = [BOS]
        want = []
        for _ in range(6):
            logits, _ = m(SRC[b:b + 1, :5] if b == 0 else SRC[b:b + 1], torch.tensor([tgt]))
            nxt = int(logits[0, -1].argmax())
            if nxt == EOS:
                break
            want.append(nxt)
            tgt.append(nxt)
        assert got[b] == want
    with pytest.raises(ValueError, match="block size"):
        m(torch.full((1, 17), 5), TGT[:1])


# -- head masks --------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["encoder", "self", "cross"])
def test_head_mask_switches_heads_of_each_family(family):
    m = make(seq2seq_config())
    base, _ = m(SRC, TGT, all_logits=True)
    layers = m.layers(family)
    m.set_head_mask(torch.ones(layers, 2), family)
    same, _ = m(SRC, TGT, all_logits=True)
    torch.testing.assert_close(same, base)
    off = torch.ones(layers, 2)
    off[0, 1] = 0
    m.set_head_mask(off, family)
    changed, _ = m(SRC, TGT, all_logits=True)
    with capture(m):  # the explicit path applies the same mask
        explicit, _ = m(SRC, TGT, all_logits=True)
    assert not torch.allclose(changed, base, atol=1e-4)
    torch.testing.assert_close(explicit, changed, atol=1e-5, rtol=0)
    m.set_head_mask(None, family)
    torch.testing.assert_close(m(SRC, TGT, all_logits=True)[0], base)
    with pytest.raises(ValueError, match="shape"):
        m.set_head_mask(torch.ones(layers + 1, 2), family)


def test_without_cross_attention_the_source_is_invisible():
    m = make(seq2seq_config())
    m.set_head_mask(torch.zeros(2, 2), "cross")
    a, _ = m(SRC[:1], TGT[:1], all_logits=True)
    b, _ = m(SRC[1:], TGT[:1], all_logits=True)
    torch.testing.assert_close(a, b)
    m.set_head_mask(None, "cross")
    assert not torch.allclose(m(SRC[:1], TGT[:1], all_logits=True)[0],
                              m(SRC[1:], TGT[:1], all_logits=True)[0])


def test_encoder_head_mask_and_no_cache():
    m = make(encoder_config())
    base, _ = m(SRC, all_logits=True)
    m.set_head_mask(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert not torch.allclose(m(SRC, all_logits=True)[0], base, atol=1e-4)
    with pytest.raises(ValueError, match="KV cache"):
        m(SRC, cache=m.new_cache())


# -- checkpoints -------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [
    seq2seq_config(), seq2seq_config(shared_embeddings=False, tie_weights=False),
    seq2seq_config(norm="post", pos_kind="sinusoidal"), encoder_config(),
    encoder_config(norm="post", pos_kind="rotary"), ModelConfig(vocab_size=V, n_layer=1,
                                                                 n_embd=16, block_size=8)])
def test_checkpoints_of_every_kind_round_trip(cfg, tmp_path):
    m = make(cfg, seed=3)
    tok = CharTokenizer([chr(ord("a") + i) for i in range(V)])
    path = save_checkpoint(tmp_path / "m.safetensors", m, tok, {"steps": 7})
    ck = load_checkpoint(path)
    assert ck.config == cfg and type(ck.model) is type(m)
    if cfg.kind == "encoder-decoder":
        args = (SRC, TGT)
    else:
        args = (SRC[:, :cfg.block_size],)
    torch.testing.assert_close(ck.model(*args, all_logits=True)[0], m(*args, all_logits=True)[0])
    if cfg.tie_weights:
        assert ck.model.lm_head.weight is ck.model.wte.weight
    sd = m.state_dict()
    assert set(ck.model.state_dict()) == set(sd)
    if cfg.kind == "encoder-decoder":
        assert ("enc_wte.weight" in sd) == (not cfg.shared_embeddings)


def test_the_classes_refuse_the_other_kinds():
    with pytest.raises(ValueError, match="build_model"):
        GPT(seq2seq_config())
    with pytest.raises(ValueError, match="encoder-decoder"):
        EncoderDecoder(dataclasses.replace(encoder_config()))


# -- anatomy -----------------------------------------------------------------------------------
def test_anatomy_of_each_kind_names_real_modules_and_counts_their_parameters():
    from model.anatomy import describe

    for cfg in (seq2seq_config(), seq2seq_config(shared_embeddings=False, norm="post"),
                encoder_config(), encoder_config(norm="post")):
        a = describe(cfg)
        m = make(cfg)
        modules = dict(m.named_modules())
        for box in a.boxes():
            assert box.module == "" or box.module in modules, box.module
        assert a.n_params == m.num_params()
    a = describe(seq2seq_config())
    assert [s.name for s in a.stacks] == ["encoder", "decoder"] and a.family == "encoder-decoder"
    assert not a.stacks[0].causal and a.stacks[1].causal
    cross = [b for b in a.stacks[1].boxes() if getattr(b, "reads", None) == "encoder"]
    assert len(cross) == 2 and all(not b.causal for b in cross)
    assert describe(encoder_config()).stacks[0].name == "encoder"
