"""The next-token panel: live re-ranking without a forward pass, forced steps, sampling controls."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt

from model.config import SampleConfig
from model.sampling import next_token_distribution


def test_bars_show_the_top_candidates(qtbot, window):
    d = window.distribution_panel
    d.controls.n_shown.setValue(7)
    d.flush()
    r = window.session.result
    assert d.shown_ids.tolist() == r.dist.order[:7].tolist()
    widths = d.bars.opts["width"]
    assert np.allclose(widths, r.dist.probs[r.dist.order[:7]])
    assert d.labels.texts()[0].endswith("%") and len(d.labels.texts()) == 7
    assert "entropy" in d.summary.text()


def test_temperature_slider_reranks_without_a_forward_pass(qtbot, window, count_forwards):
    s, d = window.session, window.distribution_panel
    s.worker.lookahead_enabled = False  # no pass run ahead while idle: count only the re-rank's
    qtbot.waitUntil(lambda: not s.busy and s.worker.pending == 0)
    calls = count_forwards(s.worker._model)
    logits = s.result.logits.copy()
    got = s.results_received
    d.controls.temp_slider.setValue(40)  # 2.0
    d.flush()  # the GUI thread has redrawn from the cached logits
    assert d.controls.temp_box.value() == 2.0
    expect = next_token_distribution(logits, 2.0)
    assert np.allclose(d.bars.opts["width"], expect.probs[expect.order[:d.shown_ids.size]])
    assert s.sample.temperature == 2.0
    qtbot.waitUntil(lambda: s.results_received > got, timeout=5000)  # the worker's answer
    assert s.result.sample.temperature == 2.0
    got = s.results_received
    d.controls.temp_slider.setValue(0)  # greedy: all mass on the argmax
    d.flush()
    assert d.controls.temp_box.text().startswith("0")
    assert d.bars.opts["width"][0] == 1.0
    assert s.result.planned == int(np.argmax(logits))  # known before the worker answers
    qtbot.waitUntil(lambda: s.results_received > got, timeout=5000)
    assert s.result.planned == int(np.argmax(logits)) and s.result.sample.temperature == 0
    assert calls[0] == 0
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.step()
    assert calls[0] == 1 and s.result.chosen_rank == 0


def test_top_k_and_top_p_grey_out_and_mark_the_cut_off(qtbot, window):
    s, d = window.session, window.distribution_panel
    d.controls.n_shown.setValue(10)
    d.controls.top_k.setValue(3)
    d.flush()
    assert s.sample.top_k == 3
    assert d.cutoff.isVisible() and d.cutoff.value() == 2.5
    assert d.labels.texts()[3].startswith("(")  # removed candidates: value in brackets
    d.controls.top_k.setValue(0)
    d.controls.top_p.setValue(0.5)
    d.flush()
    n_kept = s.result.dist.n_kept
    assert s.sample.top_p == 0.5 and n_kept < s.tokenizer.vocab_size
    if n_kept < 10:
        assert d.cutoff.value() == n_kept - 0.5


def test_logits_toggle(qtbot, window):
    s, d = window.session, window.distribution_panel
    d.controls.show_logits.setChecked(True)
    d.flush()
    ids = d.shown_ids
    assert np.allclose(d.bars.opts["width"], s.result.logits[ids])
    assert "logit" in d.plot.getAxis("bottom").labelText


def test_clicking_a_bar_forces_that_token(qtbot, window):
    s, d = window.session, window.distribution_panel
    d.controls.n_shown.setValue(8)
    d.flush()
    qtbot.waitUntil(lambda: d.view.isVisible())
    rank = 4
    target = int(d.shown_ids[rank])
    vb = d.plot.getViewBox()
    x = float(d.bars.opts["width"][rank]) / 2
    scene = vb.mapViewToScene(QPointF(x, rank))
    pos = d.view.mapFromScene(scene)
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.mouseClick(d.view.viewport(), Qt.LeftButton, pos=QPoint(pos.x(), pos.y()))
    r = s.result
    assert r.chosen == target and r.forced and r.chosen_rank == rank
    d.flush()
    assert "forced" in d.summary.text()


def test_fixed_seed_is_repeatable_and_resample_draws_again(qtbot, window):
    s, d = window.session, window.distribution_panel
    d.controls.seed_on.setChecked(True)
    d.controls.seed.setValue(7)
    d.controls.temp_box.setValue(1.5)
    assert s.sample == SampleConfig(temperature=1.5, top_k=0, top_p=1.0, seed=7)
    texts = []
    for _ in range(2):
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.reset()
        s.run(8, 0)
        qtbot.waitUntil(lambda: s.result.n_generated == 8 and not s.running, timeout=10000)
        texts.append(s.result.text)
    assert texts[0] == texts[1]
    before = s.result
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.mouseClick(d.controls.resample_button, Qt.LeftButton)
    after = s.result
    assert after.n_generated == before.n_generated and after.draw == 0
    assert after.chosen_draw == 1  # a new draw for the same position


def test_percent_axis_has_no_tick_past_100_percent(qtbot):
    """The range runs past 100 % only to make room for a sure bar's label."""
    from explorer.panels.distribution import _PercentAxis

    axis = _PercentAxis("bottom")
    values = [v for _, vs in axis.tickValues(0.0, 1.45, 600) for v in vs]
    assert values and max(values) <= 1.0 and 1.0 in [round(v, 9) for v in values]
    axis.percent = False  # logits: the whole range
    assert max(v for _, vs in axis.tickValues(0.0, 1.45, 600) for v in vs) > 1.0
