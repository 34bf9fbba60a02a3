"""The model-agnostic training loop (like minGPT's trainer: it knows nothing about GPT).

:class:`Trainer` needs only ``model(x, y) -> (logits, loss)`` and runs in the caller's thread
(``x`` may be a tuple of inputs, e.g. an encoder-decoder's source and target: then the model is
called as ``model(*x, y)``);
another thread may :meth:`~Trainer.pause`, :meth:`~Trainer.resume` or :meth:`~Trainer.stop` it
through a shared :class:`TrainControl`. Progress goes to a :class:`Callbacks` object: step
metrics every ``log_interval`` steps, the validation loss every ``eval_interval``, a sample text
every ``sample_interval`` and the probe prompt's attention every ``capture_interval``.

A loss (or gradient) that stops being a finite number ends training with
:class:`TrainingDiverged`; no checkpoint is written after that, so the last good one survives.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .config import TrainConfig
from .devices import resolve_device
from .distributed import DistContext
from .optim import apply_optimizer_state, lr_at, make_optimizer, total_norm
from .speedups import clip_grad_norm_, default_amp

# -- results and callbacks ---------------------------------------------------------------------


@dataclass(frozen=True)
class StepMetrics:
    step: int  # optimizer steps done so far
    loss: float  # mean training loss since the previous report
    lr: float  # learning rate of this step
    tokens_per_s: float
    elapsed: float  # seconds of training in this run (pauses not counted)
    grad_norm: float  # gradient norm of this step before clipping


@dataclass(frozen=True)
class EvalMetrics:
    step: int
    train_loss: float
    val_loss: float | None


@dataclass(frozen=True)
class TrainResult:
    step: int
    stopped: bool  # True when stop() (or divergence) ended training before cfg.steps
    reason: str  # "finished", "stopped" or the divergence message
    train_loss: float
    val_loss: float | None
    elapsed: float = 0.0
    diverged: bool = False
    checkpoint: Path | None = None  # the last checkpoint written, if any

    @property
    def ok(self) -> bool:
        return not self.diverged


class TrainingDiverged(RuntimeError):
    """The loss or the gradient stopped being a finite number."""

    def __init__(self, message: str, step: int = 0, result: TrainResult | None = None):
        super().__init__(message)
        self.reason = message
        self.step = step
        self.result = result


class Callbacks:
    """Override what you need; every method is a no-op by default. They run in the training
    thread, so a GUI should hand the data over to its own thread (e.g. with a Qt signal)."""

    def on_start(self, trainer: Trainer) -> None:
        pass

    def on_step(self, metrics: StepMetrics) -> None:
        pass

    def on_eval(self, metrics: EvalMetrics) -> None:
        pass

    def on_sample(self, step: int, text: str) -> None:
        pass

    def on_attention(self, step: int, attention: np.ndarray) -> None:  # (L, H, T, T or S)
        pass

    def on_score(self, step: int, scores: dict[str, float]) -> None:
        """A score of held-out data measured with a sample (e.g. ``{"exact_match": 0.93}``;
        the encoder kinds report one, see :mod:`model.train_encoders`)."""

    def on_checkpoint(self, step: int, path) -> None:
        pass

    def on_message(self, text: str) -> None:
        pass


class TrainControl:
    """Pause/resume/stop flags shared between the training thread and any other thread, and
    calls that other threads hand to the training thread (the only one that touches the model):
    it runs them between two steps, or at once while it sits in a pause."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._blocked = threading.Event()  # set while the loop sits in a pause
        self._wake = threading.Condition()  # guards _calls; a paused loop waits on it
        self._calls: list[Callable[[], None]] = []

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()
        self._notify()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can finish
        self._notify()

    def call_between_steps(self, fn: Callable[[], None]) -> None:
        """Have the training thread call ``fn`` after the step in progress (a paused loop
        wakes up for it and stays paused). Calls still queued when the run ends are dropped."""
        with self._wake:
            self._calls.append(fn)
            self._wake.notify_all()

    def run_calls(self) -> None:
        """Call what :meth:`call_between_steps` queued (in the training thread)."""
        with self._wake:
            calls, self._calls = self._calls, []
        for fn in calls:
            fn()

    def wait_while_paused(self) -> None:
        """Block the training thread (no spinning) until resumed or stopped, serving calls."""
        while True:
            self.run_calls()
            with self._wake:
                if self._running.is_set():
                    return
                if not self._calls:
                    self._wake.wait()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    @property
    def is_paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait_until_paused(self, timeout: float | None = None) -> bool:
        """Block until the loop really sits in its pause (True) or the timeout passes."""
        return self._blocked.wait(timeout)


