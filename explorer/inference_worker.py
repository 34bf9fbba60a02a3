"""Background work: the inference worker owns the Stepper and runs every forward pass off the GUI thread.

Requests are frozen dataclasses handed to :meth:`InferenceWorker.submit` from the GUI thread. The
newest request wins: a pending request of a coalescing kind (a prompt, sampling settings, a model,
a device) replaces an older pending one of the same kind, and a new prompt or model drops the
steps still queued for the old one. Results go back as signals carrying numpy-only StepResults,
tagged with the model *generation* so a late result for a replaced model is ignored.

Connect this worker's signals only to slots (methods) of QObjects that live in the GUI thread: a
lambda or plain function connected to them would run in the worker thread (PySide6 6.x).

When it has nothing to do, the worker runs the next step's pass ahead of time
(:meth:`Stepper.lookahead`): a Step that picks the planned token then costs no forward pass,
which matters most once the window is full and every step recomputes all of it.

Torch threads: the worker sets ``torch.set_num_threads(inference_threads())`` = cores − 1, at most
4 (at least 1): the models here are small, so more threads buy little, and leaving one core free
keeps the GUI thread responsive while Run generates continuously. A lookahead pass uses
:func:`lookahead_threads` instead (the GUI has painted by then). With torch's OpenMP the setting
belongs to the calling thread (the training thread sets its own).
"""
from __future__ import annotations

import dataclasses
import os
import string
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from explorer.training_worker import training_busy
from model.ablation import Ablation
from model.branches import Branching
from model.config import CaptureSpec, ConfigError, ModelConfig, SampleConfig
from model.positional_view import PositionalView
from model.step_result import StepResult
from model.tokenizer import CharTokenizer, Tokenizer

if TYPE_CHECKING:
    from explorer.training_worker import Snapshot
    from model.masked_stepper import MaskedStepper
    from model.stepper import Stepper
    from model.transformer import GPT

# -- requests --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadModel:
    """Make a model current; every model is loaded here, in the worker (never in the GUI thread).

    From ``path`` (a checkpoint file), from ``snapshot`` (weights copied from a training run), or
    the untrained default when both are None. ``keep_current``: if it fails, the model in use stays
    (File → Open, the training dock); otherwise the untrained default is shown (start-up)."""

    path: Path | None
    device: str
    prompt: str
    sample: SampleConfig | dict | None  # or a dict of its fields (saved settings); None: default
    generation: int
    keep_current: bool = False
    snapshot: Snapshot | None = field(default=None, compare=False)
    name: str | None = None  # shown in the status bar (default: the file's stem)
    summary: dict | None = field(default=None, compare=False)  # a snapshot's training summary


@dataclass(frozen=True)
class SaveModel:
    """Write the current model to ``path`` (.safetensors) with ``summary``."""

    path: Path
    summary: dict = field(compare=False)


@dataclass(frozen=True)
class ExportModel:
    """Write the current model as a Hugging Face GPT-2 folder (config.json, model.safetensors,
    tokenizer files) at ``folder``."""

    folder: Path


@dataclass(frozen=True)
class CopyWeights:
    """Answer ``reply`` with a CPU copy of the current model (a Snapshot: numpy weights, config,
    tokenizer) for a training run to build its own model from, in its own thread. ``generation``:
    the model the run was planned for; if another one is current by now, the copy fails."""

    reply: Future = field(compare=False)
    generation: int


@dataclass(frozen=True)
class SetDevice:
    device: str


@dataclass(frozen=True)
class SetPrompt:
    text: str  # already free of characters outside the vocabulary


@dataclass(frozen=True)
class Step:
    force: int | None = None


@dataclass(frozen=True)
class Back:
    pass


@dataclass(frozen=True)
class RewindTo:
    n_generated: int


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Resample:
    pass


@dataclass(frozen=True)
class Redistribute:
    sample: SampleConfig


@dataclass(frozen=True)
class SetAblation:
    """Switch heads off (the empty ablation switches every head back on)."""

    ablation: Ablation


@dataclass(frozen=True)
class SwitchBranch:
    """Make the continuation up to ``node`` of the branch tree the current text."""

    node: int


