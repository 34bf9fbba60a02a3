"""The architecture diagram: the model's blocks, counted from its parameters, drawn as rows.

:func:`model_blocks` lists the blocks of a loaded GPT in reading order with the parameters that
belong to each (tied weights counted once, so the counts add up to ``model.num_params()``).
:class:`Diagram` draws them: the input row (token embedding + positions), one row per decoder
layer (pre-norm: LN, attention, +, LN, FFN, +; post-norm: attention, +, LN, FFN, +, LN) with the
residual connections as arcs above, and the output row (final LN, unembedding, softmax).
Repeated layers can be collapsed into one box.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from explorer.theme import THEME, pt
from explorer.widgets.layout import TEXT_PT

# -- what the model is made of -----------------------------------------------------------------


@dataclass(frozen=True)
class BlockSpec:
    """One box of the diagram. ``n_params`` counts the model's parameters that belong to it."""

    key: str  # "embed.tok", "L3.attn", "final.softmax", …
    kind: str  # tok_emb | pos | add | ln | attn | ffn | unembed | softmax | other
    title: str
    sub: str  # second line in the box: the shape of its weights or what it does
    shape: str  # input → output shapes
    layer: int | None = None
    n_params: int = 0
    param_names: tuple[str, ...] = ()


def _fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return f"{n:,}"


_LAYER_PARAM = re.compile(r"^h\.(\d+)\.(ln_1|attn|ln_2|mlp)\.")


def _param_owner(name: str, norm: str) -> str:
    m = _LAYER_PARAM.match(name)
    if m:
        part = {"ln_1": "ln_1", "attn": "attn", "ln_2": "ln_2", "mlp": "ffn"}[m.group(2)]
        return f"L{m.group(1)}.{part}"
    for prefix, key in (("wte.", "embed.tok"), ("pe.", "embed.pos"), ("ln_f.", "final.ln"),
                        ("lm_head.", "final.unembed")):
        if name.startswith(prefix):
            return key
    return "other"


def model_blocks(model) -> list[BlockSpec]:
    """The diagram's blocks in reading order, with parameters counted from ``model``.

    Shared (tied) tensors are counted once, as ``model.parameters()`` does, so the counts add up
    to ``model.num_params()``.
    """
    cfg = model.config
    C, V, F, H, hs = cfg.n_embd, cfg.vocab_size, cfg.n_ffn, cfg.n_head, cfg.head_size
    owners: dict[str, list[tuple[str, int]]] = {}
    for name, p in model.named_parameters():  # deduplicates tied weights
        owners.setdefault(_param_owner(name, cfg.norm), []).append((name, p.numel()))

    def spec(key, kind, title, sub, shape, layer=None):
        ps = owners.get(key, [])
        return BlockSpec(key, kind, title, sub, shape, layer, sum(n for _, n in ps),
                         tuple(n for n, _ in ps))

    kind = getattr(model.pe, "kind", cfg.pos_kind)
    additive = bool(getattr(model.pe, "additive", False))
    pos_title = {"learned": "Learned positions", "sinusoidal": "Sinusoidal positions",
                 "rotary": "Rotary positions", "none": "No positions"}[kind]
    pos_sub = {"learned": f"table {cfg.block_size}×{C}", "sinusoidal": "fixed sin/cos, no weights",
               "rotary": "rotates q, k in attention", "none": "order only via the mask"}[kind]
    blocks = [spec("embed.tok", "tok_emb", "Token embedding", f"E: {V}×{C}", f"(T) → (T, {C})"),
              spec("embed.pos", "pos", pos_title, pos_sub,
                   f"(T) → (T, {C})" if additive else "—")]
    if additive:
        blocks.append(spec("embed.add", "add", "+", "E[token] + PE[pos]", f"(T, {C})"))
    ln = f"γ, β: {C}"
    for i in range(cfg.n_layer):
        p = f"L{i}."
        attn = spec(p + "attn", "attn", "Multi-head attention", f"{H} heads × {hs}",
                    f"(T, {C}) → (T, {C})", i)
        ffn = spec(p + "ffn", "ffn", "Feed-forward", f"{C} → {F} → {C}", f"(T, {C}) → (T, {C})",
                   i)
        ln1 = spec(p + "ln_1", "ln", "LayerNorm", ln, f"(T, {C})", i)
        ln2 = spec(p + "ln_2", "ln", "LayerNorm", ln, f"(T, {C})", i)
        add1 = spec(p + "add_1", "add", "+", "residual", f"(T, {C})", i)
        add2 = spec(p + "add_2", "add", "+", "residual", f"(T, {C})", i)
        blocks += [ln1, attn, add1, ln2, ffn, add2] if cfg.norm == "pre" else \
            [attn, add1, ln1, ffn, add2, ln2]
    if cfg.norm == "pre":
        blocks.append(spec("final.ln", "ln", "Final LayerNorm", ln, f"(T, {C})"))
    tied = cfg.tie_weights
    blocks.append(spec("final.unembed", "unembed", "Unembedding",
                       f"Eᵀ (tied): {C}×{V}" if tied else f"W_U: {C}×{V}", f"(T, {C}) → (T, {V})"))
    blocks.append(spec("final.softmax", "softmax", "Softmax ÷ τ", "probabilities",
                       f"({V}) → ({V})"))
    if "other" in owners:
        blocks.append(spec("other", "other", "Other parameters", "", ""))
    return blocks


