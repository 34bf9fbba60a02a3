"""The token strip: every token of the context window as a chip, painted by one widget.

Prompt tokens are neutral chips; generated tokens are coloured by the probability they had when
they were chosen (red = a long shot, green = the obvious choice; forced tokens get a dashed
border); whitespace is made visible with model.tokenizer.printable. The ghost chip at the end is
the token the next step will pick. One painted widget rather than a widget per chip: a step
re-lays out and repaints hundreds of chips in a few milliseconds. Each chip is rendered once into
a cached pixmap (antialiased text is the costly part): at a full window every step slides all
chips along, and repainting them is then one blit each.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QMenu, QScrollArea, QSizePolicy, QWidget

from ..plotting import THEME, mono_font, prob_color

_SPECIAL = {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423", "\r": "\u240d"}


_PRINTABLE: Any = None


def printable(token: str) -> str:
    """model.tokenizer.printable, imported on first use (torch must not delay the first paint)."""
    global _PRINTABLE
    if _PRINTABLE is None:
        try:
            from model.tokenizer import printable as p
        except Exception:  # noqa: BLE001 - a broken model package must not break the strip
            return _SPECIAL.get(token, token)
        _PRINTABLE = p
    return _PRINTABLE(token)


@dataclass
class _Chip:
    rect: QRect
    index: int  # index into result.ids; -1 for the "earlier tokens" marker, -2 for the ghost chip


class TokenStrip(QWidget):
    """All tokens of the context window as chips in one painted widget (fast for 1000s of tokens)."""

    chip_clicked = Signal(int)
    chip_double_clicked = Signal(int)
    rewind_requested = Signal(int)
    content_changed = Signal()  # the chips changed: the scroll area fits the strip's height

    PAD_X, PAD_Y, GAP, LINE_GAP, MARGIN = 5, 3, 3, 5, 6

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setFont(mono_font(THEME.font_pt + 2))
        self.result: Any = None
        self.selected = -1
        self.show_planned = True
        self._chips: list[_Chip] = []
        self._labels: list[str] = []
        self._layout_width = -1
        self._height = 40
        self._hover = -3
        self.lookup = None  # callable: token id -> string
        self._widths: dict[str, int] = {}  # label -> pixel width (font fixed)
        self._min_w = 8
        # (label, fill rgba, border kind, text colour, size, device pixel ratio) -> chip image
        self._chip_cache: dict[tuple, QPixmap] = {}

    # -- data ---------------------------------------------------------------------------------
    def set_result(self, result: Any) -> None:
        self.result = result
        self._labels = [printable(t) for t in result.tokens] if result is not None else []
        self._relayout(self.width())
        self.update()
        self.content_changed.emit()

    def set_selected(self, i: int) -> None:
        if i != self.selected:
            self.selected = i
            self.update()

    # -- geometry -----------------------------------------------------------------------------
    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return True

    def heightForWidth(self, w: int) -> int:  # noqa: N802
        if w != self._layout_width:
            self._safe_relayout(w)
        return self._height

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(600, self._height)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(120, 32)

    def resizeEvent(self, e) -> None:  # noqa: N802
        self._safe_relayout(e.size().width())
        super().resizeEvent(e)

    def changeEvent(self, e) -> None:  # noqa: N802 - Qt API
        if e.type() == QEvent.Type.FontChange and hasattr(self, "_widths"):
            self._widths.clear()  # cached widths and chip images depend on the font
            self._chip_cache.clear()
        super().changeEvent(e)

    def _safe_relayout(self, width: int) -> None:
        # An exception escaping a virtual called from inside another Qt call can crash PySide6;
        # report it through the excepthook (pytest-qt fails the test) instead.
        try:
            self._relayout(width)
        except Exception:  # noqa: BLE001
            sys.excepthook(*sys.exc_info())

    def _advance(self, fm: QFontMetrics, text: str) -> int:
        w = self._widths.get(text)
        if w is None:
            w = self._widths[text] = max(fm.horizontalAdvance(text), self._min_w)
        return w

    def _relayout(self, width: int) -> None:
        fm = QFontMetrics(self.font())
        self._min_w = fm.horizontalAdvance("M")
        h = fm.height() + 2 * self.PAD_Y
        x = y = self.MARGIN
        right = max(width, 80) - self.MARGIN
        chips: list[_Chip] = []

        def place(w: int, idx: int) -> None:
            nonlocal x, y
            if x + w > right and x > self.MARGIN:
                x, y = self.MARGIN, y + h + self.LINE_GAP
            chips.append(_Chip(QRect(x, y, w, h), idx))
            x += w + self.GAP

        r = self.result
        if r is not None:
            if r.cropped:
                place(fm.horizontalAdvance(self._cropped_text(r)) + 2 * self.PAD_X, -1)
            for i, label in enumerate(self._labels):
                place(self._advance(fm, label) + 2 * self.PAD_X, i)
                if r.tokens[i] == "\n":  # mirror the text's lines
                    x, y = self.MARGIN, y + h + self.LINE_GAP
            if self.show_planned:
                place(fm.horizontalAdvance(self._ghost_text(r)) + 2 * self.PAD_X, -2)
        self._chips = chips
        self._layout_width = width
        self._height = (y + h + self.MARGIN) if chips else 40

    @staticmethod
    def _cropped_text(r: Any) -> str:
        return f"\u2026 {r.cropped} earlier"

    def token_str(self, tid: int) -> str:
        """The string of a token id (the panel sets ``lookup`` to the tokenizer's token_str)."""
        r = self.result
        if self.lookup is not None:
            try:
                return self.lookup(int(tid))
            except (IndexError, ValueError):  # a result of the previous model
                pass
        hits = [t for i, t in zip(r.ids.tolist(), r.tokens, strict=True) if i == tid] if r is not None else []
        return hits[0] if hits else "?"

    def _ghost_text(self, r: Any) -> str:
        return printable(self.token_str(r.planned)) + " ?"

    def chip_rect(self, i: int) -> QRect:
        for c in self._chips:
            if c.index == i:
                return QRect(c.rect)
        return QRect()

    def chip_at(self, pos: QPoint) -> int:
        for c in self._chips:
            if c.rect.contains(pos):
                return c.index
        return -3

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, e: QPaintEvent) -> None:  # noqa: N802
        try:
            self._paint(e)
        except Exception:  # noqa: BLE001 - see _safe_relayout
            sys.excepthook(*sys.exc_info())

    def _paint(self, e: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setFont(self.font())
        r = self.result
        if r is None:
            p.setPen(QColor(THEME.muted))
            p.drawText(self.rect().adjusted(8, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter,
                       "Loading the model \u2026")
            return
        clip = e.rect()
        dpr = self.devicePixelRatioF()
        text_dark, text_light = QColor("#0b0c10"), QColor(THEME.text)
        forced = getattr(r, "token_forced", None)
        for c in self._chips:
            if not c.rect.intersects(clip):
                continue
            rect = c.rect
            if c.index == -1:
                p.setPen(QColor(THEME.muted))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._cropped_text(r))
                continue
            if c.index == -2:
                pen = QPen(QColor(THEME.accent), 1.5, Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 4, 4)
                p.setPen(QColor(THEME.accent))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._ghost_text(r))
                continue
            i = c.index
            generated = i >= r.n_prompt
            if generated:
                fill = prob_color(float(r.token_probs[i]))
                fg = text_dark
            else:
                fill = QColor(THEME.prompt_chip)
                fg = text_light
            if i == self._hover:
                fill = fill.lighter(125)
            if i == self.selected:
                border = 1
            elif generated and forced is not None and bool(forced[i]):
                border = 2
            else:
                border = 0
            p.drawPixmap(rect.topLeft(), self._chip_pixmap(self._labels[i], fill, border, fg,
                                                           rect.width(), rect.height(), dpr))

    def _chip_pixmap(self, label: str, fill: QColor, border: int, fg: QColor, w: int, h: int,
                     dpr: float) -> QPixmap:
        """One chip drawn at (0, 0), cached: the same token keeps its colour from step to step."""
        key = (label, fill.rgba(), border, fg.rgba(), w, h, dpr)
        pm = self._chip_cache.get(key)
        if pm is not None:
            return pm
        if len(self._chip_cache) > 4096:  # bounded: long runs see many (token, colour) pairs
            self._chip_cache.clear()
        pm = QPixmap(max(1, round(w * dpr)), max(1, round(h * dpr)))
        pm.setDevicePixelRatio(dpr)
        pm.fill(Qt.GlobalColor.transparent)
        q = QPainter(pm)
        q.setRenderHint(QPainter.RenderHint.Antialiasing)
        q.setFont(self.font())
        q.setBrush(fill)
        if border == 1:  # selected
            q.setPen(QPen(QColor(THEME.accent), 2.5))
        elif border == 2:  # forced (clicked) token
            q.setPen(QPen(QColor(THEME.text), 1.5, Qt.PenStyle.DashLine))
        else:
            q.setPen(Qt.PenStyle.NoPen)
        rect = QRect(0, 0, w, h)
        q.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 4, 4)
        q.setPen(fg)
        q.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
        q.end()
        self._chip_cache[key] = pm
        return pm

    # -- mouse --------------------------------------------------------------------------------
    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if e.button() == Qt.MouseButton.LeftButton:
            i = self.chip_at(e.position().toPoint())
            if i >= 0:
                self.chip_clicked.emit(i)
            elif i == -3:
                self.chip_clicked.emit(-1)
        super().mousePressEvent(e)

    def mouseDoubleClickEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        i = self.chip_at(e.position().toPoint())
        if i >= 0:
            self.chip_double_clicked.emit(i)

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        i = self.chip_at(e.position().toPoint())
        if i != self._hover:
            self._hover = i
            self.setToolTip(self.tooltip_for(i))  # Qt shows it after the usual hover delay
            self.update()
        super().mouseMoveEvent(e)

    def leaveEvent(self, e) -> None:  # noqa: N802
        self._hover = -3
        self.update()

    def contextMenuEvent(self, e) -> None:  # noqa: N802
        i = self.chip_at(e.pos())
        r = self.result
        if i < 0 or r is None:
            return
        menu = QMenu(self)
        sel = menu.addAction("Select this token")
        rew = menu.addAction("Rewind to here (drop the tokens after it)")
        rew.setEnabled(i >= r.n_prompt and i < r.T - 1)
        chosen = menu.exec(e.globalPos())
        if chosen is sel:
            self.chip_clicked.emit(i)
        elif chosen is rew:
            self.rewind_requested.emit(i)

    def tooltip_for(self, i: int) -> str:
        r = self.result
        if r is None or i == -3:
            return ""
        if i == -1:
            return (f"{r.cropped} earlier tokens are outside the context window "
                    "(the model sees at most its block size)")
        if i == -2:
            tid = int(r.planned)
            p = float(r.dist.probs[tid])
            return (f"Next step will pick {printable(self.token_str(tid))!r} (id {tid}): "
                    f"probability {p:.3f}, rank {r.dist.rank_of(tid) + 1}")
        tid = int(r.ids[i])
        head = f"{printable(r.tokens[i])!r}  id {tid}  position {r.cropped + i}"
        if i < r.n_prompt:
            return f"{head}\nprompt token"
        p = float(r.token_probs[i])
        rank = int(r.token_ranks[i])
        forced = getattr(r, "token_forced", None)
        how = "forced (clicked)" if forced is not None and bool(forced[i]) else "sampled"
        return (f"{head}\nprobability {p:.3f} ({p * 100:.1f}%), rank {rank + 1} \u2014 {how}"
                "\nclick: select · double-click: rewind to here")


class ChipScroll(QScrollArea):
    """Scrolls the token strip: the strip is as wide as the view and as tall as its chips need.

    The strip never resizes itself (doing so inside its own resize event is re-entrant); this
    area sizes it after every resize and content change."""

    def __init__(self, strip: TokenStrip, parent: QWidget | None = None):
        super().__init__(parent)
        self.strip = strip
        self.setWidgetResizable(False)
        self.setWidget(strip)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        strip.content_changed.connect(self.fit)

    @Slot()
    def fit(self) -> None:
        w = self.viewport().width()
        h = max(self.strip.heightForWidth(w), self.viewport().height())
        if self.strip.size() != QSize(w, h):
            self.strip.resize(w, h)

    def resizeEvent(self, e) -> None:  # noqa: N802
        super().resizeEvent(e)
        self.fit()


__all__ = ["TokenStrip", "ChipScroll", "printable"]
