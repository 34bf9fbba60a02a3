"""The main window: status bar, model files, devices, docks, settings, and the worker's queue."""
from __future__ import annotations

import json
import struct

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QDockWidget, QLabel

from explorer import inference_worker as W
from explorer.app import make_settings


def test_status_bar_describes_the_model(window):
    info = window.session.info
    assert info.name == "tiny" and info.trained and info.device == "cpu"
    assert "tiny" in window.model_label.text()
    assert "parameters" in window.params_label.text()
    assert window.device_label.text() == "device: cpu"
    assert window.context_label.text() == "context 5/32"
    assert not window.trained_label.isVisibleTo(window)


def test_untrained_default_says_so(make_window):
    w = make_window(None)
    assert not w.session.info.trained
    assert w.trained_label.text() == "untrained model: its text is random"
    assert w.trained_label.isVisibleTo(w)
    assert w.session.config.block_size == 256


def test_open_and_save_model(qtbot, window, tiny_models, tmp_path, dialogs):
    s = window.session
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        with qtbot.waitSignal(s.model_opened, timeout=5000):
            window.open_model(tiny_models["other"])
    assert s.info.name == "other" and s.config.n_embd == 24
    assert s.result.text == "Hello"  # the prompt carries over to the new model
    assert window.recent_files()[0] == str(tiny_models["other"])
    out = tmp_path / "saved"  # the suffix is added
    with qtbot.waitSignal(s.model_saved, timeout=5000):
        window.save_model(out)
    assert (tmp_path / "saved.safetensors").is_file()
    assert s.info.name == "saved"
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        window.open_model(tmp_path / "saved.safetensors")
    assert s.config.n_embd == 24 and not dialogs
    window._fill_recent()
    assert [a.text() for a in window.recent_menu.actions()][:2] == [
        str(tmp_path / "saved.safetensors"), str(tiny_models["other"])]


def _bad_files(tmp_path, tiny_models):
    good = tiny_models["tiny"].read_bytes()
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"this is not a model at all" * 10)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    other = tmp_path / "other_format.safetensors"
    other.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
    missing = tmp_path / "missing.safetensors"
    # a well-formed checkpoint whose config does not fit its weights
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_models["tiny"]), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(meta["config"])
    cfg["n_embd"] = 32
    meta["config"] = json.dumps(cfg)
    incompatible = tmp_path / "incompatible.safetensors"
    save_file(tensors, str(incompatible), metadata=meta)
    return [corrupt, truncated, other, missing, incompatible]


def test_bad_model_files_show_a_dialog_and_keep_the_model(qtbot, window, tiny_models, tmp_path,
                                                          dialogs):
    s = window.session
    model, result = s.info, s.result
    for bad in _bad_files(tmp_path, tiny_models):
        dialogs.clear()
        with qtbot.waitSignal(s.error, timeout=5000):
            window.open_model(bad)
        assert len(dialogs) == 1, bad
        kind, title, text = dialogs[0]
        assert kind == "warning" and "open" in title.lower() and bad.name in text
        assert s.info is model and s.result is result
    with qtbot.waitSignal(s.step_ready, timeout=5000):  # and it still works
        s.step()


def test_drag_and_drop_a_model_file(qtbot, window, tiny_models):
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(tiny_models["abc"]))])
    ev = QDropEvent(QPointF(100, 100), Qt.CopyAction, md, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.session.step_ready, timeout=5000):
        window.dropEvent(ev)
    assert window.session.info.name == "abc"
    # "Hello" has letters the abc model lacks: they are reported, not lost
    assert window.prompt_panel.remove_button.isVisibleTo(window)
    md2 = QMimeData()
    md2.setUrls([QUrl.fromLocalFile("/tmp/notes.txt")])
    assert window._dropped_model(QDropEvent(QPointF(1, 1), Qt.CopyAction, md2, Qt.LeftButton,
                                            Qt.NoModifier)) is None


def test_examples_menu_lists_assets(window, tmp_path, monkeypatch, tiny_models):
    import model.shipped

    window._fill_examples()  # the models that ship with the package
    assert [a.text() for a in window.examples_menu.actions()] == [
        "induction", "numbers_to_words", "shakespeare_bpe", "shakespeare_char", "sonnets_encoder"]
    (tmp_path / "a.safetensors").write_bytes(tiny_models["tiny"].read_bytes())
    (tmp_path / "a.optim.safetensors").write_bytes(b"x")
    monkeypatch.setattr(model.shipped, "MODELS", tmp_path)
    window._fill_examples()
    assert [a.text() for a in window.examples_menu.actions()] == ["a"]


