"""Shared pyqtgraph pieces for the "look inside" panels (attention, positional, architecture).

- :class:`LabelAxis`: an axis whose ticks are token labels, thinned to what fits in the visible
  range (recomputed on every zoom or pan, so a 1024-token matrix stays readable).
- :class:`HeatmapWidget`: one matrix as an image with a colour bar, hatched "masked" cells
  (NaN is transparent and lets a hatched rectangle show through), a highlighted row, hover and
  click signals, and PNG / SVG / CSV export from its context menu or :func:`export_button`.
- :func:`pool_cells`: shrink large matrices for the all-heads mosaic.
- :func:`style_plot` (fonts, grid and labels of a PlotItem) and :class:`TextLabels` (many short
  texts painted by one item), used by the distribution and training panels too.

Export (:mod:`explorer.widgets.exports`: PNG, SVG, CSV) and layout pieces
(:mod:`explorer.widgets.layout`: the explanation column, status lines, a flow layout) live in
their own modules.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QImage, QPen, qRgba
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

from explorer.theme import (
    CYCLIC,
    DIVERGING,
    NOTIFIER,
    SEQUENTIAL,
    THEME,
    colormap_name,
    css_pt,
    pt,
    ui_font,
    zoom,
)
from explorer.widgets.axes import FastAxis
from explorer.widgets.exports import (
    add_export_actions,
    export_png,
    export_svg,
    replace_scene_export,
    write_csv,
)

TICK_PT = 11  # axis labels: readable on a projector
# colour-map roles: the palette in use (standard or colour-blind safe) picks the map
PROB_CMAP = SEQUENTIAL  # attention probabilities, 0..1
DIVERGING_CMAP = DIVERGING  # signed values: scores, embeddings, activations
CYCLIC_CMAP = CYCLIC  # angles (rotary)
MASK_FILL = QColor(60, 62, 70)
MASK_HATCH = QColor(140, 144, 156)
HIGHLIGHT = QColor(THEME.accent2)


def tick_font(size: float = TICK_PT) -> QFont:
    f = QFont()
    f.setPointSizeF(pt(size))
    return f


def symmetric_levels(a: np.ndarray, default: float = 1.0) -> tuple[float, float]:
    """(-m, m) with m the largest finite |value| (a diverging map centred on 0)."""
    a = np.asarray(a)
    finite = a[np.isfinite(a)]
    m = float(np.abs(finite).max()) if finite.size else 0.0
    if not m > 0:
        m = default
    return (-m, m)


def style_plot(plot: pg.PlotItem, title: str | None = None, x: str | None = None,
               y: str | None = None) -> pg.PlotItem:
    """Consistent fonts, grid and labels for a PlotItem."""
    font = ui_font(THEME.font_pt - 1)
    for name in ("left", "bottom", "right", "top"):
        ax = plot.getAxis(name)
        ax.setTickFont(font)
        ax.setTextPen(pg.mkPen(THEME.text))
        ax.setPen(pg.mkPen(THEME.grid))
        if name in ("right", "top"):  # hidden in these plots: with the SI prefix on, every
            ax.enableAutoSIPrefix(False)  # range change re-renders its (empty) label's HTML
    if title:
        plot.setTitle(title, color=THEME.text, size=css_pt(THEME.font_pt + 1))
    label_style = {"color": THEME.muted, "font-size": css_pt(THEME.font_pt)}
    if x:
        plot.setLabel("bottom", x, **label_style)
    if y:
        plot.setLabel("left", y, **label_style)
    plot.hideButtons()
    return plot


class TextLabels(pg.GraphicsObject):
    """Many short texts at data positions, painted by one item (far cheaper than a TextItem each).

    Each text is anchored at its point's left-middle, offset a few pixels to the right, and keeps
    its pixel size whatever the zoom. It takes no part in auto-ranging.
    """

    def __init__(self, font: QFont | None = None, offset_px: float = 5.0):
        super().__init__()
        self._items: list[tuple[float, float, str, QColor]] = []
        self._font = font or ui_font(THEME.font_pt - 1)
        self._base_pt = self._font.pointSizeF() / zoom()  # the size at 100 %: follows the zoom
        self._offset = offset_px

    def set_labels(self, items: Sequence[tuple[float, float, str, QColor]]) -> None:
        self._items = list(items)
        self.update()

    def texts(self) -> list[str]:
        return [t for _, _, t, _ in self._items]

    def dataBounds(self, ax, frac=1.0, orthoRange=None):  # noqa: N802 - pyqtgraph API
        return None

    def boundingRect(self) -> QRectF:  # noqa: N802
        vr = self.viewRect()  # the whole visible range: labels may stick out of the data
        return vr if vr is not None else QRectF()

    def paint(self, p, *args) -> None:
        if not self._items:
            return
        t = p.transform()
        p.save()
        p.resetTransform()
        if abs(self._font.pointSizeF() - pt(self._base_pt)) > 0.01:
            self._font.setPointSizeF(pt(self._base_pt))
        p.setFont(self._font)
        fm = QFontMetricsF(self._font)
        dy = (fm.ascent() - fm.descent()) / 2
        for x, y, text, colour in self._items:
            at = t.map(QPointF(x, y))
            p.setPen(colour)
            p.drawText(QPointF(at.x() + self._offset, at.y() + dy), text)
        p.restore()


class LabelAxis(FastAxis):
    """Axis with one text label per integer cell, thinned to what fits in the visible range.

    Cell ``i`` spans ``[i, i+1)`` in view coordinates (like an ImageItem pixel) when
    ``centre=0.5``; bars drawn at integer x use ``centre=0``. When only every n-th label fits,
    labels carry their index ("40 e") so a student can still tell where they are.
    """

    _STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)

    def __init__(self, orientation: str, centre: float = 0.5, cell: float = 1.0,
                 numeric: bool = False, **kwargs):
        super().__init__(orientation, **kwargs)
        self._labels: list[str] = []
        self._drawn_key: tuple | None = None  # (centre, cell, numeric) of the labels set last
        self.centre = centre
        self.cell = cell  # view units per label (the all-heads mosaic has one label per cell)
        self.numeric = numeric  # labels are numbers already: never prefix the index
        self.step = 1
        self._metrics = QFontMetricsF(tick_font())
        self._advances: dict[str, float] = {}  # label -> width in pixels (the font is fixed)
        self._text_px = 0
        # fixed text space sized from the labels themselves, so the axis does not jump (and
        # long labels are not dropped) while pyqtgraph re-measures after each paint
        self.setStyle(tickFont=tick_font(), autoExpandTextSpace=False, tickTextOffset=4,
                      tickTextHeight=int(self._metrics.height()) + 2, tickTextWidth=16,
                      # labels of the first/last cell may overhang the axis ends a little
                      hideOverlappingLabels=12 if orientation in ("left", "right") else 40)

    def set_labels(self, labels: Sequence[str]) -> None:
        labels = list(labels)
        key = (self.centre, self.cell, self.numeric)
        if labels == self._labels and key == self._drawn_key:
            return  # unchanged: keep the cached picture (re-rendering an axis costs ms)
        self._labels = labels
        self._drawn_key = key
        if self.orientation in ("left", "right"):
            n = len(self._labels)
            widest = max((self._advance(s) for s in set(self._labels)), default=8.0)
            if not self.numeric and n > 1:
                widest += self._metrics.horizontalAdvance(f"{n - 1} ")
            px = int(math.ceil(widest)) + 4
            if px != self._text_px:
                self._text_px = px
                self.setStyle(tickTextWidth=px)
        self.picture = None
        self.update()

    @property
    def labels(self) -> list[str]:
        return self._labels

    def _advance(self, s: str) -> float:
        w = self._advances.get(s)
        if w is None:
            if len(self._advances) > 8192:  # bounded: a long run sees many labels
                self._advances.clear()
            w = self._advances[s] = self._metrics.horizontalAdvance(s)
        return w

    def _label(self, i: int, step: int) -> str:
        s = self._labels[i]
        return s if step == 1 or self.numeric else f"{i} {s}"

    def visible_ticks(self, lo: float, hi: float, size: float) -> tuple[int, list[int]]:
        """(step, indices) of the labels drawn for view range [lo, hi] on ``size`` pixels."""
        n = len(self._labels)
        if n == 0 or size <= 0 or hi <= lo:
            return 1, []
        first = max(0, math.ceil(lo - self.centre))
        last = min(n - 1, math.floor(hi - self.centre))
        if last < first:
            return 1, []
        px_per_cell = size / (hi - lo)
        if self.orientation in ("left", "right"):
            need = self._metrics.height() * 1.05
        else:
            sample = [self._labels[i] for i in range(first, last + 1, max(1, (last - first) // 64))]
            widest = max((self._advance(s) for s in sample), default=8.0)
            need = widest + 6
        step = self._STEPS[-1]
        for s in self._STEPS:
            if s * px_per_cell >= need:
                step = s
                break
        if step > 1 and not self.numeric:  # labels now carry the index, so they are wider
            digits = self._metrics.horizontalAdvance(f"{last} ")
            if self.orientation not in ("left", "right"):
                need += digits
                for s in self._STEPS:
                    if s >= step and s * px_per_cell >= need:
                        step = s
                        break
        start = (first + step - 1) // step * step
        return step, list(range(start, last + 1, step))

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 (pyqtgraph API)
        lo, hi = min(minVal, maxVal) / self.cell, max(minVal, maxVal) / self.cell
        step, idx = self.visible_ticks(lo, hi, size)
        self.step = step
        return [(float(step * self.cell), [(i + self.centre) * self.cell for i in idx])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        step = max(1, int(round(spacing / self.cell)))
        out = []
        for v in values:
            i = int(math.floor(v / self.cell - self.centre + 1e-6))
            out.append(self._label(i, step) if 0 <= i < len(self._labels) else "")
        return out


def _hatch_items(z: float = -10.0) -> tuple[QGraphicsRectItem, QGraphicsRectItem]:
    """A grey rectangle and a diagonal hatch on top: what shows through NaN (masked) cells."""
    fill = QGraphicsRectItem()
    fill.setPen(QPen(Qt.PenStyle.NoPen))
    fill.setBrush(QBrush(MASK_FILL))
    fill.setZValue(z)
    hatch = QGraphicsRectItem()
    hatch.setPen(QPen(Qt.PenStyle.NoPen))
    brush = QBrush(MASK_HATCH, Qt.BrushStyle.BDiagPattern)
    hatch.setBrush(brush)
    hatch.setZValue(z + 1)
    return fill, hatch


class ValueImage(pg.ImageItem):
    """An ImageItem that turns a float32 matrix (NaN = masked, transparent) into the same image
    as pyqtgraph does, about twice as fast.

    pyqtgraph finds the NaN cells as an index tuple, rescales through ``np.nditer`` and then
    clears the alpha of each NaN cell by fancy indexing (most of a millisecond for 256 × 256, at
    every step). Here the same float32 arithmetic (subtract the low level, scale by 256 / range,
    clip to 0..255, truncate) gives the same colour codes, NaN cells are cleared with a boolean
    mask, and the result has pyqtgraph's format (RGBA with NaN, else colour-indexed), so Qt
    scales it the same way. Other images (dtypes, tables, down-sampling) take pyqtgraph's path.
    """

    _lut_key: tuple | None = None
    _lut_rgba: np.ndarray | None = None
    _lut_table: list[int] | None = None

    def _tables(self, lut: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """The look-up table as one uint32 per entry (its RGBA bytes) and as a QImage colour
        table (what pyqtgraph gives an indexed image), cached per table."""
        key = (id(lut), lut.tobytes())
        if key != self._lut_key:
            self._lut_key = key
            self._lut_rgba = np.ascontiguousarray(lut).view(np.uint32).ravel()
            self._lut_table = [qRgba(*rgba) for rgba in lut.tolist()]
        return self._lut_rgba, self._lut_table

    def render(self) -> None:
        img, lut, levels = self.image, self.lut, self.levels
        if not (isinstance(img, np.ndarray) and img.ndim == 2 and img.dtype == np.float32
                and img.size and not self.autoDownsample and self.axisOrder == "row-major"
                and isinstance(lut, np.ndarray) and lut.dtype == np.uint8
                and lut.shape == (256, 4) and levels is not None and np.ndim(levels) == 1):
            super().render()
            return
        lo, hi = np.asarray(levels)  # the scale worked out exactly as pyqtgraph does
        rng = hi - lo
        scale = 256 / (1 if rng == 0 else rng)
        y = np.subtract(img, np.float32(float(lo)), dtype=np.float32)  # float32 maths, as there
        y *= np.float32(float(scale))
        np.clip(y, 0, 255, out=y)
        with np.errstate(invalid="ignore"):  # NaN cells: any code, made transparent below
            codes = y.astype(np.uint8)
        rgba_lut, table = self._tables(lut)
        masked = np.isnan(img)
        if masked.any():
            px = rgba_lut[codes]  # (H, W) uint32: the RGBA bytes of each cell
            rgba = px.view(np.uint8).reshape(img.shape[0], img.shape[1], 4)
            rgba[..., 3][masked] = 0
            self.qimage = pg.functions.ndarray_to_qimage(rgba, QImage.Format.Format_RGBA8888)
        else:
            self.qimage = pg.functions.ndarray_to_qimage(codes, QImage.Format.Format_Indexed8)
            self.qimage.setColorTable(table)
        self._processingBuffer = None
        self._displayBuffer = None
        self._renderRequired = False
        self._unrenderable = False


class HeatmapWidget(pg.GraphicsLayoutWidget):
    """A matrix heatmap: rows top to bottom, token labels, colour bar, hatched NaN cells.

    ``set_matrix(display, levels=..., export=...)`` shows ``display`` (NaN = masked, drawn
    hatched) and keeps ``export`` (default: ``display``) for CSV. Item objects are created once.
    """

    hovered = Signal(int, int)  # (row, col) of the image pixel under the mouse; (-1, -1) = none
    clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None, *, colormap: str = PROB_CMAP,
                 levels: tuple[float, float] = (0.0, 1.0), row_title: str = "",
                 col_title: str = "", name: str = "heatmap", numeric: bool = False):
        super().__init__(parent)
        self.name = name
        self._bar_margins()
        self.row_axis = LabelAxis("left", numeric=numeric)
        self.col_axis = LabelAxis("bottom", numeric=numeric)
        self.plot: pg.PlotItem = self.addPlot(row=0, col=0,
                                              axisItems={"left": self.row_axis,
                                                         "bottom": self.col_axis})
        self.plot.invertY(True)
        self.plot.setDefaultPadding(0.0)
        label_style = {"font-size": css_pt(TICK_PT)}
        if row_title:
            self.plot.setLabel("left", row_title, **label_style)
        if col_title:
            self.plot.setLabel("bottom", col_title, **label_style)
        self.image = ValueImage(axisOrder="row-major")
        self.plot.addItem(self.image)
        self._fill, self._hatch = _hatch_items()
        self.plot.addItem(self._fill, ignoreBounds=True)
        self.plot.addItem(self._hatch, ignoreBounds=True)
        self._row_mark = QGraphicsRectItem()
        self._row_mark.setPen(pg.mkPen(HIGHLIGHT, width=2, cosmetic=True))
        fill = QColor(HIGHLIGHT)
        fill.setAlpha(50)
        self._row_mark.setBrush(QBrush(fill))
        self._row_mark.setZValue(20)
        self._row_mark.hide()
        self.plot.addItem(self._row_mark, ignoreBounds=True)
        # the bar only draws the scale: the image's levels and look-up table are set here, so
        # an image of colour codes (set_codes) can share the bar with one of values
        self._cmap_role = colormap
        self.colorbar = pg.ColorBarItem(values=levels, colorMap=colormap_name(colormap),
                                        interactive=False,
                                        width=16, colorMapMenu=False)
        self.colorbar.axis.setStyle(tickFont=tick_font())
        # no label on the bar: the SI prefix only re-rendered its empty label at every new range
        self.colorbar.axis.enableAutoSIPrefix(False)
        self.addItem(self.colorbar, row=0, col=1)
        self._levels = (float(levels[0]), float(levels[1]))
        self._luts(colormap)
        NOTIFIER.changed.connect(self._on_look_changed)
        self._display: np.ndarray | None = None
        self._export: np.ndarray | None = None
        self._shape = (0, 0)
        self._last_hover = (-1, -1)
        self.export_header: Callable[[], str] | None = None
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        add_export_actions(self.plot.vb.menu, self)
        replace_scene_export(self.scene())

    # -- data ----------------------------------------------------------------------------------
    def _luts(self, name: str) -> None:
        cmap = pg.colormap.get(colormap_name(name))
        self._lut = cmap.getLookupTable(nPts=256, alpha=True)
        codes = cmap.getLookupTable(nPts=MASKED_CODE, alpha=True)  # 0..254: values
        self._lut_codes = np.vstack([codes, [[0, 0, 0, 0]]]).astype(np.uint8)  # 255: masked

    def set_colormap(self, name: str) -> None:
        """A colour-map role (PROB_CMAP, DIVERGING_CMAP, CYCLIC_CMAP) or a map's own name."""
        self._cmap_role = name
        self.colorbar.setColorMap(colormap_name(name))
        self._luts(name)
        self.image.setLookupTable(self._lut_codes if self.is_codes else self._lut)

    def _on_look_changed(self) -> None:
        # the palette may map this role to another colour map now; the text size changed the
        # room the colour bar's end labels need
        self.set_colormap(self._cmap_role)
        self._bar_margins()

    def _bar_margins(self) -> None:
        """Room above and below the plot for half a line: the colour bar's labels at its two
        ends ("1.0", "0") are centred on the ends and were cut in half."""
        half = int(QFontMetricsF(tick_font()).height() / 2) + 2
        self.ci.setContentsMargins(2, half, 2, half)

    @property
    def levels(self) -> tuple[float, float]:
        return self._levels

    @property
    def is_codes(self) -> bool:
        """True when the image holds colour codes (see :meth:`set_codes`), not values."""
        return self._display is not None and self._display.dtype == np.uint8

    def set_matrix(self, display: np.ndarray, *, levels: tuple[float, float] | None = None,
                   export=None, row_labels: Sequence[str] | None = None,
                   col_labels: Sequence[str] | None = None) -> None:
        """Show values; NaN cells are transparent (the hatch shows through)."""
        display = np.asarray(display, dtype=np.float32)
        self._show(display, levels, export, row_labels, col_labels, self._lut,
                   levels if levels is not None else self._levels)

    def set_codes(self, codes: np.ndarray, *, levels: tuple[float, float], export=None,
                  row_labels: Sequence[str] | None = None,
                  col_labels: Sequence[str] | None = None) -> None:
        """Show colour codes made by :func:`quantize` (uint8, ``MASKED_CODE`` = masked).

        An indexed image needs no per-pixel colour mapping: the all-heads mosaic of 12 × 12 heads
        at 128 tokens (2.4 million cells) renders in about a millisecond this way."""
        codes = np.asarray(codes)
        if codes.dtype != np.uint8:
            raise ValueError(f"colour codes must be uint8, got {codes.dtype}")
        self._show(codes, levels, export, row_labels, col_labels, self._lut_codes, (0, 255))

    def _show(self, display, levels, export, row_labels, col_labels, lut, image_levels) -> None:
        if display.ndim != 2:
            raise ValueError(f"a heatmap needs a 2-D matrix, got shape {display.shape}")
        self._display = display
        self._export = display if export is None else export
        if levels is not None:
            new = (float(levels[0]), float(levels[1]))
            if new != self._levels:  # the same levels: keep the bar axis' cached picture
                self._levels = new
                self.colorbar.setLevels(values=new)
        rows, cols = display.shape
        if display.size:
            self.image.setImage(display, autoLevels=False, levels=image_levels, lut=lut)
            self.image.setRect(QRectF(0, 0, cols, rows))
            self.image.show()
        else:
            self.image.hide()
        rect = QRectF(0, 0, cols, rows)
        self._fill.setRect(rect)
        self._hatch.setRect(rect)
        if (rows, cols) != self._shape:
            self._follow(rows, cols)
        if row_labels is not None:
            self.row_axis.set_labels(row_labels)
        if col_labels is not None:
            self.col_axis.set_labels(col_labels)
        if self._row_mark.isVisible():
            r = self._row_mark.rect()
            self._row_mark.setRect(QRectF(0, r.top(), cols, 1))
        # Apply a new shape's auto-range now, not at the start of the next paint: the paint then
        # draws the new range and moves nothing (axes, image transform) while it paints, which
        # could make pyqtgraph schedule a second paint of the whole view.
        vb = self.plot.vb
        vb.prepareForPaint()
        # Moving the view's child group to the new range flags the auto-range as stale again,
        # though no item's bounds changed: without this the next paint would work it out anew.
        vb._autoRangeNeedsUpdate = False

    def _follow(self, rows: int, cols: int) -> None:
        """New shape. Auto-range fits it; a zoomed view that showed the last row keeps showing
        it, so the newest token's row appears while generating even at 1024 tokens."""
        old_rows, old_cols = self._shape
        self._shape = (rows, cols)
        vb = self.plot.vb
        vb.setLimits(xMin=-0.5, xMax=cols + 0.5, yMin=-0.5, yMax=rows + 0.5)
        if any(vb.autoRangeEnabled()) or old_rows == 0:
            vb.enableAutoRange()
            return
        (x0, x1), (y0, y1) = vb.viewRange()
        if y1 >= old_rows - 0.5 and rows > old_rows:
            dr, dc = rows - old_rows, cols - old_cols
            vb.setRange(xRange=(x0 + dc, x1 + dc), yRange=(y0 + dr, y1 + dr), padding=0)

    def clear_matrix(self) -> None:
        self.set_matrix(np.zeros((0, 0), np.float32), row_labels=[], col_labels=[])

    @property
    def display(self) -> np.ndarray | None:
        """The array shown (NaN where cells are masked)."""
        return self._display

    def export_table(self) -> tuple[np.ndarray, list[str], list[str]] | None:
        """(matrix, row labels, column labels) written to CSV: the values behind the image
        (e.g. exact zeros or -inf where the display shows hatching). ``export`` given to
        :meth:`set_matrix` may be an array, or a callable returning an array or such a tuple
        (so a large export is only computed when asked for)."""
        e = self._export
        if e is None:
            return None
        if callable(e):
            e = e()
        if isinstance(e, tuple):
            m, rows, cols = e
            return np.asarray(m), list(rows), list(cols)
        return np.asarray(e), self.row_axis.labels, self.col_axis.labels

    @property
    def matrix(self) -> np.ndarray | None:
        """What is exported: the values behind the image (not the NaN-masked display)."""
        t = self.export_table()
        return None if t is None else t[0]

    def highlight_row(self, row: int, height: int = 1) -> None:
        rows, cols = self._shape
        if row is None or row < 0 or row >= rows:
            self._row_mark.hide()
            return
        self._row_mark.setRect(QRectF(0, row, cols, height))
        self._row_mark.show()

    @property
    def highlighted_row(self) -> int:
        return int(self._row_mark.rect().top()) if self._row_mark.isVisible() else -1

    # -- mouse ---------------------------------------------------------------------------------
    def cell_at(self, scene_pos: QPointF) -> tuple[int, int]:
        if not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return (-1, -1)
        p = self.plot.vb.mapSceneToView(scene_pos)
        r, c = int(math.floor(p.y())), int(math.floor(p.x()))
        rows, cols = self._shape
        if 0 <= r < rows and 0 <= c < cols:
            return (r, c)
        return (-1, -1)

    def scene_pos_of(self, row: int, col: int) -> QPointF:
        """Scene position of the centre of cell (row, col); used by tests and tooltips."""
        return self.plot.vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))

    def _on_mouse_moved(self, scene_pos) -> None:
        cell = self.cell_at(scene_pos)
        if cell != self._last_hover:
            self._last_hover = cell
            self.hovered.emit(*cell)

    def _on_mouse_clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        cell = self.cell_at(ev.scenePos())
        if cell[0] >= 0:
            self.clicked.emit(*cell)

    # -- export --------------------------------------------------------------------------------
    def export_png(self, path: str | Path, width: int | None = None) -> Path:
        return export_png(self.ci, path, width)

    def export_svg(self, path: str | Path) -> Path:
        # SVG viewers draw Qt's pattern brushes badly: masked cells are plain grey there
        shown = self._hatch.isVisible()
        self._hatch.hide()
        try:
            return export_svg(self.ci, path)
        finally:
            self._hatch.setVisible(shown)

    def export_csv(self, path: str | Path) -> Path:
        t = self.export_table()
        if t is None:
            raise ValueError("nothing to export yet")
        header = self.export_header() if self.export_header else self.name
        return write_csv(path, t[0], t[1], t[2], header)


