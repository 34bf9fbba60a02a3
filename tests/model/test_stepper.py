"""Stepper and generate_text on tiny random models: KV-cached steps match full forward passes,
undo is exact, sampling is seeded per position, and old results never change."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.capture import capture
from model.config import CAPTURE_ALL, CAPTURE_NOTHING, CaptureSpec, ModelConfig, SampleConfig
from model.sampling import distribution_for, sample_from, uniform_for
from model.step_result import QKScores, StepResult
from model.stepper import EMPTY_PROMPT_NEWLINE, Stepper, generate_text
from model.tokenizer import CharTokenizer, UnknownCharactersError
from model.transformer import GPT

VOCAB = "\n abcdefghij"
POS_KINDS = ("learned", "sinusoidal", "rotary", "none")
ATOL = 1e-5
ARRAYS = ("attention", "scores", "residual", "attn_out", "mlp_out", "ffn", "tok_emb", "pos_emb",
          "lens_ids", "lens_probs", "norm_stats")


def make_model(pos_kind="learned", block_size=12, norm="pre", vocab=VOCAB, seed=0):
    tok = CharTokenizer(list(vocab))
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=2, n_head=2,
                      n_embd=16, pos_kind=pos_kind, norm=norm)
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():  # larger weights than GPT-2's init: peaked, non-uniform attention
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.4)
    model.eval()
    return model, tok


def full_forward(model, ids):
    """Reference: one captured forward pass of the whole sequence, no cache."""
    with torch.inference_mode(), capture(model, CAPTURE_ALL) as rec:
        logits, _ = model(torch.tensor([ids]))
    return rec, logits[0, -1].float().numpy()


def assert_matches_full(r: StepResult, model, atol=ATOL):
    rec, logits = full_forward(model, [int(i) for i in r.ids])
    np.testing.assert_allclose(r.logits, logits, atol=atol)
    np.testing.assert_allclose(r.attention, torch.stack(rec.attn_probs)[:, 0].numpy(), atol=atol)
    np.testing.assert_allclose(r.scores, torch.stack(rec.attn_scores)[:, 0].numpy(), atol=atol)
    np.testing.assert_allclose(r.residual, torch.stack(rec.resid)[:, 0].numpy(), atol=atol)
    np.testing.assert_allclose(r.attn_out, torch.stack(rec.attn_out)[:, 0].numpy(), atol=atol)
    np.testing.assert_allclose(r.mlp_out, torch.stack(rec.mlp_out)[:, 0].numpy(), atol=atol)
    np.testing.assert_allclose(r.ffn, torch.stack(rec.ffn_hidden)[:, 0].numpy(), atol=atol)
    np.testing.assert_allclose(r.norm_stats, torch.stack(rec.norm_stats)[:, 0].numpy(),
                               atol=atol)
    np.testing.assert_allclose(r.tok_emb, rec.tok_emb[0].numpy(), atol=atol)
    if rec.pos_emb is None:
        assert r.pos_emb is None
    else:
        np.testing.assert_allclose(r.pos_emb, rec.pos_emb.numpy(), atol=atol)
    lens = torch.softmax(rec.logit_lens[:, 0], dim=-1)  # (L+1, T, V)
    np.testing.assert_allclose(r.lens_probs, lens.topk(r.lens_probs.shape[-1]).values.numpy(),
                               atol=atol)
    # ids of the top-k agree wherever the probabilities are not tied
    picked = np.take_along_axis(lens.numpy(), r.lens_ids, axis=-1)
    np.testing.assert_allclose(picked, r.lens_probs, atol=atol)


def snapshot(r: StepResult) -> dict:
    out = {"ids": r.ids.copy(), "logits": r.logits.copy(), "planned": r.planned,
           "token_probs": r.token_probs.copy(), "token_ranks": r.token_ranks.copy(),
           "probs": r.dist.probs.copy(), "cropped": r.cropped, "n_prompt": r.n_prompt,
           "n_generated": r.n_generated, "tokens": list(r.tokens)}
    for name in ARRAYS:
        a = getattr(r, name)
        out[name] = None if a is None else a.copy()
    return out


def assert_same(a: dict, b: dict, exact=True):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].shape == b[k].shape, k
            if exact or a[k].dtype.kind in "iub":
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
            else:
                np.testing.assert_allclose(a[k], b[k], atol=ATOL, err_msg=k)
        else:
            assert a[k] == b[k], k


class ForwardCounter:
    """Counts forward passes of the whole model and the shapes of their inputs."""

    def __init__(self, model):
        self.shapes = []
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, _module, args):
        self.shapes.append(tuple(args[0].shape))

    @property
    def n(self):
        return len(self.shapes)


SEEDED = SampleConfig(temperature=1.0, seed=7)


# -- shapes and the one-row step ---------------------------------------------------------------
def test_step_appends_one_attention_row():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    r0 = st.set_prompt("abc")
    assert r0.T == 3 and r0.attention.shape == (2, 2, 3, 3) and r0.chosen is None
    r1 = st.step()
    assert r1.T == 4 and r1.attention.shape == (2, 2, 4, 4)
    assert r1.chosen == int(r1.ids[-1]) and r1.n_generated == 1
    np.testing.assert_array_equal(r1.attention[:, :, :3, :3], r0.attention)  # old rows kept
    for r in (r0, r1):
        np.testing.assert_allclose(r.attention.sum(-1), 1.0, atol=1e-6)
        upper = np.triu(np.ones((r.T, r.T), dtype=bool), k=1)
        assert (r.attention[..., upper] == 0).all()
        assert r.attention.dtype == np.float32 and r.ids.dtype == np.int64
    assert r1.residual.shape == (3, 4, 16) and r1.ffn.shape == (2, 4, 64)
    assert r1.lens_ids.shape == (3, 4, 5) and r1.lens_probs.shape == (3, 4, 5)
    assert r1.n_layer == 2 and r1.n_head == 2 and r1.text == "abc" + tok.token_str(r1.chosen)
    assert np.isnan(r1.token_probs[:3]).all() and (r1.token_ranks[:3] == -1).all()
    assert r1.token_probs[3] == pytest.approx(r1.chosen_prob)
    assert np.isinf(r1.masked_scores()[..., upper]).all()


def test_results_are_read_only():
    model, tok = make_model()
    r = Stepper(model, tok, SEEDED).set_prompt("ab")
    with pytest.raises(ValueError):
        r.attention[0, 0, 0, 0] = 1.0


@pytest.mark.parametrize("pos_kind", POS_KINDS)
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_stepped_context_equals_full_forward(pos_kind, norm):
    model, tok = make_model(pos_kind, norm=norm)
    st = Stepper(model, tok, SEEDED)
    assert_matches_full(st.set_prompt("ba c"), model)
    for _ in range(6):
        r = st.step()
    assert r.T == 10
    assert_matches_full(r, model)


def test_capture_spec_selects_arrays():
    model, tok = make_model("rotary")
    spec = CaptureSpec(attention=True, scores=False, residual=False, ffn=False,
                       logit_lens=False, embeddings=True, sublayers=False, norms=False)
    st = Stepper(model, tok, SEEDED, capture=spec)
    st.set_prompt("abc")
    r = st.step()
    assert r.attention is not None and r.tok_emb is not None
    assert r.pos_emb is None  # rotary adds nothing to the embedding
    assert all(getattr(r, n) is None for n in ("scores", "residual", "ffn", "attn_out",
                                               "mlp_out", "lens_ids", "lens_probs",
                                               "norm_stats"))

    st2 = Stepper(model, tok, SEEDED, capture=CAPTURE_NOTHING)
    st2.set_prompt("abc")
    r2 = st2.step()
    assert all(getattr(r2, n) is None for n in ARRAYS)
    assert r2.chosen == r.chosen
    r3 = st2.set_capture(CAPTURE_ALL)
    assert_matches_full(r3, model)


# -- choosing tokens ---------------------------------------------------------------------------
def test_forced_step_takes_token_and_reports_prob_and_rank():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    r0 = st.set_prompt("abc")
    alt = int(r0.dist.order[3])  # the fourth most likely token
    r1 = st.step(force=alt)
    assert r1.chosen == alt and r1.forced and int(r1.ids[-1]) == alt
    assert r1.chosen_rank == 3 and r1.token_ranks[-1] == 3
    assert r1.chosen_prob == pytest.approx(float(r0.dist.probs[alt]))
    assert r1.token_forced[-1] and r1.chosen_draw is None
    with pytest.raises(ValueError):
        st.step(force=tok.vocab_size)


def test_planned_is_what_step_picks():
    model, tok = make_model()
    for sample in (SEEDED, SampleConfig(temperature=1.5, top_k=5),
                   SampleConfig(temperature=2.0, top_p=0.9, seed=3)):
        st = Stepper(model, tok, sample)
        r = st.set_prompt("a")
        for _ in range(15):
            planned = r.planned
            r = st.step()
            assert r.chosen == planned


def test_seed_none_is_fixed_per_stepper():
    model, tok = make_model()
    st = Stepper(model, tok, SampleConfig(temperature=1.0, seed=None))
    st.set_prompt("ab")
    for _ in range(10):
        st.step()
    text = st.text
    st.reset()
    for _ in range(10):
        st.step()
    assert st.text == text
    assert st.seed == st.auto_seed


def test_same_seed_same_text():
    model, tok = make_model()
    texts = []
    for _ in range(2):
        st = Stepper(model, tok, SampleConfig(temperature=1.0, seed=123))
        st.set_prompt("ab")
        for _ in range(20):
            st.step()
        texts.append(st.text)
    assert texts[0] == texts[1]
    st = Stepper(model, tok, SampleConfig(temperature=1.0, seed=124))
    st.set_prompt("ab")
    for _ in range(20):
        st.step()
    assert st.text != texts[0]


def test_draw_uses_absolute_position_and_seed():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    r = st.set_prompt("abc")
    expected = sample_from(distribution_for(r.logits, SEEDED), uniform_for(7, 3, 0))
    assert st.step().chosen == expected


def test_temperature_zero_is_argmax():
    model, tok = make_model()
    st = Stepper(model, tok, SampleConfig(temperature=0.0, seed=1))
    r = st.set_prompt("abc")
    for _ in range(15):
        best = int(np.argmax(r.logits))
        assert r.planned == best
        r = st.step()
        assert r.chosen == best and r.chosen_prob == 1.0 and r.chosen_rank == 0


def test_redistribute_runs_no_forward_and_changes_dist():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    st.set_prompt("abc")
    before = st.step()
    counter = ForwardCounter(model)
    try:
        after = st.redistribute(SampleConfig(temperature=0.3, top_k=3, seed=7))
        assert counter.n == 0
    finally:
        counter.handle.remove()
    assert after.chosen is None and after.sample.temperature == 0.3
    np.testing.assert_array_equal(after.logits, before.logits)
    assert not np.allclose(after.dist.probs, before.dist.probs)
    assert after.dist.n_kept == 3
    assert after.attention is before.attention or np.array_equal(after.attention, before.attention)
    assert st.step().chosen == after.planned  # the new settings are used from now on


def test_a_step_runs_the_model_on_one_token():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    st.set_prompt("abc")
    counter = ForwardCounter(model)
    st.step()
    st.step(force=3)
    counter.handle.remove()
    assert counter.shapes == [(1, 1), (1, 1)]  # one cached forward pass of one token each


# -- undo --------------------------------------------------------------------------------------
def test_back_restores_previous_result_exactly():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    st.set_prompt("abc")
    st.step()
    prev = snapshot(st.step())
    st.step()
    counter = ForwardCounter(model)
    back = st.back()
    counter.handle.remove()
    assert counter.n == 0  # no slide: cache truncated, logits from the history
    assert back.chosen is None
    assert_same(snapshot(back), prev)
    with pytest.raises(ValueError):
        st.rewind_to(3)


def test_back_without_generated_token_raises():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    st.set_prompt("abc")
    with pytest.raises(ValueError):
        st.back()
    with pytest.raises(ValueError):
        st.resample()


def test_no_prompt_yet_raises():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    with pytest.raises(RuntimeError):
        st.step()


def test_rewind_to_and_reset():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    r0 = snapshot(st.set_prompt("abc"))
    snaps = []
    for _ in range(6):
        snaps.append(snapshot(st.step()))
    r = st.rewind_to(2)
    assert r.n_generated == 2 and st.n_generated == 2
    assert_same(snapshot(r), snaps[1])
    r = st.rewind_to(2)
    assert_same(snapshot(r), snaps[1])
    r = st.reset()
    assert r.n_generated == 0 and st.text == "abc"
    assert_same(snapshot(r), r0)
    # stepping again replays the same text
    for s in snaps:
        assert_same(snapshot(st.step()), s)


def test_resample_uses_next_draw_index():
    model, tok = make_model()
    st = Stepper(model, tok, SampleConfig(temperature=3.0, seed=5))
    prompt_logits = st.set_prompt("abc").logits
    first = st.step()
    pos = 3
    assert first.chosen_draw == 0 and st.draw_index(pos) == 0
    chosen = {first.chosen}
    for d in range(1, 8):
        r = st.resample()
        assert st.draw_index(pos) == d and r.chosen_draw == d and r.n_generated == 1
        expected = sample_from(distribution_for(prompt_logits, st.sample),
                               uniform_for(5, pos, d))
        assert r.chosen == expected
        chosen.add(r.chosen)
    assert len(chosen) > 1  # new draws pick other tokens at a high temperature
    # back then step gives the resampled token again (same draw index)
    last = st.result.chosen
    st.back()
    assert st.step().chosen == last


def test_resample_runs_the_model_once():
    block = 6
    model, tok = make_model(block_size=block)
    st = Stepper(model, tok, SampleConfig(temperature=2.0, seed=2))
    st.set_prompt("ab")
    st.step()
    counter = ForwardCounter(model)
    st.resample()
    assert counter.shapes == [(1, 1)]  # cache truncated, one new token
    for _ in range(8):
        st.step()
    counter.shapes.clear()
    r = st.resample()  # the window slid: recomputed once, with the new token
    counter.handle.remove()
    assert counter.shapes == [(1, block)]
    assert_matches_full(r, model)


def test_old_result_unchanged_after_back_and_step():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    st.set_prompt("abc")
    st.step()
    held = st.step()
    saved = snapshot(held)
    back = st.back()
    saved_back = snapshot(back)
    other = next(i for i in range(tok.vocab_size) if i != held.chosen)
    new = st.step(force=other)
    assert int(new.ids[-1]) == other
    assert_same(snapshot(held), saved)
    assert_same(snapshot(back), saved_back)
    for _ in range(3):
        st.back()
        st.step()
    st.reset()
    st.step()
    assert_same(snapshot(held), saved)
    assert_matches_full(st.result, model)


# -- long texts --------------------------------------------------------------------------------
def test_long_prompt_is_cropped():
    model, tok = make_model(block_size=8)
    st = Stepper(model, tok, SEEDED)
    prompt = "abcdefghij ab"
    r = st.set_prompt(prompt)
    assert r.cropped == len(prompt) - 8 and r.T == 8 and r.n_prompt == 8
    assert r.text == prompt[-8:] and st.text == prompt
    assert "cropped" in r.note
    assert_matches_full(r, model)
    r = st.step()
    assert r.cropped == len(prompt) - 7 and r.n_prompt == 7 and r.T == 8
    assert np.isnan(r.token_probs[:7]).all() and not np.isnan(r.token_probs[7])


@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_sliding_window_matches_full_forward_of_last_block(pos_kind):
    block = 8
    model, tok = make_model(pos_kind, block_size=block)
    st = Stepper(model, tok, SEEDED)
    st.set_prompt("abc")
    snaps = [snapshot(st.result)]
    for _ in range(12):
        r = st.step()
        snaps.append(snapshot(r))
        assert r.T == min(block, len(st.ids))
        assert r.cropped == len(st.ids) - r.T
        assert_matches_full(r, model)
        assert list(r.ids) == st.ids[-block:]
    assert r.n_generated == 12 and r.n_prompt == 0 and r.cropped == 15 - block
    # undo across the slide: recomputed windows, exact logits from the history
    for k in range(11, 0, -1):
        r = st.back()
        assert_same(snapshot(r), snaps[k], exact=False)
        np.testing.assert_array_equal(r.logits, snaps[k]["logits"])
        assert_matches_full(r, model)
    r = st.rewind_to(0)
    assert_same(snapshot(r), snaps[0], exact=False)


def test_rewind_across_slide_without_capture():
    model, tok = make_model(block_size=6)
    st = Stepper(model, tok, SEEDED, capture=CAPTURE_NOTHING)
    st.set_prompt("ab")
    for _ in range(10):
        st.step()
    text = st.text
    counter = ForwardCounter(model)
    st.rewind_to(3)
    counter.handle.remove()
    assert counter.n == 0  # nothing to show: the window is rebuilt on the next step
    for _ in range(7):
        st.step()
    assert st.text == text


@pytest.mark.parametrize("pos_kind", ["learned", "rotary"])
def test_random_walk_of_operations_keeps_every_invariant(pos_kind):
    """Steps, forced steps, undo, rewinds, resamples and new settings in a random order, across
    the slide: every result matches a full forward pass, and results held earlier never change."""
    model, tok = make_model(pos_kind, block_size=7)
    st = Stepper(model, tok, SampleConfig(temperature=1.5, seed=9))
    rng = np.random.default_rng(0)
    held = [(st.set_prompt("abc"), None)]
    for _ in range(80):
        op = rng.choice(["step", "step", "step", "force", "back", "rewind", "resample", "redist"])
        if op in ("back", "resample") and st.n_generated == 0:
            op = "step"
        if op == "step":
            planned = st.result.planned
            r = st.step()
            assert r.chosen == planned
        elif op == "force":
            r = st.step(force=int(rng.integers(tok.vocab_size)))
        elif op == "back":
            r = st.back()
        elif op == "rewind":
            r = st.rewind_to(int(rng.integers(st.n_generated + 1)))
        elif op == "resample":
            r = st.resample()
        else:
            r = st.redistribute(SampleConfig(temperature=float(rng.uniform(0.2, 2.0)),
                                             top_k=int(rng.integers(0, 6)), seed=9))
        assert list(r.ids) == st.ids[-7:] and r.n_generated == st.n_generated
        assert_matches_full(r, model)
        if rng.random() < 0.3:
            held.append((r, snapshot(r)))
    for r, snap in held[1:]:
        assert_same(snapshot(r), snap)


# -- prompts -----------------------------------------------------------------------------------
def test_empty_prompt_starts_from_newline():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    r = st.set_prompt("")
    assert list(r.ids) == [tok.stoi["\n"]] and r.note == EMPTY_PROMPT_NEWLINE and r.n_prompt == 1
    r = st.step()
    assert r.T == 2 and r.note == EMPTY_PROMPT_NEWLINE


def test_empty_prompt_without_newline_starts_from_token_0():
    model, tok = make_model(vocab="xyz")
    st = Stepper(model, tok, SEEDED)
    r = st.set_prompt("")
    assert list(r.ids) == [0] and "token 0" in r.note


def test_unknown_characters_raise():
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    with pytest.raises(UnknownCharactersError) as e:
        st.set_prompt("abZ!")
    assert e.value.chars == ["!", "Z"]
    r = st.set_prompt("abZ", errors="drop")
    assert r.text == "ab"


def test_tokenizer_must_match_model():
    model, _ = make_model()
    with pytest.raises(ValueError):
        Stepper(model, CharTokenizer(list("abc")))


def test_training_mode_is_restored():
    model, tok = make_model()
    model.train()
    st = Stepper(model, tok, SEEDED)
    st.set_prompt("abc")
    st.step()
    generate_text(model, tok, "abc", 5, SEEDED)
    assert model.training


# -- generate_text -----------------------------------------------------------------------------
@pytest.mark.parametrize("pos_kind", POS_KINDS)
@pytest.mark.parametrize("prompt", ["", "ab c", "abcdefghij abcdef"])
def test_generate_text_equals_stepping(pos_kind, prompt):
    model, tok = make_model(pos_kind, block_size=8)
    sample = SampleConfig(temperature=0.9, top_k=8, seed=11)
    out = generate_text(model, tok, prompt, 20, sample)
    assert len(out) == 20
    st = Stepper(model, tok, sample)
    st.set_prompt(prompt)
    for _ in range(20):
        st.step()
    assert st.text.endswith(out) and st.n_generated == 20
    assert st.text[len(st.text) - 20:] == out
    assert generate_text(model, tok, prompt, 20, sample) == out
    assert generate_text(model, tok, prompt, 0, sample) == ""


def test_generate_text_greedy_and_unknown():
    model, tok = make_model()
    greedy = SampleConfig(temperature=0.0)
    assert generate_text(model, tok, "ab", 10, greedy) == generate_text(model, tok, "ab", 10, greedy)
    with pytest.raises(UnknownCharactersError):
        generate_text(model, tok, "Q", 3, greedy)
    with pytest.raises(ValueError):
        generate_text(model, tok, "a", -1, greedy)


def test_step_result_is_frozen():
    model, tok = make_model()
    r = Stepper(model, tok, SEEDED).set_prompt("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.chosen = 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_stepper_on_cuda_matches_cpu(pos_kind):
    model, tok = make_model(pos_kind, block_size=8)
    gpu = make_model(pos_kind, block_size=8)[0].to("cuda")
    st = Stepper(gpu, tok, SEEDED)
    st.set_prompt("abc")
    for _ in range(10):  # past the block size
        r = st.step()
        assert isinstance(r.attention, np.ndarray)
        assert_matches_full(r, model, atol=1e-4)
    r = st.back()
    assert_matches_full(r, model, atol=1e-4)
    out = generate_text(gpu, tok, "abc", 10, SEEDED)
    assert out == st.text[3:] + tok.token_str(st.result.planned)


@pytest.mark.parametrize("vocab, k", [(2, 1), (65, 5), (300, 6), (2000, 3)])
def test_logit_lens_topk_matches_torch_topk(vocab, k):
    from model.topk import topk_rows as _topk

    g = torch.Generator().manual_seed(vocab)
    probs = torch.softmax(torch.randn(5, 64, vocab, generator=g), dim=-1)  # (L+1, T, V)
    if vocab > 4:
        probs[0, 0, :4] = probs[0, 0].max()  # ties at the top: the lowest ids must come first
    values, ids = _topk(probs, min(k, vocab))
    ref = probs.topk(min(k, vocab), dim=-1)
    assert torch.equal(values, ref.values)
    picked = torch.gather(probs, -1, ids)
    assert torch.equal(picked, ref.values)  # same values at the ids we picked
    assert ids.dtype == torch.long and ids.shape == ref.indices.shape
    if 4 < vocab <= 1024 and k > 1:  # our path (larger vocabularies use torch.topk's order)
        assert ids[0, 0, :2].tolist() == [0, 1]


@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_scores_come_from_the_queries_and_keys_as_a_full_pass_has_them(pos_kind):
    """A result's scores are not kept but computed from the captured (rotated) queries and keys:
    the whole array and each head's slice equal a full pass's recorded QKᵀ/√d (as the stored
    scores did: a cached step's rows differ from a full pass's by rounding), above the diagonal
    too, after cached steps, a slid window and an undo; an older result's
    scores never change; without CaptureSpec.qkv the queries and keys are not shown."""
    model, tok = make_model(pos_kind, block_size=8)
    spec = dataclasses.replace(CAPTURE_ALL, qkv=False)
    st = Stepper(model, tok, SEEDED, capture=spec)
    first = st.set_prompt("abcab")
    kept = np.asarray(first.scores).copy()
    for r in (first, st.step(), st.step(), st.step(), st.step(), st.back()):  # 5 … 9 tokens
        assert isinstance(r.scores, QKScores) and r.q is None and r.k is None
        rec, _ = full_forward(model, [int(i) for i in r.ids])
        want = torch.stack(rec.attn_scores)[:, 0].numpy()  # (L, H, T, T)
        assert r.scores.shape == want.shape
        np.testing.assert_allclose(np.asarray(r.scores), want, rtol=1e-5, atol=ATOL)
        for layer in range(model.config.n_layer):
            for head in range(model.config.n_head):
                np.testing.assert_allclose(r.scores[layer, head], want[layer, head],
                                           rtol=1e-5, atol=ATOL)
                np.testing.assert_allclose(r.scores[layer, head],  # a head's own product
                                           np.asarray(r.scores)[layer, head], rtol=1e-6)
        np.testing.assert_allclose(r.scores[1, 0, r.T - 1], want[1, 0, -1], rtol=1e-5,
                                   atol=ATOL)
    np.testing.assert_array_equal(np.asarray(first.scores), kept)


HALF = ("attention", "attn_out", "mlp_out", "ffn", "q", "k", "v", "heads")


@pytest.mark.parametrize("pos_kind", ["learned", "rotary"])
def test_a_large_model_keeps_its_big_captures_in_float16_and_they_match_the_pass(
        monkeypatch, pos_kind):
    # past capture_buffers.HALF_ABOVE_BYTES (a GPT-2's 0.95 GB set at 1,024 tokens) the
    # per-position values that are only looked at are float16: prompt (the pass computes a few
    # heads' weights at a time in float32 and keeps them there), cached steps, a slid window,
    # Back
    import model.capture_buffers as capture_buffers
    import model.context_window as context_window

    monkeypatch.setattr(capture_buffers, "HALF_ABOVE_BYTES", 0)
    trims = []  # after each whole-window pass, the heap's free pages go back to the system
    monkeypatch.setattr(context_window, "release_free_memory", lambda: trims.append(1))
    model, tok = make_model(pos_kind)
    spec = dataclasses.replace(CAPTURE_ALL, qkv=True)
    st = Stepper(model, tok, SEEDED, capture=spec)
    results = [st.set_prompt("ba cfa")]
    for _ in range(9):  # past the block of 12: the last steps slide the window
        results.append(st.step())
    results.append(st.back())
    assert results[-2].cropped > 0 and results[-1].T == results[-2].T
    assert len(trims) == 2 + results[-2].cropped  # the prompt, each slid step, Back
    for r in results:
        for name in HALF:
            assert getattr(r, name).dtype == np.float16, name
        for name in ("residual", "tok_emb", "norm_stats", "lens_probs"):
            assert getattr(r, name).dtype != np.float16, name
        rec, logits = full_forward(model, [int(i) for i in r.ids])
        np.testing.assert_allclose(r.logits, logits, atol=ATOL)  # the model is unchanged
        np.testing.assert_allclose(r.residual, torch.stack(rec.resid)[:, 0].numpy(), atol=ATOL)
        probs = torch.stack(rec.attn_probs)[:, 0].numpy()
        np.testing.assert_allclose(r.attention, probs, atol=5e-4)  # float16 of weights ≤ 1
        for name, ref in (("ffn", rec.ffn_hidden), ("attn_out", rec.attn_out),
                          ("mlp_out", rec.mlp_out)):
            want = torch.stack(ref)[:, 0].numpy()
            np.testing.assert_allclose(getattr(r, name), want, rtol=1e-3,
                                       atol=1e-3 * np.abs(want).max())
        scores = torch.stack(rec.attn_scores)[:, 0].numpy()
        assert np.asarray(r.scores).dtype == np.float32
        np.testing.assert_allclose(r.scores, scores, rtol=2e-3, atol=2e-3 * np.abs(scores).max())
    # nothing kept the float32 scratch: the first result's maps did not change afterwards
    rec, _ = full_forward(model, [int(i) for i in results[0].ids])
    np.testing.assert_allclose(results[0].attention, torch.stack(rec.attn_probs)[:, 0].numpy(),
                               atol=5e-4)


def test_a_small_model_keeps_float32_buffers_and_gives_no_memory_back(monkeypatch):
    import model.context_window as context_window

    trims = []
    monkeypatch.setattr(context_window, "release_free_memory", lambda: trims.append(1))
    model, tok = make_model()
    st = Stepper(model, tok, SEEDED)
    r = st.set_prompt("ba cfa" * 3)  # past the block of 12: a slid window
    assert r.attention.dtype == r.ffn.dtype == np.float32 and not trims
