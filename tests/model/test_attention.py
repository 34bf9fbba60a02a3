"""Attention, capture, KV cache, head mask and the whole GPT forward against an independent
reference implementation (plain numpy, reading the model's weights)."""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.attention import KVCache
from model.capture import Recording, capture, causal_mask
from model.config import (
    CAPTURE_ALL,
    CAPTURE_NOTHING,
    NORM_KINDS,
    POS_KINDS,
    CaptureSpec,
    ModelConfig,
)
from model.transformer import GPT

VARIANTS = list(itertools.product(POS_KINDS, NORM_KINDS))
VARIANT_IDS = [f"{p}-{n}" for p, n in VARIANTS]
B, T = 2, 12


def make_model(pos_kind="learned", norm="pre", seed=0, **kw) -> GPT:
    """A tiny GPT whose weights are random enough that attention is far from uniform."""
    base = dict(vocab_size=13, block_size=16, n_layer=2, n_head=4, n_embd=16, n_ffn=24,
                pos_kind=pos_kind, norm=norm)
    base.update(kw)
    torch.manual_seed(seed)
    model = GPT(ModelConfig(**base))
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if ".ln_" in name or name.startswith("ln_f"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
            else:
                p.copy_(0.35 * noise)
    return model.eval()


def tokens(seed=0, b=B, t=T, vocab=13) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (b, t), generator=g)


def run(model, idx, spec=None, **kw):
    with torch.no_grad():
        if spec is None:
            return model(idx, all_logits=True, **kw)[0], None
        with capture(model, spec) as rec:
            logits = model(idx, all_logits=True, **kw)[0]
        return logits, rec


NON_ATTENTION_SPECS = [
    CaptureSpec(attention=False, scores=False),  # residual, ffn, lens, embeddings, sublayers
    CaptureSpec(attention=False, scores=False, logit_lens=False, embeddings=False,
                sublayers=False, ffn=False),  # residual only
    CaptureSpec(attention=False, scores=False, residual=False, logit_lens=False,
                embeddings=False, sublayers=False),  # ffn only
    CAPTURE_NOTHING,
]


# -- fast path vs explicit path -----------------------------------------------------------------
@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_non_attention_capture_leaves_logits_bit_identical(pos_kind, norm):
    model = make_model(pos_kind, norm)
    idx = tokens()
    ref, _ = run(model, idx)
    for spec in NON_ATTENTION_SPECS:
        logits, rec = run(model, idx, spec)
        assert torch.equal(logits, ref), spec
        assert rec.attn_probs == [] and rec.attn_scores == []
        assert not rec.wants_attention
    assert model._recording is None


@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_explicit_attention_matches_sdpa(pos_kind, norm):
    model = make_model(pos_kind, norm)
    idx = tokens()
    ref, _ = run(model, idx)
    for spec in (CAPTURE_ALL, CaptureSpec(attention=True, scores=False),
                 dataclasses.replace(CAPTURE_NOTHING, scores=True)):
        logits, rec = run(model, idx, spec)
        torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-5)
        assert rec.wants_attention
        assert len(rec.attn_probs) == (model.config.n_layer if spec.attention else 0)
        assert len(rec.attn_scores) == (model.config.n_layer if spec.scores else 0)


@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_attention_rows_are_causal_distributions(pos_kind, norm):
    model = make_model(pos_kind, norm)
    _, rec = run(model, tokens(), CAPTURE_ALL)
    cfg = model.config
    assert len(rec.attn_probs) == cfg.n_layer
    upper = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for probs in rec.attn_probs:
        assert probs.shape == (B, cfg.n_head, T, T)
        torch.testing.assert_close(probs.sum(-1), torch.ones(B, cfg.n_head, T), atol=1e-6,
                                   rtol=0)
        assert torch.all(probs[..., upper] == 0)  # exactly zero, not just small
        assert torch.all(probs[..., ~upper] > 0)
        assert torch.all(probs[..., 0, 0] == 1)  # the first token can only look at itself
    stacked = rec.stacked_probs()
    assert stacked.shape == (cfg.n_layer, B, cfg.n_head, T, T)