KIND_COLOURS = {"tok_emb": "#2f6f5a", "pos": "#2f6f5a", "add": "#3a3f4b", "ln": "#4a5263",
                "attn": "#2d5b87", "ffn": "#6b4c8f", "unembed": "#7d6530", "softmax": "#7d6530",
                "other": "#3a3f4b"}

# -- diagram items -----------------------------------------------------------------------------
BOX_H = 44
BOX_TOP = 20  # boxes sit this far below the top of their row; residual arcs run above
ROW_H = 72
GAP = 24
X0 = 104


class BlockItem(QGraphicsItem):
    """A clickable box (or a circle for ⊕) with a title and a second line."""

    def __init__(self, spec: BlockSpec, width: float, on_click, circle: bool = False,
                 dashed: bool = False):
        super().__init__()
        self.spec = spec
        self.width = width
        self.circle = circle
        self.dashed = dashed
        self.selected = False
        self._sub: str | None = None
        self._on_click = on_click
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._hover = False
        tip = [spec.title if spec.title != "+" else "Residual addition", spec.sub]
        if spec.shape:
            tip.append(f"shape: {spec.shape}")
        tip.append(f"parameters: {spec.n_params:,}")
        self.setToolTip("\n".join(t for t in tip if t))

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-2, -2, self.width + 4, BOX_H + 4)

    def paint(self, p: QPainter, _opt, _widget=None) -> None:
        col = QColor(KIND_COLOURS.get(self.spec.kind, "#3a3f4b"))
        if self._hover:
            col = col.lighter(125)
        pen = QPen(QColor(THEME.accent2) if self.selected else QColor(THEME.grid).lighter(150),
                   3 if self.selected else 1.2)
        if self.dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
            col.setAlpha(110)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(pen)
        p.setBrush(QBrush(col))
        r = QRectF(0, 0, self.width, BOX_H)
        if self.circle:
            d = self.width
            p.drawEllipse(QRectF(0, (BOX_H - d) / 2, d, d))
            f = QFont()
            f.setPointSizeF(pt(TEXT_PT + 3))
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor(THEME.text))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "+")
            return
        p.drawRoundedRect(r, 7, 7)
        p.setPen(QColor(THEME.text))
        p.setFont(_title_font())
        top = QRectF(4, 3, self.width - 8, BOX_H / 2)
        p.drawText(top, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   self.spec.title)
        p.setFont(_sub_font())
        p.setPen(QColor(THEME.text).darker(115))
        bottom = QRectF(4, BOX_H / 2 - 1, self.width - 8, BOX_H / 2 - 2)
        p.drawText(bottom, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   self.sub)

    @property
    def sub(self) -> str:
        return self._sub if self._sub is not None else self.spec.sub

    def set_sub(self, text: str | None) -> None:
        """Replace the second line (e.g. the softmax box shows the current temperature)."""
        if text != self._sub:
            self._sub = text
            self.update()

    def set_selected(self, on: bool) -> None:
        self.selected = on
        self.update()

    def hoverEnterEvent(self, ev):  # noqa: N802
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, ev):  # noqa: N802
        self._hover = False
        self.update()

    def mousePressEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            self._on_click(self.spec.key)
            ev.accept()


