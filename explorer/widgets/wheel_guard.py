"""Spin boxes, combo boxes and sliders ignore the mouse wheel unless they have the keyboard focus.

Scrolling a panel with the wheel used to change whatever control passed under the pointer (the
training form's batch size went from 64 to 57 without anyone noticing). With the guard the wheel
scrolls the panel instead; click a control (or Tab to it) first to wheel through its values.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QSlider, QWidget

_GUARDED = (QAbstractSpinBox, QComboBox, QSlider)


class WheelGuard(QObject):
    """Event filter for the guarded controls: an unfocused one passes the wheel on."""

    def eventFilter(self, obj, e) -> bool:  # noqa: N802 - Qt API
        if e.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            # ignored and filtered: Qt hands the wheel on to the parent (the scroll area)
            e.ignore()
            return True
        return False


def guard_wheel(root: QWidget, guard: WheelGuard) -> None:
    """Guard every spin box, combo box and slider under ``root``. Their focus policy becomes
    click/Tab only: Qt's default also gives them the focus on a wheel turn, which would let
    the turn through."""
    for w in root.findChildren(QWidget):
        if isinstance(w, _GUARDED) and not w.property("wheelGuarded"):
            w.setProperty("wheelGuarded", True)
            if w.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            w.installEventFilter(guard)
