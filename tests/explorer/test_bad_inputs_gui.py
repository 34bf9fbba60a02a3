"""The catalogue of bad inputs and faults for the GUI (issue 11): each ends in one dialog or a
red line under the training form that names the problem (never a traceback), the app stays up,
the working model stays loaded and saved work stays valid."""
from __future__ import annotations

import errno
import json
import os
import struct
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import model.checkpoints as ckpt
from explorer.panels.training.panel import TrainingPanel
from explorer.session import Session
from model.checkpoints import load_checkpoint

DEEP = 100_000


def rewrite(src: Path, out: Path, tensors=None, **meta_changes) -> Path:
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    meta.update(meta_changes)
    save_file(load_file(str(src)) if tensors is None else tensors, str(out), metadata=meta)
    return out


def fifo(path: Path, done: threading.Event) -> Path:
    """A named pipe. Should the app block reading it (the bug), a helper thread writes an end
    of file after a while: the test then fails on the message instead of hanging."""
    os.mkfifo(path)

    def unblock():
        if not done.wait(10):
            with open(path, "wb"):
                pass

    threading.Thread(target=unblock, daemon=True).start()
    return path


@pytest.fixture
def unblock():
    done = threading.Event()
    yield done
    done.set()


def bad_model_files(tmp_path: Path, good: Path, done: threading.Event) -> dict[str, tuple]:
    """name -> (file, words its dialog must contain)."""
    nested = tmp_path / "nested.safetensors"
    header = b'{"__metadata__": {"format": "x"}, "a": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    nested.write_bytes(struct.pack("<Q", len(header)) + header)
    with safe_open(str(good), "pt") as f:
        cfg = json.loads(f.metadata()["config"])
    cfg["n_layer"] = 10**6
    tensors = load_file(str(good))
    name = next(k for k, v in tensors.items() if v.dim() == 2 and v.abs().max() < 1.9)
    bits = tensors[name].view(torch.int32)
    i = int(tensors[name].abs().argmax())
    bits.view(-1)[i] ^= 1 << 30  # the top exponent bit: a weight below 2 becomes ~1e37
    return {
        "nested header": (nested, ["nested too deeply"]),
        "nested config": (rewrite(good, tmp_path / "nested_cfg.safetensors",
                                  config="[" * DEEP + "]" * DEEP), ["nested too deeply"]),
        "n_layer 10**6": (rewrite(good, tmp_path / "million.safetensors",
                                  config=json.dumps(cfg)), ["n_layer=1000000", "file holds"]),
        "flipped bit": (rewrite(good, tmp_path / "flipped.safetensors", tensors=tensors),
                        [name, "absurdly large"]),
        "named pipe": (fifo(tmp_path / "model.fifo", done), ["not a regular file"]),
    }


@pytest.mark.parametrize("case", ["nested header", "nested config", "n_layer 10**6",
                                  "flipped bit", "named pipe"])
def test_bad_model_file_in_the_open_dialog(case, qtbot, window, tiny_models, tmp_path, dialogs,
                                           unblock):
    path, words = bad_model_files(tmp_path, tiny_models["tiny"], unblock)[case]
    s = window.session
    info, result = s.info, s.result
    window.open_model(path)
    qtbot.waitUntil(lambda: len(dialogs) > 0, timeout=10000)
    assert len(dialogs) == 1
    kind, title, text = dialogs[0]
    assert kind == "warning" and "open" in title.lower()
    assert path.name in text and "Traceback" not in text and "RecursionError" not in text
    for w in words:
        assert w in text, text
    assert s.info is info and s.result is result  # the working model stays
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.step()


def test_save_model_under_a_file_says_what_is_wrong(qtbot, window, tmp_path, dialogs):
    (tmp_path / "notes.txt").write_text("a file")
    target = tmp_path / "notes.txt" / "model.safetensors"
    window.save_model(target)  # the worker saves; its answer comes back as a dialog
    qtbot.waitUntil(lambda: len(dialogs) == 1, timeout=20000)
    _, title, text = dialogs[0]
    assert "notes.txt is a file, not a folder" in text and "File exists" not in text


# -- the training panel ------------------------------------------------------------------------
@pytest.fixture
def panel(qtbot, tmp_path):
    session = Session(device="cpu")
    p = TrainingPanel(session, runs_dir=tmp_path / "runs")
    qtbot.addWidget(p)
    p.auto_measure = False
    p.show()
    yield p
    assert p.shutdown(5000)
    session.close()