def test_device_menu_and_failure_falls_back_to_cpu(qtbot, window, monkeypatch):
    import model.devices

    names = [a.data() for a in window.device_actions()]
    assert names[0] == "cpu"
    assert window.device_actions()[0].isChecked()

    def broken(name="auto"):
        raise model.devices.DeviceError(f"device {name!r} exploded")

    monkeypatch.setattr(model.devices, "resolve_device", broken)
    s = window.session
    with qtbot.waitSignal(s.message, timeout=5000) as msg:
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.set_device("cuda")
    assert "CPU" in msg.args[0] and "exploded" in msg.args[0]
    assert s.device == "cpu" and s.info.device == "cpu"
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.step()


def test_unavailable_start_device_falls_back_to_cpu(qtbot, make_window, tiny_models):
    from explorer.main_window import MainWindow
    from explorer.session import Session

    s = Session(device="cuda:7")  # no machine here has eight GPUs
    w = MainWindow(s, make_settings(), optional_panels=False)
    make_window.made.append(w)
    with qtbot.waitSignal(s.message, timeout=20000) as msg:
        with qtbot.waitSignal(s.step_ready, timeout=20000):
            s.start(tiny_models["tiny"])
    assert "CPU" in msg.args[0] and s.device == "cpu"


def test_prompt_typed_while_loading_is_used(qtbot, make_window, tiny_models):
    from explorer.main_window import MainWindow
    from explorer.session import Session

    s = Session(device="cpu")
    w = MainWindow(s, make_settings(), optional_panels=False)
    make_window.made.append(w)
    s.prompt = "first"
    s.start(tiny_models["tiny"])
    w.prompt_panel.set_prompt_text("second")  # before the model is ready
    qtbot.waitUntil(lambda: s.result is not None and s.result.text == "second", timeout=20000)


def test_device_move_keeps_the_text(qtbot, window):
    s = window.session
    for _ in range(3):
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.step()
    text = s.result.text
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.set_device("cpu")
    assert s.result.text == text and s.result.n_generated == 3


def test_cuda_device_switch(qtbot, window):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    s = window.session
    names = [a.data() for a in window.device_actions()]
    assert "cuda" in names and any("CUDA" in a.text() for a in window.device_actions())
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.set_device("cuda")
    assert s.device.startswith("cuda") and s.info.device.startswith("cuda")
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.step()
    assert s.result.n_generated == 1
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.set_device("cpu")
    assert s.info.device == "cpu" and s.result.n_generated == 1


def test_docks_view_menu_and_reset_layout(qtbot, window):
    names = {a.text().replace("&", "") for a in window.view_menu.actions()}
    assert {"Prompt", "Next token", "Reset layout"} <= names
    dock = window.docks["Next token"]
    assert isinstance(dock, QDockWidget)
    dock.toggleViewAction().trigger()
    assert not dock.isVisible()
    window.reset_layout()
    assert dock.isVisible()
    extra = window.add_panel("Extra", QLabel("hi"), Qt.DockWidgetArea.BottomDockWidgetArea)
    tab = window.add_panel("Tab", QLabel("tab"), tabify_with="Next token")
    qtbot.waitUntil(lambda: window.tabifiedDockWidgets(dock) == [tab], timeout=2000)
    assert window.docks["Extra"] is extra and "Extra" in [a.text() for a in
                                                           window.view_menu.actions()]


def test_optional_panels_are_created_when_they_import(make_window, tiny_models):
    w = make_window(tiny_models["tiny"], optional_panels=True)
    for name in ("Attention", "Positional encoding", "Architecture", "Training"):
        assert name in w.docks or name not in w.panel_errors, w.panel_errors.get(name)


def test_settings_are_restored_next_start(qtbot, make_window, tiny_models):
    w = make_window(tiny_models["tiny"])
    w.distribution_panel.controls.temp_box.setValue(1.25)
    w.distribution_panel.controls.top_k.setValue(5)
    w.distribution_panel.controls.n_shown.setValue(12)
    w.prompt_panel.run_count.setValue(77)
    w.docks["Next token"].toggleViewAction().trigger()
    w.close()
    assert make_settings().value("sample/temperature") is not None
    w2 = make_window(tiny_models["tiny"])
    s = w2.session.sample
    assert (s.temperature, s.top_k) == (1.25, 5)
    assert w2.distribution_panel.controls.n_shown.value() == 12
    assert w2.distribution_panel.controls.temp_box.value() == 1.25
    assert w2.prompt_panel.run_count.value() == 77
    assert not w2.docks["Next token"].isVisible()
    w2.reset_layout()
    assert w2.docks["Next token"].isVisible()


def test_about_names_the_versions(window, dialogs):
    import pyqtgraph
    import torch

    text = window.about_text()
    assert torch.__version__ in text and pyqtgraph.__version__ in text
    assert "Qt" in text and "cpu" in text
    window.show_about()
    assert dialogs and dialogs[0][0] == "about"


def test_errors_from_the_worker_become_dialogs(qtbot, window, dialogs):
    window.session.error.emit("Something failed", "because")
    assert dialogs == [("warning", "Something failed", "because")]


