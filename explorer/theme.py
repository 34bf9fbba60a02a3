"""The window's look: one dark theme, its fonts and colours, the colour maps, pyqtgraph's options.

Every panel and widget takes its colours and fonts from here so the window looks like one tool
(good contrast on a projector too). :func:`apply_theme` styles the application once at start-up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication


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
