"""Experiments in the GUI: switching heads off (ablation panel, the all-heads view, ghost bars,
the status bar and token strip, H), the Q, K, V numbers and the rollout view, and their exports."""
from __future__ import annotations

import math

import numpy as np
import pytest
from _panel_support import make_session, shown, tiny_model
from PySide6.QtCore import Qt

from explorer.panels.ablation import AblationPanel
from explorer.panels.attention.panel import AttentionPanel
from model.ablation import Ablation
from model.head_effects import head_effects
from model.rollout import rollout_row


@pytest.fixture
def session():
    return make_session(tiny_model(n_layer=2, n_head=3, n_embd=24), "hello there", steps=4)


def test_ablation_panel_switches_heads_and_ranks_them(qtbot, session, tmp_path):
    panel = shown(qtbot, AblationPanel(session))
    assert session.rank_requests == 1  # shown: the ranking of the current result was asked for
    panel.redraw_now()  # the answer (a worker's signal in the app) is drawn at the next redraw
    assert session.rank_requests == 1
    r = session.result
    want = head_effects(session.network, r.ids.tolist(), int(r.planned)).delta
    ranked = [d for *_, d in panel.ranking]
    np.testing.assert_allclose(ranked, np.sort(want, axis=None), atol=1e-6)
    np.testing.assert_allclose(panel.rank_bars.opts["width"], np.sort(want, axis=None), atol=1e-6)
    panel.buttons[(1, 2)].click()
    assert session.ablation.heads == {(1, 2)}
    assert session.result.ablation.heads == {(1, 2)}
    assert panel.buttons[(1, 2)].isChecked() and "off" in panel.buttons[(1, 2)].text()
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("mean"))
    assert session.result.ablation == Ablation(frozenset({(1, 2)}), "mean")
    panel.redraw_now()  # asks for the ranking under mean ablation
    panel.redraw_now()  # draws it
    assert session.head_effects is not None and session.head_effects.mode == "mean"
    csv = np.loadtxt(panel.plot.export_csv(tmp_path / "rank.csv"), delimiter=",")
    np.testing.assert_allclose(csv, np.sort(session.head_effects.delta, axis=None), atol=1e-6)
    assert panel.plot.export_png(tmp_path / "rank.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in panel.plot.export_svg(tmp_path / "rank.svg").read_text()[:2000]
    session.restore_heads()
    assert not session.result.ablation and not any(b.isChecked() for b in panel.buttons.values())


def test_x_over_a_head_of_the_all_heads_view_switches_it_off(qtbot, session):
    panel = shown(qtbot, AttentionPanel(session))
    panel.set_view("grid")
    panel.redraw_now()
    _rows, _cols, cell, _f = panel._grid_geom
    panel._on_grid_hover(1 * cell + 2, 2 * cell + 1)  # layer 1, head 2
    qtbot.keyClick(panel, Qt.Key.Key_X)
    assert session.ablation.heads == {(1, 2)}
    panel.redraw_now()
    x, _y = panel._ablated_marks.getData()
    assert x is not None and len(x) == 4  # one cross over the switched-off head
    qtbot.keyClick(panel, Qt.Key.Key_X)
    assert not session.ablation


def test_qk_numbers_reproduce_the_recorded_scores_and_weights(qtbot, session, tmp_path):
    panel = shown(qtbot, AttentionPanel(session))
    r = session.result
    session.select_token(5)
    panel.set_layer(1)
    panel.set_head(2)
    panel.set_stage("qk")
    panel.redraw_now()
    assert panel.stack.currentWidget() is panel.qkv
    steps = panel.qkv.data["steps"]  # (T, 4): q·k, ÷√d, masked, softmax
    hs = r.q.shape[-1]
    np.testing.assert_allclose(steps[:, 0], r.k[1, 2] @ r.q[1, 2, 5], rtol=1e-5)
    np.testing.assert_allclose(steps[:6, 1], r.scores[1, 2, 5, :6], atol=1e-5)
    assert np.isneginf(steps[6:, 2]).all()
    np.testing.assert_allclose(steps[:, 3], r.attention[1, 2, 5])
    text = panel.qkv.hover_text("steps", 3, 0)
    assert f"{float(r.k[1, 2, 3] @ r.q[1, 2, 5]):+.4f}" in text and "softmax" in text
    assert "masked" in panel.qkv.hover_text("steps", 7, 2)
    assert f"÷√{hs}" in panel.qkv.plots["steps"].col_labels[1]
    m = np.loadtxt(panel.qkv.export_csv(tmp_path / "qk.csv"), delimiter=",")
    assert m.shape == (r.T, 4 + 2 * hs)
    np.testing.assert_allclose(m[:, 3], r.attention[1, 2, 5], atol=1e-6)
    assert panel.current_plot() is panel.qkv
    assert panel.qkv.export_png(tmp_path / "qk.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in panel.qkv.export_svg(tmp_path / "qk.svg").read_text()[:2000]


def test_times_v_numbers_make_the_head_output_and_the_attention_output(qtbot, session):
    panel = shown(qtbot, AttentionPanel(session))
    r = session.result
    panel.set_layer(0)
    panel.set_head(1)
    panel.set_stage("xv")
    panel.redraw_now()
    d = panel.qkv.data
    q = r.T - 1  # nothing selected: the last token
    out = r.attention[0, 1, q] @ r.v[0, 1]
    np.testing.assert_allclose(d["out"][0], out, atol=1e-5)
    hs = r.q.shape[-1]
    np.testing.assert_allclose(d["heads"][0, hs:2 * hs], out, atol=1e-5)  # head 1's slice
    proj = session.network.h[0].attn.c_proj
    np.testing.assert_array_equal(d["W_O"], proj.weight.detach().numpy())  # from the result
    y = d["W_O"] @ d["heads"][0] + proj.bias.detach().numpy()
    np.testing.assert_allclose(y, d["attn_out"][0], atol=1e-5)
    a = float(r.attention[0, 1, q, 2])
    assert f"a = {a:.4f}" in panel.qkv.hover_text("weighted", 2, 0)
    assert "W_O" in panel.formula.text() or "W<sub>O</sub>" in panel.formula.text()


def test_rollout_view_shows_the_rollout_of_the_selected_token(qtbot, session, tmp_path):
    panel = shown(qtbot, AttentionPanel(session))
    panel.set_view("rollout")
    panel.redraw_now()
    r = session.result
    np.testing.assert_allclose(panel.rollout_bars.opts["height"], rollout_row(r.attention, r.T - 1))
    session.select_token(3)
    panel.redraw_now()
    want = rollout_row(r.attention, 3)
    np.testing.assert_allclose(panel.rollout_bars.opts["height"], want)
    assert math.isclose(float(want.sum()), 1.0, rel_tol=1e-9)
    assert panel.current_plot() is panel.rollout
    csv = np.loadtxt(panel.rollout.export_csv(tmp_path / "flow.csv"), delimiter=",")
    np.testing.assert_allclose(csv, want, atol=1e-7)
    assert panel.rollout.export_png(tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"


def test_ghost_bars_status_bar_token_strip_and_h(qtbot, window):
    s, d = window.session, window.distribution_panel
    assert not d.ghost_bars.isVisible()
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_head(0, 1)
    d.flush()
    r = s.result
    assert r.ablation.heads == {(0, 1)}
    intact = r.intact_dist()
    ids = d.shown_ids
    np.testing.assert_allclose(d.ghost_values, intact.probs[ids])
    np.testing.assert_allclose(d.bars.opts["width"], r.dist.probs[ids])
    assert d.ghost_bars.isVisible() and "every head on" in d.summary.text()
    assert "L0H1" in window.ablation_label.text() and window.ablation_label.isVisible()
    assert "L0H1" in window.prompt_panel.ablation_note.text()
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step()  # the heads stay off through stepping
    assert s.result.ablation.heads == {(0, 1)}
    window.activateWindow()
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        window.act_restore_heads.trigger()  # H
    d.flush()
    assert not s.result.ablation and not d.ghost_bars.isVisible()
    assert not window.ablation_label.isVisible()
    assert window.act_restore_heads.shortcut().toString() == "H"


def test_clicking_a_head_of_an_attention_block_in_the_architecture_panel_switches_it(qtbot):
    from explorer.panels.architecture.panel import ArchitecturePanel

    s = make_session(tiny_model(n_layer=2, n_head=3, n_embd=24), "hello there", steps=2)
    p = shown(qtbot, ArchitecturePanel(s))
    p.select_block("L1.attn")
    T = s.result.T
    p.detail_heads.clicked.emit(2, 2 * T + 1)  # a cell of head 2
    assert s.ablation.heads == {(1, 2)} and s.result.ablation.heads == {(1, 2)}
    p.detail_heads.clicked.emit(0, 2 * T)
    assert not s.ablation
