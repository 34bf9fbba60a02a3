"""Redraw scheduling: how a burst of changes becomes one panel redraw, and which are still waiting.

Panels redraw from a single-shot timer owned by a :class:`Redraw`, so a burst of results (typing,
fast stepping) draws once. A panel that is not on screen (a closed dock, a tab behind another)
only marks itself dirty and catches up when it is shown or its tab is raised. The panels that
redraw from every session result use it through the :class:`LiveRedraw` mixin.

Every redraw timer is registered here, and :func:`pending` says whether any of them is running:
the session uses it to notice the paint that shows a whole new result (then the inference worker
may compute the next step ahead without competing with the redraw); benchmarks fire them early.
"""
from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

_TIMERS: weakref.WeakSet[QTimer] = weakref.WeakSet()


def register(timer: QTimer) -> QTimer:
    """Count ``timer`` as a panel's redraw timer; returns it."""
    _TIMERS.add(timer)
    return timer


def timers() -> list[QTimer]:
    """The registered redraw timers whose panels still exist (benchmarks fire them early)."""
    out = []
    for t in list(_TIMERS):
        try:
            t.isActive()
        except RuntimeError:  # its C++ object is gone with its panel
            _TIMERS.discard(t)
            continue
        out.append(t)
    return out


def pending() -> bool:
    """True while some registered redraw timer is running (its redraw has not happened yet)."""
    return any(t.isActive() for t in timers())


def is_shown(widget: QWidget) -> bool:
    """Whether ``widget`` is on screen. ``isVisible()`` is not enough: a dock tab behind another
    stays "visible" (Qt parks it outside the window), so check it has an unobscured region too."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


def catch_up(widget: QWidget) -> None:
    """Tell a panel that its dock came to the front (a tab raised): a redraw skipped while it
    was hidden happens now. Panels opt in with a ``catch_up()`` method."""
    fn = getattr(widget, "catch_up", None)  # only some panels have one
    if callable(fn):
        fn()


class Redraw(QObject):
    """Runs ``fn`` once after a burst of :meth:`request` calls: the one redraw coalescer.

    Fixed delay: ``fn`` runs ~``ms`` after the first request of a burst. ``paced``: frame pacing
    instead, a request waits only for what is left of ``ms`` since the last redraw (see
    :meth:`begin`), so a single step is drawn on the next pass of the event loop (a fixed 16 ms
    timer added up to a frame to every step) and a burst still draws once a frame.

    With ``widget``, nothing is drawn while the widget is hidden: a request only marks the redraw
    dirty, and it happens when the widget is shown again or :meth:`catch_up` is called (a raised
    dock tab). A ``fn`` that calls :meth:`begin` first also skips a redraw whose widget was
    hidden between the request and the timer.
    """

    def __init__(self, fn: Callable[[], object], ms: int = 16, parent: QObject | None = None,
                 *, widget: QWidget | None = None, paced: bool = False, dirty: bool = False):
        super().__init__(parent)
        self._fn = fn
        self._widget = widget
        self._paced = paced
        self.ms = ms
        self.dirty = dirty  # a redraw was skipped while hidden (or nothing drawn yet)
        self.count = 0  # redraws begun (see begin)
        self.last = -1e9  # time.perf_counter() of the last begun redraw
        self.timer = register(QTimer(self))
        self.timer.setSingleShot(True)
        self.timer.setInterval(ms)
        self.timer.timeout.connect(self._fire)
        if widget is not None:
            widget.installEventFilter(self)

    def request(self, *_args: object) -> None:
        """Ask for a redraw (connect any signal to this)."""
        if self._widget is not None and not is_shown(self._widget):
            self.dirty = True  # drawn on the next show (or catch_up, for a raised dock tab)
            return
        if not self.timer.isActive():
            self._start()

    def catch_up(self) -> None:
        """Run the redraw skipped while the widget was hidden, if any."""
        if self.dirty:
            self.dirty = False
            self._start()

    def begin(self) -> bool:
        """Called by ``fn`` when it starts (also when called directly, not from the timer):
        True when the widget is on screen and should draw now; else the redraw stays dirty."""
        self.timer.stop()
        if self._widget is not None and not is_shown(self._widget):
            self.dirty = True
            return False
        self.dirty = False
        self.count += 1
        self.last = time.perf_counter()
        return True

    def flush(self) -> None:
        """Run now if a redraw is pending (tests and benchmarks)."""
        if self.timer.isActive():
            self.timer.stop()
            self._fn()

    @property
    def pending(self) -> bool:
        return self.timer.isActive()

    def eventFilter(self, obj: QObject, e: QEvent) -> bool:  # noqa: N802 - Qt API
        if e.type() == QEvent.Type.Show:
            self.catch_up()
        return False

    def _start(self) -> None:
        if self._paced:
            since_ms = (time.perf_counter() - self.last) * 1000
            self.timer.start(max(0, math.ceil(self.ms - since_ms)))
        else:
            self.timer.start(self.ms)

    def _fire(self) -> None:
        self._fn()


class LiveRedraw:
    """Mixin for the panels that redraw from every session result, with a paced :class:`Redraw`.

    Put it before QWidget in the bases, call ``_init_redraw()`` in ``__init__``, connect signals
    to ``schedule_redraw`` and start ``redraw_now`` with ``if not self._begin_redraw(): return``.
    The panel starts dirty: it draws when first shown (the Redraw watches its Show events).
    """

    redraw_ms = 16

    def _init_redraw(self) -> None:
        self._redraw = Redraw(self.redraw_now, self.redraw_ms, self, widget=self, paced=True,
                              dirty=True)

    @property
    def redraw_count(self) -> int:
        return self._redraw.count

    def schedule_redraw(self, *_args: object) -> None:
        self._redraw.request()

    def catch_up(self) -> None:
        """The dock's tab came to the front: draw what was skipped while it was behind."""
        self._redraw.catch_up()

    def _begin_redraw(self) -> bool:
        """True when the panel is on screen and should draw now; else it stays dirty."""
        return self._redraw.begin()
