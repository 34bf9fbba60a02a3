"""The attention "lines" view (as BertViz draws it): queries in a column on the left, keys on
the right, one line per attention weight above a threshold.

Lines are grouped by (head, weight bin) into a few reused PlotCurveItems drawn with
``connect='pairs'``: thickness and opacity grow with the weight. Qt strokes thousands of long
antialiased lines slowly, so at most ``MAX_LINES`` (the strongest) are drawn, antialiased only
when there are few.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Signal

from explorer.theme import THEME, css_pt
from explorer.widgets.exports import (
    add_export_actions,
    export_png,
    export_svg,
    replace_scene_export,
)
from explorer.widgets.plot_helpers import LabelAxis

LINE_BINS = np.array([0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.01])  # weight bins of the lines
MAX_LINES = 1200  # lines drawn at most (the strongest); see AttentionLines.n_hidden
MAX_SMOOTH_LINES = 80  # more lines than this are drawn without antialiasing
SEGMENT_DTYPE = np.dtype([("head", np.int32), ("query", np.int32), ("key", np.int32),
                          ("weight", np.float32)])


class AttentionLines(pg.GraphicsLayoutWidget):
    """BertViz-style lines: queries on the left, keys on the right, one line per weight.

    Lines are grouped by (head, weight bin) into a few PlotCurveItems drawn with
    ``connect='pairs'``; thickness and opacity grow with the bin. Curves are reused.
    """

    hovered = Signal(int)  # query row under the mouse, -1 = none
    name = "attention-lines"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.left_axis = LabelAxis("left")
        self.right_axis = LabelAxis("right")
        self.addLabel("", row=0, col=0)  # stretchable margins centre the plot
        self.plot: pg.PlotItem = self.addPlot(row=0, col=1, axisItems={"left": self.left_axis,
                                                                       "right": self.right_axis})
        self.addLabel("", row=0, col=2)
        for col, stretch in ((0, 1), (1, 8), (2, 1)):
            self.ci.layout.setColumnStretchFactor(col, stretch)
        self.plot.showAxis("right")
        self.plot.hideAxis("bottom")
        self.plot.invertY(True)
        self.plot.setMouseEnabled(x=False, y=True)
        self.plot.setXRange(-0.03, 1.03, padding=0)
        self.plot.vb.setLimits(xMin=-0.1, xMax=1.1)
        self.plot.setDefaultPadding(0.0)
        style = {"font-size": css_pt(11)}
        self.plot.setLabel("left", "query", **style)
        self.plot.setLabel("right", "key", **style)
        # two columns of tokens close enough to read across, like BertViz
        self.plot.setMaximumWidth(760)
        self.dots = pg.ScatterPlotItem(size=7, pen=None, brush=pg.mkBrush(THEME.text))
        self.plot.addItem(self.dots)
        self._curves: dict[tuple[int, int], pg.PlotCurveItem] = {}
        self._pens: dict[tuple[int, int], tuple] = {}
        self.segments = np.zeros(0, dtype=SEGMENT_DTYPE)
        self.n_hidden = 0  # lines above the threshold left out to keep the drawing readable
        self._n = 0
        self._last_hover = -1
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        add_export_actions(self.plot.vb.menu, self)
        replace_scene_export(self.scene())

    def _curve(self, slot: int, b: int) -> pg.PlotCurveItem:
        c = self._curves.get((slot, b))
        if c is None:
            c = pg.PlotCurveItem(antialias=True, skipFiniteCheck=True)
            # separate segments drawn with drawLines: stroking one path of thousands of
            # crossing wide lines takes Qt seconds, drawLines milliseconds
            c.setSegmentedLineMode("on")
            c.setZValue(b)
            self.plot.addItem(c)
            self._curves[(slot, b)] = c
        return c

    def set_lines(self, weights: np.ndarray, heads: list[int], colors: list, labels: list[str],
                  threshold: float, focus_row: int = -1) -> None:
        """weights: (K, T, T) one matrix per drawn head; rows = queries, columns = keys."""
        k_heads, t = weights.shape[0], weights.shape[-1]
        if t != self._n:
            self._n = t
            y = np.arange(t) + 0.5
            self.dots.setData(np.r_[np.zeros(t), np.ones(t)], np.r_[y, y])
            self.left_axis.set_labels(labels)
            self.right_axis.set_labels(labels)
            self.plot.vb.setLimits(yMin=-0.5, yMax=t + 0.5)
            self.plot.setYRange(0, t, padding=0)
        else:
            self.left_axis.set_labels(labels)
            self.right_axis.set_labels(labels)
        nb = len(LINE_BINS) - 1
        parts = []
        for slot, (h, w) in enumerate(zip(heads, weights, strict=True)):
            if 0 <= focus_row < t:
                q, k = np.nonzero(w[focus_row:focus_row + 1] >= threshold)
                q = q + focus_row
            else:
                q, k = np.nonzero(w >= threshold)
            rec = np.empty(len(q), dtype=SEGMENT_DTYPE)
            rec["head"], rec["query"], rec["key"], rec["weight"] = h, q, k, w[q, k]
            parts.append((slot, rec))
        total = sum(len(rec) for _, rec in parts)
        self.n_hidden = 0
        if total > MAX_LINES:  # keep the strongest: thousands of lines are unreadable and slow
            allw = np.concatenate([rec["weight"] for _, rec in parts])
            cut = np.partition(allw, total - MAX_LINES)[total - MAX_LINES]
            parts = [(slot, rec[rec["weight"] >= cut]) for slot, rec in parts]
            self.n_hidden = total - sum(len(rec) for _, rec in parts)
        # Qt's antialiased wide lines cost ~10x more: smooth only when there are few
        smooth = sum(len(rec) for _, rec in parts) <= MAX_SMOOTH_LINES
        for slot, rec in parts:
            val = rec["weight"]
            bins = np.clip(np.searchsorted(LINE_BINS, val, side="right") - 1, 0, nb - 1)
            for b in range(nb):
                sel = bins == b
                n = int(sel.sum())
                curve = self._curve(slot, b)
                if n == 0:
                    curve.hide()
                    continue
                x = np.tile(np.array([0.0, 1.0]), n)
                y = np.empty(2 * n)
                y[0::2] = rec["query"][sel] + 0.5
                y[1::2] = rec["key"][sel] + 0.5
                frac = (b + 1) / nb
                key = (colors[slot], b)
                if self._pens.get((slot, b)) != key:
                    c = pg.mkColor(colors[slot])
                    c.setAlpha(int(25 + 230 * frac ** 1.6))  # faint when weak, as in BertViz
                    curve.setPen(pg.mkPen(c, width=1.0 + 3.0 * frac ** 1.5))
                    self._pens[(slot, b)] = key
                curve.setData(x, y, connect="pairs", antialias=smooth)
                curve.show()
        for (slot, _b), curve in self._curves.items():
            if slot >= k_heads:
                curve.hide()
        segs = [rec for _, rec in parts]
        self.segments = np.concatenate(segs) if segs else np.zeros(0, dtype=SEGMENT_DTYPE)

    def clear_lines(self) -> None:
        for c in self._curves.values():
            c.hide()
        self.segments = np.zeros(0, dtype=SEGMENT_DTYPE)

    def scene_pos_of(self, row: int, x: float = 0.0):
        return self.plot.vb.mapViewToScene(QPointF(x, row + 0.5))

    def _on_mouse_moved(self, scene_pos) -> None:
        row = -1
        if self.plot.vb.sceneBoundingRect().contains(scene_pos):
            p = self.plot.vb.mapSceneToView(scene_pos)
            r = int(math.floor(p.y()))
            if 0 <= r < self._n and p.x() < 0.5:  # the query column
                row = r
        if row != self._last_hover:
            self._last_hover = row
            self.hovered.emit(row)

    def leaveEvent(self, ev):  # noqa: N802
        if self._last_hover != -1:
            self._last_hover = -1
            self.hovered.emit(-1)
        super().leaveEvent(ev)

    # -- export --------------------------------------------------------------------------------
    def export_png(self, path, width=None):
        return export_png(self.ci, path, width)

    def export_svg(self, path):
        return export_svg(self.ci, path)

    def export_csv(self, path):
        """One line per drawn line: head, query, key, weight (tokens in the header)."""
        labels = self.left_axis.labels
        seg = self.segments
        table = np.column_stack([seg["head"], seg["query"], seg["key"], seg["weight"]]) \
            if len(seg) else np.zeros((0, 4))
        header = ("attention lines: head,query,key,weight\n"
                  "tokens: " + " ".join(f"{i}:{s}" for i, s in enumerate(labels)))
        np.savetxt(path, table, delimiter=",", fmt=["%d", "%d", "%d", "%.8g"], header=header,
                   encoding="utf-8")
        return path
