"""The token strip: every token of the context window as a chip, painted by one widget.

Prompt tokens are neutral chips; generated tokens are coloured by the probability they had when
they were chosen (red = a long shot, green = the obvious choice; forced tokens get a dashed
border); a chip shows the token's piece (whitespace made visible: Tokenizer.token_pieces). The
ghost chip at the end is the token the next step will pick; a notch in a chip's top-left corner
marks where another continuation (a branch, model.branches) parts from this text. For an encoder
(BERT-style) a token hidden behind [MASK] shows ``[MASK]`` on an accent-coloured chip with a
dashed outline. One painted widget rather than a widget per chip: a step
re-lays out and repaints hundreds of chips in a few milliseconds. Each chip is rendered once into
a cached pixmap (antialiased text is the costly part): at a full window every step slides all
chips along, and repainting them is then one blit each.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QMenu, QScrollArea, QSizePolicy, QWidget

from explorer.theme import NOTIFIER, PROB_BANDS, THEME, mono_font, prob_color, text_on
from model.step_result import StepResult

# chip index of the "… n earlier" marker and of the ghost chip (the planned token)
_CROPPED, _GHOST = -1, -2
MASK_LABEL = "[MASK]"  # what a chip hidden from an encoder shows


class TokenStrip(QWidget):
    """All tokens of the context window as chips in one painted widget (fast for 1000s of tokens)."""

    chip_clicked = Signal(int)
    chip_double_clicked = Signal(int)
    rewind_requested = Signal(int)
    predict_requested = Signal(int)  # an encoder: show the prediction at this chip
    content_changed = Signal()  # the chips changed: the scroll area fits the strip's height

    PAD_X, PAD_Y, GAP, LINE_GAP, MARGIN = 5, 3, 3, 5, 6

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setFont(mono_font(THEME.font_pt + 2))
        # opaque: a step repaints the strip only, not the scroll area, dock and window beneath
        self.setAutoFillBackground(True)
        self.result: StepResult | None = None
        self.selected = -1
        self.show_planned = True
        self.splits: frozenset[int] = frozenset()  # chips where another branch parts
        self._chips: list[tuple[int, int, int, int]] = []  # (x, y, width, index) of each chip
        self._chip_h = 0
        self._looks: list[tuple] | None = None  # see _chip_looks; None: to be worked out
        self._colours: list[tuple[QColor, QColor] | None] = []
        self._fills: dict[float, tuple[QColor, int, QColor, int]] = {}
        self._labels: list[str] = []
        self._layout_width = -1
        self._height = 40
        self._hover = -3
        # the tokenizer's token_pieces (ids -> labels), for the planned token outside the window
        self.lookup: Callable[[Sequence[int]], list[str]] | None = None
        self.bytes_of: Callable[[int], bytes] | None = None  # the tokenizer's token_bytes
        self._widths: dict[str, int] = {}  # label -> pixel width (font fixed)
        self._min_w = 8
        # (look, width, height, device pixel ratio) -> chip image
        self._chip_cache: dict[tuple, QPixmap] = {}
        NOTIFIER.changed.connect(self._on_look_changed)

    # -- data ---------------------------------------------------------------------------------
    def set_result(self, result: StepResult | None) -> None:
        width = self.width()
        same_place = self.result is not None and result is not None and \
            self._layout_width == width and self._looks is not None
        before = list(zip(self._chips, self._looks, strict=True)) if same_place else None
        self.result = result
        self._labels = result.pieces if result is not None else []
        if result is not None and result.masked_positions:
            self._labels = list(self._labels)
            for i in result.masked_positions:
                self._labels[i] = MASK_LABEL
        self._relayout(width)
        self._update_changed(before)
        self.content_changed.emit()

    def set_splits(self, indices: frozenset[int]) -> None:
        """Window indices of the tokens where another continuation parts from this text."""
        if indices != self.splits:
            self.splits = indices
            self._looks = None
            self.update()

    def set_selected(self, i: int) -> None:
        if i != self.selected:
            self.selected = i
            self._looks = None
            self.update()

    # -- geometry -----------------------------------------------------------------------------
    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return True

    def heightForWidth(self, w: int) -> int:  # noqa: N802
        if w != self._layout_width:
            self._safe_relayout(w)
        return self._height

    def row_tops(self) -> list[int]:
        """The y of each line of chips, top to bottom (for the last layout width)."""
        return sorted({y for _x, y, _w, _i in self._chips})

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
            self._looks = None
        super().changeEvent(e)

    @Slot()
    def _on_look_changed(self) -> None:
        # another theme or palette: chip colours are cached by probability
        self._fills.clear()
        self._chip_cache.clear()
        self._looks = None
        self.update()

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
        margin, gap, pad2 = self.MARGIN, self.GAP, 2 * self.PAD_X
        line = h + self.LINE_GAP
        right = max(width, 80) - margin
        # (index, width) of every chip in order; then one pass places them (hundreds a step)
        items: list[tuple[int, int]] = []
        r = self.result
        if r is not None:
            if r.cropped:
                items.append((_CROPPED, fm.horizontalAdvance(self._cropped_text(r)) + pad2))
            widths, advance = self._widths, self._advance
            items.extend((i, (widths.get(label) or advance(fm, label)) + pad2)
                         for i, label in enumerate(self._labels))
            if self.show_planned:
                items.append((_GHOST, fm.horizontalAdvance(self._ghost_text(r)) + pad2))
        tokens = r.tokens if r is not None else ()
        chips: list[tuple[int, int, int, int]] = []
        x = y = margin
        for idx, w in items:
            if x + w > right and x > margin:
                x, y = margin, y + line
            chips.append((x, y, w, idx))
            x += w + gap
            if idx >= 0 and tokens[idx].endswith("\n"):  # mirror the text's lines
                x, y = margin, y + line
        self._chips = chips
        self._chip_h = h
        self._looks = None
        self._layout_width = width
        self._height = (y + h + margin) if chips else 40

    @staticmethod
    def _cropped_text(r: StepResult) -> str:
        return f"\u2026 {r.cropped} earlier"

    def piece(self, tid: int) -> str:
        """The label of a token id (the panel sets ``lookup`` to the tokenizer's token_pieces)."""
        r = self.result
        if self.lookup is not None:
            try:
                return self.lookup([int(tid)])[0]
            except (IndexError, ValueError):  # a result of the previous model
                pass
        hits = [t for i, t in zip(r.ids.tolist(), r.pieces, strict=True) if i == tid] if r is not None else []
        return hits[0] if hits else "?"

    def _ghost_text(self, r: StepResult) -> str:
        return self.piece(r.planned) + " ?"

    def chip_rect(self, i: int) -> QRect:
        for x, y, w, idx in self._chips:
            if idx == i:
                return QRect(x, y, w, self._chip_h)
        return QRect()

    def chip_at(self, pos: QPoint) -> int:
        px, py, h = pos.x(), pos.y(), self._chip_h
        for x, y, w, idx in self._chips:
            if x <= px < x + w and y <= py < y + h:
                return idx
        return -3

    # -- painting -----------------------------------------------------------------------------
    def _chip_looks(self) -> list[tuple]:
        """What each chip shows, as hashable keys: (label, fill rgba, border, text rgba) for a
        token, (kind, text) for the two special chips. Equal keys paint equal pixels, which is how
        :meth:`set_result` finds the few chips a step really changed."""
        if self._looks is not None:
            return self._looks
        r = self.result
        looks: list[tuple] = []
        colours: list[tuple[QColor, QColor] | None] = []
        if r is not None:
            prompt_fill, light = QColor(THEME.prompt_chip), QColor(THEME.text)
            prompt_rgba, light_rgba = prompt_fill.rgba(), light.rgba()
            forced = r.token_forced
            forced = forced.tolist() if forced is not None else None
            probs = r.token_probs.tolist()
            n_prompt, hover, selected, labels = r.n_prompt, self._hover, self.selected, \
                self._labels
            splits = self.splits
            masked = frozenset(r.masked_positions or ())
            mask_fill = QColor(THEME.accent2)
            mask_fg = text_on(mask_fill)
            fills = self._fills  # probability -> (fill, rgba, text, rgba): a token keeps its look
            for _x, _y, _w, i in self._chips:
                if i < 0:
                    looks.append((i, self._cropped_text(r) if i == _CROPPED
                                  else self._ghost_text(r)))
                    colours.append(None)
                    continue
                generated = i >= n_prompt
                if generated:
                    look = fills.get(probs[i])
                    if look is None:
                        if len(fills) > 4096:
                            fills.clear()
                        c = prob_color(probs[i])
                        fg = text_on(c)
                        look = fills[probs[i]] = (c, c.rgba(), fg, fg.rgba())
                    fill, rgba, fg, fg_rgba = look
                elif masked and i in masked:
                    fill, rgba, fg, fg_rgba = mask_fill, mask_fill.rgba(), mask_fg, mask_fg.rgba()
                else:
                    fill, rgba, fg, fg_rgba = prompt_fill, prompt_rgba, light, light_rgba
                if i == hover:
                    fill = fill.lighter(125)
                    rgba = fill.rgba()
                if i == selected:
                    border = 1
                elif generated and forced is not None and forced[i]:
                    border = 2
                elif masked and i in masked:
                    border = 3
                else:
                    border = 0
                looks.append((labels[i], rgba, border, fg_rgba, i in splits))
                colours.append((fill, fg))
        self._looks, self._colours = looks, colours
        return looks

    def _update_changed(self, before: list[tuple] | None) -> None:
        """Repaint only the chips whose place or look changed since ``before`` (a step below the
        block size appends a chip and moves the ghost; a full window slides every chip)."""
        after = list(zip(self._chips, self._chip_looks(), strict=True))
        if before is None:
            self.update()
            return
        changed = set(before).symmetric_difference(after)
        if len(changed) * 2 > len(after):
            self.update()
            return
        area = QRect()
        h = self._chip_h
        for (x, y, w, _i), _look in changed:
            area = area.united(QRect(x, y, w, h))
        if not area.isEmpty():
            self.update(area)

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
        left, top, right, bottom = clip.left(), clip.top(), clip.right(), clip.bottom()
        dpr = self.devicePixelRatioF()
        h = self._chip_h
        looks = self._chip_looks()
        for (x, y, w, i), look, colours in zip(self._chips, looks, self._colours, strict=True):
            if y > bottom or y + h <= top or x > right or x + w <= left:
                continue
            if colours is not None:
                fill, fg = colours
                p.drawPixmap(x, y, self._chip_pixmap(look, fill, fg, w, h, dpr))
            elif i == _CROPPED:
                p.setPen(QColor(THEME.muted))
                p.drawText(QRect(x, y, w, h), Qt.AlignmentFlag.AlignCenter, look[1])
            else:  # the ghost chip: the token the next step will pick
                rect = QRect(x, y, w, h)
                pen = QPen(QColor(THEME.accent), 1.5, Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 4, 4)
                p.setPen(QColor(THEME.accent))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, look[1])

    def _chip_pixmap(self, look: tuple, fill: QColor, fg: QColor, w: int, h: int,
                     dpr: float) -> QPixmap:
        """One chip drawn at (0, 0), cached: the same token keeps its colour from step to step."""
        key = (look, w, h, dpr)
        pm = self._chip_cache.get(key)
        if pm is not None:
            return pm
        if len(self._chip_cache) > 4096:  # bounded: long runs see many (token, colour) pairs
            self._chip_cache.clear()
        label, _fill, border, _fg, split = look
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
        elif border == 3:  # hidden from an encoder behind [MASK]
            q.setPen(QPen(QColor(THEME.text), 1.5, Qt.PenStyle.DotLine))
        else:
            q.setPen(Qt.PenStyle.NoPen)
        rect = QRect(0, 0, w, h)
        q.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 4, 4)
        if split:  # a notch and a bar on the left edge: another branch parts here
            s = max(7, h // 2)
            q.setPen(Qt.PenStyle.NoPen)
            q.setBrush(QColor(THEME.accent))
            q.drawPolygon([QPoint(0, 0), QPoint(s, 0), QPoint(0, s)])
            q.drawRect(0, 0, 3, h)
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
            self._looks = None
            self.setToolTip(self.tooltip_for(i))  # Qt shows it after the usual hover delay
            self.update()
        super().mouseMoveEvent(e)

    def leaveEvent(self, e) -> None:  # noqa: N802
        self._hover = -3
        self._looks = None
        self.update()

    def contextMenuEvent(self, e) -> None:  # noqa: N802
        i = self.chip_at(e.pos())
        r = self.result
        if i < 0 or r is None:
            return
        menu = QMenu(self)
        if r.predicted_at is not None:  # an encoder
            masked = i in (r.masked_positions or ())
            toggle = menu.addAction("Restore this token" if masked else "Hide it behind [MASK]")
            show = menu.addAction("Show the prediction here")
            chosen = menu.exec(e.globalPos())
            if chosen is toggle:
                self.chip_clicked.emit(i)
            elif chosen is show:
                self.predict_requested.emit(i)
            return
        sel = menu.addAction("Select this token")
        rew = menu.addAction("Rewind to here (drop the tokens after it)")
        rew.setEnabled(i >= r.n_prompt and i < r.T - 1)
        chosen = menu.exec(e.globalPos())
        if chosen is sel:
            self.chip_clicked.emit(i)
        elif chosen is rew:
            self.rewind_requested.emit(i)

    def _bytes_text(self, tid: int) -> str:
        """``  bytes 20 74 68 65`` for a token id (what a BPE token stands for exactly)."""
        if self.bytes_of is None:
            return ""
        try:
            b = self.bytes_of(tid)
        except (IndexError, ValueError):  # a result of the previous model
            return ""
        return f"  bytes {b.hex(' ')}"

    def _encoder_tooltip(self, r: StepResult, i: int) -> str:
        tid = int(r.ids[i])
        where = f"position {r.cropped + i}"
        shown = "\nits prediction is shown in Prediction" if i == r.predicted_at else ""
        if i in (r.masked_positions or ()):
            orig = int(r.original_ids[i]) if r.original_ids is not None else tid
            if orig == tid:
                return (f"[MASK] written in the text  {where}{shown}\n"
                        "click: show the prediction here (edit the text to change it)")
            return (f"[MASK] hiding {self.piece(orig)!r} (id {orig})  {where}{shown}\n"
                    "click: restore it · right-click: show the prediction here")
        return (f"{r.pieces[i]!r}  id {tid}{self._bytes_text(tid)}  {where}{shown}\n"
                "click: hide it behind [MASK] and show what the encoder predicts there")

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
            return (f"Next step will pick {self.piece(tid)!r} (id {tid}{self._bytes_text(tid)}): "
                    f"probability {p:.3f}, rank {r.dist.rank_of(tid) + 1}")
        tid = int(r.ids[i])
        head = f"{r.pieces[i]!r}  id {tid}{self._bytes_text(tid)}  position {r.cropped + i}"
        if r.predicted_at is not None:  # an encoder
            return self._encoder_tooltip(r, i)
        if i < r.n_prompt:
            return f"{head}\nprompt token"
        p = float(r.token_probs[i])
        rank = int(r.token_ranks[i])
        forced = r.token_forced
        how = "forced (clicked)" if forced is not None and bool(forced[i]) else "sampled"
        split = ("\nanother branch takes a different token here (see Branches)"
                 if i in self.splits else "")
        return (f"{head}\nprobability {p:.3f} ({p * 100:.1f}%), rank {rank + 1} \u2014 {how}"
                f"{split}\nclick: select · double-click: rewind to here")


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
    def fit(self, at_end: bool | None = None) -> None:
        """Size the strip to the view; ``at_end``: the view was showing the newest chips (it
        goes on doing so), None = as the scroll bar is now."""
        bar = self.verticalScrollBar()
        if at_end is None:
            at_end = bar.value() >= bar.maximum()
        w, view = self.viewport().width(), self.viewport().height()
        need = self.strip.heightForWidth(w)
        h = max(need, view)
        if need > view:
            # room below the last line so that scrolled to the end the view starts at a line of
            # chips: a projector then never shows a line cut in half at the top
            m = self.strip.MARGIN
            tops = [t - m for t in self.strip.row_tops() if t - m + view >= need]
            if tops:
                h = max(need, min(tops) + view)
        if self.strip.size() != QSize(w, h):
            self.strip.resize(w, h)
        if at_end:
            bar.setValue(bar.maximum())

    def resizeEvent(self, e) -> None:  # noqa: N802
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum()  # before the new size moves the range
        super().resizeEvent(e)
        self.fit(at_end)


__all__ = ["TokenStrip", "ChipScroll"]


class ChipLegend(QWidget):
    """What a generated chip's colour means: one swatch per probability band (theme.PROB_BANDS),
    in the palette in use, plus the neutral prompt chip."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chipLegend")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setToolTip("Generated tokens are coloured by the probability they had when chosen")
        NOTIFIER.changed.connect(self._on_look_changed)

    @Slot()
    def _on_look_changed(self) -> None:
        self.updateGeometry()
        self.update()

    def items(self) -> list[tuple[str, QColor]]:
        """(text, fill) of each swatch, left to right."""
        out = [("prompt", QColor(THEME.prompt_chip))]
        for p in PROB_BANDS:
            out.append((f"{p * 100:g}%", prob_color(p)))
        return out

    def _title(self) -> str:
        return "chosen with probability"

    def sizeHint(self) -> QSize:  # noqa: N802
        fm = self.fontMetrics()
        w = fm.horizontalAdvance(self._title()) + 12
        for text, _ in self.items():
            w += fm.horizontalAdvance(text) + 16 + 4
        return QSize(w, fm.height() + 8)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(40, self.fontMetrics().height() + 8)

    def paintEvent(self, e: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = self.fontMetrics()
        h = fm.height() + 4
        x = 0
        items = self.items()
        need = self.sizeHint().width()
        if need <= self.width():  # the title only when everything fits
            p.setPen(QColor(THEME.muted))
            title = self._title()
            p.drawText(QRect(0, 0, fm.horizontalAdvance(title) + 4, self.height()),
                       Qt.AlignmentFlag.AlignVCenter, title)
            x = fm.horizontalAdvance(title) + 12
        for i, (text, fill) in enumerate(items):
            w = fm.horizontalAdvance(text) + 16
            rect = QRect(x, (self.height() - h) // 2, w, h)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(fill)
            p.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 4, 4)
            p.setPen(QColor(THEME.text) if i == 0 else text_on(fill))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
            x += w + 4
