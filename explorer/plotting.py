"""Shared look and pyqtgraph helpers: the theme, colour maps, heatmaps with a colour bar, token ticks.

Every panel takes its colours and fonts from here so the window looks like one tool. Plot items
are made once and updated in place (``Heatmap.set_data`` calls ``setImage(..., autoLevels=False)``);
bursts of updates are coalesced with :class:`Coalescer` (a single-shot ``QTimer``).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QSizePolicy, QWidget

from explorer import redraws
from explorer.widgets.axes import FastAxis  # noqa: F401 - part of this module's API (see __all__)


@dataclass(frozen=True)
class Theme:
    """One dark theme for widgets and plots (good contrast on a projector too)."""

    background: str = "#16181d"  # plot backgrounds
    window: str = "#1f2229"  # widget backgrounds
    base: str = "#15171c"  # text entry backgrounds
    panel: str = "#2a2e37"  # buttons, headers
    text: str = "#e6e8ee"
    muted: str = "#8b93a7"  # secondary text, greyed-out bars
    grid: str = "#3a3f4b"
    accent: str = "#4cc2ff"  # selection, the planned token
    accent2: str = "#ffb547"  # a second highlight (e.g. the sampled token, a cut-off)
    good: str = "#5bd68a"
    bad: str = "#ff6b6b"
    prompt_chip: str = "#3a3f4b"  # neutral chip colour of prompt tokens
    font_family: str = ""  # "" = the platform's UI font
    font_pt: int = 11
    mono_family: str = "DejaVu Sans Mono"


THEME = Theme()

#: colour maps used across panels (pyqtgraph bundles these, no matplotlib needed)
SEQUENTIAL = "viridis"  # attention probabilities, 0..1
DIVERGING = "CET-D1A"  # signed values: scores, embeddings, activations


def qcolor(c: str | QColor, alpha: float | None = None) -> QColor:
    q = QColor(c)
    if alpha is not None:
        q.setAlphaF(float(alpha))
    return q


def ui_font(pt: int | None = None, bold: bool = False) -> QFont:
    f = QFont(THEME.font_family) if THEME.font_family else QFont()
    f.setPointSize(pt or THEME.font_pt)
    f.setBold(bold)
    return f


def mono_font(pt: int | None = None) -> QFont:
    f = QFont(THEME.mono_family)
    f.setStyleHint(QFont.StyleHint.Monospace)
    f.setPointSize(pt or THEME.font_pt)
    return f


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options; call once before any plot is made."""
    pg.setConfigOptions(antialias=True, background=THEME.background, foreground=THEME.text,
                        imageAxisOrder="row-major")


def apply_theme(app: QApplication) -> None:
    """Fusion style with the dark palette, readable fonts and pyqtgraph colours."""
    configure_pyqtgraph()
    app.setStyle("Fusion")
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: THEME.window, QPalette.ColorRole.WindowText: THEME.text,
        QPalette.ColorRole.Base: THEME.base, QPalette.ColorRole.AlternateBase: THEME.window,
        QPalette.ColorRole.ToolTipBase: THEME.panel, QPalette.ColorRole.ToolTipText: THEME.text,
        QPalette.ColorRole.Text: THEME.text, QPalette.ColorRole.Button: THEME.panel,
        QPalette.ColorRole.ButtonText: THEME.text, QPalette.ColorRole.BrightText: THEME.bad,
        QPalette.ColorRole.Highlight: THEME.accent, QPalette.ColorRole.HighlightedText: "#0b0c10",
        QPalette.ColorRole.Link: THEME.accent, QPalette.ColorRole.PlaceholderText: THEME.muted,
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(THEME.muted))
    app.setPalette(p)
    app.setFont(ui_font())
    app.setStyleSheet(f"""
        QToolTip {{ color: {THEME.text}; background: {THEME.panel}; border: 1px solid {THEME.grid};
                    padding: 4px; }}
        QDockWidget {{ font-weight: bold; }}
        QDockWidget::title {{ background: {THEME.panel}; padding: 5px 8px; }}
        QPushButton {{ padding: 4px 12px; }}
        QPushButton:checked {{ background: {THEME.accent}; color: #0b0c10; }}
        QStatusBar QLabel {{ padding: 0 8px; }}
    """)


