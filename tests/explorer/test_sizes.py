"""The window at the sizes projectors and laptops use, from 1024 × 768 up, also at 150 % and
200 % display scaling: nothing off-screen, no widgets overlapping, no text cut short, plots tall
enough to read. Checked from the widget tree after the window is laid out at each size.

Display scaling (QT_SCALE_FACTOR, what ``main.py --scale`` sets) cannot change inside a running
application: a 1920 × 1080 screen at 150 % is a 1280 × 720 window in Qt's units, and at 200 %
a 960 × 540 one, so those are the sizes tested here; the zoom (text size) is tested on top.
"""
from __future__ import annotations

import itertools

import pyqtgraph as pg
import pytest
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QHBoxLayout,
    QLabel,
    QLayout,
    QWidget,
)

from explorer import theme
from explorer.app import window_size

MIN_PLOT_H = 100  # a plot shorter than this is no longer readable
SIZES = [  # (screen width, height, display scaling, text zoom)
    (1024, 768, 1.0, 1.0),
    (1280, 720, 1.0, 1.0),
    (1366, 768, 1.0, 1.0),
    (1920, 1080, 1.0, 1.0),
    (1920, 1080, 1.5, 1.0),
    (1920, 1080, 2.0, 1.0),
    (1920, 1080, 1.0, 2.0),
]


def _in_layout(layout: QLayout | None, w: QWidget) -> bool:
    if layout is None:
        return False
    for i in range(layout.count()):
        item = layout.itemAt(i)
        if item.widget() is w:
            return True
        if item.layout() is not None and _in_layout(item.layout(), w):
            return True
    return False


def _shown(w: QWidget) -> bool:
    """Visible and at least partly on screen (not scrolled away or behind a tab)."""
    return w.isVisible() and not w.visibleRegion().isEmpty()


def _problems(window) -> list[str]:
    out = []
    # a dock behind a tab is "visible" but moved out of sight: only what can be seen counts
    widgets = [w for w in window.findChildren(QWidget) if _shown(w) and not w.isWindow()]
    # siblings laid out by the same layout never overlap
    by_parent: dict[int, list[QWidget]] = {}
    for w in widgets:
        parent = w.parentWidget()
        if parent is not None and _in_layout(parent.layout(), w):
            by_parent.setdefault(id(parent), []).append(w)
    for group in by_parent.values():
        for a, b in itertools.combinations(group, 2):
            if a.geometry().intersects(b.geometry()):
                out.append(f"overlap: {_name(a)} {a.geometry()} and {_name(b)} {b.geometry()}")
    # nothing outside the window
    for dock in window.docks.values():
        if _shown(dock) and not window.rect().contains(dock.geometry()):
            out.append(f"off-screen: dock {dock.windowTitle()} {dock.geometry()}")
    for w in widgets:
        fm = w.fontMetrics()
        if isinstance(w, QLabel) and w.text() and w.textFormat() != 1 and "<" not in w.text():
            cr = w.contentsRect()
            m = 2 * w.margin()
            if w.wordWrap():
                if w.heightForWidth(w.width()) > w.height() + 1:
                    out.append(f"cut short (wrapped): {_name(w)} {w.text()[:40]!r}")
            elif max(fm.horizontalAdvance(line) for line in w.text().split("\n")) > \
                    cr.width() - m + 1:
                out.append(f"cut short: {_name(w)} {w.text()[:40]!r} in {cr.width()} px")
        elif isinstance(w, QAbstractButton) and w.text():
            if fm.horizontalAdvance(w.text().replace("&", "")) > w.width():
                out.append(f"cut short (button): {_name(w)} {w.text()!r} in {w.width()} px")
        if isinstance(w, pg.GraphicsView) and w.height() < MIN_PLOT_H:
            out.append(f"plot too short: {_name(w)} {w.height()} px")
    # the next-token bars: their labels one line apart, never printed over each other
    dist = window.panels.get("Next token")
    if dist is not None and _shown(dist.view):
        line = QFontMetricsF(dist.plot.getAxis("left").style["tickFont"]).height()
        if dist._n_bars * line > dist.plot.vb.size().height() + 1:
            out.append(f"{dist._n_bars} bars overprint in {dist.plot.vb.size().height()} px")
    return out


def _name(w: QWidget) -> str:
    return f"{type(w).__name__}({w.objectName() or w.parentWidget().__class__.__name__})"


def test_the_window_fits_a_1024x768_screen(make_window, tiny_models):
    w = make_window(tiny_models["tiny"], optional_panels=True)
    hint = w.minimumSizeHint().expandedTo(w.minimumSize())
    assert hint.width() <= 1024 and hint.height() <= 768 - 60  # title bar and task bar


@pytest.mark.parametrize("width,height,scale,zoom", SIZES,
                         ids=[f"{w}x{h}@{s:g}x{z:g}" for w, h, s, z in SIZES])
def test_no_overlaps_or_cut_text_at_each_size(qtbot, make_window, tiny_models,
                                              width, height, scale, zoom):
    theme.set_zoom(zoom)
    w = make_window(tiny_models["tiny"], optional_panels=True)
    w.resize(*window_size((width, height), scale))
    qtbot.wait(50)
    w._default_dock_sizes()
    with qtbot.waitSignal(w.session.step_ready, timeout=5000):
        w.session.step()
    qtbot.wait(200)
    QApplication.processEvents()
    assert (w.width(), w.height()) == window_size((width, height), scale)
    for name in ("Attention", "Positional encoding", "Architecture", "Training"):
        w.show_panel(name)
        qtbot.wait(150)
        problems = _problems(w)
        assert not problems, f"{name} in front:\n" + "\n".join(problems)


class _Bare(QWidget):
    docks: dict = {}
    panels: dict = {}


def test_the_checks_catch_overlap_and_cut_text(qtbot):
    """The checks above have teeth: a squeezed label and two overlapping siblings are found."""
    win = _Bare()
    qtbot.addWidget(win)
    lay = QHBoxLayout(win)
    a, b = QLabel("a label far too long for its room"), QLabel("b")
    lay.addWidget(a)
    lay.addWidget(b)
    win.resize(400, 100)
    win.show()
    qtbot.waitExposed(win)
    assert _problems(win) == []
    a.setGeometry(0, 0, 60, 30)  # squeezed, and over b
    b.setGeometry(40, 0, 60, 30)
    found = _problems(win)
    assert any(p.startswith("cut short") for p in found)
    assert any(p.startswith("overlap") for p in found)
