"""Ablation panel: switch attention heads off and see which heads matter for the next token.

A button per head (layers down, heads across) switches it off or on; the heads stay off through
stepping until switched back on (H). What an off head outputs is zero, or its mean output over
the context's positions. Below, every head is ranked by how much switching it off *alone*
changes the log-probability of the planned token at the current position (the worker measures
all heads in one batched pass, :func:`model.head_effects.head_effects`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from explorer.redraws import LiveRedraw
from explorer.theme import THEME
from explorer.widgets.exports import export_button
from explorer.widgets.layout import TEXT_PT, flow_bar, labeled, status_label
from explorer.widgets.plot_helpers import SeriesPlot
from model.ablation import Ablation, HeadEffects

if TYPE_CHECKING:
    from explorer.session import Session

MODES = {"zero": "zero", "mean": "mean over the context"}
MAX_BUTTONS = 24 * 25  # a GPT-2 small has 144 heads; beyond this the grid would be unreadable


class AblationPanel(LiveRedraw, QWidget):
    """Head switches, the ablation mode and the per-head ranking."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.buttons: dict[tuple[int, int], QPushButton] = {}
        self._asked_for: tuple | None = None  # the state a ranking was last asked for
        self._init_redraw()

        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.setSpacing(4)
        self.mode_box = QComboBox()
        for m, text in MODES.items():
            self.mode_box.addItem(text, m)
        self.mode_box.setToolTip("What a switched-off head outputs: zero, or its mean output "
                                 "over the positions of the context")
        self.mode_box.currentIndexChanged.connect(
            lambda i: session.set_ablation_mode(self.mode_box.itemData(i)))
        self.restore_button = QPushButton("Every head on (H)")
        self.restore_button.clicked.connect(session.restore_heads)
        bar, _flow = flow_bar(self, labeled("Off heads output", self.mode_box),
                              self.restore_button, export_button(self, lambda: self.plot))
        root.addWidget(bar)
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        f = self.intro.font()
        f.setPointSize(TEXT_PT)
        self.intro.setFont(f)
        root.addWidget(self.intro)
        self.grid_box = QWidget()
        self.grid = QGridLayout(self.grid_box)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        root.addWidget(self.grid_box)

        self.plot = SeriesPlot(name="head-ranking", x_title="change in log p(planned token)",
                               y_title="head switched off alone")
        self.plot.export_header = self._export_header
        self.plot.plot.invertY(True)
        self.plot.plot.showGrid(x=True, y=False, alpha=0.25)
        self.plot.plot.setMouseEnabled(x=False, y=False)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.rank_bars = pg.BarGraphItem(x0=[0.0], y=[0.0], height=0.7, width=[0.0])
        self.plot.plot.addItem(self.rank_bars)
        root.addWidget(self.plot, 1)
        self.hover_label = status_label()
        root.addWidget(self.hover_label)
        self.ranking: list[tuple[int, int, float]] = []

        session.model_changed.connect(self._on_model_changed)
        session.step_ready.connect(self.schedule_redraw)
        session.sample_changed.connect(self.schedule_redraw)
        session.ablation_changed.connect(self._on_ablation)
        session.heads_ranked.connect(self._on_ranked)
        self._on_model_changed()

    # -- head switches --------------------------------------------------------------------------
    @Slot()
    def _on_model_changed(self) -> None:
        for b in self.buttons.values():
            b.deleteLater()
        self.buttons.clear()
        self.ranking = []
        self._asked_for = None
        cfg = self.session.config
        # an encoder-decoder: the heads are its decoder's masked self-attention, switched off
        # to zero (mean ablation needs the whole context in one pass)
        seq2seq = cfg is not None and cfg.kind == "encoder-decoder"
        mean = self.mode_box.model().item(self.mode_box.findData("mean"))
        mean.setEnabled(not seq2seq)
        mean.setToolTip("not for an encoder-decoder: its heads are switched off to zero"
                        if seq2seq else "")
        if cfg is not None and cfg.n_layer * cfg.n_head <= MAX_BUTTONS:
            for li in range(cfg.n_layer):
                lab = QLabel(f"decoder layer {li}" if seq2seq else f"layer {li}")
                lab.setStyleSheet(f"color: {THEME.muted};")
                self.grid.addWidget(lab, li, 0)
                for hi in range(cfg.n_head):
                    b = QPushButton(f"H{hi}")
                    b.setCheckable(True)
                    b.setToolTip(f"Switch head {hi} of layer {li} off (or back on)")
                    b.setMinimumWidth(36)
                    b.clicked.connect(lambda _c=False, li=li, hi=hi:
                                      self.session.toggle_head(li, hi))
                    self.grid.addWidget(b, li, hi + 1)
                    self.buttons[(li, hi)] = b
        self._on_ablation(self.session.ablation)
        self.schedule_redraw()

    @Slot(object)
    def _on_ablation(self, ablation: Ablation) -> None:
        off_style = f"background: {THEME.accent2}; color: {THEME.background}; font-weight: bold;"
        for key, b in self.buttons.items():
            off = key in ablation.heads
            b.setChecked(off)
            b.setStyleSheet(off_style if off else "")
            b.setText(f"H{key[1]} off" if off else f"H{key[1]}")
        i = self.mode_box.findData(ablation.mode)
        if i != self.mode_box.currentIndex():
            self.mode_box.blockSignals(True)
            self.mode_box.setCurrentIndex(i)
            self.mode_box.blockSignals(False)
        off = f"Off now: {ablation.label()}." if ablation else "Every head is on."
        self.intro.setText(f"Click a head to switch it off; click again to switch it back on. "
                           f"{off} The next-token bars compare with every head on.")
        self.schedule_redraw()

    # -- ranking --------------------------------------------------------------------------------
    def redraw_now(self) -> None:
        """Ask for the ranking of the current result (once per state), or draw the one there."""
        if not self._begin_redraw():
            return
        r = self.session.result
        if r is None:
            return
        eff = self.session.head_effects
        if eff is not None and eff.mode == self.session.ablation.mode:
            self._draw(eff)
            return
        # an encoder: the ranking is for the position whose prediction is shown
        state = (r.ids.tobytes(), int(r.planned), self.session.ablation.mode, r.predicted_at,
                 r.causal_view)
        if state != self._asked_for:
            self._asked_for = state
            self.hover_label.setText("ranking the heads …")
            self.session.rank_heads()

    @Slot(object)
    def _on_ranked(self, effects: HeadEffects) -> None:
        self.schedule_redraw()

    def _draw(self, eff: HeadEffects) -> None:
        tok = self.session.tokenizer
        ranking = eff.ranking()
        self.ranking = ranking
        n = len(ranking)
        d = np.array([x for *_, x in ranking], dtype=np.float64)
        off = self.session.ablation.heads
        brushes = [pg.mkBrush(THEME.accent2 if (li, hi) in off else
                              (THEME.accent if v < 0 else "#5f7ea8")) for li, hi, v in ranking]
        self.rank_bars.setOpts(x0=np.zeros(n), y=np.arange(n, dtype=float), height=0.7,
                               width=d, brushes=brushes, pens=[pg.mkPen(None)] * n)
        names = [f"L{li}H{hi}" for li, hi, _ in ranking]
        step = max(1, n // 40)
        self.plot.plot.getAxis("left").setTicks([[(j, names[j]) for j in range(0, n, step)], []])
        lo, hi = min(0.0, float(d.min())), max(0.0, float(d.max()))
        pad = 0.05 * (hi - lo or 1.0)
        self.plot.plot.setXRange(lo - pad, hi + pad, padding=0)
        self.plot.plot.setYRange(-0.6, n - 0.4, padding=0)
        self.plot.set_table(d[:, None], names, ["change in log p"])
        piece = tok.token_pieces([eff.token])[0] if tok is not None else str(eff.token)
        top = max(ranking, key=lambda x: abs(x[2]))
        self.hover_label.setText(
            f"'{piece}': log p {eff.base_logprob:.2f} with every head on; largest change: "
            f"L{top[0]}H{top[1]} off, {top[2]:+.2f} ({eff.mode}). Left of 0: the head helps.")

    def _export_header(self) -> str:
        eff = self.session.head_effects
        if eff is None:
            return "head ranking"
        return (f"change in log p(token {eff.token}) when one head is switched off alone "
                f"({eff.mode} ablation); log p with every head on = {eff.base_logprob:.6f}")


__all__ = ["AblationPanel"]
