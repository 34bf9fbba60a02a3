"""Synthetic tasks with a known answer: the ideal attention pattern beside the learned one.

For the frame the film strip shows, every head gets the task's score (see :mod:`model.tasks`),
drawn as a layers × heads grid with the numbers written in; the head picked in the film strip
(by default the best one) is drawn beside the ideal pattern, and a plot follows every head's
score over the recorded steps, so a class can watch an induction head appear.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from explorer.redraws import Redraw
from explorer.theme import SEQUENTIAL, THEME, colormap, css_pt, ui_font
from explorer.widgets.plot_helpers import style_plot
from model import tasks


def _heat(layout: pg.GraphicsLayout, row: int, col: int, title: str) -> tuple[pg.PlotItem,
                                                                               pg.ImageItem]:
    p = layout.addPlot(row=row, col=col)
    style_plot(p, None)
    p.setTitle(title, color=THEME.text, size=css_pt(THEME.font_pt - 1))
    p.invertY(True)
    p.hideAxis("left")
    p.hideAxis("bottom")
    p.setAspectLocked(True)
    p.setMenuEnabled(False)
    p.setMouseEnabled(x=False, y=False)
    img = pg.ImageItem(axisOrder="row-major")
    img.setColorMap(colormap(SEQUENTIAL))
    p.addItem(img)
    return p, img


def _short(v: float) -> str:
    """A score in a grid cell: '.87', '1.0' or '–' (no leading zero: cells are narrow)."""
    if not np.isfinite(v):
        return "–"
    return "1.0" if v >= 0.995 else f"{v:.2f}".lstrip("0")


class TaskView(QWidget):
    """Ideal vs learned attention and per-head scores for copy / induction / reverse / sort."""

    head_selected = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.task: str | None = None
        self.tokens: list[str] = []
        self.ideal: np.ndarray | None = None
        self.history_steps: list[int] = []
        self.history: list[np.ndarray] = []  # (L, H) task scores per recorded frame
        self.scores: np.ndarray | None = None  # of the frame shown
        self.prev_scores: np.ndarray | None = None
        self.selected: tuple[int, int] | None = None
        self._attention: np.ndarray | None = None  # the frame shown
        self.auto_select = True  # follow the best head until the user picks one
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.header.setStyleSheet(f"font-size: {css_pt(THEME.font_pt - 1)};")
        lay.addWidget(self.header)
        self.view = pg.GraphicsLayoutWidget()
        lay.addWidget(self.view, 1)
        self.ideal_plot, self.ideal_img = _heat(self.view.ci, 0, 0, "ideal")
        self.learned_plot, self.learned_img = _heat(self.view.ci, 0, 1, "learned")
        self.grid_plot, self.grid_img = _heat(self.view.ci, 1, 0, "scores")
        self.grid_img.setColorMap(colormap("magma"))
        self.grid_plot.setAspectLocked(False)
        self.grid_plot.setLabel("left", "layer", color=THEME.muted)
        self.grid_plot.setLabel("bottom", "head", color=THEME.muted)
        self.grid_img.mouseClickEvent = self._on_grid_click
        self._grid_texts: list[pg.TextItem] = []
        self._cell_font = ui_font(THEME.font_pt - 2)
        self._grid_box = pg.QtWidgets.QGraphicsRectItem()
        self._grid_box.setPen(pg.mkPen(THEME.accent2, width=2))
        self._grid_box.setVisible(False)
        self.grid_plot.addItem(self._grid_box)
        self.hist_plot = self.view.addPlot(row=1, col=1)
        style_plot(self.hist_plot, None, x="step", y="score")
        self.hist_plot.setTitle("score by step", color=THEME.text,
                                size=css_pt(THEME.font_pt - 1))
        self.hist_plot.setYRange(0, 1.02)
        self.hist_plot.setMenuEnabled(False)
        self.hist_plot.showGrid(x=True, y=True, alpha=0.2)
        self._curves: list[pg.PlotDataItem] = []
        self._history_redraw = Redraw(self._draw_history, 250, self)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {THEME.muted}; font-size: {css_pt(THEME.font_pt - 1)};")
        lay.addWidget(self.note)

    # -- data ----------------------------------------------------------------------------------
    def set_task(self, task: str | None, tokens: list[str]) -> None:
        self.task = task
        self.tokens = list(tokens)
        self.history_steps.clear()
        self.history.clear()
        self.scores = None
        self.selected = None
        self.auto_select = True
        for c in self._curves:
            self.hist_plot.removeItem(c)
        self._curves.clear()
        for t in self._grid_texts:
            self.grid_plot.removeItem(t)
        self._grid_texts.clear()
        self.learned_img.clear()
        self.grid_img.clear()
        self._grid_box.setVisible(False)
        if task is None:
            self.ideal = None
            self.ideal_img.clear()
            self.header.setText("")
            return
        self.ideal = tasks.ideal_attention(task, self.tokens)
        self.ideal_img.setImage(self.ideal, autoLevels=False, levels=(0.0, 1.0))
        T = len(self.tokens)
        for p in (self.ideal_plot, self.learned_plot):
            p.setRange(xRange=(0, T), yRange=(0, T), padding=0.02)
        self.ideal_plot.setTitle(f"ideal ({task})", color=THEME.text,
                                 size=css_pt(THEME.font_pt - 1))
        name = tasks.SCORE_NAMES[task]
        self.header.setText(f"<b>{task}</b> · {name}: {tasks.SCORE_HELP[task]} "
                            "(1 = perfect head, uniform attention ≈ 0.1)")
        self.header.setToolTip("probe prompt: " + "".join(self.tokens).replace("\n", "↵"))

    def add_frame(self, step: int, attention: np.ndarray) -> None:
        """Record the scores of a new snapshot (for the history plot)."""
        if self.task is None or self.ideal is None:
            return
        a = np.asarray(attention, dtype=np.float32)
        if a.shape[-1] != len(self.tokens):
            return
        s = tasks.head_scores(self.task, a, self.tokens)
        self.history_steps.append(int(step))
        self.history.append(s)
        self._history_redraw.request()

    def flush(self) -> None:
        self._history_redraw.flush()

    def showEvent(self, ev) -> None:  # noqa: N802 (Qt API)
        super().showEvent(ev)
        self._history_redraw.request()

    def set_step_range(self, first: int, last: int) -> None:
        """Fix the x axis to the run (three labelled ticks: the plot is narrow)."""
        last = max(last, first + 1)
        self.hist_plot.setXRange(first, last, padding=0.02)
        mid = (first + last) // 2
        self.hist_plot.getAxis("bottom").setTicks(
            [[(v, f"{v:,}") for v in (first, mid, last)], []])

    def show_attention(self, step: int, attention: np.ndarray) -> None:
        """Show the frame the film strip shows: the grid of scores and the picked head."""
        if self.task is None or self.ideal is None:
            return
        a = np.asarray(attention, dtype=np.float32)
        if a.shape[-1] != len(self.tokens):
            return
        self._attention = a
        self.scores = tasks.head_scores(self.task, a, self.tokens)
        self.prev_scores = tasks.previous_token_scores(a)
        if self.auto_select or self.selected is None:
            best = tasks.best_head(self.scores)
            if best is not None:
                self.selected = best
                self.head_selected.emit(*best)
        self._draw_grid(step)
        self._draw_learned()

    def select_head(self, layer: int, head: int, by_user: bool = True) -> None:
        self.selected = (int(layer), int(head))
        if by_user:
            self.auto_select = False
        self._draw_learned()
        self._draw_grid_box()
        self._draw_history()

    # -- drawing -------------------------------------------------------------------------------
    def _draw_learned(self) -> None:
        if self.selected is None or self._attention is None:
            return
        li, hi = self.selected
        a = self._attention
        if li >= a.shape[0] or hi >= a.shape[1]:
            return
        self.learned_img.setImage(a[li, hi], autoLevels=False, levels=(0.0, 1.0))
        sc = self.scores[li, hi] if self.scores is not None else float("nan")
        self.learned_plot.setTitle(f"learned L{li} H{hi}: {sc:.2f}",
                                   color=THEME.text, size=css_pt(THEME.font_pt - 1))
        prev = self.prev_scores[li, hi] if self.prev_scores is not None else float("nan")
        hint = (" An induction head needs a previous-token head in an earlier layer."
                if self.task in ("copy", "induction") else "")
        self.note.setText(f"layer {li} head {hi}: {self._score_name()} {sc:.2f}, previous-token "
                          f"score {prev:.2f}. Click a head (here or in the film strip) to "
                          f"compare it.{hint}")

    def _score_name(self) -> str:
        return tasks.SCORE_NAMES.get(self.task or "", "score")

    def _draw_grid(self, step: int) -> None:
        s = self.scores
        if s is None:
            return
        L, H = s.shape
        self.grid_img.setImage(np.nan_to_num(s, nan=0.0), autoLevels=False, levels=(0.0, 1.0))
        if len(self._grid_texts) != L * H:
            for t in self._grid_texts:
                self.grid_plot.removeItem(t)
            self._grid_texts = []
            for li in range(L):
                for hi in range(H):
                    t = pg.TextItem("", anchor=(0.5, 0.5), color=THEME.text)
                    t.setFont(self._cell_font)
                    t.setPos(hi + 0.5, li + 0.5)
                    self.grid_plot.addItem(t)
                    self._grid_texts.append(t)
            self.grid_plot.getAxis("left").setTicks([[(i + 0.5, str(i)) for i in range(L)], []])
            self.grid_plot.getAxis("bottom").setTicks([[(i + 0.5, str(i)) for i in range(H)],
                                                       []])
        for li in range(L):
            for hi in range(H):
                v = s[li, hi]
                t = self._grid_texts[li * H + hi]
                t.setText(_short(v))
                t.setColor("#0b0c10" if np.isfinite(v) and v > 0.6 else THEME.text)
        self.grid_plot.setTitle(f"scores, step {step:,}", color=THEME.text,
                                size=css_pt(THEME.font_pt - 1))
        self._draw_grid_box()

    def _draw_grid_box(self) -> None:
        if self.selected is None:
            self._grid_box.setVisible(False)
            return
        li, hi = self.selected
        self._grid_box.setRect(hi, li, 1, 1)
        self._grid_box.setVisible(True)

    def _draw_history(self) -> None:
        if not self.history or not self.isVisible():
            return
        h = np.stack(self.history)  # (n, L, H)
        n, L, H = h.shape
        x = np.asarray(self.history_steps, dtype=float)
        if len(self._curves) != L * H:
            for c in self._curves:
                self.hist_plot.removeItem(c)
            self._curves = [self.hist_plot.plot([], []) for _ in range(L * H)]
        sel = self.selected
        for li in range(L):
            for hi in range(H):
                c = self._curves[li * H + hi]
                chosen = sel == (li, hi)
                colour = THEME.accent2 if chosen else THEME.muted
                c.setPen(pg.mkPen(colour, width=3 if chosen else 1))
                c.setZValue(10 if chosen else 0)
                c.setData(x, np.nan_to_num(h[:, li, hi], nan=0.0))

    def _on_grid_click(self, ev) -> None:
        if self.scores is None:
            return
        L, H = self.scores.shape
        p = ev.pos()
        li, hi = int(p.y()), int(p.x())
        if 0 <= li < L and 0 <= hi < H:
            self.select_head(li, hi)
            self.head_selected.emit(li, hi)
            ev.accept()


__all__ = ["TaskView"]