# -- colours for values ----------------------------------------------------------------------------
def colormap(name: str = SEQUENTIAL) -> pg.ColorMap:
    return pg.colormap.get(name)


_PROB_LUT: list[QColor] = []
_PROB_BINS = 96


def prob_color(p: float | None) -> QColor:
    """Colour of a generated token chip by the probability it had: red (unlikely) → green (likely).

    The scale is logarithmic (1e-3 .. 1) because what matters to a reader is "was this a long shot
    or the obvious choice", and most sampled probabilities sit between 1% and 90%. Colours come
    from a small precomputed table: chips are painted hundreds at a time.
    """
    if not _PROB_LUT:
        cmap = pg.ColorMap([0.0, 0.5, 1.0], [QColor("#c0392b"), QColor("#c9a227"),
                                             QColor("#2e9e5b")])
        _PROB_LUT.extend(cmap.map(i / (_PROB_BINS - 1), mode="qcolor") for i in range(_PROB_BINS))
    if p is None or not math.isfinite(p):
        return QColor(THEME.prompt_chip)
    x = (math.log10(max(float(p), 1e-3)) + 3.0) / 3.0
    return _PROB_LUT[min(max(int(round(x * (_PROB_BINS - 1))), 0), _PROB_BINS - 1)]


# -- token labels ----------------------------------------------------------------------------------
def token_ticks(pieces: Sequence[str], max_labels: int = 64,
                offset: int = 0) -> list[tuple[float, str]]:
    """Tick list for an axis of token labels (``StepResult.pieces``), thinned to at most
    ``max_labels`` so labels never overlap."""
    n = len(pieces)
    if n == 0:
        return []
    stride = max(1, math.ceil(n / max_labels))
    return [(float(i), pieces[i]) for i in range(offset % stride, n, stride)]


def set_token_ticks(axis: pg.AxisItem, tokens: Sequence[str], max_labels: int = 64) -> None:
    axis.setTicks([token_ticks(tokens, max_labels), []])


# -- plots -----------------------------------------------------------------------------------------
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
        plot.setTitle(title, color=THEME.text, size=f"{THEME.font_pt + 1}pt")
    label_style = {"color": THEME.muted, "font-size": f"{THEME.font_pt}pt"}
    if x:
        plot.setLabel("bottom", x, **label_style)
    if y:
        plot.setLabel("left", y, **label_style)
    plot.hideButtons()
    return plot


class Heatmap:
    """A matrix shown as an image with a colour bar, token ticks and a fixed colour range.

    Made once; ``set_data`` updates the image in place without re-levelling.
    """

    def __init__(self, layout: pg.GraphicsLayout | pg.GraphicsLayoutWidget, row: int = 0,
                 col: int = 0, *, title: str | None = None, cmap: str = SEQUENTIAL,
                 levels: tuple[float, float] = (0.0, 1.0), colorbar: bool = True,
                 colorbar_label: str | None = None):
        self.plot: pg.PlotItem = layout.addPlot(row=row, col=col)
        style_plot(self.plot, title)
        self.plot.invertY(True)
        self.plot.setAspectLocked(False)
        self.plot.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.levels = levels
        self.cmap = colormap(cmap)
        self.image.setColorMap(self.cmap)
        self.colorbar: pg.ColorBarItem | None = None
        if colorbar:
            self.colorbar = pg.ColorBarItem(values=levels, colorMap=self.cmap, interactive=False,
                                            width=14, label=colorbar_label)
            self.colorbar.setImageItem(self.image)
            layout.addItem(self.colorbar, row=row, col=col + 1)

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = (float(levels[0]), float(levels[1]))
        if self.colorbar is not None:
            self.colorbar.setLevels(self.levels)
        else:
            self.image.setLevels(self.levels)

    def set_data(self, a: np.ndarray, levels: tuple[float, float] | None = None) -> None:
        if levels is not None and tuple(levels) != self.levels:
            self.set_levels(levels)
        a = np.asarray(a, dtype=np.float32)
        self.image.setImage(a, autoLevels=False, levels=self.levels)
        self.image.setRect(0 - 0.5, 0 - 0.5, a.shape[1], a.shape[0])

    def set_token_ticks(self, x_tokens: Sequence[str] | None, y_tokens: Sequence[str] | None,
                        max_labels: int = 48) -> None:
        if x_tokens is not None:
            set_token_ticks(self.plot.getAxis("bottom"), x_tokens, max_labels)
        if y_tokens is not None:
            set_token_ticks(self.plot.getAxis("left"), y_tokens, max_labels)


