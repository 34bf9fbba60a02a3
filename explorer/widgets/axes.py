"""A faster pyqtgraph axis for the panels' token and value axes.

:class:`FastAxis` computes the same draw specs as ``pg.AxisItem`` (tests compare the two) with
text sizes cached per label, and draws a changed axis straight onto the view instead of
recording and replaying a picture.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPicture

# -- axes ------------------------------------------------------------------------------------------
_ALIGN = {
    "left": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
    "right": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
    "top": Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
    "bottom": Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
}
_TEXT_FLAGS = {k: v | Qt.TextFlag.TextDontClip for k, v in _ALIGN.items()}
_MEASURE_RECT = QRectF(0, 0, 100, 100)


class _Measure:
    """Stands in for the QPicture painter pyqtgraph measures axis labels with.

    :meth:`FastAxis.generateDrawSpecs` asks it for the font, the device's dpi and, for a label
    it has not measured before, ``boundingRect``: only then is a QPicture painter opened (opening
    one costs about as much as measuring a few labels)."""

    _device = QPicture()  # for the dpi: every QPicture has the same

    def __init__(self, font: QFont | None):
        self._font = QFont(font) if font else None
        self._painter: QPainter | None = None
        self._picture: QPicture | None = None  # what the painter paints on: kept alive with it

    def _open(self) -> QPainter:
        if self._painter is None:
            self._picture = QPicture()
            self._painter = QPainter(self._picture)
            if self._font is not None:
                self._painter.setFont(self._font)
        return self._painter

    def setFont(self, font: QFont) -> None:  # noqa: N802 - QPainter API
        self._font = QFont(font)
        if self._painter is not None:
            self._painter.setFont(font)

    def font(self) -> QFont:
        return QFont(self._font) if self._font is not None else self._open().font()

    def device(self) -> QPicture:
        return self._device

    def boundingRect(self, *args) -> QRectF:  # noqa: N802 - QPainter API
        return self._open().boundingRect(*args)

    def end(self) -> None:
        if self._painter is not None:
            self._painter.end()
            self._painter = None


class FastAxis(pg.AxisItem):
    """An AxisItem that works out what to draw several times faster than pyqtgraph's.

    pyqtgraph re-measures every label with ``QPainter.boundingRect`` and builds a few Python
    objects per tick whenever an axis is redrawn (about a millisecond an axis, several axes a
    step). :meth:`generateDrawSpecs` here returns the same specs (tests compare the two) with
    the text sizes cached per label and the per-tick work kept to plain floats. Axes with grid
    lines or ``stopAxisAtTick`` take pyqtgraph's own path.

    pyqtgraph also records each new drawing into a QPicture and plays that back, so an axis
    whose labels change at every step is drawn twice. :meth:`paint` draws a new axis straight
    onto the view (the same pixels: tests compare them) and records a picture only when the
    axis is painted again unchanged.
    """

    _DIRECT = QPicture()  # marks "specs worked out and drawn directly, not recorded yet"

    def __init__(self, *args, **kwargs):
        self._text_sizes: dict[tuple, tuple[float, float]] = {}
        self._specs = None
        self._label_html: str | None = None
        super().__init__(*args, **kwargs)

    def paint(self, p, opt, widget):
        pic = self.picture  # pyqtgraph sets it to None whenever the axis must be redrawn
        if pic is not None and pic is not self._DIRECT:
            pic.play(p)
            return
        if pic is None:
            # labels are measured on a picture, as pyqtgraph measures them; the painter is only
            # opened when a label is new (see _Measure)
            rec = _Measure(self.style["tickFont"])
            try:
                self._specs = self.generateDrawSpecs(rec)
            finally:
                rec.end()
            if self._direct_ok(p, rec.device()):
                self.picture = self._DIRECT
                if self._specs is not None:
                    self.drawPicture(p, *self._specs)
                return
        # painted again unchanged (or at another dpi): record once, play from now on
        rec = QPicture()
        painter = QPainter(rec)
        try:
            if self.style["tickFont"]:
                painter.setFont(self.style["tickFont"])
            if self._specs is not None:
                self.drawPicture(painter, *self._specs)
        finally:
            painter.end()
        self.picture = rec
        rec.play(p)

    def _updateLabel(self) -> None:  # noqa: N802 - pyqtgraph API
        # pyqtgraph re-renders the label's HTML at every new range (for its SI prefix), though
        # the text rarely changes: re-render it only when it does (a ms a step at times)
        if self.label is not None:
            html = self.labelString()
            if html != self._label_html:
                self.label.setHtml(html)
                self._label_html = html
        self._adjustSize()
        self.picture = None
        self.update()

    def _direct_ok(self, p, rec: QPicture) -> bool:
        """Whether drawing the specs straight onto ``p`` gives the pixels the picture would.

        A picture is played back scaled by the device's dpi over its own, so the dpi must match;
        and a zero-length tick (``tickLength=0``) is a dot that Qt places one pixel apart in the
        two ways for some positions, so such axes keep the picture."""
        dev = p.device()
        if dev is None or (dev.logicalDpiX(), dev.logicalDpiY()) != \
                (rec.logicalDpiX(), rec.logicalDpiY()):
            return False
        return self._specs is None or all(p1 != p2 for _pen, p1, p2 in self._specs[1])

    def _text_size(self, p, key: tuple, s: str) -> tuple[float, float]:
        """(width, height × 0.8) of ``s`` as pyqtgraph measures it (its boundingRect is "a bit
        too large", so it keeps 80 % of the height)."""
        size = self._text_sizes.get((key, s))
        if size is None:
            if len(self._text_sizes) > 8192:  # bounded: a long run sees many labels
                self._text_sizes.clear()
            br = p.boundingRect(_MEASURE_RECT, Qt.AlignmentFlag.AlignCenter, s)
            size = self._text_sizes[(key, s)] = (br.width(), br.height() * 0.8)
        return size

    def generateDrawSpecs(self, p):  # noqa: N802 - pyqtgraph API
        style = self.style
        if self.grid is not False or style["stopAxisAtTick"][0] or style["stopAxisAtTick"][1]:
            return super().generateDrawSpecs(p)
        if style["tickFont"] is not None:
            p.setFont(style["tickFont"])
        bounds = self.mapRectFromParent(self.geometry())
        o = self.orientation
        if o == "left":
            span = (QPointF(bounds.right() - 1.0, bounds.top() - 1.0),
                    QPointF(bounds.right() - 1.0, bounds.bottom() + 1.0))
            tick_stop, tick_dir, axis = bounds.right(), -1, 0
        elif o == "right":
            span = (QPointF(bounds.left() + 1.0, bounds.top() - 1.0),
                    QPointF(bounds.left() + 1.0, bounds.bottom() + 1.0))
            tick_stop, tick_dir, axis = bounds.left(), 1, 0
        elif o == "top":
            span = (QPointF(bounds.left() - 1.0, bounds.bottom() - 1.0),
                    QPointF(bounds.right() + 1.0, bounds.bottom() - 1.0))
            tick_stop, tick_dir, axis = bounds.bottom(), -1, 1
        else:
            span = (QPointF(bounds.left() - 1.0, bounds.top() + 1.0),
                    QPointF(bounds.right() + 1.0, bounds.top() + 1.0))
            tick_stop, tick_dir, axis = bounds.top(), 1, 1
        d0, d1 = self.mapToDevice(span[0]), self.mapToDevice(span[1])
        if d0 is None or d1 is None:
            return None
        length_px = ((d1.x() - d0.x()) ** 2 + (d1.y() - d0.y()) ** 2) ** 0.5  # as pyqtgraph
        if length_px == 0:
            return None

        if self._tickLevels is None:
            tick_levels = self.tickValues(self.range[0], self.range[1], length_px)
            tick_strings = None
        else:
            tick_levels = [(None, [v for v, _ in level]) for level in self._tickLevels]
            tick_strings = [[s for _, s in level] for level in self._tickLevels]

        lo, hi = self.range
        dif = hi - lo
        if dif == 0:
            x_scale, offset = 1, 0
        elif axis == 0:
            x_scale = -bounds.height() / dif
            offset = lo * x_scale - bounds.height()
        else:
            x_scale = bounds.width() / dif
            offset = lo * x_scale
        x_min, x_max = sorted((lo * x_scale - offset, hi * x_scale - offset))

        positions: list[list[float | None]] = []
        tick_specs = []
        for i, (_spacing, ticks) in enumerate(tick_levels):
            tick_end = tick_stop + style["tickLength"] / (i * 0.5 + 1.0) * tick_dir
            pen = self._level_pen(i)
            pos: list[float | None] = []
            for v in ticks:
                x = v * x_scale - offset
                if x < x_min or x > x_max:
                    pos.append(None)
                    continue
                pos.append(x)
                if axis == 0:
                    tick_specs.append((pen, QPointF(tick_stop, x), QPointF(tick_end, x)))
                else:
                    tick_specs.append((pen, QPointF(x, tick_stop), QPointF(x, tick_end)))
            positions.append(pos)
        axis_spec = (self.pen(), span[0], span[1])
        if not style["showValues"]:
            return axis_spec, tick_specs, []

        font = p.font()
        dev = p.device()
        key = (font.key(), dev.logicalDpiX(), dev.logicalDpiY()) if dev is not None else \
            (font.key(),)
        text_offset = max(0, style["tickLength"]) + style["tickTextOffset"][axis]
        flags = _TEXT_FLAGS[o]
        clip = self.boundingRect()
        widths: list[float] = []  # of every label measured so far, as pyqtgraph counts them
        heights: list[float] = []
        text_specs = []
        last_size2 = 0
        for i in range(min(len(tick_levels), style["maxTextLevel"] + 1)):
            if tick_strings is None:
                spacing, values = tick_levels[i]
                strings = self.tickStrings(values, self.autoSIPrefixScale * self.scale, spacing)
            else:
                strings = tick_strings[i]
            if len(strings) == 0:
                continue
            pos = positions[i]
            sizes = [None if pos[j] is None else self._text_size(p, key, s)
                     for j, s in enumerate(strings)]
            for sz in sizes:
                if sz is not None:
                    widths.append(sz[0])
                    heights.append(sz[1])
            if widths:
                size, size2 = ((sum(heights), max(widths)) if axis == 0
                               else (sum(widths), max(heights)))
            else:
                size = size2 = 0
            if i > 0:  # pyqtgraph's crowding rule: stop adding levels once text fills the axis
                ratio = float(size) / length_px
                if any(len(text_specs) >= n and ratio >= limit
                       for n, limit in style["textFillLimits"]):
                    break
            last_size2 = size2
            for j, s in enumerate(strings):
                sz = sizes[j]
                if sz is None:
                    continue
                x, (w, h) = pos[j], sz
                if o == "left":
                    rect = QRectF(tick_stop - text_offset - w, x - h / 2, w, h)
                elif o == "right":
                    rect = QRectF(tick_stop + text_offset, x - h / 2, w, h)
                elif o == "top":
                    rect = QRectF(x - w / 2.0, tick_stop - text_offset - h, w, h)
                else:
                    rect = QRectF(x - w / 2.0, tick_stop + text_offset, w, h)
                if clip & rect != rect:  # pyqtgraph drops labels that stick out of the axis
                    continue
                text_specs.append((rect, flags, s))
        self._updateMaxTextSize(last_size2)
        return axis_spec, tick_specs, text_specs

    def _level_pen(self, i: int) -> QPen:
        """The tick pen of level ``i`` (pyqtgraph fades deeper levels)."""
        alpha = self.style["tickAlpha"]
        if alpha is None:
            alpha = 255 / (i + 1)
        elif isinstance(alpha, float):
            alpha = min(255, max(0, int(round(alpha * 255))))
        elif not isinstance(alpha, int) or not 0 <= alpha <= 255:
            raise ValueError(f"tickAlpha must be a float 0..1 or an int 0..255, got {alpha!r}")
        pen = self.tickPen()
        if pen.brush().style() == Qt.BrushStyle.SolidPattern:
            pen = QPen(pen)
            c = QColor(pen.color())
            c.setAlpha(int(alpha))
            pen.setColor(c)
        return pen
