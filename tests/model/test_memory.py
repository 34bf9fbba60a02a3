"""model.memory: estimates checked before allocating, and giving the heap's free pages back."""
from __future__ import annotations

import os

import pytest

import model.memory as memory


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


def test_release_free_memory_runs_malloc_trim_where_glibc_has_it(monkeypatch):
    monkeypatch.setattr(memory, "_trim", None)  # looked up afresh
    assert memory.release_free_memory() is _glibc()
    monkeypatch.setattr(memory, "_trim", False)  # no malloc_trim (macOS, Windows, musl)
    assert memory.release_free_memory() is False


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc_trim")
def test_release_free_memory_calls_it_with_no_padding(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_trim", lambda pad: calls.append(pad) or 1)
    assert memory.release_free_memory() and calls == [0]
