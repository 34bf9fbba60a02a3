"""Torch runs only in the worker threads: through opening, exploring, saving, training, a snapshot
while paused, saving during training and continuing the explorer's model, the GUI thread never
builds, calls, copies or loads a torch module (only numpy copies and plain data reach it)."""
from __future__ import annotations

import functools
import threading
import traceback

import torch

from explorer.panels.training.panel import TrainingPanel

#: what building, running, copying, loading or moving a model goes through
MODULE_METHODS = ("__init__", "__call__", "state_dict", "load_state_dict", "__setstate__", "to",
                  "parameters")


class GuiThreadTorch:
    """Records every call of :data:`MODULE_METHODS` made in the GUI (main) thread while on."""

    def __init__(self, monkeypatch):
        self.on = False
        self.calls: list[str] = []
        for name in MODULE_METHODS:
            monkeypatch.setattr(torch.nn.Module, name,
                                self._wrap(name, getattr(torch.nn.Module, name)))

    def _wrap(self, name, fn):
        @functools.wraps(fn)
        def recorded(module, *a, **k):
            if self.on and threading.current_thread() is threading.main_thread():
                where = "".join(traceback.format_stack(limit=8)[:-1])
                self.calls.append(f"{type(module).__name__}.{name} in the GUI thread:\n{where}")
            return fn(module, *a, **k)
        return recorded


def configure(p: TrainingPanel) -> None:
    f = p.form
    f.set_source("task:copy")
    f.new_model.setChecked(True)
    f.preset.setCurrentIndex(f.preset.findData("custom"))
    f.layers.setValue(1)
    f.heads.setValue(2)
    f.width.setValue(16)
    f.block.setValue(24)
    f.batch.setValue(4)
    f.steps.setValue(100_000)
    f.attention_every.setValue(0)
    f.sample_every.setValue(0)
    f.device.setCurrentIndex(0)


def start(qtbot, p: TrainingPanel) -> None:
    assert p.start_button.isEnabled(), p.form.error.text()
    with qtbot.waitSignal(p.run_started, timeout=20000):
        assert p.start()


def test_the_gui_thread_never_touches_a_torch_module(qtbot, make_window, tiny_models, tmp_path,
                                                     monkeypatch):
    from model.checkpoints import load_checkpoint

    monkeypatch.setenv("TRANSFORMER_EXPLORER_RUNS", str(tmp_path / "runs"))
    torch_in_gui = GuiThreadTorch(monkeypatch)
    w = make_window(tiny_models["tiny"], optional_panels=True)
    if w.panels_pending:
        with qtbot.waitSignal(w.panels_loaded, timeout=20000):
            pass
    s = w.session
    panel = w.panels["Training"]
    panel.auto_measure = False
    positional = w.docks["Positional encoding"]
    positional.show()
    positional.raise_()
    torch_in_gui.on = True

    # open, explore (every panel draws it), save
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        w.open_model(tiny_models["other"])
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step()
    w.panels["Positional encoding"].redraw_now()
    with qtbot.waitSignal(s.model_saved, timeout=10000):
        s.save_checkpoint(tmp_path / "explored.safetensors")

    # train; while paused: explore and save; while running: save
    configure(panel)
    start(qtbot, panel)
    qtbot.waitUntil(lambda: panel.step >= 2, timeout=30000)
    panel.pause()
    assert panel.run.worker.control.wait_until_paused(10)
    with qtbot.waitSignal(s.model_changed, timeout=20000):
        panel.explore()
    paused = tmp_path / "paused.safetensors"
    panel.save_model_as(paused)
    qtbot.waitUntil(paused.exists, timeout=20000)
    panel.resume()
    qtbot.waitUntil(lambda: panel.step >= panel.last_snapshot.step + 2, timeout=30000)
    running = tmp_path / "running.safetensors"
    panel.save_model_as(running)
    qtbot.waitUntil(running.exists, timeout=20000)
    with qtbot.waitSignal(panel.run_finished, timeout=30000):
        panel.stop()

    # continue the explored snapshot (no file behind it: its weights come from the worker)
    snap = panel.last_snapshot
    assert s.info.path is None
    f = panel.form
    f.set_source("task:copy")
    f.cont_model.setChecked(True)
    f.steps.setValue(5)
    assert panel.start_button.isEnabled(), f.error.text()
    with qtbot.waitSignal(panel.run_finished, timeout=60000) as done:  # 5 steps end quickly
        assert panel.start()
    torch_in_gui.on = False

    assert done.args[0] is not None and done.args[0].ok, panel.last_error
    assert torch_in_gui.calls == [], torch_in_gui.calls[0]
    assert load_checkpoint(paused).steps == snap.step  # saved while paused: the same weights
    for k, v in load_checkpoint(paused).model.state_dict().items():
        torch.testing.assert_close(v, torch.from_numpy(snap.state_dict[k]))
    assert load_checkpoint(running).steps > snap.step
    assert load_checkpoint(done.args[0].checkpoint).config == snap.config
