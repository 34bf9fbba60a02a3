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
