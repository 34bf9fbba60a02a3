"""The prompt panel: typing, the step buttons and shortcuts, token chips, and bad prompts."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCursor, QTextDocument

from explorer.panels.prompt import DEBOUNCE_MS, qt_spans, text_edit


def step_and_wait(qtbot, window, fn, timeout=5000):
    with qtbot.waitSignal(window.session.step_ready, timeout=timeout) as blocker:
        fn()
    return blocker.args[0]


def test_typing_a_prompt_restarts_from_it(qtbot, window):
    s = window.session
    ed = window.prompt_panel.editor
    ed.clear()  # debounced: nothing happens until typing pauses
    with qtbot.waitSignal(s.step_ready, timeout=DEBOUNCE_MS + 5000):
        qtbot.keyClicks(ed, "First")
    r = s.result
    assert r.text == "First" and r.n_prompt == 5 and r.n_generated == 0
    assert window.prompt_panel.strip.result is r


def test_step_back_reset_resample_buttons(qtbot, window):
    s, p = window.session, window.prompt_panel
    for n in (1, 2, 3):
        r = step_and_wait(qtbot, window, lambda: qtbot.mouseClick(p.step_button, Qt.LeftButton))
        assert r.n_generated == n and r.chosen is not None
    r = step_and_wait(qtbot, window, lambda: qtbot.mouseClick(p.back_button, Qt.LeftButton))
    assert r.n_generated == 2
    r = step_and_wait(qtbot, window, lambda: qtbot.mouseClick(p.resample_button, Qt.LeftButton))
    assert r.n_generated == 2 and r.chosen is not None
    r = step_and_wait(qtbot, window, lambda: qtbot.mouseClick(p.reset_button, Qt.LeftButton))
    assert r.n_generated == 0 and r.text == "Hello"
    # back at the prompt: a message, no request
    with qtbot.waitSignal(s.message, timeout=1000) as msg:
        qtbot.mouseClick(p.back_button, Qt.LeftButton)
    assert "undo" in msg.args[0].lower()


def test_the_plain_text_view_follows_steps_back_resample_and_reset(qtbot, window):
    # a step appends its piece to the view's document; Back, Resample and Reset rebuild it
    p = window.prompt_panel
    shown = []
    for fn in [p.step] * 4 + [p.back, p.resample, p.step, p.reset, p.step]:
        r = step_and_wait(qtbot, window, fn)
        shown.append(p.text_view.toPlainText())
        assert shown[-1] == "".join(r.tokens) == p.plain_text()
    assert len({len(t) for t in shown}) > 3  # the text grew and shrank
    assert p.text_view.textCursor().atEnd()


def test_run_generates_and_stops(qtbot, window):
    s, p = window.session, window.prompt_panel
    p.run_count.setValue(6)
    p.run_interval.setValue(0)
    with qtbot.waitSignal(s.running_changed, timeout=10000,
                          check_params_cb=lambda running: not running):
        qtbot.mouseClick(p.run_button, Qt.LeftButton)
        assert s.running and p.act_run.text().startswith("Stop")
    qtbot.waitUntil(lambda: s.result.n_generated == 6, timeout=5000)
    assert not s.running and p.act_run.text() == "Run"
    # a long run, stopped after a few tokens: it stops at once and stays stopped
    p.run_count.setValue(5000)
    p.run_interval.setValue(20)
    qtbot.mouseClick(p.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: s.result.n_generated >= 9, timeout=10000)
    qtbot.mouseClick(p.run_button, Qt.LeftButton)  # the same button stops
    assert not s.running
    qtbot.waitUntil(lambda: not s.busy and s.worker.pending == 0, timeout=5000)
    n = s.result.n_generated
    assert n < 100
    step_and_wait(qtbot, window, s.reset)  # the worker still answers after a stop
    assert s.result.n_generated == 0 and n > 0


def test_shortcuts_step_back_and_not_in_the_editor(qtbot, window):
    s, p = window.session, window.prompt_panel
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    p.strip.setFocus()
    for key, n in ((Qt.Key_Space, 1), (Qt.Key_Right, 2), (Qt.Key_Left, 1), (Qt.Key_Backspace, 0)):
        r = step_and_wait(qtbot, window, lambda key=key: qtbot.keyClick(p.strip, key))
        assert r.n_generated == n, key
    r = step_and_wait(qtbot, window, lambda: qtbot.keyClick(p.strip, Qt.Key_Space))
    assert r.n_generated == 1
    r = step_and_wait(qtbot, window, lambda: qtbot.keyClick(p.strip, Qt.Key_Home))
    assert r.n_generated == 0
    # in the editor, Space and Backspace edit the prompt: no step, generation restarts from it
    p.editor.setFocus()
    p.editor.moveCursor(p.editor.textCursor().MoveOperation.End)
    steps = s.worker.steps_done
    with qtbot.waitSignal(s.step_ready, timeout=DEBOUNCE_MS + 5000):
        qtbot.keyClick(p.editor, Qt.Key_Space)
        qtbot.keyClick(p.editor, Qt.Key_Right)
        qtbot.keyClick(p.editor, Qt.Key_Left)
    assert p.editor.toPlainText() == "Hello "
    assert s.result.text == "Hello " and s.result.n_generated == 0
    assert s.worker.steps_done == steps
    # Esc leaves the editor; Space steps again
    qtbot.keyClick(p.editor, Qt.Key_Escape)
    assert not p.editor.hasFocus()
    r = step_and_wait(qtbot, window, lambda: qtbot.keyClick(p.strip, Qt.Key_Space))
    assert r.n_generated == 1
    assert "editor" in p.act_step.toolTip()


def test_chips_select_and_rewind(qtbot, window):
    s, p = window.session, window.prompt_panel
    for _ in range(4):
        step_and_wait(qtbot, window, s.step)
    r = s.result
    strip = p.strip
    strip.resize(800, 200)
    i = r.n_prompt + 1  # the second generated token
    centre = strip.chip_rect(i).center()
    with qtbot.waitSignal(s.selected_token_changed, timeout=1000) as sel:
        qtbot.mouseClick(strip, Qt.LeftButton, pos=centre)
    assert sel.args == [i] and s.selected_token == i and strip.selected == i
    assert "probability" in strip.tooltip_for(i) and "rank" in strip.tooltip_for(i)
    assert "prompt token" in strip.tooltip_for(0)
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.mouseDClick(strip, Qt.LeftButton, pos=centre)
    assert s.result.n_generated == 2  # the double-clicked token is now the last one
    assert s.result.ids[-1] == r.ids[i]
    # clicking a prompt chip selects it; clicking beside the chips deselects
    qtbot.mouseClick(strip, Qt.LeftButton, pos=strip.chip_rect(0).center())
    assert s.selected_token == 0
    qtbot.mouseClick(strip, Qt.LeftButton, pos=QPoint(790, 190))
    assert s.selected_token == -1


def test_unknown_characters_highlighted_and_removed(qtbot, window):
    s, p = window.session, window.prompt_panel
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        p.set_prompt_text("h\u00e9llo w\u00f6rld")
    sels = p.editor.extraSelections()
    assert [x.cursor.selectionStart() for x in sels] == [1, 7]
    assert p.note.isVisibleTo(p) and "vocabulary" in p.note.text() and "'\u00e9'" in p.note.text()
    assert p.remove_button.isVisibleTo(p)
    assert s.result.text == "hllo wrld"  # the model runs on what it knows; the text is kept
    assert p.editor.toPlainText() == "h\u00e9llo w\u00f6rld"
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        qtbot.mouseClick(p.remove_button, Qt.LeftButton)
    assert p.editor.toPlainText() == "hllo wrld"
    assert p.editor.extraSelections() == [] and not p.remove_button.isVisibleTo(p)


def test_unknown_characters_after_an_emoji_are_highlighted_in_place(qtbot, window):
    """Qt counts positions in UTF-16 code units, Python in code points: an emoji is one
    character in the prompt but two positions in the editor."""
    s, p = window.session, window.prompt_panel
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        p.set_prompt_text("hi \U0001F600 there\u200b, \u202eok \u00a7 The end")
    assert [x.cursor.selectedText() for x in p.editor.extraSelections()] == [
        "\U0001F600", "\u200b", "\u202e", "\u00a7"]
    assert s.result.text == "hi  there, ok  The end"


def test_qt_spans_count_utf16_units():
    assert qt_spans("abc", [(0, 1), (1, 3)]) == [(0, 1), (1, 3)]
    text = "a\U0001F600b\u00e9\U0001F44D\U0001F3FDc"  # thumbs up + skin tone: two astral chars
    assert qt_spans(text, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (6, 7)]) == [
        (0, 1), (1, 3), (3, 4), (4, 5), (5, 9), (9, 10)]


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \t\u00e9\u0301\u4e2d\u200b\u202e\u00a7")
                                        + ["\U0001F600", "\U0001F44D", "\U0001F3FD", "\U00010348",
                                           "\u200d"]),
               min_size=1, max_size=20), st.data())
def test_qt_spans_select_the_same_characters_in_a_document(qapp, text, data):
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    doc = QTextDocument(text)
    (a, b), = qt_spans(text, [(start, end)])
    cur = QTextCursor(doc)
    cur.setPosition(a)
    cur.setPosition(b, QTextCursor.MoveMode.KeepAnchor)
    assert cur.selectedText() == text[start:end]


_PIECES = st.sampled_from(["a", "b", " the", "\n", "\u00e9", "\U0001F600", "\u2026", "xyz"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=12), st.integers(0, 3), st.lists(_PIECES, max_size=3),
       st.booleans(), st.booleans())
def test_text_edit_turns_the_old_text_into_the_new(pieces, drop, added, was_cropped, cropped):
    old = ("\u2026" if was_cropped else "") + "".join(pieces)
    new = ("\u2026" if cropped else "") + "".join(pieces[drop:] + added)
    edit = text_edit(old, new)
    if edit is not None:
        cut, head, tail = edit
        assert head + old[cut:] + tail == new
    if old and not was_cropped and not cropped and not drop:  # a step: an append
        assert edit == (0, "", "".join(added))


def test_the_text_view_edits_count_utf16_units(qtbot, window):
    p = window.prompt_panel
    for old, new in [("\U0001F600ab", "b\U0001F600"), ("x\U0001F600\U0001F600y", "\u2026y z"),
                     ("\u2026\U0001F600 a\nb", "\u2026 a\nb\U0001F600"), ("abc", "zzz")]:
        p._show_text(old)
        p._show_text(new)
        assert p.text_view.toPlainText().replace("\u2029", "\n") == new


def test_empty_prompt_starts_from_newline(qtbot, window):
    s, p = window.session, window.prompt_panel
    with qtbot.waitSignal(s.message, timeout=5000) as msg:
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            p.set_prompt_text("")
    assert "newline" in msg.args[0]
    assert s.result.tokens == ["\n"]
    assert "newline" in p.note.text()
    r = step_and_wait(qtbot, window, s.step)
    assert r.n_generated == 1


def test_long_prompt_is_cropped_with_a_notice(qtbot, window):
    s, p = window.session, window.prompt_panel
    text = "abcdefghij" * 5  # 50 > block size 32
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        p.set_prompt_text(text)
    assert s.result.cropped == 18 and s.result.T == 32
    assert "cropped" in p.note.text() and "32" in p.note.text()
    assert "context 32/32" in window.context_label.text()
    for n in (1, 2):  # a full window slides: the text view drops the first token and appends
        r = step_and_wait(qtbot, window, s.step)
        assert r.cropped == 18 + n
        assert p.text_view.toPlainText() == p.plain_text() == "\u2026" + "".join(r.tokens)


def test_keypad_enter_runs_like_enter(qtbot, window):
    s, p = window.session, window.prompt_panel
    p.run_count.setValue(3)
    p.run_interval.setValue(0)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    keypad_ctrl = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.KeypadModifier
    for widget in (p.strip, p.editor):  # from the tokens and while typing the prompt
        widget.setFocus()
        with qtbot.waitSignal(s.running_changed, timeout=10000,
                              check_params_cb=lambda running: not running):
            qtbot.keyClick(widget, Qt.Key.Key_Enter, keypad_ctrl)
        assert s.result.n_generated == 3
        step_and_wait(qtbot, window, s.reset)
    assert p.editor.toPlainText() == "Hello"  # the editor did not take it for a new line


def test_chips_scrolled_to_the_end_start_at_a_line_not_half_way_through_one(qtbot, window):
    """On a short prompt dock the newest chips are shown with the view starting at a line of
    chips: no line cut in half along the top edge (a projector shows that as garbage)."""
    s, p = window.session, window.prompt_panel
    with qtbot.waitSignal(s.step_ready, timeout=DEBOUNCE_MS + 5000):
        p.set_prompt_text("a line of text\n" * 12)
    scroll = p.scroll
    for height in (61, 67, 73, 80):  # views that are not a whole number of lines
        scroll.setFixedHeight(height)
        qtbot.waitUntil(lambda h=height: scroll.height() == h, timeout=2000)
        scroll.fit()
        bar = scroll.verticalScrollBar()
        assert bar.maximum() > 0
        bar.setValue(bar.maximum())
        tops = p.strip.row_tops()
        assert bar.value() + p.strip.MARGIN in tops
        # and the last line is whole
        bottom = p.strip.heightForWidth(scroll.viewport().width()) - p.strip.MARGIN
        assert bar.value() + scroll.viewport().height() >= bottom