# -- matrices ----------------------------------------------------------------------------------
MASKED_CODE = 255  # colour code of masked cells in set_codes images (transparent: hatched)


def quantize(a: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """Values -> uint8 colour codes 0..254 over ``levels`` (clipped). ``a`` must be finite."""
    lo, hi = float(levels[0]), float(levels[1])
    scale = (MASKED_CODE - 1) / (hi - lo) if hi > lo else 0.0
    q = np.subtract(a, np.float32(lo), dtype=np.float32)
    q *= np.float32(scale)
    q += np.float32(0.5)  # round to the nearest code
    np.clip(q, 0, MASKED_CODE - 1, out=q)
    return q.astype(np.uint8)


def causal_future(t: int, tk: int | None = None) -> np.ndarray:
    """(t, tk) bool, True above the diagonal (keys after the query): what the mask hides."""
    tk = t if tk is None else tk
    return np.triu(np.ones((t, tk), dtype=bool), k=1 + (tk - t))


#: pixels along a side of an all-heads image before its cells are pooled (see pool_cells)
MAX_MOSAIC = 2048


def pool_cells(a: np.ndarray, factor: int, how: str = "max") -> np.ndarray:
    """Pool the last two axes by ``factor`` (padding with NaN); NaN-only blocks stay NaN."""
    if factor <= 1:
        return a
    *lead, r, c = a.shape
    rr, cc = -(-r // factor), -(-c // factor)
    pad = np.full((*lead, rr * factor, cc * factor), np.nan, dtype=np.float32)
    pad[..., :r, :c] = a
    blocks = pad.reshape(*lead, rr, factor, cc, factor)
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if how == "max":
                return np.nanmax(blocks, axis=(-3, -1)).astype(np.float32)
            return np.nanmean(blocks, axis=(-3, -1)).astype(np.float32)


def mosaic(cells: np.ndarray) -> np.ndarray:
    """(R, C, h, w) -> (R*h, C*w): one image of all cells, no per-cell plots. Always a copy."""
    r, c, h, w = cells.shape
    out = np.empty((r * h, c * w), dtype=cells.dtype)
    out.reshape(r, h, c, w)[...] = cells.transpose(0, 2, 1, 3)
    return out


def grid_lines(rows: int, cols: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays (connect='pairs') for the borders between cells of a mosaic."""
    xs, ys = [], []
    for i in range(1, rows):
        xs += [0, cols * w]
        ys += [i * h, i * h]
    for j in range(1, cols):
        xs += [j * w, j * w]
        ys += [0, rows * h]
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


class SeriesPlot(pg.GraphicsLayoutWidget):
    """A PlotItem for curves or bars that also exports PNG / SVG and its table as CSV.

    The owner draws into ``plot`` and keeps the exported table current with :meth:`set_table`.
    """

    def __init__(self, parent: QWidget | None = None, *, name: str = "plot",
                 bottom_axis: pg.AxisItem | None = None, x_title: str = "", y_title: str = ""):
        super().__init__(parent)
        self.name = name
        self.ci.setContentsMargins(2, 8, 8, 2)
        axes = {"bottom": bottom_axis} if bottom_axis is not None else {}
        self.plot: pg.PlotItem = self.addPlot(axisItems=axes)
        for a in ("left", "bottom"):
            self.plot.getAxis(a).setStyle(tickFont=tick_font())
            self.plot.getAxis(a).enableAutoSIPrefix(False)  # "0.04", not "40 (x0.001)"
        style = {"font-size": css_pt(TICK_PT)}
        if x_title:
            self.plot.setLabel("bottom", x_title, **style)
        if y_title:
            self.plot.setLabel("left", y_title, **style)
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self._table: tuple[np.ndarray, list[str], list[str]] | None = None
        self.export_header: Callable[[], str] | None = None
        add_export_actions(self.plot.vb.menu, self)
        replace_scene_export(self.scene())

    def set_table(self, matrix: np.ndarray, row_labels: Sequence[str],
                  col_labels: Sequence[str]) -> None:
        self._table = (np.asarray(matrix), list(row_labels), list(col_labels))

    def export_table(self):
        return self._table

    def export_png(self, path: str | Path, width: int | None = None) -> Path:
        return export_png(self.ci, path, width)

    def export_svg(self, path: str | Path) -> Path:
        return export_svg(self.ci, path)

    def export_csv(self, path: str | Path) -> Path:
        if self._table is None:
            raise ValueError("nothing to export yet")
        header = self.export_header() if self.export_header else self.name
        return write_csv(path, *self._table, header)