@dataclass(frozen=True)
class RankHeads:
    """Rank every head by how much switching it off alone changes log p(planned token)."""

    mode: str = "zero"


@dataclass(frozen=True)
class Run:
    n: int
    interval_ms: int = 40


# -- an encoder (BERT-style, model.masked_stepper) ------------------------------------------------
@dataclass(frozen=True)
class ToggleMask:
    """Hide the token at ``position`` behind [MASK], or restore it; its prediction is shown."""

    position: int


@dataclass(frozen=True)
class SelectPosition:
    """Show the encoder's prediction at ``position`` (no forward pass)."""

    position: int


@dataclass(frozen=True)
class SetCausalView:
    """Run the encoder's weights under a decoder's causal mask (True) or as trained (False)."""

    on: bool


#: what an encoder answers (it fills masks; stepping, Run and branches are for decoders)
ENCODER_REQUESTS = (ToggleMask, SelectPosition, SetCausalView)


#: kinds where only the newest pending request matters
COALESCE = (LoadModel, SetDevice, SetPrompt, Redistribute, Run, SetAblation, RankHeads,
            SelectPosition, SetCausalView)
#: kinds that make every older pending request obsolete (they start a new text)
SUPERSEDE = (LoadModel, SetPrompt)
MODEL_KINDS = (LoadModel,)
#: kinds that are never dropped: someone waits for each answer, or asked for a file
KEEP = (SaveModel, ExportModel, CopyWeights)
Request = (LoadModel | SaveModel | ExportModel | CopyWeights | SetDevice | SetPrompt | Step | Back
           | RewindTo | Reset | Resample | Redistribute | Run | SetAblation | RankHeads
           | SwitchBranch | ToggleMask | SelectPosition | SetCausalView)
MAX_PENDING_STEPS = 4  # more key repeats than this while the worker is busy are dropped
#: the longest the worker waits for the GUI to say it has drawn a result before it runs the
#: next step's pass anyway (see InferenceWorker._idle)
LOOKAHEAD_DELAY_MS = 50


#: model kind -> (module, class) of the stepper the worker drives for it: the same request
#: API (set_prompt, step, back, rewind_to, reset, resample, redistribute, set_ablation,
#: lookahead, …), each answering with a StepResult
STEPPERS: dict[str, tuple[str, str]] = {
    "decoder": ("model.stepper", "Stepper"),
    "encoder-decoder": ("model.seq2seq_stepper", "Seq2SeqStepper"),
    # an encoder does not step: its stepper masks tokens instead (ToggleMask, SelectPosition,
    # SetCausalView; InferenceWorker._handle_encoder)
    "encoder": ("model.masked_stepper", "MaskedStepper"),
}


def inference_threads() -> int:
    n = os.cpu_count() or 1
    return max(1, min(4, n - 1))


def lookahead_threads() -> int:
    """Torch threads for the pass run ahead. It starts once the GUI has painted, so the GUI
    thread's core is free: every core (at most 4), or one while a training run computes.
    Measured (bench_gui, 2-core box, full 256 window, steps every 40 ms): one thread often
    cannot finish the ~22 ms pass before the next request; two finish it in ~14 ms."""
    n = os.cpu_count() or 1
    return 1 if training_busy() else max(1, min(4, n))


@dataclass(frozen=True)
class Loaded:
    """What the worker hands back after LoadModel: how to describe the model, in plain data and
    numpy copies (the model itself never leaves the worker's thread)."""

    config: ModelConfig
    tokenizer: Tokenizer
    path: Path | None
    device: str
    summary: dict
    trained: bool
    name: str
    n_params: int
    positional: PositionalView  # what the positional panel shows
    sample: SampleConfig | None = None  # the SampleConfig in use


def untrained_default(device: str = "cpu") -> tuple[GPT, CharTokenizer]:
    """The model shown until a trained one exists: random weights, printable ASCII + newline."""
    import torch

    from model.transformer import GPT

    chars = sorted(set(string.printable) - set("\t\r\x0b\x0c"))  # letters, digits, punctuation, space, \n
    tok = CharTokenizer(chars)
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=4, n_head=4, n_embd=128,
                      pos_kind="sinusoidal")
    torch.manual_seed(0)  # the same "random" model every start, so demos repeat
    model = GPT(cfg).to(device).eval()
    return model, tok


