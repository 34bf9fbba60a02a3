"""Presenter mode (F5): large text, light theme, one panel under the prompt strip, secondary
controls hidden, clicker keys, blank screen, the keys hint; and the stepping hint outside it."""
from __future__ import annotations

from PySide6.QtCore import Qt

from explorer import theme
from explorer.app import parse_args, window_size
from explorer.panels.prompt import EDITING_HINT, KEYS_HINT
from explorer.presenter import PRESENTER_ZOOM


def _visible_docks(w) -> list[str]:
    return sorted(t for t, d in w.docks.items() if d.isVisible())


def test_f5_enters_and_leaves_presenter_mode(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"], optional_panels=True)
    qtbot.wait(50)
    before = _visible_docks(w)
    assert w.menuBar().isVisible() and w.prompt_panel.editor.isVisible()
    qtbot.keyClick(w, Qt.Key.Key_F5)
    assert w.presenter.active
    assert theme.current_theme().name == "light" and theme.zoom() >= PRESENTER_ZOOM
    assert not w.menuBar().isVisible() and not w.statusBar().isVisible()
    assert not w.prompt_panel.editor.isVisible() and not w.prompt_panel.buttons.isVisible()
    assert not w.distribution_panel.controls.top_k.isVisible()
    assert w.distribution_panel.controls.temp_slider.isVisible()  # the lesson's subject stays
    assert _visible_docks(w) == ["Next token", "Prompt"]
    hint = w.presenter.hint
    assert hint.isVisible() and "PageDown" in hint.text() and "blank" in hint.text()
    # the hint sits below the docks, covering none of them
    for d in w.docks.values():
        if d.isVisible():
            assert d.geometry().bottom() < hint.geometry().top()
    qtbot.keyClick(w, Qt.Key.Key_2)  # the second panel: Attention
    assert _visible_docks(w) == ["Attention", "Prompt"]
    qtbot.keyClick(w, Qt.Key.Key_F5)
    assert not w.presenter.active
    assert theme.current_theme().name == "dark" and theme.zoom() == 1.0
    assert w.menuBar().isVisible() and w.prompt_panel.editor.isVisible()
    assert _visible_docks(w) == before
    assert not hint.isVisible()


def test_clicker_keys_step_back_and_blank(qtbot, window):
    s = window.session
    window.presenter.set_active(True)
    n = s.result.n_generated
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert s.result.n_generated == n + 1
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.keyClick(window, Qt.Key.Key_Right)
    assert s.result.n_generated == n + 2
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert s.result.n_generated == n + 1
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert window.presenter.blanked
    assert window.presenter.blank.geometry() == window.rect()
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert not window.presenter.blanked
    window.presenter.set_active(False)
    qtbot.keyClick(window, Qt.Key.Key_B)  # an ordinary key outside presenter mode
    assert not window.presenter.blanked


def test_pagedown_steps_outside_presenter_mode_too(qtbot, window):
    s = window.session
    window.prompt_panel.leave_editor()
    n = s.result.n_generated
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert s.result.n_generated == n + 1


def test_hint_says_how_to_step_from_the_editor(qtbot, window):
    p = window.prompt_panel
    window.activateWindow()
    p.editor.setFocus()
    qtbot.waitUntil(lambda: p.keys_hint.text() == EDITING_HINT, timeout=2000)
    assert p.keys_hint.isVisible()
    qtbot.keyClick(p.editor, Qt.Key.Key_Escape)  # Esc leaves the editor
    qtbot.waitUntil(lambda: p.keys_hint.text() == KEYS_HINT, timeout=2000)
    assert "Esc" in EDITING_HINT and "PageDown" in KEYS_HINT


def test_presenter_and_size_options():
    a = parse_args(["--presenter", "--size", "1920x1080", "--scale", "1.5"])
    assert a.presenter and a.size == (1920, 1080) and a.scale == 1.5
    assert window_size(a.size, a.scale) == (1280, 720)
    assert window_size((1024, 768), None) == (1024, 768)