# -- the worker's queue: newest request wins ---------------------------------------------------
def test_worker_coalesces_pending_requests(qtbot):
    w = W.InferenceWorker()  # not started: requests stay pending until the event loop runs
    w.submit(W.Step())
    w.submit(W.Redistribute("a"))
    w.submit(W.Redistribute("b"))
    assert [type(p).__name__ for p in w._pending] == ["Step", "Redistribute"]
    assert w._pending[-1].sample == "b"
    for _ in range(10):
        w.submit(W.Step())
    assert sum(isinstance(p, W.Step) for p in w._pending) == W.MAX_PENDING_STEPS
    w.submit(W.SetPrompt("x"))  # a new prompt makes queued steps obsolete
    assert [type(p).__name__ for p in w._pending] == ["SetPrompt"]
    w.submit(W.SetPrompt("y"))
    assert [p.text for p in w._pending] == ["y"]
    w.submit(W.LoadModel(None, "cpu", "", None, 3))
    w.submit(W.SetPrompt("z"))  # kept after the model switch
    assert [type(p).__name__ for p in w._pending] == ["LoadModel", "SetPrompt"]
    w._pending.clear()
    w.deleteLater()


@pytest.mark.parametrize("summary, trained", [({"steps": 0}, False), ({"steps": 500}, True),
                                              ({"untrained": True}, False), ({}, True)])
def test_is_trained(summary, trained):
    assert W.is_trained(summary) is trained


def test_corrupt_start_checkpoint_shows_a_dialog_and_the_untrained_model(make_window, tmp_path,
                                                                         dialogs):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    w = make_window(bad)
    assert len(dialogs) == 1 and "bad.safetensors" in dialogs[0][2]
    assert "untrained" in dialogs[0][2]
    assert not w.session.info.trained and w.trained_label.isVisibleTo(w)


def test_deferred_panels_fill_their_placeholders(qtbot, monkeypatch, tiny_models):
    import explorer.main_window as mw
    from explorer.session import Session

    monkeypatch.setattr(mw, "OPTIONAL_PANELS", [
        ("explorer.panels.distribution", "DistributionPanel", "Second", ("Next token",
                                                                       Qt.Orientation.Horizontal)),
        ("explorer.panels.not_written_yet", "NopePanel", "Missing", "Second"),
        ("explorer.theme", "NoSuchPanel", "Broken", "Second"),
    ])
    s = Session(device="cpu")
    w = mw.MainWindow(s, make_settings(), defer_panels=True)
    qtbot.addWidget(w)
    try:
        assert "Missing" not in w.docks  # no module: no placeholder
        assert isinstance(w.panels["Second"], QLabel) and w.panels_pending
        w.show()
        with qtbot.waitSignal(s.step_ready, timeout=20000):
            s.start(tiny_models["tiny"])
        with qtbot.waitSignal(w.panels_loaded, timeout=10000):
            w.load_optional_panels_soon()
        second = w.panels["Second"]
        assert type(second).__name__ == "DistributionPanel" and not w.panels_pending
        qtbot.waitUntil(lambda: second.redraws > 0)  # it started from the session's state
        assert "Broken" not in w.docks and "NoSuchPanel" in w.panel_errors["Broken"]
        assert "Broken" not in [a.text() for a in w.view_menu.actions()]
    finally:
        w.close()


def test_every_model_kind_opens_from_the_menu(qtbot, window, dialogs):
    """A decoder window opens the shipped encoder (masks) and encoder-decoder (steps a target)
    without a dialog; the worker picks the stepper by kind."""
    from model.shipped import MODELS

    s = window.session
    for name, kind in (("sonnets_encoder", "encoder"), ("numbers_to_words", "encoder-decoder")):
        with qtbot.waitSignal(s.model_opened, timeout=20000):
            window.open_model(MODELS / f"{name}.safetensors")
        assert s.config.kind == kind and s.result.kind == kind and not dialogs
        assert window.prompt_panel.encoder_bar.isVisible() == (kind == "encoder")


def test_dock_tabs_show_whole_titles(qtbot, make_window, tiny_models):
    """Tabbed docks: titles whole ("Attention", not "Attenti…"), scroll arrows when crowded."""
    from PySide6.QtWidgets import QTabBar

    window = make_window(tiny_models["tiny"], optional_panels=True)
    window.resize(1024, 768)
    qtbot.wait(50)
    bars = [b for b in window.findChildren(QTabBar) if b.count() > 1]
    assert bars
    titles = []
    for bar in bars:
        assert bar.elideMode() == Qt.TextElideMode.ElideNone and bar.usesScrollButtons()
        titles += [bar.tabText(i) for i in range(bar.count())]
    assert "Attention" in titles and "Positional encoding" in titles  # the docks' own tabs
