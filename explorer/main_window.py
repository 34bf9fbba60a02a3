"""The main window: dock panels, menus, status bar, settings, drag-and-drop of model files.

No tensor code lives here: the window talks to the :class:`~explorer.session.Session` only.
Every panel is a dock (View menu shows/hides each); the layout and the last settings are saved
with QSettings on close and restored on the next start.
"""
from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
from pathlib import Path

import numpy
import pyqtgraph
import PySide6
from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Signal, Slot, qVersion
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QTabBar,
    QTabWidget,
    QWidget,
)

from explorer.concepts import CONCEPTS, Concept
from explorer.concepts_browser import ConceptsBrowser
from explorer.lesson_file import (
    Lesson,
    LessonError,
    ViewSpec,
    load_lesson,
    save_lesson,
    shipped_lessons,
)
from explorer.lesson_player import LessonPlayer, show_view
from explorer.look_menu import LookMenu
from explorer.panels.distribution import DistributionPanel
from explorer.panels.prompt import PromptPanel
from explorer.presenter import Presenter, mark_secondary
from explorer.redraws import catch_up
from explorer.session import Session
from explorer.theme import THEME, zoom
from explorer.widgets.layout import DockScroll
from explorer.widgets.wheel_guard import WheelGuard, guard_wheel
from model import shipped
from model.ablation import Ablation
from model.step_result import StepResult

DEFAULT_PROMPT = "ROMEO:\n"
STATE_VERSION = 1
MAX_RECENT = 8
#: below this window size (in Qt's pixels: 960 x 540 is a 1920 x 1080 screen at 200 %) the
#: default layout tabs the next-token panel with the others instead of placing it beside them
COMPACT_W, COMPACT_H = 1000, 620
CLOSE_WAIT_MS = 2000  # closing waits this long for training to save, then shows progress
MODEL_FILTER = ("Models (*.safetensors *.pt *.pth *.ckpt config.json);;"
                "Transformer Explorer models (*.safetensors);;nanoGPT checkpoints (*.pt *.pth *.ckpt);;"
                "All files (*)")
SAVE_FILTER = "Transformer Explorer models (*.safetensors);;All files (*)"
# what a drop may be: this project's files, nanoGPT checkpoints, Hugging Face weights (their
# folder is opened) or a folder; open_model says what is wrong with anything else
MODEL_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
LESSON_FILTER = "Lessons (*.json);;All files (*)"

#: All docks share one dock area, split and tabbed: Prompt on top; Next token below it on the
#: left; the optional panels as tabs to its right. (One area, because QMainWindow without a
#: central widget only honours resizeDocks() within an area.)
AREA = Qt.DockWidgetArea.TopDockWidgetArea
#: (module, class, dock title, placed beside: (dock, orientation) or tabbed with: "dock")
OPTIONAL_PANELS = [
    ("explorer.panels.attention.panel", "AttentionPanel", "Attention",
     ("Next token", Qt.Orientation.Horizontal)),
    ("explorer.panels.positional", "PositionalPanel", "Positional encoding", "Attention"),
    ("explorer.panels.architecture.panel", "ArchitecturePanel", "Architecture", "Attention"),
    ("explorer.panels.training.panel", "TrainingPanel", "Training", "Attention"),
    ("explorer.panels.ablation", "AblationPanel", "Ablation", "Attention"),
    ("explorer.panels.branches", "BranchesPanel", "Branches", "Attention"),
]


def _fix_width(label: QLabel, widest: str) -> None:
    """Give a status label the size of ``widest``: then a new text does not re-lay out the window."""
    fm = label.fontMetrics()
    m = label.contentsMargins()
    extra = 2 * label.margin()
    label.setFixedSize(fm.horizontalAdvance(widest) + m.left() + m.right() + extra + 2,
                       fm.height() + m.top() + m.bottom() + extra)


def _is_model_path(path: str) -> bool:
    """A dropped path worth opening: a model file (see MODEL_SUFFIXES), a folder, or a Hugging
    Face folder's config.json."""
    p = Path(path)
    return p.is_dir() or p.name == "config.json" or p.name.lower().endswith(MODEL_SUFFIXES)


