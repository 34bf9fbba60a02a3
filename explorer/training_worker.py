"""Training in a background QThread: :func:`model.train_gpt.train_gpt` (or, for the encoder
kinds, :func:`model.train_encoders.train_encoder_decoder` / :func:`~model.train_encoders.train_encoder`)
behind Qt signals.

:class:`TrainingRun` (GUI thread) owns a QThread and a :class:`TrainingWorker` moved onto it.
The worker's callbacks run in the training thread and turn everything into plain Python/numpy
data carried by signals; step metrics are batched and emitted at most ``METRICS_HZ`` times a
second, so a tiny model doing hundreds of steps a second cannot flood the GUI's event queue.

Pause, resume and stop call the thread-safe :class:`model.trainer.TrainControl`. Only the
training thread touches the model: a snapshot of the weights ("Explore this model" during
training) and "Save model as…" are calls it runs between two steps, or at once while paused
(:meth:`TrainControl.call_between_steps`); a snapshot reaches the GUI as numpy copies. A run that
continues the explorer's model gets a copy of its weights from the inference worker and builds
its own model here.

Connect the worker's signals only to methods of QObjects living in the GUI thread: a lambda or
plain function has no thread of its own, so (PySide6 6.x) it would run in the training thread.

Torch threads: the training thread uses ``cores - 1`` (1 on the 2-core target machine), chosen
by measurement (benchmarks/bench_training.py, tiny preset on the copy task, 400 steps, the same
configuration headless and in the GUI, other jobs sharing the machine):

* headless, 1 thread: 61-63k tokens/s; 2 threads: 15k-89k (89k only while the second core was
  idle; whenever anything else runs, OpenMP's two workers wait on each other);
* in the GUI, 1 thread: 54-67k tokens/s; 2 threads: 42-47k, because the GUI thread needs a core;
  event-loop lateness p99 2.6-4.3 ms (1 thread) vs 3.9-5.6 ms (2 threads);
* under heavy load (load average 7): 1 thread 27k tokens/s, 2 threads 0.8k.

``torch.set_num_threads`` is process-wide; the inference worker uses the same formula.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
import traceback
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, Signal, Slot

from model.config import ModelConfig, TrainConfig
from model.tokenizer import Tokenizer

if TYPE_CHECKING:
    from model.corpora import Corpus

METRICS_HZ = 10  # most step-metric batches per second handed to the GUI


_BUSY_LOCK = threading.Lock()
_BUSY = 0  # training runs and timing jobs computing right now, in any thread


def training_busy() -> bool:
    """True while a training run (or a timing job) is computing: the inference worker then
    keeps to one torch thread, so the two never fight over the cores."""
    return _BUSY > 0


def _busy(delta: int) -> None:
    global _BUSY
    with _BUSY_LOCK:
        _BUSY += delta


def training_threads() -> int:
    """Torch threads for the training thread: all cores but one for the GUI (at least 1)."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs, prepared (and checked) in the GUI thread."""

    corpus: Corpus
    train_cfg: TrainConfig
    out_path: Path
    model_cfg: ModelConfig | None = None  # for a new model
    resume_from: Path | None = None  # continue this checkpoint (weights, steps, optimizer)
    # continue the explorer's model: the copy of its weights the inference worker makes
    weights: Future[Snapshot] | None = field(default=None, compare=False)
    tokenizer: Tokenizer | None = None  # the continued model's tokenizer
    threads: int = 0  # torch threads; 0 = training_threads()
    task: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """A copy of the weights taken between two steps (numpy arrays, never the live tensors): it
    crosses the GUI thread to the inference worker, which builds the model from it."""

    step: int
    config: ModelConfig
    tokenizer: Tokenizer
    state_dict: dict = field(compare=False)

    def build(self, device: str = "cpu"):
        """A new model of the config's kind (GPT or encoder-decoder) in eval mode holding these
        weights."""
        import torch

        from model.encoder_decoder import build_model

        m = build_model(self.config)
        with torch.no_grad():
            m.load_state_dict({k: torch.from_numpy(v) for k, v in self.state_dict.items()})
        return m.to(device).eval()


def copy_state(model) -> dict:
    """A numpy copy of ``model``'s state dict (never shares storage with the live weights;
    bf16 tensors, which numpy lacks, become float32 like the GPT's own parameters)."""
    import torch

    out = {}
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu", copy=True)
        out[k] = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return out


