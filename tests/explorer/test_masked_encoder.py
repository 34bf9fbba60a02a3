"""A BERT-style encoder in the explorer: the session and worker mask tokens, pick the predicted
position and switch the causal comparison; the prompt strip, the prediction panel and the
attention panel show it; torch stays in the worker thread."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.session import ENCODER_NO_STEPS, Session
from model.shipped import MODELS

ENCODER = MODELS / "sonnets_encoder.safetensors"
TEXT = "Shall I compare thee to a summer's day?"


@pytest.fixture
def session(qtbot):
    s = Session(device="cpu")
    s.prompt = TEXT
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.start(ENCODER)
    yield s
    s.close()


def test_session_masks_selects_and_compares(qtbot, session):
    s = session
    assert s.is_encoder
    r = s.result
    assert r.masked_positions == () and r.predicted_at == 0 and not r.is_causal
    p = TEXT.index("mmer") + 1
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_mask(p)
    r = s.result
    assert r.masked_positions == (p,) and r.predicted_at == p and s.selected_token == p
    assert s.tokenizer.token_pieces([int(r.dist.order[0])]) == ["m"]  # "su█mer"
    q = TEXT.index("day")
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.select_position(q)
    assert s.result.predicted_at == q and s.result.masked_positions == (p,)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.set_causal_view(True)
    r = s.result
    assert r.causal_view and np.all(np.triu(r.attention, k=1) == 0)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_mask(p)  # restored, still under the causal mask
    assert s.result.masked_positions == () and s.result.causal_view


def test_an_encoder_does_not_step(qtbot, session):
    s = session
    handled = s.worker.requests_handled
    for act in (s.step, s.back, s.reset, s.resample, lambda: s.run(5)):
        with qtbot.waitSignal(s.message, timeout=2000) as msg:
            act()
        assert msg.args == [ENCODER_NO_STEPS]
    assert not s.running and s.worker.requests_handled == handled


def test_mask_written_in_the_prompt_is_no_unknown_character(qtbot, session):
    s = session
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        check = s.set_prompt("Shall I com[MASK]are thee")
    assert check.unknown == () and check.n_tokens == len("Shall I com_are thee")
    p = len("Shall I com")
    assert s.result.masked_positions == (p,) and s.result.predicted_at == p
    assert s.selected_token == p
    # a typed [MASK] has no original: a click says so in the status line, no dialog
    with qtbot.waitSignal(s.message, timeout=10000) as msg:
        s.toggle_mask(p)
    assert "no original to restore" in msg.args[0]