class InferenceWorker(QObject):
    """Owns the Stepper; lives in its own QThread (see :func:`start_inference_thread`)."""

    result_ready = Signal(object, int, str)  # StepResult, generation, request kind
    model_ready = Signal(object, object, int)  # Loaded, StepResult | None, generation
    saved = Signal(object, int)  # Path written by SaveModel, generation
    exported = Signal(object, int)  # folder written by ExportModel, generation
    failed = Signal(str, str, str, int)  # request kind, title, text, generation
    notice = Signal(str, int)  # a status-bar message, generation
    device_changed = Signal(str, int)  # device actually in use, generation
    busy_changed = Signal(bool)
    running_changed = Signal(bool, int)
    heads_ranked = Signal(object, object, int)  # HeadEffects, the StepResult it ranks, generation
    branches_changed = Signal(object, int)  # model.branches.Branches (frozen), generation
    _wake = Signal()
    _tick = Signal()
    _drawn = Signal()

    def __init__(self, capture: CaptureSpec | None = None, lens_k: int = 5):
        super().__init__()
        self._capture = capture
        self._lens_k = lens_k
        self._lock = threading.Lock()
        self._pending: list[Request] = []
        self._stepper: Stepper | MaskedStepper | None = None  # MaskedStepper: an encoder
        self._branching: Branching | None = None  # drives the stepper, keeps every branch
        self._branches_sent = -1  # version of the tree last sent
        self._model: GPT | None = None
        self._tokenizer: Tokenizer | None = None
        self._summary: dict = {}
        self._device = "cpu"
        self._sample: SampleConfig | None = None
        self._generation = -1
        self._busy = False
        # Run state: written by the GUI thread only through stop_run()/ack() (single assignments)
        self._run_left = 0
        self._run_interval = 0.0
        self._last_step = 0.0
        self._stop = False
        self._acked = True
        self._timer: QTimer | None = None
        self.requests_handled = 0  # for tests and benchmarks
        self.steps_done = 0
        self.lookahead_enabled = True  # False: every step computes when asked (benchmarks)
        self.lookahead_delay_ms = LOOKAHEAD_DELAY_MS
        self._ahead_timer: QTimer | None = None
        self._ahead_armed = False
        self.lookaheads = 0  # passes run ahead (for tests and benchmarks)
        self._wake.connect(self._process, Qt.ConnectionType.QueuedConnection)
        self._tick.connect(self._run_tick, Qt.ConnectionType.QueuedConnection)
        self._drawn.connect(self._look_ahead_now, Qt.ConnectionType.QueuedConnection)

    # -- called from the GUI thread -----------------------------------------------------------
    def submit(self, req: Request) -> None:
        with self._lock:
            if isinstance(req, SUPERSEDE):
                # an encoder's causal view outlasts a new text (not a new model)
                self._pending = [p for p in self._pending if isinstance(p, KEEP)
                                 or (isinstance(p, MODEL_KINDS)
                                     and not isinstance(req, MODEL_KINDS))
                                 or (isinstance(p, SetCausalView)
                                     and not isinstance(req, MODEL_KINDS))]
            elif isinstance(req, COALESCE):
                self._pending = [p for p in self._pending if type(p) is not type(req)]
            elif isinstance(req, Step):
                if sum(isinstance(p, Step) for p in self._pending) >= MAX_PENDING_STEPS:
                    return
            self._pending.append(req)
        self._wake.emit()

    def stop_run(self) -> None:
        """Stop continuous generation after the step in progress (thread-safe)."""
        self._stop = True
        self._tick.emit()

    def ack(self) -> None:
        """The GUI has taken the last result: Run may compute the next one (thread-safe)."""
        self._acked = True
        if self._run_left > 0:
            self._tick.emit()

    @property
    def lookahead_hits(self) -> int:
        """Steps of the current stepper that found their pass already run (read-only)."""
        st = self._stepper
        return st.lookahead_hits if st is not None else 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- in the worker thread -----------------------------------------------------------------
    @Slot()
    def _process(self) -> None:
        while True:
            with self._lock:
                req = self._pending.pop(0) if self._pending else None
            if req is None:
                break
            self._set_busy(True)
            self._handle(req)
            self.requests_handled += 1
        self._set_busy(self._run_left > 0)
        self._idle()

    def _can_look_ahead(self) -> bool:
        return (self.lookahead_enabled and self._stepper is not None and self._run_left <= 0
                and not self.pending)

    def _idle(self) -> None:
        """Nothing queued and no Run: compute the planned next step's pass while the user looks,
        once the GUI has drawn the result just sent (:meth:`gui_drawn`; a pass alongside the
        redraw would slow both down on a 2-core machine), or ``lookahead_delay_ms`` from now if
        the GUI does not say. A request arriving before then is handled first; one arriving
        during the pass waits for it."""
        if not self._can_look_ahead():
            return
        self._ahead_armed = True
        if self._ahead_timer is None:  # created here so it lives in the worker thread
            self._ahead_timer = QTimer(self)
            self._ahead_timer.setSingleShot(True)
            self._ahead_timer.timeout.connect(self._look_ahead_late)
        self._ahead_timer.start(max(0, int(self.lookahead_delay_ms)))

    @Slot()
    def _stop_timers(self) -> None:
        self._ahead_armed = False
        for t in (self._ahead_timer, self._timer):
            if t is not None:
                t.stop()

    def gui_drawn(self) -> None:
        """The GUI has drawn the last result (thread-safe): the worker may run ahead now."""
        self._drawn.emit()

    @Slot()
    def _look_ahead_now(self) -> None:
        """The GUI has painted (so it is idle): run ahead on every core that is free."""
        self._look_ahead(lookahead_threads())

    @Slot()
    def _look_ahead_late(self) -> None:
        """No paint came (e.g. a slider being dragged re-ranks without a redraw of everything):
        the GUI may be busy, so the pass keeps to the worker's usual threads."""
        self._look_ahead(inference_threads())

    def _look_ahead(self, threads: int) -> None:
        if not self._ahead_armed:
            return
        self._ahead_armed = False
        if self._ahead_timer is not None:
            self._ahead_timer.stop()
        if not self._can_look_ahead():
            return
        import torch

        n0 = torch.get_num_threads()
        torch.set_num_threads(threads)  # this thread's own setting (OpenMP)
        try:
            if self._stepper.lookahead():
                self.lookaheads += 1
        except Exception:  # noqa: BLE001 - only a guess failed; a real step reports its own error
            pass
        finally:
            torch.set_num_threads(n0)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _handle(self, req: Request) -> None:
        kind = type(req).__name__
        try:
            if isinstance(req, LoadModel):
                self._load(req)
                return
            if isinstance(req, SaveModel):
                self._save(req)
                return
            if isinstance(req, ExportModel):
                self._export(req)
                return
            if isinstance(req, CopyWeights):
                self._copy_weights(req)
                return
            if isinstance(req, Run):
                self._start_run(req)
                return
            if isinstance(req, Redistribute):
                self._sample = req.sample
                if self._stepper is not None:
                    self._emit(self._stepper.redistribute(req.sample), "Redistribute")
                return
            if self._stepper is None:
                return
            if self._branching is None:  # an encoder: no steps, no branches
                self._handle_encoder(req)
                return
            if isinstance(req, ENCODER_REQUESTS):
                return  # for an encoder; a decoder was loaded since
            if isinstance(req, RankHeads):  # looks only: a Run goes on
                self._rank_heads(req)
                return
            if not isinstance(req, SetDevice):
                self._end_run()
            if isinstance(req, SetDevice):
                self._set_device(req.device)
            elif isinstance(req, SetPrompt):
                self._emit(self._branching.set_prompt(req.text, errors="drop"))
            elif isinstance(req, Step):
                if req.force is None and getattr(self._stepper, "finished", False):
                    note = self._stepper.result.note
                    self.notice.emit(f"{note[:1].upper()}{note[1:]}: Back, or a new source, "
                                     "goes on", self._generation)
                    return
                self._emit(self._branching.step(force=req.force))
                self.steps_done += 1
            elif isinstance(req, Back):
                self._emit(self._branching.back())
            elif isinstance(req, RewindTo):
                self._emit(self._branching.rewind_to(req.n_generated))
            elif isinstance(req, Reset):
                self._emit(self._branching.reset())
            elif isinstance(req, Resample):
                self._emit(self._branching.resample())
            elif isinstance(req, SwitchBranch):
                self._emit(self._branching.switch(req.node))
            elif isinstance(req, SetAblation):
                result = self._stepper.set_ablation(req.ablation)
                if result is not None:
                    self._emit(result, "SetAblation")
        except Exception as e:  # noqa: BLE001 - report every failure, keep the worker alive
            self._end_run()
            self.failed.emit(kind, _title(kind), _describe(e), self._generation)

    def _handle_encoder(self, req: Request) -> None:
        """A request for an encoder's MaskedStepper (the caller reports failures). Stepping,
        Run and branches are for decoders: the session does not send them for an encoder."""
        st = self._stepper
        if isinstance(req, SetPrompt):
            self._emit(st.set_prompt(req.text, errors="drop"))
        elif isinstance(req, ToggleMask):
            self._emit(st.toggle_mask(req.position))
        elif isinstance(req, SelectPosition):
            self._emit(st.select(req.position))
        elif isinstance(req, SetCausalView):
            result = st.set_causal_view(req.on)
            if result is not None:
                self._emit(result)
        elif isinstance(req, SetAblation):
            result = st.set_ablation(req.ablation)
            if result is not None:
                self._emit(result, "SetAblation")
        elif isinstance(req, SetDevice):
            self._set_device(req.device)
        elif isinstance(req, RankHeads):
            self._rank_heads(req)

    def _rank_heads(self, req: RankHeads) -> None:
        from model.head_effects import head_effects

        r = self._stepper.result
        if r is None:
            return
        if r.kind != "decoder":  # the stepper ranks its own model's heads
            effects = self._stepper.rank_heads(req.mode)
        else:
            effects = head_effects(self._model, r.ids.tolist(), int(r.planned), req.mode)
        self.heads_ranked.emit(effects, r, self._generation)

    def _emit(self, result: StepResult, kind: str = "") -> None:
        self._send_branches()  # first: the result's receivers read the tree it belongs to
        self._acked = False
        self.result_ready.emit(result, self._generation, kind)

    def _send_branches(self) -> None:
        tree = self._branching.tree if self._branching is not None else None
        if tree is not None and tree.version != self._branches_sent:
            self._branches_sent = tree.version
            self.branches_changed.emit(self._branching.snapshot(), self._generation)

    def _new_stepper(self, model: GPT, tokenizer: Tokenizer,
                     sample: SampleConfig) -> Stepper | MaskedStepper:
        """The stepper for the model's kind (:data:`STEPPERS`); a kind without one gets the
        decoder's Stepper, which says in one sentence that it does not step it."""
        import importlib

        module, name = STEPPERS.get(model.config.kind, STEPPERS["decoder"])
        stepper_class = getattr(importlib.import_module(module), name)
        kwargs: dict[str, Any] = {"lens_k": self._lens_k}
        if self._capture is not None:
            kwargs["capture"] = self._capture
        return stepper_class(model, tokenizer, sample, **kwargs)

    def _load(self, req: LoadModel) -> None:
        import torch

        from model import speedups

        torch.set_num_threads(inference_threads())
        speedups.tune_malloc()  # process-wide; keeps capture buffers from page-faulting each step
        from model.devices import DeviceError, resolve_device

        try:
            device = str(resolve_device(req.device))
        except DeviceError as e:
            device = "cpu"
            self.notice.emit(f"{e}; using the CPU instead", req.generation)
        loaded: tuple[GPT, Loaded] | None = None
        if req.path is not None or req.snapshot is not None:
            if req.path is not None:  # a GPT-2-small takes seconds: say what is going on
                self.notice.emit(f"Opening {req.path.name}: reading the weights \u2026",
                                 req.generation)
            try:
                loaded = self._read(req, device)
            except Exception as e:  # noqa: BLE001 - unreadable files, odd OS errors: one message
                text = _describe(e)
                if req.path is not None and str(req.path) not in text:
                    text = f"{req.path}: {text}"
                # nothing changed here: the current model goes on (if there is one yet: a
                # file opened while the first model loads replaced that request)
                if req.keep_current and self._stepper is not None:
                    self.failed.emit("OpenModel", _title("OpenModel"), text, req.generation)
                    return
                self._end_run()
                self._generation = req.generation
                self.failed.emit("LoadModel", _title("LoadModel"),
                                 f"{text}\n\nAn untrained model is shown instead.",
                                 req.generation)
        if loaded is None:
            model, tok = untrained_default(device)
            loaded = (model, _loaded(model, tok, None, device, {"untrained": True, "steps": 0},
                                     False, "untrained model"))
        model, described = loaded
        self._end_run()
        self._generation = req.generation
        self._model, self._tokenizer, self._device = model, described.tokenizer, device
        self._summary = described.summary
        self._sample = _sample_config(req.sample)
        described = dataclasses.replace(described, sample=self._sample)
        self._stepper = self._new_stepper(model, described.tokenizer, self._sample)
        self._branching = Branching(self._stepper) if model.config.kind != "encoder" else None
        if req.path is not None:
            self.notice.emit(f"Opening {described.name}: running the prompt through "
                             f"{described.n_params / 1e6:.1f} M parameters \u2026",
                             req.generation)
        result = self._first_result(req.prompt)
        self._acked = False
        self.model_ready.emit(described, result, req.generation)
        self._branches_sent = -1
        self._send_branches()

    def _read(self, req: LoadModel, device: str) -> tuple[GPT, Loaded]:
        """The model of ``req``'s file or snapshot, on ``device``, and its description."""
        if req.snapshot is not None:
            snap = req.snapshot
            _check_kind(snap.config.kind, req.name or "the trained model")
            model = snap.build(device)
            summary = dict(req.summary or {})
            return model, _loaded(model, snap.tokenizer, None, device, summary, snap.step > 0,
                                  req.name or "trained model")
        from model.loading import open_model

        path = Path(req.path)  # a checkpoint file, a Hugging Face or nanoGPT folder, a cached name
        ck = open_model(path, device=device)
        _check_kind(ck.config.kind, str(path))
        return ck.model, _loaded(ck.model, ck.tokenizer, path, device, dict(ck.summary or {}),
                                 is_trained(ck.summary), req.name or path.stem)

    def _copy_weights(self, req: CopyWeights) -> None:
        from explorer.training_worker import Snapshot, copy_state

        if not req.reply.set_running_or_notify_cancel():
            return
        if self._model is None or req.generation != self._generation:
            req.reply.set_exception(RuntimeError(
                "The model in the explorer changed before training could copy it; press Start "
                "again to continue the model shown now."))
            return
        try:
            steps = self._summary.get("steps", 0)
            req.reply.set_result(Snapshot(step=int(steps) if isinstance(steps, int) else 0,
                                          config=self._model.config, tokenizer=self._tokenizer,
                                          state_dict=copy_state(self._model)))
        except Exception as e:  # noqa: BLE001 - the training thread reports it
            req.reply.set_exception(e)

    def _save(self, req: SaveModel) -> None:
        from model.checkpoints import save_checkpoint

        if self._model is None:
            self.failed.emit("SaveModel", "Nothing to save", "No model is loaded yet.",
                             self._generation)
            return
        try:
            save_checkpoint(req.path, self._model, self._tokenizer, summary=req.summary)
        except Exception as e:  # noqa: BLE001 - a full disk, a read-only folder: one message
            text = _describe(e)
            if str(req.path) not in text:
                text = f"{req.path}: {text}"
            self.failed.emit("SaveModel", _title("SaveModel"), text, self._generation)
            return
        self.saved.emit(req.path, self._generation)

    def _export(self, req: ExportModel) -> None:
        from model.adapters.hf_gpt2 import save_hf_folder

        if self._model is None:
            self.failed.emit("ExportModel", "Nothing to export", "No model is loaded yet.",
                             self._generation)
            return
        try:
            folder = save_hf_folder(self._model, self._tokenizer, req.folder)
        except Exception as e:  # noqa: BLE001 - a read-only folder, a tokenizer it cannot write
            text = _describe(e)
            if str(req.folder) not in text:
                text = f"{req.folder}: {text}"
            self.failed.emit("ExportModel", _title("ExportModel"), text, self._generation)
            return
        self.exported.emit(folder, self._generation)

    def _first_result(self, prompt: str) -> StepResult:
        if self._branching is None:  # an encoder: [MASK] written out is its mask token
            return self._stepper.set_prompt(prompt, errors="drop")
        return self._branching.set_prompt(self._tokenizer.without_unknown(prompt), errors="drop")

    def _set_device(self, name: str) -> None:
        """Move the model; on any failure fall back to the CPU and say why."""
        from model.devices import resolve_device

        if self._branching is None:  # an encoder keeps no tensors between passes: run again
            try:
                dev = str(resolve_device(name))
                self._model.to(dev)
                result = self._stepper.refresh()
            except Exception as e:  # noqa: BLE001 - any device problem means: back to the CPU
                self._model.to("cpu")
                dev = "cpu"
                result = self._stepper.refresh()
                self.notice.emit(f"Device {name!r} failed ({_describe(e)}); using the CPU "
                                 "instead", self._generation)
            self._device = dev
            self.device_changed.emit(dev, self._generation)
            self._emit(result)
            return

        prompt, generated = _split_text(self._stepper)
        auto_seed = self._stepper.auto_seed
        try:
            dev = str(resolve_device(name))
            self._model.to(dev)
            stepper = self._rebuild(prompt, generated, auto_seed)
        except Exception as e:  # noqa: BLE001 - any device problem means: back to the CPU
            self._model.to("cpu")
            dev = "cpu"
            stepper = self._rebuild(prompt, generated, auto_seed)
            self.notice.emit(f"Device {name!r} failed ({_describe(e)}); using the CPU instead",
                             self._generation)
        self._device = dev
        self._stepper = stepper
        self._branching.stepper = stepper  # the same text: the tree stays as it is
        self.device_changed.emit(dev, self._generation)
        self._emit(stepper.result)

    def _rebuild(self, prompt: str, generated: list[int], auto_seed: int) -> Stepper:
        """A fresh Stepper on the model's current device, replaying the generated tokens."""
        s = self._new_stepper(self._model, self._tokenizer, self._sample)
        s.auto_seed = auto_seed  # the same draws as before the move
        s.set_prompt(prompt, errors="drop")
        for tid in generated:
            s.step(force=int(tid))
        return s

    # -- Run ----------------------------------------------------------------------------------
    def _start_run(self, req: Run) -> None:
        if self._stepper is None or self._branching is None or req.n <= 0:
            return  # nothing, or an encoder (it does not generate)
        self._run_left = int(req.n)
        self._run_interval = max(0, req.interval_ms) / 1000.0
        self._stop = False
        self._acked = True
        self._last_step = 0.0
        self.running_changed.emit(True, self._generation)
        self._run_tick()

    def _end_run(self) -> None:
        if self._run_left > 0:
            self._run_left = 0
            self.running_changed.emit(False, self._generation)

    @Slot()
    def _run_tick(self) -> None:
        if self._run_left <= 0:
            return
        if self._stop:
            self._end_run()
            self._set_busy(False)
            self._idle()
            return
        if self.pending:  # user requests first; they end the run if they change the text
            self._process()
            if self._run_left <= 0:
                return
        if not self._acked:
            return  # ack() ticks again
        wait = self._last_step + self._run_interval - time.perf_counter()
        if wait > 0.001:
            if self._timer is None:  # created here so it lives in the worker thread
                self._timer = QTimer(self)
                self._timer.setSingleShot(True)
                self._timer.timeout.connect(self._run_tick)
            self._timer.start(max(1, int(wait * 1000)))
            return
        if getattr(self._stepper, "finished", False):  # the target is complete: Run ends
            self._end_run()
            self._set_busy(False)
            self.notice.emit(self._stepper.result.note, self._generation)
            self._idle()
            return
        self._set_busy(True)
        try:
            result = self._branching.step()
        except Exception as e:  # noqa: BLE001
            self._end_run()
            self._set_busy(False)
            self.failed.emit("Run", _title("Run"), _describe(e), self._generation)
            return
        self.steps_done += 1
        self._last_step = time.perf_counter()
        self._run_left -= 1
        self._emit(result, "Run")
        if self._run_left <= 0:
            self.running_changed.emit(False, self._generation)
            self._set_busy(False)
            self._idle()