def _nonfinite_word(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


# -- the loop ----------------------------------------------------------------------------------
class Trainer:
    """One training run. ``get_batch(split)`` returns ``(x, y)``; ``split`` is "train" or
    "val". ``eval_get_batch(split, i)`` (optional) gives the i-th evaluation batch, e.g. a fixed
    set so successive validation losses are comparable; by default ``get_batch`` is used.

    ``sample_fn(model) -> str``, ``attention_fn(model) -> (L, H, T, T)`` and
    ``checkpoint_fn(step, model, optimizer) -> path`` are optional; the model is in eval mode
    and gradients are off while the probes run. ``optimizer_state`` (a state dict) and
    ``start_step`` continue an earlier run: the schedule goes on from ``start_step``
    (``lr_schedule``, a step -> learning rate callable, replaces ``cfg``'s own).
    ``device`` defaults to ``resolve_device(cfg.device)``; ``control`` is a shared
    :class:`TrainControl` (one is made if not given); ``amp`` switches bf16 autocast on (CUDA
    or CPU); None (default): ``cfg.amp`` ("on"/"off"), and for "auto" on for CPUs with native
    bf16 (:func:`model.speedups.default_amp`), off otherwise.

    ``get_batch("train")`` gives one *micro*-batch: each optimizer step adds up the gradients of
    ``cfg.grad_accum`` of them. ``dist`` (a :class:`model.distributed.DistContext`) trains one
    rank of several: the model is wrapped in DDP, gradients are averaged over the ranks (only on
    the last micro-step, ``no_sync`` before), the ranks agree on stopping after the same step,
    and only rank 0 evaluates, samples and records attention (``checkpoint_fn`` runs on every
    rank, so it can exchange what it needs; rank 0 writes).
    The model is left in eval mode when ``run`` returns.
    """

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig,
                 get_batch: Callable[[str], tuple], callbacks: Callbacks | None = None, *,
                 sample_fn: Callable | None = None, attention_fn: Callable | None = None,
                 checkpoint_fn: Callable | None = None, start_step: int = 0,
                 optimizer_state: dict | None = None,
                 eval_get_batch: Callable[[str, int], tuple] | None = None,
                 device: str | torch.device | None = None, control: TrainControl | None = None,
                 amp: bool | None = None, dist: DistContext | None = None,
                 lr_schedule: Callable[[int], float] | None = None):
        self.cfg = cfg
        self.dist = dist or distributed.SINGLE
        self.is_main = self.dist.is_main
        # step -> learning rate; a resumed run may continue or restart its schedule (model.optim)
        self.lr_schedule = lr_schedule or (lambda step: lr_at(step, cfg))
        self.callbacks = callbacks or Callbacks()
        self.get_batch = get_batch
        self.eval_get_batch = eval_get_batch or (lambda split, i: get_batch(split))
        self.sample_fn = sample_fn
        self.attention_fn = attention_fn
        self.checkpoint_fn = checkpoint_fn
        self.control = control or TrainControl()
        if device is None:
            device = resolve_device(cfg.device)
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.start_step = int(start_step)
        self.step = self.start_step
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        if optimizer_state is not None:
            apply_optimizer_state(self.optimizer, optimizer_state)
        self._params = [p for g in self.optimizer.param_groups for p in g["params"]]
        # bf16 autocast: off by default on a GPU, since for the small models of this project it
        # costs more in casts than it saves (measured on an H100: 17 vs 14 ms per step); on by
        # default on CPUs with native bf16 dot products, where the matrix products run ~2x
        # faster (attention stays fp32, see model.speedups; ~1.5x per step for nanoGPT's CPU
        # configuration, benchmarks/bench_model.py)
        if amp is None:
            amp = {"on": True, "off": False}.get(cfg.amp)
        if amp is None:
            amp = self.device.type == "cpu" and default_amp(self.device)
        self.amp = bool(amp) and (self.device.type == "cpu" or (
            self.device.type == "cuda" and torch.cuda.is_bf16_supported()))
        self._fwd = self.model
        self._compiled = False
        if cfg.compile:
            try:
                self._fwd = torch.compile(self.model)
                self._compiled = True
            except Exception as e:  # no compiler on this platform
                self._message(f"torch.compile is not available here ({e}); training without it")
        # training passes go through DDP (it averages the gradients); evaluation and probes,
        # which only rank 0 runs, use the model itself
        self._ddp = (distributed.wrap(self._fwd, self.dist, self.device)
                     if self.dist.is_distributed else None)
        # CPU: checking the loss every step is free; on an accelerator it would force a sync
        # each step, so there the check happens when the loss is reported anyway (and always
        # before a checkpoint)
        self._check_every_step = self.device.type == "cpu"
        self._pending: torch.Tensor | None = None  # loss + grad norm sums not yet checked
        self._pending_since = self.step
        self.last_eval: EvalMetrics | None = None
        self.last_loss: float | None = None
        self.last_checkpoint: Path | None = None
        self.elapsed = 0.0  # seconds of training in this run, pauses not counted
        self._active_since: float | None = None
        self.tokens_per_s = 0.0

    # -- control (thread-safe) -----------------------------------------------------------------
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.stop()

    @property
    def is_paused(self) -> bool:
        return self.control.is_paused

    def wait_until_paused(self, timeout: float | None = None) -> bool:
        return self.control.wait_until_paused(timeout)

    # -- helpers -------------------------------------------------------------------------------
    def loss_summary(self) -> dict:
        """The losses a checkpoint's summary records: the last evaluation's (the training loss
        of the last step when there was none yet) and the last step's."""
        ev = self.last_eval
        return {
            "train_loss": ev.train_loss if ev is not None else self.last_loss,
            "val_loss": ev.val_loss if ev is not None else None,
            "eval_step": ev.step if ev is not None else None,
            "last_loss": self.last_loss,
        }

    def active_elapsed(self) -> float:
        """Seconds of training so far in this run (pauses not counted)."""
        if self._active_since is None:
            return self.elapsed
        return self.elapsed + time.perf_counter() - self._active_since

    def _message(self, text: str) -> None:
        self.callbacks.on_message(text)

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, x):
        if isinstance(x, tuple):
            return tuple(self._to_device(t) for t in x)
        return x if x.device == self.device else x.to(self.device, non_blocking=True)

    def _call(self, x, y):
        return self._fwd(*x, y) if isinstance(x, tuple) else self._fwd(x, y)

    def _forward(self, x, y):
        with self._autocast():
            try:
                return self._call(x, y)
            except Exception as e:
                if not self._compiled:
                    raise
                self._message(f"torch.compile failed ({type(e).__name__}: {e}); "
                              "training without it")
                self._fwd = self.model
                self._compiled = False
                return self._call(x, y)

    def _train_pass(self, x, y, last: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch; the loss (of this micro-batch) is returned.
        With DDP, gradients are exchanged only on the ``last`` micro-step of an optimizer
        step."""
        k = self.cfg.grad_accum
        if self._ddp is None:
            _, loss = self._forward(x, y)
            (loss / k if k > 1 else loss).backward()
            return loss
        with contextlib.nullcontext() if last else self._ddp.no_sync():
            with self._autocast():
                _, loss = self._ddp(*x, y) if isinstance(x, tuple) else self._ddp(x, y)
            (loss / k if k > 1 else loss).backward()
        return loss

    def _check_finite(self) -> None:
        """Raise TrainingDiverged if a loss or gradient since the last check was not finite."""
        if self._pending is None:
            return
        loss_v, norm_v = self._pending.tolist()
        pending_since, self._pending = self._pending_since, None
        self._pending_since = self.step
        if math.isfinite(loss_v) and math.isfinite(norm_v):
            return
        what = "loss" if not math.isfinite(loss_v) else "gradient norm"
        value = _nonfinite_word(loss_v if what == "loss" else norm_v)
        if self.step - pending_since <= 1:
            where = f"at step {self.step}"
        else:
            where = f"between steps {pending_since + 1} and {self.step}"
        kept = (f"The last good checkpoint (step {self._last_ckpt_step}) was kept unchanged."
                if self._saved_any else
                "No checkpoint was written in this run, so an existing file is unchanged.")
        msg = (f"Training diverged {where}: the {what} became {value} (not a finite number). "
               f"{kept} Try a lower learning rate (lr={self.cfg.lr:g}), a longer warm-up or "
               "gradient clipping (grad_clip).")
        raise TrainingDiverged(msg, step=self.step)

    def _params_finite(self) -> bool:
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in self._params)

    @contextlib.contextmanager
    def _probing(self):
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was_training)

    def evaluate(self) -> EvalMetrics:
        """Mean loss over ``eval_iters`` batches of each split (no gradients, eval mode)."""
        if not self.is_main:
            raise RuntimeError("only rank 0 evaluates")
        out: dict[str, float | None] = {}
        with self._probing():
            for split in ("train", "val"):
                total = torch.zeros((), device=self.device)
                for i in range(self.cfg.eval_iters):
                    x, y = self.eval_get_batch(split, i)
                    _, loss = self._forward(self._to_device(x), self._to_device(y))
                    total += loss.detach().float()
                out[split] = total.item() / self.cfg.eval_iters
        m = EvalMetrics(step=self.step, train_loss=float(out["train"]),
                        val_loss=out["val"])
        self.last_eval = m
        self.callbacks.on_eval(m)
        return m

    def _evaluate_on_main(self) -> None:
        if self.is_main:
            self.evaluate()

    def _sample(self) -> None:
        if self.sample_fn is None or self.cfg.sample_tokens == 0 or not self.is_main:
            return
        with self._probing():
            text = self.sample_fn(self.model)
        self.callbacks.on_sample(self.step, text)

    def _attention(self) -> None:
        if self.attention_fn is None or not self.is_main:
            return
        with self._probing():
            att = self.attention_fn(self.model)
        self.callbacks.on_attention(self.step, att)

    def _checkpoint(self) -> None:
        if self.checkpoint_fn is None:
            return
        self._check_finite()
        if not self._params_finite():
            raise TrainingDiverged(
                f"Training diverged at step {self.step}: the weights hold NaN or infinite "
                "values, so no checkpoint was written (the last good one was kept).",
                step=self.step)
        path = self.checkpoint_fn(self.step, self.model, self.optimizer)
        self._last_ckpt_step = self.step
        self._saved_any = True
        if path is not None:
            self.last_checkpoint = Path(path)
        self.callbacks.on_checkpoint(self.step, path)

    def _wait_if_paused(self) -> None:
        """Block (no spinning) while paused."""
        c = self.control
        if c._running.is_set():
            return
        self.elapsed = self.active_elapsed()
        self._active_since = None
        self._message(f"paused at step {self.step}")
        c._blocked.set()
        try:
            c.wait_while_paused()
        finally:
            c._blocked.clear()
        if not c.stop_requested:
            self._message(f"resumed at step {self.step}")
        self._active_since = time.perf_counter()

    def _result(self, stopped: bool, reason: str, diverged: bool = False) -> TrainResult:
        ev = self.last_eval
        train_loss = ev.train_loss if ev is not None else self.last_loss
        return TrainResult(
            step=self.step, stopped=stopped, reason=reason,
            train_loss=float("nan") if train_loss is None else float(train_loss),
            val_loss=ev.val_loss if ev is not None else None, elapsed=self.elapsed,
            diverged=diverged, checkpoint=self.last_checkpoint)

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train until ``cfg.steps`` or :meth:`stop`. Raises :class:`TrainingDiverged` (with
        ``.result``) when the loss stops being finite; nothing is saved after that."""
        try:
            return self._run()
        except TrainingDiverged as e:
            self.model.eval()
            self._pending = None
            e.result = self._result(True, str(e), diverged=True)
            self._message(str(e))
            raise

    def _run(self) -> TrainResult:
        cfg = self.cfg
        self._last_ckpt_step = self.start_step
        self._saved_any = False
        # dropout: same seed, same run; each rank its own masks
        torch.manual_seed(cfg.seed + self.start_step + 1_000_003 * self.dist.rank)
        self.callbacks.on_start(self)
        self.model.train()
        # where the run starts: loss, sample and attention of the untrained (or resumed) model
        self._evaluate_on_main()
        self._sample()
        self._attention()
        self.elapsed = 0.0
        self._active_since = last_log_t = time.perf_counter()
        log_tokens = 0
        loss_sum = None
        n_loss = 0
        last_eval_step = last_sample_step = last_attn_step = self.step
        stopped = False
        while self.step < cfg.steps:
            if distributed.any_rank(self.dist, self.control.stop_requested):
                stopped = True
                break
            if not self.control._running.is_set():
                self._wait_if_paused()
                last_log_t = time.perf_counter()
                log_tokens = 0
                continue  # re-check stop
            lr = self.lr_schedule(self.step)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            loss = torch.zeros((), device=self.device)
            for micro in range(cfg.grad_accum):
                x, y = self.get_batch("train")  # (B, T) each
                x, y = self._to_device(x), self._to_device(y)
                loss = loss + self._train_pass(x, y, last=micro == cfg.grad_accum - 1).detach()
                # the predicted tokens (x may be a tuple of inputs); every rank does the same
                log_tokens += y.numel() * self.dist.world_size
            if cfg.grad_accum > 1:
                loss = loss / cfg.grad_accum
            log_now = (self.step + 1) % cfg.log_interval == 0 or self.step + 1 == cfg.steps
            if cfg.grad_clip > 0:
                norm = clip_grad_norm_(self._params, cfg.grad_clip)  # foreach kernels
            elif log_now or self._check_every_step:
                norm = total_norm(self._params)
            else:
                norm = None
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1

            lossd = loss.detach().float()
            probe = torch.stack([lossd, norm.detach().float().to(lossd.device)
                                 if norm is not None else torch.zeros_like(lossd)])
            self._pending = probe if self._pending is None else self._pending + probe
            loss_sum = lossd if loss_sum is None else loss_sum + lossd
            n_loss += 1
            if self._check_every_step or log_now:
                self._check_finite()
            if log_now:
                mean_loss = loss_sum.item() / n_loss
                now = time.perf_counter()
                self.tokens_per_s = log_tokens / max(now - last_log_t, 1e-9)
                self.last_loss = mean_loss
                self.callbacks.on_step(StepMetrics(
                    step=self.step, loss=mean_loss, lr=lr, tokens_per_s=self.tokens_per_s,
                    elapsed=self.active_elapsed(),
                    grad_norm=float(norm) if norm is not None else float("nan")))
                last_log_t, log_tokens, loss_sum, n_loss = now, 0, None, 0
            self.control.run_calls()
            t_probe = time.perf_counter()
            if self.step % cfg.eval_interval == 0:
                self._check_finite()
                self._evaluate_on_main()
                last_eval_step = self.step
            if self.step % cfg.sample_interval == 0:
                self._check_finite()
                self._sample()
                last_sample_step = self.step
            if self.step % cfg.capture_interval == 0:
                self._check_finite()
                self._attention()
                last_attn_step = self.step
            if cfg.checkpoint_interval and self.step % cfg.checkpoint_interval == 0 \
                    and self.step < cfg.steps:
                self._checkpoint()
            if self.step in (last_eval_step, last_sample_step, last_attn_step):
                last_log_t += time.perf_counter() - t_probe  # tokens/s counts training only
        self.elapsed = self.active_elapsed()
        self._active_since = None
        self._check_finite()
        if loss_sum is not None:
            self.last_loss = loss_sum.item() / n_loss
        reason = "stopped" if stopped else "finished"
        self._message(f"{reason} at step {self.step}")
        if last_eval_step != self.step or self.last_eval is None:
            self._evaluate_on_main()
        if last_sample_step != self.step:
            self._sample()
        if last_attn_step != self.step:
            self._attention()
        self._checkpoint()
        self.model.eval()
        return self._result(stopped, reason)


__all__ = ["StepMetrics", "EvalMetrics", "TrainResult", "TrainingDiverged", "Callbacks",
           "TrainControl", "Trainer"]
