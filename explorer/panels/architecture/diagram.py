"""The architecture diagram: the model's anatomy (:mod:`model.anatomy`) drawn as boxes.

:class:`Diagram` draws an :class:`~model.anatomy.Anatomy`. A one-stack model (a decoder-only GPT,
a BERT-style encoder) is drawn as rows: an input row (token embedding + positions), one row per
layer (pre-norm: LN, attention, +, LN, FFN, +; post-norm: attention, +, LN, FFN, +, LN) with its
residual connections as arcs above, and the output row (final LN, unembedding, softmax). An
encoder–decoder is drawn as in Vaswani et al.'s Figure 1: two columns side by side, the encoder
on the left and the decoder on the right, data flowing down each column, the residual
connections on the outer sides, and an arrow from the encoder's output into the
cross-attention of every decoder layer. Repeated layers can be collapsed into one box.
"""
from __future__ import annotations

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
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from explorer.theme import THEME, pt
from explorer.widgets.layout import TEXT_PT
from model.anatomy import Add, Anatomy, Attention, Box, Layer, Positions, Stack, TokenEmbedding


def _fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return f"{n:,}"


KIND_COLOURS = {"tok_emb": "#2f6f5a", "pos": "#2f6f5a", "add": "#3a3f4b", "ln": "#4a5263",
                "attn": "#2d5b87", "ffn": "#6b4c8f", "unembed": "#7d6530", "softmax": "#7d6530",
                "other": "#3a3f4b"}

# -- diagram items -----------------------------------------------------------------------------
BOX_H = 44
BOX_TOP = 20  # boxes sit this far below the top of their row; residual arcs run above
ROW_H = 72
GAP = 24
X0 = 104
# the columns of an encoder–decoder
V_GAP = 12  # between the boxes of a column
SLIM_H = 28  # a column's layer norms (title only) and residual sums
RAIL = 20  # the residual connections run this far beside a column's boxes
FRAME_TOP = 30  # a layer's frame: room for its name above its first box
BUS = 9  # between the cross-attention arrows in the gutter between the columns


class BlockItem(QGraphicsItem):
    """A clickable box (or a circle for ⊕) with a title and a second line."""

    def __init__(self, box: Box, width: float, on_click, circle: bool = False,
                 dashed: bool = False, height: float = BOX_H):
        super().__init__()
        self.box = box
        self.detail = _detail(box)  # the second line (a box lower than BOX_H has none)
        self.width = width
        self.height = height
        self.circle = circle
        self.dashed = dashed
        self.selected = False
        self._sub: str | None = None
        self._on_click = on_click
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._hover = False
        tip = [box.name, self.detail]
        if box.shape:
            tip.append(f"shape: {box.shape}")
        tip.append(f"parameters: {box.n_params:,}")
        self.setToolTip("\n".join(t for t in tip if t))

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-2, -2, self.width + 4, self.height + 4)

    def paint(self, p: QPainter, _opt, _widget=None) -> None:
        col = QColor(KIND_COLOURS.get(self.box.kind, "#3a3f4b"))
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
        r = QRectF(0, 0, self.width, self.height)
        if self.circle:
            d = self.width
            p.drawEllipse(QRectF(0, (self.height - d) / 2, d, d))
            f = QFont()
            f.setPointSizeF(pt(TEXT_PT + 3 if d >= 34 else TEXT_PT + 1))
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor(THEME.text))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "+")
            return
        p.drawRoundedRect(r, 7, 7)
        p.setPen(QColor(THEME.text))
        p.setFont(_title_font())
        if self.height < BOX_H:  # one line: the title
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, self.box.title)
            return
        top = QRectF(4, 3, self.width - 8, BOX_H / 2)
        p.drawText(top, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   self.box.title)
        p.setFont(_sub_font())
        p.setPen(QColor(THEME.text).darker(115))
        bottom = QRectF(4, BOX_H / 2 - 1, self.width - 8, BOX_H / 2 - 2)
        p.drawText(bottom, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   self.sub)

    @property
    def sub(self) -> str:
        return self._sub if self._sub is not None else self.detail

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
            self._on_click(self.box.key)
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


