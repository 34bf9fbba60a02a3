"""Prompt & stepping panel: the prompt editor, the strip of token chips and the step controls.

Prompt tokens are neutral chips; generated tokens are coloured by the probability they had when
they were chosen (red = a long shot, green = the obvious choice; forced tokens get a dashed
border). Click a chip to select it (other panels follow the selection); double-click a generated
chip to rewind the text to it. The ghost chip at the end is the token the next step will pick.

Beside the chips the same text is shown as plain text (read aloud by a screen reader, copyable);
under them a legend gives the colours (which follow the palette, see explorer.theme).

Keyboard: Space / → / PageDown step, ← / Backspace / PageUp back (presentation clickers send
PageDown and PageUp), Ctrl+Enter run/stop, Esc stop, Home reset, R resample. While the prompt editor has the focus, the keys it uses (Space, Backspace, arrows,
letters) edit the text instead: the editor claims them through Qt's ShortcutOverride, so the
window's shortcuts never fire there. Esc leaves the editor.

For a BERT-style encoder (explorer.panels.masking) a click on a chip hides that token behind
[MASK] or restores it, and the step controls give way to the encoder's bar: an encoder does
not generate.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Slot
from PySide6.QtGui import (
    QAction,
    QColor,
    QFontMetrics,
    QKeySequence,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.panels.masking import EncoderBar, encoder_info
from explorer.session import source_too_long
from explorer.theme import NOTIFIER, THEME, mono_font, ui_font
from explorer.widgets.layout import QuietLabel, flow_bar
from explorer.widgets.token_strip import ChipLegend, ChipScroll, TokenStrip
from model.step_result import StepResult

if TYPE_CHECKING:
    from explorer.session import PromptCheck, Session

DEBOUNCE_MS = 300  # typing pauses this long before generation restarts from the new prompt
EDITOR_KEYS_NOTE = ("While the prompt editor has the keyboard focus, Space, Backspace and the "
                    "arrow keys edit the text; press Esc or click the tokens to leave it.")
#: the line under the controls: how to step, and what to do first while typing
KEYS_HINT = "Space / → / PageDown: next token · ← / PageUp: back · F5: presenter mode"
EDITING_HINT = "Typing in the prompt — press Esc to step with Space / → / PageDown"


def text_edit(old: str, new: str, most_cut: int = 256) -> tuple[int, str, str] | None:
    """How to turn ``old`` into ``new`` by replacing its first ``cut`` characters with ``head``
    and appending ``tail`` (a step appends a token; a full window also drops the first one and
    keeps the "…" in front): ``(cut, head, tail)``, or None when ``new`` is not such an edit of
    ``old`` (with ``cut`` ≤ ``most_cut``) and is better set whole."""
    heads = ("", "\u2026") if new.startswith("\u2026") else ("",)
    for head in heads:
        rest = new[len(head):]
        for cut in range(min(most_cut, len(old)) + 1):
            kept = old[cut:]
            if kept and rest.startswith(kept):
                return cut, head, rest[len(kept):]
    return None


def qt_spans(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of ``text`` in Python str indices (code points, as the tokenizer reports them) as
    Qt text positions (UTF-16 code units): a character beyond U+FFFF, such as an emoji, is one
    index in Python and two positions in a QTextDocument."""
    if text.isascii() or max(text) <= "\uffff":
        return list(spans)
    units = list(accumulate((2 if c > "\uffff" else 1 for c in text), initial=0))
    return [(units[s], units[e]) for s, e in spans]


class _EditorFilter(QObject):
    """Esc in the editor hands the keyboard back to the window (so Space steps again)."""

    def __init__(self, leave):
        super().__init__()
        self._leave = leave

    def eventFilter(self, obj, e) -> bool:  # noqa: N802
        if e.type() == QEvent.Type.KeyPress and e.key() == Qt.Key.Key_Escape:
            self._leave()
        return False


class _FocusHint(QObject):
    """Keeps the panel's key hint in step with where the keyboard focus is."""

    def __init__(self, panel: PromptPanel):
        super().__init__(panel)
        self._panel = panel
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._on_focus)

    @Slot(QWidget, QWidget)
    def _on_focus(self, _old, _new) -> None:
        self._panel.update_keys_hint()


