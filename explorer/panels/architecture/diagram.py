"""The architecture diagram: the model's anatomy (:mod:`model.anatomy`) drawn as rows of boxes.

:class:`Diagram` draws an :class:`~model.anatomy.Anatomy`: an input row per stack (token
embedding + positions), one row per layer (pre-norm: LN, attention, +, LN, FFN, +; post-norm:
attention, +, LN, FFN, +, LN) with its residual connections as arcs above, and the output row
(final LN, unembedding, softmax). Repeated layers can be collapsed into one box.
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
from model.anatomy import Add, Anatomy, Box, Layer, Positions, TokenEmbedding


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


class BlockItem(QGraphicsItem):
    """A clickable box (or a circle for ⊕) with a title and a second line."""

    def __init__(self, box: Box, width: float, on_click, circle: bool = False,
                 dashed: bool = False):
        super().__init__()
        self.box = box
        self.width = width
        self.circle = circle
        self.dashed = dashed
        self.selected = False
        self._sub: str | None = None
        self._on_click = on_click
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._hover = False
        tip = [box.name, box.detail]
        if box.shape:
            tip.append(f"shape: {box.shape}")
        tip.append(f"parameters: {box.n_params:,}")
        self.setToolTip("\n".join(t for t in tip if t))

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-2, -2, self.width + 4, BOX_H + 4)

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
                   self.box.title)
        p.setFont(_sub_font())
        p.setPen(QColor(THEME.text).darker(115))
        bottom = QRectF(4, BOX_H / 2 - 1, self.width - 8, BOX_H / 2 - 2)
        p.drawText(bottom, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   self.sub)

    @property
    def sub(self) -> str:
        return self._sub if self._sub is not None else self.box.detail

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


def _box_width(box: Box) -> float:
    if box.kind == "add":
        return 34.0
    w = max(QFontMetricsF(_title_font()).horizontalAdvance(box.title),
            QFontMetricsF(_sub_font()).horizontalAdvance(box.detail))
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
        if anatomy is None:
            return
        muted, accent = THEME.muted, THEME.accent
        rows = self._rows(anatomy, layers)
        y = 10.0
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
                elif row.kind == "output":  # an arrow to "next token"
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
            prev = -1
            for i in [i for i in layers if i < stack.n_layer]:
                if i - prev > 1:
                    rows.append(_Row(f"{name}Layers {prev + 1}–{i - 1}",
                                     f"collapsed:{prev + 1}:{i - 1}", "collapsed", (),
                                     stack.layers[prev + 1:i]))
                layer = stack.layers[i]
                adds = [b for b in layer.boxes if isinstance(b, Add)]
                # the layer's label shows the residual stream after it
                rows.append(_Row(f"{name}Layer {i}", adds[-1].key, "layer", layer.boxes))
                prev = i
            if k < len(anatomy.stacks) - 1 and stack.closing:
                rows.append(_Row(f"{stack.title} output", stack.closing[0].key, "closing",
                                 stack.closing))
        out = anatomy.stacks[-1].closing + anatomy.head
        rows.append(_Row("Output", out[0].key, "output", out))
        return rows

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
