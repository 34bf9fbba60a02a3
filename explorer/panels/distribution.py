"""Next-token distribution panel: the top candidates as bars, and the sampling controls.

The bars show, for the most likely candidates, the probability each has of being the next token
under the current temperature, top-k and top-p. Candidates that top-k / top-p remove are grey
(their bar shows what they had after temperature alone) below a dashed cut-off line; the token
the next step will pick is highlighted. Click a bar to make that candidate the next token.

For a BERT-style encoder the same bars show the model's prediction for the token at one position
(``StepResult.predicted_at``, usually one hidden behind [MASK]); the panel's title line says which.

Moving the temperature slider re-ranks the cached logits of the latest result in the GUI thread
(``model.sampling.next_token_distribution`` via ``Session.set_sample``): no forward pass.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QBrush, QFontMetrics, QFontMetricsF
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.redraws import Redraw
from explorer.theme import THEME, mono_font, qcolor, ui_font
from explorer.widgets.axes import FastAxis
from explorer.widgets.layout import QuietLabel
from explorer.widgets.plot_helpers import TextLabels, style_plot
from model.config import ConfigError, SampleConfig
from model.sampling import Distribution
from model.step_result import StepResult
from model.tokenizer import Tokenizer

if TYPE_CHECKING:
    from explorer.session import Session

T_MAX = 3.0
T_STEP = 0.05
MIN_SHOWN, MAX_SHOWN = 5, 50
LABEL_AXIS_MIN = 44  # px: a character model's labels
LABEL_AXIS_MAX = 150  # px: longer BPE pieces are elided


class SamplingControls(QWidget):
    """Temperature (slider + box), top-k, top-p, seed, and what the chart shows."""

    changed = Signal()  # sampling settings changed by the user
    view_changed = Signal()  # number of bars or logits/probabilities changed

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.temp_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.temp_slider.setRange(0, round(T_MAX / T_STEP))
        self.temp_slider.setTickInterval(round(1.0 / T_STEP))
        self.temp_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.temp_slider.setPageStep(round(0.25 / T_STEP))
        self.temp_slider.setToolTip("Temperature: logits are divided by it before the softmax.\n"
                                    "0 = greedy (always the most likely token), 1 = the model's own "
                                    "distribution, above 1 = flatter, more surprising text.")
        self.temp_box = QDoubleSpinBox(self)
        self.temp_box.setRange(0.0, T_MAX)
        self.temp_box.setSingleStep(T_STEP)
        self.temp_box.setDecimals(2)
        self.temp_box.setSpecialValueText("0 greedy")
        self.temp_box.setToolTip(self.temp_slider.toolTip())
        self.top_k = QSpinBox(self)
        self.top_k.setRange(0, 100000)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip("top-k: keep only the k most likely tokens (0 = off)")
        self.top_p = QDoubleSpinBox(self)
        self.top_p.setRange(0.01, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setValue(1.0)
        self.top_p.setToolTip("top-p (nucleus): keep the fewest most likely tokens whose "
                              "probabilities add up to p (1 = off)")
        self.seed_on = QCheckBox("fixed seed", self)
        self.seed_on.setToolTip("With a fixed seed, sampling is repeatable: the same settings give "
                                "the same text")
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setEnabled(False)
        self.n_shown = QSpinBox(self)
        self.n_shown.setRange(MIN_SHOWN, MAX_SHOWN)
        self.n_shown.setValue(20)
        self.n_shown.setToolTip("How many candidates the chart shows")
        self.show_logits = QCheckBox("show logits", self)
        self.show_logits.setToolTip("Show the raw logits (before temperature and softmax) "
                                    "instead of probabilities")
        self.resample_button = QPushButton("Resample", self)
        self.resample_button.setToolTip("Draw the last token again under these settings (R)")

        # the boxes may shrink below the width of their largest value (2^31 for the seed): the
        # panel must fit beside the attention panel in a 1024-pixel window
        for box, width in ((self.temp_box, 64), (self.top_k, 56), (self.top_p, 56),
                           (self.seed, 64), (self.n_shown, 52)):
            box.setMinimumWidth(width)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        grid.addWidget(_label("Temperature"), 0, 0)
        grid.addWidget(self.temp_slider, 0, 1, 1, 4)
        grid.addWidget(self.temp_box, 0, 5)
        grid.addWidget(_label("top-k"), 1, 0)
        grid.addWidget(self.top_k, 1, 1)
        grid.addWidget(_label("top-p"), 1, 2)
        grid.addWidget(self.top_p, 1, 3)
        grid.addWidget(self.seed_on, 1, 4)
        grid.addWidget(self.seed, 1, 5)
        grid.addWidget(_label("bars"), 2, 0)
        grid.addWidget(self.n_shown, 2, 1)
        grid.addWidget(self.show_logits, 2, 2, 1, 2)
        grid.addWidget(self.resample_button, 2, 4, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

        self.temp_slider.valueChanged.connect(self._on_slider)
        self.temp_box.valueChanged.connect(self._on_box)
        self.top_k.valueChanged.connect(self._emit_changed)
        self.top_p.valueChanged.connect(self._emit_changed)
        self.seed.valueChanged.connect(self._emit_changed)
        self.seed_on.toggled.connect(self._on_seed_toggled)
        self.n_shown.valueChanged.connect(self.view_changed)
        self.show_logits.toggled.connect(self.view_changed)

    @property
    def temperature(self) -> float:
        return round(self.temp_box.value(), 4)

    def values(self) -> dict:
        return {"temperature": self.temperature, "top_k": self.top_k.value(),
                "top_p": round(self.top_p.value(), 4),
                "seed": self.seed.value() if self.seed_on.isChecked() else None}

    def set_values(self, temperature: float, top_k: int, top_p: float, seed: int | None) -> None:
        """Show settings that came from elsewhere, without echoing them back as a change."""
        widgets = (self.temp_slider, self.temp_box, self.top_k, self.top_p, self.seed,
                   self.seed_on)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.temp_box.setValue(temperature)
            self.temp_slider.setValue(round(temperature / T_STEP))
            self.top_k.setValue(top_k)
            self.top_p.setValue(top_p)
            self.seed_on.setChecked(seed is not None)
            self.seed.setEnabled(seed is not None)
            if seed is not None:
                self.seed.setValue(seed)
        finally:
            for w in widgets:
                w.blockSignals(False)

    @Slot(int)
    def _on_slider(self, v: int) -> None:
        self.temp_box.blockSignals(True)
        self.temp_box.setValue(v * T_STEP)
        self.temp_box.blockSignals(False)
        self.changed.emit()

    @Slot(float)
    def _on_box(self, v: float) -> None:
        self.temp_slider.blockSignals(True)
        self.temp_slider.setValue(round(v / T_STEP))
        self.temp_slider.blockSignals(False)
        self.changed.emit()

    @Slot(bool)
    def _on_seed_toggled(self, on: bool) -> None:
        self.seed.setEnabled(on)
        self.changed.emit()

    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()


def _label(text: str) -> QLabel:
    lab = QLabel(text)
    lab.setStyleSheet(f"color: {THEME.muted};")
    return lab


class _PercentAxis(FastAxis):
    """Bottom axis that prints probabilities as percentages (logits as plain numbers)."""

    percent = True

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph API
        """No tick past 100 %: the range goes further only to make room for the bar labels."""
        levels = super().tickValues(minVal, maxVal, size)
        if not self.percent:
            return levels
        return [(spacing, [v for v in values if v <= 1.0 + 1e-9]) for spacing, values in levels]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph API
        if not self.percent:
            return super().tickStrings(values, scale, spacing)
        digits = 0 if spacing * 100 >= 1 else 1
        return [f"{v * 100:.{digits}f}%" for v in values]


#: the bar chart never gets shorter than this (fewer bars are shown instead: see _fitting_bars)
MIN_PLOT_H = 150


class DistributionPanel(QWidget):
    """Top candidates for the next token as horizontal bars, plus the sampling controls."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.controls = SamplingControls(self)
        self.controls.changed.connect(self._on_controls)
        self.controls.view_changed.connect(self.request_redraw)
        self.controls.resample_button.clicked.connect(session.resample)

        self.summary = QuietLabel(self, word_wrap=True)  # new text each step: no window relayout
        self.summary.setFont(ui_font(THEME.font_pt + 1))
        self.summary.setTextFormat(Qt.TextFormat.RichText)

        self.axis = _PercentAxis("bottom")
        self.axis.enableAutoSIPrefix(False)
        self.view = pg.PlotWidget(self, axisItems={"bottom": self.axis,
                                                   "left": FastAxis("left")})
        self.view.setMinimumHeight(MIN_PLOT_H)
        self.plot: pg.PlotItem = self.view.getPlotItem()
        style_plot(self.plot, x="probability of being the next token")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.invertY(True)
        self.plot.showGrid(x=False, y=False)  # values are printed on the bars; a grid costs ms a frame
        self.plot.getAxis("left").setTickFont(mono_font(THEME.font_pt + 1))
        self.plot.getAxis("left").setStyle(tickLength=0)
        self.plot.getAxis("left").setWidth(LABEL_AXIS_MIN)
        self._label_width = LABEL_AXIS_MIN
        self._label_metrics = QFontMetrics(mono_font(THEME.font_pt + 1))
        for name in ("left", "bottom"):
            # fixed text space (the left axis has a fixed width, the bottom one keeps its default
            # 18 px): auto-expanding re-sizes the axis and drops its cached picture at every paint,
            # which re-rendered both axes and painted the plot twice per step
            self.plot.getAxis(name).setStyle(autoExpandTextSpace=False)
        self.bars = pg.BarGraphItem(x0=[0.0], y=[0.0], height=0.72, width=[0.0], brush=THEME.grid,
                                    pen=pg.mkPen(None))
        self.plot.addItem(self.bars)
        # with heads switched off: the same candidates with every head on, hollow, beside
        self.ghost_bars = pg.BarGraphItem(x0=[0.0], y=[0.0], height=0.36, width=[0.0],
                                          brush=pg.mkBrush(THEME.muted + "40"),
                                          pen=pg.mkPen(THEME.muted, width=1.2,
                                                       style=Qt.PenStyle.DashLine))
        self.ghost_bars.hide()
        self.plot.addItem(self.ghost_bars)
        self.ghost_values = np.zeros(0)  # what the ghost bars show (for tests and hover)
        self._bar_brushes = tuple(QBrush(qcolor(c)) for c in (THEME.accent, "#5f7ea8", THEME.grid))
        self._bar_pens = (pg.mkPen(THEME.accent2, width=2), pg.mkPen(None))
        self.labels = TextLabels(ui_font(THEME.font_pt - 1))  # the value beside each bar
        self.plot.addItem(self.labels)
        self.cutoff = pg.InfiniteLine(angle=0, movable=False,
                                      pen=pg.mkPen(THEME.accent2, width=2, style=Qt.PenStyle.DashLine),
                                      label="top-k / top-p cut-off",
                                      labelOpts={"position": 0.82, "color": THEME.accent2,
                                                 "anchors": [(0.5, 1.1), (0.5, 1.1)]})
        self.cutoff.hide()
        self.plot.addItem(self.cutoff)
        self.view.scene().sigMouseClicked.connect(self._on_click)
        self.view.scene().sigMouseMoved.connect(self._on_hover)
        self.view.setToolTip("Click a bar to make that candidate the next token")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(6)
        lay.addWidget(self.controls)
        lay.addWidget(self.summary)
        lay.addWidget(self.view, 1)

        self.shown_ids = np.zeros(0, dtype=np.int64)
        self.redraws = 0
        self._ticks: list = []
        self._x_range: tuple[float, float] | None = None
        self._n_bars = -1
        self._x_title = "probability of being the next token"  # the bottom axis' title
        self._redraw = Redraw(self.redraw, ms=0, parent=self, widget=self)
        session.step_ready.connect(self._on_step)
        session.sample_changed.connect(self._on_sample)
        session.model_changed.connect(self._on_model_changed)
        self._show_sample(session.sample if session._sample is not None else None)
        if session.config is not None:  # made after the model: start from the session's state
            self._on_model_changed()
            self.request_redraw()

    # -- settings -----------------------------------------------------------------------------
    def _show_sample(self, s: SampleConfig | None) -> None:
        if s is not None:
            self.controls.set_values(s.temperature, s.top_k, s.top_p, s.seed)

    @Slot()
    def _on_controls(self) -> None:
        try:
            cfg = SampleConfig(**self.controls.values())
        except ConfigError as e:
            self.session.message.emit(str(e))
            return
        self.session.set_sample(cfg)

    @Slot(object)
    def _on_sample(self, s: SampleConfig) -> None:
        if self.controls.values() != {"temperature": s.temperature, "top_k": s.top_k,
                                      "top_p": s.top_p, "seed": s.seed}:
            self._show_sample(s)
        self.request_redraw()

    def _fit_labels(self, ticks: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Widen the label axis for longer pieces (BPE tokens: ``␣forgetfulness``), up to
        LABEL_AXIS_MAX; longer ones are elided. A label that does not fit is not drawn at all
        by pyqtgraph. The axis only grows (until the next model): resizing it re-lays out the
        plot."""
        fm = self._label_metrics
        need = max((fm.horizontalAdvance(p) for _, p in ticks), default=0) + 8
        want = min(LABEL_AXIS_MAX, max(self._label_width, need))
        if want != self._label_width:
            self._label_width = want
            self.plot.getAxis("left").setWidth(want)
        room = want - 8
        return [(j, p if fm.horizontalAdvance(p) <= room
                 else fm.elidedText(p, Qt.TextElideMode.ElideRight, room)) for j, p in ticks]

    @Slot()
    def _on_model_changed(self) -> None:
        if self._label_width != LABEL_AXIS_MIN:
            self._label_width = LABEL_AXIS_MIN
            self.plot.getAxis("left").setWidth(LABEL_AXIS_MIN)
            self._ticks = []
        tok = self.session.tokenizer
        if tok is not None:
            self.controls.top_k.setMaximum(tok.vocab_size)
        encoder = self.session.is_encoder  # nothing to resample: an encoder does not generate
        self.controls.resample_button.setEnabled(not encoder)
        self._show_sample(self.session.sample)

    @Slot(object)
    def _on_step(self, _result: StepResult) -> None:
        self.request_redraw()

    @Slot()
    def request_redraw(self) -> None:
        self._redraw.request()

    def flush(self) -> None:
        self._redraw.flush()

    def catch_up(self) -> None:
        """The dock's tab came to the front: draw what was skipped while it was behind."""
        self._redraw.catch_up()

    # -- drawing ------------------------------------------------------------------------------
    def redraw(self) -> None:
        r = self.session.result
        tok = self.session.tokenizer
        if r is None or tok is None:
            return
        self.redraws += 1
        d = r.dist
        n = min(self.controls.n_shown.value(), self.fitting_bars(), d.order.size)
        ids = d.order[:n]
        kept = d.kept[ids]
        logits_mode = self.controls.show_logits.isChecked()
        probs = np.where(kept, d.probs[ids], d.full_probs[ids])
        vals = d.logits[ids].astype(np.float64) if logits_mode else probs
        planned = highlighted_token(r)
        # shared QBrush / QPen objects: pyqtgraph makes a new one per bar from anything else
        b_plan, b_kept, b_cut = self._bar_brushes
        p_plan, p_none = self._bar_pens
        brushes = [b_plan if i == planned else (b_kept if k else b_cut)
                   for i, k in zip(ids.tolist(), kept.tolist(), strict=True)]
        pens = [p_plan if i == planned else p_none for i in ids.tolist()]
        y = np.arange(n, dtype=float)
        intact = r.intact_dist() if r.intact_logits is not None else None
        if intact is None:
            self.bars.setOpts(x0=np.zeros(n), y=y, height=0.72, width=vals, brushes=brushes,
                              pens=pens)
            if self.ghost_bars.isVisible():
                self.ghost_bars.hide()
            self.ghost_values = np.zeros(0)
            ghost = None
        else:  # side by side: ablated above, every head on (ghost) below, in each row
            ghost = (intact.logits[ids].astype(np.float64) if logits_mode else
                     np.where(kept, intact.probs[ids], intact.full_probs[ids]))
            self.bars.setOpts(x0=np.zeros(n), y=y - 0.19, height=0.38, width=vals,
                              brushes=brushes, pens=pens)
            self.ghost_bars.setOpts(x0=np.zeros(n), y=y + 0.19, height=0.34, width=ghost)
            self.ghost_bars.show()
            self.ghost_values = ghost
        both = vals if ghost is None else np.concatenate([vals, ghost])
        lo = min(0.0, float(both.min())) if n else 0.0
        hi = max(float(both.max()) if n else 1.0, 1e-6)
        span = hi - lo
        labels = []
        text_c, muted_c = qcolor(THEME.text), qcolor(THEME.muted)
        for j in range(n):
            v = float(vals[j])
            if logits_mode:
                s = f"{v:+.2f}"
            else:
                s = (f"{v * 100:.1f}%" if v >= 0.001 else
                     f"{v * 100:.2f}%" if v >= 0.0001 else "<0.01%")
                if not kept[j]:
                    s = f"({s})"
            if ghost is not None:  # the change the switched-off heads made
                change = v - float(ghost[j])
                if logits_mode and abs(change) >= 0.005:
                    s += f"  {change:+.2f}"
                elif not logits_mode and abs(change) >= 0.0005:  # below 0.05 points: noise
                    s += f"  {change * 100:+.1f} pts"
            labels.append((max(v, float(ghost[j]) if ghost is not None else v, 0.0), float(j), s,
                           text_c if kept[j] else muted_c))
        self.labels.set_labels(labels)
        ticks = list(enumerate(tok.token_pieces(ids.tolist())))
        if ticks != self._ticks:  # re-rendering an axis is one of the costlier parts of a redraw
            self._ticks = ticks
            self.plot.getAxis("left").setTicks([self._fit_labels(ticks), []])
        n_kept = int(kept.sum())
        if n_kept < n:
            self.cutoff.setPos(n_kept - 0.5)
            self.cutoff.show()
        else:
            self.cutoff.hide()
        self.axis.percent = not logits_mode
        x_title = ("logit (raw score)" if logits_mode else
                   "probability of being the next token" if r.predicted_at is None else
                   f"probability of the token at position {r.predicted_at}")
        if x_title != self._x_title:
            self._x_title = x_title
            self.plot.setLabel("bottom", x_title, color=THEME.muted)
        x_range = (_nice_floor(lo), _nice_ceil(lo + span * 1.22))
        if x_range != self._x_range:  # a stable range keeps the axis' cached picture
            self._x_range = x_range
            self.plot.setXRange(*x_range, padding=0)
        if n != self._n_bars:
            self._n_bars = n
            self.plot.setYRange(-0.6, max(n, 1) - 0.4, padding=0)
        # apply a new range now: pyqtgraph would apply it while painting, and the items moved
        # by it would then be painted a second time
        self.plot.vb.updateMatrix()
        self.shown_ids = ids.copy()
        self._update_summary(r, d, tok, n)

    def fitting_bars(self) -> int:
        """How many bars fit the chart's height with their labels one line apart (at least
        MIN_SHOWN): a short window shows fewer bars instead of printing labels over each other."""
        line = QFontMetricsF(self.plot.getAxis("left").style["tickFont"]
                             or self.font()).height() * 1.1
        height = self.plot.vb.size().height() if self.plot.vb is not None else 0.0
        if height <= 1:  # not laid out yet
            return MAX_SHOWN
        return max(MIN_SHOWN, int(height // line))

    def resizeEvent(self, e) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(e)
        # the chart's new height may fit more or fewer bars (after the layout has settled)
        QTimer.singleShot(0, self._refit)

    @Slot()
    def _refit(self) -> None:
        n = min(self.controls.n_shown.value(), self.fitting_bars())
        if self.session.result is not None and n != self._n_bars:
            self.request_redraw()

    def _update_summary(self, r: StepResult, d: Distribution, tok: Tokenizer,
                        n: int) -> None:
        if r.predicted_at is not None:
            self.summary.setText(encoder_summary(r, d, tok))
            return
        h = d.entropy
        planned = int(r.planned)
        p_plan = float(d.probs[planned])
        lines = [f"Next: <b style='color:{THEME.accent}'>{_html(tok.token_pieces([planned])[0])}"
                 f"</b> {p_plan * 100:.1f}% (rank {d.rank_of(planned) + 1})"
                 f" &nbsp;·&nbsp; entropy <b>{h:.2f}</b> nats = {h / math.log(2):.2f} bits"
                 f" &nbsp;·&nbsp; like {math.exp(h):.1f} equally likely choices"]
        cut = []
        if d.top_k:
            cut.append(f"top-k {d.top_k}")
        if d.top_p < 1:
            cut.append(f"top-p {d.top_p:.2f}")
        if cut:
            lines.append(f"<span style='color:{THEME.muted}'>{' and '.join(cut)} keep "
                         f"{d.n_kept} of {d.order.size} tokens</span>")
        intact = r.intact_dist() if r.intact_logits is not None else None
        if intact is not None:
            p0 = float(intact.probs[planned])
            lines.append(f"<span style='color:{THEME.accent2}'>Heads off: {r.ablation.label()}"
                         f"</span> · with every head on (dashed bars) "
                         f"{_html(tok.token_pieces([planned])[0])} had {p0 * 100:.1f}% "
                         f"(<b>{(p_plan - p0) * 100:+.1f} points</b>)")
        if r.chosen is not None:
            how = "forced" if r.forced else "sampled"
            lines.append(f"<span style='color:{THEME.muted}'>Last step {how} "
                         f"{_html(tok.token_pieces([int(r.chosen)])[0])}"
                         f" with p = {(r.chosen_prob or 0) * 100:.1f}%, rank "
                         f"{(r.chosen_rank or 0) + 1}</span>")
        self.summary.setText("<br>".join(lines))

    # -- mouse --------------------------------------------------------------------------------
    def bar_at(self, scene_pos) -> int:
        """Rank of the bar under a scene position, or -1."""
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return -1
        p = vb.mapSceneToView(scene_pos)
        j = int(round(p.y()))
        if 0 <= j < self.shown_ids.size and abs(p.y() - j) <= 0.45:
            return j
        return -1

    @Slot(object)
    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        j = self.bar_at(ev.scenePos())
        if j >= 0 and not self.session.is_encoder:  # an encoder's bars are a prediction only
            ev.accept()
            self.session.step(force=int(self.shown_ids[j]))

    @Slot(object)
    def _on_hover(self, pos) -> None:
        j = self.bar_at(pos)
        r, tok = self.session.result, self.session.tokenizer
        encoder = r is not None and r.predicted_at is not None
        if j < 0 or r is None or tok is None:
            self.view.setToolTip("The encoder's prediction for the chosen position" if encoder
                                 else "Click a bar to make that candidate the next token")
            return
        tid = int(self.shown_ids[j])
        d = r.dist
        kept = bool(d.kept[tid])
        self.view.setToolTip(
            f"{tok.token_pieces([tid])[0]!r} (id {tid}, bytes {tok.token_bytes(tid).hex(' ')}), "
            f"rank {j + 1}\n"
            f"logit {float(d.logits[tid]):+.3f}\n"
            f"after temperature {float(d.full_probs[tid]) * 100:.2f}%"
            + (f", sampled with {float(d.probs[tid]) * 100:.2f}%" if kept
               else " — removed by top-k / top-p")
            + ("" if encoder else "\nclick: make it the next token"))


def highlighted_token(r: StepResult) -> int:
    """The bar drawn highlighted: the token the next step will pick; for an encoder the token
    that really stands at the predicted position (hidden behind [MASK] or not)."""
    if r.predicted_at is not None and r.original_ids is not None:
        orig = int(r.original_ids[r.predicted_at])
        if r.config is None or orig != r.config.mask_id:
            return orig
    return int(r.planned)


def encoder_summary(r: StepResult, d: Distribution, tok: Tokenizer) -> str:
    """The title and summary of an encoder's prediction at ``r.predicted_at``: which token is
    hidden there, the most likely fill, and how sure the model is."""
    p = int(r.predicted_at)
    masked = p in (r.masked_positions or ())
    orig = int(r.original_ids[p]) if r.original_ids is not None else int(r.ids[p])
    piece = _html(tok.token_pieces([orig])[0])
    if not masked:
        what = f"not masked: '{piece}' — the model sees it; click its chip to hide it"
    elif orig == int(r.ids[p]):
        what = "[MASK] written in the text"
    else:
        what = f"masked: '{piece}'"
    mask = (f" &nbsp;<span style='color:{THEME.accent2}'>under a causal mask (as GPT): only "
            "the tokens before it are seen</span>" if r.causal_view else "")
    h = d.entropy
    best = int(d.order[0])
    p_best = float(d.probs[best])
    lines = [f"<b>Prediction at position {p}</b> ({what}){mask}",
             f"Most likely <b style='color:{THEME.accent}'>{_html(tok.token_pieces([best])[0])}"
             f"</b> {p_best * 100:.1f}% &nbsp;·&nbsp; entropy <b>{h:.2f}</b> nats = "
             f"{h / math.log(2):.2f} bits"]
    if highlighted_token(r) == orig:  # the token there, not a [MASK] typed in the text
        p_orig = float(d.full_probs[orig])
        lines[-1] += (f" &nbsp;·&nbsp; the {'hidden' if masked else 'visible'} '{piece}' "
                      f"(outlined) has {p_orig * 100:.1f}% (rank {d.rank_of(orig) + 1})")
    intact = r.intact_dist() if r.intact_logits is not None else None
    if intact is not None:
        p0 = float(intact.probs[best])
        lines.append(f"<span style='color:{THEME.accent2}'>Heads off: {r.ablation.label()}"
                     f"</span> · with every head on (dashed bars) "
                     f"{_html(tok.token_pieces([best])[0])} had {p0 * 100:.1f}% "
                     f"(<b>{(p_best - p0) * 100:+.1f} points</b>)")
    return "<br>".join(lines)


def _nice(x: float, up: bool) -> float:
    """x rounded up (or down) to 1, 1.5, 2, 3, 4, 5, 6, 8 × a power of ten."""
    if x == 0 or not math.isfinite(x):
        return 0.0
    sign = 1.0 if x > 0 else -1.0
    a = abs(x)
    e = 10.0 ** math.floor(math.log10(a))
    steps = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
    want_larger = up == (sign > 0)
    m = a / e
    if want_larger:
        v = next(s for s in steps if s >= m - 1e-9)
    else:
        v = next(s for s in reversed(steps) if s <= m + 1e-9)
    return sign * v * e


def _nice_ceil(x: float) -> float:
    return _nice(x, up=True)


def _nice_floor(x: float) -> float:
    return _nice(x, up=False)


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["DistributionPanel", "SamplingControls"]
