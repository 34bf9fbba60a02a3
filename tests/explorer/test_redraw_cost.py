"""The per-step redraw shortcuts give what pyqtgraph / Qt would draw, and really skip work.

Each shortcut (lean axis specs, drawing an axis without a QPicture, the fast value image, the
strip repainting only the chips that changed, opaque labels, one paint per new heatmap shape,
frame pacing) is checked twice: the pixels or values equal those of the slow path, and the work
it avoids is not done (a counted call, a paint event, a kept picture). No timings.
"""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
import pytest
from _panel_support import make_session, shown, tiny_model
from PySide6.QtCore import QEvent, QObject, QRect
from PySide6.QtGui import QImage, QPainter, QPicture, QTransform
from PySide6.QtWidgets import QStyleOptionGraphicsItem, QVBoxLayout, QWidget

from explorer.panels.attention.panel import AttentionPanel
from explorer.panels.distribution import _PercentAxis
from explorer.theme import mono_font
from explorer.widgets.axes import FastAxis
from explorer.widgets.layout import QuietLabel
from explorer.widgets.plot_helpers import HeatmapWidget, LabelAxis, ValueImage
from explorer.widgets.token_strip import ChipScroll, TokenStrip

LABELS = list("hello world, the quick brown fox jumps\n over the lazy dog. ") * 5


class PaintCounter(QObject):
    """Counts the paint events a widget receives."""

    def __init__(self, widget: QWidget):
        super().__init__()
        self.n = 0
        widget.installEventFilter(self)

    def eventFilter(self, obj, e) -> bool:  # noqa: N802 - Qt API
        if e.type() == QEvent.Type.Paint:
            self.n += 1
        return False


@pytest.fixture
def heatmap(qtbot, qapp):
    hm = HeatmapWidget(row_title="query", col_title="key")
    qtbot.addWidget(hm)
    hm.resize(820, 480)
    hm.show()
    qtbot.waitExposed(hm)
    a = np.random.default_rng(0).random((150, 150)).astype(np.float32)
    a[np.triu_indices(150, 1)] = np.nan
    hm.set_matrix(a, row_labels=LABELS[:150], col_labels=LABELS[:150])
    qapp.processEvents()
    return hm


@pytest.fixture
def chart(qtbot, qapp):
    """Axes like the next-token chart's: a percent axis and a mono token axis without ticks."""
    pw = pg.PlotWidget(axisItems={"bottom": _PercentAxis("bottom"), "left": FastAxis("left")})
    qtbot.addWidget(pw)
    pw.resize(520, 420)
    left = pw.getAxis("left")
    left.setTickFont(mono_font(12))
    left.setStyle(tickLength=0)
    left.setTicks([[(j, c) for j, c in enumerate("abcdefghijklmnopqrst")], []])
    pw.setXRange(0.0, 0.37, padding=0)
    pw.setYRange(-0.6, 19.6, padding=0)
    pw.show()
    qtbot.waitExposed(pw)
    qapp.processEvents()
    return pw


def _measured(ax, fn):
    pic = QPicture()
    p = QPainter(pic)
    try:
        if ax.style["tickFont"]:
            p.setFont(ax.style["tickFont"])
        return fn(ax, p)
    finally:
        p.end()


def _plain(specs):
    """Draw specs as plain numbers and strings, comparable with ==."""
    axis, ticks, texts = specs

    def pt(q):
        return (round(q.x(), 9), round(q.y(), 9))

    return ((axis[0].color().rgba(), axis[0].widthF(), pt(axis[1]), pt(axis[2])),
            [(pen.color().rgba(), pen.widthF(), pt(a), pt(b)) for pen, a, b in ticks],
            [(r.x(), r.y(), r.width(), r.height(), int(f), s) for r, f, s in texts])


def _axes(heatmap, chart):
    return [heatmap.row_axis, heatmap.col_axis, chart.getAxis("bottom"), chart.getAxis("left")]


@pytest.fixture
def sides(qtbot, qapp):
    """Token axes on the right and at the top (the attention lines view has a right one)."""
    right, top = LabelAxis("right"), LabelAxis("top", centre=0.0)
    pw = pg.PlotWidget(axisItems={"right": right, "top": top})
    pw.showAxis("right")
    pw.showAxis("top")
    right.set_labels(LABELS[:40])
    top.set_labels(LABELS[:60])
    pw.setXRange(-0.5, 59.5, padding=0)
    pw.setYRange(0, 40, padding=0)
    qtbot.addWidget(pw)
    pw.resize(640, 420)
    pw.show()
    qtbot.waitExposed(pw)
    qapp.processEvents()
    return pw