def _check_kind(kind: str, what: str) -> None:
    """A model of a kind no stepper steps is refused in one sentence (the app stays up)."""
    if kind not in STEPPERS:
        raise ValueError(f"{what}: this model is an {kind}; the explorer steps "
                         f"{' and '.join(STEPPERS)} models so far. Look inside it with "
                         "python -m model inspect or generate.")


def _sample_config(sample: SampleConfig | dict | None) -> SampleConfig:
    """A SampleConfig from a SampleConfig, a dict of its fields (invalid → default), or None."""
    if isinstance(sample, SampleConfig):
        return sample
    try:
        return SampleConfig(**sample) if sample else SampleConfig()
    except (ConfigError, TypeError):
        return SampleConfig()


def _split_text(stepper: Stepper) -> tuple[str, list[int]]:
    """(prompt text, generated ids) of a stepper's whole text."""
    n = stepper.n_generated
    ids = stepper.ids
    return stepper.prompt_text, (ids[len(ids) - n:] if n > 0 else [])


def _loaded(model: GPT, tokenizer: Tokenizer, path: Path | None, device: str, summary: dict,
            trained: bool, name: str) -> Loaded:
    """The plain-data description of ``model`` that goes to the GUI thread."""
    return Loaded(config=model.config, tokenizer=tokenizer, path=path, device=device,
                  summary=summary, trained=trained, name=name,
                  n_params=int(sum(p.numel() for p in model.parameters())),
                  positional=model.pe.view())