@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_masked_scores(pos_kind, norm):
    model = make_model(pos_kind, norm)
    _, rec = run(model, tokens(), CAPTURE_ALL)
    upper = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for layer in range(model.config.n_layer):
        scores = rec.attn_scores[layer]
        assert scores.shape == (B, model.config.n_head, T, T)
        assert torch.isfinite(scores).all()  # recorded BEFORE the mask
        masked = rec.masked_scores(layer)
        assert torch.all(masked[..., upper] == float("-inf"))
        assert torch.equal(masked[..., ~upper], scores[..., ~upper])
        torch.testing.assert_close(F.softmax(masked, dim=-1), rec.attn_probs[layer])


def test_causal_mask_helper():
    m = causal_mask(2, 5, 3)
    expected = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)
    assert torch.equal(causal_mask(3, 3, 0), torch.tril(torch.ones(3, 3, dtype=torch.bool)))


def test_dropout_model_in_eval_is_deterministic_and_paths_agree():
    model = make_model("learned", "pre", dropout=0.5)
    idx = tokens()
    a, _ = run(model, idx)
    b, _ = run(model, idx, CAPTURE_ALL)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    c, _ = run(model, idx)
    assert torch.equal(a, c)


# -- KV cache -----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [None, CAPTURE_ALL], ids=["fast", "capture"])
@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_kv_cache_token_by_token(pos_kind, norm, spec):
    model = make_model(pos_kind, norm)
    idx = tokens(b=B, t=16)
    full, full_rec = run(model, idx, CAPTURE_ALL)
    cache = model.new_cache(B)
    for t in range(16):
        logits, rec = run(model, idx[:, t:t + 1], spec, cache=cache)
        assert cache.length == t + 1
        torch.testing.assert_close(logits[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
        if rec is not None:
            assert rec.query_offset == t
            for layer in range(model.config.n_layer):
                probs = rec.attn_probs[layer]
                assert probs.shape == (B, model.config.n_head, 1, t + 1)
                torch.testing.assert_close(probs[:, :, 0], full_rec.attn_probs[layer][:, :, t, :t + 1],
                                           atol=1e-5, rtol=1e-5)


CHUNKINGS = [[3, 1, 4, 1, 5, 2], [16], [1, 15], [8, 8], [5, 5, 5, 1]]


@pytest.mark.parametrize("spec", [None, CAPTURE_ALL], ids=["fast", "capture"])
@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_kv_cache_in_chunks(pos_kind, norm, spec):
    model = make_model(pos_kind, norm)
    idx = tokens(b=B, t=16)
    full, full_rec = run(model, idx, CAPTURE_ALL)
    for chunks in CHUNKINGS:
        cache = model.new_cache(B)
        start = 0
        for n in chunks:
            logits, rec = run(model, idx[:, start:start + n], spec, cache=cache)
            torch.testing.assert_close(logits, full[:, start:start + n], atol=1e-5, rtol=1e-5)
            if rec is not None:
                assert rec.query_offset == start
                for layer in range(model.config.n_layer):
                    got = rec.attn_probs[layer]
                    want = full_rec.attn_probs[layer][:, :, start:start + n, :start + n]
                    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
                    masked = rec.masked_scores(layer)
                    visible = causal_mask(n, start + n, start)
                    assert torch.all(masked[..., ~visible] == float("-inf"))
                    torch.testing.assert_close(
                        masked[..., visible],
                        full_rec.attn_scores[layer][:, :, start:start + n, :start + n][..., visible],
                        atol=1e-5, rtol=1e-5)
            start += n
        assert cache.length == 16


def test_kv_cache_last_logits_only():
    model = make_model("rotary", "pre")
    idx = tokens(b=1, t=10)
    full, _ = run(model, idx)
    cache = model.new_cache(1)
    with torch.no_grad():
        model(idx[:, :6], cache=cache)
        last, _ = model(idx[:, 6:], cache=cache)
    assert last.shape == (1, 1, model.config.vocab_size)
    torch.testing.assert_close(last[:, 0], full[:, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_cache_truncate_then_refeed(pos_kind):
    model = make_model(pos_kind, "pre")
    a = tokens(seed=1, b=1, t=14)
    b = a.clone()
    b[:, 6:] = (a[:, 6:] + 5) % 13  # same prefix, different continuation
    full_a, _ = run(model, a)
    full_b, _ = run(model, b)
    cache = model.new_cache(1)
    run(model, a, cache=cache)
    assert cache.length == 14
    cache.truncate(6)
    assert cache.length == 6
    logits, _ = run(model, b[:, 6:], cache=cache)
    torch.testing.assert_close(logits, full_b[:, 6:], atol=1e-5, rtol=1e-5)
    # undo one step at a time, token by token
    for t in range(13, 9, -1):
        cache.truncate(t)
        logits, _ = run(model, b[:, t:t + 1], cache=cache)
        torch.testing.assert_close(logits[:, 0], full_b[:, t], atol=1e-5, rtol=1e-5)
    cache.reset()
    assert cache.length == 0
    logits, _ = run(model, a, cache=cache)
    torch.testing.assert_close(logits, full_a, atol=1e-5, rtol=1e-5)


def test_cache_truncate_rejects_bad_lengths():
    model = make_model()
    cache = model.new_cache(1)
    run(model, tokens(b=1, t=4), cache=cache)
    for bad in (-1, 5, 100):
        with pytest.raises(ValueError, match="truncate"):
            cache.truncate(bad)
    assert cache.length == 4


def test_cache_overflow_is_a_clear_error():
    model = make_model(block_size=8)
    cache = model.new_cache(1)
    run(model, tokens(b=1, t=6, vocab=13), cache=cache)
    with pytest.raises(ValueError, match="block size 8"):
        run(model, tokens(b=1, t=3), cache=cache)
    assert cache.length == 6  # nothing was written
    run(model, tokens(b=1, t=2), cache=cache)  # exactly full is fine
    assert cache.length == 8
    with pytest.raises(ValueError, match="block size"):
        run(model, tokens(b=1, t=1), cache=cache)
    with pytest.raises(ValueError, match="block size"):
        run(model, tokens(b=1, t=9))  # no cache: too long as well


def test_kv_cache_write_overflow_message():
    cfg = ModelConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=2)
    cache = KVCache(cfg, batch_size=1)
    k = torch.zeros(1, 1, 3, 2)
    cache.write(0, k, k)
    cache.advance(3)
    with pytest.raises(ValueError, match=r"KV cache is full: 3 \+ 2 > block size 4"):
        cache.write(0, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))


def test_new_cache_shape_device_dtype():
    model = make_model()
    cache = model.new_cache(3)
    cfg = model.config
    assert cache.k.shape == (cfg.n_layer, 3, cfg.n_head, cfg.block_size, cfg.head_size)
    assert cache.k.dtype == model.wte.weight.dtype
    assert cache.k.device == model.device
    assert cache.capacity == cfg.block_size and cache.length == 0


# -- head mask ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [None, CAPTURE_ALL], ids=["fast", "capture"])
@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_head_mask_changes_output_and_ones_is_identity(pos_kind, spec):
    model = make_model(pos_kind, "pre")
    idx = tokens()
    ref, _ = run(model, idx, spec)
    model.set_head_mask(torch.ones(2, 4))
    ones, _ = run(model, idx, spec)
    assert torch.equal(ones, ref)
    mask = torch.ones(2, 4)
    mask[1, 2] = 0
    model.set_head_mask(mask)
    off, _ = run(model, idx, spec)
    assert not torch.allclose(off, ref, atol=1e-4)
    assert torch.isfinite(off).all()
    model.set_head_mask(None)
    back, _ = run(model, idx, spec)
    assert torch.equal(back, ref)


def test_head_mask_rejects_wrong_shape():
    model = make_model()
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        model.set_head_mask(torch.ones(4, 2))
    with pytest.raises(ValueError, match="head mask"):
        model.set_head_mask(np.ones(8))
    model.set_head_mask([[1, 0, 1, 1], [1, 1, 1, 1]])  # lists are fine
    assert model.head_mask.dtype == torch.float32


@pytest.mark.parametrize("spec", [None, CAPTURE_ALL], ids=["fast", "capture"])
@pytest.mark.parametrize("bias", [True, False])
def test_masked_head_contributes_nothing(spec, bias):
    """The input of c_proj is the heads side by side: a masked head's slice is exactly zero,
    and the other heads' slices are untouched (layer 0 sees the same input either way)."""
    model = make_model("rotary", "pre", bias=bias)
    hs = model.config.head_size
    idx = tokens()
    seen: list[torch.Tensor] = []
    hook = model.h[0].attn.c_proj.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    try:
        run(model, idx, spec)
        mask = torch.ones(2, 4)
        mask[0, 1] = 0
        model.set_head_mask(mask)
        _, rec = run(model, idx, spec)
    finally:
        hook.remove()
    before, after = seen
    assert torch.all(after[..., hs:2 * hs] == 0)
    torch.testing.assert_close(after[..., :hs], before[..., :hs], atol=1e-6, rtol=0)
    torch.testing.assert_close(after[..., 2 * hs:], before[..., 2 * hs:], atol=1e-6, rtol=0)
    # attention is still recorded for the masked head (the mask acts on its output only)
    if rec is not None:
        assert rec.attn_probs[0][:, 1].sum() > 0


def test_all_heads_masked_leaves_only_the_projection_bias():
    model = make_model("learned", "pre", bias=True)
    model.set_head_mask(torch.zeros(2, 4))
    _, rec = run(model, tokens(), CAPTURE_ALL)
    for layer in range(2):
        bias = model.h[layer].attn.c_proj.bias
        torch.testing.assert_close(rec.attn_out[layer], bias.expand_as(rec.attn_out[layer]))
    model_nb = make_model("learned", "pre", bias=False)
    model_nb.set_head_mask(torch.zeros(2, 4))
    _, rec = run(model_nb, tokens(), CAPTURE_ALL)
    assert all(torch.all(a == 0) for a in rec.attn_out)


# -- capture contents ---------------------------------------------------------------------------
@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_logit_lens_last_layer_is_final_logits(pos_kind, norm):
    model = make_model(pos_kind, norm)
    logits, rec = run(model, tokens(), CAPTURE_ALL)
    cfg = model.config
    assert rec.logit_lens.shape == (cfg.n_layer + 1, B, T, cfg.vocab_size)
    torch.testing.assert_close(rec.logit_lens[-1], logits, atol=1e-6, rtol=1e-6)
    # without all_logits the model returns the last position only; the lens still covers all
    with torch.no_grad(), capture(model, CaptureSpec(
            attention=False, scores=False, residual=False, ffn=False, embeddings=False,
            sublayers=False, logit_lens=True)) as rec2:
        last, _ = model(tokens())
    assert last.shape == (B, 1, cfg.vocab_size)
    assert rec2.logit_lens.shape == (cfg.n_layer + 1, B, T, cfg.vocab_size)
    torch.testing.assert_close(rec2.logit_lens[-1][:, -1], last[:, 0], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_residual_stream_and_sublayers(pos_kind, norm):
    model = make_model(pos_kind, norm)
    cfg = model.config
    _, rec = run(model, tokens(), CAPTURE_ALL)
    assert len(rec.resid) == cfg.n_layer + 1
    assert all(r.shape == (B, T, cfg.n_embd) for r in rec.resid)
    assert len(rec.attn_out) == len(rec.mlp_out) == cfg.n_layer
    assert all(a.shape == (B, T, cfg.n_embd) for a in rec.attn_out + rec.mlp_out)
    assert rec.tok_emb.shape == (B, T, cfg.n_embd)
    if pos_kind in ("learned", "sinusoidal"):
        assert rec.pos_emb.shape == (T, cfg.n_embd)
        torch.testing.assert_close(rec.resid[0], rec.tok_emb + rec.pos_emb)
    else:
        assert rec.pos_emb is None
        assert torch.equal(rec.resid[0], rec.tok_emb)
    for i, block in enumerate(model.h):
        x, a, m = rec.resid[i], rec.attn_out[i], rec.mlp_out[i]
        if norm == "pre":  # x + attn + mlp is the residual stream
            torch.testing.assert_close(rec.resid[i + 1], x + a + m, atol=1e-5, rtol=1e-5)
        else:  # post-norm: LN(LN(x + a) + m)
            with torch.no_grad():
                expected = block.ln_2(block.ln_1(x + a) + m)
            torch.testing.assert_close(rec.resid[i + 1], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_ffn", [0, 24, 7])
def test_ffn_hidden_shape(n_ffn):
    model = make_model(n_ffn=n_ffn)
    _, rec = run(model, tokens(), CaptureSpec(
        attention=False, scores=False, residual=False, logit_lens=False, embeddings=False,
        sublayers=False, ffn=True))
    f = n_ffn or 4 * model.config.n_embd
    assert len(rec.ffn_hidden) == model.config.n_layer
    assert all(h.shape == (B, T, f) for h in rec.ffn_hidden)
    assert rec.resid == [] and rec.logit_lens is None and rec.tok_emb is None


def test_ffn_hidden_is_gelu_of_first_linear():
    model = make_model("none", "pre")
    _, rec = run(model, tokens(), CAPTURE_ALL)
    block = model.h[0]
    with torch.no_grad():
        pre = block.mlp.c_fc(block.ln_2(rec.resid[0] + rec.attn_out[0]))
    torch.testing.assert_close(rec.ffn_hidden[0], F.gelu(pre), atol=1e-6, rtol=1e-6)


def test_recorded_tensors_are_detached():
    model = make_model()
    model.train(False)
    with capture(model, CAPTURE_ALL) as rec:  # no torch.no_grad() on purpose
        logits, _ = model(tokens(), all_logits=True)
    assert logits.requires_grad
    tensors = [rec.tok_emb, rec.pos_emb, rec.logit_lens, *rec.resid, *rec.attn_probs,
               *rec.attn_scores, *rec.attn_out, *rec.mlp_out, *rec.ffn_hidden]
    for x in tensors:
        assert not x.requires_grad
        x.numpy()  # what the GUI does with them


def test_two_forward_passes_in_one_capture_keep_a_valid_logit_lens():
    model = make_model()
    cache = model.new_cache(1)
    idx = tokens(b=1, t=8)
    with torch.no_grad(), capture(model, CAPTURE_ALL) as rec:
        model(idx[:, :5], cache=cache)
        last, _ = model(idx[:, 5:], cache=cache, all_logits=True)
    assert rec.logit_lens.shape == (model.config.n_layer + 1, 1, 3, model.config.vocab_size)
    torch.testing.assert_close(rec.logit_lens[-1], last, atol=1e-6, rtol=1e-6)


# -- capture context manager --------------------------------------------------------------------
def test_capture_restores_previous_state_even_on_error():
    model = make_model()
    assert model._recording is None
    with capture(model, CAPTURE_ALL) as outer:
        assert model._recording is outer
        with pytest.raises(RuntimeError, match="boom"):
            with capture(model, CaptureSpec(attention=True)) as inner:
                assert model._recording is inner
                run(model, tokens())
                raise RuntimeError("boom")
        assert model._recording is outer
        assert len(inner.attn_probs) == 2
        assert outer.attn_probs == []  # the inner recording did not leak into the outer
        run(model, tokens())
        assert len(outer.attn_probs) == 2
    assert model._recording is None


def test_capture_restores_state_when_the_forward_fails():
    model = make_model(block_size=8)
    with pytest.raises(ValueError):
        with capture(model, CAPTURE_ALL):
            run(model, tokens(t=9))
    assert model._recording is None
    logits, _ = run(model, tokens(t=8))  # fast path again
    assert logits.shape == (B, 8, 13)


def test_explicit_record_argument_beats_attached_one():
    model = make_model()
    explicit = Recording(spec=CAPTURE_ALL)
    with torch.no_grad(), capture(model, CAPTURE_ALL) as attached:
        model(tokens(), record=explicit)
    assert len(explicit.attn_probs) == 2
    assert attached.attn_probs == []


# -- loss ---------------------------------------------------------------------------------------
def test_loss_is_cross_entropy_of_all_logits():
    model = make_model()
    idx, targets = tokens(seed=3), tokens(seed=4)
    targets[0, 3] = -1  # ignored
    logits, loss = model(idx, targets)
    assert logits.shape == (B, T, 13)
    keep = targets.view(-1) != -1
    expected = F.cross_entropy(logits.view(-1, 13)[keep], targets.view(-1)[keep])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.wte.weight.grad is not None


# -- an independent reference implementation ----------------------------------------------------
def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().double().cpu().numpy()


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * w
    return y if b is None else y + b


def _linear(x, w, b):
    y = x @ w.T
    return y if b is None else y + b


_erf = np.vectorize(math.erf)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _rope(x, theta):
    """x: (T, hs), pairs (2i, 2i+1) as complex numbers multiplied by e^{i·pos·θ_i}."""
    t = x.shape[0]
    z = (x[:, 0::2] + 1j * x[:, 1::2]) * np.exp(1j * np.outer(np.arange(t), theta))
    out = np.empty_like(x)
    out[:, 0::2], out[:, 1::2] = z.real, z.imag
    return out


def reference_logits(model: GPT, idx: torch.Tensor) -> np.ndarray:
    """GPT forward from the papers, written without the model's code: only its weights."""
    cfg = model.config
    p = {k: _np(v) for k, v in model.state_dict().items()}
    get = p.get
    d, nh = cfg.n_embd, cfg.n_head
    hs = d // nh
    ids = idx.numpy()
    t = ids.shape[1]
    x = p["wte.weight"][ids]  # (B, T, C)
    if cfg.pos_kind == "learned":
        x = x + p["pe.wpe.weight"][:t]
    elif cfg.pos_kind == "sinusoidal":
        pe = np.zeros((t, d))
        for pos in range(t):
            for i in range(d // 2):
                pe[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d))
                pe[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d))
        x = x + pe
    theta = np.array([cfg.rope_base ** (-2 * i / hs) for i in range(hs // 2)])
    causal = np.tril(np.ones((t, t), dtype=bool))

    def attention(h, pre):
        qkv = _linear(h, p[pre + "c_attn.weight"], get(pre + "c_attn.bias"))
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        out = np.zeros_like(h)
        for b in range(h.shape[0]):
            for head in range(nh):
                sl = slice(head * hs, (head + 1) * hs)
                qh, kh, vh = q[b, :, sl], k[b, :, sl], v[b, :, sl]
                if cfg.pos_kind == "rotary":
                    qh, kh = _rope(qh, theta), _rope(kh, theta)
                scores = np.where(causal, qh @ kh.T / math.sqrt(hs), -np.inf)
                out[b, :, sl] = _softmax(scores) @ vh
        return _linear(out, p[pre + "c_proj.weight"], get(pre + "c_proj.bias"))

    def mlp(h, pre):
        hidden = _gelu(_linear(h, p[pre + "c_fc.weight"], get(pre + "c_fc.bias")))
        return _linear(hidden, p[pre + "c_proj.weight"], get(pre + "c_proj.bias"))

    for layer in range(cfg.n_layer):
        pre = f"h.{layer}."

        def ln(name, h, pre=pre):
            return _layer_norm(h, p[pre + name + ".weight"], get(pre + name + ".bias"))

        if cfg.norm == "pre":
            x = x + attention(ln("ln_1", x), pre + "attn.")
            x = x + mlp(ln("ln_2", x), pre + "mlp.")
        else:
            x = ln("ln_1", x + attention(x, pre + "attn."))
            x = ln("ln_2", x + mlp(x, pre + "mlp."))
    if cfg.norm == "pre":
        x = _layer_norm(x, p["ln_f.weight"], get("ln_f.bias"))
    unembed = p["wte.weight"] if cfg.tie_weights else p["lm_head.weight"]
    return x @ unembed.T


REF_VARIANTS = [(p, n, b, t) for (p, n), b, t in
                itertools.product(VARIANTS, (True, False), (True, False))]


@pytest.mark.parametrize(("pos_kind", "norm", "bias", "tie"), REF_VARIANTS,
                         ids=[f"{p}-{n}-bias{b}-tie{t}" for p, n, b, t in REF_VARIANTS])
def test_matches_reference_implementation(pos_kind, norm, bias, tie):
    model = make_model(pos_kind, norm, seed=7, bias=bias, tie_weights=tie)
    if tie:
        assert model.lm_head.weight is model.wte.weight
    idx = tokens(seed=5, b=2, t=10)
    expected = reference_logits(model, idx)
    fast, _ = run(model, idx)
    explicit, _ = run(model, idx, CAPTURE_ALL)
    np.testing.assert_allclose(fast.numpy(), expected, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(explicit.numpy(), expected, atol=2e-5, rtol=1e-5)
    assert np.abs(expected).max() > 0.5  # the weights make a non-trivial function


def test_no_positional_encoding_sees_a_bag_of_tokens():
    """NoPE in one layer: the last position attends over a set, so permuting the tokens before it
    changes nothing; any positional encoding breaks that symmetry (checks the reference too)."""
    idx = tokens(b=1, t=6)
    swapped = idx.clone()
    swapped[0, 1:5] = idx[0, 1:5].flip(0)
    assert not torch.equal(idx, swapped)
    for kind in POS_KINDS:
        model = make_model(kind, "pre", n_layer=1)
        a, _ = run(model, idx)
        b, _ = run(model, swapped)
        ra, rb = reference_logits(model, idx), reference_logits(model, swapped)
        if kind == "none":
            torch.testing.assert_close(a[0, -1], b[0, -1], atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(ra[0, -1], rb[0, -1], atol=1e-9)
        else:
            assert not torch.allclose(a[0, -1], b[0, -1], atol=1e-3), kind
            assert not np.allclose(ra[0, -1], rb[0, -1], atol=1e-3), kind


# -- on a GPU when there is one -----------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS, ids=VARIANT_IDS)
def test_cuda_paths_agree_with_cpu(pos_kind, norm):
    cpu = make_model(pos_kind, norm)
    idx = tokens(b=2, t=16)
    ref, _ = run(cpu, idx)
    model = make_model(pos_kind, norm).cuda()
    model.set_head_mask(torch.ones(2, 4))
    gidx = idx.cuda()
    fast, _ = run(model, gidx)
    explicit, rec = run(model, gidx, CAPTURE_ALL)
    torch.testing.assert_close(fast.cpu(), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(explicit.cpu(), ref, atol=1e-4, rtol=1e-4)
    assert rec.masked_scores(0).device.type == "cuda"
    cache = model.new_cache(2)
    for start, n in ((0, 5), (5, 1), (6, 10)):
        logits, _ = run(model, gidx[:, start:start + n], cache=cache)
        torch.testing.assert_close(logits.cpu(), ref[:, start:start + n], atol=1e-4, rtol=1e-4)


# -- queries and keys for the scores -----------------------------------------------------------
@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_recorded_queries_and_keys_give_the_scores(pos_kind):
    """With qk_scores a recording keeps the queries and keys after the positional rotation
    (the ones the model used) instead of the self-attention scores: QKᵀ/√d from them equals the
    scores a plain recording keeps, for a pass and for a cached pass after it (a caller such as
    model.context_window scores earlier queries against later keys)."""
    model = make_model(pos_kind).eval()
    idx = tokens(b=1)
    cache = model.new_cache()
    hs = model.config.head_size
    with torch.no_grad():
        first = Recording(spec=CaptureSpec(scores=True), qk_scores=True)
        model(idx[:, :7], cache=cache, record=first)
        second = Recording(spec=CaptureSpec(scores=True), qk_scores=True)
        logits, _ = model(idx[:, 7:], cache=cache, record=second)
        plain = Recording(spec=CaptureSpec(scores=True))
        again = model(idx[:, 7:], cache=_refilled(model, idx[:, :7]), record=plain)[0]
    assert plain.q == [] and len(second.q) == len(second.k) == model.config.n_layer
    assert first.attn_scores == [] and second.attn_scores == [] and second.v == []
    assert len(second.attn_probs) == model.config.n_layer  # the probabilities are still kept
    torch.testing.assert_close(logits, again, rtol=0, atol=0)  # recording them changes nothing
    full = Recording(spec=CaptureSpec(scores=True))
    with torch.no_grad():
        model(idx, record=full)
    for layer in range(model.config.n_layer):
        q = torch.cat([first.q[layer], second.q[layer]], dim=2)  # (1, nh, T, hs)
        k = torch.cat([first.k[layer], second.k[layer]], dim=2)
        assert q.shape == (1, model.config.n_head, T, hs) and not q.requires_grad
        torch.testing.assert_close(k, cache.k[layer, :, :, :T])  # the keys the cache holds
        scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # every query against every key
        torch.testing.assert_close(scores[:, :, 7:], plain.attn_scores[layer])
        torch.testing.assert_close(scores, full.attn_scores[layer])


def _refilled(model, idx):
    cache = model.new_cache()
    model(idx, cache=cache, record=Recording(spec=CaptureSpec(scores=True)))
    return cache
