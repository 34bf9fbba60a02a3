"""The session: the current model, tokenizer, device, sampling settings and latest StepResult.

A :class:`Session` lives in the GUI thread. Panels read from it and listen to its signals; they
ask for work through its methods, which hand frozen request dataclasses to the inference worker
(:mod:`explorer.inference_worker`) running in its own QThread. Moving the temperature slider re-ranks the
cached logits right here (no forward pass, ``StepResult.with_sample``: the stepper's own rule,
``model.sampling.next_token``) and then tells the worker, so the next step uses the new settings.

Every model is loaded (start-up, File → Open, the training dock) and saved by the worker, never
in this thread: :meth:`Session.load_checkpoint` returns at once, ``model_opened`` or ``error``
follows, and a file that fails to open leaves the current model working.

No torch object reaches this thread: the worker sends plain data and numpy copies (the
model's config, tokenizer and :class:`~model.positional_view.PositionalView`; StepResults), and
a training run that continues the loaded model gets its weights from the worker
(:meth:`Session.copy_weights`). Nothing here imports torch: the window paints while torch loads.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, QThread, QTimer, Signal, Slot

from explorer import inference_worker as W
from explorer import redraws
from model.ablation import NO_ABLATION, Ablation, HeadEffects
from model.branches import ROOT, Branches
from model.config import CaptureSpec, ConfigError, ModelConfig, SampleConfig
from model.positional_view import PositionalView
from model.step_result import StepResult
from model.tokenizer import MASK_CHAR, MASK_TEXT, Tokenizer, mask_text_spans

if TYPE_CHECKING:
    from explorer.training_worker import Snapshot as TrainingSnapshot

EMPTY_PROMPT_MESSAGE = "Empty prompt: generation starts from a newline"
#: what Step, Back, Run and Resample say for an encoder
ENCODER_NO_STEPS = ("An encoder fills masks, it does not generate: click a token to hide it "
                    "behind [MASK] and see what the model predicts there")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path | None
    n_params: int
    device: str
    trained: bool
    summary: dict


@dataclass(frozen=True)
class PromptCheck:
    """What is wrong with the prompt text as typed (shown under the editor)."""

    text: str
    unknown: tuple[int, ...] = ()  # positions of characters outside the vocabulary
    unknown_chars: tuple[str, ...] = ()
    empty: bool = False
    n_tokens: int = 0  # tokens the model gets (unknown characters left out)
    block_size: int = 0
    source: bool = False  # an encoder-decoder's source: never cropped, it fits or is refused

    @property
    def cropped(self) -> int:
        if self.source or not self.block_size:
            return 0
        return max(0, self.n_tokens - self.block_size)

    @property
    def too_long(self) -> bool:
        """A source that, with its end token, does not fit the block size (not sent)."""
        return self.source and bool(self.block_size) and self.n_tokens + 1 > self.block_size

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.empty and not self.cropped and not self.too_long


def source_too_long(check: PromptCheck) -> str:
    """The sentence for a source that does not fit (the model side says the same)."""
    return (f"The source has {check.n_tokens} tokens; with its end token that is more than the "
            f"model's block size {check.block_size}: shorten it.")


def _default_sample() -> SampleConfig:
    return SampleConfig()


class Session(QObject):
    """Current model + latest result; a thin, signal-emitting facade over the inference worker."""

    model_changed = Signal()
    step_ready = Signal(object)
    sample_changed = Signal(object)
    busy_changed = Signal(bool)
    message = Signal(str)
    error = Signal(str, str)
    selected_token_changed = Signal(int)
    # additions beyond the agreed API
    running_changed = Signal(bool)
    prompt_checked = Signal(object)  # PromptCheck
    device_changed = Signal(str)
    loading_changed = Signal(bool)  # True while the first model is being loaded in the background
    model_opened = Signal(object)  # Path: a file from load_checkpoint() is the current model now
    model_saved = Signal(object)  # Path written by save_checkpoint()
    model_exported = Signal(object)  # folder written by export_hf_folder()
    ablation_changed = Signal(object)  # Ablation: the heads switched off (empty: none)
    heads_ranked = Signal(object)  # HeadEffects of the current result (see rank_heads)
    branches_changed = Signal(object)  # Branches: every continuation after the prompt
    causal_view_changed = Signal(bool)  # an encoder shown under a causal mask (or not)

    def __init__(self, device: str = "auto", sample: SampleConfig | None = None,
                 parent: QObject | None = None, capture: CaptureSpec | None = None):
        super().__init__(parent)
        self.tokenizer: Tokenizer | None = None
        self.config: ModelConfig | None = None
        self.positional: PositionalView | None = None
        self.info: ModelInfo | None = None
        self.result: StepResult | None = None
        self._sample: SampleConfig | None = sample
        self.selected_token = -1
        self.device = device
        self.prompt = ""
        self.prompt_check: PromptCheck | None = None
        self.running = False
        self.busy = False
        self.loading = False
        self.run_interval_ms = 40
        self.results_received = 0
        self.ablation: Ablation = NO_ABLATION
        self.head_effects: HeadEffects | None = None  # the ranking of the current result
        self.branches = Branches()  # sent by the worker before the result it belongs to
        self.causal_view = False  # an encoder run under a decoder's causal mask, for comparison
        self._generation = 0  # results of this generation are shown
        self._issued = 0  # the newest generation handed to the worker
        self._opening: int | None = None  # a model being opened: the current one stays till then
        self._start_prompt = ""
        self._start_sample: SampleConfig | dict | None = None
        self._closed = False
        self._thread = W.InferenceThread(capture)
        self.worker = self._thread.worker
        # queued across threads; all receivers are slots of this GUI-thread object
        self.worker.result_ready.connect(self._on_result)
        self.worker.model_ready.connect(self._on_model_ready)
        self.worker.saved.connect(self._on_saved)
        self.worker.exported.connect(self._on_exported)
        self.worker.failed.connect(self._on_failed)
        self.worker.notice.connect(self._on_notice)
        self.worker.heads_ranked.connect(self._on_heads_ranked)
        self.worker.branches_changed.connect(self._on_branches)
        self.worker.device_changed.connect(self._on_device_changed)
        self.worker.busy_changed.connect(self._on_busy)
        self.worker.running_changed.connect(self._on_running)
        # after a result, once the window has painted it: tells the worker it may compute the
        # next step ahead (see watch_paints); the worker goes ahead anyway if no paint comes
        self._await_paint = False
        self._drawn_timer = QTimer(self)
        self._drawn_timer.setSingleShot(True)
        self._drawn_timer.setInterval(0)  # started while a paint is handled: fires after it
        self._drawn_timer.timeout.connect(self._on_drawn)

    # -- settings ------------------------------------------------------------------------------
    @property
    def sample(self) -> SampleConfig:
        if self._sample is None:
            self._sample = _default_sample()
        return self._sample

    def set_sample(self, sample: SampleConfig) -> None:
        """New sampling settings: re-rank the cached logits now, then tell the worker."""
        if sample == self._sample:
            return
        self._sample = sample
        if self.result is not None:
            self.result = self.result.with_sample(sample)
            self.worker.submit(W.Redistribute(sample))
        self.sample_changed.emit(sample)

    # -- models --------------------------------------------------------------------------------
    def start(self, checkpoint: str | Path | None = None, prompt: str | None = None,
              sample: dict | None = None) -> None:
        """Load the first model in the worker, which also imports torch: the GUI thread stays
        free. ``sample``: SampleConfig fields to start with (default: the current settings)."""
        if prompt is not None:
            self.prompt = prompt
        self._generation = self._next_generation()
        self._opening = None
        self._set_loading(True)
        path = Path(checkpoint) if checkpoint else None
        self._start_prompt = self.prompt
        spec = sample if sample is not None else self._sample  # None: the worker's default
        self._start_sample = spec  # also for a file opened before this model is ready
        self.worker.submit(W.LoadModel(path, self.device, self.prompt, spec, self._generation))

    def load_checkpoint(self, path: str | Path) -> None:
        """Open a model file in the worker: ``model_opened`` once it is current, or ``error``
        (the current model stays)."""
        self._open(W.LoadModel(Path(path), self.device, self.prompt, self._sample,
                               self._next_generation(), keep_current=True))

    def use_snapshot(self, snapshot: TrainingSnapshot, name: str, summary: dict) -> None:
        """Explore weights copied from a training run (built into a model in the worker)."""
        self._open(W.LoadModel(None, self.device, self.prompt, self._sample,
                               self._next_generation(), keep_current=True, snapshot=snapshot,
                               name=name, summary=summary))

    def save_checkpoint(self, path: str | Path) -> None:
        """Write the current model to ``path`` in the worker: ``model_saved`` or ``error``."""
        if self.info is None:
            self.error.emit("Nothing to save", "No model is loaded yet.")
            return
        self.worker.submit(W.SaveModel(Path(path), dict(self.info.summary)))

    def export_hf_folder(self, folder: str | Path) -> None:
        """Write the current model as a Hugging Face GPT-2 folder in the worker (torch never
        runs here): ``model_exported`` or ``error``."""
        if self.info is None:
            self.error.emit("Nothing to export", "No model is loaded yet.")
            return
        self.worker.submit(W.ExportModel(Path(folder)))

    def copy_weights(self) -> Future[TrainingSnapshot]:
        """A CPU copy of the current model's weights, made by the worker in its thread; the
        future fails if another model is current by the time the worker gets to it."""
        reply: Future[TrainingSnapshot] = Future()
        self.worker.submit(W.CopyWeights(reply, self._generation))
        return reply

    def set_device(self, name: str) -> None:
        if self.config is None:
            self.device = name
            return
        self.stop()
        self._submit(W.SetDevice(name))

    # -- prompt and stepping -------------------------------------------------------------------
    def set_prompt(self, text: str) -> PromptCheck | None:
        """Start again from ``text``; characters outside the vocabulary are left out (and reported)."""
        self.prompt = text
        if self.tokenizer is None:
            return None  # applied when the model is ready
        self.stop()
        check = self._check(text)
        self.prompt_check = check
        if check.too_long:  # said under the editor; the last source that fitted stays
            self.prompt_checked.emit(check)
            self.message.emit(source_too_long(check))
            return check
        self.selected_token = -1
        self._submit(W.SetPrompt(self._model_text(check)))
        self.prompt_checked.emit(check)
        self.selected_token_changed.emit(-1)
        if check.empty and not check.source:
            self.message.emit(EMPTY_PROMPT_MESSAGE)
        return check

    @property
    def is_encoder(self) -> bool:
        """The model is a BERT-style encoder: it fills masks instead of generating."""
        return self.config is not None and self.config.kind == "encoder"

    def _refuse_steps(self) -> bool:
        """An encoder does not step: say so (True) instead of asking the worker."""
        if self.is_encoder:
            self.message.emit(ENCODER_NO_STEPS)
            return True
        return False

    def step(self, force: int | None = None) -> None:
        if self.result is None or self._refuse_steps():
            return
        if force is not None and not 0 <= int(force) < self.tokenizer.vocab_size:
            self.message.emit(f"Token id {force} is not in the vocabulary")
            return
        self.stop()
        self._submit(W.Step(None if force is None else int(force)))

    def back(self) -> None:
        if self.result is None or self._refuse_steps():
            return
        self.stop()
        if self.result.n_generated == 0:
            self.message.emit("Nothing to undo: only the prompt is left")
            return
        self._submit(W.Back())

    def rewind_to(self, n_generated: int) -> None:
        if self.result is None or self._refuse_steps():
            return
        self.stop()
        self._submit(W.RewindTo(int(n_generated)))

    def rewind_to_token(self, i: int) -> None:
        """Make window token ``i`` (a generated one) the last token of the text."""
        r = self.result
        if r is None or not r.n_prompt <= i < r.T:
            return
        self.rewind_to(r.n_generated - (r.T - 1 - i))

    def reset(self) -> None:
        if self.result is None or self._refuse_steps():
            return
        self.stop()
        self._submit(W.Reset())

    def resample(self) -> None:
        if self.result is None or self._refuse_steps():
            return
        self.stop()
        if self.result.n_generated == 0:
            self.message.emit("Nothing to resample: step at least once")
            return
        self._submit(W.Resample())

    def switch_branch(self, node: int) -> None:
        """Make the continuation up to ``node`` (a node of ``branches``) the current text: the
        worker rewinds to where it parts from this one and replays the rest."""
        if self.result is None or not (node == ROOT or 0 <= node < len(self.branches)) \
                or self._refuse_steps():
            return
        self.stop()
        self._submit(W.SwitchBranch(int(node)))

    def run(self, n: int, interval_ms: int | None = None) -> None:
        """Generate ``n`` tokens continuously (one result per step), stoppable with stop()."""
        if self.result is None or n <= 0 or self._refuse_steps():
            return
        if interval_ms is not None:
            self.run_interval_ms = int(interval_ms)
        self.running = True
        self.running_changed.emit(True)
        self.worker.submit(W.Run(int(n), self.run_interval_ms))

    def stop(self) -> None:
        if self.running:
            self.worker.stop_run()
            self.running = False
            self.running_changed.emit(False)

    def select_token(self, i: int) -> None:
        i = int(i)
        if self.result is None or not 0 <= i < self.result.T:
            i = -1
        if i != self.selected_token:
            self.selected_token = i
            self.selected_token_changed.emit(i)

    # -- an encoder (BERT-style) ----------------------------------------------------------------
    def toggle_mask(self, i: int) -> None:
        """Hide window token ``i`` behind [MASK], or restore it, and show its prediction."""
        r = self.result
        if r is None or not self.is_encoder or not 0 <= int(i) < r.T:
            return
        if r.original_ids is not None and int(r.original_ids[i]) == self.config.mask_id:
            # [MASK] typed in the text: nothing to restore, so show its prediction instead
            self.message.emit("This [MASK] is written in the text: edit the text to change it")
            self.select_position(i)
            return
        self.select_token(int(i))
        self._submit(W.ToggleMask(int(i)))

    def select_position(self, i: int) -> None:
        """Show the encoder's prediction at window token ``i`` (no forward pass)."""
        r = self.result
        if r is None or not self.is_encoder or not 0 <= int(i) < r.T:
            return
        self.select_token(int(i))
        self._submit(W.SelectPosition(int(i)))

    def set_causal_view(self, on: bool) -> None:
        """Show the encoder's input under a decoder's causal mask (the same weights)."""
        on = bool(on)
        if on == self.causal_view:
            return
        self.causal_view = on
        self.causal_view_changed.emit(on)
        if self.result is not None and self.is_encoder:
            self._submit(W.SetCausalView(on))

    # -- ablation ------------------------------------------------------------------------------
    def set_ablation(self, ablation: Ablation) -> None:
        """Switch the heads of ``ablation`` off (it stays through stepping until changed)."""
        if ablation == self.ablation:
            return
        if self.config is not None:
            try:
                ablation.check(self.config)
            except ConfigError as e:
                self.message.emit(str(e))
                return
        self.ablation = ablation
        self.head_effects = None
        self.ablation_changed.emit(ablation)
        if self.result is not None:
            self.stop()
            self._submit(W.SetAblation(ablation))

    def _apply_start_ablation(self) -> None:
        try:
            self.ablation.check(self.config)
        except ConfigError as e:
            self.message.emit(str(e))
            self.ablation = Ablation(frozenset(), self.ablation.mode)
            self.ablation_changed.emit(self.ablation)
            return
        self._submit(W.SetAblation(self.ablation))

    def toggle_head(self, layer: int, head: int) -> None:
        """Switch one head off, or back on."""
        self.set_ablation(self.ablation.toggled(layer, head))

    def set_ablation_mode(self, mode: str) -> None:
        """What an off head outputs: "zero" or "mean" (over the context's positions)."""
        self.set_ablation(self.ablation.with_mode(mode))

    def restore_heads(self) -> None:
        """Every head back on (the mode stays for the next ablation)."""
        if self.ablation:
            self.set_ablation(Ablation(frozenset(), self.ablation.mode))

    def rank_heads(self) -> None:
        """Ask the worker for the per-head ranking of the current result (``heads_ranked``)."""
        if self.result is not None:
            self.worker.submit(W.RankHeads(self.ablation.mode))

    # -- teardown ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker thread and wait for it (call before the app exits)."""
        if self._closed:
            return
        self._closed = True
        self._drawn_timer.stop()
        self.stop()
        self._thread.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- helpers -------------------------------------------------------------------------------
    def _submit(self, req: W.Request) -> None:
        self.worker.submit(req)

    def _check(self, text: str) -> PromptCheck:
        tok = self.tokenizer
        bad = tok.unknown(text)
        if self.is_encoder:  # [MASK] written out is the mask token
            inside = {i for a, b in mask_text_spans(text) for i in range(a, b)}
            bad = [u for u in bad if u.position not in inside]
            text_in = text.replace(MASK_TEXT, MASK_CHAR)
        else:
            text_in = text
        n_tokens = len(tok.encode(text_in, errors="drop"))
        return PromptCheck(text=text, unknown=tuple(u.position for u in bad),
                           unknown_chars=tuple(sorted({u.char for u in bad})),
                           empty=n_tokens == 0, n_tokens=n_tokens,
                           block_size=self.config.block_size if self.config else 0,
                           source=self.config is not None
                           and self.config.kind == "encoder-decoder")

    def _model_text(self, check: PromptCheck) -> str:
        if not check.unknown:
            return check.text
        bad = set(check.unknown)
        return "".join(c for i, c in enumerate(check.text) if i not in bad)

    def _next_generation(self) -> int:
        self._issued += 1
        return self._issued

    def _open(self, req: W.LoadModel) -> None:
        self.stop()
        self._opening = req.generation
        self._start_prompt = self.prompt
        if req.sample is None:
            req = dataclasses.replace(req, sample=self._start_sample)
        self.worker.submit(req)

    def _set_loading(self, loading: bool) -> None:
        if loading != self.loading:
            self.loading = loading
            self.loading_changed.emit(loading)

    # -- worker slots (queued into the GUI thread) ---------------------------------------------
    @Slot(object, int, str)
    def _on_result(self, result: StepResult, generation: int, kind: str = "") -> None:
        _in_gui_thread(self)
        self.worker.ack()
        if generation != self._generation or self._closed:
            return
        self.results_received += 1
        if kind == "Redistribute" and self.result is not None:
            # set_sample() has shown this already: the worker answers for the state the session
            # holds (every earlier answer was re-ranked here to the newest settings, below), by
            # the same rule. No redraw, and no word to the worker: while a slider is dragged its
            # pass would compete with the re-ranking; it runs ahead after a pause instead.
            return
        if result.sample != self.sample:
            # the worker has not seen the newest settings yet: show them, it will catch up
            result = result.with_sample(self.sample)
        self.result = result
        self.head_effects = None  # ranked for the state before this one
        self._await_paint = True
        if self.selected_token >= result.T:
            self.selected_token = -1
            self.selected_token_changed.emit(-1)
        if result.predicted_at is not None and self.selected_token != result.predicted_at:
            # an encoder: the token whose prediction is shown is the selected one
            self.selected_token = result.predicted_at
            self.selected_token_changed.emit(result.predicted_at)
        self.step_ready.emit(result)

    def watch_paints(self, window: QObject) -> None:
        """Watch ``window`` (the top-level widget): once it has painted a new result, the
        worker computes the next step ahead. Before that the pass would compete with the redraw
        for the CPU (two cores here) and the GIL."""
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, e: QEvent) -> bool:  # noqa: N802 - Qt API
        # the first paint with no panel redraw still waiting shows the whole result
        if self._await_paint and e.type() == QEvent.Type.UpdateRequest and not redraws.pending():
            self._await_paint = False
            self._drawn_timer.start()
        return False

    @Slot()
    def _on_drawn(self) -> None:
        if not self._closed:
            self.worker.gui_drawn()

    @Slot(object, object, int)
    def _on_model_ready(self, loaded: W.Loaded, result: StepResult | None,
                        generation: int) -> None:
        _in_gui_thread(self)
        self.worker.ack()
        if generation not in (self._generation, self._opening) or self._closed:
            return
        opened = generation == self._opening
        self._generation, self._opening = generation, None
        self.tokenizer, self.config = loaded.tokenizer, loaded.config
        self.positional = loaded.positional
        self.device = loaded.device
        self.info = ModelInfo(name=loaded.name, path=loaded.path, n_params=loaded.n_params,
                              device=loaded.device, trained=loaded.trained,
                              summary=dict(loaded.summary))
        self.result = None
        self.selected_token = -1
        self.branches = Branches()  # the new model's tree follows its first result
        self.head_effects = None
        if self.causal_view:  # a new stepper starts with the model's own mask
            self.causal_view = False
            self.causal_view_changed.emit(False)
        if self.ablation and opened:  # a model opened later starts with every head on
            self.ablation = Ablation(frozenset(), self.ablation.mode)
            self.ablation_changed.emit(self.ablation)
        self._set_loading(False)
        new_sample = loaded.sample is not None and loaded.sample != self._sample
        if loaded.sample is not None:
            self._sample = loaded.sample
        self.model_changed.emit()
        if new_sample:
            self.sample_changed.emit(self._sample)
        self.device_changed.emit(self.device)
        check = self._check(self.prompt)
        self.prompt_check = check
        self.prompt_checked.emit(check)
        if opened:
            self.selected_token_changed.emit(-1)
        if result is not None:
            self._on_result(result, generation)
        if self.ablation and not opened:  # asked for before the first model was there
            self._apply_start_ablation()
        if self.prompt != self._start_prompt:  # typed while the model was loading
            self.set_prompt(self.prompt)
        if opened and loaded.path is not None:
            self.model_opened.emit(loaded.path)

    @Slot(object, int)
    def _on_branches(self, branches: Branches, generation: int) -> None:
        _in_gui_thread(self)
        if generation != self._generation or self._closed:
            return
        self.branches = branches
        self.branches_changed.emit(branches)

    @Slot(object, object, int)
    def _on_heads_ranked(self, effects: HeadEffects, result: StepResult, generation: int) -> None:
        _in_gui_thread(self)
        if generation != self._generation or self._closed or self.result is None:
            return
        if not np.array_equal(result.ids, self.result.ids) or result.planned != self.result.planned \
                or result.predicted_at != self.result.predicted_at \
                or result.causal_view != self.result.causal_view:
            return  # ranked for a state the window (or an encoder's shown position) has left
        self.head_effects = effects
        self.heads_ranked.emit(effects)

    @Slot(object, int)
    def _on_saved(self, path: Path, generation: int) -> None:
        if self._closed:
            return
        if self.info is not None and generation == self._generation:
            self.info = dataclasses.replace(self.info, path=path, name=path.stem)
        self.message.emit(f"Saved {path}")
        self.model_saved.emit(path)

    @Slot(object, int)
    def _on_exported(self, folder: Path, generation: int) -> None:
        if self._closed:
            return
        self.message.emit(f"Exported {folder} (transformers' GPT2LMHeadModel.from_pretrained "
                          "opens it)")
        self.model_exported.emit(folder)

    @Slot(str, str, str, int)
    def _on_failed(self, kind: str, title: str, text: str, generation: int) -> None:
        if self._closed:
            return
        if kind == "LoadModel":
            self._set_loading(False)
        if kind == "OpenModel" and generation == self._opening:
            self._opening = None
        if self.running:
            self.running = False
            self.running_changed.emit(False)
        if kind in ("Back", "RewindTo", "Resample", "Reset", "SwitchBranch", "ToggleMask",
                    "SelectPosition"):
            self.message.emit(text)
        else:
            self.error.emit(title, text)

    @Slot(str, int)
    def _on_notice(self, text: str, generation: int) -> None:
        if not self._closed:
            self.message.emit(text)

    @Slot(str, int)
    def _on_device_changed(self, device: str, generation: int) -> None:
        if generation != self._generation or self._closed:
            return
        self.device = device
        if self.info is not None:
            self.info = dataclasses.replace(self.info, device=device)
        self.device_changed.emit(device)

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        if busy != self.busy and not self._closed:
            self.busy = busy
            self.busy_changed.emit(busy)

    @Slot(bool, int)
    def _on_running(self, running: bool, generation: int) -> None:
        if self._closed or generation != self._generation:
            return
        if not running and self.running:
            self.running = False
            self.running_changed.emit(False)


def _in_gui_thread(obj: QObject) -> None:
    """Worker signals must reach the session's slots queued, in the GUI thread. With PySide6 6.x a
    receiver that is not a @Slot method runs in the emitting (worker) thread: fail loudly."""
    if QThread.currentThread() is not obj.thread():
        raise RuntimeError("a worker signal reached the Session outside the GUI thread; connect "
                           "worker signals only to @Slot methods of GUI-thread objects")

