"""Architecture panel: the loaded model's anatomy drawn as a diagram, with live values per block.

The diagram (a QGraphicsScene) draws the model's own description of itself
(:func:`model.anatomy.describe`): token embedding and positional encoding, N layers in pre-norm
(GPT-2) or post-norm (Vaswani) order, the final norm, the unembedding and the softmax with
temperature; for an encoder–decoder the encoder and the decoder side by side with the
cross-attention reading the encoder's output. Every block shows its shapes and its parameter
count. Clicking a block shows what it computed for the current context in the detail area, read
from the StepResult arrays the anatomy names for it (an encoder–decoder's encoder has its own,
``encoder_…``, and its cross-attention ``cross_…``), with its formula and a short explanation.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from explorer.panels.architecture.diagram import Diagram
from explorer.redraws import LiveRedraw
from explorer.theme import THEME, colormap, css_pt, pt, text_on
from explorer.widgets.exports import export_button
from explorer.widgets.layout import TEXT_PT, explanation_pane, rich_text, status_label
from explorer.widgets.plot_helpers import (
    DIVERGING_CMAP,
    MAX_MOSAIC,
    PROB_CMAP,
    TICK_PT,
    HeatmapWidget,
    LabelAxis,
    SeriesPlot,
    causal_future,
    mosaic,
    pool_cells,
    symmetric_levels,
)
from model.anatomy import Anatomy, Attention, Box, Positions, Stack, describe
from model.positional_view import DESCRIPTIONS
from model.tokenizer import Tokenizer

# -- explanations ------------------------------------------------------------------------------
LN_FORMULA = "LN(x) = γ ⊙ (x − μ) / √(σ² + ε) + β"
TEXTS = {
    "tok_emb": ("x<sub>t</sub> = E[token<sub>t</sub>]",
                "Each token id picks one row of the embedding matrix E: a learned vector of C "
                "numbers. Shown: the vector of every token of the context (rows) across the C "
                "dimensions (columns)."),
    "embed.add": ("x<sup>(0)</sup> = E[token] + PE[pos]",
                  "The residual stream starts as the token vector plus the position vector. "
                  "Every layer reads from this stream and adds its result back."),
    "ln": (LN_FORMULA,
           "Layer normalisation rescales each token's vector to mean 0 and spread 1, then "
           "applies learned γ and β, which keeps the numbers in a stable range. Shown: the mean "
           "μ and standard deviation σ of the vector entering this norm, per token."),
    "attn": ("head<sub>h</sub> = softmax(QKᵀ/√d + M) V,&nbsp; out = [head<sub>1</sub>…"
             "head<sub>H</sub>] W<sub>O</sub>",
             "Each head lets every token gather information from earlier tokens, weighted by "
             "how well its query matches their keys. Shown: the attention weights of each head "
             "of this layer side by side (the Attention panel has the details)."),
    "add": ("x ← x + sublayer(x)",
            "The residual connection adds a sublayer's output to the stream instead of "
            "replacing it, so information flows straight through the stack. Shown: the length "
            "‖x‖ of each token's residual vector after the embedding and after each layer."),
    "ffn": ("FFN(x) = W<sub>2</sub> · GELU(W<sub>1</sub> x + b<sub>1</sub>) + b<sub>2</sub>",
            "A two-layer network applied to each token on its own, wider inside than outside. "
            "Shown: the hidden activations after GELU for each token (rows) and hidden unit "
            "(columns)."),
    "unembed": ("logits = LN<sub>f</sub>(x) · W<sub>U</sub>",
                "The unembedding turns the final vector into one score per vocabulary token. The "
                "logit lens applies the same map to the residual stream after every layer: the "
                "table shows what each layer would predict at each position, and how sure it "
                "is."),
    "softmax": ("p<sub>i</sub> = exp(z<sub>i</sub>/τ) / Σ<sub>j</sub> exp(z<sub>j</sub>/τ)",
                "Softmax turns the scores into probabilities; the temperature τ sharpens (τ &lt; 1) "
                "or flattens (τ &gt; 1) them before the next token is sampled. Shown: the most "
                "likely next tokens."),
}
ATTN_TEXTS = {  # attention that is not a GPT's causal self-attention
    "bidirectional": (
        "head<sub>h</sub> = softmax(QKᵀ/√d + M<sub>pad</sub>) V,&nbsp; out = [head<sub>1</sub>…"
        "head<sub>H</sub>] W<sub>O</sub>",
        "Bidirectional self-attention: every token gathers information from every token of "
        "the input, before and after it. There is no causal mask, so each head's map is a full "
        "square (a GPT's upper triangle stays empty); only padding is masked. Shown: the "
        "attention weights of each head of this layer side by side, query tokens × key "
        "tokens."),
    "cross": (
        "head<sub>h</sub> = softmax(Q<sub>dec</sub> K<sub>enc</sub>ᵀ/√d) V<sub>enc</sub>,&nbsp; "
        "out = [head<sub>1</sub>…head<sub>H</sub>] W<sub>O</sub>",
        "Cross-attention: the queries come from the decoder (the target written so far), the "
        "keys and values from the encoder's output (the source). Each row is one target token's "
        "weights over the source tokens, and they sum to 1: where it looks in the input while "
        "it writes. Shown: each head's target × source map side by side; click a head to see "
        "it alone."),
}
DEFAULT_BLOCK = "L0.attn"  # selected when a model is loaded
DEFAULT_BLOCK_S2S = "L0.cross"  # an encoder–decoder opens on its first cross-attention
OVERVIEW = ("Click a block to see what it computes for the current context. Data flows left to "
            "right along each row and row by row downwards; the curved arrows are residual "
            "connections.")
OVERVIEW_S2S = ("Click a block to see what it computes for the current context. The encoder "
                "(left) reads the whole source at once; the decoder (right) writes the target "
                "token by token, and the green arrows carry the encoder's output into the "
                "cross-attention of every decoder layer. Data flows down each column; the "
                "blue arrows are residual connections.")

def _same_kind(field: str, name: str) -> bool:
    """Whether StepResult ``field`` holds ``name`` values: ``name`` itself, or the encoder's
    (``encoder_ffn``) or the cross-attention's (``cross_attention``, ``cross_out``) own."""
    if field == name:
        return True
    prefix, _, rest = field.partition("_")
    if prefix == "encoder":
        return rest == name
    if prefix == "cross":
        return rest == name or (name == "attn_out" and rest == "out")
    return False


