"""End to end: ``python main.py --screenshot`` opens the window, steps, saves a PNG and exits 0."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from explorer.app import SETTINGS_ENV, parse_args

ROOT = Path(__file__).resolve().parents[2]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_main_screenshot_smoke(tmp_path):
    out = tmp_path / "out.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               **{SETTINGS_ENV: str(tmp_path / "settings.ini")})
    proc = subprocess.run(
        [sys.executable, "main.py", "--screenshot", str(out), "--steps", "5", "--prompt",
         "ROMEO:\nBut soft", "--seed", "1", "--device", "cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file()
    w, h = png_size(out)
    assert w >= 1000 and h >= 600
    assert out.stat().st_size > 20_000  # a real window, not a blank image
    assert (tmp_path / "settings.ini").is_file()  # its settings went to the given file


def test_command_line_options():
    a = parse_args(["--checkpoint", "m.safetensors", "--prompt", "hi", "--device", "cpu",
                    "--seed", "3", "--screenshot", "x.png", "--steps", "4"])
    assert (a.checkpoint, a.prompt, a.device, a.seed, a.screenshot, a.steps) == (
        "m.safetensors", "hi", "cpu", 3, "x.png", 4)


def test_the_window_code_does_not_import_torch_before_the_first_paint():
    """Start-up speed: torch (≈1.5 s) is imported by the worker after the window has painted.
    The window code imports model/'s torch-free modules (config, sampling, step_result) only."""
    code = ("import sys\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "from explorer.app import make_settings, sample_fields\n"
            "from explorer.main_window import MainWindow\n"
            "from explorer.session import Session\n"
            "s = Session(device='cpu')\n"
            "w = MainWindow(s, make_settings(), defer_panels=True)\n"
            "w.show(); app.processEvents()\n"
            "sample_fields(make_settings(), 3)\n"
            "loaded = sorted(m for m in ('torch', 'model.transformer', 'model.stepper')\n"
            "                if m in sys.modules)\n"
            "s.close()\n"
            "print('LOADED', loaded)\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout
