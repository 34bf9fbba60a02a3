"""Text size (zoom), dark and light themes and the colour-blind-safe palette: every font, plot
label and chip follows, the choice is remembered, and the keys work."""
from __future__ import annotations

import re

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from explorer import theme
from explorer.app import make_settings
from explorer.look_menu import saved_look


def _axis_pt(axis: pg.AxisItem) -> float:
    return float(re.search(r"font-size:\s*([0-9.]+)pt", axis.labelString()).group(1))


def test_zoom_scales_fonts_plots_and_chips(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], optional_panels=True)
    editor = w.prompt_panel.editor
    strip = w.prompt_panel.strip
    att = w.panels["Attention"]
    pos = w.panels["Positional encoding"]
    axis = att.heatmap.plot.getAxis("bottom")
    before = (editor.font().pointSizeF(), strip.font().pointSizeF(),
              axis.style["tickFont"].pointSizeF(), _axis_pt(axis), strip._chip_h)
    w.look.set_zoom(2.0)
    qtbot.wait(50)
    after = (editor.font().pointSizeF(), strip.font().pointSizeF(),
             axis.style["tickFont"].pointSizeF(), _axis_pt(axis))
    assert QApplication.font().pointSizeF() == pytest.approx(2 * theme.THEME.font_pt)
    for b, a in zip(before, after, strict=False):
        assert a == pytest.approx(2 * b, rel=0.02)
    strip._relayout(strip.width())
    assert strip._chip_h > 1.6 * before[-1]  # chips grow with their text
    # the explanation beside the positional plots (rich text with point sizes) grew too
    sizes = [float(x) for x in re.findall(r"font-size:\s*([0-9.]+)pt", pos.text.text())]
    assert sizes and min(sizes) >= 2 * 12 * 0.95
    assert make_settings().value("view/zoom") in (2.0, "2.0", "2")


def test_zoom_keys_step_and_clamp(qtbot, window):
    look = window.look
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert theme.zoom() == pytest.approx(1.1)
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert theme.zoom() == 1.0
    for _ in range(20):
        look.larger()
    assert theme.zoom() == theme.ZOOM_MAX and not look.act_larger.isEnabled()
    for _ in range(20):
        qtbot.keyClick(window, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert theme.zoom() == theme.ZOOM_MIN


def test_look_is_remembered_between_starts(make_window, tiny_models):
    w = make_window(tiny_models["tiny"])
    w.look.set_zoom(1.5)
    w.look.set_theme("light")
    w.look.act_palette.setChecked(True)
    look = saved_look(make_settings())
    assert look == {"theme": "light", "zoom_factor": 1.5, "palette": "colour-blind"}
    # a damaged settings file falls back to the defaults
    s = make_settings()
    s.setValue("view/zoom", "huge")
    s.setValue("view/theme", "neon")
    assert saved_look(s)["zoom_factor"] == 1.0 and saved_look(s)["theme"] == "dark"


def test_light_theme_restyles_the_running_window(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], optional_panels=True)
    w.look.set_theme("light")
    pal = QApplication.palette()
    assert pal.color(QPalette.ColorRole.Window) == QColor(theme.LIGHT.window)
    assert theme.THEME.text == theme.LIGHT.text  # THEME reads the theme in use
    views = w.findChildren(pg.GraphicsView)
    assert views
    for v in views:
        if v.isVisible():
            assert v.backgroundBrush().color() == QColor(theme.LIGHT.background)
    # style sheets that named a dark-theme colour now name the light one
    sheets = " ".join(x.styleSheet().lower() for x in w.findChildren(QWidget))
    for f in ("muted", "accent", "accent2", "window", "panel"):
        assert getattr(theme.DARK, f).lower() not in sheets, f
    assert w.look.theme_actions["light"].isChecked()


def test_palette_changes_chips_and_heatmaps(qtbot, window):
    p = 0.05
    standard = theme.prob_color(p)
    window.look.act_palette.setChecked(True)
    assert theme.palette_name() == "colour-blind"
    assert theme.prob_color(p) != standard
    assert theme.colormap_name(theme.SEQUENTIAL) == "cividis"
    strip = window.prompt_panel.strip
    strip._chip_looks()
    assert not strip._fills or all(c == theme.prob_color(q) for q, (c, _) in strip._fills.items())
