"""The View menu's look entries: text size (zoom), the dark or light theme, the colour-blind-safe
palette. Each choice is applied through :mod:`explorer.theme` and remembered in QSettings
(``view/zoom``, ``view/theme``, ``view/palette``); :func:`saved_look` reads them at start-up so the
window is built at the right size and colours."""
from __future__ import annotations

from PySide6.QtCore import QObject, QSettings, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

from explorer import theme

ZOOM_CHOICES = (0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def saved_look(settings: QSettings) -> dict:
    """The theme, zoom and palette saved last time, as :func:`theme.apply_theme` arguments."""
    name = str(settings.value("view/theme", "dark") or "dark")
    palette = str(settings.value("view/palette", "standard") or "standard")
    return {"theme": name if name in theme.THEMES else "dark",
            "zoom_factor": theme.clamp_zoom(settings.value("view/zoom", 1.0)),
            "palette": palette if palette in theme.PALETTES else "standard"}


def _keys(*keys: str | QKeySequence.StandardKey) -> list[QKeySequence]:
    """Key sequences without repeats: the platform's zoom keys often equal ours, and one key
    bound twice to an action is ambiguous to Qt (it then triggers nothing)."""
    out: list[QKeySequence] = []
    for k in keys:
        for seq in (QKeySequence.keyBindings(k) if isinstance(k, QKeySequence.StandardKey)
                    else [QKeySequence(k)]):
            if seq not in out:
                out.append(seq)
    return out


class LookMenu(QObject):
    """Adds the look entries to ``menu``; ``window`` gets their shortcuts (they work with the menu
    bar hidden, e.g. in presenter mode)."""

    def __init__(self, menu: QMenu, window: QWidget, settings: QSettings):
        super().__init__(window)
        self.settings = settings
        size = menu.addMenu("&Text size")
        self.act_larger = size.addAction("&Larger", self.larger)
        self.act_larger.setShortcuts(_keys("Ctrl+=", "Ctrl++", QKeySequence.StandardKey.ZoomIn))
        self.act_smaller = size.addAction("&Smaller", self.smaller)
        self.act_smaller.setShortcuts(_keys("Ctrl+-", QKeySequence.StandardKey.ZoomOut))
        self.act_reset = size.addAction("&Normal (100 %)", self.reset)
        self.act_reset.setShortcut(QKeySequence("Ctrl+0"))
        size.addSeparator()
        self.zoom_group = QActionGroup(self)
        for z in ZOOM_CHOICES:
            a = size.addAction(f"{round(z * 100)} %")
            a.setCheckable(True)
            a.setData(z)
            a.triggered.connect(self._on_zoom_action)
            self.zoom_group.addAction(a)
        self.theme_group = QActionGroup(self)
        tm = menu.addMenu("T&heme")
        self.theme_actions: dict[str, QAction] = {}
        for name, label in (("dark", "&Dark"), ("light", "&Light (for projectors)")):
            a = tm.addAction(label)
            a.setCheckable(True)
            a.setData(name)
            a.triggered.connect(self._on_theme_action)
            self.theme_group.addAction(a)
            self.theme_actions[name] = a
        self.act_palette = menu.addAction("&Colour-blind-safe colours")
        self.act_palette.setCheckable(True)
        self.act_palette.setStatusTip("Token chips and heatmaps in colours that differ in "
                                      "lightness (cividis), readable with any colour vision")
        self.act_palette.toggled.connect(self._on_palette)
        for a in (self.act_larger, self.act_smaller, self.act_reset):
            window.addAction(a)
        theme.NOTIFIER.changed.connect(self.sync)
        self.sync()

    # -- actions ------------------------------------------------------------------------------
    @Slot()
    def larger(self) -> None:
        self.set_zoom(theme.next_zoom(theme.zoom(), +1))

    @Slot()
    def smaller(self) -> None:
        self.set_zoom(theme.next_zoom(theme.zoom(), -1))

    @Slot()
    def reset(self) -> None:
        self.set_zoom(1.0)

    def set_zoom(self, z: float) -> None:
        self.settings.setValue("view/zoom", theme.set_zoom(z))

    def set_theme(self, name: str) -> None:
        theme.set_theme(name)
        self.settings.setValue("view/theme", theme.current_theme().name)

    @Slot()
    def _on_zoom_action(self) -> None:
        act = self.sender()
        if isinstance(act, QAction):
            self.set_zoom(float(act.data()))

    @Slot()
    def _on_theme_action(self) -> None:
        act = self.sender()
        if isinstance(act, QAction):
            self.set_theme(str(act.data()))

    @Slot(bool)
    def _on_palette(self, on: bool) -> None:
        name = "colour-blind" if on else "standard"
        if name != theme.palette_name():
            theme.set_palette(name)
        self.settings.setValue("view/palette", name)

    @Slot()
    def sync(self) -> None:
        """Check the entries that match the look in use."""
        z = theme.zoom()
        for a in self.zoom_group.actions():
            a.setChecked(abs(float(a.data()) - z) < 1e-6)
        self.theme_actions[theme.current_theme().name].setChecked(True)
        self.act_palette.blockSignals(True)
        self.act_palette.setChecked(theme.palette_name() == "colour-blind")
        self.act_palette.blockSignals(False)
        self.act_larger.setEnabled(z < theme.ZOOM_MAX - 1e-6)
        self.act_smaller.setEnabled(z > theme.ZOOM_MIN + 1e-6)
