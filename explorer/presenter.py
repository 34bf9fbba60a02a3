"""Presenter mode (F5, View → Presenter mode, ``--presenter``): the window as a teacher shows it
on a projector.

Large text and the light theme; the menu bar, status bar, prompt editor, step buttons and the
other secondary controls hidden; one big panel at a time under the prompt strip (keys 1–5 pick
it); clicker keys (PageDown / → / Space step, PageUp / ← back, B or . blanks the screen); a line
at the bottom lists the keys. Leaving (F5 again) puts back the layout, theme and text size the
window had before.

A widget that should disappear in presenter mode sets the dynamic property ``secondary`` to True
(see :func:`mark_secondary`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QWidget

from explorer import theme

if TYPE_CHECKING:
    from explorer.main_window import MainWindow

PRESENTER_ZOOM = 1.5  # at least this text size while presenting
#: the panels keys 1–5 bring up, in this order (those the window has)
PANEL_ORDER = ("Next token", "Attention", "Positional encoding", "Architecture", "Training")
HINT = ("PageDown / \u2192 / Space: next token \u00b7 PageUp / \u2190: back \u00b7 "
        "1\u20135: panel \u00b7 B: blank screen \u00b7 F5: leave presenter mode")


def mark_secondary(*widgets: QWidget) -> None:
    """Hide these widgets in presenter mode."""
    for w in widgets:
        w.setProperty("secondary", True)


class _Blank(QWidget):
    """A black cover over the whole window (B): the class looks at the teacher, not the screen."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setObjectName("presenterBlank")
        self.setAutoFillBackground(True)
        self.setStyleSheet("background: #000000;")
        self.hide()


class Presenter(QObject):
    """Enters and leaves presenter mode for ``window`` and owns its keys."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.active = False
        self.panel = ""  # the big panel shown under the prompt strip
        self._saved: tuple[QByteArray, str, float, list[QWidget], list[str]] | None = None
        self.act_toggle = QAction("&Presenter mode", window)
        self.act_toggle.setCheckable(True)
        self.act_toggle.setShortcut(QKeySequence("F5"))
        self.act_toggle.setStatusTip("Large text, light theme, one panel at a time, clicker keys")
        self.act_toggle.toggled.connect(self.set_active)
        self.act_blank = QAction("Blank the screen", window)
        self.act_blank.setShortcuts([QKeySequence("B"), QKeySequence(".")])
        self.act_blank.triggered.connect(self.toggle_blank)
        self.panel_actions: list[QAction] = []
        for i in range(len(PANEL_ORDER)):
            a = QAction(f"Panel {i + 1}", window)
            a.setShortcut(QKeySequence(str(i + 1)))
            a.setData(i)
            a.triggered.connect(self._on_panel_key)
            self.panel_actions.append(a)
        for a in (self.act_toggle, self.act_blank, *self.panel_actions):
            window.addAction(a)  # shortcuts work with the menu bar hidden
        for a in (self.act_blank, *self.panel_actions):
            a.setEnabled(False)  # only while presenting (B and digits are ordinary keys else)
        self.blank = _Blank(window)
        self.hint = QLabel(HINT, window)
        self.hint.setObjectName("presenterHint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.hide()
        window.installEventFilter(self)

    # -- mode ---------------------------------------------------------------------------------
    @Slot(bool)
    def set_active(self, on: bool) -> None:
        if on == self.active:
            return
        w = self.window
        if on:
            hidden = [x for x in w.findChildren(QWidget)
                      if x.property("secondary") and not x.isHidden()]
            shown = [t for t, d in w.docks.items() if not d.isHidden()]
            self._saved = (w.saveState(w.state_version), theme.current_theme().name, theme.zoom(),
                           hidden, shown)
            self.active = True
            theme.set_theme("light")
            theme.set_zoom(max(theme.zoom(), PRESENTER_ZOOM))
            for x in hidden:
                x.hide()
            w.menuBar().hide()
            w.statusBar().hide()
            self.hint.setStyleSheet(f"background: {theme.THEME.panel}; color: {theme.THEME.text};"
                                    f" padding: 4px; font-size: {theme.css_pt(theme.THEME.font_pt)};")
            self.hint.show()
            self.show_panel(self.panel or self._front_panel())
            w.prompt_panel.leave_editor()
        else:
            self.active = False
            self.set_blank(False)
            self.hint.hide()
            w.menuBar().show()
            w.statusBar().show()
            if self._saved is not None:
                state, name, z, hidden, shown = self._saved
                self._saved = None
                theme.set_theme(name)
                theme.set_zoom(z)
                for x in hidden:
                    x.show()
                for t, d in w.docks.items():
                    d.setVisible(t in shown)
                w.restoreState(state, w.state_version)
        for a in (self.act_blank, *self.panel_actions):
            a.setEnabled(on)
        if self.act_toggle.isChecked() != on:
            self.act_toggle.setChecked(on)
        self._place()

    def _front_panel(self) -> str:
        return next((n for n in PANEL_ORDER if n in self.window.docks), "Next token")

    def panels(self) -> list[str]:
        return [n for n in PANEL_ORDER if n in self.window.docks]

    def show_panel(self, name: str) -> None:
        """The Prompt dock and ``name`` only, ``name`` as big as the window allows."""
        docks = self.window.docks
        if name not in docks:
            return
        self.panel = name
        for title, dock in docks.items():
            # a dock marked "presenter_keep" (a lesson's narration) stays beside it
            dock.setVisible(title in ("Prompt", name) or bool(dock.property("presenter_keep")))
        dock = docks[name]
        dock.setFloating(False)
        dock.raise_()
        prompt = docks.get("Prompt")
        if prompt is not None:
            h = self.window.height()
            self.window.resizeDocks([prompt, dock], [int(h * 0.3), int(h * 0.7)],
                                    Qt.Orientation.Vertical)

    @Slot()
    def _on_panel_key(self) -> None:
        act = self.sender()
        if isinstance(act, QAction):
            names = self.panels()
            i = int(act.data())
            if i < len(names):
                self.show_panel(names[i])

    # -- blank screen -------------------------------------------------------------------------
    @Slot()
    def toggle_blank(self) -> None:
        self.set_blank(self.blank.isHidden())

    def set_blank(self, on: bool) -> None:
        if on:
            self.blank.setGeometry(self.window.rect())
            self.blank.raise_()
            self.blank.show()
        else:
            self.blank.hide()

    @property
    def blanked(self) -> bool:
        return not self.blank.isHidden()

    # -- geometry -----------------------------------------------------------------------------
    def _place(self) -> None:
        w = self.window
        if not self.hint.isHidden():
            h = self.hint.heightForWidth(w.width())
            self.hint.setGeometry(0, w.height() - h, w.width(), h)
            self.hint.raise_()
            # the docks end above the hint: it covers nothing
            w.setContentsMargins(0, 0, 0, h)
        else:
            w.setContentsMargins(0, 0, 0, 0)
        if self.blanked:
            self.blank.setGeometry(w.rect())
            self.blank.raise_()

    def eventFilter(self, obj, e) -> bool:  # noqa: N802 - Qt API
        if obj is self.window and e.type() == QEvent.Type.Resize and self.active:
            self._place()
        return False