class _Callbacks:
    """model.trainer.Callbacks forwarding to the worker (runs in the training thread)."""

    def __init__(self, worker: TrainingWorker):
        self.w = worker

    def on_start(self, trainer) -> None:
        self.w._on_start(trainer)

    def on_step(self, m) -> None:
        self.w._on_step(m)

    def on_eval(self, m) -> None:
        self.w._flush()
        val = float("nan") if m.val_loss is None else float(m.val_loss)
        self.w.evaluated.emit(int(m.step), float(m.train_loss), val)

    def on_sample(self, step, text) -> None:
        self.w.sampled.emit(int(step), str(text))

    def on_attention(self, step, attention) -> None:
        self.w.attention.emit(int(step), np.array(attention, dtype=np.float32, copy=True))

    def on_score(self, step, scores) -> None:
        self.w.scored.emit(int(step), {str(k): float(v) for k, v in scores.items()})

    def on_checkpoint(self, step, path) -> None:
        self.w.checkpoint_saved.emit(int(step), str(path) if path is not None else "")

    def on_message(self, text) -> None:
        self.w.message.emit(str(text))


class TrainingWorker(QObject):
    """Runs one training run in whatever thread calls :meth:`run` (the run's QThread)."""

    started = Signal(object)  # dict: start_step, total_steps, n_params, device, threads, ...
    metrics = Signal(object)  # dict of numpy arrays step/loss/lr/grad_norm + tokens_per_s, elapsed
    evaluated = Signal(int, float, float)  # step, train loss, val loss (NaN if none)
    sampled = Signal(int, str)
    attention = Signal(int, object)  # step, (L, H, T, T) float32 ((L, H, T, S): cross-attention)
    # step, {"exact_match" | "masked_accuracy": fraction} of held-out data (encoder kinds); the
    # final one, of every held-out pair, also has "final": 1.0 and "scored": how many
    scored = Signal(int, object)
    checkpoint_saved = Signal(int, str)
    snapshot_ready = Signal(object)  # Snapshot
    model_saved = Signal(int, object)  # step, Path written by request_save
    save_failed = Signal(object, str)  # Path, what went wrong
    message = Signal(str)
    diverged = Signal(str)  # the explanation; the last good checkpoint is kept
    failed = Signal(str, str)  # title, text: an exception in the training thread
    done = Signal(object)  # TrainResult, or None after a failure

    def __init__(self, spec: RunSpec):
        super().__init__()
        self.spec = spec
        from model.trainer import TrainControl

        self.control = TrainControl()
        self.trainer = None
        self._lock = threading.Lock()
        self._buf: list[tuple] = []
        self._last_emit = 0.0
        self._fast_stop = False
        self.step = 0

    # -- thread-safe control (any thread) ------------------------------------------------------
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self, quick: bool = False) -> None:
        """Stop after the current step and save; ``quick`` (closing the window) also makes the
        final evaluation one batch and skips the final sample, so the thread ends fast."""
        if quick:
            self._fast_stop = True
            t = self.trainer
            if t is not None:  # attribute swap: atomic; read by the loop's final probes
                t.cfg = dataclasses.replace(t.cfg, eval_iters=1, sample_tokens=0)
        self.control.stop()

    @property
    def is_paused(self) -> bool:
        return self.control.is_paused

    def request_snapshot(self) -> None:
        """Ask for a copy of the weights; ``snapshot_ready`` carries it. The training thread
        copies them after the current step, or at once while paused."""
        self.control.call_between_steps(self._serve_snapshot)

    def request_save(self, path: Path, summary: dict) -> None:
        """Write the model as it is after the current step (or now, while paused) to ``path``,
        in the training thread; ``summary`` gets the step. ``model_saved`` or ``save_failed``."""
        self.control.call_between_steps(lambda: self._save(Path(path), dict(summary)))

    # -- the run (training thread) -------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        result = None
        _busy(+1)
        try:
            result = self._run()
        except Exception as e:  # noqa: BLE001 - every failure becomes a dialog, the app stays up
            self._flush()
            self.failed.emit("Training failed", _failure_text(e))
        finally:
            _busy(-1)
            self._flush()
            self.trainer = None
            self.done.emit(result)
            # QThread.quit is thread-safe; calling it here (not through a queued signal) ends
            # the thread even while the GUI thread blocks in wait() (closing the window)
            self.thread().quit()

    def _run(self):
        import torch

        from model.train_gpt import train_gpt

        spec = self.spec
        torch.set_num_threads(spec.threads or training_threads())
        model = None
        if spec.weights is not None:
            snap = self._wait_for_weights(spec.weights)
            if snap is None:
                return None
            model = snap.build("cpu")  # train_gpt moves it to the run's device
        kind = spec.model_cfg.kind if spec.model_cfg is not None else "decoder"
        if kind == "decoder":
            result = train_gpt(spec.corpus, spec.model_cfg, spec.train_cfg, spec.out_path,
                               callbacks=_Callbacks(self), resume_from=spec.resume_from,
                               model=model, tokenizer=spec.tokenizer, control=self.control)
        else:
            from model.train_encoders import train_encoder, train_encoder_decoder

            train = train_encoder_decoder if kind == "encoder-decoder" else train_encoder
            result = train(spec.corpus, spec.model_cfg, spec.train_cfg, spec.out_path,
                           callbacks=_Callbacks(self), control=self.control)
            self._final_score(result)
        if result is not None and not result.ok:
            self.diverged.emit(result.reason)
        return result

    def _final_score(self, result) -> None:
        """The score the final checkpoint records (every held-out pair), as ``scored``."""
        if result is None or not result.ok or result.stopped or result.checkpoint is None:
            return
        from model.checkpoints import read_metadata

        summary = read_metadata(result.checkpoint).get("summary") or {}
        for name, count in (("exact_match", "held_out_pairs"), ("masked_accuracy", None)):
            if isinstance(summary.get(name), (int, float)):
                scores = {name: float(summary[name]), "final": 1.0}
                if count and isinstance(summary.get(count), int):
                    scores["scored"] = float(summary[count])
                self.scored.emit(int(result.step), scores)

    def _on_start(self, trainer) -> None:
        self.trainer = trainer
        self.step = trainer.step
        if self._fast_stop:
            trainer.cfg = dataclasses.replace(trainer.cfg, eval_iters=1, sample_tokens=0)
        m = trainer.model
        seq2seq = m.config.kind == "encoder-decoder"
        self.started.emit({
            "start_step": int(trainer.step), "total_steps": int(trainer.cfg.steps),
            "n_params": int(sum(p.numel() for p in m.parameters())),
            "device": str(trainer.device), "threads": int(__import__("torch").get_num_threads()),
            "config": m.config,
            # an encoder-decoder's batches are pairs, each as long as it is (not a block)
            "tokens_per_step": int(trainer.cfg.batch_size * (1 if seq2seq else
                                                              m.config.block_size)),
            "unit": "pairs" if seq2seq else "tokens",
        })

    def _wait_for_weights(self, weights: Future[Snapshot]) -> Snapshot | None:
        """The copy of the explorer's model (None, with a message, if there is none): waits
        for the inference worker, which may be busy with a step, and for Stop."""
        while not self.control.stop_requested:
            try:
                return weights.result(timeout=0.1)
            except TimeoutError:
                continue
            except CancelledError:  # the app is closing
                return None
            except Exception as e:  # noqa: BLE001 - e.g. the model changed meanwhile
                self.failed.emit("Could not continue the model", str(e))
                return None
        weights.cancel()
        return None

    def _on_step(self, m) -> None:
        self.step = m.step
        self._buf.append((m.step, m.loss, m.lr, m.grad_norm, m.tokens_per_s, m.elapsed))
        now = time.perf_counter()
        if now - self._last_emit >= 1.0 / METRICS_HZ:
            self._flush(now)

    def _flush(self, now: float | None = None) -> None:
        if not self._buf:
            return
        buf, self._buf = self._buf, []
        a = np.array(buf, dtype=np.float64)  # (n, 6)
        self._last_emit = time.perf_counter() if now is None else now
        self.metrics.emit({
            "step": a[:, 0].astype(np.int64), "loss": a[:, 1], "lr": a[:, 2],
            "grad_norm": a[:, 3], "tokens_per_s": float(a[-1, 4]), "elapsed": float(a[-1, 5]),
        })

    def _serve_snapshot(self) -> None:
        t = self.trainer
        if t is not None:
            self.snapshot_ready.emit(self._snapshot(t))

    def _snapshot(self, trainer) -> Snapshot:
        from model.checkpoints import unwrap_model

        model = unwrap_model(trainer.model)
        tok = self.spec.tokenizer or self.spec.corpus.tokenizer
        return Snapshot(step=int(trainer.step), config=model.config, tokenizer=tok,
                        state_dict=copy_state(model))

    def _save(self, path: Path, summary: dict) -> None:
        from model.checkpoints import CheckpointError, save_checkpoint

        t = self.trainer
        if t is None:
            return
        tok = self.spec.tokenizer or self.spec.corpus.tokenizer
        step = int(t.step)
        try:
            save_checkpoint(path, t.model, tok, summary={**summary, "steps": step})
        except CheckpointError as e:  # names the path and the reason (full disk, read-only)
            self.save_failed.emit(path, str(e))
            return
        except Exception as e:  # noqa: BLE001 - anything else: still one dialog
            self.save_failed.emit(path, f"{path}: {e}")
            return
        self.model_saved.emit(step, path)


