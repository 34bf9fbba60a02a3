"""Positional encoding panel: the model's position × dimension table, a few of its dimensions as
curves, how alike positions are (cosine similarity), and how much the position adds to each input
vector of the current prompt. Each view has its formula and a short explanation beside it.

Reads ``session.positional`` (a :class:`model.positional_view.PositionalView` the inference worker
computed once per model: the table, the similarity matrix, the formula and explanation) and
``session.result.tok_emb`` / ``pos_emb`` per step.
"""
from __future__ import annotations

import html
import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.redraws import LiveRedraw
from explorer.theme import THEME, css_pt, pt
from explorer.widgets.exports import export_button
from explorer.widgets.layout import (
    TEXT_PT,
    explanation_pane,
    flow_bar,
    labeled,
    rich_text,
    status_label,
)
from explorer.widgets.plot_helpers import (
    CYCLIC_CMAP,
    DIVERGING_CMAP,
    HeatmapWidget,
    LabelAxis,
    SeriesPlot,
    symmetric_levels,
)
from model.positional_view import DESCRIPTIONS, PositionalView

VIEWS = ("matrix", "curves", "similarity", "prompt")
VIEW_TITLES = {"matrix": "Encoding table", "curves": "Dimension curves",
               "similarity": "Position similarity", "prompt": "This prompt"}
KIND_TITLES = {"learned": "Learned positional embedding", "sinusoidal": "Sinusoidal encoding",
               "rotary": "Rotary position embedding (RoPE)", "none": "No positional encoding"}

VIEW_TEXT = {
    "matrix": {
        "_": "Row p is the vector added to the token embedding of the token at position p; "
             "each column is one of the model's dimensions. The line marks the end of the "
             "current context.",
        "rotary": "Row p holds the angle p·θ<sub>i</sub> by which pair i of every query and key "
                  "is rotated at position p (wrapped to ±π, so the colour map is cyclic). Fast "
                  "pairs on the left spin quickly; slow pairs on the right barely turn.",
    },
    "curves": {
        "_": "Each curve follows one dimension of the encoding down the positions. In the "
             "sinusoidal table every pair of dimensions is a wave with its own wavelength; "
             "a learned table shows whatever training made of it.",
        "rotary": "Each curve is cos(p·θ<sub>i</sub>) for one rotated pair i: how far that pair "
                  "has turned at position p. The dimension numbers are pair indices.",
    },
    "similarity": {
        "_": "cos(PE[p], PE[q]) for every pair of positions. A bright band along the diagonal "
             "means nearby positions get similar vectors, which lets attention tell near from "
             "far.",
        "rotary": "The mean of cos((p−q)·θ<sub>i</sub>) over the rotated pairs: how the rotation "
                  "alone changes a query–key score between positions p and q. It depends only "
                  "on the distance p − q, so every diagonal is constant.",
    },
    "prompt": {
        "_": "For each token of the current context: the length of its token embedding "
             "‖E[token]‖ and of the positional vector ‖PE[pos]‖ added to it, and the length "
             "of their sum (the input to layer 0). Comparable bars mean the position matters "
             "as much as the token.",
        "rotary": "Rotary adds nothing to the input vectors: only the token embedding is shown. "
                  "Position enters later, inside every attention layer, by rotating queries "
                  "and keys.",
        "none": "Without a positional encoding the input vector is the token embedding alone, "
                "so two equal tokens start out identical wherever they are.",
    },
}
NONE_INSTEAD = (
    "<p><b>What it has instead:</b> the causal mask. Position t attends over exactly t+1 "
    "tokens, so a head that spreads its attention evenly dilutes each value by 1/(t+1): the "
    "model can count how far into the text it is, and learn order from that, but no vector "
    "tells it where a token is.</p>"
)


def view_text(view: str, kind: str) -> str:
    d = VIEW_TEXT[view]
    return d.get(kind, d["_"])


def default_dims(n: int) -> list[int]:
    """Four dimensions from fast to slow (even ones: the sine of each pair)."""
    if n <= 0:
        return []
    picks = [2 * (n // 32), 2 * (n // 16), 2 * (n // 8), 2 * (n // 4), 1, 3]
    out = []
    for d in picks:
        d = min(max(d, 0), n - 1)
        if d not in out:
            out.append(d)
    return out[:4]


def display_matrix(kind: str, m: np.ndarray) -> np.ndarray:
    """What the table view shows: the matrix itself, or rotary angles wrapped to (−π, π]."""
    m = np.asarray(m, dtype=np.float32)
    if kind == "rotary":
        return np.angle(np.exp(1j * m.astype(np.float64))).astype(np.float32)
    return m


class PositionalPanel(LiveRedraw, QWidget):
    """The model's positional encoding, explained."""

    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.view = "matrix"
        self.kind = "none"
        self.dims: list[int] = []
        self._dirty_model = True
        self._dirty_curves = True
        self._legend_has_pos: bool | None = None
        self._pe_matrix: np.ndarray | None = None
        self._curves: list[pg.PlotCurveItem] = []
        self._init_redraw()
        self._build_ui()
        session.model_changed.connect(self._on_model_changed)
        session.step_ready.connect(self.schedule_redraw)
        session.selected_token_changed.connect(self._on_selected_token)
        self._on_model_changed()

    # -- UI ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        self.view_group = QButtonGroup(self)
        self.view_buttons: dict[str, QPushButton] = {}
        for v in VIEWS:
            b = QPushButton(VIEW_TITLES[v])
            b.setCheckable(True)
            self.view_group.addButton(b)
            b.clicked.connect(lambda _c=False, v=v: self.set_view(v))
            self.view_buttons[v] = b
        self.view_buttons[self.view].setChecked(True)
        self.dims_edit = QLineEdit()
        self.dims_edit.setPlaceholderText("e.g. 0, 1, 16, 64")
        self.dims_edit.setMinimumWidth(140)
        self.dims_edit.editingFinished.connect(lambda: self.set_dims(self.dims_edit.text()))
        self.dims_group = labeled("dimensions", self.dims_edit)
        self.export_btn = export_button(self, self.current_plot)
        bar, _flow = flow_bar(self, *self.view_buttons.values(), self.dims_group,
                              self.export_btn)
        root.addWidget(bar)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.stack = QStackedWidget()
        self.matrix_plot = HeatmapWidget(row_title="position", col_title="dimension",
                                         colormap=DIVERGING_CMAP, name="positional-encoding",
                                         numeric=True)
        self.matrix_plot.hovered.connect(self._on_matrix_hover)
        self._context_line = pg.InfiniteLine(angle=0, movable=False,
                                             pen=pg.mkPen(THEME.accent2, width=2,
                                                          style=Qt.PenStyle.DashLine))
        self.matrix_plot.plot.addItem(self._context_line, ignoreBounds=True)
        self.curves_plot = SeriesPlot(name="positional-curves", x_title="position",
                                      y_title="value")
        self.curves_legend = self.curves_plot.plot.addLegend(
            offset=(-10, 10), labelTextSize=css_pt(TEXT_PT - 1), brush=(22, 24, 29, 200))
        self._curve_context = pg.InfiniteLine(angle=90, movable=False,
                                              pen=pg.mkPen(THEME.accent2, width=1.5,
                                                           style=Qt.PenStyle.DashLine))
        self.curves_plot.plot.addItem(self._curve_context, ignoreBounds=True)
        self.similarity_plot = HeatmapWidget(row_title="position", col_title="position",
                                             colormap=DIVERGING_CMAP, levels=(-1.0, 1.0),
                                             name="positional-similarity", numeric=True)
        self.similarity_plot.hovered.connect(self._on_similarity_hover)
        self.prompt_axis = LabelAxis("bottom", centre=0.0)
        self.prompt_plot = SeriesPlot(name="positional-vs-token", bottom_axis=self.prompt_axis,
                                      x_title="token of the context", y_title="vector length ‖·‖")
        self.prompt_legend = self.prompt_plot.plot.addLegend(
            offset=(-10, 10), labelTextSize=css_pt(TEXT_PT - 1), brush=(22, 24, 29, 200))
        self.tok_bars = pg.BarGraphItem(x=[], height=[], width=0.4, brush=THEME.accent,
                                        name="token ‖E[token]‖")
        self.pos_bars = pg.BarGraphItem(x=[], height=[], width=0.4, brush=THEME.accent2,
                                        name="position ‖PE[pos]‖")
        self.sum_curve = pg.PlotDataItem(pen=pg.mkPen(THEME.text, width=2), symbol="o",
                                         symbolSize=6, symbolBrush=THEME.text,
                                         name="input ‖E + PE‖")
        for it in (self.tok_bars, self.pos_bars, self.sum_curve):
            self.prompt_plot.plot.addItem(it)
        self.none_page = QLabel()
        self.none_page.setWordWrap(True)
        self.none_page.setTextFormat(Qt.TextFormat.RichText)
        self.none_page.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.none_page.setMargin(16)
        f = self.none_page.font()
        f.setPointSizeF(pt(TEXT_PT + 2))
        self.none_page.setFont(f)
        for w in (self.matrix_plot, self.curves_plot, self.similarity_plot, self.prompt_plot,
                  self.none_page):
            self.stack.addWidget(w)
        split.addWidget(self.stack)

        self.text, scroll = explanation_pane(margin=8, min_width=220)
        split.addWidget(scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([640, 260])
        root.addWidget(split, 1)
        self.hover_label = status_label()
        root.addWidget(self.hover_label)

    def current_plot(self):
        if self.showing_explanation:
            return None
        return {"matrix": self.matrix_plot, "curves": self.curves_plot,
                "similarity": self.similarity_plot, "prompt": self.prompt_plot}[self.view]

    @property
    def showing_explanation(self) -> bool:
        """True when the model has no encoding to plot and the view shows text instead."""
        return self.kind == "none" and self.view != "prompt"

    def _sync(self) -> None:
        b = self.view_buttons[self.view]
        if not b.isChecked():
            b.setChecked(True)
        curves = self.view == "curves" and self.kind != "none"
        self.dims_group.setVisible(curves)
        if self.showing_explanation:
            self.stack.setCurrentWidget(self.none_page)
        else:
            self.stack.setCurrentIndex(VIEWS.index(self.view))
        self.export_btn.setEnabled(not self.showing_explanation)
        self._update_text()

    def _update_text(self) -> None:
        formula, explanation = DESCRIPTIONS.get(self.kind, ("", ""))
        pe = self.session.positional
        if pe is not None:
            formula, explanation = pe.formula, pe.explanation
        title = f"{KIND_TITLES.get(self.kind, self.kind)} — {VIEW_TITLES[self.view]}"
        self.text.setText(rich_text(title, html.escape(formula), html.escape(explanation),
                                    view_text(self.view, self.kind)))
        if self.kind == "none":
            self.none_page.setText(
                f"<p style='font-size: {css_pt(TEXT_PT + 4)}'><b>This model has no positional "
                f"encoding.</b></p><p style='color:{THEME.accent}'>{html.escape(formula)}</p>"
                f"<p>{html.escape(explanation)}</p>{NONE_INSTEAD}"
                "<p>The <b>This prompt</b> view still shows the token embeddings it starts "
                "from.</p>")

    # -- public controls -----------------------------------------------------------------------
    def set_view(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        self.view = view
        self._sync()
        self.schedule_redraw()

    def set_dims(self, dims) -> None:
        """Dimensions drawn as curves: a list of ints or text like "0, 1, 16"."""
        if isinstance(dims, str):
            dims = [int(x) for x in re.findall(r"\d+", dims)]
        n = 0 if self._pe_matrix is None else self._pe_matrix.shape[1]
        good = [d for d in dict.fromkeys(int(d) for d in dims) if 0 <= d < n][:12]
        if not good and n:
            good = default_dims(n)
        self.dims = good
        self._dirty_curves = True
        self.dims_edit.setText(", ".join(map(str, good)))
        self.schedule_redraw()

    # -- session -------------------------------------------------------------------------------
    def _on_model_changed(self) -> None:
        pe = self.session.positional
        self.kind = pe.kind if pe is not None else "none"
        self._pe_matrix = None
        self._dirty_model = True
        self._dirty_curves = True
        if pe is not None:
            self._pe_matrix = pe.matrix  # (P, D)
            self.dims = default_dims(self._pe_matrix.shape[1])
            self.dims_edit.setText(", ".join(map(str, self.dims)))
        self._sync()
        self.schedule_redraw()

    def _on_selected_token(self, i: int) -> None:
        self.matrix_plot.highlight_row(i)
        self.similarity_plot.highlight_row(i)

    # -- drawing -------------------------------------------------------------------------------
    def redraw_now(self) -> None:
        if not self._begin_redraw():  # hidden: drawn when shown
            return
        pe = self.session.positional
        if pe is None:
            return
        if self._dirty_model:
            self._draw_model(pe)
            self._dirty_model = False
        r = self.session.result
        t = r.T if r is not None else 0
        self._context_line.setPos(t)
        self._context_line.setVisible(t > 0)
        self._curve_context.setPos(t - 1)
        self._curve_context.setVisible(t > 0)
        self.matrix_plot.highlight_row(self.session.selected_token)
        self._draw_prompt(r)
        if self._dirty_curves:  # the curves depend on the model and the dimensions only
            self._draw_curves()
            self._dirty_curves = False

    def _draw_model(self, pe: PositionalView) -> None:
        m = self._pe_matrix
        if m is None or m.shape[1] == 0:
            self.matrix_plot.clear_matrix()
            self.similarity_plot.clear_matrix()
            return
        p, d = m.shape
        pos_labels = [str(i) for i in range(p)]
        shown = display_matrix(self.kind, m)
        if self.kind == "rotary":
            self.matrix_plot.set_colormap(CYCLIC_CMAP)
            levels = (-np.pi, np.pi)
            self.matrix_plot.plot.setLabel("bottom", "rotated pair i", **{"font-size": css_pt(11)})
        else:
            self.matrix_plot.set_colormap(DIVERGING_CMAP)
            levels = symmetric_levels(shown)
            self.matrix_plot.plot.setLabel("bottom", "dimension", **{"font-size": css_pt(11)})
        self.matrix_plot.set_matrix(shown, levels=levels, export=m, row_labels=pos_labels,
                                    col_labels=[str(j) for j in range(d)])
        self.similarity_plot.set_matrix(pe.similarity, levels=(-1.0, 1.0), row_labels=pos_labels,
                                        col_labels=pos_labels)

    def curve_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, (P, len(dims)) values) drawn in the curves view."""
        m = self._pe_matrix
        if m is None or m.shape[1] == 0 or not self.dims:
            return np.zeros(0), np.zeros((0, 0), np.float32)
        cols = m[:, self.dims]
        if self.kind == "rotary":
            cols = np.cos(cols.astype(np.float64)).astype(np.float32)
        return np.arange(m.shape[0]), cols

    def _draw_curves(self) -> None:
        x, ys = self.curve_values()
        while len(self._curves) < ys.shape[1]:
            c = pg.PlotCurveItem()
            self.curves_plot.plot.addItem(c)
            self._curves.append(c)
        self.curves_legend.clear()
        what = "pair" if self.kind == "rotary" else "dim"
        for i, c in enumerate(self._curves):
            if i < ys.shape[1]:
                c.setPen(pg.mkPen(pg.intColor(i, hues=max(ys.shape[1], 3), sat=190), width=2))
                c.setData(x, ys[:, i])
                c.show()
                self.curves_legend.addItem(c, f"{what} {self.dims[i]}")
            else:
                c.hide()
        self.curves_plot.plot.setLabel(
            "left", "cos(p·θᵢ)" if self.kind == "rotary" else "PE[p, dim]",
            **{"font-size": css_pt(11)})
        self.curves_plot.set_table(ys, [str(int(v)) for v in x],
                                   [f"{what} {d}" for d in self.dims])

    def prompt_norms(self, r=None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(‖tok_emb‖, ‖pos_emb‖ or None, ‖tok_emb + pos_emb‖) per token of the context."""
        r = r if r is not None else self.session.result
        tok = np.linalg.norm(np.asarray(r.tok_emb, dtype=np.float64), axis=-1)
        if r.pos_emb is None:
            return tok.astype(np.float32), None, tok.astype(np.float32)
        pos = np.linalg.norm(np.asarray(r.pos_emb, dtype=np.float64), axis=-1)
        both = np.linalg.norm(np.asarray(r.tok_emb, np.float64) + r.pos_emb, axis=-1)
        return tok.astype(np.float32), pos.astype(np.float32), both.astype(np.float32)

    def _draw_prompt(self, r) -> None:
        if r is None or r.tok_emb is None:
            self.tok_bars.setOpts(x=[], height=[])
            self.pos_bars.setOpts(x=[], height=[])
            self.sum_curve.setData([], [])
            return
        tok, pos, both = self.prompt_norms(r)
        t = len(tok)
        x = np.arange(t, dtype=float)
        labels = r.pieces
        self.prompt_axis.set_labels(labels)
        if pos is None:
            self.tok_bars.setOpts(x=x, height=tok, width=0.7)
            self.pos_bars.setOpts(x=[], height=[])
            self.pos_bars.hide()
            self.sum_curve.hide()
            self.prompt_plot.set_table(tok[:, None], labels, ["token norm"])
        else:
            self.tok_bars.setOpts(x=x - 0.2, height=tok, width=0.4)
            self.pos_bars.setOpts(x=x + 0.2, height=pos, width=0.4)
            self.pos_bars.show()
            self.sum_curve.setData(x, both)
            self.sum_curve.show()
            self.prompt_plot.set_table(np.column_stack([tok, pos, both]), labels,
                                       ["token norm", "position norm", "input norm"])
        if self._legend_has_pos != (pos is not None):
            self._legend_has_pos = pos is not None
            self.prompt_legend.clear()
            self.prompt_legend.addItem(self.tok_bars, "token ‖E[token]‖")
            if pos is not None:
                self.prompt_legend.addItem(self.pos_bars, "position ‖PE[pos]‖")
                self.prompt_legend.addItem(self.sum_curve, "input ‖E + PE‖")
        top = float(max(tok.max(initial=0), 0 if pos is None else pos.max(initial=0),
                        both.max(initial=0)))
        self.prompt_plot.plot.setLimits(xMin=-1, xMax=t, yMin=0)
        self.prompt_plot.plot.setYRange(0, top * 1.45 if top > 0 else 1, padding=0)  # room: legend
        if self.prompt_plot.plot.vb.autoRangeEnabled()[0] or t <= 64:
            self.prompt_plot.plot.setXRange(-0.6, t - 0.4, padding=0)

    # -- hover ---------------------------------------------------------------------------------
    def _on_matrix_hover(self, row: int, col: int) -> None:
        m = self._pe_matrix
        if row < 0 or m is None:
            self.hover_label.setText(" ")
            return
        v = m[row, col]
        if self.kind == "rotary":
            self.hover_label.setText(f"position {row}, pair {col}: angle p·θ = {v:.3f} rad "
                                     f"(wrapped {display_matrix('rotary', np.array([v]))[0]:+.2f})")
        else:
            self.hover_label.setText(f"position {row}, dimension {col}: {v:+.3f}")

    def _on_similarity_hover(self, row: int, col: int) -> None:
        d = self.similarity_plot.display
        if row < 0 or d is None:
            self.hover_label.setText(" ")
            return
        self.hover_label.setText(f"position {row} vs position {col}: cosine similarity "
                                 f"{d[row, col]:+.3f}")
