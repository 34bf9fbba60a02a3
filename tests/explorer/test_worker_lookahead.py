"""The inference worker runs the planned step's pass while it waits for the user
(Stepper.lookahead): a Step then gets the same result without computing it, anything else
computes as before."""
from __future__ import annotations

import numpy as np

from model.checkpoints import load_checkpoint
from model.stepper import Stepper

FULL = "the quick brown fox jumps over the lazy dog"  # longer than the tiny model's 32 tokens


def reference(path, result_before, prompt, force=None):
    """What a fresh stepper gives for one step after ``prompt`` with the same draws."""
    ck = load_checkpoint(path)
    st = Stepper(ck.model, ck.tokenizer, result_before.sample)
    st.auto_seed = result_before.auto_seed
    st.set_prompt(prompt)
    return st.step(force=force)


def test_a_step_uses_the_pass_run_ahead(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], prompt=FULL)
    s = w.session
    qtbot.waitUntil(lambda: s.worker.lookaheads >= 1, timeout=10000)  # ran while idle
    before = s.result
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step()
    assert s.worker.lookahead_hits == 1
    r = s.result
    assert r.chosen == before.planned and r.cropped == before.cropped + 1  # the window slid
    ref = reference(tiny_models["tiny"], before, FULL)
    np.testing.assert_array_equal(r.ids, ref.ids)
    np.testing.assert_allclose(r.logits, ref.logits, atol=1e-5)
    np.testing.assert_allclose(r.attention, ref.attention, atol=1e-5)
    # and the next one is run ahead in turn
    qtbot.waitUntil(lambda: s.worker.lookaheads >= 2, timeout=10000)


def test_a_forced_other_token_is_computed_afresh(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], prompt=FULL)
    s = w.session
    qtbot.waitUntil(lambda: s.worker.lookaheads >= 1, timeout=10000)
    before = s.result
    other = int(before.dist.order[1] if before.dist.order[0] == before.planned
                else before.dist.order[0])
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step(force=other)
    assert s.worker.lookahead_hits == 0
    assert s.result.chosen == other and s.result.forced
    ref = reference(tiny_models["tiny"], before, FULL, force=other)
    np.testing.assert_allclose(s.result.logits, ref.logits, atol=1e-5)


def test_no_lookahead_when_switched_off_or_while_running(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], prompt=FULL)
    s = w.session
    qtbot.waitUntil(lambda: s.worker.lookaheads >= 1, timeout=10000)
    s.worker.lookahead_enabled = False
    n = s.worker.lookaheads
    for _ in range(2):
        with qtbot.waitSignal(s.step_ready, timeout=10000):
            s.step()
    qtbot.waitUntil(lambda: not s.busy and s.worker.pending == 0)
    assert s.worker.lookaheads == n
    s.worker.lookahead_enabled = True
    with qtbot.waitSignal(s.running_changed, timeout=10000,
                          check_params_cb=lambda running: not running):
        s.run(5, 0)
    # a Run steps without running ahead; once it ends the worker runs the next step ahead
    qtbot.waitUntil(lambda: s.worker.lookaheads == n + 1, timeout=10000)


def test_the_window_painting_a_result_starts_the_lookahead(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], prompt=FULL)
    s = w.session
    s.worker.lookahead_delay_ms = 600_000  # no fallback: only the paint can start it
    qtbot.waitUntil(lambda: not s.busy and s.worker.pending == 0)
    n = s.worker.lookaheads
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step()
    w.repaint()  # offscreen windows paint too; this one does it now
    qtbot.waitUntil(lambda: s.worker.lookaheads > n, timeout=10000)


def test_the_lookahead_keeps_to_one_thread_while_training(monkeypatch):
    from explorer import inference_worker, training_worker

    monkeypatch.setattr(training_worker, "_BUSY", 0)
    monkeypatch.setattr(inference_worker.os, "cpu_count", lambda: 2)
    assert inference_worker.lookahead_threads() == 2
    training_worker._busy(+1)
    assert training_worker.training_busy() and inference_worker.lookahead_threads() == 1
    training_worker._busy(-1)
    assert not training_worker.training_busy()
