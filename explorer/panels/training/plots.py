"""Watching a run learn: the loss curves and the log of sample texts.

:class:`LossView` keeps the losses in growing numpy arrays and redraws at most once per
``REDRAW_MS`` (a single-shot timer), whatever the rate of incoming metrics. The smoothed curve
is an exponential moving average with TensorBoard's debiasing, so it does not start at zero.
"""
from __future__ import annotations

import html
import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from explorer.redraws import Redraw
from explorer.theme import THEME, mono_font, qcolor
from explorer.widgets.plot_helpers import style_plot

#: the loss curve is redrawn at most 4 times a second: smooth enough to watch, and each redraw
#: of a 660 × 250 plot costs 4-7 ms of GUI-thread CPU on the 2-core target machine
REDRAW_MS = 250


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average: s_t = w s_{t-1} + (1 - w) x_t, divided by 1 - w^t."""
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or values.size == 0:
        return values.copy()
    out = np.empty_like(values)
    s = 0.0
    w = float(weight)
    corr = 1.0
    for i, x in enumerate(values):
        s = w * s + (1.0 - w) * x
        corr *= w
        out[i] = s / (1.0 - corr)
    return out


class _Growing:
    """Append-only float64 columns with amortised growth."""

    def __init__(self, cols: int):
        self.a = np.empty((1024, cols), dtype=np.float64)
        self.n = 0

    def extend(self, rows: np.ndarray) -> None:
        rows = np.atleast_2d(rows)
        need = self.n + len(rows)
        if need > len(self.a):
            bigger = np.empty((max(need, 2 * len(self.a)), self.a.shape[1]), dtype=np.float64)
            bigger[: self.n] = self.a[: self.n]
            self.a = bigger
        self.a[self.n:need] = rows
        self.n = need

    def col(self, i: int) -> np.ndarray:
        return self.a[: self.n, i]

    def clear(self) -> None:
        self.n = 0


LOSS_MIN_H = 140  # the loss plot stays readable: the samples tab gives way first


class LossView(QWidget):
    """Train loss (raw and smoothed) and the evaluated train/validation losses."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setMinimumHeight(LOSS_MIN_H)
        self.plot_widget.setToolTip("Cross-entropy loss in nats (lower is better)")
        self.plot = self.plot_widget.getPlotItem()
        # a short axis title: a long one was cut off when the plot was short
        style_plot(self.plot, None, x="step", y="loss (nats)")
        # no grid: pyqtgraph draws grid lines with the axes, so every curve update would re-render
        # the axes too (measured: half the GUI time of a redraw)
        self.plot.setMenuEnabled(False)
        # the legend is a line of text above the plot: inside it, it covered the curves
        self.legend = QLabel(self)
        self.legend.setObjectName("lossLegend")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setText(
            f"<span style='color:{THEME.accent}'>\u2501\u2501 train (smoothed)</span> &nbsp; "
            f"<span style='color:{THEME.muted}'>\u2504\u2504 train (eval)</span> &nbsp; "
            f"<span style='color:{THEME.accent2}'>\u25cf validation</span>")
        lay.addWidget(self.legend)
        self.raw = self.plot.plot([], [], pen=pg.mkPen(qcolor(THEME.accent, 0.25), width=1))
        self.smooth = self.plot.plot([], [], pen=pg.mkPen(THEME.accent, width=2.5),
                                     name="train (smoothed)")
        self.eval_train = self.plot.plot([], [], pen=pg.mkPen(THEME.muted, width=1.5,
                                                              style=Qt.PenStyle.DashLine),
                                         name="train (eval)")
        self.val = self.plot.plot([], [], pen=pg.mkPen(THEME.accent2, width=2.5), symbol="o",
                                  symbolSize=5, symbolBrush=THEME.accent2,
                                  symbolPen=None, name="validation")
        for c in (self.raw, self.smooth):
            c.setDownsampling(auto=True, method="mean")
            c.setClipToView(True)
        lay.addWidget(self.plot_widget, 1)

        row = QHBoxLayout()
        self.log_scale = QCheckBox("log scale")
        self.log_scale.toggled.connect(self._on_log)
        row.addWidget(self.log_scale)
        row.addSpacing(12)
        row.addWidget(QLabel("smoothing"))
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(90)
        self.smoothing.setToolTip("exponential moving average of the training loss "
                                  "(0 = raw values, 0.99 = very smooth)")
        self.smoothing.valueChanged.connect(self._on_smoothing)
        row.addWidget(self.smoothing, 1)
        self.smoothing_label = QLabel("0.90")
        self.smoothing_label.setMinimumWidth(32)
        row.addWidget(self.smoothing_label)
        self.last_label = QLabel("")
        self.last_label.setStyleSheet(f"color: {THEME.muted};")
        row.addSpacing(12)
        row.addWidget(self.last_label)
        lay.addLayout(row)

        self._steps = _Growing(2)  # step, loss
        self._evals = _Growing(3)  # step, train, val
        self._ema: np.ndarray = np.empty(0)
        self._ema_state = (0.0, 1.0)  # s, w^t  (incremental EMA)
        self.redraws = 0
        self.redraw_times: list[float] = []
        self._redraw = Redraw(self._draw, REDRAW_MS, self)
        self._auto = True  # fit the y range to the data (until the user zooms)
        self._yrange: tuple[float, float] | None = None
        self.plot.getViewBox().sigRangeChangedManually.connect(self._on_manual_range)

    # -- data ----------------------------------------------------------------------------------
    @property
    def weight(self) -> float:
        return self.smoothing.value() / 100.0

    @property
    def n_points(self) -> int:
        return self._steps.n

    def steps(self) -> np.ndarray:
        return self._steps.col(0).copy()

    def losses(self) -> np.ndarray:
        return self._steps.col(1).copy()

    def smoothed(self) -> np.ndarray:
        return self._ema[: self._steps.n].copy()

    def evals(self) -> np.ndarray:
        """(n, 3): step, train loss, validation loss."""
        return self._evals.a[: self._evals.n].copy()

    def add_steps(self, steps: np.ndarray, losses: np.ndarray) -> None:
        steps = np.asarray(steps, dtype=np.float64)
        losses = np.asarray(losses, dtype=np.float64)
        if steps.size == 0:
            return
        self._steps.extend(np.column_stack([steps, losses]))
        # incremental EMA for the new points
        w = self.weight
        s, corr = self._ema_state
        new = np.empty(len(losses))
        for i, x in enumerate(losses):
            if w <= 0:
                new[i] = x
                continue
            if not math.isfinite(x):
                new[i] = s / (1.0 - corr) if corr < 1.0 else x
                continue
            s = w * s + (1.0 - w) * x
            corr *= w
            new[i] = s / (1.0 - corr)
        self._ema_state = (s, corr)
        self._ema = np.concatenate([self._ema[: self._steps.n - len(losses)], new])
        self._redraw.request()

    def add_eval(self, step: int, train: float, val: float) -> None:
        self._evals.extend(np.array([[step, train, val]], dtype=np.float64))
        self._redraw.request()

    def clear(self) -> None:
        self._steps.clear()
        self._evals.clear()
        self._ema = np.empty(0)
        self._ema_state = (0.0, 1.0)
        self.last_label.setText("")
        self._auto = True
        self._yrange = None
        self._draw()

    def set_step_range(self, first: int, last: int) -> None:
        """Fix the x axis to the run's steps: the axis is not redrawn as the curve grows."""
        self._auto = True
        self.plot.setXRange(first, max(last, first + 1), padding=0.01)

    def flush(self) -> None:
        self._redraw.flush()

    # -- drawing -------------------------------------------------------------------------------
    def _draw(self) -> None:
        n = self._steps.n
        x = self._steps.col(0)
        y = self._steps.col(1)
        if self.log_scale.isChecked():  # log of a non-positive loss does not exist
            ok = y > 0
            self.raw.setData(x[ok], y[ok])
            sm = self._ema[:n]
            self.smooth.setData(x[ok & (sm > 0)], sm[ok & (sm > 0)])
        else:
            self.raw.setData(x, y)
            self.smooth.setData(x, self._ema[:n])
        e = self._evals.a[: self._evals.n]
        self.eval_train.setData(e[:, 0], e[:, 1])
        finite = np.isfinite(e[:, 2])
        self.val.setData(e[finite, 0], e[finite, 2])
        if n:
            text = f"step {int(x[-1]):,}: loss {y[-1]:.3f}"
            if finite.any():
                text += f", validation {e[finite, 2][-1]:.3f}"
            self.last_label.setText(text)
        self._fit_y(y, e[finite, 2])
        self.redraws += 1
        self.redraw_times.append(time.perf_counter())
        if len(self.redraw_times) > 4096:
            del self.redraw_times[:2048]

    def _fit_y(self, *series: np.ndarray) -> None:
        """Rescale y only when the data leaves the range or fills less than half of it: a
        changed range re-renders both axes (the biggest share of a redraw's cost)."""
        if not self._auto:
            return
        v = np.concatenate([np.asarray(a, dtype=float) for a in series])
        v = v[np.isfinite(v) & ((v > 0) if self.log_scale.isChecked() else True)]
        if v.size == 0:
            return
        if self.log_scale.isChecked():
            v = np.log10(v)
        lo, hi = float(v.min()), float(v.max())
        span = max(hi - lo, 1e-3)
        cur = self._yrange
        if cur is not None and cur[0] <= lo and hi <= cur[1] \
                and hi - lo > 0.5 * (cur[1] - cur[0]):
            return
        self._yrange = (lo - 0.08 * span, hi + 0.08 * span)
        self.plot.setYRange(*self._yrange, padding=0)

    @Slot()
    def _on_manual_range(self, *_) -> None:
        self._auto = False  # the user zoomed or panned: leave the view alone until the next run

    @Slot(bool)
    def _on_log(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self._auto = True
        self._yrange = None
        self._draw()

    @Slot(int)
    def _on_smoothing(self, v: int) -> None:
        self.smoothing_label.setText(f"{v / 100:.2f}")
        y = self._steps.col(1)
        finite = np.where(np.isfinite(y), y, np.nan)
        self._ema = ema(np.nan_to_num(finite, nan=0.0), self.weight)
        w = self.weight
        s = 0.0
        corr = 1.0
        if w > 0 and y.size:  # restore the incremental state at the end of the series
            corr = w ** y.size
            s = self._ema[-1] * (1.0 - corr)
        self._ema_state = (s, corr)
        self._draw()


class SampleLog(QTextEdit):
    """Sample texts from the fixed probe prompt, newest on top (prompt shown highlighted)."""

    MAX_ENTRIES = 200

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(mono_font())
        self.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.entries: list[tuple[int, str]] = []
        self.prompt = ""
        self.setPlaceholderText("Samples from the probe prompt appear here while training, "
                                "newest on top.")

    def set_prompt(self, prompt: str) -> None:
        self.prompt = prompt

    def add_sample(self, step: int, text: str, loss: float | None = None, note: str = ""
                   ) -> None:
        """Add a sample; ``note`` (e.g. the held-out score measured with it) joins its head."""
        self.entries.append((step, text))
        head = f"step {step:,}" + (f" · loss {loss:.3f}" if loss is not None else "")
        if note:
            head += f" · {note}"
        p = self.prompt
        if p and text.startswith(p):
            body = (f"<span style='color:{THEME.accent2};'>{_esc(p)}</span>"
                    f"{_esc(text[len(p):])}")
        else:
            body = _esc(text)
        block = (f"<div style='color:{THEME.muted};'>── {head} ──</div>"
                 f"<pre style='margin:0 0 8px 0; white-space:pre-wrap;'>{body}</pre>")
        cur = QTextCursor(self.document())
        cur.movePosition(QTextCursor.MoveOperation.Start)
        cur.insertHtml(block)
        cur.insertBlock()
        if len(self.entries) > self.MAX_ENTRIES:  # rebuild with the newest entries only
            self.entries = self.entries[-self.MAX_ENTRIES:]
        self.verticalScrollBar().setValue(0)

    def clear_samples(self) -> None:
        self.entries.clear()
        self.clear()


def _esc(text: str) -> str:
    # show line breaks as ↵ plus a real break, so task examples read as lines
    return html.escape(text).replace("\n", "<span style='color:#8b93a7;'>↵</span>\n")


__all__ = ["LossView", "SampleLog", "ema", "REDRAW_MS"]
