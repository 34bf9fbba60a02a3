"""Compare mode: two runs side by side, stepped with one key.

Each column is a :class:`~explorer.session.Session` with its own inference worker (its own model
and stepper), shown by the same panels the main window uses: the token strip, the next-token
bars with their sampling controls, and the attention panel. The columns differ in whatever the
user sets: the prompt, temperature / top-k / top-p, the model (Open…) or the heads switched off
(ablated against intact). Space / → steps both, ← / Backspace undoes a step in both, Home goes
back to both prompts.

:class:`ColumnSpec` says how a column starts; :func:`parse_column_spec` reads the
``--compare`` option's ``key=value;…`` form.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.panels.attention.panel import AttentionPanel
from explorer.panels.distribution import DistributionPanel
from explorer.session import Session
from explorer.theme import THEME, ui_font
from explorer.widgets.token_strip import ChipScroll, TokenStrip
from model.ablation import NO_ABLATION, Ablation
from model.config import ConfigError, SampleConfig
from model.step_result import StepResult

COLUMN_MIN_HEIGHT = 880  # pixels for the strip, the bars and the attention view
STATUS_MS = 10000  # how long a message stays under a column's settings
COLUMN_BARS = 12  # candidates shown per column (the main window's panel shows 20)
MODEL_FILTER = "Transformer Explorer models (*.safetensors);;All files (*)"


@dataclass(frozen=True)
class ColumnSpec:
    """How one column starts: its model, prompt, sampling settings and heads switched off."""

    checkpoint: Path | None  # None: the untrained default model
    prompt: str
    sample: SampleConfig
    ablation: Ablation = NO_ABLATION


NO_SPEC = ColumnSpec(None, "", SampleConfig())  # what parse_column_spec changes, to check it

SPEC_KEYS = ("checkpoint", "prompt", "temperature", "top_k", "top_p", "seed", "ablate",
             "ablation")


def parse_column_spec(text: str, base: ColumnSpec) -> ColumnSpec:
    """``base`` changed by ``key=value`` pairs separated by ``;`` (keys: SPEC_KEYS), e.g.
    ``temperature=1.5`` or ``ablate=0.1,1.3;ablation=mean``. ConfigError names what is wrong."""
    fields: dict[str, str] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in SPEC_KEYS:
            raise ConfigError(f"{part!r} is not KEY=VALUE with KEY one of {', '.join(SPEC_KEYS)}")
        fields[key] = value.strip() if key != "prompt" else value.replace("\\n", "\n")
    sample = base.sample
    try:
        numbers = {k: kind(fields[k]) for k, kind in (("temperature", float), ("top_k", int),
                                                      ("top_p", float), ("seed", int))
                   if k in fields}
    except ValueError as e:
        raise ConfigError(f"--compare: {e}") from None
    if numbers:
        sample = SampleConfig(**{**dataclasses.asdict(sample), **numbers})
    ablation = base.ablation
    if "ablate" in fields or "ablation" in fields:
        ablation = Ablation.parse(fields.get("ablate", ",".join(
            f"{li}.{h}" for li, h in sorted(base.ablation.heads))),
            fields.get("ablation", base.ablation.mode))
    checkpoint = base.checkpoint
    if "checkpoint" in fields:
        from model.shipped import resolve_checkpoint

        checkpoint = resolve_checkpoint(fields["checkpoint"])
    return ColumnSpec(checkpoint, fields.get("prompt", base.prompt), sample, ablation)


class CompareColumn(QWidget):
    """One run: its settings row, token strip, next-token bars and attention view."""

    def __init__(self, title: str, spec: ColumnSpec, device: str = "cpu",
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self._sized = False
        self.session = Session(device=device, sample=spec.sample, parent=self)
        s = self.session
        s.prompt = spec.prompt
        if spec.ablation:
            s.set_ablation(spec.ablation)  # applied once the model is there

        self.title = QLabel(f"<b>{title}</b>")
        self.title.setFont(ui_font(THEME.font_pt + 1))
        self.model_label = QLabel("loading \u2026")
        self.model_label.setStyleSheet(f"color: {THEME.muted};")
        # a long model name is cut rather than widening the column
        self.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.open_button = QPushButton("Open model\u2026")
        self.open_button.setToolTip("Use another model in this column")
        self.open_button.clicked.connect(self.choose_model)
        self.prompt_edit = QLineEdit(spec.prompt.replace("\n", "\\n"))
        self.prompt_edit.setToolTip("This column's prompt (\\n: a new line); Enter applies it")
        self.prompt_edit.returnPressed.connect(self.apply_prompt)
        self.heads_edit = QLineEdit(",".join(f"{li}.{h}" for li, h in sorted(spec.ablation.heads)))
        self.heads_edit.setPlaceholderText("heads off: L.H,\u2026")
        self.heads_edit.setToolTip("Heads switched off in this column, e.g. 0.1,1.3 (layer.head, "
                                   "from 0); empty: every head on. Enter applies it")
        self.heads_edit.setMaximumWidth(150)
        self.heads_edit.returnPressed.connect(self.apply_heads)
        self.status = QLabel("")
        self.status.setStyleSheet(f"color: {THEME.muted};")
        self.status.setWordWrap(True)
        self._status_timer = QTimer(self)  # a message goes after a while, as in a status bar
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(STATUS_MS)
        self._status_timer.timeout.connect(self.status.clear)

        self.strip = TokenStrip()
        self.strip.show_planned = True
        self.strip_scroll = ChipScroll(self.strip)
        self._scroll_timer = QTimer(self)  # owned: it goes with the column
        self._scroll_timer.setSingleShot(True)
        self._scroll_timer.setInterval(0)
        self._scroll_timer.timeout.connect(self._scroll_to_end)
        self.distribution = DistributionPanel(s)
        # two columns share the height the main window gives one panel: fewer bars fit
        self.distribution.view.setMinimumHeight(120)
        self.distribution.controls.n_shown.setValue(COLUMN_BARS)
        self.attention = AttentionPanel(s)

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.model_label, 1)
        head.addWidget(self.open_button)
        row = QHBoxLayout()
        row.addWidget(QLabel("Prompt"))
        row.addWidget(self.prompt_edit, 1)
        row.addWidget(self.heads_edit)
        self.split = split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.strip_scroll)
        split.addWidget(self.distribution)
        split.addWidget(self.attention)
        split.setChildrenCollapsible(False)
        # below this the bars and the heatmap would be slivers: the column scrolls instead
        split.setMinimumHeight(COLUMN_MIN_HEIGHT)
        self.body = QScrollArea()
        self.body.setWidgetResizable(True)
        self.body.setFrameShape(QFrame.Shape.NoFrame)
        self.body.setWidget(split)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(3)
        lay.addLayout(head)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.body, 1)

        s.step_ready.connect(self._on_step)
        s.model_changed.connect(self._on_model)
        s.message.connect(self.show_status)
        s.error.connect(self._on_error)
        s.ablation_changed.connect(self._on_ablation)

    def start(self) -> None:
        self.session.start(self.spec.checkpoint, self.spec.prompt)

    def resizeEvent(self, e) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(e)
        if not self._sized and e.size().height() > 0:
            # the strip a few lines, the bars and the attention view the rest, evenly
            self._sized = True
            h = max(COLUMN_MIN_HEIGHT, e.size().height() - 70)
            strip = min(110, h // 7)
            self.split.setSizes([strip, (h - strip) * 9 // 20, (h - strip) * 11 // 20])

    # -- user ---------------------------------------------------------------------------------
    @Slot()
    def apply_prompt(self) -> None:
        self.session.set_prompt(self.prompt_edit.text().replace("\\n", "\n"))

    @Slot()
    def apply_heads(self) -> None:
        try:
            ablation = Ablation.parse(self.heads_edit.text(), self.session.ablation.mode)
        except ConfigError as e:
            self.show_status(str(e))
            return
        self.status.clear()
        self.session.set_ablation(ablation)

    @Slot()
    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model for this column", "",
                                              MODEL_FILTER)
        if path:
            self.session.load_checkpoint(path)

    # -- session ------------------------------------------------------------------------------
    @Slot()
    def _on_model(self) -> None:
        s = self.session
        tok = s.tokenizer
        self.strip.lookup = tok.token_pieces if tok is not None else None
        if s.info is not None:
            self.model_label.setText(f"{s.info.name} \u00b7 {s.info.n_params:,} parameters")

    @Slot(object)
    def _on_step(self, result: StepResult) -> None:
        self.strip.set_result(result)
        self._scroll_timer.start()  # once the strip has its new height

    @Slot()
    def _scroll_to_end(self) -> None:
        bar = self.strip_scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    @Slot(str)
    def show_status(self, text: str) -> None:
        self.status.setText(text)
        self._status_timer.start()

    @Slot(str, str)
    def _on_error(self, title: str, text: str) -> None:
        self.status.setText(f"{title}: {text}")  # stays until the next message

    @Slot(object)
    def _on_ablation(self, ablation: Ablation) -> None:
        text = ",".join(f"{li}.{h}" for li, h in sorted(ablation.heads))
        if text != self.heads_edit.text():
            self.heads_edit.setText(text)

    def close_session(self) -> None:
        self.session.close()


class CompareWindow(QWidget):
    """Two :class:`CompareColumn` side by side and the keys that step both."""

    closed = Signal()

    def __init__(self, left: ColumnSpec, right: ColumnSpec, device: str = "cpu",
                 parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Transformer Explorer \u2014 side by side")
        self.setObjectName("CompareWindow")
        self.left = CompareColumn("Left", left, device, self)
        self.right = CompareColumn("Right", right, device, self)
        self.columns = (self.left, self.right)

        bar = QHBoxLayout()
        self.actions_list: list[QAction] = []
        for text, keys, tip, slot in (
                ("Step both \u25b6", ["Space", "Right"], "Generate one token in both columns",
                 self.step_both),
                ("\u25c0 Back both", ["Left", "Backspace"], "Undo the last token in both",
                 self.back_both),
                ("Reset both", ["Home"], "Back to both prompts", self.reset_both)):
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setToolTip(f"{tip} ({' / '.join(keys)})")
            a.triggered.connect(slot)
            self.addAction(a)
            self.actions_list.append(a)
            b = QToolButton()
            b.setDefaultAction(a)
            b.setMinimumWidth(96)
            bar.addWidget(b)
        hint = QLabel("Set each column's prompt, sampling, model or heads off; one key steps "
                      "both (Space / \u2192).")
        hint.setStyleSheet(f"color: {THEME.muted};")
        hint.setWordWrap(True)
        hint.setMinimumWidth(40)  # a narrow screen wraps it rather than widening the window
        bar.addWidget(hint, 1)
        # on a short screen the columns scroll, together: the same view stays side by side
        lb, rb = (c.body.verticalScrollBar() for c in self.columns)
        lb.valueChanged.connect(rb.setValue)
        rb.valueChanged.connect(lb.setValue)
        cols = QSplitter(Qt.Orientation.Horizontal)
        cols.addWidget(self.left)
        cols.addWidget(self.right)
        cols.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(bar)
        lay.addWidget(cols, 1)
        self.resize(1280, 720)

    @property
    def sessions(self) -> tuple[Session, Session]:
        return self.left.session, self.right.session

    def start(self) -> None:
        for c in self.columns:
            c.start()

    @Slot()
    def step_both(self) -> None:
        for c in self.columns:
            c.session.step()

    @Slot()
    def back_both(self) -> None:
        for c in self.columns:
            c.session.back()

    @Slot()
    def reset_both(self) -> None:
        for c in self.columns:
            c.session.reset()

    def closeEvent(self, e: QCloseEvent) -> None:  # noqa: N802 - Qt API
        for c in self.columns:
            c.close_session()
        self.closed.emit()
        super().closeEvent(e)


__all__ = ["NO_SPEC", "ColumnSpec", "CompareColumn", "CompareWindow", "parse_column_spec"]
