"""The one redraw coalescer (explorer.redraws.Redraw): a burst draws once, a hidden widget
draws when shown again, and the registry tells the session when no redraw is waiting."""
from __future__ import annotations

from PySide6.QtWidgets import QWidget

from explorer import redraws


def test_a_burst_of_requests_draws_once_and_flush_draws_now(qtbot):
    calls = []
    r = redraws.Redraw(lambda: calls.append(1), 10)
    for _ in range(20):
        r.request()
    assert r.pending and redraws.pending()
    qtbot.waitUntil(lambda: calls == [1], timeout=2000)
    qtbot.wait(30)
    assert calls == [1] and not r.pending
    r.request()
    r.flush()
    assert calls == [1, 1] and not r.pending
    r.flush()  # nothing pending: nothing drawn
    assert calls == [1, 1]


def test_a_hidden_widget_draws_when_shown_again(qtbot):
    w = QWidget()
    qtbot.addWidget(w)
    calls = []
    r = redraws.Redraw(lambda: calls.append(1), 0, w, widget=w)
    r.request()  # never shown yet: only marked dirty
    assert not r.pending and r.dirty
    w.resize(100, 100)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: calls == [1], timeout=2000)
    assert not r.dirty
    w.hide()
    r.request()
    assert not r.pending and r.dirty and calls == [1]
    r.catch_up()  # what a raised dock tab does
    qtbot.waitUntil(lambda: calls == [1, 1], timeout=2000)


def test_begin_skips_a_redraw_whose_widget_went_away(qtbot):
    w = QWidget()
    qtbot.addWidget(w)
    began = []
    r = redraws.Redraw(lambda: began.append(r.begin()), 16, w, widget=w, paced=True)
    w.show()
    qtbot.waitExposed(w)
    r.request()
    w.hide()  # hidden between the request and the timer
    qtbot.waitUntil(lambda: began == [False], timeout=2000)
    assert r.dirty and r.count == 0
    w.show()  # the Show event catches up
    qtbot.waitUntil(lambda: began == [False, True], timeout=2000)
    assert r.count == 1 and not r.dirty