def _detail(box: Box) -> str:
    """A box's second line: the anatomy's detail, and for attention what it attends to when
    that is not the causal self-attention of a GPT."""
    if isinstance(box, Attention):
        if box.reads:
            return f"{box.detail} · K, V from the {box.reads}"
        if not box.causal:
            return f"bidirectional · {box.detail}"
    return box.detail


def _box_width(box: Box) -> float:
    if box.kind == "add":
        return 34.0
    w = max(QFontMetricsF(_title_font()).horizontalAdvance(box.title),
            QFontMetricsF(_sub_font()).horizontalAdvance(_detail(box)))
    return max(78.0, w + 20)


def _column_width(stack: Stack, head: tuple[Box, ...] = ()) -> float:
    """One width for the boxes of a column (the positions box sits beside them)."""
    boxes = [b for b in stack.boxes() if b.kind not in ("add", "pos")] + list(head)
    return max(_box_width(b) for b in boxes)


def drawn_layers(layers: list[int], n: int) -> list[int]:
    """The layers of an ``n``-layer stack that ``layers`` names (negative: from the end)."""
    return sorted({i % n for i in layers if -n <= i < n})


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


def _last_add(layer: Layer) -> Add:
    return [b for b in layer.boxes if isinstance(b, Add)][-1]


def _layer_runs(stack: Stack, layers: list[int]) -> list[tuple[int, Layer | tuple[Layer, ...]]]:
    """The stack's layers in order: each layer ``layers`` names, and each run of the others
    between (or after) them as one tuple of layers."""
    out: list[tuple[int, Layer | tuple[Layer, ...]]] = []
    prev = -1
    shown = drawn_layers(layers, stack.n_layer)
    for i in [*shown, stack.n_layer]:
        if i - prev > 1:
            out.append((prev + 1, stack.layers[prev + 1:i]))
        if i < stack.n_layer:
            out.append((i, stack.layers[i]))
        prev = i
    return out


@dataclass(frozen=True)
class _Row:
    """One row of the diagram: its label, the key a click on the label selects, and what it
    holds (``collapsed``: the layers a collapsed row stands for)."""

    label: str
    click: str
    kind: str  # input | layer | collapsed | closing | output
    boxes: tuple[Box, ...]
    collapsed: tuple[Layer, ...] = ()


