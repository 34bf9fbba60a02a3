"""The training dock: runs in a QThread, pause/stop/continue, errors, film strip, task scores."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from explorer.panels.training.panel import TrainingPanel


@pytest.fixture
def panel(training_panel):
    return training_panel


def configure(p: TrainingPanel, *, task: str = "copy", steps: int = 100_000, layers: int = 1,
              heads: int = 2, width: int = 16, block: int = 24, batch: int = 4,
              lr: float = 3e-3, attention_every: int = 0, sample_every: int = 0,
              pos: str = "learned") -> None:
    f = p.form
    f.set_source(f"task:{task}")
    f.new_model.setChecked(True)
    f.preset.setCurrentIndex(f.preset.findData("custom"))
    f.layers.setValue(layers)
    f.heads.setValue(heads)
    f.width.setValue(width)
    f.block.setValue(block)
    f.pos.setCurrentText(pos)
    f.batch.setValue(batch)
    f.lr.setValue(lr)
    f.steps.setValue(steps)
    f.attention_every.setValue(attention_every)
    f.sample_every.setValue(sample_every)
    f.device.setCurrentIndex(0)


def start(qtbot, p: TrainingPanel) -> None:
    assert p.start_button.isEnabled(), p.form.error.text()
    with qtbot.waitSignal(p.run_started, timeout=20000):
        assert p.start()


def wait_steps(qtbot, p: TrainingPanel, n: int) -> None:
    qtbot.waitUntil(lambda: p.step >= n, timeout=30000)


def finish(qtbot, p: TrainingPanel, timeout: int = 60000):
    with qtbot.waitSignal(p.run_finished, timeout=timeout) as blocker:
        pass
    return blocker.args[0]


def start_and_finish(qtbot, p: TrainingPanel, timeout: int = 60000):
    """Start a run and wait for its end, listening before it starts: a short run can end while
    ``start`` is still waiting for ``run_started``."""
    with qtbot.waitSignal(p.run_finished, timeout=timeout) as blocker:
        start(qtbot, p)
    return blocker.args[0]


def stop_and_wait(qtbot, p: TrainingPanel):
    with qtbot.waitSignal(p.run_finished, timeout=30000) as blocker:
        p.stop()
    return blocker.args[0]


def test_start_progress_stop_saves_a_loadable_checkpoint(qtbot, panel):
    from model.checkpoints import load_checkpoint

    configure(panel)
    start(qtbot, panel)
    assert panel.state == "running" and not panel.start_button.isEnabled()
    wait_steps(qtbot, panel, 5)
    qtbot.waitUntil(lambda: panel.progress.value() >= 5, timeout=5000)  # refreshed 4× a second
    assert "tokens/s" in panel.status.text()
    assert panel.loss_view.n_points >= 5
    result = stop_and_wait(qtbot, panel)
    assert result.ok and result.stopped and 5 <= result.step < 100_000
    assert panel.state == "finished" and panel.start_button.isEnabled()
    assert panel.last_checkpoint is not None
    assert panel.last_checkpoint.parent == panel.runs_dir
    ck = load_checkpoint(panel.last_checkpoint)
    assert ck.steps == result.step and ck.summary["corpus"] == "task:copy"


def test_pause_really_pauses_and_resume_goes_on(qtbot, panel):
    configure(panel)
    start(qtbot, panel)
    wait_steps(qtbot, panel, 3)
    worker = panel.run.worker
    panel.pause_button.click()  # the button toggles pause
    assert panel.state == "paused" and panel.pause_button.text() == "Resume"
    assert worker.control.wait_until_paused(10)
    trainer_step = worker.trainer.step
    qtbot.wait(400)  # let time pass: a paused run must not move
    assert worker.trainer.step == trainer_step
    assert panel.step <= trainer_step
    panel.pause_button.click()
    assert panel.state == "running"
    wait_steps(qtbot, panel, trainer_step + 3)
    panel.pause()  # while paused: explore copies the weights in the GUI thread, then stop
    assert worker.control.wait_until_paused(10)
    with qtbot.waitSignal(panel.session.model_changed, timeout=10000):
        panel.explore()
    assert panel.session.info.name.endswith(f"@ step {worker.trainer.step:,}")
    result = stop_and_wait(qtbot, panel)
    assert result.stopped and result.step == panel.last_snapshot.step


def test_continue_training_resumes_the_step_count(qtbot, panel):
    from model.checkpoints import load_checkpoint

    configure(panel, steps=30)
    first = start_and_finish(qtbot, panel)
    assert first.ok and first.step == 30
    with qtbot.waitSignal(panel.session.model_changed, timeout=10000):
        panel.session.load_checkpoint(first.checkpoint)
    f = panel.form
    assert f.cont_model.isEnabled()
    current = f.source.model().item(f.source.findData("current"))
    assert current.isEnabled()  # the loaded model says it was trained on task:copy
    f.set_source("current")
    assert panel.planner.corpus_spec(f.values()) == ("task:copy", None)
    f.cont_model.setChecked(True)
    f.steps.setValue(20)
    assert "from step 30" in f.model_info.text()
    start(qtbot, panel)
    assert panel.start_step == 30 and panel.total_steps == 50
    second = finish(qtbot, panel)
    assert second.ok and second.step == 50
    assert load_checkpoint(second.checkpoint).steps == 50
    assert second.checkpoint != first.checkpoint  # a new file per run


def test_an_exception_in_the_training_thread_is_shown_and_the_app_keeps_working(
        qtbot, panel, monkeypatch):
    from explorer import training_worker

    original = training_worker.TrainingWorker._on_step

    def broken(self, m):
        if m.step >= 3:
            raise RuntimeError("injected failure in the training thread")
        original(self, m)

    monkeypatch.setattr(training_worker.TrainingWorker, "_on_step", broken)
    configure(panel)
    with qtbot.waitSignal(panel.session.error, timeout=30000) as blocker:
        start(qtbot, panel)
    title, text = blocker.args
    assert "injected failure" in text and title
    qtbot.waitUntil(lambda: panel.state == "failed", timeout=10000)
    qtbot.waitUntil(lambda: panel.run.thread.isFinished(), timeout=10000)
    assert "injected failure" in panel.status.text()
    monkeypatch.setattr(training_worker.TrainingWorker, "_on_step", original)
    configure(panel, steps=10)
    assert start_and_finish(qtbot, panel).ok


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(qtbot, panel,
                                                                      monkeypatch):
    import torch

    from model.checkpoints import load_checkpoint
    from model.transformer import GPT

    forward = GPT.forward
    calls = {"n": 0}

    def poisoned(self, idx, targets=None, **kw):
        logits, loss = forward(self, idx, targets, **kw)
        if self.training and targets is not None:
            calls["n"] += 1
            if calls["n"] > 60:  # after the checkpoint at step 50
                loss = loss * torch.tensor(float("nan"))
        return logits, loss

    monkeypatch.setattr(GPT, "forward", poisoned)
    configure(panel, steps=100)
    with qtbot.waitSignal(panel.session.error, timeout=30000) as blocker:
        start(qtbot, panel)
    title, text = blocker.args
    assert "not a number" in title and "diverged" in text
    qtbot.waitUntil(lambda: panel.result is not None, timeout=10000)
    result = panel.result
    assert not result.ok and panel.state == "failed"
    assert "finite" in panel.status.text()
    ck = load_checkpoint(panel.last_checkpoint)
    assert ck.steps == 50
    assert all(torch.isfinite(p).all() for p in ck.model.parameters())


def test_closing_during_training_stops_the_thread_quickly(qtbot, panel):
    configure(panel)
    start(qtbot, panel)
    wait_steps(qtbot, panel, 2)
    run = panel.run
    t0 = time.perf_counter()
    assert panel.shutdown(timeout_ms=2000)
    assert time.perf_counter() - t0 < 2.5
    assert run.thread.isFinished() and not run.thread.isRunning()
    saved = list(panel.runs_dir.glob("*.safetensors"))
    assert saved, "no checkpoint saved on close"


def test_film_strip_keeps_the_snapshots_and_the_slider_replays_them(qtbot, panel):
    from explorer.panels.training.film_strip import composite
    from model import tasks

    configure(panel, steps=40, attention_every=5)
    start_and_finish(qtbot, panel)
    film = panel.film
    assert film.frame_count == 9  # the start and every 5 steps
    assert [s for s, _ in film.frames] == list(range(0, 41, 5))
    assert film.slider.maximum() == 8 and film.current == 8
    film.slider.setValue(0)
    assert film.current == 0
    step, a = film.frame(0)
    assert step == 0 and a.shape[:2] == (1, 2)
    shown = film.image.image
    np.testing.assert_allclose(np.nan_to_num(shown), np.nan_to_num(composite(a)))
    tv = panel.task_view
    assert not tv.isHidden() and tv.scores is not None and tv.scores.shape == (1, 2)
    np.testing.assert_allclose(tv.scores, tasks.head_scores("copy", a, tv.tokens), rtol=1e-5)
    assert len(tv.history) == 9


def test_a_tiny_model_learns_the_copy_task(qtbot, panel):
    from collections import Counter

    # rotary positions make "look n tokens back" cheap to learn: the loss falls within 300 steps
    configure(panel, steps=300, layers=2, heads=2, width=32, block=32, batch=16, lr=1e-2,
              pos="rotary")
    result = start_and_finish(qtbot, panel, timeout=80000)
    evals = panel.loss_view.evals()  # step, train, validation
    assert result.ok and evals[0, 0] == 0 and evals[-1, 0] == 300
    counts = np.array(list(Counter(panel._spec.corpus.text).values()), dtype=float)
    unigram = float(-(counts / counts.sum() * np.log(counts / counts.sum())).sum())
    # clearly below the start and below what letter frequencies alone can reach (≈ 2.48)
    assert evals[-1, 2] < evals[0, 2] - 0.2, evals[[0, -1]]
    assert evals[-1, 2] < unigram - 0.1, (evals[-1], unigram)


def test_invalid_setups_are_explained_and_start_is_disabled(panel, tmp_path):
    f = panel.form
    configure(panel)
    assert panel.start_button.isEnabled() and not f.error.isVisible()
    f.heads.setValue(3)
    assert not panel.start_button.isEnabled()
    assert "not divisible" in f.error.text()
    f.heads.setValue(2)
    assert panel.start_button.isEnabled()
    f.width.setValue(4096)
    f.layers.setValue(48)
    f.block.setValue(4096)
    f.batch.setValue(4096)
    assert "would need about" in f.error.text() and not panel.start_button.isEnabled()
    configure(panel)
    cases = {"empty.txt": b"", "binary.bin": b"\x00\x01\x02abc", "short.txt": b"hello"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        f.set_source("file", str(path))
        assert not panel.start_button.isEnabled(), name
        assert not panel.start(), name
    assert "empty" in _error_for(panel, tmp_path / "empty.txt")
    assert "binary" in _error_for(panel, tmp_path / "binary.bin")
    assert "block size" in _error_for(panel, tmp_path / "short.txt")
    good = tmp_path / "good.txt"
    good.write_text("the cat sat on the mat. " * 20, encoding="utf-8")
    f.set_source("file", str(good))
    assert panel.start_button.isEnabled(), f.error.text()


def _error_for(panel, path: Path) -> str:
    panel.form.set_source("file", str(path))
    return panel.form.error.text()


def test_explore_during_training_loads_a_snapshot_and_training_goes_on(qtbot, panel,
                                                                         tmp_path):
    from model.checkpoints import load_checkpoint

    configure(panel)
    start(qtbot, panel)
    wait_steps(qtbot, panel, 3)
    with qtbot.waitSignal(panel.session.model_changed, timeout=20000):
        panel.explore_button.click()
    s = panel.session
    assert "@ step" in s.info.name and s.info.summary["corpus"] == "task:copy"
    snap = panel.last_snapshot  # numpy copies, never the live weights
    assert snap.state_dict and all(isinstance(v, np.ndarray) for v in snap.state_dict.values())
    assert panel.state == "running"
    step = panel.step
    wait_steps(qtbot, panel, step + 3)
    out = tmp_path / "saved"
    panel.save_model_as(out)
    qtbot.waitUntil(lambda: (tmp_path / "saved.safetensors").exists(), timeout=20000)
    assert load_checkpoint(tmp_path / "saved.safetensors").steps >= step
    stop_and_wait(qtbot, panel)


def test_a_dropped_text_file_becomes_the_corpus(panel, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    path = tmp_path / "poem.txt"
    path.write_text("roses are red, violets are blue. " * 10, encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(ev)
    v = panel.form.values()
    assert v.source == "file" and v.path == str(path)
    assert panel.start_button.isEnabled(), panel.form.error.text()


def test_closing_the_main_window_during_training_saves_and_stops(qtbot, make_window, tiny_models,
                                                                 tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFORMER_EXPLORER_RUNS", str(tmp_path / "runs"))
    w = make_window(tiny_models["tiny"], optional_panels=True)
    if w.panels_pending:
        with qtbot.waitSignal(w.panels_loaded, timeout=20000):
            pass
    panel = w.panels["Training"]
    assert isinstance(panel, TrainingPanel)
    panel.auto_measure = False
    configure(panel)
    start(qtbot, panel)
    wait_steps(qtbot, panel, 2)
    run = panel.run
    t0 = time.perf_counter()
    w.close()  # closeEvent asks every dock to shut down before the session closes
    assert time.perf_counter() - t0 < 3.0
    assert run.thread.isFinished()
    assert list((tmp_path / "runs").glob("*.safetensors")), "no checkpoint saved on close"


def test_training_with_a_byte_level_bpe_saves_a_bpe_model(qtbot, panel, tmp_path):
    from model.bpe_tokenizer import BPETokenizer
    from model.checkpoints import load_checkpoint

    path = tmp_path / "fox.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. The dog naps. " * 60,
                    encoding="utf-8")
    configure(panel, steps=3, block=16)
    f = panel.form
    assert not f.tokens_row.isVisibleTo(f)  # a task brings its own tokens
    f.set_source("file", str(path))
    assert f.tokens_row.isVisibleTo(f)
    f.tokens.setCurrentIndex(f.tokens.findData("bpe"))
    f.bpe_vocab.setValue(300)
    assert f.values().tokenizer == "bpe:300"
    result = start_and_finish(qtbot, panel)
    assert result.ok, result
    ck = load_checkpoint(panel.last_checkpoint)
    assert isinstance(ck.tokenizer, BPETokenizer)
    # a short text yields fewer merges than asked for: the model is built for what it yields
    assert ck.model.config.vocab_size == ck.tokenizer.vocab_size <= 300
    assert "␣fox" in ck.tokenizer.token_pieces(ck.tokenizer.encode("The fox"))


def test_a_synthetic_task_keeps_its_own_tokens_whatever_the_bpe_choice(panel):
    from explorer.panels.training.plan import FormValues, PlanError

    configure(panel)
    panel.form.tokens.setCurrentIndex(panel.form.tokens.findData("bpe"))
    assert panel.form.values().tokenizer == "char" and panel.start_button.isEnabled()
    with pytest.raises(PlanError, match="synthetic tasks use their own tokens"):
        panel.planner.plan(FormValues(source="task:copy", tokenizer="bpe:500"), light=True)