def _failure_text(e: Exception) -> str:
    """What the dialog says: the message alone for a problem the user can act on (a file that
    cannot be written, a corpus or setting that does not fit: every such message names the
    problem); the traceback only for a bug."""
    from model.checkpoints import CheckpointError
    from model.config import ConfigError
    from model.corpora import CorpusError
    from model.memory import MemoryLimitError

    if isinstance(e, (CheckpointError, ConfigError, CorpusError, MemoryLimitError)):
        return str(e)
    if isinstance(e, OSError):
        return f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
    return f"{type(e).__name__}: {e}\n\n{traceback.format_exc(limit=6)}"


class TrainingRun(QObject):
    """GUI-thread owner of one run: the QThread, the worker and their teardown."""

    finished = Signal()  # the thread has ended (after the worker's ``done``)

    def __init__(self, spec: RunSpec, parent: QObject | None = None):
        super().__init__(parent)
        self.spec = spec
        self.worker = TrainingWorker(spec)
        self.thread = QThread()
        self.thread.setObjectName("training")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.thread.finished.connect(self._on_thread_finished)
        self.result = None
        self.ended = False

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, timeout_ms: int) -> bool:
        if not self.thread.isRunning():
            return True
        return bool(self.thread.wait(max(0, int(timeout_ms))))

    @Slot()
    def _on_thread_finished(self) -> None:
        self.ended = True
        self.finished.emit()


