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
