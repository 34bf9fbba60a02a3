"""The training dock: set up a run, train in the background, watch it learn, use the result.

``TrainingPanel(session)``: the form (:mod:`.training_setup`) on the left with Start, Pause and
Stop, a progress bar with steps, time left and tokens/s; on the right the loss curves and a tab
of sample texts and a tab with the attention film strip (and, for synthetic tasks, the ideal
pattern beside the learned one with a score per head). The form's model kind picks the
training: a decoder (GPT), an encoder-decoder on source → target pairs (samples are held-out
sources with the model's translation, the score is exact match of held-out pairs, the film strip
shows cross-attention) or a BERT-style encoder (masked windows and their fills, masked-token
accuracy, its self-attention). Training runs in a QThread
(:mod:`explorer.training_worker`); the rest of the app stays usable. "Explore this model" puts a
copy of the weights (taken between two steps) into the explorer panels without stopping the run.

The main window must call :meth:`TrainingPanel.shutdown` from its ``closeEvent``: it stops the
run (saving a checkpoint) and waits for the thread, at most ``timeout_ms``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.panels.training.film_strip import FilmStrip
from explorer.panels.training.plan import (
    PlanError,
    Planner,
    default_runs_dir,
    device_name,
    fmt_duration,
    fmt_params,
)
from explorer.panels.training.plots import LossView, SampleLog
from explorer.panels.training.results import ResultsMixin
from explorer.panels.training.setup import SetupForm
from explorer.panels.training.task import TaskView
from explorer.redraws import Redraw, is_shown
from explorer.theme import THEME
from explorer.training_worker import RunSpec, TrainingRun
from explorer.widgets.layout import flow_bar
from model.corpora import task_tokenizer
from model.devices import available_devices

PROGRESS_MS = 250  # progress bar and status line refresh
FILM_TABS = {"decoder": "Attention film strip", "encoder-decoder": "Cross-attention film strip",
             "encoder": "Attention film strip"}
SCORE_NAMES = {"exact_match": "held-out exact match", "masked_accuracy": "masked-token accuracy"}
SHORT_NAMES = {"exact_match": "exact match", "masked_accuracy": "masked accuracy"}


class TrainingPanel(ResultsMixin, QWidget):
    """Train a model in the app. Public: start, pause, resume, stop, explore, save_model_as,
    shutdown; ``state`` is idle | running | paused | stopping | finished | failed."""

    state_changed = Signal(str)
    run_started = Signal(object)  # dict: start_step, total_steps, n_params, device, threads
    run_finished = Signal(object)  # TrainResult or None
    thread_finished = Signal()  # the run's thread has ended (its checkpoint is saved)

    def __init__(self, session, parent: QWidget | None = None, runs_dir: str | Path | None = None):
        super().__init__(parent)
        self.session = session
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.run: TrainingRun | None = None
        self.state = "idle"
        self.step = 0
        self.start_step = 0
        self.total_steps = 0
        self.tokens_per_step = 0
        self._unit = "tokens"  # what tokens_per_step counts (an encoder-decoder: pairs)
        self.elapsed = 0.0
        self.last_loss: float | None = None
        self.result = None
        self.last_checkpoint: Path | None = None
        self.last_error: tuple[str, str] | None = None
        self.last_snapshot = None
        # snapshot requests: ("explore", None) or ("save", path)
        self._pending: list[tuple[str, Path | None]] = []
        self.planner = Planner(session, self.runs_dir)
        self._spec: RunSpec | None = None
        self._task: str | None = None
        self._kind = "decoder"  # of the run started last
        self.scores: list[tuple[int, dict]] = []  # the run's held-out scores (encoder kinds)
        self._measured = False
        self.auto_measure = True  # time the presets in the background when shown (tests: off)
        self.setAcceptDrops(True)
        self._build()
        self._connect_session()
        self._validate()
        app = QCoreApplication.instance()
        if app is not None:  # a safety net: a window that forgets shutdown() still stops the run
            app.aboutToQuit.connect(self._on_about_to_quit)

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        self.form = SetupForm()
        self.form.changed.connect(self._validate)
        self.form.file_requested.connect(self._open_file)
        # after the form's own handler: the choices of the new kind are in place
        self.form.kind.currentIndexChanged.connect(self._on_kind_changed)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        # a narrow dock (1024 px windows): the combo boxes give way first, then the form scrolls
        # sideways rather than cutting its controls off
        for combo in self.form.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        lv.addWidget(scroll, 1)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Train in the background; the rest of the app stays usable")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after this step and save a checkpoint")
        self.stop_button.clicked.connect(self.stop)
        for b in (self.start_button, self.pause_button, self.stop_button):
            row.addWidget(b)
        lv.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        lv.addWidget(self.progress)
        self.status = QLabel("Choose a corpus and a model, then Start.")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(f"color: {THEME.muted};")
        lv.addWidget(self.status)
        self.score_label = QLabel("")
        self.score_label.setWordWrap(True)
        self.score_label.setToolTip("The run's score on held-out data it never trains on, "
                                    "measured with every sample (the final one: every "
                                    "held-out pair)")
        self.score_label.hide()
        lv.addWidget(self.score_label)
        self.explore_button = QPushButton("Explore this model")
        self.explore_button.setToolTip("Load the model as it is now into the explorer panels "
                                       "(training goes on)")
        self.explore_button.clicked.connect(self._explore_clicked)
        self.save_button = QPushButton("Save model as…")
        self.save_button.clicked.connect(self._save_button_clicked)
        # wraps in a narrow dock: the panel fits a 1024-pixel window beside the next-token panel
        buttons, _flow = flow_bar(left, self.explore_button, self.save_button)
        lv.addWidget(buttons)
        split.addWidget(left)

        right = QSplitter(Qt.Orientation.Vertical)
        self.loss_view = LossView()
        right.addWidget(self.loss_view)
        self.tabs = QTabWidget()
        self.samples = SampleLog()
        self.tabs.addTab(self.samples, "Samples")
        att = QSplitter(Qt.Orientation.Horizontal)
        self.film = FilmStrip()
        self.task_view = TaskView()
        att.addWidget(self.film)
        att.addWidget(self.task_view)
        att.setStretchFactor(0, 5)
        att.setStretchFactor(1, 6)
        att.setSizes([300, 360])
        self.task_view.hide()
        self.tabs.addTab(att, FILM_TABS["decoder"])
        right.addWidget(self.tabs)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(False)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([340, 660])

        self._progress_redraw = Redraw(self._show_progress, PROGRESS_MS, self)
        self.film.frame_changed.connect(self._on_frame)
        self.film.head_selected.connect(self._on_film_head)
        self.task_view.head_selected.connect(self._on_task_head)
        self._set_state("idle")

    def _connect_session(self) -> None:
        self.session.model_changed.connect(self._on_model_changed)
        self._on_model_changed()

    # -- session -------------------------------------------------------------------------------
    @Slot()
    def _on_kind_changed(self) -> None:
        self._on_model_changed()

    @Slot()
    def _on_model_changed(self) -> None:
        has = self.session.config is not None
        self.form.cont_model.setEnabled(self.form.can_continue(has)
                                        and self.state not in ("running", "paused"))
        if not has and self.form.cont_model.isChecked():
            self.form.new_model.setChecked(True)
        src, why = self.planner.current_corpus() if has else (None, "no model is loaded")
        item = self.form.source.model().item(self.form.source.findData("current"))
        if item is not None:
            item.setEnabled(src is not None)
            item.setToolTip(f"{src}" if src else f"not available: {why}")
        self._validate()

    # -- validation and the run plan -----------------------------------------------------------
    @Slot()
    def _validate(self) -> None:
        """Explain what is wrong under the form; Start is enabled only for a valid setup."""
        if self.state in ("running", "paused", "stopping"):
            return
        if self.form.cont_model.isChecked() and self.session.config is not None \
                and self.session.config.kind == "decoder":
            self.form.set_model_fields(self.session.config)
        try:
            plan = self.planner.plan(self.form.values(), light=True)
        except PlanError as e:
            self.form.show_error(str(e))
            self.start_button.setEnabled(False)
            return
        self.form.show_error(None)
        self.start_button.setEnabled(True)
        self._describe(plan)

    def _describe(self, plan) -> None:
        """Parameters, estimated time and where a continued run starts, under the model."""
        v = self.form.values()
        n = plan.model_cfg.n_params()
        text = f"{fmt_params(n)} parameters ({n:,})"
        sps = self.form.seconds_per_step(plan.model_cfg, v.batch, plan.device)
        if sps:
            text += (f"; ~{fmt_duration(1000 * sps)} per 1,000 steps, this run "
                     f"~{fmt_duration(v.steps * sps)} on {plan.device}")
        if v.continue_model:
            if plan.resume_from is not None:
                text += f". Continues {plan.resume_from.name} from step {plan.start_step:,}."
            else:
                text += (". The loaded model has no checkpoint file: its step count and "
                         "optimizer start afresh.")
        self.form.model_info.setText(text)

    # -- run control ---------------------------------------------------------------------------
    @Slot()
    def start(self) -> bool:
        """Start a run with the form's settings; False (and the reason in red) if refused."""
        if self.state in ("running", "paused", "stopping"):
            return False
        try:
            spec = self.planner.plan(self.form.values()).spec
        except PlanError as e:
            self.form.show_error(str(e))
            self.start_button.setEnabled(False)
            return False
        self.form.cancel_measurement()
        self._spec = spec
        self._task = spec.task
        self._kind = spec.model_cfg.kind if spec.model_cfg is not None else "decoder"
        self.result = None
        self.last_snapshot = None
        self.last_error = None
        self._pending.clear()
        self.scores.clear()
        self.score_label.hide()
        self.loss_view.clear()
        self.samples.clear_samples()
        self.film.clear()
        self._set_probe(spec)
        self.tabs.setTabText(self.tabs.indexOf(self.film.parentWidget()), FILM_TABS[self._kind])
        self.step = self.start_step = 0
        self.total_steps = spec.train_cfg.steps
        self.progress.setRange(0, self.total_steps)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m steps")
        self.run = TrainingRun(spec, self)
        w = self.run.worker
        # every receiver is a method of this GUI-thread object (queued across threads)
        w.started.connect(self._on_started)
        w.metrics.connect(self._on_metrics)
        w.evaluated.connect(self._on_evaluated)
        w.sampled.connect(self._on_sampled)
        w.attention.connect(self._on_attention)
        w.scored.connect(self._on_scored)
        w.checkpoint_saved.connect(self._on_checkpoint)
        w.snapshot_ready.connect(self._on_snapshot)
        w.model_saved.connect(self._on_model_saved)
        w.save_failed.connect(self._on_save_failed)
        w.message.connect(self._on_message)
        w.diverged.connect(self._on_diverged)
        w.failed.connect(self._on_failed)
        w.done.connect(self._on_done)
        self.run.finished.connect(self._on_thread_finished)
        self._set_state("running")
        self.status.setText(f"Starting: {spec.corpus.describe()}")
        self.run.start()
        return True

    def _set_probe(self, spec: RunSpec) -> None:
        """What the samples and the film strip show: the probe prompt of a decoder, the fixed
        held-out pair of an encoder-decoder (its cross-attention), an encoder's masked window."""
        tok = spec.tokenizer or spec.corpus.tokenizer
        if self._kind == "encoder-decoder":
            from model.train_encoders import attention_probe_pair

            src, tgt = attention_probe_pair(spec.corpus)
            self.samples.set_prompt("")
            self.film.set_cross([tok.token_str(i) for i in tok.encode(src)] + ["␃"],
                                ["␂"] + [tok.token_str(i) for i in tok.encode(tgt)],
                                mirror=len(src) if spec.corpus.task == "reverse" else None)
            self.task_view.set_task(None, [])
            self.task_view.hide()
            return
        if self._kind == "encoder":
            self.samples.set_prompt("")
            self.film.set_tokens([])
            self.task_view.set_task(None, [])
            self.task_view.hide()
            return
        block = (spec.model_cfg.block_size if spec.model_cfg is not None else
                 self.session.config.block_size)
        ids = tok.encode(spec.train_cfg.probe_prompt, errors="drop")[-block:]
        probe_tokens = [tok.token_str(i) for i in ids] or ["\n"]
        self.samples.set_prompt("".join(probe_tokens))
        self.film.set_tokens(probe_tokens)
        self.task_view.set_task(spec.task, probe_tokens)
        self.task_view.setVisible(spec.task is not None)

    @Slot()
    def pause(self) -> None:
        if self.run is not None and self.state == "running":
            self.run.worker.pause()
            self._set_state("paused")
            self.status.setText(f"Paused at step {self.step:,}.")

    @Slot()
    def resume(self) -> None:
        if self.run is not None and self.state == "paused":
            self.run.worker.resume()
            self._set_state("running")

    @Slot()
    def stop(self) -> None:
        """Stop after the current step; the run saves a checkpoint and finishes its probes."""
        if self.run is not None and self.state in ("running", "paused"):
            self._set_state("stopping")
            self.status.setText(f"Stopping after step {self.step:,} and saving…")
            self.run.worker.stop()

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """For the main window's closeEvent: stop quickly (checkpoint saved; one-batch final
        evaluation, no final sample), wait for the thread. True if no thread is left."""
        self.form.cancel_measurement()
        ok = True
        t0 = time.perf_counter()
        if self.run is not None and self.run.running:
            self.run.worker.stop(quick=True)
            ok = self.run.wait(timeout_ms)
        left = max(0, int(timeout_ms - 1000 * (time.perf_counter() - t0)))
        QThreadPool.globalInstance().waitForDone(min(left, 500))
        return ok

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown(2000)

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    @Slot()
    def _explore_clicked(self) -> None:
        self.explore()

    @Slot()
    def _save_button_clicked(self) -> None:
        self._save_clicked()

    @Slot(bool)
    def _on_pause_toggled(self, on: bool) -> None:
        if on:
            self.pause()
        else:
            self.resume()

    def _set_state(self, state: str) -> None:
        self.state = state
        active = state in ("running", "paused", "stopping")
        self.start_button.setEnabled(not active)
        self.pause_button.setEnabled(state in ("running", "paused"))
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(state == "paused")
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.pause_button.blockSignals(False)
        self.stop_button.setEnabled(state in ("running", "paused"))
        has_model = state in ("running", "paused") or self.last_checkpoint is not None
        self.explore_button.setEnabled(has_model)
        self.save_button.setEnabled(has_model)
        self.form.set_running(active)
        if not active:
            self.form.cont_model.setEnabled(self.form.can_continue(
                self.session.config is not None))
            self._validate()
            if state != "idle":
                self._measure_presets()  # timings cancelled by Start
        self.state_changed.emit(state)

    # -- worker slots (queued into the GUI thread) ---------------------------------------------
    @Slot(object)
    def _on_started(self, info: dict) -> None:
        self.start_step = self.step = info["start_step"]
        self.total_steps = info["total_steps"]
        self.tokens_per_step = info["tokens_per_step"]
        self._unit = info.get("unit", "tokens")
        self.progress.setRange(0, self.total_steps)
        self.progress.setValue(self.step)
        self.loss_view.set_step_range(self.start_step, self.total_steps)
        self.task_view.set_step_range(self.start_step, self.total_steps)
        self.status.setText(f"Training {info['n_params']:,} parameters on {info['device']} "
                            f"({info['threads']} torch thread(s)) from step {self.start_step:,}.")
        self.run_started.emit(info)

    @Slot(object)
    def _on_metrics(self, m: dict) -> None:
        steps, losses = m["step"], m["loss"]
        self.loss_view.add_steps(steps, losses)
        self.step = int(steps[-1])
        self.last_loss = float(losses[-1])
        self.elapsed = m["elapsed"]
        self._progress_redraw.request()

    def _show_progress(self) -> None:
        """Progress bar and status line, at most PROGRESS_MS apart (they cost GUI time too)."""
        self.progress.setValue(min(self.step, self.total_steps))
        if self.state == "running":
            done = self.step - self.start_step
            rate = done / self.elapsed if self.elapsed > 0 else 0.0
            left = (self.total_steps - self.step) / rate if rate > 0 else math.inf
            tok_s = rate * self.tokens_per_step
            self.status.setText(f"step {self.step:,} of {self.total_steps:,} · "
                                f"{fmt_duration(left)} left · {tok_s:,.0f} {self._unit}/s · "
                                f"loss {self.last_loss:.3f}")

    @Slot(int, float, float)
    def _on_evaluated(self, step: int, train: float, val: float) -> None:
        self.loss_view.add_eval(step, train, val)

    @Slot(int, str)
    def _on_sampled(self, step: int, text: str) -> None:
        note = ""
        if self.scores and self.scores[-1][0] == step:  # measured with this sample
            note = score_text(self.scores[-1][1], short=True)
        self.samples.add_sample(step, text, self.last_loss if step > self.start_step else None,
                                note=note)

    @Slot(int, object)
    def _on_scored(self, step: int, scores: dict) -> None:
        self.scores.append((int(step), dict(scores)))
        final = ""
        if scores.get("final"):
            final = " (final, every held-out pair)" if "exact_match" in scores else " (final)"
        self.score_label.setText(f"Step {step:,}: {score_text(scores)}{final}")
        self.score_label.show()

    @Slot(int, object)
    def _on_attention(self, step: int, attention) -> None:
        self.task_view.add_frame(step, attention)
        self.film.add_frame(step, attention)

    @Slot(int)
    def _on_frame(self, i: int) -> None:
        if self.task_view.isVisible() or self._task is not None:
            step, a = self.film.frame(i)
            self.task_view.show_attention(step, a)

    @Slot(int, int)
    def _on_film_head(self, layer: int, head: int) -> None:
        self.task_view.select_head(layer, head)

    @Slot(int, int)
    def _on_task_head(self, layer: int, head: int) -> None:
        self.film.select_head(layer, head)

    @Slot(int, str)
    def _on_checkpoint(self, step: int, path: str) -> None:
        if path:
            self.last_checkpoint = Path(path)

    @Slot(object)
    def _on_snapshot(self, snap) -> None:
        self._serve_snapshot(snap)

    @Slot(int, object)
    def _on_model_saved(self, step: int, path: Path) -> None:
        self._saved_during_run(step, path)

    @Slot(object, str)
    def _on_save_failed(self, path: Path, text: str) -> None:
        self._save_failed_during_run(path, text)

    @Slot(str)
    def _on_message(self, text: str) -> None:
        self._message(text)

    @Slot(str)
    def _on_diverged(self, reason: str) -> None:
        self._error("Training stopped: the loss is not a number", reason)

    @Slot(str, str)
    def _on_failed(self, title: str, text: str) -> None:
        self._error(title, text)

    @Slot(object)
    def _on_done(self, result) -> None:
        self.result = result
        self._progress_redraw.flush()
        self.loss_view.flush()
        self.film.flush()
        self.task_view.flush()
        if result is not None and result.checkpoint is not None:
            self.last_checkpoint = Path(result.checkpoint)
        if result is None:
            self._set_state("failed")
            self.status.setText("Training failed: " + (self.last_error[1].split("\n")[0]
                                                       if self.last_error else "see the message"))
        elif not result.ok:
            self._set_state("failed")
            kept = (f" The last good checkpoint is {self.last_checkpoint}."
                    if self.last_checkpoint else "")
            self.status.setText(f"Stopped at step {result.step:,}: the loss stopped being a "
                                f"finite number.{kept}")
        else:
            self._set_state("finished")
            val = f", validation loss {result.val_loss:.3f}" if result.val_loss is not None else ""
            where = f" Saved {self.last_checkpoint}." if self.last_checkpoint else ""
            score = ""
            if self.scores and self.scores[-1][1].get("final"):
                score = f", {score_text(self.scores[-1][1])}"
            self.status.setText(f"{result.reason.capitalize()} at step {result.step:,}: train "
                                f"loss {result.train_loss:.3f}{val}{score}.{where}")
        self._serve_after_run()
        self.run_finished.emit(result)

    @Slot()
    def _on_thread_finished(self) -> None:
        # the QThread has ended (finished is its last signal, so this wait is immediate); the
        # run object is kept until the next Start
        if self.run is not None:
            self.run.wait(1000)
        self.thread_finished.emit()

    # -- messages ------------------------------------------------------------------------------
    def _message(self, text: str) -> None:
        self.session.message.emit(text)

    def _error(self, title: str, text: str) -> None:
        self.last_error = (title, text)
        self.session.error.emit(title, text)

    # -- files ---------------------------------------------------------------------------------
    @Slot()
    def _open_file(self) -> None:
        if self.form.kind_name() == "encoder-decoder":
            path, _ = QFileDialog.getOpenFileName(
                self, "Train on source<TAB>target pairs", "",
                "Pairs (*.tsv *.txt);;All files (*)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Train on a text file", "",
                                                  "Text (*.txt *.md *.csv *.py);;All files (*)")
        if path:
            self.form.set_source("file", path)

    def dragEnterEvent(self, ev) -> None:  # noqa: N802 (Qt API)
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:  # noqa: N802
        for u in ev.mimeData().urls():
            if u.isLocalFile():
                self.form.set_source("file", u.toLocalFile())
                ev.acceptProposedAction()
                return

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        if not self._measured:
            self._measured = True
            try:
                self.form.set_devices(available_devices())
            except Exception:  # noqa: BLE001
                pass
        # after the dock layout has settled: a tab behind another is shown too (parked outside
        # the window), and timing runs there would compete with the explorer for the CPU
        QTimer.singleShot(0, self, self._measure_presets)

    def catch_up(self) -> None:
        """The dock's tab came to the front (see MainWindow.add_panel)."""
        self._measure_presets()

    def _measure_presets(self) -> None:
        """Time each preset once (in the background, never while a run trains), only while the
        panel is on screen."""
        if self.running or not is_shown(self) or not self.auto_measure:
            return
        try:
            self.form.measure_presets(task_tokenizer("copy").vocab_size, device_name("auto"))
        except Exception:  # noqa: BLE001 - estimates are optional
            pass


def score_text(scores: dict, short: bool = False) -> str:
    """``held-out exact match 93.5 % (2,000 pairs)`` for a ``scored`` dict (``short``:
    ``exact match 93.5 %``)."""
    parts = []
    for key, name in (SHORT_NAMES if short else SCORE_NAMES).items():
        if key in scores:
            text = f"{name} {100 * scores[key]:.1f} %"
            if "scored" in scores and not short:
                text += f" ({int(scores['scored']):,} pairs)"
            parts.append(text)
    return ", ".join(parts)


__all__ = ["TrainingPanel", "default_runs_dir", "score_text"]
