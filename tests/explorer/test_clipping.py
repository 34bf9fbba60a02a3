"""Text in plots and diagrams is neither cut off nor struck through, and legends cover no data:
the colour bars' end labels, the loss axis title, the architecture diagram's "residual" labels
and the loss legend."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem, QGraphicsSimpleTextItem

from explorer import theme
from explorer.panels.training.plots import LossView
from explorer.widgets.plot_helpers import HeatmapWidget, tick_font


def _bar_label_room(hm: HeatmapWidget) -> tuple[float, float]:
    m = hm.ci.layout.getContentsMargins()
    return m[1], m[3]  # top, bottom


def test_colour_bar_end_labels_have_room(qtbot):
    hm = HeatmapWidget()
    qtbot.addWidget(hm)
    for z in (1.0, 2.0):
        theme.set_zoom(z)
        half = QFontMetricsF(tick_font()).height() / 2
        top, bottom = _bar_label_room(hm)
        assert top >= half and bottom >= half, (z, top, bottom, half)


def test_loss_axis_title_fits_and_legend_leaves_the_plot_free(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    view.resize(500, view.minimumSizeHint().height())
    view.show()
    qtbot.waitExposed(view)
    axis = view.plot.getAxis("left")
    title_len = axis.label.boundingRect().width()  # drawn rotated along the axis
    assert title_len <= view.plot.vb.height(), (title_len, view.plot.vb.height())
    # no legend item inside the plot area: it covered the curves there
    legends = [i for i in view.plot_widget.scene().items() if isinstance(i, pg.LegendItem)]
    vb = view.plot.vb.sceneBoundingRect()
    assert not [lg for lg in legends if lg.isVisible() and lg.sceneBoundingRect().intersects(vb)]
    assert "validation" in view.legend.text() and view.legend.isVisible()


def test_residual_labels_are_not_struck_through(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], optional_panels=True)
    w.show_panel("Architecture")
    qtbot.wait(100)
    scene = w.panels["Architecture"].view.scene()
    labels = [i for i in scene.items()
              if isinstance(i, QGraphicsSimpleTextItem) and i.text() == "residual"]
    assert labels
    for t in labels:
        rect = t.sceneBoundingRect()
        under = [i for i in scene.items(rect) if i is not t]
        lines = [i for i in under if isinstance(i, QGraphicsPathItem)]
        backs = [i for i in under if isinstance(i, QGraphicsRectItem)
                 and i.sceneBoundingRect().contains(rect.adjusted(1, 1, -1, -1))]
        # every line crossing the word runs beneath a background that hides it there
        for line in lines:
            assert any(b.zValue() > line.zValue() and b.zValue() < t.zValue() for b in backs)