def tiny_run(p: TrainingPanel, steps: int = 100_000, out: str = "") -> None:
    f = p.form
    f.set_source("task:copy")
    f.new_model.setChecked(True)
    f.preset.setCurrentIndex(f.preset.findData("custom"))
    f.layers.setValue(1)
    f.heads.setValue(2)
    f.width.setValue(16)
    f.block.setValue(24)
    f.batch.setValue(4)
    f.steps.setValue(steps)
    f.device.setCurrentIndex(0)
    f.out_path.setText(out)


def test_unwritable_save_to_is_refused_before_start(panel, tmp_path, monkeypatch):
    """Before: 50 steps trained, then a dialog with a Python traceback."""
    (tmp_path / "afile").write_text("x")
    tiny_run(panel, out=str(tmp_path / "afile" / "run.safetensors"))
    errors = []
    panel.session.error.connect(lambda title, text: errors.append(text))
    assert not panel.start()
    assert panel.run is None and panel.state == "idle"
    assert "afile is a file, not a folder" in panel.form.error.text()

    def read_only(f, data):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ckpt, "_write_all", read_only)
    tiny_run(panel, out=str(tmp_path / "ro" / "run.safetensors"))
    assert not panel.start()
    text = panel.form.error.text()
    assert "run.safetensors" in text and "read-only" in text and ".tmp" not in text
    assert panel.run is None and not errors


def test_a_save_failing_during_training_shows_the_reason_without_a_traceback(qtbot, panel,
                                                                              monkeypatch):
    real = ckpt._write_all

    def disk_full(f, data):
        if data:  # the check before Start passes; the first checkpoint (step 50) does not fit
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    monkeypatch.setattr(ckpt, "_write_all", disk_full)
    tiny_run(panel, steps=60)
    with qtbot.waitSignal(panel.session.error, timeout=60000) as blocker:
        assert panel.start()
    title, text = blocker.args
    assert "disk is full" in text and "Traceback" not in text and ".tmp" not in text
    qtbot.waitUntil(lambda: panel.state == "failed", timeout=20000)
    assert "disk is full" in panel.status.text()
    assert not list(panel.runs_dir.glob(".*.tmp"))


def test_named_pipe_as_training_text(panel, tmp_path, unblock):
    path = fifo(tmp_path / "corpus.fifo", unblock)
    tiny_run(panel)
    panel.form.set_source("file", str(path))
    assert not panel.start_button.isEnabled()
    assert "not a regular file" in panel.form.error.text()


def test_closing_during_a_long_training_step_waits_saves_and_then_closes(
        qtbot, make_window, tiny_models, tmp_path, monkeypatch, dialogs):
    """Before: the window closed after 2 s and Qt aborted with "QThread: Destroyed while thread
    'training' is still running", nothing saved. A step longer than the wait (a large model;
    here a slowed-down tiny one) is now waited for, with progress shown, then saved."""
    import explorer.main_window as mw
    from model.trainer import Trainer

    monkeypatch.setenv("TRANSFORMER_EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(mw, "CLOSE_WAIT_MS", 100)
    real = Trainer._forward

    def slow_step(self, x, y):  # runs in the training thread
        time.sleep(0.4)
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "_forward", slow_step)
    w = make_window(tiny_models["tiny"], optional_panels=True)
    if w.panels_pending:
        with qtbot.waitSignal(w.panels_loaded, timeout=20000):
            pass
    panel = w.panels["Training"]
    panel.auto_measure = False
    tiny_run(panel)
    with qtbot.waitSignal(panel.run_started, timeout=20000):
        assert panel.start()
    qtbot.waitUntil(lambda: panel.step >= 1, timeout=30000)
    run = panel.run
    assert not w.close()  # not yet: the step is still running
    progress = w.findChild(mw.QProgressDialog)
    assert progress is not None and progress.isVisible()
    assert "saving" in progress.labelText().lower()
    assert w.isVisible() and not w.session.closed
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=30000)
    assert run.thread.isFinished() and w.session.closed
    saved = list((tmp_path / "runs").glob("*.safetensors"))
    saved = [p for p in saved if not p.name.endswith(".optim.safetensors")]
    assert len(saved) == 1
    assert load_checkpoint(saved[0]).steps >= 1
    assert not dialogs