class PromptPanel(QWidget):
    """Prompt editor, token chips, and the Step / Run / Back / Reset controls."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self._apply_timer = QTimer(self)
        self._apply_timer.setSingleShot(True)
        self._apply_timer.setInterval(DEBOUNCE_MS)
        self._apply_timer.timeout.connect(self.apply_prompt)
        self._make_actions()

        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("promptEditor")
        self.editor.setFont(mono_font(THEME.font_pt + 2))
        self.editor.setPlaceholderText("Type a prompt \u2026 (empty: the model starts from a newline)")
        self.editor.setToolTip("The prompt. Generation starts again from it after you stop typing.\n"
                               + EDITOR_KEYS_NOTE)
        self.editor.setTabChangesFocus(True)
        self.editor.textChanged.connect(self._on_text_changed)
        self._filter = _EditorFilter(self.leave_editor)
        self.editor.installEventFilter(self._filter)

        # an encoder-decoder: the editor holds the source, its tokens show in a strip of their
        # own, and the main strip is the target the decoder writes (hidden for other kinds)
        self.source_label = self._heading("Source (encoder input)")
        self.target_label = self._heading("Target (decoder output)")
        self.source_strip = TokenStrip(self)
        self.source_strip.show_planned = False
        self.source_strip.setAccessibleName("Source tokens")
        self.source_scroll = ChipScroll(self.source_strip, self)
        self.source_scroll.setMinimumHeight(40)
        self.source_scroll.setMaximumHeight(96)
        self.seq2seq = False

        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setObjectName("promptNote")
        self.note.setStyleSheet(f"color: {THEME.accent2};")
        self.remove_button = QPushButton("Remove them", self)
        self.remove_button.setToolTip("Delete the characters the model does not know from the prompt")
        self.remove_button.clicked.connect(self.remove_unknown)
        self.remove_button.hide()
        note_row = QHBoxLayout()
        note_row.setContentsMargins(0, 0, 0, 0)
        note_row.addWidget(self.note, 1)
        note_row.addWidget(self.remove_button)

        self.step_button = self._tool(self.act_step)
        self.back_button = self._tool(self.act_back)
        self.reset_button = self._tool(self.act_reset)
        self.resample_button = self._tool(self.act_resample)
        self.run_button = self._tool(self.act_run)
        self.run_count = QSpinBox(self)
        self.run_count.setRange(1, 5000)
        self.run_count.setValue(100)
        self.run_count.setSuffix(" tokens")
        self.run_count.setToolTip("How many tokens Run generates")
        self.run_interval = QSpinBox(self)
        self.run_interval.setRange(0, 2000)
        self.run_interval.setSingleStep(10)
        self.run_interval.setValue(40)
        self.run_interval.setPrefix("every ")
        self.run_interval.setSuffix(" ms")
        self.run_interval.setToolTip("Pause between steps while running (0 = as fast as possible)")
        # new text each step: a QuietLabel does not re-lay out the window for it
        self.info = QuietLabel(self, align=Qt.AlignmentFlag.AlignRight)
        self.info.setStyleSheet(f"color: {THEME.muted};")
        # the controls wrap onto a second line in a narrow dock instead of widening the window
        self.buttons, _flow = flow_bar(self, self.step_button, self.back_button,
                                       self.reset_button, self.resample_button, self.run_button,
                                       self.run_count, self.run_interval)
        self.keys_hint = QLabel(KEYS_HINT, self)
        self.keys_hint.setObjectName("keysHint")
        self.keys_hint.setWordWrap(True)
        self.keys_hint.setStyleSheet(f"color: {THEME.muted};")
        hint_row = QHBoxLayout()
        hint_row.setContentsMargins(0, 0, 0, 0)
        hint_row.addWidget(self.keys_hint, 1)
        hint_row.addWidget(self.info)
        self._fit_editor()
        NOTIFIER.changed.connect(self._fit_editor)

        self.strip = TokenStrip(self)
        self.strip.chip_clicked.connect(self._on_chip_clicked)
        self.strip.chip_double_clicked.connect(self._on_chip_double_clicked)
        self.strip.rewind_requested.connect(self.session.rewind_to_token)
        self.strip.predict_requested.connect(self.session.select_position)
        self.encoder_bar = EncoderBar(session, self)  # shown for an encoder only
        self.encoder_bar.hide()
        self.scroll = ChipScroll(self.strip, self)
        self.scroll.setMinimumHeight(52)
        self.legend = ChipLegend(self)

        # the same text as plain text beside the chips: a screen reader reads it aloud, and it
        # can be selected and copied
        self.text_view = QPlainTextEdit(self)
        self.text_view.setObjectName("plainText")
        self.text_view.setReadOnly(True)
        self.text_view.setFont(ui_font(THEME.font_pt + 1))
        self.text_view.setAccessibleName("Prompt and generated text")
        self.text_view.setToolTip("The prompt and the generated text as plain text "
                                  "(select and copy it)")
        self.text_view.setMinimumWidth(120)
        self.text_view.setMinimumHeight(36)
        self._shown_text = ""  # what text_view holds (see _show_text)
        self.copy_button = QToolButton(self)
        self.copy_button.setText("Copy text")
        self.copy_button.setToolTip("Copy the prompt and the generated text to the clipboard")
        self.copy_button.clicked.connect(self.copy_text)
        text_box = QWidget(self)
        tlay = QVBoxLayout(text_box)
        tlay.setContentsMargins(0, 0, 0, 0)
        tlay.setSpacing(2)
        thead = QHBoxLayout()
        thead.addWidget(QLabel("Text", text_box))
        thead.addStretch(1)
        thead.addWidget(self.copy_button)
        tlay.addLayout(thead)
        tlay.addWidget(self.text_view, 1)
        chips_box = QWidget(self)
        clay = QVBoxLayout(chips_box)
        clay.setContentsMargins(0, 0, 0, 0)
        clay.setSpacing(2)
        clay.addWidget(self.scroll, 1)
        clay.addWidget(self.legend)
        self.split = QSplitter(Qt.Orientation.Horizontal, self)
        self.split.setChildrenCollapsible(True)
        self.split.addWidget(chips_box)
        self.split.addWidget(text_box)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 1)
        # the heads switched off, right above the tokens they produced (hidden when none)
        self.ablation_note = QLabel(self)
        self.ablation_note.setObjectName("ablationNote")
        self.ablation_note.setWordWrap(True)
        self.ablation_note.setStyleSheet(
            f"color: {THEME.background}; background: {THEME.accent2}; padding: 2px 6px;"
            " border-radius: 3px;")
        self.ablation_note.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(6)
        source_row = QHBoxLayout()  # an encoder-decoder's heading beside its source editor
        source_row.setContentsMargins(0, 0, 0, 0)
        source_row.addWidget(self.source_label)
        source_row.addWidget(self.editor, 2)
        source_row.addWidget(self.source_scroll, 3)  # its tokens beside it
        lay.addLayout(source_row)
        lay.addLayout(note_row)
        lay.addWidget(self.buttons)
        lay.addLayout(hint_row)
        lay.addWidget(self.encoder_bar)
        lay.addWidget(self.ablation_note)
        lay.addWidget(self.target_label)
        lay.addWidget(self.split, 1)
        self._show_kind("decoder")
        self._focus_hook = _FocusHint(self)

        session.step_ready.connect(self._on_step)
        session.branches_changed.connect(self._on_branches)
        session.model_changed.connect(self._on_model_changed)
        session.prompt_checked.connect(self._on_prompt_checked)
        session.selected_token_changed.connect(self.strip.set_selected)
        session.running_changed.connect(self._on_running)
        self._set_enabled(False)
        self.set_prompt_text(session.prompt, apply=False)
        if session.config is not None:  # made after the model: start from the session's state
            self._on_model_changed()
            if session.result is not None:
                self._on_step(session.result)

    # -- actions ------------------------------------------------------------------------------
    def _make_actions(self) -> None:
        def act(text: str, keys: list[str], tip: str, slot) -> QAction:
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            shown = " / ".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText)
                               for k in keys)
            a.setToolTip(f"{tip} ({shown}).\n{EDITOR_KEYS_NOTE}" if keys else tip)
            a.setStatusTip(tip)
            a.triggered.connect(slot)
            return a

        # PageDown / PageUp: what presentation clickers send
        self.act_step = act("Step \u25b6", ["Space", "Right", "PgDown"], "Generate one token",
                            self.step)
        self.act_back = act("\u25c0 Back", ["Left", "Backspace", "PgUp"],
                            "Undo the last generated token", self.back)
        self.act_reset = act("Reset", ["Home"], "Back to the prompt: drop every generated token",
                             self.reset)
        self.act_resample = act("Resample", ["R"],
                                "Draw the last token again under the current sampling settings",
                                self.resample)
        # Ctrl+Enter is the keypad's Enter key (Qt.Key_Enter), Return the main one
        self.act_run = act("Run", ["Ctrl+Return", "Ctrl+Enter"],
                           "Generate continuously; press again to stop", self.toggle_run)
        self.act_run.setCheckable(True)
        self.act_stop = act("Stop", ["Escape"], "Stop generating", self.stop)
        self.actions_list = [self.act_step, self.act_back, self.act_reset, self.act_resample,
                             self.act_run, self.act_stop]

    def _heading(self, text: str) -> QLabel:
        label = QLabel(text, self)
        f = ui_font(THEME.font_pt)
        f.setBold(True)
        label.setFont(f)
        return label

    def _show_kind(self, kind: str) -> None:
        """Source editor and source/target strips for an encoder-decoder; the prompt otherwise."""
        self.seq2seq = kind == "encoder-decoder"
        for w in (self.source_label, self.target_label, self.source_scroll):
            w.setVisible(self.seq2seq)
        self._fit_editor()
        if self.seq2seq:
            self.editor.setPlaceholderText("Type a source … the decoder writes its target "
                                           "token by token")
            self.editor.setToolTip("The source the encoder reads. The target starts again from "
                                   "its start token after you stop typing.\n" + EDITOR_KEYS_NOTE)
            self.text_view.setAccessibleName("Source and target text")
        else:
            self.editor.setPlaceholderText("Type a prompt … (empty: the model starts from "
                                           "a newline)")
            self.editor.setToolTip("The prompt. Generation starts again from it after you stop "
                                   "typing.\n" + EDITOR_KEYS_NOTE)
            self.text_view.setAccessibleName("Prompt and generated text")

    def _tool(self, action: QAction) -> QToolButton:
        b = QToolButton(self)
        b.setDefaultAction(action)
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        b.setMinimumWidth(72)
        b.setFont(ui_font(THEME.font_pt))
        return b

    @Slot()
    def step(self) -> None:
        self.flush_prompt()
        self.session.step()

    @Slot()
    def back(self) -> None:
        self.session.back()

    @Slot()
    def reset(self) -> None:
        self.session.reset()

    @Slot()
    def resample(self) -> None:
        self.session.resample()

    @Slot()
    def toggle_run(self) -> None:
        if self.session.running:
            self.session.stop()
        else:
            self.flush_prompt()
            self.session.run(self.run_count.value(), self.run_interval.value())
        self.act_run.setChecked(self.session.running)

    @Slot()
    def stop(self) -> None:
        self.session.stop()
        if self.editor.hasFocus():
            self.leave_editor()

    def leave_editor(self) -> None:
        self.strip.setFocus(Qt.FocusReason.ShortcutFocusReason)

    @Slot()
    def _fit_editor(self) -> None:
        """Two lines of the editor's font (it scrolls beyond): the chips get the room. An
        encoder-decoder's source is short: one line."""
        fm = QFontMetrics(self.editor.font())
        self.editor.setFixedHeight(fm.lineSpacing() * (1 if self.seq2seq else 2) + 14)
        self.update_keys_hint()  # its colour comes from the theme

    def update_keys_hint(self) -> None:
        """Say how to step; while the editor has the focus, that Esc comes first."""
        editing = self.editor.hasFocus()
        if self.session.is_encoder:  # no keys to step with: the encoder bar says what to do
            self.keys_hint.setText("")
            return
        self.keys_hint.setText(EDITING_HINT if editing else KEYS_HINT)
        self.keys_hint.setStyleSheet(f"color: {THEME.accent2 if editing else THEME.muted};")

    def plain_text(self) -> str:
        """The prompt and the generated text of the context window, as plain text."""
        r = self.session.result
        if r is None:
            return ""
        if r.source_tokens is not None:  # an encoder-decoder: source → target, no bos / eos
            target = r.tokens[1:-1] if r.complete and r.T > 1 else r.tokens[1:]
            return "".join(r.source_tokens[:-1]) + " → " + "".join(target)
        return ("…" if r.cropped else "") + "".join(r.tokens)

    @Slot()
    def copy_text(self) -> None:
        QApplication.clipboard().setText(self.plain_text())

    # -- prompt -------------------------------------------------------------------------------
    def set_prompt_text(self, text: str, apply: bool = True) -> None:
        """Replace the editor's text (as if typed) and, with ``apply``, restart from it now."""
        self.editor.blockSignals(True)
        self.editor.setPlainText(text)
        self.editor.blockSignals(False)
        self.editor.moveCursor(QTextCursor.MoveOperation.End)
        if apply:
            self._apply_timer.stop()
            self.apply_prompt()

    def flush_prompt(self) -> None:
        """Apply a pending edit now (a step right after typing uses the new prompt)."""
        if self._apply_timer.isActive():
            self._apply_timer.stop()
            self.apply_prompt()

    @Slot()
    def _on_text_changed(self) -> None:
        self._apply_timer.start()

    @Slot()
    def apply_prompt(self) -> None:
        self.session.set_prompt(self.editor.toPlainText())

    @Slot()
    def remove_unknown(self) -> None:
        tok = self.session.tokenizer
        if tok is None:
            return
        text = self.editor.toPlainText()
        self.set_prompt_text(tok.without_unknown(text))

    @Slot(object)
    def _on_prompt_checked(self, check: PromptCheck) -> None:
        text = self.editor.toPlainText()
        selections = []
        if check.unknown and check.text == text:
            fmt = QTextCharFormat()
            fmt.setBackground(QColor(THEME.bad).darker(140))
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            fmt.setUnderlineColor(QColor(THEME.bad))
            fmt.setToolTip("not in the model's vocabulary")
            for start, end in qt_spans(text, [(pos, pos + 1) for pos in check.unknown]):
                sel = QTextEdit.ExtraSelection()
                cur = QTextCursor(self.editor.document())
                cur.setPosition(start)
                cur.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
                sel.cursor = cur
                sel.format = fmt
                selections.append(sel)
        self.editor.setExtraSelections(selections)
        notes = []
        if check.unknown:
            chars = ", ".join(repr(c) for c in check.unknown_chars[:8])
            more = " \u2026" if len(check.unknown_chars) > 8 else ""
            n = len(check.unknown)
            notes.append(f"{n} character{'s' if n != 1 else ''} not in the model's vocabulary "
                         f"({chars}{more}) {'are' if n != 1 else 'is'} left out.")
        if check.empty:
            notes.append("Empty source: the encoder reads only its end token." if check.source
                         else "Empty prompt: generation starts from a newline.")
        if check.too_long:
            notes.append(source_too_long(check) + " The target below is the last source's.")
        if check.cropped:
            notes.append(f"The prompt has {check.n_tokens} tokens but the model sees at most "
                         f"{check.block_size}: the first {check.cropped} are cropped.")
        self.note.setText(" ".join(notes))
        self.note.setVisible(bool(notes))
        self.remove_button.setVisible(bool(check.unknown))

    # -- session ------------------------------------------------------------------------------
    @Slot()
    def _on_model_changed(self) -> None:
        tok = self.session.tokenizer
        cfg = self.session.config
        self._show_kind(cfg.kind if cfg is not None else "decoder")
        for strip in (self.strip, self.source_strip):
            strip.lookup = tok.token_pieces if tok is not None else None
            strip.bytes_of = tok.token_bytes if tok is not None else None
        self.strip.set_result(self.session.result)  # None until the new model's first result
        self.source_strip.set_result(source_view(self.session.result))
        encoder = self.session.is_encoder
        self.strip.show_planned = not encoder  # no next token to show
        self.encoder_bar.setVisible(encoder)
        self.update_keys_hint()
        self._set_enabled(self.session.config is not None)

    def _show_ablation(self, r: StepResult) -> None:
        text = (f"Heads switched off: {r.ablation.label()} — these tokens come from the "
                "ablated model (H: every head back on)") if r.ablation else ""
        if text != self.ablation_note.text():
            self.ablation_note.setText(text)
            self.ablation_note.setVisible(bool(text))

    @Slot(object)
    def _on_step(self, result: StepResult) -> None:
        self._set_enabled(True)
        # a finished target, or an encoder (it fills masks), has no next token
        self.strip.show_planned = not result.complete and result.predicted_at is None
        self.strip.set_splits(self._split_chips(result))
        self.strip.set_result(result)
        self._show_text(self.plain_text())
        r = result
        self._show_ablation(r)
        cfg = r.config or self.session.config
        block = cfg.block_size if cfg is not None else r.T
        if r.predicted_at is not None:  # an encoder
            self.info.setText(encoder_info(r, block))
            QTimer.singleShot(0, self._show_predicted)  # once the strip is laid out
            return
        if r.source_ids is not None:
            self.source_strip.set_result(source_view(r))
            done = " · complete (end token)" if r.complete and r.T < block else \
                (" · full" if r.complete else "")
            self.info.setText(f"source {r.S}/{block} · target {r.T}/{block}{done}")
            for a in (self.act_step, self.act_run):  # Back, Reset and a new source go on
                a.setEnabled(not r.complete or self.session.running)
        else:
            n_prompt = r.cropped + r.T - r.n_generated  # in the whole text, not the window
            self.info.setText(f"{n_prompt} prompt + {r.n_generated} generated · "
                              f"context {r.T}/{block}")
        if self.session.running:  # follow the newest token while running
            QTimer.singleShot(0, self._scroll_to_end)

    def _show_text(self, text: str) -> None:
        """Show ``text`` in the plain-text view. A step edits the document (appends its piece;
        a full window also drops the first token's) instead of rebuilding it: a rebuild lays
        out the whole text again, a millisecond a step at a few hundred tokens."""
        shown = self._shown_text
        if text == shown:
            return
        view = self.text_view
        edit = text_edit(shown, text) if shown else None
        if edit is None:
            view.setPlainText(text)
        else:
            cut, head, tail = edit
            cursor = QTextCursor(view.document())
            if cut or head:  # Qt counts positions in UTF-16 units
                (_, end), = qt_spans(shown, [(0, cut)])
                cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
                cursor.insertText(head)
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(tail)
        self._shown_text = text
        view.moveCursor(QTextCursor.MoveOperation.End)

    def _split_chips(self, r: StepResult | None) -> frozenset[int]:
        """Window indices of the generated tokens where another branch parts from this text."""
        b = self.session.branches
        if r is None or not len(b):
            return frozenset()
        first = b.n_prompt - 1 - r.cropped  # window index of depth 0
        return frozenset(i for d in b.split_depths() if 0 <= (i := first + d) < r.T)

    @Slot(object)
    def _on_branches(self, _branches: object) -> None:
        self.strip.set_splits(self._split_chips(self.session.result))

    @Slot()
    def _scroll_to_end(self) -> None:
        bar = self.scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    @Slot()
    def _show_predicted(self) -> None:
        """Scroll the chip whose prediction is shown into view (an encoder)."""
        r = self.session.result
        if r is not None and r.predicted_at is not None:
            c = self.strip.chip_rect(r.predicted_at).center()
            self.scroll.ensureVisible(c.x(), c.y(), 0, self.strip.height())

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        self.act_run.setChecked(running)
        self.act_run.setText("Stop \u25a0" if running else "Run")

    def _set_enabled(self, on: bool) -> None:
        """The step controls work once a model is there. An encoder does not generate: its
        bar (with the reason as tooltip) replaces the buttons and the probability legend; the
        keys still answer, with the reason in the status bar."""
        for a in (self.act_step, self.act_back, self.act_reset, self.act_resample, self.act_run):
            a.setEnabled(on)
        encoder = self.session.is_encoder
        # the buttons and legend come back only where this hid them (presenter mode hides them
        # too, and a model opened while presenting must not bring them back)
        for w in (self.buttons, self.legend, self.split.widget(1)):  # 1: the text
            hidden = w.isHidden() and w.testAttribute(Qt.WidgetAttribute.WA_WState_ExplicitShowHide)
            if encoder and not hidden:
                w.hide()
                w.setProperty("hidden_for_encoder", True)
            elif not encoder and w.property("hidden_for_encoder"):
                w.setProperty("hidden_for_encoder", False)
                w.show()

    @Slot(int)
    def _on_chip_clicked(self, i: int) -> None:
        if self.session.is_encoder:  # hide the token behind [MASK], or restore it
            if i >= 0:
                self.session.toggle_mask(i)
            return
        if i == self.session.selected_token:
            i = -1  # a second click deselects
        self.session.select_token(i)

    @Slot(int)
    def _on_chip_double_clicked(self, i: int) -> None:
        r = self.session.result
        if r is not None and i >= r.n_prompt and not self.session.is_encoder:
            self.session.rewind_to_token(i)
            self.session.select_token(i)


def source_view(r: StepResult | None) -> StepResult | None:
    """An encoder-decoder's source as a result the token strip shows: every token a (grey)
    input chip. None for a result without a source."""
    if r is None or r.source_ids is None:
        return None
    S = r.S
    return dataclasses.replace(
        r, ids=r.source_ids, tokens=list(r.source_tokens), pieces=list(r.source_pieces),
        n_prompt=S, cropped=0, token_probs=np.full(S, np.nan, dtype=np.float32),
        token_ranks=np.full(S, -1, dtype=np.int64), token_forced=np.zeros(S, dtype=bool),
        n_generated=0)


__all__ = ["PromptPanel", "source_view", "TokenStrip", "DEBOUNCE_MS", "EDITOR_KEYS_NOTE", "KEYS_HINT",
           "EDITING_HINT", "qt_spans"]
