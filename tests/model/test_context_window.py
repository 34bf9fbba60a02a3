"""ContextWindow: the KV cache and capture buffers of a text's last block_size tokens. Cached
rows match a full pass, the window slides, shrinking forgets rows, and a fork (lookahead) is
adopted only for its own token with unchanged weights and changes nothing until then."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.config import CAPTURE_ALL, CAPTURE_NOTHING, CaptureSpec
from model.context_window import ContextWindow
from tests.model.test_stepper import ARRAYS, ATOL, POS_KINDS, full_forward, make_model

BLOCK = 6


def window(pos_kind="learned", capture=CAPTURE_ALL):
    model, _ = make_model(pos_kind, block_size=BLOCK)
    return model, ContextWindow(model, capture, lens_k=3)


def assert_window_matches_full(w, model, ids, logits):
    start = max(0, len(ids) - BLOCK)
    rec, want = full_forward(model, ids[start:])
    np.testing.assert_allclose(logits, want, atol=ATOL)
    v = w.views(len(ids) - start)
    np.testing.assert_allclose(v["attention"], torch.stack(rec.attn_probs)[:, 0].numpy(),
                               atol=ATOL)
    np.testing.assert_allclose(v["scores"], torch.stack(rec.attn_scores)[:, 0].numpy(),
                               atol=ATOL)  # above the diagonal too: from the recorded queries
    np.testing.assert_allclose(v["residual"], torch.stack(rec.resid)[:, 0].numpy(), atol=ATOL)


@pytest.mark.parametrize("pos_kind", POS_KINDS)
def test_advance_matches_a_full_pass_and_slides(pos_kind):
    model, w = window(pos_kind)
    ids = [1, 2, 3]
    logits = w.rebuild(ids)
    assert w.valid and w.start == 0
    for tok in [4, 5, 6, 7, 8, 9]:
        ids.append(tok)
        logits = w.advance(ids)
        assert w.start == max(0, len(ids) - BLOCK)
        assert_window_matches_full(w, model, ids, logits)
    assert w.start == 3  # nine tokens, a window of six


def test_shrink_forgets_rows_and_rebuilds_a_moved_window():
    model, w = window()
    ids = [1, 2, 3, 4, 5, 6, 7, 8]
    w.rebuild(ids)
    assert w.start == 2
    w.shrink(ids[:5])  # the window moves back to the start: run again now
    assert w.valid and w.start == 0
    ids = ids[:5]
    ids.append(9)
    assert_window_matches_full(w, model, ids, w.advance(ids))
    w.shrink(ids[:3])  # same start: the cache is cut back, nothing runs
    assert w.valid and w.start == 0
    w.shrink([1, 2], rebuild=False)
    assert w.valid  # no move, so nothing to rebuild either way


def test_a_moved_window_without_rebuild_waits_for_the_next_pass():
    model, w = window(capture=CAPTURE_NOTHING)
    ids = [1, 2, 3, 4, 5, 6, 7, 8]
    w.rebuild(ids)
    w.shrink(ids[:4])  # nothing captured: no reason to run now
    assert not w.valid and w.views(4) == {}
    ids = [*ids[:4], 5]
    np.testing.assert_allclose(w.advance(ids), full_forward(model, ids)[1], atol=ATOL)
    assert w.valid and w.start == 0


@pytest.mark.parametrize("n", [3, BLOCK])  # a cached row / a fork that slides the window
def test_fork_changes_nothing_until_adopted(n):
    model, w = window()
    ids = list(range(1, n + 1))
    w.rebuild(ids)
    seen = {k: v.copy() for k, v in w.views(min(n, BLOCK)).items()}
    assert w.fork(ids, 7) is True and w.forked
    assert w.fork(ids, 7) is False  # already there
    now = w.views(min(n, BLOCK))
    for k in ARRAYS:
        if k in seen:
            np.testing.assert_array_equal(now[k], seen[k])
    assert w.start == 0
    logits = w.adopt(7)
    assert logits is not None and not w.forked
    ids.append(7)
    assert_window_matches_full(w, model, ids, logits)
    assert w.start == max(0, len(ids) - BLOCK)


def test_fork_for_another_token_is_dropped():
    model, w = window()
    ids = [1, 2, 3]
    w.rebuild(ids)
    w.fork(ids, 7)
    assert w.adopt(8) is None and not w.forked
    ids.append(8)
    assert_window_matches_full(w, model, ids, w.advance(ids))  # the fork's row is gone


def test_fork_is_dropped_when_the_weights_or_capture_change():
    model, w = window()
    ids = [1, 2, 3]
    w.rebuild(ids)
    w.fork(ids, 7)
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)  # in place: the version counter moves
    assert w.adopt(7) is None and not w.forked
    ids.append(7)
    assert_window_matches_full(w, model, ids, w.rebuild(ids))  # new weights: the whole window
    w.fork(ids, 2)
    w.set_capture(CaptureSpec(attention=True, scores=False))
    assert not w.forked and not w.valid


def test_no_fork_when_the_buffers_are_too_large(monkeypatch):
    import model.context_window as context_window

    model, w = window()
    ids = list(range(1, BLOCK + 1))  # the next token slides: the fork needs its own buffers
    w.rebuild(ids)
    monkeypatch.setattr(context_window, "LOOKAHEAD_MAX_BYTES", 0)
    assert w.fork(ids, 3) is False and not w.forked
