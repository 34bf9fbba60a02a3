"""A non-editable install works as a newcomer would use it, from a folder that is not the clone.

Builds a wheel from a copy of the working tree, installs it into a fresh virtual environment
(which borrows torch, PySide6 … from the system's site-packages, so nothing is downloaded) and
runs the console scripts and ``python -m model`` from an empty folder — and from a folder with a
hostile ``model.py``, which must not shadow the console script's package.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".ruff_cache",
    ".hypothesis", ".venv", "*.optim.safetensors", "shot*.png")
HOSTILE = "import sys\nprint('hijacked by model.py')\nsys.exit(99)\n"

pytestmark = pytest.mark.slow  # ≈ 30 s: a wheel build, a venv and five interpreters


def _bin(env_dir: Path, name: str) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin") / name


def _run(cmd: list, cwd: Path, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    environ.update({"PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1", **env})
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with the project's wheel installed (not editable); returns the venv folder."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    wheels = base / "wheels"
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--no-index", "-q", "-w", wheels, src], cwd=base)
    assert r.returncode == 0, r.stderr
    (wheel,) = wheels.glob("transformer_explorer-*.whl")
    env_dir = base / "venv"
    # without pip: the system's pip (visible through --system-site-packages) installs into it
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    r = _run([_bin(env_dir, "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
              wheel], cwd=base)
    assert r.returncode == 0, r.stderr
    return env_dir


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    d = tmp_path / "somewhere else"
    d.mkdir()
    return d


def test_the_wheel_carries_the_models_and_the_corpus(installed, elsewhere):
    r = _run([_bin(installed, "python"), "-c",
              "import model, model.shipped as s; print(model.__file__); "
              "print(*[p.name for p in s.shipped_models() + s.shipped_corpora()], "
              "s.MODELS.joinpath('README.md').is_file())"], cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    where, names = r.stdout.splitlines()
    assert Path(where).is_relative_to(installed), "the venv's copy was not the one imported"
    assert names.split() == ["induction.safetensors", "numbers_to_words.safetensors",
                             "shakespeare_bpe.safetensors", "shakespeare_char.safetensors",
                             "sonnets_encoder.safetensors", "sonnets.txt", "True"]


def test_cli_generates_from_a_shipped_model_by_name(installed, elsewhere):
    py = _bin(installed, "python")
    r = _run([py, "-m", "model", "generate", "--checkpoint", "shakespeare_char",
              "--prompt", "ROMEO:", "--tokens", "40", "--seed", "1"], cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO:") and len(r.stdout) >= 40
    # the console script gives the same text (same model, same seed)
    r2 = _run([_bin(installed, "transformer-explorer-cli"), "generate", "--checkpoint",
               "shakespeare_char", "--prompt", "ROMEO:", "--tokens", "40", "--seed", "1"],
              cwd=elsewhere)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == r.stdout


def test_console_script_ignores_a_model_py_in_the_current_folder(installed, elsewhere):
    (elsewhere / "model.py").write_text(HOSTILE)
    (elsewhere / "explorer.py").write_text(HOSTILE)
    r = _run([_bin(installed, "transformer-explorer-cli"), "inspect", "--checkpoint",
              "induction", "--prompt", "fbjhcaefbjhc", "--temperature", "0"], cwd=elsewhere)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hijacked" not in r.stdout
    assert "2 layers × 4 heads" in r.stdout
    r = _run([_bin(installed, "transformer-explorer-cli"), "--help"], cwd=elsewhere)
    assert r.returncode == 0 and r.stdout.startswith("usage: transformer-explorer-cli")


def test_gui_console_script_opens_the_shipped_model(installed, elsewhere):
    shot = elsewhere / "shot.png"
    r = _run([_bin(installed, "transformer-explorer"), "--checkpoint", "shakespeare_char",
              "--screenshot", shot, "--steps", "2", "--no-restore"], cwd=elsewhere,
             QT_QPA_PLATFORM="offscreen",
             TRANSFORMER_EXPLORER_SETTINGS=str(elsewhere / "settings.ini"))
    assert r.returncode == 0, r.stderr
    assert "(model: shakespeare_char)" in r.stdout
    assert shot.stat().st_size > 10_000
