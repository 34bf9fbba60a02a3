"""Attention panel: what each head looks at, one head as a heatmap, every head at once, or lines.

Three stages of scaled dot-product attention can be shown (Vaswani et al. 2017, equation 1):
the scores QKᵀ/√d, the scores after the mask, and the softmax probabilities. Masked cells are
hatched (NaN cells let a hatched rectangle show through). The all-heads view is one composite
image (layers × heads), the lines view draws one path per head and weight bin.

An encoder-decoder has three families of attention (a selector picks one): the encoder's
self-attention (no causal mask: only padding is hidden, so the upper triangle is filled), the
decoder's masked self-attention, and cross-attention: target tokens (rows) × source tokens
(columns), its mask the source's padding.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.panels.attention.lines import AttentionLines
from explorer.panels.attention.qkv import QKVView
from explorer.redraws import LiveRedraw
from explorer.theme import THEME, css_pt, pt
from explorer.widgets.exports import export_button
from explorer.widgets.layout import TEXT_PT, flow_bar, labeled, status_label
from explorer.widgets.plot_helpers import (
    DIVERGING_CMAP,
    MASKED_CODE,
    MAX_MOSAIC,
    PROB_CMAP,
    TICK_PT,
    HeatmapWidget,
    SeriesPlot,
    causal_future,
    grid_lines,
    mosaic,
    pool_cells,
    quantize,
    symmetric_levels,
)
from model.rollout import rollout_row

MATRIX_STAGES = ("probs", "masked", "scores")  # a (T, T) matrix per head
NUMBER_STAGES = ("qk", "xv")  # one head, one query, with the numbers (explorer.panels.attention.qkv)
STAGES = MATRIX_STAGES + NUMBER_STAGES
STAGE_TITLES = {"scores": "Scores QKᵀ/√d", "masked": "Masked scores", "probs": "Softmax weights",
                "qk": "Q, K: the numbers", "xv": "× V and W_O: the numbers"}
STAGE_FORMULAS = {
    "qk": "s<sub>j</sub> = q·k<sub>j</sub> / √d<sub>head</sub> + M<sub>j</sub>,&nbsp; "
          "a = softmax(s)",
    "xv": "o = Σ<sub>j</sub> a<sub>j</sub> v<sub>j</sub>,&nbsp; "
          "y = W<sub>O</sub> · concat(o<sub>head 0</sub>, o<sub>head 1</sub>, …) + b",
    "scores": "S = Q·Kᵀ / √d<sub>head</sub>",
    "masked": "S + M,&nbsp; M<sub>ij</sub> = −∞ where j &gt; i",
    "probs": "A = softmax(Q·Kᵀ / √d<sub>head</sub> + M)",
}
STAGE_TEXT = {
    "scores": "How well each query (row) matches each key (column), before the mask: scores of "
              "future tokens exist too; the mask removes them next.",
    "masked": "The causal mask sets the score of every later key to −∞ (hatched), so a token "
              "can never look ahead.",
    "probs": "Softmax turns each row into weights that sum to 1: how much of each earlier "
             "token's value vector the query mixes in. Masked cells are exactly 0 (hatched).",
    "qk": "The selected token's query (top) meets every token's key (left): their dot product, "
          "÷√d, the mask and the softmax make one row of the attention pattern. Select a token "
          "to change the query (default: the last); hover a cell for the two vectors.",
    "xv": "The weights of that row mix the value vectors: a weighted sum is this head's output; "
          "the heads' outputs side by side go through W_O into the residual stream.",
}
#: what differs for an encoder's bidirectional self-attention (no causal mask)
ENCODER_STAGE_FORMULAS = {"masked": "S + M,&nbsp; M = 0: an encoder has no causal mask"}
ENCODER_STAGE_TEXT = {
    "scores": "How well each query (row) matches each key (column): in an encoder every score "
              "is used, the later keys' too.",
    "masked": "A BERT-style encoder hides nothing (only padding): every token sees the tokens "
              "after it as well, so the upper triangle stays. Tick 'Causal mask (as GPT)' under "
              "the tokens to compare.",
    "probs": "Softmax turns each row into weights that sum to 1 over every token, before and "
             "after the query: no causal mask, so the upper triangle is filled.",
}
FAMILIES = ("encoder", "self", "cross")  # StepResult.family_maps
FAMILY_TITLES = {"encoder": "Encoder self-attention", "self": "Decoder masked self-attention",
                 "cross": "Cross-attention"}
#: (rows, columns) axis titles of one head's heatmap
FAMILY_AXES = {"encoder": ("source (query)", "source (key)"),
               "self": ("query (attending)", "key (attended to)"),
               "cross": ("target (query)", "source (key, from the encoder)")}
FAMILY_TEXT = {
    "encoder": "The encoder reads the whole source at once: no causal mask, every source token "
               "sees every other one (the upper triangle is filled); M hides only padding.",
    "self": "",
    "cross": "Queries from the decoder (target, rows), keys and values from the encoder's "
             "output (source, columns): each row sums to 1 over the source; M hides only "
             "source padding.",
}
FAMILY_MASKED = {"encoder": "S + M,&nbsp; M<sub>ij</sub> = −∞ where key j is padding",
                 "cross": "S + M,&nbsp; M<sub>ij</sub> = −∞ where source token j is padding"}
VIEWS = ("head", "grid", "lines", "rollout")
VIEW_TITLES = {"head": "One head", "grid": "All heads", "lines": "Lines", "rollout": "Rollout"}
def _fmt(v: float) -> str:
    if np.isneginf(v):
        return "−∞"
    if not np.isfinite(v):
        return "—"
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"


class AttentionPanel(LiveRedraw, QWidget):
    """Attention patterns of the current context, redrawn from ``session.result``."""

    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.view = "head"
        self.family = "self"
        self.layer = 0
        self.head = 0
        self.stage = "probs"
        self.average = False
        self.lines_all_heads = False
        self.threshold = 0.05
        self._hover = (-1, -1)
        self._grid_hover = (-1, -1)
        self._lines_hover = -1
        self._future: dict[tuple[int, int, int, bool], np.ndarray] = {}
        self._causal_shown = True  # whether the formula text was written for a causal mask
        self._grid_geom = (1, 1, 0, 1)  # rows (layers), cols (heads or 1), cell size, pool factor
        self._grid_cell_w = 0  # a mosaic cell's width (its height is the geometry's cell size)
        self._cmap = {"head": PROB_CMAP, "grid": PROB_CMAP}

        self._init_redraw()

        self._build_ui()
        session.model_changed.connect(self._on_model_changed)
        session.step_ready.connect(self.schedule_redraw)
        session.selected_token_changed.connect(self._on_selected_token)
        session.ablation_changed.connect(self.schedule_redraw)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._on_model_changed()

    # -- UI ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.setSpacing(4)
        self.view_group = QButtonGroup(self)
        self.view_buttons: dict[str, QPushButton] = {}
        for v in VIEWS:
            b = QPushButton(VIEW_TITLES[v])
            b.setCheckable(True)
            self.view_group.addButton(b)
            self.view_buttons[v] = b
            b.clicked.connect(lambda _c=False, v=v: self.set_view(v))
        self.view_buttons["head"].setChecked(True)
        self.family_box = QComboBox()
        self.family_box.setToolTip("Which attention of the model: the encoder's self-attention, "
                                   "the decoder's masked self-attention or cross-attention")
        self.family_box.currentIndexChanged.connect(
            lambda i: self.set_family(self.family_box.itemData(i)) if i >= 0 else None)
        self.family_group = labeled("Attention", self.family_box)
        self.family_group.hide()
        self.layer_box = QComboBox()
        self.layer_box.currentIndexChanged.connect(self._on_layer_box)
        self.head_box = QComboBox()
        self.head_box.currentIndexChanged.connect(self._on_head_box)
        self.average_box = QCheckBox("Average heads")
        self.average_box.setToolTip("Show the mean over the heads of a layer")
        self.average_box.toggled.connect(self.set_average)
        self.stage_box = QComboBox()
        for s in STAGES:
            self.stage_box.addItem(STAGE_TITLES[s], s)
        self.stage_box.currentIndexChanged.connect(
            lambda i: self.set_stage(self.stage_box.itemData(i)))
        self.lines_mode_box = QComboBox()
        self.lines_mode_box.addItems(["this head", "all heads of the layer"])
        self.lines_mode_box.currentIndexChanged.connect(
            lambda i: self.set_lines_all_heads(i == 1))
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 0.9)
        self.threshold_box.setSingleStep(0.01)
        self.threshold_box.setDecimals(2)
        self.threshold_box.setValue(self.threshold)
        self.threshold_box.setToolTip("Lines with a smaller weight are not drawn")
        self.threshold_box.valueChanged.connect(self.set_threshold)
        self.stage_group = labeled("Stage", self.stage_box)
        self.threshold_group = labeled("hide <", self.threshold_box)
        bar, _flow = flow_bar(self, self.family_group, *self.view_buttons.values(),
                              labeled("Layer", self.layer_box), labeled("Head", self.head_box),
                              self.average_box, self.stage_group, self.lines_mode_box,
                              self.threshold_group, export_button(self, self.current_plot))
        root.addWidget(bar)

        self.formula = QLabel()
        self.formula.setTextFormat(Qt.TextFormat.RichText)
        self.formula.setWordWrap(True)
        f = self.formula.font()
        f.setPointSizeF(pt(TEXT_PT))
        self.formula.setFont(f)
        root.addWidget(self.formula)

        self.stack = QStackedWidget()
        self.heatmap = HeatmapWidget(row_title="query (attending)", col_title="key (attended to)",
                                     name="attention-head")
        self.heatmap.hovered.connect(self._on_head_hover)
        self.heatmap.export_header = self._export_header
        self.grid = HeatmapWidget(row_title="layer", col_title="head", name="attention-all-heads")
        self.grid.row_axis.centre = 0.5
        self.grid.hovered.connect(self._on_grid_hover)
        self.grid.clicked.connect(self._on_grid_click)
        self.grid.export_header = self._export_header
        self._grid_lines = pg.PlotCurveItem(pen=pg.mkPen(THEME.text, width=1.5, cosmetic=True))
        self._grid_lines.setZValue(15)
        self.grid.plot.addItem(self._grid_lines, ignoreBounds=True)
        self._ablated_marks = pg.PlotCurveItem(pen=pg.mkPen(THEME.accent2, width=3,
                                                            cosmetic=True))
        self._ablated_marks.setZValue(16)
        self.grid.plot.addItem(self._ablated_marks, ignoreBounds=True)
        self.lines = AttentionLines()
        self.lines.hovered.connect(self._on_lines_hover)
        self.rollout = SeriesPlot(name="attention-rollout", x_title="earlier token",
                                  y_title="share of the token's flow")
        self.rollout.export_header = self._rollout_header
        self.rollout_bars = pg.BarGraphItem(x0=[0.0], y0=[0.0], width=0.8, height=[0.0],
                                            brush=THEME.accent, pen=pg.mkPen(None))
        self.rollout.plot.addItem(self.rollout_bars)
        self.rollout.plot.setMouseEnabled(x=False, y=False)
        self.qkv = QKVView()
        self.qkv.hovered_text.connect(self._on_qkv_hover)
        for w in (self.heatmap, self.grid, self.lines, self.rollout, self.qkv):
            w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            self.stack.addWidget(w)
        root.addWidget(self.stack, 1)

        self.hover_label = status_label()
        root.addWidget(self.hover_label)
        self._sync_controls()

    @property
    def numbers_shown(self) -> bool:
        """The Q, K, V numbers of one head replace the heatmap (a number stage, head view)."""
        return (self.stage in NUMBER_STAGES and self.view in ("head", "grid")
                and self.family == "self")

    def current_plot(self):
        """The widget the toolbar's Export button exports (PNG/SVG/CSV)."""
        if self.numbers_shown:
            return self.qkv
        return {"head": self.heatmap, "grid": self.grid, "lines": self.lines,
                "rollout": self.rollout}[self.view]

    def _sync_controls(self) -> None:
        grid, lines, flow = self.view == "grid", self.view == "lines", self.view == "rollout"
        numbers = self.numbers_shown
        self.layer_box.setEnabled((not grid or numbers) and not flow)
        self.head_box.setEnabled((numbers or (not grid and not self.average
                                              and not (lines and self.lines_all_heads)))
                                 and not flow)
        self.average_box.setVisible(not lines and not flow and not numbers)
        self.stage_group.setVisible(not lines and not flow)
        self.lines_mode_box.setVisible(lines)
        self.threshold_group.setVisible(lines)
        self.stack.setCurrentWidget(self.qkv if numbers else self.current_plot())
        b = self.view_buttons[self.view]
        if not b.isChecked():
            b.setChecked(True)
        self._update_formula()

    def _update_formula(self) -> None:
        if self.view == "rollout":
            text = ("<b>Attention rollout</b> &nbsp; R = Â<sub>L</sub> ⋯ Â<sub>1</sub>,&nbsp; "
                    "Â = normalise(mean<sub>heads</sub> A + I) (Abnar &amp; Zuidema 2020)<br>"
                    "How much of each earlier token reaches the selected token (default: the "
                    "last) through every layer, if attention and the residual path were the "
                    "only routes. The bars sum to 1.")
        elif self.view == "lines":
            text = ("<b>Lines</b> &nbsp; A = softmax(Q·Kᵀ/√d + M)<br>"
                    "Each query (left) is joined to the keys it attends to (right); thicker and "
                    f"brighter lines carry more weight. Weights below {self.threshold:.2f} are "
                    "not drawn. Hover a query or select a token to see its lines alone.")
        elif self.stage in NUMBER_STAGES and self.family != "self":
            text = (f"<b>{STAGE_TITLES[self.stage]}</b><br>The numbers of one query are shown "
                    "for the decoder's masked self-attention; here the softmax weights of "
                    f"{FAMILY_TITLES[self.family].lower()}. {FAMILY_TEXT[self.family]}")
        else:
            s = self.stage
            r = self.session.result
            bidirectional = r is not None and not r.is_causal
            formula = (ENCODER_STAGE_FORMULAS.get(s, STAGE_FORMULAS[s]) if bidirectional
                       else STAGE_FORMULAS[s])
            explain = (ENCODER_STAGE_TEXT.get(s, STAGE_TEXT[s]) if bidirectional
                       else STAGE_TEXT[s])
            where = ("" if s in NUMBER_STAGES else
                     "Every layer (rows) × head (columns) at once; click a cell to open it"
                     + (", Shift+click (or X over it) to switch that head off or on."
                        if self.family == "self" else ".")
                     if self.view == "grid" else
                     "Rows are queries, columns are keys; hover a cell for its value."
                     if self.family == "self" else "Hover a cell for its value.")
            if self.family != "self":
                formula = FAMILY_MASKED[self.family] if s == "masked" else formula
                explain = FAMILY_TEXT[self.family]
                if s == "masked":
                    explain += " Without padding nothing is hidden."
            title = STAGE_TITLES[s] if self.family == "self" else \
                f"{FAMILY_TITLES[self.family]}: {STAGE_TITLES[s].lower()}"
            text = f"<b>{title}</b> &nbsp; {formula}<br>{explain} {where}"
        self.formula.setText(text)

    # -- public controls -----------------------------------------------------------------------
    def families(self) -> tuple[str, ...]:
        """The attention families of the current model, in reading order."""
        cfg = self.session.config
        return FAMILIES if cfg is not None and cfg.kind == "encoder-decoder" else ("self",)

    def set_family(self, family: str) -> None:
        """Show ``family``: "encoder", "self" (the decoder's) or "cross"."""
        if family not in self.families():
            raise ValueError(f"this model's attention families are {self.families()}, "
                             f"not {family!r}")
        self.family = family
        cfg = self.session.config
        if cfg is not None:  # the encoder's stack may have more (or fewer) layers
            self._set_shape(cfg.n_enc_layer if family == "encoder" else cfg.n_layer, cfg.n_head)
        i = self.family_box.findData(family)
        if self.family_box.currentIndex() != i:
            self.family_box.blockSignals(True)
            self.family_box.setCurrentIndex(i)
            self.family_box.blockSignals(False)
        rows, cols = FAMILY_AXES[family]
        style = {"font-size": css_pt(TICK_PT)}
        self.heatmap.plot.setLabel("left", rows, **style)
        self.heatmap.plot.setLabel("bottom", cols, **style)
        self.heatmap.highlight_row(self._selected_row())
        self.hover_label.setText(" ")
        self._sync_controls()
        self.schedule_redraw()

    def _sync_families(self) -> None:
        fams = self.families()
        if [self.family_box.itemData(i) for i in range(self.family_box.count())] != list(fams):
            self.family_box.blockSignals(True)
            self.family_box.clear()
            for f in fams:
                self.family_box.addItem(FAMILY_TITLES[f], f)
            self.family_box.blockSignals(False)
        self.family_group.setVisible(len(fams) > 1)
        self.set_family(self.family if self.family in fams else "self")

    def set_view(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        self.view = view
        self.hover_label.setText(" ")
        self._sync_controls()
        self.schedule_redraw()

    def set_layer(self, layer: int) -> None:
        self.layer = int(layer)
        if self.layer_box.currentIndex() != self.layer and self.layer < self.layer_box.count():
            self.layer_box.blockSignals(True)
            self.layer_box.setCurrentIndex(self.layer)
            self.layer_box.blockSignals(False)
        self.schedule_redraw()

    def set_head(self, head: int) -> None:
        self.head = int(head)
        if self.head_box.currentIndex() != self.head and self.head < self.head_box.count():
            self.head_box.blockSignals(True)
            self.head_box.setCurrentIndex(self.head)
            self.head_box.blockSignals(False)
        self.schedule_redraw()

    def set_stage(self, stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        i = STAGES.index(stage)
        if self.stage_box.currentIndex() != i:
            self.stage_box.blockSignals(True)
            self.stage_box.setCurrentIndex(i)
            self.stage_box.blockSignals(False)
        self._sync_controls()
        self.schedule_redraw()

    def set_average(self, on: bool) -> None:
        self.average = bool(on)
        if self.average_box.isChecked() != self.average:
            self.average_box.blockSignals(True)
            self.average_box.setChecked(self.average)
            self.average_box.blockSignals(False)
        self._sync_controls()
        self.schedule_redraw()

    def set_lines_all_heads(self, on: bool) -> None:
        self.lines_all_heads = bool(on)
        idx = 1 if on else 0
        if self.lines_mode_box.currentIndex() != idx:
            self.lines_mode_box.blockSignals(True)
            self.lines_mode_box.setCurrentIndex(idx)
            self.lines_mode_box.blockSignals(False)
        self._sync_controls()
        self.schedule_redraw()

    def set_threshold(self, value: float) -> None:
        self.threshold = float(value)
        if abs(self.threshold_box.value() - self.threshold) > 1e-9:
            self.threshold_box.blockSignals(True)
            self.threshold_box.setValue(self.threshold)
            self.threshold_box.blockSignals(False)
        self._update_formula()
        self.schedule_redraw()

    def open_head(self, layer: int, head: int | None) -> None:
        """Show one head (``None``: the mean over the layer's heads) in the heatmap view."""
        self.set_layer(layer)
        if head is None:
            self.set_average(True)
        else:
            self.set_average(False)
            self.set_head(head)
        self.set_view("head")

    # -- session -------------------------------------------------------------------------------
    def _on_model_changed(self) -> None:
        cfg = self.session.config
        self._sync_families()
        layers = (cfg.n_enc_layer if self.family == "encoder" else cfg.n_layer) if cfg else 0
        self._set_shape(layers, cfg.n_head if cfg else 0)
        self._future.clear()
        self.heatmap.clear_matrix()
        self.grid.clear_matrix()
        self.lines.clear_lines()
        self.hover_label.setText(" ")
        self.schedule_redraw()

    def _set_shape(self, n_layer: int, n_head: int) -> None:
        for box, n in ((self.layer_box, n_layer), (self.head_box, n_head)):
            if box.count() == n:
                continue
            box.blockSignals(True)
            box.clear()
            box.addItems([str(i) for i in range(n)])
            box.blockSignals(False)
        self.layer = min(self.layer, max(n_layer - 1, 0))
        self.head = min(self.head, max(n_head - 1, 0))
        for box, i in ((self.layer_box, self.layer), (self.head_box, self.head)):
            box.blockSignals(True)
            box.setCurrentIndex(i if box.count() else -1)
            box.blockSignals(False)

    def _on_layer_box(self, i: int) -> None:
        if i >= 0:
            self.set_layer(i)

    def _on_head_box(self, i: int) -> None:
        if i >= 0:
            self.set_head(i)

    def _selected_row(self) -> int:
        """The heatmap row of the selected token: a target (or text) token, so none of the
        encoder's rows."""
        return -1 if self.family == "encoder" else self.session.selected_token

    def _on_selected_token(self, i: int) -> None:
        self.heatmap.highlight_row(self._selected_row())
        if self.view in ("lines", "rollout") or self.numbers_shown:
            self.schedule_redraw()

    # -- drawing -------------------------------------------------------------------------------
    def _labels(self, r) -> list[str]:
        """Labels of the rows (queries) of the current family."""
        return r.source_pieces if self.family == "encoder" else r.pieces

    def _col_labels(self, r) -> list[str]:
        """Labels of the columns (keys) of the current family."""
        return r.source_pieces if self.family in ("encoder", "cross") else r.pieces

    def _hidden(self, r, rows: int, cols: int, reps: tuple[int, int] = (1, 1)) -> np.ndarray:
        """(rows, cols) bool, tiled ``reps`` times: True where the family's mask hides a key
        (the future for the decoder's self-attention, padding for the other two)."""
        if self.family == "self":  # an encoder's hides nothing, unless shown as GPT's
            return self._future_mask(rows, reps, causal=r.is_causal)
        m = ~r.family_mask(self.family)[:rows, :cols]
        return np.tile(m, reps) if reps != (1, 1) else m

    def _future_mask(self, t: int, reps: tuple[int, int] = (1, 1),
                     causal: bool = True) -> np.ndarray:
        """True where the mask hides a key: after its query (causal), nowhere (an encoder)."""
        key = (t, *reps, causal)
        m = self._future.get(key)
        if m is None:
            m = causal_future(t) if causal else np.zeros((t, t), dtype=bool)
            m = np.tile(m, reps) if reps != (1, 1) else m
            self._future[key] = m
        return m

    def _source(self, r) -> np.ndarray | None:
        """(L, H, T, T) array the current stage reads from (scores for both score stages, a
        QKScores from a stepper: index one head's slice; the all-heads mosaic shows the softmax
        weights behind a number stage)."""
        attention, scores = r.family_maps(self.family)
        return scores if self.stage in ("masked", "scores") else attention

    def redraw_now(self) -> None:
        """Redraw at once from ``session.result`` (the coalescing timer calls this)."""
        if not self._begin_redraw():  # hidden: drawn when shown
            return
        r = self.session.result
        if r is not None and self.family not in r.families and r.attention is not None:
            self.hover_label.setText(f"{FAMILY_TITLES[self.family]} is not in this result.")
            return
        att = r.family_maps(self.family)[0] if r is not None else None
        if r is None or att is None:
            self.hover_label.setText("Attention was not captured for this step."
                                     if r is not None else " ")
            return
        L, H = att.shape[:2]
        if (self.layer_box.count(), self.head_box.count()) != (L, H):
            self._set_shape(L, H)
        if r.is_causal != self._causal_shown:  # an encoder, or its causal comparison
            self._causal_shown = r.is_causal
            self._update_formula()
        if self.family == "cross" and self.view in ("lines", "rollout"):
            self.hover_label.setText(
                f"{VIEW_TITLES[self.view]} follow a sequence's attention to itself; for "
                "cross-attention (target × source) choose One head or All heads.")
            return
        if self.numbers_shown:
            self._draw_numbers(r)
        elif self.view == "head":
            self._draw_head(r)
        elif self.view == "grid":
            self._draw_grid(r)
        elif self.view == "rollout":
            self._draw_rollout(r)
        else:
            self._draw_lines(r)

    def _set_cmap(self, which: str, widget: HeatmapWidget) -> None:
        cmap = DIVERGING_CMAP if self.stage in ("masked", "scores") else PROB_CMAP
        if self._cmap[which] != cmap:
            widget.set_colormap(cmap)
            self._cmap[which] = cmap

    def head_matrix(self, r=None) -> tuple[np.ndarray, np.ndarray, tuple[float, float]] | None:
        """(display, values, levels) of the selected head at the current stage."""
        r = r if r is not None else self.session.result
        src = self._source(r)
        if src is None:
            return None
        layer = min(self.layer, src.shape[0] - 1)
        m = src[layer].mean(axis=0) if self.average else src[layer, min(self.head, src.shape[1] - 1)]
        fut = self._hidden(r, *m.shape)
        if self.stage == "probs":
            values = np.asarray(m, dtype=np.float32)
            display = values.copy()
            display[fut] = np.nan
            levels = (0.0, 1.0)
        elif self.stage == "scores":
            values = display = np.array(m, dtype=np.float32)
            levels = symmetric_levels(values)
        else:
            values = np.where(fut, np.float32(-np.inf), m).astype(np.float32)
            display = np.where(fut, np.float32(np.nan), m).astype(np.float32)
            levels = symmetric_levels(display)
        return display, values, levels

    def _draw_head(self, r) -> None:
        hm = self.head_matrix(r)
        if hm is None:
            self.hover_label.setText("Scores were not captured for this step.")
            return
        display, values, levels = hm
        self._set_cmap("head", self.heatmap)
        self.heatmap.set_matrix(display, levels=levels, export=values,
                                row_labels=self._labels(r), col_labels=self._col_labels(r))
        self.heatmap.highlight_row(self._selected_row())
        if self._hover != (-1, -1):
            self._on_head_hover(*self._hover)

    def _what(self) -> str:
        head = "mean of heads" if self.average else f"head {self.head}"
        fam = "" if len(self.families()) == 1 else f"{FAMILY_TITLES[self.family].lower()}, "
        return f"{fam}layer {self.layer}, {head}"

    def _export_header(self) -> str:
        r = self.session.result
        size = f"context of {r.T if r is not None else 0} tokens"
        if r is not None and r.source_ids is not None:
            size = f"source of {r.S} tokens, target of {r.T}"
        return f"attention {STAGE_TITLES[self.stage]} ({self.view} view, {self._what()}); {size}"

    def hover_text(self, row: int, col: int) -> str:
        """Text shown for the head view's cell (row=query, col=key)."""
        r = self.session.result
        hm = self.heatmap.export_table()
        if r is None or hm is None or row < 0 or col < 0:
            return " "
        values = hm[0]
        if row >= values.shape[0] or col >= values.shape[1]:
            return " "
        return f"{self._what()} · {self._cell_text(r, values[row, col], row, col)}"

    def _cell_text(self, r, v: float, q: int, k: int) -> str:
        lab, col = self._labels(r), self._col_labels(r)
        if self.family == "self":
            masked, why = k > q and r.is_causal, "the key comes later"
        else:
            masked, why = bool(self._hidden(r, q + 1, k + 1)[q, k]), "padding"
        who = ("target", "source") if self.family == "cross" else ("query", "key")
        text = f"{who[0]} '{lab[q]}' @{q} → {who[1]} '{col[k]}' @{k}: {_fmt(float(v))}"
        if masked and self.stage != "scores":
            text += f" (masked: {why})"
        return text

    def _on_head_hover(self, row: int, col: int) -> None:
        self._hover = (row, col)
        if self.view == "head":
            self.hover_label.setText(self.hover_text(row, col))

    # -- all heads -----------------------------------------------------------------------------
    def grid_image(self, r=None):
        """(colour codes, values_fn, levels, (rows, cols, cell, factor)) of the all-heads mosaic.

        The mosaic is an indexed image (uint8 codes, see ``HeatmapWidget.set_codes``): mapping
        2.4 million values through a colour map per redraw would take tens of milliseconds."""
        r = r if r is not None else self.session.result
        src = self._source(r)
        if src is None:
            return None
        L, H, T, Tk = src.shape
        if self.average:
            H = 1
        factor = max(1, math.ceil(max(T, Tk) * max(L, H) / MAX_MOSAIC))
        fut = self._hidden(r, T, Tk)
        masked = self.stage != "scores" and bool(fut.any())
        if factor == 1:
            whole = np.asarray(src)  # every head (scores are computed here)
            if self.average:
                whole = whole.mean(axis=1, keepdims=True)  # (L, 1, T, Tk)
            levels = self._grid_levels(self._extent(whole, fut, masked))
            codes = mosaic(quantize(whole, levels))  # (L*T, H*Tk) uint8
            if masked:
                np.copyto(codes, np.uint8(MASKED_CODE), where=self._hidden(r, T, Tk, (L, H)))
            cell, cell_w = T, Tk
        else:  # pool: a 12 × 12 × 1024² mosaic would not fit in an image
            # one layer at a time (its scores computed, masked and pooled): the whole array
            # and its masked and padded copies would be 0.6 GB each for a GPT-2 at 1,024 tokens
            how = "max" if self.stage == "probs" else "mean"
            pooled, extent = [], []
            for layer in range(L):
                cells = np.asarray(src[layer], dtype=np.float32)  # (H, T, Tk)
                if self.average:
                    cells = cells.mean(axis=0, keepdims=True)
                if self.stage != "probs":
                    extent.append(self._extent(cells, fut, masked))
                if masked:
                    cells = np.where(fut, np.float32(np.nan), cells)
                pooled.append(pool_cells(cells, factor, how))
            pooled = np.stack(pooled)
            levels = self._grid_levels(max(extent, default=0.0))
            gone = np.isnan(pooled)
            q = quantize(np.where(gone, np.float32(levels[0]), pooled), levels)
            q[gone] = MASKED_CODE
            cell, cell_w = pooled.shape[-2:]
            codes = mosaic(q)
        stage, average = self.stage, self.average
        self._grid_cell_w = cell_w

        def values():  # an export's numbers: the whole array, made when asked for
            v = np.asarray(src, dtype=np.float32)
            if average:
                v = v.mean(axis=1, keepdims=True)
            if stage == "masked":
                v = np.where(fut, np.float32(-np.inf), v)
            rows = [f"L{li} q{qi}" for li in range(L) for qi in range(T)]
            cols = [f"H{hi} k{ki}" if not self.average else f"mean k{ki}"
                    for hi in range(H) for ki in range(Tk)]
            return mosaic(np.asarray(v, dtype=np.float32)), rows, cols

        return codes, values, levels, (L, H, cell, factor)

    @staticmethod
    def _extent(a: np.ndarray, fut: np.ndarray, masked: bool) -> float:
        """The largest |value| of ``a`` that the mosaic shows (the mask hides the future)."""
        return float(np.max(np.abs(a), where=~fut if masked else True, initial=0.0))

    def _grid_levels(self, extent: float) -> tuple[float, float]:
        """Colour levels of the mosaic: 0..1 for the weights, symmetric around 0 for scores."""
        if self.stage == "probs":
            return (0.0, 1.0)
        m = extent or 1.0
        return (-m, m)

    def _draw_grid(self, r) -> None:
        g = self.grid_image(r)
        if g is None:
            self.hover_label.setText("Scores were not captured for this step.")
            return
        codes, values, levels, geom = g
        rows, cols, cell, factor = geom
        self._grid_geom = geom
        self._set_cmap("grid", self.grid)
        cell_w = self._grid_cell_w
        self.grid.row_axis.cell = cell
        self.grid.col_axis.cell = cell_w
        self.grid.set_codes(codes, levels=levels, export=values,
                             row_labels=[f"L{i}" for i in range(rows)],
                             col_labels=["mean"] if self.average else
                             [f"H{i}" for i in range(cols)])
        x, y = grid_lines(rows, cols, cell, cell_w)
        self._grid_lines.setData(x, y, connect="pairs")
        self._mark_ablated(rows, cols, cell, cell_w)
        note = f" (each cell pooled {factor}×{factor})" if factor > 1 else ""
        if note:
            self.hover_label.setText(f"{rows} layers × {cols} heads{note}")

    def _mark_ablated(self, rows: int, cols: int, cell: int, cell_w: int) -> None:
        """A cross over every switched-off head of the mosaic (the ablation switches heads
        of the decoder's own self-attention)."""
        xs: list[float] = []
        ys: list[float] = []
        if not self.average and self.family == "self":
            for li, hi in self.session.ablation.sorted():
                if li < rows and hi < cols:
                    x0, y0 = hi * cell_w, li * cell
                    xs += [x0, x0 + cell_w, x0 + cell_w, x0]
                    ys += [y0, y0 + cell, y0, y0 + cell]
        self._ablated_marks.setData(np.asarray(xs, float), np.asarray(ys, float),
                                    connect="pairs")

    def grid_cell(self, row: int, col: int) -> tuple[int, int | None, int, int]:
        """(layer, head or None for the mean, query, key) of a mosaic pixel."""
        rows, cols, cell, factor = self._grid_geom
        cell_w = self._grid_cell_w or cell
        layer, head = row // cell, col // cell_w
        q, k = (row % cell) * factor, (col % cell_w) * factor
        return layer, (None if self.average else head), q, k

    def grid_hover_text(self, row: int, col: int) -> str:
        r = self.session.result
        if r is None or row < 0:
            return " "
        layer, head, q, k = self.grid_cell(row, col)
        src = self._source(r)
        if src is None or q >= src.shape[2] or k >= src.shape[3]:
            return " "
        m = src[layer].mean(axis=0) if head is None else src[layer, head]
        v = m[q, k]
        if self.stage == "masked" and self._hidden(r, *m.shape)[q, k]:
            v = -np.inf
        who = f"layer {layer}, " + ("mean of heads" if head is None else f"head {head}")
        factor = self._grid_geom[3]
        approx = f" (cells pooled {factor}×{factor})" if factor > 1 else ""
        return f"{who} · {self._cell_text(r, v, q, k)}{approx} — click to open"

    def _on_grid_hover(self, row: int, col: int) -> None:
        self._grid_hover = (row, col)
        if row >= 0:
            self.setFocus(Qt.FocusReason.MouseFocusReason)  # so X reaches keyPressEvent
        if self.view == "grid":
            self.hover_label.setText(self.grid_hover_text(row, col))

    def _on_grid_click(self, row: int, col: int) -> None:
        layer, head, _q, _k = self.grid_cell(row, col)
        shift = QApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier
        if shift and head is not None and self.family == "self":  # switch the head off (or back on)
            self.session.toggle_head(layer, head)
            return
        self.open_head(layer, head)

    def keyPressEvent(self, e: QKeyEvent) -> None:  # noqa: N802 - Qt API
        """X over a head of the all-heads view switches it off (or back on)."""
        if e.key() == Qt.Key.Key_X and self.view == "grid" and not self.numbers_shown:
            row, col = self._grid_hover
            if row >= 0 and not self.average and self.family == "self":
                layer, head, _q, _k = self.grid_cell(row, col)
                self.session.toggle_head(layer, head)
                e.accept()
                return
        super().keyPressEvent(e)

    # -- the numbers of one head ------------------------------------------------------------------
    def query_token(self, r) -> int:
        """The selected token, or the last one (of the source, for the encoder's attention)."""
        if self.family == "encoder":
            return r.S - 1
        i = self.session.selected_token
        return i if 0 <= i < r.T else r.T - 1

    def _draw_numbers(self, r) -> None:
        layer = min(self.layer, r.attention.shape[0] - 1)
        head = min(self.head, r.attention.shape[1] - 1)
        w_o = r.w_o[layer] if r.w_o is not None else None
        why = self.qkv.show_head(r, layer, head, self.query_token(r), self.stage, w_o)
        if why:
            self.hover_label.setText(why)

    def _on_qkv_hover(self, text: str) -> None:
        if self.numbers_shown:
            self.hover_label.setText(text)

    # -- rollout -------------------------------------------------------------------------------
    def rollout_values(self, r=None) -> tuple[int, np.ndarray] | None:
        """(token, its rollout over tokens 0..token) of the current result."""
        r = r if r is not None else self.session.result
        a = r.family_maps(self.family)[0] if r is not None else None
        if a is None or self.family == "cross":
            return None
        t = self.query_token(r)
        # bidirectional: an encoder's own attention (unless shown under the causal mask) and
        # the encoder stack of an encoder-decoder
        causal = self.family == "self" and r.is_causal
        return t, rollout_row(a, t, causal=causal)

    def _draw_rollout(self, r) -> None:
        t, flow = self.rollout_values(r)
        n = flow.size
        self.rollout_bars.setOpts(x=np.arange(n, dtype=float), y0=np.zeros(n), height=flow,
                                  width=0.8)
        pieces = self._labels(r)
        labels = [f"{p}@{j}" for j, p in enumerate(pieces[:n])]
        step = max(1, n // 30)
        self.rollout.plot.getAxis("bottom").setTicks(
            [[(j, labels[j]) for j in range(0, n, step)], []])
        self.rollout.plot.setXRange(-0.6, n - 0.4, padding=0)
        self.rollout.plot.setYRange(0, max(float(flow.max()), 1e-6) * 1.1, padding=0)
        self.rollout.set_table(flow[:, None], labels, ["rollout"])
        top = np.argsort(-flow)[:3]
        best = ", ".join(f"'{pieces[j]}' @{j} {flow[j] * 100:.1f}%" for j in top)
        n_layer = r.family_maps(self.family)[0].shape[0]
        self.hover_label.setText(f"flow into '{pieces[t]}' @{t} through {n_layer} layers: "
                                 f"{best}")

    def _rollout_header(self) -> str:
        v = self.rollout_values()
        tok = v[0] if v is not None else -1
        return (f"attention rollout (Abnar & Zuidema 2020) into token {tok}: mean over heads + "
                "identity, rows renormalised, multiplied through the layers")

    # -- lines ---------------------------------------------------------------------------------
    def _draw_lines(self, r) -> None:
        a = r.family_maps(self.family)[0]  # lines always show the softmax weights
        layer = min(self.layer, a.shape[0] - 1)
        if self.lines_all_heads:
            heads = list(range(a.shape[1]))
            weights = a[layer]
            colors = [pg.intColor(h, hues=max(len(heads), 3), sat=190)
                      for h in heads]
        else:
            heads = [min(self.head, a.shape[1] - 1)]
            weights = a[layer, heads[0]][None]
            colors = [pg.mkColor(THEME.accent)]
        focus = self._lines_hover if self._lines_hover >= 0 else self._selected_row()
        self.lines.set_lines(weights, heads, colors, self._labels(r), self.threshold, focus)
        if self.lines_all_heads:
            legend = " ".join(f"<span style='color:{c.name()}'>■ head {h}</span>"
                              for h, c in zip(heads, colors, strict=True))
            self.hover_label.setText(f"layer {layer}: {legend}")
        elif self._lines_hover < 0:
            hidden = (f" (the {self.lines.n_hidden} weakest above {self.threshold:.2f} are "
                      "left out)" if self.lines.n_hidden else "")
            self.hover_label.setText(f"layer {layer}, head {heads[0]}: "
                                     f"{len(self.lines.segments)} lines{hidden}")

    def _on_lines_hover(self, row: int) -> None:
        self._lines_hover = row
        r = self.session.result
        if (self.view != "lines" or r is None or self.family == "cross"
                or r.family_maps(self.family)[0] is None):
            return
        self._draw_lines(r)
        if row >= 0 and not self.lines_all_heads:
            seg = self.lines.segments
            top = seg[np.argsort(-seg["weight"])][:4]
            lab = self._labels(r)
            keys = ", ".join(f"'{lab[s['key']]}' @{s['key']}: {s['weight']:.2f}" for s in top)
            self.hover_label.setText(f"query '{lab[row]}' @{row} → {keys}")
