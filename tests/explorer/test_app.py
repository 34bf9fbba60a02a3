"""Start-up without a display: one line saying what to do, exit 2, no Qt abort (explorer/app.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from explorer.app import missing_display

ROOT = Path(__file__).resolve().parents[2]


def test_missing_display_is_detected_only_where_a_display_server_is_needed():
    assert missing_display({}, "linux") is not None
    assert missing_display({"DISPLAY": ":0"}, "linux") is None
    assert missing_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert missing_display({}, "darwin") is None and missing_display({}, "win32") is None


def test_main_py_without_a_display_says_what_to_do(tmp_path):
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["TRANSFORMER_EXPLORER_SETTINGS"] = str(tmp_path / "settings.ini")
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--no-restore"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    if sys.platform.startswith("linux"):
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "QT_QPA_PLATFORM=offscreen" in lines[0]
        assert "display" in lines[0] and r.stdout == ""


def test_screenshot_options_for_branches_and_compare_are_checked(capsys):
    from explorer.app import parse_args

    a = parse_args(["--steps", "30", "--branch-at", "12", "--compare", "temperature=1.5"])
    assert a.branch_at == 12 and a.compare == "temperature=1.5"
    for bad, words in ((["--steps", "5", "--branch-at", "5"], "--branch-at"),
                       (["--compare", "temp=2"], "not KEY=VALUE")):
        try:
            parse_args(bad)
        except SystemExit as e:
            assert e.code == 2
        else:
            raise AssertionError(f"{bad} was accepted")
        err = capsys.readouterr().err.strip().splitlines()
        assert words in err[-1]


def test_cycle_collection_runs_only_in_the_gui_thread(qapp, qtbot):
    """Python's automatic collector is off (it could destroy widgets in a worker thread); the
    GUI thread's timer collects instead."""
    import gc

    from explorer.app import collect_garbage_in_gui_thread

    collect_garbage_in_gui_thread()
    assert not gc.isenabled()

    class Cycle:
        pass

    c = Cycle()
    c.me = c
    gone = []
    import weakref

    weakref.finalize(c, gone.append, True)
    del c
    # past generation 0's threshold (live allocations), so the timer's next check collects
    keep = [Cycle() for _ in range(1000)]
    qtbot.waitUntil(lambda: bool(gone), timeout=5000)
    assert len(keep) == 1000