class Diagram(QGraphicsView):
    """The model as rows of clickable blocks; ``block_clicked(key)`` when one is clicked."""

    block_clicked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setBackgroundBrush(QBrush(QColor(THEME.background)))
        self.anatomy: Anatomy | None = None
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

    def build(self, anatomy: Anatomy | None, layers: list[int]) -> None:
        """Draw ``anatomy``; ``layers``: the layers of each stack drawn in full, the ones in
        between become one "more layers" box."""
        self.anatomy = anatomy
        self.scene().clear()
        self.items = {}
        self.cross_arrows = []
        if anatomy is None:
            return
        if anatomy.family == "encoder-decoder":
            max_x, y = self._draw_columns(anatomy, layers)
        else:
            max_x, y = self._draw_rows(anatomy, layers)
        self.scene().setSceneRect(QRectF(0, 0, max_x + 10, y))
        self.fit()
        # a new diagram starts at its input row (the scroll position of the old one is stale)
        self.verticalScrollBar().setValue(self.verticalScrollBar().minimum())
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().minimum())
        if self.selected in self.items:
            self.items[self.selected].set_selected(True)

    def _draw_rows(self, anatomy: Anatomy, layers: list[int]) -> tuple[float, float]:
        """One stack (or several, one below the other) as rows; returns the scene's width and
        height."""
        muted, accent = THEME.muted, THEME.accent
        rows = self._rows(anatomy, layers)
        y = 10.0
        if anatomy.family == "encoder-only":  # what tells it from a GPT, said above the rows
            t = QGraphicsSimpleTextItem("Encoder (BERT-style): bidirectional self-attention, "
                                        "no causal mask")
            t.setFont(_title_font())
            t.setBrush(QBrush(QColor(THEME.text)))
            t.setPos(8, y)
            self.scene().addItem(t)
            y += t.boundingRect().height() + 4
        prev_out: QPointF | None = None
        max_x = 0.0
        for row in rows:
            yc = y + BOX_TOP + BOX_H / 2
            lab = _ClickText(row.label, self._clicked, row.click)
            lab.setFont(_title_font())
            lab.setBrush(QBrush(QColor(THEME.text)))
            lab.setPos(8, yc - lab.boundingRect().height() / 2)
            self.scene().addItem(lab)
            start = QPointF(X0 - 14, yc)
            if prev_out is not None:  # the snake: down from the last row's end, back to the left
                gap_y = y + 4
                self.scene().addItem(_arrow([prev_out, QPointF(prev_out.x(), gap_y),
                                           QPointF(start.x(), gap_y), start], muted, head=False))
            if row.collapsed:
                n = len(row.collapsed)
                per = row.collapsed[0].n_params
                box = Box(key=row.click, title=f"{n} more layers of the same shape",
                          name=f"{n} more layers of the same shape",
                          detail=f"{n} × {_fmt_count(per)} parameters · click to expand",
                          n_params=n * per)
                item = BlockItem(box, 560, self._clicked, dashed=True)
                item.setPos(X0, y + BOX_TOP)
                self.scene().addItem(item)
                self.scene().addItem(_arrow([start, QPointF(X0, yc)], muted))
                prev_out = QPointF(X0 + 560, yc)
                max_x = max(max_x, X0 + 560)
                y += ROW_H
                continue
            x = float(X0)
            placed: dict[str, BlockItem] = {}
            if row.kind == "input":
                prev_out = self._input_row(row.boxes, x, y, yc, placed)
            else:
                last = start
                for s in row.boxes:
                    w = _box_width(s)
                    item = BlockItem(s, w, self._clicked, circle=s.kind == "add")
                    item.setPos(x, y + BOX_TOP)
                    self.scene().addItem(item)
                    placed[s.key] = item
                    self.scene().addItem(_arrow([last, QPointF(x, yc)], muted))
                    last = QPointF(x + w, yc)
                    x += w + GAP
                if row.kind == "layer":
                    self._residual_arcs(row.boxes, placed, start, y, accent)
                    n = sum(s.n_params for s in row.boxes)
                    t = QGraphicsSimpleTextItem(f"{_fmt_count(n)} params")
                    t.setFont(_sub_font())
                    t.setBrush(QBrush(QColor(muted)))
                    t.setPos(x - GAP + 10, yc - t.boundingRect().height() / 2)
                    self.scene().addItem(t)
                    max_x = max(max_x, x - GAP + 14 + t.boundingRect().width())
                elif row.kind == "output":  # an arrow to what the model predicts
                    t = QGraphicsSimpleTextItem("next token" if anatomy.family != "encoder-only"
                                                else "each token")
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
        return max_x, y

    @staticmethod
    def _rows(anatomy: Anatomy, layers: list[int]) -> list[_Row]:
        """Each stack's input row and layer rows (skipped layers as one collapsed row), its
        closing boxes in a row of their own, except the last stack's, which open the output
        row before the head."""
        rows = []
        several = len(anatomy.stacks) > 1
        for k, stack in enumerate(anatomy.stacks):
            name = f"{stack.title} " if several else ""
            rows.append(_Row(f"{name}Input", stack.inputs[0].key, "input", stack.inputs))
            for i, layer in _layer_runs(stack, layers):
                if isinstance(layer, tuple):  # skipped layers
                    a, b = layer[0].index, layer[-1].index
                    rows.append(_Row(f"{name}Layers {a}–{b}", f"collapsed:{a}:{b}",
                                     "collapsed", (), layer))
                    continue
                # the layer's label shows the residual stream after it
                rows.append(_Row(f"{name}Layer {i}", _last_add(layer).key, "layer",
                                 layer.boxes))
            if k < len(anatomy.stacks) - 1 and stack.closing:
                rows.append(_Row(f"{stack.title} output", stack.closing[0].key, "closing",
                                 stack.closing))
        out = anatomy.stacks[-1].closing + anatomy.head
        rows.append(_Row("Output", out[0].key, "output", out))
        return rows

    # -- two columns: an encoder–decoder ------------------------------------------------------
    def _draw_columns(self, anatomy: Anatomy, layers: list[int]) -> tuple[float, float]:
        """The encoder's column on the left, the decoder's on the right (Vaswani et al.,
        Figure 1, read top to bottom), and the encoder's output carried through the gutter
        between them into every decoder layer's cross-attention. Returns the scene's size."""
        enc, dec = anatomy.stacks
        we, wd = _column_width(enc), _column_width(dec, anatomy.head)
        # each column's outer side holds its residual rail and its positions box
        spine_e = 10 + max(we / 2 + RAIL + 10, SLIM_H / 2 + GAP + _box_width(enc.inputs[1]))
        n_lanes = len(_layer_runs(dec, layers))
        lane0 = spine_e + we / 2 + 12 + 24
        spine_d = lane0 + BUS * (n_lanes - 1) + 24 + 12 + wd / 2
        y0 = 10.0
        e_out, e_bottom, _ = self._column(enc, spine_e, we, -1, y0, layers, ())
        d_out, d_bottom, targets = self._column(dec, spine_d, wd, 1, y0, layers, anatomy.head)
        # the decoder's output: the next token
        end = QPointF(d_out.x(), d_out.y() + 22)
        self.scene().addItem(_arrow([d_out, end], THEME.muted))
        t = QGraphicsSimpleTextItem("next token")
        t.setFont(_title_font())
        t.setBrush(QBrush(QColor(THEME.text)))
        t.setPos(end.x() - t.boundingRect().width() / 2, end.y() + 2)
        self.scene().addItem(t)
        d_bottom = end.y() + 4 + t.boundingRect().height()
        # the encoder's output, down a little, then right along a trunk into one lane per
        # decoder layer (the farthest target in the leftmost lane, so no lines cross)
        colour = THEME.good
        trunk = e_out.y() + 16
        order = sorted(targets, key=lambda tg: -abs(tg[2] - trunk))
        for lane, (key, left, cy) in enumerate(order):
            x = lane0 + BUS * lane
            item = _arrow([e_out, QPointF(e_out.x(), trunk), QPointF(x, trunk), QPointF(x, cy),
                           QPointF(left, cy)], colour, 1.8)
            self.scene().addItem(item)
            self.cross_arrows.append((item, key))
        # under the encoder's column, left of the lanes (which may run down from the trunk)
        note = QGraphicsSimpleTextItem("encoder output: the keys\nand values of every "
                                       "decoder\nlayer's cross-attention")
        note.setFont(_sub_font())
        note.setBrush(QBrush(QColor(colour)))
        note.setPos(spine_e - we / 2, trunk + 4)
        self.scene().addItem(note)
        e_bottom = max(e_bottom, trunk + 8 + note.boundingRect().height())
        right = spine_d + max(wd / 2 + RAIL + 10, SLIM_H / 2 + GAP + _box_width(dec.inputs[1]))
        return right, max(e_bottom, d_bottom) + 10

    def _column(self, stack: Stack, spine: float, w: float, side: int, y: float,
                layers: list[int], head: tuple[Box, ...]
                ) -> tuple[QPointF, float, list[tuple[str, float, float]]]:
        """One stack drawn downwards along the vertical line x = ``spine``, boxes ``w`` wide;
        ``side``: -1 puts the residual rail and the positions box on the left, +1 on the
        right. Returns the stack's output point, the lowest y drawn, and each cross-attention
        box's key, left edge and centre height (a collapsed run of layers: its key)."""
        muted, accent = THEME.muted, THEME.accent
        scene = self.scene()
        title = _ClickText(stack.title, self._clicked, stack.inputs[0].key)
        f = _title_font()
        f.setPointSizeF(pt(TEXT_PT + 1))
        title.setFont(f)
        title.setBrush(QBrush(QColor(THEME.text)))
        title.setPos(spine - title.boundingRect().width() / 2, y)
        scene.addItem(title)
        y += title.boundingRect().height()
        what = ("source tokens, all seen at once" if stack.name == "encoder"
                else "target tokens so far (shifted right)")
        sub = QGraphicsSimpleTextItem(what)
        sub.setFont(_sub_font())
        sub.setBrush(QBrush(QColor(muted)))
        sub.setPos(spine - sub.boundingRect().width() / 2, y)
        scene.addItem(sub)
        y += sub.boundingRect().height() + 6
        bottom: float | None = None  # where the arrow to the next box starts
        tops: dict[str, float] = {}
        bottoms: dict[str, float] = {}

        def place(box: Box, y: float, width: float = w, x: float | None = None,
                  dashed: bool = False, link: bool = True) -> float:
            """Draw ``box`` at height y (centred on the spine unless ``x``), the arrow into it
            from the box above when ``link``; returns the y below it."""
            nonlocal bottom
            circle = box.kind == "add"
            h = SLIM_H if box.kind in ("add", "ln") else BOX_H
            item = BlockItem(box, h if circle else width, self._clicked, circle=circle,
                             dashed=dashed, height=h)
            left = spine - item.width / 2 if x is None else x
            item.setPos(left, y)
            scene.addItem(item)
            if box.key:
                self.items[box.key] = item
            if link:
                if bottom is not None:
                    scene.addItem(_arrow([QPointF(spine, bottom), QPointF(spine, y)], muted))
                bottom = y + h
            tops[box.key], bottoms[box.key] = y, y + h
            return y + h + V_GAP

        # inputs: token embedding, then the sum with the positions coming in from the side
        tok = next(b for b in stack.inputs if isinstance(b, TokenEmbedding))
        pos = next(b for b in stack.inputs if isinstance(b, Positions))
        add = next((b for b in stack.inputs if isinstance(b, Add)), None)
        pw = _box_width(pos)
        px = spine - SLIM_H / 2 - GAP - pw if side < 0 else spine + SLIM_H / 2 + GAP
        y_tok = y
        y = place(tok, y)
        if add is not None:
            yc = y + SLIM_H / 2
            place(pos, yc - BOX_H / 2, pw, px, link=False)
            near = QPointF(px + pw, yc) if side < 0 else QPointF(px, yc)
            scene.addItem(_arrow([near, QPointF(spine + side * SLIM_H / 2, yc)], muted))
            y = max(place(add, y), yc + BOX_H / 2 + V_GAP)
        else:  # applied inside attention, or absent: drawn unconnected beside the embedding
            place(pos, y_tok, pw, px + side * 20, dashed=True, link=False)
        targets: list[tuple[str, float, float]] = []
        rail = spine + side * (w / 2 + RAIL)
        fx0 = spine - w / 2 - (RAIL + 10 if side < 0 else 10)
        fx1 = spine + w / 2 + (RAIL + 10 if side > 0 else 10)
        for i, layer in _layer_runs(stack, layers):
            top = y
            if isinstance(layer, tuple):  # a run of layers not drawn: one dashed box
                n, per = len(layer), layer[0].n_params
                a, b = layer[0].index, layer[-1].index
                key = f"collapsed:{stack.name}:{a}:{b}"
                box = Box(key="", title=f"{n} more layer{'s' if n > 1 else ''}",
                          name=f"{n} more layers of the same shape",
                          detail=f"{n} × {_fmt_count(per)} · click to expand", n_params=n * per)
                item = BlockItem(box, w, lambda _k, key=key: self._clicked(key), dashed=True)
                item.setPos(spine - w / 2, y)
                scene.addItem(item)
                if bottom is not None:
                    scene.addItem(_arrow([QPointF(spine, bottom), QPointF(spine, y)], muted))
                bottom = y + BOX_H
                if stack.name == "decoder":
                    targets.append((key, spine - w / 2, y + BOX_H / 2))
                y += BOX_H + V_GAP
                continue
            # a frame around the layer, its name at the top of the outer side
            label = _ClickText(f"{stack.title} layer {i}", self._clicked, _last_add(layer).key)
            label.setFont(_sub_font())
            label.setBrush(QBrush(QColor(THEME.text)))
            lw = label.boundingRect().width()
            label.setPos(fx0 + 6 if side < 0 else fx1 - 6 - lw, top + 3)
            scene.addItem(label)
            count = QGraphicsSimpleTextItem(f"{_fmt_count(layer.n_params)} params")
            count.setFont(_sub_font())
            count.setBrush(QBrush(QColor(muted)))
            cw = count.boundingRect().width()
            count.setPos(fx1 - 6 - cw if side < 0 else fx0 + 6, top + 3)
            scene.addItem(count)
            y += FRAME_TOP
            branch = y - V_GAP / 2  # the layer's input, where the first skip leaves the spine
            for box in layer.boxes:
                y = place(box, y)
                if isinstance(box, Attention) and box.reads:
                    targets.append((box.key, spine - w / 2, y - V_GAP - BOX_H / 2))
                if isinstance(box, Add) and box.skip is not None:
                    ys = branch if not box.skip else bottoms[box.skip] + V_GAP / 2
                    cy = tops[box.key] + SLIM_H / 2
                    scene.addItem(_arrow([QPointF(spine, ys), QPointF(rail, ys),
                                          QPointF(rail, cy),
                                          QPointF(spine + side * SLIM_H / 2, cy)], accent, 1.8))
            frame = QGraphicsRectItem(QRectF(fx0, top, fx1 - fx0, y - V_GAP + 8 - top))
            pen = QPen(QColor(THEME.grid).lighter(130), 1.2)
            frame.setPen(pen)
            fill = QColor(THEME.panel)
            fill.setAlpha(90)
            frame.setBrush(QBrush(fill))
            frame.setZValue(-2)
            scene.addItem(frame)
            y += 8
        for box in stack.closing + head:
            y = place(box, y)
        return QPointF(spine, bottom), y - V_GAP, targets

    def _input_row(self, specs, x, y, yc, placed) -> QPointF:
        """[Token embedding] → (+) ← [Positions]; rotary/none: a dashed, unconnected box."""
        muted = THEME.muted
        tok = next(s for s in specs if isinstance(s, TokenEmbedding))
        pos = next(s for s in specs if isinstance(s, Positions))
        add = next((s for s in specs if isinstance(s, Add)), None)
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

    def _residual_arcs(self, boxes, placed, start: QPointF, y: float, colour: str) -> None:
        """Skip connections drawn above the boxes, one into each residual +: from the row's
        input, or branching off the arrow that leaves the box the anatomy says it skips from
        (pre-norm: the first +; post-norm: the first LayerNorm)."""
        adds = [b for b in boxes if isinstance(b, Add) and b.skip is not None]
        if not adds:
            return
        top = y + 7

        def centre_top(item):
            return QPointF(item.pos().x() + item.width / 2, item.pos().y() + (BOX_H - 34) / 2)

        def centre_x(item, frac=0.5):
            return item.pos().x() + item.width * frac

        for add in adds:
            a = placed[add.key]
            # "" is the row's input; else the arc branches off the arrow leaving that box
            x = start.x() if not add.skip else centre_x(placed[add.skip], 1.0) + GAP * 0.4
            self.scene().addItem(_arrow([QPointF(x, start.y()), QPointF(x, top),
                                       QPointF(centre_x(a), top), centre_top(a)], colour, 1.8))
        t = QGraphicsSimpleTextItem("residual")
        t.setFont(_sub_font())
        t.setBrush(QBrush(QColor(colour)))
        r = t.boundingRect()
        t.setPos(start.x() + 8, top - r.height() / 2)
        # the label sits on the arc with the background behind it: the line stops at the word
        # instead of striking it through
        back = QGraphicsRectItem(r.adjusted(-3, 0, 3, 0))
        back.setPos(t.pos())
        back.setBrush(QBrush(QColor(THEME.background)))
        back.setPen(QPen(Qt.PenStyle.NoPen))
        back.setZValue(5)
        t.setZValue(6)
        self.scene().addItem(back)
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