class MainWindow(QMainWindow):
    panels_loaded = Signal()  # the deferred panels are built (see load_optional_panels_soon)
    state_version = STATE_VERSION

    def __init__(self, session: Session, settings: QSettings | None = None,
                 restore: bool = True, optional_panels: bool = True,
                 defer_panels: bool = False):
        """``defer_panels``: the optional panels (whose modules import torch) get placeholder
        docks now and are built by :meth:`load_optional_panels`, after the first paint."""
        super().__init__()
        self.session = session
        self.settings = settings if settings is not None else QSettings()
        self.setWindowTitle("Transformer Explorer")
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks
                            | QMainWindow.DockOption.AllowTabbedDocks
                            | QMainWindow.DockOption.AllowNestedDocks)
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, _north())
        self.docks: dict[str, QDockWidget] = {}
        self.panels: dict[str, QWidget] = {}
        self.panel_errors: dict[str, str] = {}
        self._closing = False
        self._close_progress: QProgressDialog | None = None  # waiting for training to save
        self._close_waiting: list[QWidget] = []
        self._device_group: QActionGroup | None = None
        self.device_choice: str | None = None  # saved only when the user picked one
        self.interactive = True  # False: errors go to stderr and the status bar, not dialogs
        self._dropped: str | None = None  # a dropped model file, opened once the drag ends
        self.compare_window: QWidget | None = None  # explorer.compare.CompareWindow, when open
        # (shipped model, its prompt) while File → Examples opens it
        self._example_prompt: tuple[Path, str | None] | None = None
        # (model kind, view) a concept's "Show it" shows once the example it opened is there
        self._pending_view: tuple[str, ViewSpec] | None = None

        self.wheel_guard = WheelGuard(self)
        self._build_menus()
        self.prompt_panel = PromptPanel(session)
        self.distribution_panel = DistributionPanel(session)
        self.add_panel("Prompt", self.prompt_panel, AREA)
        self.add_panel("Next token", self.distribution_panel, AREA,
                       beside=("Prompt", Qt.Orientation.Vertical))
        self.generate_menu.addActions(self.prompt_panel.actions_list)
        self.addActions(self.prompt_panel.actions_list)  # shortcuts work with the dock hidden
        p = self.prompt_panel
        grid = self.distribution_panel.controls.layout()
        extra = [grid.itemAtPosition(r, c) for r in (1, 2) for c in range(grid.columnCount())]
        # presenter mode keeps the temperature (a lesson's subject); top-k/p, seed and the
        # number of bars stay as they were set
        mark_secondary(p.editor, p.buttons, p.keys_hint,
                       *{i.widget() for i in extra if i is not None and i.widget() is not None})
        self._placeholders: dict[str, tuple[str, str]] = {}
        if optional_panels:
            for module, cls, title, where in OPTIONAL_PANELS:
                if defer_panels:
                    if _module_exists(module):
                        self._placeholders[title] = (module, cls)
                        self._add_placed(title, _placeholder(title), where)
                else:
                    widget = self._make_panel(module, cls, title)
                    if widget is not None:
                        self._add_placed(title, widget, where)
        self.lessons = LessonPlayer(self)
        self.lessons.failed.connect(self._on_lesson_failed)
        self._recording: Lesson | None = None  # slides added from the current view
        self._concepts: ConceptsBrowser | None = None
        self._build_status_bar()
        self._default_geometry()
        self._default_state = self.saveState(STATE_VERSION)
        self._state_restored = False
        self._shown = False

        session.error.connect(self.show_error)
        session.message.connect(self.show_message)
        session.model_changed.connect(self._on_model_changed)
        session.step_ready.connect(self._on_step)
        session.device_changed.connect(self._on_device_changed)
        session.busy_changed.connect(self._on_busy)
        session.loading_changed.connect(self._on_loading)
        session.model_opened.connect(self._on_opened)
        session.model_saved.connect(self._on_saved)
        session.model_exported.connect(self._on_exported)
        session.ablation_changed.connect(self._on_ablation)
        self._on_ablation(session.ablation)
        if restore:
            self.restore_settings()

    # -- panels -------------------------------------------------------------------------------
    def show_panel(self, name: str) -> bool:
        """Bring the dock whose title starts with ``name`` (any case) to the front (in presenter
        mode: make it the one big panel)."""
        for title, dock in self.docks.items():
            if title.lower().startswith(name.strip().lower()):
                if self.presenter.active:
                    self.presenter.show_panel(title)
                    return True
                dock.show()
                dock.raise_()
                return True
        return False

    def add_panel(self, name: str, widget: QWidget, area: Qt.DockWidgetArea = AREA,
                  tabify_with: str | None = None,
                  beside: tuple[str, Qt.Orientation] | None = None) -> QDockWidget:
        """Put ``widget`` in a dock called ``name``; it gets an entry in the View menu.

        ``tabify_with``: a tab next to that dock; ``beside=(dock, orientation)``: split off that
        dock; otherwise added to ``area``."""
        dock = QDockWidget(name, self)
        dock.setObjectName("dock_" + "".join(c if c.isalnum() else "_" for c in name.lower()))
        dock.setWidget(DockScroll(widget))
        guard_wheel(widget, self.wheel_guard)
        # a tab raised in a tabbed dock area gets no Show event: tell the panel to catch up
        dock.visibilityChanged.connect(
            lambda shown, n=name: shown and n in self.panels and catch_up(self.panels[n]))
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        other = self.docks.get(tabify_with) if tabify_with else None
        neighbour = self.docks.get(beside[0]) if beside else None
        if other is not None:
            self.tabifyDockWidget(other, dock)
            other.raise_()
        elif neighbour is not None:
            self.splitDockWidget(neighbour, dock, beside[1])
        else:
            self.addDockWidget(area, dock)
        self.docks[name] = dock
        self.panels[name] = widget
        action = dock.toggleViewAction()
        action.setText(name)
        action.setStatusTip(f"Show or hide the {name} panel")
        self.view_menu.insertAction(self._view_separator, action)
        return dock

    def _make_panel(self, module: str, cls: str, title: str) -> QWidget | None:
        """The panel, or None (the reason goes to panel_errors) if its module is missing/broken."""
        try:
            panel_cls = getattr(importlib.import_module(module), cls)
        except ImportError as e:
            if e.name != module:  # the module exists but is broken: say so
                self.panel_errors[title] = f"{type(e).__name__}: {e}"
            return None
        except Exception as e:  # noqa: BLE001 - a broken panel must not break the window
            self.panel_errors[title] = f"{type(e).__name__}: {e}"
            return None
        try:
            return panel_cls(self.session)
        except Exception as e:  # noqa: BLE001
            self.panel_errors[title] = f"{type(e).__name__}: {e}"
            return None

    def _add_placed(self, title: str, widget: QWidget, where) -> QDockWidget:
        if isinstance(where, str):
            return self.add_panel(title, widget, AREA, tabify_with=where)
        return self.add_panel(title, widget, AREA, beside=where)

    def load_optional_panels(self) -> None:
        """Build every panel that got a placeholder dock now (imports torch)."""
        while self._placeholders:
            self._load_next_panel()

    def load_optional_panels_soon(self) -> None:
        """Build the placeholder panels one per event-loop turn (the GUI stays responsive);
        ``panels_loaded`` is emitted after the last. Panels start from the session's state."""
        if not self._placeholders:
            self.panels_loaded.emit()
            return
        QTimer.singleShot(0, self._load_next_soon)

    @Slot()
    def _load_next_soon(self) -> None:
        self._load_next_panel()
        self.load_optional_panels_soon()

    @property
    def panels_pending(self) -> bool:
        return bool(self._placeholders)

    def _load_next_panel(self) -> None:
        title = next(iter(self._placeholders))
        module, cls = self._placeholders.pop(title)
        dock = self.docks[title]
        widget = self._make_panel(module, cls, title)
        if widget is None:
            self.removeDockWidget(dock)
            self.view_menu.removeAction(dock.toggleViewAction())
            del self.docks[title]
            self.panels.pop(title, None)
            dock.deleteLater()
        else:
            holder = dock.widget()
            old = holder.set_panel(widget) if isinstance(holder, DockScroll) else None
            guard_wheel(widget, self.wheel_guard)
            self.panels[title] = widget
            if old is not None:
                old.deleteLater()
        if not self._placeholders and not self._state_restored:
            QTimer.singleShot(0, self._default_dock_sizes)

    # -- menus --------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open = f.addAction("&Open model\u2026", self.open_model_dialog)
        self.act_open.setShortcut("Ctrl+O")
        self.act_open.setStatusTip("Open a model file: this project's .safetensors, a nanoGPT "
                                   "ckpt.pt, or a Hugging Face folder's config.json")
        self.act_open_folder = f.addAction("Open model &folder\u2026", self.open_folder_dialog)
        self.act_open_folder.setShortcut("Ctrl+Shift+O")
        self.act_open_folder.setStatusTip("Open a Hugging Face GPT-2 folder (config.json, "
                                          "weights, tokenizer) or a folder holding a nanoGPT "
                                          "ckpt.pt")
        self.examples_menu = f.addMenu("&Examples")
        self.examples_menu.aboutToShow.connect(self._fill_examples)
        self._fill_examples()
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        f.addSeparator()
        self.act_open_lesson = f.addAction("Open &lesson\u2026", self.open_lesson_dialog)
        self.act_open_lesson.setShortcut("Ctrl+L")
        self.lessons_menu = f.addMenu("Le&ssons")
        self.lessons_menu.aboutToShow.connect(self._fill_lessons)
        self._fill_lessons()
        self.act_add_slide = f.addAction("&Add slide from current view",
                                         self.add_slide_from_view)
        self.act_add_slide.setStatusTip("Record the model, text, sampling settings and panel "
                                        "shown now as a slide of the lesson")
        self.act_save_lesson = f.addAction("Sa&ve lesson as\u2026", self.save_lesson_dialog)
        self.act_close_lesson = f.addAction("&Close lesson", self.close_lesson)
        f.addSeparator()
        self.act_save = f.addAction("&Save model as\u2026", self.save_model_dialog)
        self.act_save.setShortcut("Ctrl+Shift+S")
        self.act_export = f.addAction("&Export as Hugging Face folder\u2026",
                                      self.export_dialog)
        self.act_export.setStatusTip("Write config.json, model.safetensors and the tokenizer: "
                                     "transformers' GPT2LMHeadModel.from_pretrained opens it")
        f.addSeparator()
        self.act_quit = f.addAction("&Quit", self.close)
        self.act_quit.setShortcut("Ctrl+Q")
        self.generate_menu = mb.addMenu("&Generate")
        heads = mb.addMenu("&Heads")
        self.act_restore_heads = heads.addAction("Every head back &on", self.session.restore_heads)
        self.act_restore_heads.setShortcut("H")
        self.act_restore_heads.setStatusTip("Undo every head ablation: all heads on again")
        self.act_restore_heads.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        mode = heads.addMenu("Switched-off heads output")
        for m, text in (("zero", "&zero"), ("mean", "their &mean over the context")):
            a = mode.addAction(text, lambda m=m: self.session.set_ablation_mode(m))
            a.setStatusTip(f"{m} ablation")
        self.device_menu = mb.addMenu("&Device")
        self.device_menu.addAction("(available once the model is loaded)").setEnabled(False)
        self.view_menu = mb.addMenu("&View")
        self._view_separator = self.view_menu.addSeparator()
        self.look = LookMenu(self.view_menu, self, self.settings)
        self.presenter = Presenter(self)
        self.view_menu.addAction(self.presenter.act_toggle)
        self.view_menu.addSeparator()
        self.act_reset_layout = self.view_menu.addAction("Reset &layout", self.reset_layout)
        self.act_compare = self.view_menu.addAction("&Side by side\u2026", self.open_compare)
        self.act_compare.setShortcut(QKeySequence("Ctrl+K"))
        self.act_compare.setStatusTip("Compare two runs in two columns (prompt, sampling, model or "
                                      "heads off), stepped with one key")
        h = mb.addMenu("&Help")
        self.concepts_menu = h.addMenu("&Concepts")
        every = self.concepts_menu.addAction("All concepts\u2026")
        every.setData("")
        every.triggered.connect(self._concept_from_action)
        self.concepts_menu.addSeparator()
        for c in CONCEPTS:
            a = self.concepts_menu.addAction(c.title)
            a.setData(c.key)
            a.triggered.connect(self._concept_from_action)
        h.addAction("&Keyboard shortcuts", self.show_shortcuts)
        self.act_about = h.addAction("&About Transformer Explorer", self.show_about)

    @Slot()
    def _fill_examples(self) -> None:
        self.examples_menu.clear()
        files = shipped.shipped_models()
        for p in files:
            a = self.examples_menu.addAction(p.stem)
            a.setData(str(p))
            a.setStatusTip(str(p))
            a.triggered.connect(self._open_example)
        if not files:
            self.examples_menu.addAction(f"(no models in {shipped.MODELS}/)").setEnabled(False)

    @Slot()
    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for p in files:
            a = self.recent_menu.addAction(p)
            a.setData(p)
            a.triggered.connect(self._open_from_action)
        if not files:
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    @Slot()
    def _open_example(self) -> None:
        act = self.sender()
        if isinstance(act, QAction) and act.data():
            self.open_example(act.data())

    def open_example(self, path: str | Path) -> None:
        """Open a shipped model; once it is open, start from the prompt that shows what it
        learned (the current prompt, in another alphabet, would be stripped to nothing)."""
        self._example_prompt = (Path(path), shipped.default_prompt(path))
        self.open_model(path)

    @Slot()
    def _open_from_action(self) -> None:
        act = self.sender()
        if isinstance(act, QAction) and act.data():
            self.open_model(act.data())

    def _fill_devices(self) -> None:
        try:
            from model.devices import available_devices

            devices = available_devices()
        except Exception as e:  # noqa: BLE001
            devices = [("cpu", "CPU")]
            self.show_message(f"Could not list devices: {e}")
        self.device_menu.clear()
        self._device_group = QActionGroup(self)
        self._device_group.setExclusive(True)
        for name, desc in devices:
            a = self.device_menu.addAction(f"{desc}  ({name})")
            a.setCheckable(True)
            a.setData(name)
            a.setChecked(_same_device(name, self.session.device))
            self._device_group.addAction(a)
            a.triggered.connect(self._on_device_action)

    @Slot()
    def _on_device_action(self) -> None:
        act = self.sender()
        if isinstance(act, QAction):
            self.device_choice = act.data()
            self.session.set_device(act.data())

    def device_actions(self) -> list[QAction]:
        return list(self._device_group.actions()) if self._device_group else []

    # -- status bar ---------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        sb.setSizeGripEnabled(True)
        self.trained_label = QLabel("")
        self.trained_label.setStyleSheet(f"color: {THEME.accent2}; font-weight: bold;")
        self.model_label = QLabel("loading the model \u2026")
        self.params_label = QLabel("")
        self.device_label = QLabel("")
        self.context_label = QLabel("")
        self.busy_label = QLabel("")
        self.busy_label.setStyleSheet(f"color: {THEME.accent};")
        self.ablation_label = QLabel("")  # the heads switched off, while any are
        self.ablation_label.setStyleSheet(f"color: {THEME.accent2}; font-weight: bold;")
        self.ablation_label.setToolTip("Heads switched off (ablated). Press H to switch every "
                                       "head back on.")
        self.ablation_label.hide()
        for w in (self.ablation_label, self.trained_label, self.model_label, self.params_label, self.device_label,
                  self.context_label, self.busy_label):
            sb.addPermanentWidget(w)
        # the labels that change at every step get a fixed size: a label whose size hint may
        # change re-lays out the status bar and then the whole window (docks included)
        _fix_width(self.busy_label, "\u25cf working")
        _fix_width(self.context_label, "context 0000/0000 (+000000 cropped)")

    @Slot(str)
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)

    @Slot(str, str)
    def show_error(self, title: str, text: str) -> None:
        if self._closing:
            return
        self._pending_view = None  # e.g. the example a concept asked for did not open
        if not self.interactive:  # --screenshot / --startup-probe: nobody to click "OK"
            print(f"transformer-explorer: {title}: {text}", file=sys.stderr)
            self.show_message(f"{title}: {text.splitlines()[0] if text else ''}")
            return
        QMessageBox.warning(self, title, text)

    @Slot()
    def _on_model_changed(self) -> None:
        info = self.session.info
        if info is None:
            return
        self.model_label.setText(f"model: {info.name}")
        self.model_label.setToolTip(str(info.path) if info.path else "built in, random weights")
        self.params_label.setText(f"{_human(info.n_params)} parameters")
        self.trained_label.setText("" if info.trained else "untrained model: its text is random")
        self.trained_label.setVisible(not info.trained)
        self.setWindowTitle(f"Transformer Explorer \u2014 {info.name}")
        if self.statusBar().currentMessage().startswith("Opening "):
            self.statusBar().clearMessage()  # the loading progress is over
        self._fill_devices()
        self._on_device_changed(self.session.device)

    @Slot(str)
    def _on_device_changed(self, device: str) -> None:
        self.device_label.setText(f"device: {device}")
        for a in self.device_actions():
            a.setChecked(_same_device(a.data(), device))

    @Slot(object)
    def _on_step(self, r: StepResult) -> None:
        cfg = r.config or self.session.config
        block = cfg.block_size if cfg is not None else r.T
        text = f"context {r.T}/{block}"
        if r.cropped:
            text += f" (+{r.cropped} cropped)"
        if text != self.context_label.text():
            self.context_label.setText(text)
            if self.context_label.sizeHint().width() > self.context_label.width():
                _fix_width(self.context_label, text)  # a longer text than planned for
        note = r.note
        if note and r.chosen is None:
            self.show_message(note[0].upper() + note[1:])
        if self._pending_view is not None and cfg is not None \
                and cfg.kind == self._pending_view[0]:
            spec, self._pending_view = self._pending_view[1], None
            self.jump_to(spec)  # a concept's view, once the example it opened is there

    @Slot(object)
    def _on_ablation(self, ablation: Ablation) -> None:
        self.ablation_label.setText(f"heads off: {ablation.label()}" if ablation else "")
        self.ablation_label.setVisible(bool(ablation))

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        text = "\u25cf working" if busy else ""
        if text != self.busy_label.text():
            self.busy_label.setText(text)

    @Slot(bool)
    def _on_loading(self, loading: bool) -> None:
        if loading:
            self.model_label.setText("loading the model \u2026")

    # -- files --------------------------------------------------------------------------------
    @Slot()
    def open_model_dialog(self) -> None:
        start = self.settings.value("files/last_dir", str(shipped.MODELS))
        path, _ = QFileDialog.getOpenFileName(self, "Open model", str(start), MODEL_FILTER)
        if path:
            self.open_model(path)

    @Slot()
    def open_folder_dialog(self) -> None:
        start = self.settings.value("files/last_dir", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Open model folder", str(start))
        if path:
            self.open_model(path)

    def open_model(self, path: str | Path) -> None:
        """Load a model file or folder (in the inference worker); on failure a dialog names
        the problem and the current model stays."""
        self.session.load_checkpoint(Path(path))

    @Slot(object)
    def _on_opened(self, path: Path) -> None:
        example, self._example_prompt = self._example_prompt, None
        if example is not None and example[1] is not None and \
                Path(path).resolve() == example[0].resolve():
            self.prompt_panel.set_prompt_text(example[1])
        self._add_recent(str(path))
        self.settings.setValue("files/last_dir", str(path.parent))
        self.show_message(f"Opened {path}")

    @Slot()
    def save_model_dialog(self) -> None:
        if self.session.info is None:
            self.show_message("No model to save yet")
            return
        start = self.settings.value("files/last_dir", str(Path.home()))
        name = (self.session.info.name if self.session.info else "model") + ".safetensors"
        path, _ = QFileDialog.getSaveFileName(self, "Save model as", str(Path(start) / name),
                                              SAVE_FILTER)
        if path:
            self.save_model(path)

    def save_model(self, path: str | Path) -> None:
        """Write the model (in the inference worker); a dialog names any problem."""
        path = Path(path)
        if not path.name.endswith(".safetensors"):
            path = path.with_name(path.name + ".safetensors")
        self.session.save_checkpoint(path)

    @Slot()
    def export_dialog(self) -> None:
        if self.session.info is None:
            self.show_message("No model to export yet")
            return
        start = self.settings.value("files/last_dir", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Export as Hugging Face folder (choose "
                                                "or create an empty folder)", str(start))
        if path:
            self.export_model(path)

    def export_model(self, folder: str | Path) -> None:
        """Write the model as a Hugging Face GPT-2 folder (in the inference worker); the status
        bar says where, a dialog names any problem."""
        self.session.export_hf_folder(Path(folder))

    @Slot(object)
    def _on_saved(self, path: Path) -> None:
        self._add_recent(str(path))
        self.settings.setValue("files/last_dir", str(path.parent))
        self._on_model_changed()

    @Slot(object)
    def _on_exported(self, folder: Path) -> None:
        self._add_recent(str(folder))  # a folder this app (and transformers) opens
        self.settings.setValue("files/last_dir", str(folder.parent))

    def recent_files(self) -> list[str]:
        v = self.settings.value("files/recent", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def _add_recent(self, path: str) -> None:
        files = [p for p in self.recent_files() if p != path]
        self.settings.setValue("files/recent", [path, *files][:MAX_RECENT])

    def dragEnterEvent(self, e: QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_model(e) is not None:
            e.acceptProposedAction()
        else:
            e.ignore()

    def dropEvent(self, e: QDropEvent) -> None:  # noqa: N802
        path = self._dropped_model(e)
        if path is not None:
            e.acceptProposedAction()
            self._dropped = path
            QTimer.singleShot(0, self._open_dropped)  # after the drag has finished

    @Slot()
    def _open_dropped(self) -> None:
        path, self._dropped = self._dropped, None
        if path:
            self.open_model(path)

    @staticmethod
    def _dropped_model(e) -> str | None:
        md = e.mimeData()
        if md is None or not md.hasUrls():
            return None
        for url in md.urls():
            if url.isLocalFile() and _is_model_path(url.toLocalFile()):
                return url.toLocalFile()
        return None

    # -- settings and layout ------------------------------------------------------------------
    def _default_geometry(self) -> None:
        w, h = 1600, 1000
        screen = QGuiApplication.primaryScreen()
        if screen is not None and QGuiApplication.platformName() != "offscreen":
            avail = screen.availableGeometry()
            w, h = min(w, int(avail.width() * 0.95)), min(h, int(avail.height() * 0.92))
        self.resize(w, h)

    @Slot()
    def _default_dock_sizes(self) -> None:
        """Dock sizes only take once the window is laid out, so this runs after the first show.
        Each dock gets its panel's minimum size where the window has room for it (else the
        panel scrolls in its dock)."""
        w, h = self.width(), self.height()
        left = self.docks.get("Next token")
        right = next((self.docks[n] for n in ("Attention", "Positional encoding", "Architecture",
                                              "Training") if n in self.docks), None)
        z = zoom()  # large text needs the room of a larger window
        if left is not None and right is not None and (w / z < COMPACT_W or h / z < COMPACT_H):
            # a small window (or large text): every panel a tab under the prompt, each as big
            # as the window allows, rather than two side by side too small to read
            self.tabifyDockWidget(right, left)
            left.raise_()
            self._fit_prompt_dock(left, most=0.5)
            return
        self._fit_prompt_dock(left)
        if left is not None and right is not None:
            w = left.width() + right.width()  # the room the two share (sizes are weights)
            need = self.panels["Next token"].minimumSizeHint().width() + 4
            lw = min(max(need, int(w * 0.35)), int(w * 0.5))
            self.resizeDocks([left, right], [lw, w - lw], Qt.Orientation.Horizontal)
        for name in ("Attention",):
            if name in self.docks:
                self.docks[name].raise_()

    def _fit_prompt_dock(self, below: QDockWidget | None, most: float = 0.45) -> None:
        """The prompt dock tall enough for its panel (no scrolling) where the window allows."""
        prompt = self.docks.get("Prompt")
        if prompt is None or below is None:
            return
        # resizeDocks takes the sizes as weights of the room the two docks share
        h = prompt.height() + below.height()
        need = self.panels["Prompt"].minimumSizeHint().height()
        holder = prompt.widget()
        overhead = prompt.height() - holder.height() if holder is not None else 30
        top = min(max(need + overhead + 2, int(h * 0.3)), int(h * most))
        self.resizeDocks([prompt, below], [top, h - top], Qt.Orientation.Vertical)

    def event(self, e: QEvent) -> bool:
        # the tab bars of tabbed docks are made by Qt on demand, eliding their titles
        # ("Attenti…"); whole titles, with scroll arrows when they do not fit, read better
        if e.type() == QEvent.Type.ChildPolished and isinstance(e.child(), QTabBar):
            _whole_tab_titles(e.child())
        return super().event(e)

    def showEvent(self, e) -> None:  # noqa: N802
        super().showEvent(e)
        for bar in self.findChildren(QTabBar):
            _whole_tab_titles(bar)
        if not self._shown:
            self._shown = True
            self.session.watch_paints(self)
            if not self._state_restored:
                QTimer.singleShot(0, self._default_dock_sizes)

    @Slot()
    def reset_layout(self) -> None:
        for d in self.docks.values():
            d.setFloating(False)
            d.show()
        self.restoreState(self._default_state, STATE_VERSION)
        self._default_geometry()
        QTimer.singleShot(0, self._default_dock_sizes)

    def restore_settings(self) -> None:
        s = self.settings
        geo = s.value("window/geometry")
        offscreen = QGuiApplication.platformName() == "offscreen"  # its tiny screen would clamp it
        if isinstance(geo, QByteArray) and not geo.isEmpty() and not offscreen:
            self.restoreGeometry(geo)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self._state_restored = self.restoreState(state, STATE_VERSION)
        p = self.prompt_panel
        p.run_count.setValue(_int(s.value("run/count"), p.run_count.value()))
        p.run_interval.setValue(_int(s.value("run/interval"), p.run_interval.value()))
        c = self.distribution_panel.controls
        c.n_shown.setValue(_int(s.value("view/bars"), c.n_shown.value()))
        c.show_logits.setChecked(_bool(s.value("view/logits"), False))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(STATE_VERSION))
        sm = self.session.sample
        s.setValue("sample/temperature", float(sm.temperature))
        s.setValue("sample/top_k", int(sm.top_k))
        s.setValue("sample/top_p", float(sm.top_p))
        s.setValue("sample/seed", -1 if sm.seed is None else int(sm.seed))
        s.setValue("prompt/text", self.prompt_panel.editor.toPlainText())
        s.setValue("run/count", self.prompt_panel.run_count.value())
        s.setValue("run/interval", self.prompt_panel.run_interval.value())
        c = self.distribution_panel.controls
        s.setValue("view/bars", c.n_shown.value())
        s.setValue("view/logits", c.show_logits.isChecked())
        if self.session.info is not None and self.session.info.path is not None:
            s.setValue("files/model", str(self.session.info.path))
        if self.device_choice is not None:
            s.setValue("device", self.device_choice)
        s.sync()

    def closeEvent(self, e: QCloseEvent) -> None:  # noqa: N802
        if self._close_progress is not None:  # already waiting for a training step to end
            e.ignore()
            return
        self._closing = True
        self.save_settings()
        # a running training stops after its step and saves its checkpoint before the session
        # goes; a step that takes longer than CLOSE_WAIT_MS (a large model) is waited for with
        # the event loop running, and the window closes when the thread has ended
        busy = []
        for panel in self.panels.values():
            shutdown = getattr(panel, "shutdown", None)
            if callable(shutdown) and not shutdown(CLOSE_WAIT_MS):
                busy.append(panel)
        if busy:
            e.ignore()
            self._close_after(busy)
            return
        if self.compare_window is not None:
            self.compare_window.close()
        self.session.close()
        super().closeEvent(e)

    def open_compare(self, right: str = "") -> QWidget | None:
        """Open the side-by-side window: both columns start as this window's run (model,
        prompt, sampling, heads off); ``right`` changes the right one (``key=value;…``, see
        explorer.compare.parse_column_spec). Its module loads here: it builds the attention
        panel, which start-up defers."""
        s = self.session
        if s.info is not None and s.info.path is None and s.info.trained:
            # each column loads its model from a file in its own worker
            self.show_message("Side by side opens models from files: save this trained model "
                              "first (File \u2192 Save model as)")
            return None
        compare = importlib.import_module("explorer.compare")
        base = compare.ColumnSpec(s.info.path if s.info is not None else None, s.prompt,
                                  s.sample, s.ablation)
        spec = compare.parse_column_spec(right, base) if right else base
        if self.compare_window is not None:
            self.compare_window.close()
        w = compare.CompareWindow(base, spec, device=s.device)
        w.closed.connect(self._on_compare_closed)
        self.compare_window = w
        w.start()
        w.show()
        return w

    @Slot()
    def _on_compare_closed(self) -> None:
        if self.sender() is self.compare_window:
            self.compare_window = None

    def _close_after(self, busy: list[QWidget]) -> None:
        """Show that the window waits for training to save, and close when every run ended."""
        dialog = QProgressDialog(
            "Finishing the current training step and saving the model…\n"
            "The window closes when it is saved.", "", 0, 0, self)
        dialog.setWindowTitle("Saving before closing")
        dialog.setCancelButton(None)  # stopping the thread mid-step would lose the work
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        self._close_progress = dialog
        self._close_waiting = list(busy)
        for w in busy:
            w.thread_finished.connect(self._on_close_wait_ended)
        dialog.show()
        self._on_close_wait_ended()  # a run may have ended in between

    @Slot()
    def _on_close_wait_ended(self) -> None:
        self._close_waiting = [w for w in self._close_waiting if w.running]
        if self._close_waiting or self._close_progress is None:
            return
        self._close_progress.close()
        self._close_progress.deleteLater()
        self._close_progress = None
        QTimer.singleShot(0, self.close)

    # -- lessons ------------------------------------------------------------------------------
    def lesson_dock(self, pane: QWidget) -> QDockWidget:
        """The "Lesson" dock (narration pane), made on the first lesson, at the right side."""
        dock = self.docks.get("Lesson")
        if dock is None:
            # beside the prompt strip: the panel below keeps its height (a projector's 720
            # lines are few), and presenter mode keeps it next to the strip
            dock = self.add_panel("Lesson", pane, AREA,
                                  beside=("Next token", Qt.Orientation.Vertical))
            self.presenter.act_toggle.toggled.connect(self._place_lesson_dock)
        self._place_lesson_dock()
        return dock

    @Slot()
    def _place_lesson_dock(self) -> None:
        """Presenting: beside the prompt strip (the one big panel keeps the window's width);
        else under the next-token panel (the prompt keeps its width, the big panel its size)."""
        dock, prompt = self.docks.get("Lesson"), self.docks.get("Prompt")
        if dock is None or prompt is None or dock.isFloating():
            return
        if self.presenter.active:
            self.splitDockWidget(prompt, dock, Qt.Orientation.Horizontal)
            w = self.width()
            self.resizeDocks([prompt, dock], [w // 2, w - w // 2], Qt.Orientation.Horizontal)
        elif "Next token" in self.docks:
            self.splitDockWidget(self.docks["Next token"], dock, Qt.Orientation.Vertical)

    @Slot()
    def _fill_lessons(self) -> None:
        self.lessons_menu.clear()
        for p in shipped_lessons():
            a = self.lessons_menu.addAction(p.stem.replace("_", " "))
            a.setData(str(p))
            a.setStatusTip(str(p))
            a.triggered.connect(self._lesson_from_action)
        if not self.lessons_menu.actions():
            self.lessons_menu.addAction("(no lessons shipped)").setEnabled(False)

    @Slot()
    def _lesson_from_action(self) -> None:
        act = self.sender()
        if isinstance(act, QAction) and act.data():
            self.open_lesson(act.data())

    @Slot()
    def open_lesson_dialog(self) -> None:
        start = self.settings.value("files/lesson_dir", "")
        path, _ = QFileDialog.getOpenFileName(self, "Open lesson", str(start), LESSON_FILTER)
        if path:
            self.settings.setValue("files/lesson_dir", str(Path(path).parent))
            self.open_lesson(path)

    def open_lesson(self, path: str | Path, slide: int = 0) -> bool:
        """Play the lesson in ``path`` from ``slide`` (0-based); a bad file is refused with a
        message naming the slide and field."""
        try:
            lesson = load_lesson(path)
            self.lessons.open(lesson, slide)
        except LessonError as e:
            self.show_error("Cannot open the lesson", str(e))
            return False
        self._recording = lesson
        return True

    @Slot()
    def close_lesson(self) -> None:
        self.lessons.close()

    @Slot(str)
    def _on_lesson_failed(self, text: str) -> None:
        self.show_error("Cannot show the slide", text)

    @Slot()
    def add_slide_from_view(self) -> None:
        """Append a slide that replays the current view to the lesson being built (the open
        lesson, or a new one)."""
        base = self._recording or Lesson(title="My lesson", slides=())
        try:
            slide = self.lessons.record_slide(f"Slide {len(base.slides) + 1}")
        except LessonError as e:
            self.show_error("Cannot add a slide", str(e))
            return
        self._recording = Lesson(title=base.title, description=base.description,
                                 slides=(*base.slides, slide), path=base.path)
        self.show_message(f"Added slide {len(self._recording.slides)} to "
                          f"\u201c{self._recording.title}\u201d (File \u2192 Save lesson as)")

    @property
    def recorded_lesson(self) -> Lesson | None:
        return self._recording

    @Slot()
    def save_lesson_dialog(self) -> None:
        if self._recording is None or not self._recording.slides:
            self.show_message("No slides yet: File \u2192 Add slide from current view")
            return
        start = self.settings.value("files/lesson_dir", str(Path.home()))
        path, _ = QFileDialog.getSaveFileName(self, "Save lesson as",
                                              str(Path(start) / "lesson.json"), LESSON_FILTER)
        if path:
            self.save_lesson(path)

    def save_lesson(self, path: str | Path) -> bool:
        path = Path(path)
        if path.suffix.lower() != ".json":
            path = path.with_name(path.name + ".json")
        if self._recording is None:
            return False
        try:
            save_lesson(self._recording, path)
        except OSError as e:
            self.show_error("Could not save the lesson", f"{path}: {e.strerror or e}")
            return False
        self.show_message(f"Saved {path}")
        return True

    # -- concepts -----------------------------------------------------------------------------
    @Slot()
    def _concept_from_action(self) -> None:
        act = self.sender()
        if isinstance(act, QAction):
            self.show_concept(str(act.data()))

    def show_concept(self, key: str) -> ConceptsBrowser:
        """Help → Concepts: the concept browser, at ``key`` ("" = the first concept)."""
        if self._concepts is None:
            self._concepts = ConceptsBrowser(self)
            self._concepts.show_it.connect(self.show_concept_view)
        self._concepts.select(key or CONCEPTS[0].key)
        self._concepts.show()
        self._concepts.raise_()
        return self._concepts

    @Slot(object)
    def show_concept_view(self, c: Concept) -> None:
        """A concept's "Show it": its panel, after opening the shipped example it needs when
        the model in the window is of another kind (cross-attention needs an encoder-decoder)."""
        cfg = self.session.config
        if c.example and (cfg is None or cfg.kind != c.kind):
            self._pending_view = (c.kind, c.show)
            self.show_message(f"Opening the example {c.example} to show {c.title.lower()}")
            self.open_example(shipped.resolve_checkpoint(c.example))
            return
        self._pending_view = None
        self.jump_to(c.show)

    @Slot(object)
    def jump_to(self, spec: ViewSpec) -> None:
        """Bring the panel (and view, layer, head, stage) that shows a concept to the front."""
        problem = show_view(self, spec)
        if problem:
            self.show_message(problem)

    # -- help ---------------------------------------------------------------------------------
    def about_text(self) -> str:
        try:
            import torch

            torch_v = torch.__version__
        except Exception:  # noqa: BLE001
            torch_v = "not loaded"
        device = self.session.device
        desc = device
        try:
            from model.devices import available_devices

            desc = dict(available_devices()).get(device, device)
        except Exception:  # noqa: BLE001
            pass
        return (f"<h3>Transformer Explorer</h3><p>See a GPT-style transformer think: step through "
                f"generation, look inside every layer and head, train small models.</p>"
                f"<table><tr><td>torch</td><td>{torch_v}</td></tr>"
                f"<tr><td>Qt</td><td>{qVersion()} (PySide6 {PySide6.__version__})</td></tr>"
                f"<tr><td>pyqtgraph</td><td>{pyqtgraph.__version__}</td></tr>"
                f"<tr><td>numpy</td><td>{numpy.__version__}</td></tr>"
                f"<tr><td>Python</td><td>{platform.python_version()} on {sys.platform}</td></tr>"
                f"<tr><td>device</td><td>{desc} ({device})</td></tr></table>")

    @Slot()
    def show_about(self) -> None:
        QMessageBox.about(self, "About Transformer Explorer", self.about_text())

    @Slot()
    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td><b>{a.text()}</b></td><td>{' / '.join(k.toString() for k in a.shortcuts())}"
            f"</td><td>{a.statusTip()}</td></tr>"
            for a in [*self.prompt_panel.actions_list, self.act_restore_heads,
                      self.act_compare])
        QMessageBox.information(
            self, "Keyboard shortcuts",
            f"<table cellspacing=6>{rows}</table><p>While the prompt editor has the focus, Space, "
            "Backspace and the arrow keys edit the text. Press Esc or click the tokens to leave "
            "the editor. Click a token to select it; double-click a generated token to rewind to "
            "it. Click a bar in the Next token panel to choose that token. Shift+click a head "
            "in the all-heads view (or press X over it) to switch it off or on again.</p>")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _placeholder(title: str) -> QWidget:
    lab = QLabel(f"{title}: loading \u2026")
    lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
    lab.setStyleSheet(f"color: {THEME.muted};")
    return lab


def _north() -> QTabWidget.TabPosition:
    return QTabWidget.TabPosition.North


def _same_device(a: str, b: str) -> bool:
    def norm(x: str) -> str:
        return "cuda" if x == "cuda:0" else x

    return norm(str(a)) == norm(str(b))


def _human(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return str(n)


def _int(v: object, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _bool(v: object, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)


def _whole_tab_titles(bar: QTabBar) -> None:
    """A dock tab bar that shows each title whole and scrolls when they do not all fit."""
    bar.setElideMode(Qt.TextElideMode.ElideNone)
    bar.setUsesScrollButtons(True)