def is_trained(summary: dict | None) -> bool:
    s = summary or {}
    if s.get("untrained"):
        return False
    steps = s.get("steps", s.get("step", s.get("train_steps")))
    return not (isinstance(steps, int) and steps == 0)


_TITLES = {"LoadModel": "Could not open the model", "OpenModel": "Could not open the model",
           "SaveModel": "Could not save the model",
           "ExportModel": "Could not export the model",
           "SetDevice": "Device problem", "SetPrompt": "Could not set the prompt",
           "ToggleMask": "Could not mask the token", "SelectPosition": "No such position",
           "SetCausalView": "Could not change the mask",
           "Run": "Generation stopped"}


def _title(kind: str) -> str:
    return _TITLES.get(kind, "Generation problem")


def _describe(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg if len(msg) < 600 else msg[:600] + " …"


class InferenceThread:
    """The worker and its QThread; ``close()`` stops the thread and waits for it."""

    def __init__(self, capture: CaptureSpec | None = None):
        self.thread = QThread()
        self.thread.setObjectName("inference")
        self.worker = InferenceWorker(capture)
        self.worker.moveToThread(self.thread)
        # emitted in the worker thread as it ends: its timers must be stopped there
        self.thread.finished.connect(self.worker._stop_timers, Qt.ConnectionType.DirectConnection)
        self.thread.start()

    def close(self, timeout_ms: int = 10000) -> bool:
        self.worker.stop_run()
        with self.worker._lock:
            dropped, self.worker._pending = self.worker._pending, []
        for req in dropped:  # a training run waiting for a copy must not wait for ever
            if isinstance(req, CopyWeights):
                req.reply.cancel()
        self.thread.quit()
        return self.thread.wait(timeout_ms)