def symmetric_levels(a: np.ndarray, percentile: float = 99.0) -> tuple[float, float]:
    """(-m, m) with m a high percentile of |a|: a diverging map centred on zero, robust to outliers."""
    a = np.asarray(a)
    finite = a[np.isfinite(a)]
    m = float(np.percentile(np.abs(finite), percentile)) if finite.size else 1.0
    m = m if m > 0 else 1.0
    return (-m, m)


class TextLabels(pg.GraphicsObject):
    """Many short texts at data positions, painted by one item (far cheaper than a TextItem each).

    Each text is anchored at its point's left-middle, offset a few pixels to the right, and keeps
    its pixel size whatever the zoom. It takes no part in auto-ranging.
    """

    def __init__(self, font: QFont | None = None, offset_px: float = 5.0):
        super().__init__()
        self._items: list[tuple[float, float, str, QColor]] = []
        self._font = font or ui_font(THEME.font_pt - 1)
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
        p.setFont(self._font)
        fm = QFontMetricsF(self._font)
        dy = (fm.ascent() - fm.descent()) / 2
        for x, y, text, colour in self._items:
            pt = t.map(QPointF(x, y))
            p.setPen(colour)
            p.drawText(QPointF(pt.x() + self._offset, pt.y() + dy), text)
        p.restore()


def is_shown(widget) -> bool:
    """Whether ``widget`` is on screen. ``isVisible()`` is not enough: a dock tab behind another
    stays "visible" (Qt parks it outside the window), so check it has an unobscured region too."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


def catch_up(widget) -> None:
    """Tell a panel that its dock came to the front (a tab raised): a redraw skipped while it
    was hidden happens now. Panels opt in with a ``catch_up()`` method."""
    fn = getattr(widget, "catch_up", None)
    if callable(fn):
        fn()


class QuietLabel(QWidget):
    """A QLabel whose text can change at every step without re-laying out the whole window.

    ``QLabel.setText`` asks the parent layout for a new layout, and inside a dock that re-lays
    out the main window (every dock, the status bar: milliseconds a step), even when the label
    keeps its size. Here the label sits in a holder without a layout, which ignores that request;
    the holder asks for a new layout only when the text needs more room (wider, or another
    height when word-wrapped). Offers the QLabel methods the panels use; ``label`` is the QLabel.
    """

    def __init__(self, parent: QWidget | None = None, word_wrap: bool = False,
                 align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft):
        super().__init__(parent)
        # opaque: a new text repaints this label only, not the dock and window beneath it
        self.setAutoFillBackground(True)
        self.label = QLabel(self)
        self.label.setWordWrap(word_wrap)
        self.label.setAlignment(align | Qt.AlignmentFlag.AlignVCenter)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(word_wrap)
        self.setSizePolicy(policy)

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's API
        if text == self.label.text():
            return
        self.label.setText(text)
        if self.label.wordWrap():
            grow = self.heightForWidth(self.width()) != self.height()
        else:
            hint = self.label.sizeHint()
            grow = hint.width() > self.width() or hint.height() > self.height()
        if grow:
            self.updateGeometry()

    def text(self) -> str:
        return self.label.text()

    def setTextFormat(self, fmt: Qt.TextFormat) -> None:  # noqa: N802
        self.label.setTextFormat(fmt)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return self.label.wordWrap()

    def heightForWidth(self, w: int) -> int:  # noqa: N802
        return self.label.heightForWidth(w)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.label.sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self.label.minimumSizeHint()

    def resizeEvent(self, e) -> None:  # noqa: N802
        self.label.setGeometry(self.rect())
        super().resizeEvent(e)


class LiveRedraw:
    """Mixin for the panels that redraw from every session result.

    Bursts of ``schedule_redraw()`` (typing, fast stepping) coalesce into one ``redraw_now()``
    per frame; a panel that is not on screen (a closed dock, a tab behind another) only marks
    itself dirty and catches up when it is shown or its tab is raised. Put it before QWidget in
    the bases, call ``_init_redraw()`` in ``__init__`` and start ``redraw_now`` with
    ``if not self._begin_redraw(): return``.

    Frame pacing, not a fixed delay: a request waits only for what is left of ``redraw_ms``
    since the last redraw, so a single step is drawn on the next pass of the event loop (a
    fixed 16 ms timer added up to a frame to every step) and a burst still draws once a frame.
    """

    redraw_ms = 16

    def _init_redraw(self) -> None:
        self.redraw_count = 0
        self._dirty = True
        self._last_redraw = -1e9  # time.perf_counter() of the last redraw
        self._timer = redraws.register(QTimer(self))
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.redraw_ms)
        self._timer.timeout.connect(self.redraw_now)

    def schedule_redraw(self, *_args) -> None:
        self._dirty = True
        if not self._timer.isActive():
            since_ms = (time.perf_counter() - self._last_redraw) * 1000
            self._timer.start(max(0, math.ceil(self.redraw_ms - since_ms)))

    def showEvent(self, ev):  # noqa: N802 - Qt API
        super().showEvent(ev)
        if self._dirty:
            self.schedule_redraw()

    def catch_up(self) -> None:
        """The dock's tab came to the front: draw what was skipped while it was behind."""
        if self._dirty:
            self.schedule_redraw()

    def _begin_redraw(self) -> bool:
        """True when the panel is on screen and should draw now; else it stays dirty."""
        self._timer.stop()
        if not is_shown(self):
            self._dirty = True
            return False
        self._dirty = False
        self.redraw_count += 1
        self._last_redraw = time.perf_counter()
        return True


