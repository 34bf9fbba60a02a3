"""Fixtures for the explorer's GUI tests: settings in a temporary file, tiny model files, and
``make_window`` that owns creation and teardown of Session + MainWindow (worker threads stopped)."""
from __future__ import annotations

import gc
import string
from pathlib import Path

import pytest
import torch

from explorer.app import SETTINGS_ENV, make_settings, sample_from_settings

VOCAB = sorted(set(string.printable) - set("\t\r\x0b\x0c"))


@pytest.fixture(autouse=True)
def _destroy_leftovers(qapp):
    """Destroy what a test leaves behind (closed widgets, sessions, timers) right after it, not
    at some later garbage collection inside another test's event loop: late destruction there
    crashed the next window's start-up now and then (about 1 full run in 15)."""
    yield
    from PySide6.QtCore import QCoreApplication, QEvent

    gc.collect()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qapp.processEvents()


@pytest.fixture(autouse=True)
def _default_look():
    """The look (theme, zoom, palette) is application-wide: a test that changes it puts it back."""
    yield
    from explorer import theme

    theme.set_theme("dark")
    theme.set_zoom(1.0)
    theme.set_palette("standard")


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    """Every test gets its own settings file: tests never touch the user's settings."""
    path = tmp_path / "settings.ini"
    monkeypatch.setenv(SETTINGS_ENV, str(path))
    return path


def save_tiny(path: Path, *, vocab=VOCAB, block_size: int = 32, n_layer: int = 2,
              n_head: int = 2, n_embd: int = 16, seed: int = 0, steps: int = 10) -> Path:
    from model.checkpoints import save_checkpoint
    from model.config import ModelConfig
    from model.tokenizer import CharTokenizer
    from model.transformer import GPT

    tok = CharTokenizer(list(vocab))
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=n_layer,
                      n_head=n_head, n_embd=n_embd, pos_kind="learned")
    torch.manual_seed(seed)
    model = GPT(cfg).eval()
    with torch.no_grad():  # peakier than the 0.02 init so distributions are not flat
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return save_checkpoint(path, model, tok, summary={"steps": steps})


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "tiny": save_tiny(d / "tiny.safetensors"),
        "other": save_tiny(d / "other.safetensors", seed=1, n_embd=24, n_head=3),
        "abc": save_tiny(d / "abc.safetensors", vocab=list("\nabc "), seed=2),
    }


class WindowFactory:
    def __init__(self, qtbot):
        self.qtbot = qtbot
        self.made: list = []

    def __call__(self, checkpoint: Path | None = None, prompt: str = "Hello",
                 optional_panels: bool = False, restore: bool = True, sample=None):
        from explorer.main_window import MainWindow
        from explorer.session import Session

        settings = make_settings()
        session = Session(device="cpu",
                          sample=sample if sample is not None else sample_from_settings(settings))
        session.prompt = prompt
        window = MainWindow(session, settings, restore=restore, optional_panels=optional_panels)
        window.prompt_panel.set_prompt_text(prompt, apply=False)
        self.qtbot.addWidget(window)
        self.made.append(window)
        window.show()
        with self.qtbot.waitSignal(session.step_ready, timeout=20000):
            session.start(checkpoint)
        return window

    def close_all(self) -> None:
        for w in self.made:
            w.close()  # saves settings, stops the worker thread and waits for it
            assert w.session.closed
            assert w.session._thread.thread.isFinished(), "inference thread still running"
        self.made.clear()


@pytest.fixture
def make_window(qtbot):
    factory = WindowFactory(qtbot)
    yield factory
    factory.close_all()


@pytest.fixture
def window(make_window, tiny_models):
    return make_window(tiny_models["tiny"])


@pytest.fixture
def dialogs(monkeypatch):
    """Record QMessageBox calls instead of blocking on them."""
    from PySide6.QtWidgets import QMessageBox

    calls: list[tuple[str, str, str]] = []

    def record(kind):
        def fn(parent, title, text, *a, **k):
            calls.append((kind, title, text))
            return QMessageBox.StandardButton.Ok
        return fn

    for kind in ("warning", "critical", "information", "about"):
        monkeypatch.setattr(QMessageBox, kind, staticmethod(record(kind)))
    return calls


@pytest.fixture
def count_forwards():
    """``count_forwards(model)`` -> a one-item list counting forward passes (a pre-hook)."""
    handles = []

    def attach(model) -> list[int]:
        count = [0]

        def hook(_mod, _inp):
            count[0] += 1

        handles.append(model.register_forward_pre_hook(hook))
        return count

    yield attach
    for h in handles:
        h.remove()


@pytest.fixture
def training_panel(qtbot, tmp_path):
    """A Training dock on its own session; it must stop its run and its thread at the end."""
    from explorer.panels.training.panel import TrainingPanel
    from explorer.session import Session

    session = Session(device="cpu")
    p = TrainingPanel(session, runs_dir=tmp_path / "runs")
    qtbot.addWidget(p)
    p.auto_measure = False  # no background timing runs competing with the tests' training
    p.resize(1000, 750)
    p.show()
    yield p
    assert p.shutdown(5000)
    if p.run is not None:
        assert p.run.thread.isFinished(), "training thread still running"
    session.close()


@pytest.fixture(scope="session", autouse=True)
def _garbage_collected_in_the_gui_thread(qapp):
    """As the app does (explorer.app.collect_garbage_in_gui_thread): the cycle collector must
    not destroy closed windows' widgets in a worker thread."""
    from explorer.app import collect_garbage_in_gui_thread

    collect_garbage_in_gui_thread()
