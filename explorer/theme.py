"""The window's look: the themes (dark, light), text size (zoom), the colour palettes for token
chips and heatmaps, and pyqtgraph's options.

Every panel and widget takes its colours and fonts from here so the window looks like one tool.
:func:`apply_theme` styles the application at start-up; :func:`set_theme`, :func:`set_zoom` and
:func:`set_palette` change the look of a running window: they restyle the application, walk every
widget (fonts, style sheets, rich text, plots) and then emit :data:`NOTIFIER`'s ``changed`` for
the few widgets that paint from cached colours.

``THEME`` always reads the theme in use (``THEME.text`` after ``set_theme("light")`` is the light
theme's text colour); read it when building or painting, never copy a colour into a module
constant. Point sizes go through :func:`pt` (the base size times the zoom).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QGraphicsTextItem, QGraphicsView, QLabel, QWidget


@dataclass(frozen=True)
class Theme:
    """Colours and fonts of one theme."""

    name: str = "dark"
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
    on_accent: str = "#0b0c10"  # text on accent-coloured backgrounds
    font_family: str = ""  # "" = the platform's UI font
    font_pt: int = 11
    mono_family: str = "DejaVu Sans Mono"


DARK = Theme()
#: for projectors (a dark theme washes out in a lit room): the same roles, dark on light; the
#: accents are darker so they keep a contrast ratio above 4.5 on white
LIGHT = Theme(name="light", background="#ffffff", window="#f3f4f7", base="#ffffff",
              panel="#e1e5ec", text="#14161b", muted="#555d6e", grid="#c5cad4",
              accent="#0063b1", accent2="#b25600", good="#1d7a41", bad="#c42b2b",
              prompt_chip="#d9dde5", on_accent="#ffffff")
THEMES = {"dark": DARK, "light": LIGHT}

#: colour maps by role; "standard" and the colour-blind-safe palette differ only where the
#: standard one relies on telling red from green
PALETTES = {
    "standard": {"sequential": "viridis", "diverging": "CET-D1A", "cyclic": "CET-C6"},
    "colour-blind": {"sequential": "cividis", "diverging": "CET-D6", "cyclic": "CET-C6"},
}
SEQUENTIAL = "sequential"  # attention probabilities, 0..1
DIVERGING = "diverging"  # signed values: scores, embeddings, activations
CYCLIC = "cyclic"  # angles

ZOOM_MIN, ZOOM_MAX = 0.75, 3.0
#: the steps Ctrl+= / Ctrl+- walk through
ZOOM_STEPS = (0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)


class _State:
    theme: Theme = DARK
    zoom: float = 1.0
    palette: str = "standard"


_state = _State()


class _ActiveTheme:
    """Reads through to the theme in use, so ``THEME.text`` follows :func:`set_theme`."""

    def __getattr__(self, name: str):
        return getattr(_state.theme, name)


THEME: Theme = _ActiveTheme()  # type: ignore[assignment]  # reads like the Theme in use


class _Notifier(QObject):
    """``changed`` after the theme, zoom or palette changed (widgets with cached colours or
    sizes redo them)."""

    changed = Signal()


NOTIFIER = _Notifier()


def current_theme() -> Theme:
    return _state.theme


def zoom() -> float:
    return _state.zoom


def palette_name() -> str:
    return _state.palette


def pt(base: float) -> float:
    """A point size at the current zoom (``base`` is the size at 100 %)."""
    return float(base) * _state.zoom


def css_pt(base: float) -> str:
    """``pt(base)`` for style sheets and rich text: ``"13.8pt"``."""
    return f"{pt(base):.1f}pt"


def qcolor(c: str | QColor, alpha: float | None = None) -> QColor:
    q = QColor(c)
    if alpha is not None:
        q.setAlphaF(float(alpha))
    return q


def ui_font(size: float | None = None, bold: bool = False) -> QFont:
    """The UI font; ``size`` is the point size at 100 % zoom (default: the theme's)."""
    f = QFont(THEME.font_family) if THEME.font_family else QFont()
    f.setPointSizeF(pt(size or THEME.font_pt))
    f.setBold(bold)
    return f


def mono_font(size: float | None = None) -> QFont:
    f = QFont(THEME.mono_family)
    f.setStyleHint(QFont.StyleHint.Monospace)
    f.setPointSizeF(pt(size or THEME.font_pt))
    return f


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options; plots made after this follow the theme in use."""
    pg.setConfigOptions(antialias=True, background=THEME.background, foreground=THEME.text,
                        imageAxisOrder="row-major")


def _palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: THEME.window, QPalette.ColorRole.WindowText: THEME.text,
        QPalette.ColorRole.Base: THEME.base, QPalette.ColorRole.AlternateBase: THEME.window,
        QPalette.ColorRole.ToolTipBase: THEME.panel, QPalette.ColorRole.ToolTipText: THEME.text,
        QPalette.ColorRole.Text: THEME.text, QPalette.ColorRole.Button: THEME.panel,
        QPalette.ColorRole.ButtonText: THEME.text, QPalette.ColorRole.BrightText: THEME.bad,
        QPalette.ColorRole.Highlight: THEME.accent,
        QPalette.ColorRole.HighlightedText: THEME.on_accent,
        QPalette.ColorRole.Link: THEME.accent, QPalette.ColorRole.PlaceholderText: THEME.muted,
        QPalette.ColorRole.Light: THEME.panel, QPalette.ColorRole.Mid: THEME.grid,
        QPalette.ColorRole.Dark: THEME.grid,
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(THEME.muted))
    return p


def _style_sheet() -> str:
    return f"""
        QToolTip {{ color: {THEME.text}; background: {THEME.panel}; border: 1px solid {THEME.grid};
                    padding: 4px; }}
        QDockWidget {{ font-weight: bold; }}
        QDockWidget::title {{ background: {THEME.panel}; padding: 5px 8px; }}
        QPushButton {{ padding: 4px 12px; }}
        QPushButton:checked {{ background: {THEME.accent}; color: {THEME.on_accent}; }}
        QStatusBar QLabel {{ padding: 0 8px; }}
    """


def apply_theme(app: QApplication, theme: str | None = None, zoom_factor: float | None = None,
                palette: str | None = None) -> None:
    """Fusion style with the theme's palette, fonts at the zoom and pyqtgraph's colours.

    Call before the window is built (later changes go through :func:`set_theme` etc.)."""
    if theme is not None:
        _state.theme = THEMES.get(theme, DARK)
    if zoom_factor is not None:
        _state.zoom = clamp_zoom(zoom_factor)
    if palette is not None:
        _state.palette = palette if palette in PALETTES else "standard"
    _PROB_LUT.clear()
    configure_pyqtgraph()
    app.setStyle("Fusion")
    app.setPalette(_palette())
    app.setFont(ui_font())
    app.setStyleSheet(_style_sheet())


def clamp_zoom(z: float) -> float:
    try:
        z = float(z)
    except (TypeError, ValueError):
        return 1.0
    if not math.isfinite(z):
        return 1.0
    return min(max(z, ZOOM_MIN), ZOOM_MAX)


def next_zoom(z: float, direction: int) -> float:
    """The next step of :data:`ZOOM_STEPS` above (``direction`` > 0) or below ``z``."""
    if direction > 0:
        return next((s for s in ZOOM_STEPS if s > z + 1e-6), ZOOM_MAX)
    return next((s for s in reversed(ZOOM_STEPS) if s < z - 1e-6), ZOOM_MIN)


# -- changing the look of a running window ---------------------------------------------------
_PT_RE = re.compile(r"(font-size\s*:\s*)([0-9.]+)pt")
_HEX_RE = re.compile(r"#[0-9a-fA-F]{6}\b")


def _scale_css(text: str, ratio: float) -> str:
    return _PT_RE.sub(lambda m: f"{m.group(1)}{float(m.group(2)) * ratio:.1f}pt", text)


def _recolour(text: str, mapping: dict[str, str]) -> str:
    return _HEX_RE.sub(lambda m: mapping.get(m.group(0).lower(), m.group(0)), text)


def _colour_map(old: Theme, new: Theme) -> dict[str, str]:
    return {str(getattr(old, f.name)).lower(): str(getattr(new, f.name))
            for f in fields(Theme) if str(getattr(old, f.name)).startswith("#")}


def _restyle(app: QApplication, ratio: float, colours: dict[str, str]) -> None:
    """Scale every explicit font by ``ratio`` and swap theme colours in every style sheet, rich
    text and plot of the running application."""
    widgets = _live_widgets(app)
    for w in widgets:
        if ratio != 1.0 and w.testAttribute(Qt.WidgetAttribute.WA_SetFont):
            f = w.font()
            if f.pointSizeF() > 0:
                f.setPointSizeF(f.pointSizeF() * ratio)
                w.setFont(f)
        sheet = w.styleSheet()
        if sheet:
            new = _recolour(_scale_css(sheet, ratio), colours)
            if new != sheet:
                w.setStyleSheet(new)
        if isinstance(w, QLabel) and w.textFormat() != Qt.TextFormat.PlainText:
            text = w.text()
            if "<" in text:
                new = _recolour(_scale_css(text, ratio), colours)
                if new != text:
                    w.setText(new)
        if isinstance(w, pg.GraphicsView):
            _restyle_plot(w, ratio, colours)
        elif isinstance(w, QGraphicsView) and w.scene() is not None:
            w.setBackgroundBrush(QColor(THEME.background))
            _restyle_items(w.scene().items(), ratio, colours)
    for w in app.topLevelWidgets():
        w.update()


def _live_widgets(app: QApplication) -> list[QWidget]:
    """Every widget of the application's windows, found by walking down from each window.

    Not ``QApplication.allWidgets()``: wrapping each entry of that list has crashed (a segfault
    in PySide's wrapper lookup) when the list held a widget in the middle of being deleted,
    which the test suite's many short-lived windows made happen. The object tree below the
    top-level windows holds only live children."""
    out: list[QWidget] = []
    for top in app.topLevelWidgets():
        out.append(top)
        out.extend(top.findChildren(QWidget))
    return out


def _restyle_plot(view: pg.GraphicsView, ratio: float, colours: dict[str, str]) -> None:
    if colours:
        view.setBackground(THEME.background)
    scene = view.scene()
    if scene is not None:
        _restyle_items(scene.items(), ratio, colours)


def _restyle_items(items, ratio: float, colours: dict[str, str]) -> None:
    for item in items:
        if isinstance(item, pg.AxisItem):
            font = item.style.get("tickFont")
            if ratio != 1.0:
                f = QFont(font) if font is not None else ui_font(THEME.font_pt - 1)
                if font is None:
                    f.setPointSizeF(pt(THEME.font_pt - 1))
                else:
                    f.setPointSizeF(f.pointSizeF() * ratio)
                item.setStyle(tickFont=f)
            style = dict(item.labelStyle)
            size = str(style.get("font-size", ""))
            if ratio != 1.0 and size.endswith("pt"):
                style["font-size"] = f"{float(size[:-2]) * ratio:.1f}pt"
            if colours and "color" in style:
                style["color"] = _recolour(pg.mkColor(style["color"]).name(), colours)
            if colours:
                item.setTextPen(pg.mkPen(_recolour(item.textPen().color().name(), colours)))
                item.setPen(pg.mkPen(_recolour(item.pen().color().name(), colours)))
            if style != item.labelStyle:
                item.labelStyle = style
            if item.label.isVisible():
                item._updateLabel()  # noqa: SLF001 - pyqtgraph re-renders the label's HTML here
            item.picture = None
        elif isinstance(item, pg.LabelItem):
            size = item.opts.get("size")
            opts = {}
            if ratio != 1.0 and size and str(size).endswith("pt"):
                opts["size"] = f"{float(str(size)[:-2]) * ratio:.1f}pt"
            if colours and item.opts.get("color") is not None:
                opts["color"] = _recolour(pg.mkColor(item.opts["color"]).name(), colours)
            if opts:
                item.setText(item.text, **opts)
        elif isinstance(item, QGraphicsTextItem) and ratio != 1.0:
            f = item.font()
            if f.pointSizeF() > 0:
                f.setPointSizeF(f.pointSizeF() * ratio)
                item.setFont(f)
            html = item.toHtml()
            if "font-size" in html:
                item.setHtml(_scale_css(html, ratio))
        item.update()


def _change(app: QApplication | None, theme: Theme, zoom_factor: float, palette: str) -> None:
    old_theme, old_zoom, old_palette = _state.theme, _state.zoom, _state.palette
    if (theme, zoom_factor, palette) == (old_theme, old_zoom, old_palette):
        return
    _state.theme, _state.zoom, _state.palette = theme, zoom_factor, palette
    _PROB_LUT.clear()
    if app is not None:
        configure_pyqtgraph()
        app.setPalette(_palette())
        app.setFont(ui_font())
        app.setStyleSheet(_style_sheet())
        colours = _colour_map(old_theme, theme) if theme != old_theme else {}
        _restyle(app, zoom_factor / old_zoom, colours)
    NOTIFIER.changed.emit()


def _app() -> QApplication | None:
    inst = QApplication.instance()
    return inst if isinstance(inst, QApplication) else None


def set_zoom(z: float) -> float:
    """Scale every font, plot label and chip to ``z`` (clamped to 75 %–300 %); returns it."""
    z = clamp_zoom(z)
    _change(_app(), _state.theme, z, _state.palette)
    return z


def set_theme(name: str) -> None:
    """Switch to the "dark" or "light" theme."""
    _change(_app(), THEMES.get(name, DARK), _state.zoom, _state.palette)


def set_palette(name: str) -> None:
    """"standard" or "colour-blind" (chips and heatmaps that never rely on red versus green)."""
    _change(_app(), _state.theme, _state.zoom, name if name in PALETTES else "standard")


# -- colours for values ----------------------------------------------------------------------------
def colormap_name(role: str) -> str:
    """The pyqtgraph colour map for a role (sequential, diverging, cyclic) in the palette in use;
    any other name is a colour map's own name."""
    return PALETTES[_state.palette].get(role, role)


def colormap(name: str = SEQUENTIAL) -> pg.ColorMap:
    return pg.colormap.get(colormap_name(name))


_PROB_LUT: list[QColor] = []
_PROB_BINS = 96
#: the probability bands the chip legend shows (and the colour-blindness test checks)
PROB_BANDS = (0.001, 0.01, 0.1, 1.0)


def _prob_colormap() -> pg.ColorMap:
    if _state.palette == "colour-blind":
        # cividis from dark blue to pale yellow: lightness rises steadily with the probability,
        # so the bands differ in lightness, which no colour vision deficiency takes away
        base = pg.colormap.get("cividis")
        stops = [i / 8 for i in range(9)]
        return pg.ColorMap(stops, [base.map(0.08 + 0.92 * s, mode="qcolor") for s in stops])
    return pg.ColorMap([0.0, 0.5, 1.0], [QColor("#c0392b"), QColor("#c9a227"),
                                         QColor("#2e9e5b")])


def prob_color(p: float | None) -> QColor:
    """Colour of a generated token chip by the probability it had (a long shot … the obvious
    choice): red → green, or dark blue → pale yellow in the colour-blind-safe palette.

    The scale is logarithmic (1e-3 .. 1) because what matters to a reader is "was this a long shot
    or the obvious choice", and most sampled probabilities sit between 1% and 90%. Colours come
    from a small precomputed table: chips are painted hundreds at a time.
    """
    if not _PROB_LUT:
        cmap = _prob_colormap()
        _PROB_LUT.extend(cmap.map(i / (_PROB_BINS - 1), mode="qcolor") for i in range(_PROB_BINS))
    if p is None or not math.isfinite(p):
        return QColor(THEME.prompt_chip)
    x = (math.log10(max(float(p), 1e-3)) + 3.0) / 3.0
    return _PROB_LUT[min(max(int(round(x * (_PROB_BINS - 1))), 0), _PROB_BINS - 1)]


def text_on(fill: QColor) -> QColor:
    """Black or white text, whichever contrasts more with ``fill`` (WCAG relative luminance)."""
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * lin(fill.redF()) + 0.7152 * lin(fill.greenF()) + 0.0722 * lin(fill.blueF())
    # contrast with black (lum+0.05)/0.05 against white 1.05/(lum+0.05): equal at lum ≈ 0.179
    return QColor("#0b0c10") if lum > 0.179 else QColor("#ffffff")

