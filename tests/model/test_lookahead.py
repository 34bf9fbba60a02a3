"""Stepper.lookahead: the next step's pass run ahead of time is adopted only when it is exactly
what step() would compute, and running it changes nothing anyone can see."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import model.context_window as context_window
from model.config import CAPTURE_NOTHING, CaptureSpec, SampleConfig
from model.stepper import Stepper
from tests.model.test_stepper import (
    POS_KINDS,
    ForwardCounter,
    assert_matches_full,
    assert_same,
    make_model,
    snapshot,
)

SEEDED = SampleConfig(temperature=1.2, seed=3)


def twins(pos_kind="learned", block_size=7, prompt="abc", sample=SEEDED, **kw):
    """Two steppers on one model and prompt: ``a`` runs ahead, ``b`` never does."""
    model, tok = make_model(pos_kind, block_size=block_size)
    a, b = Stepper(model, tok, sample, **kw), Stepper(model, tok, sample, **kw)
    a.set_prompt(prompt)
    b.set_prompt(prompt)
    return model, tok, a, b


@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_steps_after_lookahead_equal_plain_steps_across_the_slide(pos_kind):
    model, _, a, b = twins(pos_kind)
    for i in range(12):  # from 3 tokens to 15: cached steps, the step that fills it, slides
        assert a.lookahead() is True
        ra, rb = a.step(), b.step()
        assert a.lookahead_hits == i + 1
        assert_same(snapshot(ra), snapshot(rb))
        assert_matches_full(ra, model)


def test_an_adopted_step_runs_no_forward_pass():
    model, _, a, _ = twins(block_size=6, prompt="abcdef")  # full: the next step slides
    a.lookahead()
    counter = ForwardCounter(model)
    a.step()
    counter.handle.remove()
    assert counter.n == 0 and a.lookahead_hits == 1


def test_lookahead_changes_nothing_visible():
    _, _, a, _ = twins(block_size=6, prompt="abcd")
    for _ in range(4):  # below the block, at it, past it
        r = a.result
        before, ids, text = snapshot(r), a.ids, a.text
        assert a.lookahead()
        assert a.result is r and a.ids == ids and a.text == text
        assert_same(snapshot(r), before)
        a.step()


def test_the_same_lookahead_is_not_run_twice():
    model, _, a, _ = twins(block_size=6, prompt="abcdef")
    counter = ForwardCounter(model)
    assert a.lookahead() is True
    assert a.lookahead() is False
    counter.handle.remove()
    assert counter.n == 1


@pytest.mark.parametrize("prompt", ["abc", "abcdefg"])  # cached row / slid window
def test_a_forced_other_token_drops_the_lookahead(prompt):
    model, tok, a, b = twins(prompt=prompt)
    a.lookahead()
    other = (a.result.planned + 1) % tok.vocab_size
    ra, rb = a.step(force=other), b.step(force=other)
    assert a.lookahead_hits == 0
    assert_same(snapshot(ra), snapshot(rb))
    assert_matches_full(ra, model)


@pytest.mark.parametrize("prompt", ["abc", "abcdefg"])
def test_the_same_token_forced_adopts_the_lookahead(prompt):
    _, _, a, b = twins(prompt=prompt)
    a.lookahead()
    planned = a.result.planned
    ra, rb = a.step(force=planned), b.step(force=planned)
    assert a.lookahead_hits == 1
    assert ra.forced and ra.chosen == planned
    assert_same(snapshot(ra), snapshot(rb))


def test_new_settings_plan_another_token_and_the_next_lookahead_follows():
    model, _, a, b = twins(prompt="abcdefg", sample=SampleConfig(temperature=1.0, seed=1))
    a.lookahead()
    first = a.result.planned
    # greedy picks the argmax: choose settings whose planned token differs from the old one
    for temp in (0.0, 2.5, 0.3):
        ra = a.redistribute(SampleConfig(temperature=temp, seed=1))
        if ra.planned != first:
            break
    else:
        pytest.skip("no setting changed the planned token")
    b.redistribute(ra.sample)
    assert a.lookahead() is True  # the old one was for another token
    rb = b.step()
    ra = a.step()
    assert a.lookahead_hits == 1 and ra.chosen == rb.chosen
    assert_same(snapshot(ra), snapshot(rb))
    assert_matches_full(ra, model)


def test_changed_weights_are_never_served_from_a_lookahead():
    model, _, a, _ = twins(prompt="abcdefg")
    a.lookahead()
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)  # an in-place change, e.g. a training step
    r = a.step()
    assert a.lookahead_hits == 0
    assert_matches_full(r, model)


def test_a_new_head_mask_is_never_served_from_a_lookahead():
    model, _, a, _ = twins(prompt="abc")
    a.lookahead()
    model.set_head_mask([[1, 0], [1, 1]])
    a.refresh()  # what a caller does after changing the mask: the lookahead is dropped
    r = a.step()
    assert a.lookahead_hits == 0
    assert_matches_full(r, model)


def test_capture_change_drops_the_lookahead():
    _, _, a, _ = twins(prompt="abcdefg")
    a.lookahead()
    a.set_capture(CaptureSpec(residual=False))
    r = a.step()
    assert a.lookahead_hits == 0 and r.residual is None and r.attention is not None


def test_no_lookahead_when_its_buffers_would_be_too_large(monkeypatch):
    _, _, a, _ = twins(prompt="abcdefg")  # past the block: a lookahead needs its own buffers
    monkeypatch.setattr(context_window, "LOOKAHEAD_MAX_BYTES", 0)
    assert a.lookahead() is False and not a.has_lookahead
    a2 = twins(prompt="abc")[2]  # below it: one row in the live buffers, no extra memory
    assert a2.lookahead() is True


def test_no_lookahead_without_a_prompt_or_for_inference_mode_weights():
    model, tok = make_model()
    assert Stepper(model, tok).lookahead() is False
    with torch.inference_mode():
        m2, tok2 = make_model()
    st = Stepper(m2, tok2)
    st.set_prompt("ab")
    assert st.lookahead() is False  # such weights have no version counter to watch


def test_lookahead_without_capture():
    model, _, a, b = twins(prompt="abcdefg", capture=CAPTURE_NOTHING)
    for _ in range(3):
        a.lookahead()
        ra, rb = a.step(), b.step()
        np.testing.assert_array_equal(ra.logits, rb.logits)
    assert a.lookahead_hits == 3


@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_random_walk_with_lookaheads_equals_one_without(pos_kind):
    """Every action in a random order, a lookahead before most of them: each result is exactly
    the one a stepper that never runs ahead gives, and results held earlier never change."""
    model, tok, a, b = twins(pos_kind, sample=SampleConfig(temperature=1.5, seed=9))
    rng = np.random.default_rng(1)
    held = []
    for _ in range(90):
        if rng.random() < 0.7:
            a.lookahead()
        op = rng.choice(["step", "step", "step", "force", "back", "rewind", "resample", "redist",
                         "prompt"])
        if op in ("back", "resample") and a.n_generated == 0:
            op = "step"
        if op == "step":
            ra, rb = a.step(), b.step()
        elif op == "force":
            t = int(rng.integers(tok.vocab_size))
            ra, rb = a.step(force=t), b.step(force=t)
        elif op == "back":
            ra, rb = a.back(), b.back()
        elif op == "rewind":
            n = int(rng.integers(a.n_generated + 1))
            ra, rb = a.rewind_to(n), b.rewind_to(n)
        elif op == "resample":
            ra, rb = a.resample(), b.resample()
        elif op == "redist":
            s = SampleConfig(temperature=float(rng.uniform(0.2, 2.0)),
                             top_k=int(rng.integers(0, 6)), seed=9)
            ra, rb = a.redistribute(s), b.redistribute(s)
        else:
            p = "".join(rng.choice(list("abcdefgh "), size=int(rng.integers(1, 10))))
            ra, rb = a.set_prompt(p), b.set_prompt(p)
        assert a.ids == b.ids
        assert_same(snapshot(ra), snapshot(rb))
        if rng.random() < 0.3:
            held.append((ra, snapshot(ra)))
    assert a.lookahead_hits > 10
    assert_matches_full(a.result, model)
    for r, snap in held:
        assert_same(snapshot(r), snap)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_lookahead_on_cuda_matches_the_cpu(pos_kind):
    model, tok = make_model(pos_kind, block_size=8)
    gpu = make_model(pos_kind, block_size=8)[0].to("cuda")
    st = Stepper(gpu, tok, SEEDED)
    st.set_prompt("abc")
    for _ in range(10):  # cached steps, then past the block size
        assert st.lookahead()
        r = st.step()
        assert_matches_full(r, model, atol=1e-4)
    assert st.lookahead_hits == 10
    st.lookahead()
    r = st.step(force=(st.result.planned + 1) % tok.vocab_size)  # dropped, computed afresh
    assert st.lookahead_hits == 10
    assert_matches_full(r, model, atol=1e-4)