class _ClickText(QGraphicsSimpleTextItem):
    def __init__(self, text: str, on_click, key: str):
        super().__init__(text)
        self._on_click, self.key = on_click, key
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def mousePressEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            self._on_click(self.key)
            ev.accept()


def _title_font() -> QFont:
    f = QFont()
    f.setPointSizeF(pt(TEXT_PT - 1))
    f.setBold(True)
    return f


def _sub_font() -> QFont:
    f = QFont()
    f.setPointSizeF(pt(TEXT_PT - 2))
    return f


def _box_width(spec: BlockSpec) -> float:
    if spec.kind == "add":
        return 34.0
    w = max(QFontMetricsF(_title_font()).horizontalAdvance(spec.title),
            QFontMetricsF(_sub_font()).horizontalAdvance(spec.sub))
    return max(78.0, w + 20)


def _arrow(path_pts: list[QPointF], colour: str, width: float = 1.6, dashed=False,
           head: bool = True) -> QGraphicsPathItem:
    path = QPainterPath(path_pts[0])
    for point in path_pts[1:]:
        path.lineTo(point)
    if head and len(path_pts) >= 2:
        a, b = path_pts[-2], path_pts[-1]
        d = b - a
        n = max((d.x() ** 2 + d.y() ** 2) ** 0.5, 1e-6)
        ux, uy = d.x() / n, d.y() / n
        s = 7.0
        left = QPointF(b.x() - s * ux + s * 0.5 * uy, b.y() - s * uy - s * 0.5 * ux)
        right = QPointF(b.x() - s * ux - s * 0.5 * uy, b.y() - s * uy + s * 0.5 * ux)
        path.addPolygon(QPolygonF([b, left, right, b]))
    item = QGraphicsPathItem(path)
    pen = QPen(QColor(colour), width)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    item.setPen(pen)
    item.setZValue(-1)
    return item


