"""Attention panel: the images show exactly the captured tensors, and every view responds."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from _panel_support import make_session, shown, tiny_model
from PySide6.QtCore import QPoint, Qt

from explorer.panels.attention.panel import MATRIX_STAGES, AttentionPanel
from explorer.widgets.plot_helpers import MASKED_CODE, quantize
from model.tokenizer import printable


@pytest.fixture
def panel(qtbot):
    session = make_session(tiny_model(n_layer=2, n_head=3, n_embd=24), "hello there", steps=4)
    return shown(qtbot, AttentionPanel(session))


def _expected(r, stage, layer, head):
    if stage == "probs":
        return r.attention[layer, head]
    if stage == "scores":
        return r.scores[layer, head]
    return r.masked_scores()[layer, head]


def test_head_image_equals_captured_tensors_for_every_layer_head_and_stage(panel):
    r = panel.session.result
    L, H, T, _ = r.attention.shape
    lower = np.tril(np.ones((T, T), dtype=bool))
    for stage in MATRIX_STAGES:
        panel.set_stage(stage)
        for layer in range(L):
            for head in range(H):
                panel.set_layer(layer)
                panel.set_head(head)
                panel.redraw_now()
                img = panel.heatmap.image.image  # what the ImageItem holds
                want = _expected(r, stage, layer, head)
                assert img.shape == (T, T)
                if stage == "scores":  # before the mask: the future is shown too
                    np.testing.assert_array_equal(img, want)
                else:  # masked future is NaN in the image (drawn hatched)
                    np.testing.assert_array_equal(img[lower], want[lower])
                    assert np.isnan(img[~lower]).all()
                # the exported values are the tensor itself: exact 0 / -inf above the diagonal
                np.testing.assert_array_equal(panel.heatmap.matrix, want)
    # colour bar: fixed to [0, 1] for probabilities, adapted to the values for scores
    panel.set_stage("probs")
    panel.redraw_now()
    assert panel.heatmap.colorbar.levels() == (0.0, 1.0)
    panel.set_stage("scores")
    panel.redraw_now()
    lo, hi = panel.heatmap.colorbar.levels()
    m = np.abs(r.scores[panel.layer, panel.head]).max()
    assert lo == pytest.approx(-m) and hi == pytest.approx(m)
    assert "QK" in panel.formula.text()


def test_controls_change_the_image_through_the_widgets(panel, qtbot):
    r = panel.session.result
    panel.layer_box.setCurrentIndex(1)
    panel.head_box.setCurrentIndex(2)
    panel.stage_box.setCurrentIndex(panel.stage_box.findData("scores"))
    qtbot.waitUntil(lambda: panel.heatmap.image.image is not None and np.array_equal(
        panel.heatmap.image.image, r.scores[1, 2]), timeout=2000)
    panel.average_box.setChecked(True)
    panel.stage_box.setCurrentIndex(panel.stage_box.findData("probs"))
    qtbot.waitUntil(lambda: np.allclose(panel.heatmap.matrix, r.attention[1].mean(0)),
                    timeout=2000)
    assert not panel.head_box.isEnabled()


def test_hover_text(panel, qtbot):
    r = panel.session.result
    lab = [printable(t) for t in r.tokens]
    panel.set_layer(1)
    panel.set_head(0)
    panel.redraw_now()
    qtbot.wait(20)
    pos = panel.heatmap.scene_pos_of(5, 2)
    view_pos = panel.heatmap.mapFromScene(pos)
    qtbot.mouseMove(panel.heatmap.viewport(), QPoint(int(view_pos.x()), int(view_pos.y())))
    if panel.hover_label.text().strip() == "":  # no real mouse tracking on this platform
        panel.heatmap.scene().sigMouseMoved.emit(pos)
    want = f"query '{lab[5]}' @5 → key '{lab[2]}' @2: {r.attention[1, 0, 5, 2]:.2f}"
    assert want in panel.hover_label.text()
    assert panel.hover_text(2, 5).endswith("(masked: the key comes later)")
    panel.set_stage("masked")
    panel.redraw_now()
    assert "−∞" in panel.hover_text(2, 5)


def test_selected_token_highlights_its_row(panel):
    panel.session.select_token(4)
    assert panel.heatmap.highlighted_row == 4
    panel.session.select_token(-1)
    assert panel.heatmap.highlighted_row == -1


def test_all_heads_is_one_image_and_a_click_opens_that_head(panel, qtbot):
    r = panel.session.result
    L, H, T, _ = r.attention.shape
    panel.set_view("grid")
    panel.redraw_now()
    img = panel.grid.image.image  # one indexed image: colour codes, MASKED_CODE = hatched
    values = panel.grid.matrix  # the values behind it (exported as CSV)
    assert img.shape == values.shape == (L * T, H * T) and img.dtype == np.uint8
    lower = np.tril(np.ones((T, T), dtype=bool))
    for layer in range(L):
        for head in range(H):
            rows, cols = slice(layer * T, (layer + 1) * T), slice(head * T, (head + 1) * T)
            np.testing.assert_array_equal(values[rows, cols], r.attention[layer, head])
            cell = img[rows, cols]
            np.testing.assert_array_equal(cell[lower],
                                          quantize(r.attention[layer, head], (0, 1))[lower])
            assert (cell[~lower] == MASKED_CODE).all()
    assert "layer 1, head 2" in panel.grid_hover_text(T + 3, 2 * T + 1)
    # a real click on cell (layer 1, head 2)
    qtbot.wait(20)  # let the view range settle before mapping a cell to the screen
    pos = panel.grid.mapFromScene(panel.grid.scene_pos_of(T + T // 2, 2 * T + T // 2))
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(int(pos.x()), int(pos.y())))
    qtbot.waitUntil(lambda: panel.view == "head", timeout=2000)
    assert (panel.layer, panel.head, panel.average) == (1, 2, False)
    panel.redraw_now()
    np.testing.assert_array_equal(panel.heatmap.matrix, r.attention[1, 2])
    # average over heads: one column per layer
    panel.set_view("grid")
    panel.set_average(True)
    panel.redraw_now()
    assert panel.grid.image.image.shape == (L * T, T)
    assert quantize(np.array([0.0, 0.5, 1.0]), (0, 1)).tolist() == [0, 127, 254]
    np.testing.assert_allclose(panel.grid.matrix[:T], r.attention[0].mean(0), rtol=1e-6)


def test_lines_view_draws_the_weights(panel):
    r = panel.session.result
    panel.set_view("lines")
    panel.set_layer(1)
    panel.set_head(1)
    panel.set_threshold(0.05)
    panel.redraw_now()
    seg = panel.lines.segments
    a = r.attention[1, 1]
    assert len(seg) == int((a >= 0.05).sum()) > 0
    np.testing.assert_array_equal(seg["weight"], a[seg["query"], seg["key"]])
    assert (seg["key"] <= seg["query"]).all()  # never a line into the future
    drawn = sum(len(c.xData) for c in panel.lines._curves.values() if c.isVisible())
    assert drawn == 2 * len(seg)
    # all heads of the layer, each in its own colour
    panel.set_lines_all_heads(True)
    panel.redraw_now()
    seg = panel.lines.segments
    assert set(seg["head"]) <= set(range(r.attention.shape[1]))
    assert len(seg) == int((r.attention[1] >= 0.05).sum())
    np.testing.assert_array_equal(seg["weight"], r.attention[1][seg["head"], seg["query"],
                                                                seg["key"]])
    # a selected token shows its own lines only
    panel.session.select_token(6)
    panel.redraw_now()
    assert (panel.lines.segments["query"] == 6).all()


def test_exports_png_svg_csv(panel, tmp_path):
    r = panel.session.result
    panel.set_stage("masked")
    panel.redraw_now()
    png = panel.heatmap.export_png(tmp_path / "a.png", width=400)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = panel.heatmap.export_svg(tmp_path / "a.svg")
    assert ET.parse(svg).getroot().tag.endswith("svg")
    csv = panel.heatmap.export_csv(tmp_path / "a.csv")
    np.testing.assert_array_equal(np.loadtxt(csv, delimiter=",").astype(np.float32),
                                  r.masked_scores()[panel.layer, panel.head])
    assert printable(r.tokens[0]) in csv.read_text(encoding="utf-8").splitlines()[1]
    panel.set_view("grid")
    panel.set_stage("probs")
    panel.redraw_now()
    m = np.loadtxt(panel.grid.export_csv(tmp_path / "g.csv"), delimiter=",")
    T = r.T
    np.testing.assert_allclose(m[T:2 * T, :T], r.attention[1, 0], rtol=1e-6)
    panel.set_view("lines")
    panel.redraw_now()
    seg = np.loadtxt(panel.lines.export_csv(tmp_path / "l.csv"), delimiter=",", ndmin=2)
    assert seg.shape == (len(panel.lines.segments), 4)
    assert panel.lines.export_png(tmp_path / "l.png").read_bytes()[:4] == b"\x89PNG"


def test_follows_generation_and_coalesces_bursts(panel, qtbot):
    s = panel.session
    before = panel.redraw_count
    r = s.step()
    qtbot.waitUntil(lambda: panel.heatmap.image.image.shape[0] == r.T, timeout=2000)
    last = panel.heatmap.image.image[-1]
    np.testing.assert_array_equal(last, r.attention[panel.layer, panel.head, -1])
    n = panel.redraw_count
    for _ in range(25):  # a burst of results arrives faster than a frame
        s.step_ready.emit(s.result)
    qtbot.wait(80)
    assert 1 <= panel.redraw_count - n <= 2
    assert panel.redraw_count > before


def test_model_change_rebuilds_selectors(panel, qtbot):
    s = panel.session
    s.set_model(tiny_model(n_layer=3, n_head=4, n_embd=16))
    s.set_prompt("the fox")
    qtbot.waitUntil(lambda: panel.heatmap.image.image.shape == (7, 7), timeout=2000)
    assert (panel.layer_box.count(), panel.head_box.count()) == (3, 4)


def test_1024_tokens_zoom_pan_and_thinned_labels(qtbot):
    model = tiny_model(n_layer=1, n_head=2, n_embd=16, block_size=1024)
    text = ("the quick brown fox jumps over the lazy dog. " * 30)[:1024]
    s = make_session(model, text)
    assert s.result.T == 1024
    p = AttentionPanel(s)
    qtbot.addWidget(p)
    p.resize(900, 700)
    p.show()
    qtbot.waitExposed(p)
    p.redraw_now()
    assert p.heatmap.image.image.shape == (1024, 1024)
    ax = p.heatmap.row_axis
    size = ax.geometry().height()
    step, idx = ax.visible_ticks(0, 1024, size)
    assert step > 1 and 0 < len(idx) * 12 < size  # thinned to what fits
    vb = p.heatmap.plot.vb
    vb.setRange(xRange=(1004, 1024), yRange=(1004, 1024), padding=0)  # zoom in: every label
    step, idx = ax.visible_ticks(*vb.viewRange()[1], size)
    assert step == 1 and idx[0] >= 1003 and idx[-1] == 1023
    assert ax.tickStrings([1000.5], 1, 1) == [printable(s.result.tokens[1000])]
    # the newest row stays in the zoomed view while generating (the window slides)
    s.step()
    p.redraw_now()
    assert vb.viewRange()[1][1] >= 1023
    p.set_view("grid")
    p.redraw_now()
    assert p.grid.image.image.shape == (1024, 2048)
    p.set_view("lines")
    p.redraw_now()
    assert len(p.lines.segments) > 0


def test_hosted_by_the_main_window_with_the_real_session(make_window, tiny_models, qtbot):
    from explorer.panels.architecture.panel import ArchitecturePanel
    from explorer.panels.positional import PositionalPanel

    w = make_window(tiny_models["tiny"], optional_panels=True)
    for name, cls in (("Attention", AttentionPanel), ("Positional encoding", PositionalPanel),
                      ("Architecture", ArchitecturePanel)):
        assert isinstance(w.panels.get(name), cls), w.panel_errors.get(name)
    att = w.panels["Attention"]
    w.docks["Attention"].show()
    w.docks["Attention"].raise_()
    s = w.session
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.step()
    r = s.result
    qtbot.waitUntil(lambda: att.heatmap.matrix is not None
                    and att.heatmap.matrix.shape == (r.T, r.T), timeout=5000)
    np.testing.assert_array_equal(att.heatmap.matrix, r.attention[att.layer, att.head])
    arch = w.panels["Architecture"]
    w.docks["Architecture"].raise_()
    arch.select_block("L0.ffn")
    np.testing.assert_array_equal(arch.detail_heatmap.image.image, r.ffn[0])


def test_context_menu_offers_exports(panel):
    texts = [a.text() for a in panel.heatmap.plot.vb.menu.actions()]
    assert {"Export PNG…", "Export SVG…", "Export CSV…"} <= set(texts)
    texts = [a.text() for a in panel.lines.plot.vb.menu.actions()]
    assert "Export SVG…" in texts


@pytest.mark.parametrize("stage", ["probs", "scores", "masked"])
@pytest.mark.parametrize("average", [False, True])
def test_a_pooled_mosaic_equals_pooling_the_whole_array(panel, monkeypatch, stage, average):
    # a mosaic too big for one image is pooled one layer at a time (a GPT-2 at 1,024 tokens
    # would need 0.6 GB copies of the whole array): the same codes as the whole array pooled
    import explorer.panels.attention.panel as attention_panel
    from explorer.widgets.plot_helpers import causal_future, mosaic, pool_cells

    r = panel.session.result
    L, H, T, _ = r.attention.shape
    monkeypatch.setattr(attention_panel, "MAX_MOSAIC", T * max(L, H) // 3)  # pooled 3×3 (2×2)
    panel.set_view("grid")
    panel.set_stage(stage)
    panel.set_average(average)
    codes, _values, levels, (_, _, cell, factor) = panel.grid_image(r)
    assert factor == (2 if average else 3) and cell == -(-T // factor)
    whole = np.asarray(r.attention if stage == "probs" else r.scores, dtype=np.float32)
    if average:
        whole = whole.mean(axis=1, keepdims=True)
    fut = causal_future(T)
    if stage != "scores":  # the weights and the masked scores hatch the future
        whole = np.where(fut, np.float32(np.nan), whole)
    m = float(np.nanmax(np.abs(whole))) if stage != "probs" else 1.0
    assert levels == ((0.0, 1.0) if stage == "probs" else (-m, m))
    pooled = pool_cells(whole, factor, "max" if stage == "probs" else "mean")
    gone = np.isnan(pooled)
    want = quantize(np.where(gone, np.float32(levels[0]), pooled), levels)
    want[gone] = MASKED_CODE
    np.testing.assert_array_equal(codes, mosaic(want))
    assert (codes == MASKED_CODE).any() == (stage != "scores")