# -- the logit-lens table ----------------------------------------------------------------------
class LensModel(QAbstractTableModel):
    """Rows: after the embedding and after each layer; columns: positions of the context."""

    def __init__(self):
        super().__init__()
        self.ids = np.zeros((0, 0, 1), np.int64)
        self.probs = np.zeros((0, 0, 1), np.float32)
        self.labels: list[str] = []
        self.tokenizer: Tokenizer | None = None  # labels the predicted tokens

    def set_data(self, ids, probs, labels, tokenizer: Tokenizer | None) -> None:
        self.beginResetModel()
        self.ids, self.probs, self.labels, self.tokenizer = ids, probs, labels, tokenizer
        self.endResetModel()

    def rowCount(self, parent=None):  # noqa: N802
        return 0 if parent is not None and parent.isValid() else self.ids.shape[0]

    def columnCount(self, parent=None):  # noqa: N802
        return 0 if parent is not None and parent.isValid() else self.ids.shape[1]

    def _tok(self, i: int) -> str:
        tok = self.tokenizer
        return tok.token_pieces([i])[0] if tok is not None and 0 <= i < tok.vocab_size else str(i)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        r, c = index.row(), index.column()
        tok, p = int(self.ids[r, c, 0]), float(self.probs[r, c, 0])
        if tok < 0:  # a large vocabulary: the lens is computed for the last positions only
            if role == Qt.ItemDataRole.DisplayRole:
                return "\u2014"
            if role == Qt.ItemDataRole.ToolTipRole:
                return ("not computed: with a vocabulary this large the logit lens is computed "
                        "for the prompt's last positions and every generated token")
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignCenter)
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{self._tok(tok)}  {p:.2f}"
        if role == Qt.ItemDataRole.BackgroundRole:
            return colormap(PROB_CMAP).map(min(max(p, 0.0), 1.0), mode="qcolor")
        if role == Qt.ItemDataRole.ForegroundRole:
            return text_on(colormap(PROB_CMAP).map(min(max(p, 0.0), 1.0), mode="qcolor"))
        if role == Qt.ItemDataRole.ToolTipRole:
            k = self.ids.shape[2]
            top = ", ".join(f"'{self._tok(int(self.ids[r, c, j]))}' {self.probs[r, c, j]:.2f}"
                            for j in range(k))
            return f"{self.headerData(r, Qt.Orientation.Vertical)} at position {c}: {top}"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            lab = self.labels[section] if section < len(self.labels) else ""
            return f"{section} {lab}"
        n = self.ids.shape[0]
        if section == 0:
            return "embedding"
        return f"layer {section - 1}" + (" (output)" if section == n - 1 else "")


