"""Which coalesced panel redraws are still waiting to run.

Panels redraw from a single-shot timer (``plotting.Coalescer``, ``plotting.LiveRedraw``), so a
burst of results draws once. Those timers are registered here, and :func:`pending` says whether
any of them is running: the session uses it to notice the paint that shows a whole new result
(then the inference worker may compute the next step ahead without competing with the redraw).
"""
from __future__ import annotations

import weakref

from PySide6.QtCore import QTimer

_TIMERS: weakref.WeakSet = weakref.WeakSet()


def register(timer: QTimer) -> QTimer:
    """Count ``timer`` as a panel's redraw timer; returns it."""
    _TIMERS.add(timer)
    return timer


def pending() -> bool:
    """True while some registered redraw timer is running (its redraw has not happened yet)."""
    for t in list(_TIMERS):
        try:
            if t.isActive():
                return True
        except RuntimeError:  # its C++ object is gone with its panel
            _TIMERS.discard(t)
    return False