def test_fast_axis_specs_equal_pyqtgraphs(heatmap, chart, sides):
    for ax in _axes(heatmap, chart) + [sides.getAxis("right"), sides.getAxis("top")]:
        ours = _plain(_measured(ax, type(ax).generateDrawSpecs))
        theirs = _plain(_measured(ax, pg.AxisItem.generateDrawSpecs))
        assert ours == theirs, (type(ax).__name__, ax.orientation)
        assert ours[2], "the axis draws labels"
    # zoomed in: other labels, the index prefix ("40 e") and the crowding rule still agree
    heatmap.plot.vb.setRange(xRange=(10.3, 47.8), yRange=(5.5, 31.2), padding=0)
    heatmap.plot.vb.updateMatrix()
    for ax in (heatmap.row_axis, heatmap.col_axis):
        assert _plain(_measured(ax, type(ax).generateDrawSpecs)) == \
            _plain(_measured(ax, pg.AxisItem.generateDrawSpecs))


def _render(ax, view, paint) -> QImage:
    img = QImage(view.viewport().size(), QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(0xFF16181D)
    p = QPainter(img)
    p.setRenderHints(view.renderHints())
    p.setTransform(ax.deviceTransform(view.viewportTransform()))
    ax.picture = None  # what pyqtgraph does when the axis changed
    paint(ax, p, QStyleOptionGraphicsItem(), view.viewport())
    p.end()
    return img


def test_axis_drawn_without_a_picture_has_the_same_pixels(heatmap, chart, sides):
    axes = _axes(heatmap, chart) + [sides.getAxis("right"), sides.getAxis("top")]
    for ax, view in zip(axes, (heatmap, heatmap, chart, chart, sides, sides), strict=True):
        ours = _render(ax, view, type(ax).paint)
        theirs = _render(ax, view, pg.AxisItem.paint)
        assert ours == theirs, (type(ax).__name__, ax.orientation)
    # ticks of length 0 are dots Qt places differently without a picture: that axis records one
    left = chart.getAxis("left")
    _render(left, chart, FastAxis.paint)
    assert isinstance(left.picture, QPicture) and left.picture is not FastAxis._DIRECT


def test_an_unchanged_axis_keeps_its_picture(heatmap):
    ax, view = heatmap.col_axis, heatmap
    _render(ax, view, FastAxis.paint)
    assert ax.picture is FastAxis._DIRECT  # new labels: drawn straight away, nothing recorded
    img = QImage(view.viewport().size(), QImage.Format.Format_ARGB32_Premultiplied)
    p = QPainter(img)
    ax.paint(p, QStyleOptionGraphicsItem(), view.viewport())  # painted again, unchanged
    recorded = ax.picture
    assert isinstance(recorded, QPicture) and recorded is not FastAxis._DIRECT
    ax.paint(p, QStyleOptionGraphicsItem(), view.viewport())
    p.end()
    assert ax.picture is recorded  # played back, not recorded again
    ax.set_labels(list(ax.labels))  # the same labels again: the picture stays
    assert ax.picture is recorded
    ax.set_labels(["x"] + ax.labels[1:])
    assert ax.picture is None


def test_a_new_range_does_not_rerender_an_unchanged_axis_title(heatmap):
    ax = heatmap.row_axis
    calls = []
    real = ax.label.setHtml
    ax.label.setHtml = lambda html: (calls.append(html), real(html))
    ax.setRange(0.0, 40.0)
    ax.setRange(0.0, 41.0)
    assert calls == [] and ax.picture is None  # the ticks are redrawn, the title is kept
    heatmap.plot.setLabel("left", "attending query")
    assert len(calls) == 1 and "attending query" in ax.label.toHtml()


def _drawn(item) -> QImage:
    """``item`` painted scaled up, as a heatmap view paints it (Qt scales some formats apart)."""
    img = QImage(300, 170, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(0xFF16181D)
    p = QPainter(img)
    p.setTransform(QTransform(3.27, 0, 0, 2.61, 4.3, 1.7))
    item.paint(p, QStyleOptionGraphicsItem(), None)
    p.end()
    return img


def test_value_image_equals_pyqtgraphs_rendering(qapp):
    rng = np.random.default_rng(1)
    base = rng.normal(0.0, 2.0, (64, 80)).astype(np.float32)
    base[0, 0], base[1, 1], base[2, 2] = np.inf, -np.inf, 0.0
    masked = base.copy()
    masked[np.triu_indices(64, 3)] = np.nan
    for a in (masked, base):  # with NaN (RGBA image) and without (colour-indexed image)
        for levels, cmap in (((0.0, 1.0), "viridis"), ((-3.5, 3.5), "CET-D1A"),
                             ((2.0, 2.0), "viridis"),
                             ((np.float32(-1.3), np.float32(0.7)), "viridis")):
            lut = pg.colormap.get(cmap).getLookupTable(nPts=256, alpha=True)
            items = [ValueImage(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")]
            for item in items:
                item.setImage(a, autoLevels=False, levels=levels, lut=lut)
                item.render()
            ours, theirs = (item.qimage for item in items)
            assert ours.format() == theirs.format()
            assert ours == theirs, (levels, cmap)
            assert _drawn(items[0]) == _drawn(items[1])
    codes = rng.integers(0, 255, (20, 30), dtype=np.uint8)  # not a float image: pyqtgraph's path
    item = ValueImage(axisOrder="row-major")
    item.setImage(codes, autoLevels=False, levels=(0, 255), lut=lut)
    item.render()
    assert item.qimage is not None and item.qimage.format() == QImage.Format.Format_Indexed8


def test_a_new_heatmap_shape_is_painted_once(heatmap, qtbot, qapp):
    counter = PaintCounter(heatmap.viewport())
    a = np.random.default_rng(2).random((151, 151)).astype(np.float32)
    heatmap.set_matrix(a, row_labels=LABELS[:151], col_labels=LABELS[:151])
    # the auto-range is applied at once, not at the start of the paint
    (x0, x1), (y0, y1) = heatmap.plot.vb.viewRange()
    assert (x0, x1, y0, y1) == pytest.approx((0, 151, 0, 151))
    qtbot.waitUntil(lambda: counter.n > 0, timeout=2000)
    for _ in range(5):
        qapp.processEvents()
    assert counter.n == 1


def _strip_window(qtbot):
    holder = QWidget()
    lay = QVBoxLayout(holder)
    strip = TokenStrip()
    lay.addWidget(ChipScroll(strip))
    qtbot.addWidget(holder)
    holder.resize(700, 400)
    holder.show()
    qtbot.waitExposed(holder)
    return holder, strip


def _on_screen(widget) -> QImage:
    """What the window's backing store holds for ``widget`` (not a fresh rendering)."""
    win = widget.window()
    shot = win.windowHandle().screen().grabWindow(win.winId()).toImage()
    rect = QRect(widget.mapTo(win, widget.rect().topLeft()), widget.size())
    return shot.copy(rect).convertToFormat(QImage.Format.Format_RGB32)


def test_strip_repaints_only_the_chips_a_step_changed(qtbot, qapp):
    session = make_session(tiny_model(), "hello there", steps=2)
    holder, strip = _strip_window(qtbot)
    strip.set_result(session.result)
    qapp.processEvents()
    areas = []
    real_update = strip.update

    def update(*args):
        areas.append(args[0] if args else strip.rect())
        real_update(*args)

    strip.update = update
    new = session.step()
    strip.set_result(new)
    assert len(areas) == 1 and areas[0] != strip.rect()
    last, ghost = strip.chip_rect(new.T - 1), strip.chip_rect(-2)
    assert areas[0].contains(last) and areas[0].contains(ghost)
    assert not areas[0].contains(strip.chip_rect(0))  # the first chips were not repainted
    qapp.processEvents()
    # what is on screen equals the whole strip drawn afresh
    assert _on_screen(strip) == strip.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    areas.clear()
    strip.set_selected(1)  # a selection changes a look: the whole strip
    assert areas == [strip.rect()]


def test_opaque_labels_do_not_repaint_what_is_beneath(qtbot, qapp):
    parent = QWidget()
    lay = QVBoxLayout(parent)
    label = QuietLabel(parent)
    label.setText("entropy 2.50 nats")
    lay.addWidget(label)
    qtbot.addWidget(parent)
    parent.resize(400, 100)
    parent.show()
    qtbot.waitExposed(parent)
    qapp.processEvents()
    beneath, own = PaintCounter(parent), PaintCounter(label.label)
    label.setText("entropy 2.51 nats")
    qtbot.waitUntil(lambda: own.n > 0, timeout=2000)
    assert beneath.n == 0


def test_live_redraw_waits_only_for_what_is_left_of_a_frame(qtbot):
    panel = shown(qtbot, AttentionPanel(make_session(tiny_model(), "hello there", steps=1)))
    panel.schedule_redraw()  # right after a redraw: paced to one a frame
    timer = panel._redraw.timer
    assert timer.isActive() and 0 < timer.interval() <= panel.redraw_ms
    timer.stop()
    panel._redraw.last = time.perf_counter() - 1.0  # idle for a while: no delay
    n = panel.redraw_count
    panel.schedule_redraw()
    assert timer.interval() == 0
    qtbot.waitUntil(lambda: panel.redraw_count > n, timeout=2000)


def test_label_axis_counts_label_widths_once(qapp):
    ax = LabelAxis("bottom")
    ax.set_labels(["a", "bb", "a", "bb"])
    ax.visible_ticks(0.0, 4.0, 400.0)
    assert set(ax._advances) == {"a", "bb"}
    assert ax._advances["bb"] == pytest.approx(ax._metrics.horizontalAdvance("bb"))