# -- the panel ---------------------------------------------------------------------------------
class ArchitecturePanel(LiveRedraw, QWidget):
    """The model as a diagram; click a block for its live values."""

    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.anatomy: Anatomy | None = None
        self.selected: str | None = None
        self.collapsed = False
        # the head an encoder or cross-attention block shows alone (None: all side by side)
        self.head: int | None = None
        # what the attention detail shows, for hover and click: (box, head alone or None,
        # pooling factor, displayed cell width, query labels, key labels)
        self._map: tuple | None = None
        self._init_redraw()
        self._build_ui()
        session.model_changed.connect(self._on_model_changed)
        session.step_ready.connect(self.schedule_redraw)
        session.sample_changed.connect(self.schedule_redraw)
        session.selected_token_changed.connect(self._on_selected_token)
        self._on_model_changed()

    # -- UI ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setMinimumWidth(100)
        f = self.summary.font()
        f.setPointSizeF(pt(TEXT_PT))
        self.summary.setFont(f)
        bar.addWidget(self.summary, 1)
        self.collapse_box = QCheckBox("Collapse repeated layers")
        self.collapse_box.toggled.connect(self.set_collapsed)
        bar.addWidget(self.collapse_box)
        bar.addWidget(export_button(self, self.current_plot, "Export detail"))
        root.addLayout(bar)

        split = QSplitter(Qt.Orientation.Vertical)
        self.view = Diagram()
        self.view.block_clicked.connect(self.select_block)
        split.addWidget(self.view)

        detail = QWidget()
        dl = QHBoxLayout(detail)
        dl.setContentsMargins(0, 0, 0, 0)
        self.detail_stack = QStackedWidget()
        self.detail_heatmap = HeatmapWidget(name="block-values", col_title="dimension")
        self.detail_heatmap.hovered.connect(self._on_detail_hover)
        self.heads_axis = LabelAxis("bottom")
        self.detail_heads = HeatmapWidget(name="layer-heads", row_title="query",
                                          col_title="head (keys within each)")
        self.detail_heads.hovered.connect(self._on_heads_hover)
        self.detail_heads.clicked.connect(self._on_heads_click)
        self._heads_lines = pg.PlotCurveItem(pen=pg.mkPen(THEME.text, width=1.5, cosmetic=True))
        self._heads_lines.setZValue(15)
        self.detail_heads.plot.addItem(self._heads_lines, ignoreBounds=True)
        self.stats_axis = LabelAxis("bottom", centre=0.0)
        self.detail_series = SeriesPlot(name="block-series", bottom_axis=self.stats_axis)
        self.series_legend = self.detail_series.plot.addLegend(
            offset=(-10, 10), labelTextSize=css_pt(TEXT_PT - 1), brush=(22, 24, 29, 200))
        self._series_items: list = []
        self.lens_model = LensModel()
        self.lens_table = QTableView()
        self.lens_table.setModel(self.lens_model)
        tf = self.lens_table.font()
        tf.setPointSizeF(pt(TEXT_PT))
        self.lens_table.setFont(tf)
        # fixed widths: measuring every cell of a 1024-token context would take seconds
        fm = QFontMetricsF(tf)
        header = self.lens_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setDefaultSectionSize(int(fm.horizontalAdvance("\\x00  0.00")) + 14)
        header.setFont(tf)
        self.lens_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.lens_table.verticalHeader().setFont(tf)
        self.detail_text = QLabel()
        self.detail_text.setWordWrap(True)
        self.detail_text.setTextFormat(Qt.TextFormat.RichText)
        self.detail_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail_text.setMargin(16)
        f = self.detail_text.font()
        f.setPointSizeF(pt(TEXT_PT + 1))
        self.detail_text.setFont(f)
        for w in (self.detail_heatmap, self.detail_heads, self.detail_series, self.lens_table,
                  self.detail_text):
            self.detail_stack.addWidget(w)
        dl.addWidget(self.detail_stack, 3)
        self.explain, scroll = explanation_pane(margin=6, min_width=240, max_width=340)
        dl.addWidget(scroll, 1)
        split.addWidget(detail)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 340])
        root.addWidget(split, 1)
        self.hover_label = status_label()
        root.addWidget(self.hover_label)

    def current_plot(self):
        w = self.detail_stack.currentWidget()
        return w if hasattr(w, "export_png") else None

    # -- public --------------------------------------------------------------------------------
    def block(self, key: str) -> Box | None:
        return self.anatomy.box(key) if self.anatomy is not None else None

    def select_block(self, key: str | None) -> None:
        """Show ``key``'s live values in the detail area (None: the overview)."""
        if key is not None and key.startswith("collapsed"):
            self.set_collapsed(False)
            return
        self.selected = key
        self.view.set_selected(key)
        self._draw_detail()

    def set_collapsed(self, on: bool) -> None:
        on = bool(on)
        if self.collapse_box.isChecked() != on:
            self.collapse_box.blockSignals(True)
            self.collapse_box.setChecked(on)
            self.collapse_box.blockSignals(False)
        if on != self.collapsed:
            self.collapsed = on
            self._build_diagram()

    @property
    def items(self):
        """The diagram's drawn blocks by key (collapsed layers have none)."""
        return self.view.items

    def _build_diagram(self) -> None:
        self.view.build(self.anatomy, self.shown_layers())
        self.view.set_selected(self.selected, scroll=False)  # a new diagram opens at its top

    def shown_layers(self) -> list[int]:
        """The layers of each stack drawn in full (negative: counted from the stack's end)."""
        n = self._deepest()
        if self.collapsed and n > 3:
            return [0, -1]
        return list(range(n))

    def _deepest(self) -> int:
        """Layers of the anatomy's deepest stack (what collapsing shortens)."""
        return max((s.n_layer for s in self.anatomy.stacks), default=0) if self.anatomy else 0

    def stack_of(self, b: Box) -> Stack | None:
        if self.anatomy is None:
            return None
        return next((s for s in self.anatomy.stacks if any(x.key == b.key for x in s.boxes())),
                    None)

    def _of_encoder(self, b: Box) -> bool:
        """Whether ``b`` belongs to the encoder of an encoder–decoder (its values are the
        StepResult's ``encoder_…`` fields, about the source)."""
        s = self.stack_of(b)
        return (s is not None and s.name == "encoder"
                and self.anatomy.family == "encoder-decoder")

    # -- session -------------------------------------------------------------------------------
    def _on_model_changed(self) -> None:
        cfg = self.session.config
        a = self.anatomy = describe(cfg) if cfg is not None else None
        # open on the first attention block: its heads are what a first look is for (an
        # encoder–decoder's first cross-attention: how the target reads the source)
        first = DEFAULT_BLOCK_S2S if a is not None and a.family == "encoder-decoder" \
            else DEFAULT_BLOCK
        self.selected = first if self.block(first) is not None else None
        self.head = None
        n = self._deepest()
        self.collapsed = n > 6
        self.collapse_box.blockSignals(True)
        self.collapse_box.setChecked(self.collapsed)
        self.collapse_box.setEnabled(n > 3)
        self.collapse_box.blockSignals(False)
        if a is not None:
            stack = a.stacks[0]
            if a.family == "encoder-decoder":
                layers = " + ".join(f"{s.n_layer} {s.name}" for s in a.stacks) + " layers"
            else:
                layers = f"{n} {'encoder ' if a.family == 'encoder-only' else ''}" \
                         f"layer{'s' if n != 1 else ''}"
            self.summary.setText(
                f"<b>{layers}</b> × {stack.n_head} "
                f"heads · C = {a.width} · T ≤ {a.block_size} · V = {a.vocab_size} · "
                f"{stack.norm}-norm · <b>{a.n_params:,} parameters</b>")
        else:
            self.summary.setText("No model loaded.")
        self._build_diagram()
        self.schedule_redraw()

    def _on_selected_token(self, i: int) -> None:
        b = self.block(self.selected) if self.selected else None
        if b is not None and self._of_encoder(b):  # its rows are source tokens
            return
        if self.detail_stack.currentWidget() is self.detail_heads and self._map is not None:
            self.detail_heads.highlight_row(i // self._map[2] if i >= 0 else i)  # pooled rows
        elif self.detail_stack.currentWidget() is self.detail_heatmap:
            self.detail_heatmap.highlight_row(i)
        if self.detail_stack.currentWidget() is self.lens_table and i >= 0:
            self.lens_table.selectColumn(i)

    def redraw_now(self) -> None:
        if not self._begin_redraw():  # hidden: drawn when shown
            return
        softmax = self.items.get("final.softmax")
        if softmax is not None:
            t = self._temperature(self.session.result)
            softmax.set_sub(f"τ = {t:g}" + (" (greedy)" if t == 0 else ""))
        self._draw_detail()

    # -- details -------------------------------------------------------------------------------
    def _explain(self, title: str, formula: str, text: str, extra: str = "") -> None:
        self.explain.setText(rich_text(title, formula, text, extra))

    def _show_text(self, text: str) -> None:
        self.detail_text.setText(text)
        self.detail_stack.setCurrentWidget(self.detail_text)

    def _draw_detail(self) -> None:
        key = self.selected
        b = self.block(key) if key else None
        r = self.session.result
        if b is None:
            s2s = self.anatomy is not None and self.anatomy.family == "encoder-decoder"
            self._explain("The model", "", OVERVIEW_S2S if s2s else OVERVIEW)
            self._show_text("Click a block of the diagram.")
            return
        stack = self.stack_of(b)
        several = self.anatomy is not None and len(self.anatomy.stacks) > 1
        of = f"{stack.name} " if several and stack is not None else ""
        where = f" — {of}layer {b.layer}" if b.layer is not None else \
            (f" — {stack.name}" if several and stack is not None else "")
        title = b.name + where
        shape = (f"<b>shape</b> {html.escape(b.shape)}<br>" if b.shape else "")
        extra = f"{shape}<b>parameters</b> {b.n_params:,}"
        kind = "embed.add" if b.key == "embed.add" else b.kind
        if isinstance(b, Positions):
            formula, text = DESCRIPTIONS[b.pos_kind]
            self._explain(title, html.escape(formula), html.escape(text), extra)
        else:
            formula, text = TEXTS.get(kind, ("", ""))
            if isinstance(b, Attention) and (b.reads or not b.causal):
                formula, text = ATTN_TEXTS["cross" if b.reads else "bidirectional"]
                if not b.reads and r is not None and getattr(r, "causal_view", False):
                    text += (" <b>Shown now under a causal mask</b> (Causal mask (as GPT) is "
                             "on): the same weights, each token seeing only itself and the "
                             "tokens before it, as in a GPT.")
            if b.kind == "softmax" and self.anatomy.family == "encoder-only":
                text = ("Softmax turns the scores at each position into probabilities over the "
                        "vocabulary; at a masked position they are the model's guess of the "
                        "hidden token. Shown: the most likely tokens at the position the "
                        "prediction is shown for.")
            if b.kind == "softmax":
                formula += f",&nbsp; τ = {self._temperature(r):g}"
            self._explain(title, formula, text, extra)
        if r is None:
            self._show_text("Type a prompt to see live values.")
            return
        draw = {"tok_emb": self._d_tok, "pos": self._d_pos, "add": self._d_add, "ln": self._d_ln,
                "attn": self._d_attn, "ffn": self._d_ffn, "unembed": self._d_lens,
                "softmax": self._d_softmax}.get(b.kind)
        if draw is None:
            self._show_text(" ")
            return
        draw(b, r)

    @staticmethod
    def recorded(b: Box, r, name: str) -> np.ndarray | None:
        """The StepResult array ``name`` as far as the anatomy says it belongs to box ``b``
        (its row for per-layer arrays); None when ``b`` has none or it was not captured.
        ``name`` also finds the encoder's and the cross-attention's own arrays of that kind
        (``encoder_attention``, ``cross_attention`` for "attention", ``cross_out`` for
        "attn_out", ``encoder_ffn`` for "ffn", …)."""
        rec = next((x for x in b.recorded if _same_kind(x.field, name)), None)
        value = getattr(r, rec.field, None) if rec is not None else None
        if value is None or rec.index is None:
            return value
        return value[rec.index]

    def _labels(self, r, b: Box | None = None) -> list[str]:
        """The tokens ``b``'s rows are about: the source for an encoder–decoder's encoder,
        else the context (the target)."""
        if b is not None and self._of_encoder(b):
            return list(r.source_pieces or [])
        return r.pieces

    def _temperature(self, r) -> float:
        return float((r.sample if r is not None else self.session.sample).temperature)

    def _heat(self, m: np.ndarray, r, col_title: str, name: str, row_labels=None,
              levels=None, cmap: str = "", b: Box | None = None) -> None:
        hm = self.detail_heatmap
        hm.name = name
        hm.plot.setLabel("bottom", col_title, **{"font-size": css_pt(11)})
        hm.col_axis.numeric = True
        hm.set_colormap(cmap or DIVERGING_CMAP)
        m = np.asarray(m, dtype=np.float32)
        source = b is not None and self._of_encoder(b)
        hm.set_matrix(m, levels=levels or symmetric_levels(m),
                      row_labels=row_labels if row_labels is not None else self._labels(r, b),
                      col_labels=[str(j) for j in range(m.shape[1])])
        # the selected token is a target token: no row of the source to mark
        hm.highlight_row(self.session.selected_token if row_labels is None and not source
                         else -1)
        self.detail_stack.setCurrentWidget(hm)

    def _d_tok(self, b, r) -> None:
        emb = self.recorded(b, r, "tok_emb")
        if emb is None:
            return self._show_text("Embeddings were not captured.")
        self._heat(emb, r, "dimension", "token-embedding", b=b)

    def _d_pos(self, b, r) -> None:
        if not b.additive:
            msg = ("Rotary encoding adds nothing to the input: it rotates every query and key "
                   "inside attention. See the Positional encoding panel." if b.pos_kind == "rotary"
                   else "This model has no positional encoding: see the Positional encoding "
                        "panel for what it has instead.")
            return self._show_text(msg)
        emb = self.recorded(b, r, "pos_emb")
        if emb is None:
            return self._show_text("Embeddings were not captured.")
        self._heat(emb, r, "dimension", "position-embedding", b=b)

    def residual_norms(self, r=None, encoder: bool = False) -> np.ndarray | None:
        """(L+1, T) length of each token's residual vector after the embedding and each layer
        (``encoder``: of an encoder–decoder's encoder, (Le+1, S)); None if not captured."""
        r = r if r is not None else self.session.result
        x = r.encoder_residual if encoder else r.residual
        if x is None:
            return None
        return np.linalg.norm(np.asarray(x, dtype=np.float64), axis=-1).astype(np.float32)

    def _d_add(self, b, r) -> None:
        if b.skip is None:  # the embedding sum: its vectors
            x = self.recorded(b, r, "residual")
            if x is None:
                return self._show_text("The residual stream was not captured.")
            return self._heat(x, r, "dimension", "embedding-sum", b=b)
        norms = self.residual_norms(r, encoder=self._of_encoder(b))
        if norms is None:
            return self._show_text("The residual stream was not captured.")
        rows = ["embedding"] + [f"after layer {i}" for i in range(norms.shape[0] - 1)]
        hm = self.detail_heatmap
        hm.name = "residual-norms"
        hm.plot.setLabel("bottom", "token", **{"font-size": css_pt(11)})
        hm.col_axis.numeric = False
        hm.set_colormap(PROB_CMAP)
        hm.set_matrix(norms, levels=(0.0, float(norms.max()) or 1.0), row_labels=rows,
                      col_labels=self._labels(r, b))
        hm.highlight_row(b.layer + 1 if b.layer is not None else 0)
        self.detail_stack.setCurrentWidget(hm)

    def ln_stats(self, b: Box, r=None) -> np.ndarray | None:
        """(T, 2): mean and standard deviation of the vector entering this LayerNorm."""
        return self.recorded(b, r if r is not None else self.session.result, "norm_stats")

    def _series(self, r, labels, series: list[tuple[str, np.ndarray, str]], y_title: str,
                name: str, bars: bool = False) -> None:
        sp = self.detail_series
        sp.name = name
        plot = sp.plot
        for it in self._series_items:
            plot.removeItem(it)
        self._series_items = []
        self.series_legend.clear()
        self.stats_axis.set_labels(labels)
        t = len(labels)
        x = np.arange(t, dtype=float)
        for label, y, colour in series:
            if bars:
                it = pg.BarGraphItem(x=x, height=y, width=0.7, brush=colour)
            else:
                it = pg.PlotDataItem(x, y, pen=pg.mkPen(colour, width=2), symbol="o",
                                     symbolSize=6, symbolBrush=colour, symbolPen=None)
            plot.addItem(it)
            self._series_items.append(it)
            self.series_legend.addItem(it, label)
        plot.setLabel("left", y_title, **{"font-size": css_pt(11)})
        plot.setLabel("bottom", "")
        plot.enableAutoRange()
        sp.set_table(np.column_stack([s[1] for s in series]) if series else np.zeros((0, 0)),
                     labels, [s[0] for s in series])
        self.detail_stack.setCurrentWidget(sp)

    def _d_ln(self, b, r) -> None:
        stats = self.ln_stats(b, r)
        if stats is None:
            return self._show_text("What enters the layer norms was not captured.")
        mu, sd = stats[:, 0], stats[:, 1]
        self._series(r, self._labels(r, b), [("mean μ", mu, THEME.accent),
                                          ("std σ", sd, THEME.accent2)],
                     "entering the norm", "layernorm-stats")

    def ablates(self, b: Box) -> bool:
        """Whether a click on a head of ``b``'s map switches that head off: the self-attention
        of the stack that predicts (a GPT's, an encoder's, an encoder–decoder's decoder's),
        whose heads the session's ablation names by layer and head."""
        return (isinstance(b, Attention) and not b.reads and self.anatomy is not None
                and self.stack_of(b) is self.anatomy.stacks[-1])

    def _d_attn(self, b, r) -> None:
        a = self.recorded(b, r, "attention")  # (H, Tq, Tk)
        if a is None:
            return self._show_text("Attention was not captured.")
        a = np.asarray(a, dtype=np.float32)
        H, Tq, Tk = a.shape
        rows = self._labels(r, b)
        cols = list(r.source_pieces or []) if b.reads else rows
        hm = self.detail_heads
        source_rows = self._of_encoder(b)
        query = "source token (query)" if source_rows else (
            "target token (query)" if b.reads or len(self.anatomy.stacks) > 1 else "query")
        keys = "source" if b.reads or source_rows else "keys"
        # an encoder's self-attention shown under a causal mask for comparison
        causal = b.causal or (not b.reads and bool(getattr(r, "causal_view", False)))
        head = self.head if self.head is not None and not self.ablates(b) else None
        if head is not None and head < H:  # one head alone, its keys labelled
            img = a[head].copy()
            if causal:
                img[causal_future(Tq, Tk)] = np.nan
            hm.col_axis.cell = 1
            hm.row_axis.numeric = False
            hm.plot.setLabel("bottom", f"head {head}: source tokens (keys) — click for all heads",
                             **{"font-size": css_pt(TICK_PT)})
            hm.set_matrix(img, levels=(0.0, 1.0), row_labels=rows, col_labels=cols)
            self._heads_lines.setData([], [])
            self._map = (b, head, 1, Tk, rows, cols)
            factor = 1
        else:
            # a GPT-2's 12 heads at 1,024 tokens would be a 1,024 × 12,288 image (50 MB, and
            # as much again inside the heatmap): cells are max-pooled to fit MAX_MOSAIC
            factor = max(1, math.ceil(max(Tq, H * Tk) / MAX_MOSAIC))
            if factor == 1:
                img = mosaic(a[None])  # (Tq, H*Tk)
                if causal:
                    img[np.tile(causal_future(Tq, Tk), (1, H))] = np.nan
            else:
                cells = np.where(causal_future(Tq, Tk), np.float32(np.nan), a) if causal else a
                img = mosaic(pool_cells(cells, factor, "max")[None])
            tq, tk = -(-Tq // factor), -(-Tk // factor)
            hm.col_axis.cell = tk
            within = f"{keys}, pooled {factor}×{factor}" if factor > 1 else f"{keys} within each"
            hm.plot.setLabel("bottom", f"head ({within})",
                             **{"font-size": css_pt(TICK_PT)})
            # a pooled row starts at query i·factor: its label says so (not the row's index)
            hm.row_axis.numeric = factor > 1
            hm.set_matrix(img, levels=(0.0, 1.0),
                          row_labels=rows if factor == 1 else
                          [f"{i} {rows[i]}" for i in range(0, Tq, factor)],
                          col_labels=[f"H{h}" for h in range(H)])
            xs, ys = [], []
            for h in range(1, H):
                xs += [h * tk, h * tk]
                ys += [0, tq]
            self._heads_lines.setData(np.asarray(xs, float), np.asarray(ys, float),
                                      connect="pairs")
            self._map = (b, None, factor, tk, rows, cols)
        hm.plot.setLabel("left", query, **{"font-size": css_pt(TICK_PT)})
        selected = self.session.selected_token
        hm.highlight_row(-1 if source_rows or selected < 0 else selected // factor)
        self.detail_stack.setCurrentWidget(hm)

    def _d_ffn(self, b, r) -> None:
        h = self.recorded(b, r, "ffn")
        if h is None:
            return self._show_text("FFN activations were not captured.")
        self._heat(h, r, f"hidden unit (after {b.activation.upper()})", f"ffn-layer{b.layer}",
                   b=b)

    def _d_lens(self, b, r) -> None:
        ids, probs = self.recorded(b, r, "lens_ids"), self.recorded(b, r, "lens_probs")
        if ids is None or probs is None:
            return self._show_text("The logit lens was not captured.")
        self.lens_model.set_data(np.asarray(ids), np.asarray(probs), self._labels(r),
                                 self.session.tokenizer)
        self.detail_stack.setCurrentWidget(self.lens_table)
        if r.T:
            self.lens_table.scrollTo(self.lens_model.index(0, r.T - 1))

    def _d_softmax(self, b, r) -> None:
        ids, p = r.dist.top(10)
        labels = self.session.tokenizer.token_pieces(ids.tolist())
        self._series(r, labels, [(f"p at τ = {self._temperature(r):g}",
                                  np.asarray(p, dtype=np.float32), THEME.accent)],
                     "probability", "next-token", bars=True)

    # -- hover ---------------------------------------------------------------------------------
    def _on_detail_hover(self, row: int, col: int) -> None:
        t = self.detail_heatmap.export_table()
        if row < 0 or t is None:
            self.hover_label.setText(" ")
            return
        m, rows, cols = t
        self.hover_label.setText(f"{rows[row]} · {cols[col]}: {m[row, col]:+.3f}")

    def _on_heads_hover(self, row: int, col: int) -> None:
        d = self.detail_heads.display
        if row < 0 or self._map is None or d is None:
            self.hover_label.setText(" ")
            return
        b, head, factor, tk, rows, cols = self._map
        h, k = (head, col) if head is not None else (col // tk, col % tk * factor)
        v = d[row, col]
        val = "masked" if not np.isfinite(v) else f"{v:.2f}"
        row *= factor
        if factor > 1:  # a pooled cell: the largest weight of its factor × factor block
            val = f"{val} (largest of {factor}×{factor})"
        if head is not None:
            what = "click: all heads"
        elif self.ablates(b):
            what = f"click: switch head {h} off (or back on)"
        else:
            what = f"click: head {h} alone"
        q = rows[row] if row < len(rows) else ""
        key = cols[k] if k < len(cols) else ""
        self.hover_label.setText(f"head {h} · query '{q}' @{row} → key '{key}' @{k}: "
                                 f"{val} — {what}")

    def _on_heads_click(self, row: int, col: int) -> None:
        """Switch the clicked head of the attention block shown off, or back on (ablation);
        for a block whose heads the ablation does not reach (an encoder–decoder's encoder and
        cross-attention), show the clicked head alone, or all heads again."""
        if self._map is None or self.session.result is None:
            return
        b, head, _factor, tk, _rows, _cols = self._map
        if b.layer is None or tk == 0:
            return
        if self.ablates(b):
            self.session.toggle_head(b.layer, col // tk)
            return
        self.head = None if head is not None else col // tk
        self._draw_detail()