class SpeedProbe(QRunnable):
    """Times a few training steps of some configurations (for "~N s per 1,000 steps").

    Runs in the global QThreadPool; results go through ``sink.timed(key, seconds_per_step)``,
    a signal of a GUI-thread QObject. ``cancel()`` stops between configurations and steps."""

    def __init__(self, jobs: list[tuple[str, ModelConfig, int, str]], sink: QObject,
                 threads: int = 0):
        super().__init__()
        self.jobs = jobs  # (key, ModelConfig, batch, device)
        self.sink = sink
        self.threads = threads or training_threads()
        self._cancel = threading.Event()
        self.setAutoDelete(True)

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        _busy(+1)
        try:
            import torch

            from model.devices import resolve_device
            from model.transformer import GPT

            torch.set_num_threads(self.threads)
            for key, cfg, batch, device in self.jobs:
                if self._cancel.is_set():
                    return
                dev = resolve_device(device)
                m = GPT(cfg).to(dev)
                opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
                x = torch.randint(cfg.vocab_size, (batch, cfg.block_size), device=dev)
                times = []
                for _ in range(3):  # one warm-up, two timed
                    if self._cancel.is_set():
                        return
                    t0 = time.perf_counter()
                    _, loss = m(x, x)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    if dev.type == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                self.sink.timed.emit(key, float(min(times[1:])))
        except Exception:  # noqa: BLE001 - an estimate is optional
            self._tell("error")
        finally:
            _busy(-1)
            self._tell("done")

    def _tell(self, key: str) -> None:
        try:
            self.sink.timed.emit(key, float("nan"))
        except RuntimeError:  # the form is gone (app closing)
            pass


__all__ = ["METRICS_HZ", "training_threads", "RunSpec", "Snapshot", "copy_state",
           "TrainingWorker", "TrainingRun", "SpeedProbe"]