class Coalescer(QObject):
    """Runs ``fn`` once, ~``ms`` after the first of a burst of ``request()`` calls.

    Panels call ``request()`` from every signal; the redraw happens once per frame at most.
    With ``widget``, nothing is drawn while the widget is hidden (a closed dock, a tab behind
    another): the redraw happens when it is shown again.
    """

    def __init__(self, fn: Callable[[], None], ms: int = 16, parent: QObject | None = None,
                 widget=None):
        super().__init__(parent)
        self._fn = fn
        self._widget = widget
        self._dirty = False
        self._timer = redraws.register(QTimer(self))
        self._timer.setSingleShot(True)
        self._timer.setInterval(ms)
        self._timer.timeout.connect(self._fire)
        if widget is not None:
            widget.installEventFilter(self)

    def request(self) -> None:
        if self._widget is not None and not is_shown(self._widget):
            self._dirty = True  # drawn on the next show (or catch_up, for a raised dock tab)
            return
        if not self._timer.isActive():
            self._timer.start()

    def eventFilter(self, obj, e) -> bool:  # noqa: N802 - Qt API
        if e.type() == QEvent.Type.Show:
            self.catch_up()
        return False

    def catch_up(self) -> None:
        """Run the redraw skipped while the widget was hidden, if any."""
        if self._dirty:
            self._dirty = False
            self._timer.start()

    def flush(self) -> None:
        """Run now if a redraw is pending (tests and benchmarks)."""
        if self._timer.isActive():
            self._timer.stop()
            self._fn()

    @property
    def pending(self) -> bool:
        return self._timer.isActive()

    def _fire(self) -> None:
        self._fn()


__all__ = [
    "Theme", "THEME", "SEQUENTIAL", "DIVERGING", "qcolor", "ui_font", "mono_font",
    "configure_pyqtgraph", "apply_theme", "colormap", "prob_color", "token_ticks",
    "set_token_ticks", "FastAxis", "style_plot", "Heatmap", "symmetric_levels", "TextLabels",
    "Coalescer",
    "is_shown", "catch_up", "QuietLabel",
]
