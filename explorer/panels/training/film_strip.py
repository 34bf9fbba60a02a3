"""The film strip: the probe prompt's attention, recorded every N steps, replayed with a slider.

Every frame is one composite image of all layers (rows) × heads (columns), each cell the T × T
pattern, with a one-cell transparent gap between cells (one ImageItem, not one plot per head,
as in the attention panel's all-heads view). For an encoder-decoder the frames are the
cross-attention of one held-out pair, each cell T target × S source positions
(:meth:`FilmStrip.set_cross`); on the reverse task the label names the head whose heaviest
weights lie on the mirrored source letters. Frames are kept as float16 and thinned (every other
old frame dropped) when they would take more than ``MAX_BYTES``.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from explorer.redraws import Redraw
from explorer.theme import SEQUENTIAL, THEME, colormap
from explorer.widgets.plot_helpers import style_plot

MAX_BYTES = 64 * 2**20
EMPTY_TEXT = "Attention snapshots of the probe prompt appear here while training."
PLAY_MS = 120
FOLLOW_MS = 250  # newest frame shown at most 4 times a second (a redraw is ~5-15 ms of GUI time)


def composite(attention: np.ndarray, gap: int = 1) -> np.ndarray:
    """(L, H, T, S) -> (L*(T+gap)-gap, H*(S+gap)-gap) with NaN in the gaps."""
    L, H, T, S = attention.shape
    out = np.full((L * (T + gap) - gap, H * (S + gap) - gap), np.nan, dtype=np.float32)
    for li in range(L):
        for hi in range(H):
            r, c = li * (T + gap), hi * (S + gap)
            out[r: r + T, c: c + S] = attention[li, hi]
    return out


class FilmStrip(QWidget):
    """Recorded attention snapshots with a step slider; click a cell to pick a head."""

    frame_changed = Signal(int)  # index of the frame shown
    head_selected = Signal(int, int)  # layer, head

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.frames: list[tuple[int, np.ndarray]] = []  # (step, (L, H, T, T) float16)
        self.tokens: list[str] = []
        self.source_tokens: list[str] | None = None  # cross-attention: the columns' tokens
        self.mirror: int | None = None  # reverse task: letters of the mirrored source
        self.current = -1
        self.selected: tuple[int, int] | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.view = pg.GraphicsLayoutWidget()
        self.plot = self.view.addPlot()
        style_plot(self.plot, None)
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.enableAutoRange(enable=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(colormap(SEQUENTIAL))
        self.plot.addItem(self.image)
        self.box = pg.QtWidgets.QGraphicsRectItem()
        self.box.setPen(pg.mkPen(THEME.accent2, width=2))
        self.box.setVisible(False)
        self.plot.addItem(self.box)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(SEQUENTIAL),
                                        interactive=False, width=12)
        self.colorbar.setImageItem(self.image)
        self.view.addItem(self.colorbar)
        self.image.mouseClickEvent = self._on_click
        lay.addWidget(self.view, 1)

        row = QHBoxLayout()
        self.play = QPushButton("▶ Replay")
        self.play.setCheckable(True)
        self.play.toggled.connect(self._on_play)
        row.addWidget(self.play)
        self.slider = QSlider(pg.QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self.show_frame)
        row.addWidget(self.slider, 1)
        self.follow = QCheckBox("follow")
        self.follow.setChecked(True)
        self.follow.setToolTip("show each new snapshot as it arrives")
        row.addWidget(self.follow)
        lay.addLayout(row)
        self.label = QLabel(EMPTY_TEXT)
        self.label.setWordWrap(True)
        self.label.setStyleSheet(f"color: {THEME.muted};")
        lay.addWidget(self.label)
        self._timer = QTimer(self)
        self._timer.setInterval(PLAY_MS)
        self._timer.timeout.connect(self._advance)
        self._follow = Redraw(self._show_latest, FOLLOW_MS, self)
        self._stale = False
        self._shape: tuple[int, ...] | None = None
        self._ranged: tuple[int, ...] | None = None

    def _set_axes(self, shape: tuple[int, ...]) -> None:
        """Ticks naming layers and heads at the centre of each cell; the view fits the image."""
        L, H, T, S = shape
        self.plot.getAxis("left").setTicks([[(li * (T + 1) + T / 2, f"L{li}")
                                             for li in range(L)], []])
        self.plot.getAxis("bottom").setTicks([[(hi * (S + 1) + S / 2, f"H{hi}")
                                               for hi in range(H)], []])
        self.plot.setRange(xRange=(0, H * (S + 1) - 1), yRange=(0, L * (T + 1) - 1),
                           padding=0.02)

    # -- data ----------------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        return len(self.frames)

    def clear(self) -> None:
        self.frames.clear()
        self.current = -1
        self._shape = None
        self._ranged = None
        self.selected = None
        self.box.setVisible(False)
        self.image.clear()
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        self.slider.setEnabled(False)
        self.label.setText(EMPTY_TEXT if self.source_tokens is None else
                           "Cross-attention snapshots of a held-out pair appear here while "
                           "training.")

    def set_tokens(self, tokens: list[str]) -> None:
        """Self-attention frames of these (probe) tokens."""
        self.tokens = list(tokens)
        self.source_tokens = None
        self.mirror = None

    def set_cross(self, source: list[str], target: list[str], mirror: int | None = None) -> None:
        """Cross-attention frames: rows ``target`` (the decoder's input: start token, then the
        target), columns ``source`` (with its end token). ``mirror``: the reverse task's
        source letters, for the label's mirror score."""
        self.tokens = list(target)
        self.source_tokens = list(source)
        self.mirror = mirror

    def frame(self, i: int) -> tuple[int, np.ndarray]:
        step, a = self.frames[i]
        return step, a.astype(np.float32)

    def add_frame(self, step: int, attention: np.ndarray) -> None:
        a = np.asarray(attention)
        if a.ndim != 4:
            return
        if self._shape is not None and a.shape != self._shape:
            self.frames.clear()  # a different model or prompt: start a new strip
        self._shape = a.shape
        self.frames.append((int(step), a.astype(np.float16)))
        self._thin()
        at_end = self.current >= len(self.frames) - 2 or self.current < 0
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(self.frames) - 1)
        self.slider.blockSignals(False)
        self.slider.setEnabled(len(self.frames) > 1)
        if (self.follow.isChecked() and at_end and not self.play.isChecked()) \
                or self.current < 0:
            self.current = len(self.frames) - 1
            self._follow.request()
        else:
            self._update_label()

    def _show_latest(self) -> None:
        if not self.frames or self.play.isChecked():
            return
        self.current = min(self.current, len(self.frames) - 1)
        self.slider.blockSignals(True)
        self.slider.setValue(self.current)
        self.slider.blockSignals(False)
        if not self.isVisible():  # drawn when the tab is shown (no GUI time spent meanwhile)
            self._stale = True
            return
        self.show_frame(self.current)

    def flush(self) -> None:
        """Show a pending newest frame now (end of a run, tests)."""
        self._follow.flush()
        if self._stale:
            self._stale = False
            self.show_frame(self.current)

    def showEvent(self, ev) -> None:  # noqa: N802 (Qt API)
        super().showEvent(ev)
        if self._stale:
            self._stale = False
            self._follow.request()

    def _thin(self) -> None:
        per = self.frames[0][1].nbytes if self.frames else 0
        if per and per * len(self.frames) > MAX_BYTES and len(self.frames) > 3:
            keep = self.frames[:-1:2] + [self.frames[-1]]  # every other old one, the newest
            self.frames = keep
            self.current = min(self.current, len(self.frames) - 1)

    # -- display -------------------------------------------------------------------------------
    @Slot(int)
    def show_frame(self, i: int) -> None:
        if not self.frames:
            return
        i = max(0, min(int(i), len(self.frames) - 1))
        self.current = i
        _, a = self.frame(i)
        img = composite(a)
        self.image.setImage(img, autoLevels=False, levels=(0.0, 1.0))
        self.image.setRect(0, 0, img.shape[1], img.shape[0])
        if self._ranged != a.shape:
            self._ranged = a.shape
            self._set_axes(a.shape)
        self._draw_box()
        self._update_label()
        self.frame_changed.emit(i)

    def mirror_scores(self, i: int | None = None) -> np.ndarray | None:
        """(L, H) mirror scores of frame ``i`` (default: the one shown) on the reverse task:
        the fraction of target positions whose heaviest weight is on the mirrored letter."""
        if self.mirror is None or not self.frames:
            return None
        from model.train_encoders import mirror_scores

        _, a = self.frame(self.current if i is None else i)
        return mirror_scores(a, self.mirror)

    def _update_label(self) -> None:
        if not self.frames:
            return
        step = self.frames[self.current][0]
        L, H, T, S = self._shape
        where = f"step {step:,} · frame {self.current + 1} of {len(self.frames)}"
        if self.source_tokens is None:
            self.label.setText(f"{where} · rows: {L} layers, columns: {H} heads, {T} tokens "
                               "each")
            self.label.setToolTip("")
            return
        src = "".join(self.source_tokens[:-1])
        tgt = "".join(self.tokens[1:])
        text = f"{where} · “{src}” → “{tgt}”"
        m = self.mirror_scores()
        if m is not None:
            li, hi = np.unravel_index(int(np.argmax(m)), m.shape)
            text += f" · mirror L{li} H{hi}: {m[li, hi]:.0%}"
        self.label.setToolTip(
            f"Cross-attention of the held-out pair “{src}” → “{tgt}”: in each head a row is "
            f"a target position ({T}: the start token, then the target), a column a source "
            f"position ({S}: the source, then its end token); rows: {L} layers, columns: {H} "
            "heads."
            + ("" if m is None else f" Mirror: the share of target positions i whose heaviest "
               f"weight falls on source position {self.mirror}−1−i, the letter they write "
               "(the best head)."))
        self.label.setText(text)

    def _draw_box(self) -> None:
        if self.selected is None or self._shape is None:
            self.box.setVisible(False)
            return
        L, H, T, S = self._shape
        li, hi = self.selected
        self.box.setRect(hi * (S + 1) - 0.5, li * (T + 1) - 0.5, S + 1, T + 1)
        self.box.setVisible(True)

    def select_head(self, layer: int, head: int) -> None:
        self.selected = (int(layer), int(head))
        self._draw_box()

    def _on_click(self, ev) -> None:
        if self._shape is None:
            return
        L, H, T, S = self._shape
        p = ev.pos()
        li, hi = int(p.y() // (T + 1)), int(p.x() // (S + 1))
        if 0 <= li < L and 0 <= hi < H:
            self.select_head(li, hi)
            self.head_selected.emit(li, hi)
            ev.accept()

    @Slot(bool)
    def _on_play(self, on: bool) -> None:
        if on:
            if self.current >= len(self.frames) - 1:
                self.slider.setValue(0)
            self._timer.start()
            self.play.setText("■ Stop")
        else:
            self._timer.stop()
            self.play.setText("▶ Replay")

    @Slot()
    def _advance(self) -> None:
        if self.current >= len(self.frames) - 1:
            self.play.setChecked(False)
            return
        self.slider.setValue(self.current + 1)


__all__ = ["FilmStrip", "composite"]