class Diagram(QGraphicsView):
    """The model as rows of clickable blocks; ``block_clicked(key)`` when one is clicked."""

    block_clicked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setBackgroundBrush(QBrush(QColor(THEME.background)))
        self.blocks: list[BlockSpec] = []
        self.items: dict[str, BlockItem] = {}  # the blocks drawn, by key
        self.selected: str | None = None

    def _clicked(self, key: str) -> None:
        self.block_clicked.emit(key)

    def set_selected(self, key: str | None, scroll: bool = True) -> None:
        """Mark ``key``'s block; ``scroll``: bring it into view."""
        if self.selected in self.items:
            self.items[self.selected].set_selected(False)
        self.selected = key
        if key in self.items:
            self.items[key].set_selected(True)
            if scroll:
                self.ensureVisible(self.items[key], 20, 20)

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self.fit()

    def build(self, blocks: list[BlockSpec], norm: str, layers: list[int]) -> None:
        """Draw ``blocks`` (from :func:`model_blocks`); ``layers``: the layers drawn in full,
        the ones in between become one "more layers" box."""
        self.blocks = blocks
        self.scene().clear()
        self.items = {}
        if not blocks:
            return
        by_key = {b.key: b for b in blocks}
        muted, accent = THEME.muted, THEME.accent
        rows: list[tuple[str, str, list[BlockSpec] | None]] = []
        rows.append(("Input", "embed.add" if "embed.add" in by_key else "embed.tok",
                     [b for b in self.blocks if b.key.startswith("embed.")]))
        prev = -1
        for i in layers:
            if i - prev > 1:
                rows.append((f"Layers {prev + 1}–{i - 1}", f"collapsed:{prev + 1}:{i - 1}", None))
            rows.append((f"Layer {i}", f"L{i}.add_2", [b for b in self.blocks if b.layer == i]))
            prev = i
        rows.append(("Output", "final.softmax",
                     [b for b in self.blocks if b.key.startswith("final.")]))

        y = 10.0
        prev_out: QPointF | None = None
        max_x = 0.0
        for label, _out_key, specs in rows:
            yc = y + BOX_TOP + BOX_H / 2
            if specs is None:
                click = _out_key  # expands the collapsed layers
            elif label.startswith("Layer "):
                click = _out_key  # the residual stream after this layer
            else:
                click = specs[0].key
            lab = _ClickText(label, self._clicked, click)
            lab.setFont(_title_font())
            lab.setBrush(QBrush(QColor(THEME.text)))
            lab.setPos(8, yc - lab.boundingRect().height() / 2)
            self.scene().addItem(lab)
            start = QPointF(X0 - 14, yc)
            if prev_out is not None:  # the snake: down from the last row's end, back to the left
                gap_y = y + 4
                self.scene().addItem(_arrow([prev_out, QPointF(prev_out.x(), gap_y),
                                           QPointF(start.x(), gap_y), start], muted, head=False))
            if specs is None:  # collapsed layers
                a, b = (int(s) for s in _out_key.split(":")[1:])
                n = b - a + 1
                per = sum(s.n_params for s in self.blocks if s.layer == a)
                spec = BlockSpec(_out_key, "other", f"{n} more layers of the same shape",
                                 f"{n} × {_fmt_count(per)} parameters · click to expand", "",
                                 None, n * per)
                item = BlockItem(spec, 560, self._clicked, dashed=True)
                item.setPos(X0, y + BOX_TOP)
                self.scene().addItem(item)
                self.scene().addItem(_arrow([start, QPointF(X0, yc)], muted))
                prev_out = QPointF(X0 + 560, yc)
                max_x = max(max_x, X0 + 560)
                y += ROW_H
                continue
            x = float(X0)
            placed: dict[str, BlockItem] = {}
            if label == "Input":
                prev_out = self._input_row(specs, x, y, yc, placed)
            else:
                last = start
                for s in specs:
                    w = _box_width(s)
                    item = BlockItem(s, w, self._clicked, circle=s.kind == "add")
                    item.setPos(x, y + BOX_TOP)
                    self.scene().addItem(item)
                    placed[s.key] = item
                    self.scene().addItem(_arrow([last, QPointF(x, yc)], muted))
                    last = QPointF(x + w, yc)
                    x += w + GAP
                if label.startswith("Layer"):
                    self._residual_arcs(specs, placed, start, y, norm, accent)
                    n = sum(s.n_params for s in specs)
                    t = QGraphicsSimpleTextItem(f"{_fmt_count(n)} params")
                    t.setFont(_sub_font())
                    t.setBrush(QBrush(QColor(muted)))
                    t.setPos(x - GAP + 10, yc - t.boundingRect().height() / 2)
                    self.scene().addItem(t)
                    max_x = max(max_x, x - GAP + 14 + t.boundingRect().width())
                else:  # output row: an arrow to "next token"
                    t = QGraphicsSimpleTextItem("next token")
                    t.setFont(_title_font())
                    t.setBrush(QBrush(QColor(THEME.text)))
                    self.scene().addItem(_arrow([last, QPointF(x, yc)], muted))
                    t.setPos(x + 6, yc - t.boundingRect().height() / 2)
                    self.scene().addItem(t)
                    max_x = max(max_x, x + 100)
                prev_out = last
            self.items.update(placed)
            max_x = max(max_x, x)
            y += ROW_H
        self.scene().setSceneRect(QRectF(0, 0, max_x + 10, y))
        self.fit()
        # a new diagram starts at its input row (the scroll position of the old one is stale)
        self.verticalScrollBar().setValue(self.verticalScrollBar().minimum())
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().minimum())
        if self.selected in self.items:
            self.items[self.selected].set_selected(True)

    def _input_row(self, specs, x, y, yc, placed) -> QPointF:
        """[Token embedding] → (+) ← [Positions]; rotary/none: a dashed, unconnected box."""
        muted = THEME.muted
        tok = next(s for s in specs if s.key == "embed.tok")
        pos = next(s for s in specs if s.key == "embed.pos")
        add = next((s for s in specs if s.key == "embed.add"), None)
        w = _box_width(tok)
        it = BlockItem(tok, w, self._clicked)
        it.setPos(x, y + BOX_TOP)
        placed[tok.key] = it
        self.scene().addItem(it)
        out = QPointF(x + w, yc)
        x += w + GAP
        if add is not None:
            a = BlockItem(add, _box_width(add), self._clicked, circle=True)
            a.setPos(x, y + BOX_TOP)
            placed[add.key] = a
            self.scene().addItem(a)
            self.scene().addItem(_arrow([out, QPointF(x, yc)], muted))
            out = QPointF(x + 34, yc)
            x += 34 + GAP
            pw = _box_width(pos)
            p = BlockItem(pos, pw, self._clicked)
            p.setPos(x, y + BOX_TOP)
            self.scene().addItem(_arrow([QPointF(x, yc), QPointF(x - GAP, yc)], muted))
            # the sum continues below the circle
            out = QPointF(x - GAP - 17, y + BOX_TOP + BOX_H / 2 + 17)
        else:
            pw = _box_width(pos)
            p = BlockItem(pos, pw, self._clicked, dashed=True)
            p.setPos(x + 20, y + BOX_TOP)
        placed[pos.key] = p
        self.scene().addItem(p)
        return out

    def _residual_arcs(self, specs, placed, start: QPointF, y: float, norm: str,
                       colour: str) -> None:
        """Skip connections drawn above the boxes: from the row's input to the first +, and
        from there (pre-norm) or from after the first LayerNorm (post-norm) to the second +."""
        adds = [s.key for s in specs if s.kind == "add"]
        if len(adds) != 2:
            return
        top = y + 7
        a1, a2 = placed[adds[0]], placed[adds[1]]
        src2 = a1 if norm == "pre" else placed[[s.key for s in specs if s.kind == "ln"][0]]

        def centre_top(item):
            return QPointF(item.pos().x() + item.width / 2, item.pos().y() + (BOX_H - 34) / 2)

        def centre_x(item, frac=0.5):
            return item.pos().x() + item.width * frac

        s1 = QPointF(start.x(), start.y())
        self.scene().addItem(_arrow([s1, QPointF(s1.x(), top), QPointF(centre_x(a1), top),
                                   centre_top(a1)], colour, 1.8))
        x2 = centre_x(src2, 1.0) + GAP * 0.4  # branches off the arrow leaving src2
        self.scene().addItem(_arrow([QPointF(x2, start.y()), QPointF(x2, top),
                                   QPointF(centre_x(a2), top), centre_top(a2)], colour, 1.8))
        t = QGraphicsSimpleTextItem("residual")
        t.setFont(_sub_font())
        t.setBrush(QBrush(QColor(colour)))
        t.setPos(s1.x() + 6, top - 13)
        self.scene().addItem(t)

    def fit(self) -> None:
        """Shrink the diagram to the view's width (not below 60 %); scroll vertically."""
        rect = self.scene().sceneRect()
        if rect.width() <= 0:
            return
        avail = self.viewport().width() - 4
        s = min(1.0, max(0.6, avail / rect.width()))
        bar = self.verticalScrollBar()
        at_top = bar.value() == bar.minimum()
        self.resetTransform()
        self.scale(s, s)  # anchored at the view's centre: this would scroll a view at its top
        if at_top:
            bar.setValue(bar.minimum())
