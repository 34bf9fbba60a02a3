"""The mouse wheel over a form scrolls it: spin boxes, combo boxes and sliders change with the
wheel only once they have the keyboard focus (the batch size once changed from 64 to 57 while a
user scrolled the training form)."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QComboBox


def _wheel(widget, clicks: int = -3) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                     QPoint(0, 120 * clicks), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def test_wheel_over_the_training_form_changes_nothing(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], optional_panels=True)
    w.show_panel("Training")
    form = w.panels["Training"].form
    qtbot.wait(50)
    batch = form.batch
    before = batch.value()
    _wheel(batch)
    assert batch.value() == before
    combos = [c for c in form.findChildren(QComboBox) if c.isEnabled() and c.count() > 1]
    assert combos
    index = combos[0].currentIndex()
    _wheel(combos[0])
    assert combos[0].currentIndex() == index
    # once clicked (focused) the wheel works as usual
    batch.setFocus()
    qtbot.waitUntil(batch.hasFocus, timeout=2000)
    _wheel(batch, clicks=1)
    assert batch.value() != before
    assert batch.focusPolicy() == Qt.FocusPolicy.StrongFocus


def test_temperature_slider_ignores_an_unfocused_wheel(qtbot, window):
    slider = window.distribution_panel.controls.temp_slider
    v = slider.value()
    _wheel(slider)
    assert slider.value() == v
