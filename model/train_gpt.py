"""Training a GPT on a corpus: the high-level entry used by the command line and the GUI.

:func:`train_gpt` builds (or continues) a GPT, wires the probes (sample text, attention of the
probe prompt) and saves checkpoints with the optimizer state beside them. The loop itself is
:class:`model.trainer.Trainer`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .config import ModelConfig, TrainConfig
from .devices import resolve_device
from .distributed import DistContext
from .optim import LR_SCHEDULES, LRSchedule, apply_optimizer_state
from .trainer import (
    Callbacks,
    TrainControl,
    Trainer,
    TrainingDiverged,
    TrainResult,
)


# -- evaluation over a whole split -------------------------------------------------------------
def evaluate_split(model: torch.nn.Module, corpus, split: str, block_size: int,
                   batch_size: int = 32) -> tuple[float, int]:
    """Mean loss over every token of a split (non-overlapping windows) and the token count."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    try:
        with torch.no_grad():
            for x, y in corpus.iter_windows(split, block_size, batch_size, device=device):
                _, loss = model(x, y)
                total += loss.double() * y.numel()
                n += y.numel()
    finally:
        model.train(was_training)
    return (total.item() / n if n else float("nan")), n


def predicted_characters(tokenizer, ids) -> int:
    """How many characters the tokens :func:`evaluate_split` predicts (all of a split's ids but
    the first) decode to.

    Loss per token × tokens / characters is the loss per character: the figure that compares
    models with different tokenizers (a BPE token covers several characters)."""
    return len(tokenizer.decode(int(i) for i in ids[1:]))


# -- high level: a GPT on a corpus -------------------------------------------------------------
def _probe_ids(tokenizer, prompt: str, block_size: int, message) -> list[int]:
    ids = tokenizer.encode(prompt, errors="drop")
    if tokenizer.unknown(prompt):
        message("the probe prompt has characters the vocabulary lacks; they are left out")
    if not ids:
        ids = tokenizer.start_ids()
    return ids[-block_size:]


def _attention_of(model, ids: list[int]) -> np.ndarray:
    from .capture import capture
    from .config import CaptureSpec

    spec = dataclasses.replace(CaptureSpec.nothing(), attention=True)
    idx = torch.tensor([ids], dtype=torch.long, device=model.device)
    with capture(model, spec) as rec:
        model(idx)
    return rec.stacked_probs()[:, 0].float().cpu().numpy()  # (L, H, T, T)


@contextlib.contextmanager
def _stop_on_sigint(control: TrainControl, message):
    """In the main thread, a first Ctrl+C stops training cleanly (checkpoint included); a
    second one raises KeyboardInterrupt as usual."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        message("stopping after this step and saving (Ctrl+C again to quit without saving)")
        control.stop()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def train_gpt(corpus, model_cfg: ModelConfig | None, train_cfg: TrainConfig, out_path,
              callbacks: Callbacks | None = None, resume_from=None, model=None, *,
              tokenizer=None, control: TrainControl | None = None,
              dist: DistContext | None = None, lr_schedule: str | None = None,
              save_optimizer: bool = True) -> TrainResult:
    """Train a GPT on ``corpus`` and save it to ``out_path`` (+ the optimizer state beside it,
    ``<out>.optim.safetensors``, unless ``save_optimizer`` is False).

    * fresh: ``model_cfg`` (None = defaults) with ``vocab_size`` taken from the corpus;
    * ``resume_from``: a checkpoint path; its weights, tokenizer, step count and optimizer state
      are continued up to ``train_cfg.steps`` in all. ``lr_schedule="continue"``: the learning
      rate carries on along the saved run's cosine from where it stopped (no jump back up; see
      :class:`model.optim.LRSchedule`); ``"restart"``: warm-up and cosine anew over the steps
      left; None: ``train_cfg``'s warm-up and cosine over all its steps, picked up at the
      resumed step (when ``steps`` grew, the rate rises to where that longer cosine is);
    * ``model``: a GPT in memory (``tokenizer``: its tokenizer, default the corpus's).

    Divergence does not raise here: the result has ``ok == False`` and the reason.
    ``control`` (a :class:`TrainControl`) lets another thread pause, resume or stop.
    ``dist``: this process is one rank of a torchrun job (:mod:`model.distributed`); every rank
    calls this, ``train_cfg.batch_size`` is the global batch and only rank 0 writes.
    """
    from . import checkpoints as ckpt
    from .checkpoints import CheckpointError, load_checkpoint, now_iso, save_checkpoint
    from .config import SampleConfig
    from .corpora import Corpus, CorpusError
    from .transformer import GPT

    if lr_schedule is not None and lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    callbacks = callbacks or Callbacks()
    control = control or TrainControl()
    message = callbacks.on_message
    out_path = Path(out_path)
    ckpt.check_writable(out_path)  # now, not after the last step: no work is lost to it
    device = resolve_device(train_cfg.device)
    dist = dist or distributed.SINGLE
    # sequences per forward pass on this rank (checked before any work)
    micro = distributed.micro_batch_size(train_cfg.batch_size, dist.world_size,
                                         train_cfg.grad_accum)
    torch.manual_seed(train_cfg.seed)
    start_step = 0
    optimizer_state = None
    trainer_state: dict = {}
    previous: dict = {}

    if resume_from is not None:
        ck = load_checkpoint(resume_from, device=device)
        model, tokenizer, previous = ck.model, ck.tokenizer, ck.summary
        if model_cfg is not None and dataclasses.replace(
                model_cfg, vocab_size=ck.config.vocab_size) != ck.config:
            message("resuming: the model shape comes from the checkpoint, not the given config")
        start_step = ck.steps
        opath = ckpt.optimizer_path(resume_from)
        if opath.exists():
            try:
                ostate = ckpt.load_optimizer_state(opath)
            except CheckpointError as e:
                message(f"the optimizer state cannot be used ({e}); the optimizer starts fresh")
            else:
                if ostate.id and ck.id and ostate.id != ck.id:
                    message(f"{opath.name} belongs to another save of the model; the optimizer "
                            "starts fresh")
                else:
                    optimizer_state = ostate.state_dict
                    trainer_state = ostate.trainer_state
                    start_step = int(trainer_state.get("step", start_step))
        else:
            message(f"no optimizer state beside the checkpoint ({opath.name}); the optimizer "
                    "starts fresh")
    elif model is None:
        cfg = model_cfg or ModelConfig()
        cfg = dataclasses.replace(cfg, vocab_size=corpus.tokenizer.vocab_size)
        _check_memory(cfg, train_cfg.batch_size, device)
        model = GPT(cfg)
        tokenizer = corpus.tokenizer
    else:
        tokenizer = tokenizer or corpus.tokenizer
        if model.config.vocab_size != tokenizer.vocab_size:
            raise CorpusError(
                f"{corpus.name}: the model has {model.config.vocab_size} tokens but the "
                f"tokenizer has {tokenizer.vocab_size}; pass the model's own tokenizer")

    # the corpus must be written in the model's vocabulary, with the same ids
    if corpus.tokenizer != tokenizer:
        missing = sorted(set(corpus.text) - set(tokenizer.chars))
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10]) + (" …" if len(missing) > 10 else "")
            raise CorpusError(
                f"{corpus.name}: the corpus has {len(missing)} character(s) the model's "
                f"vocabulary lacks ({shown}); a model can only continue training on text made "
                "of its own characters")
        val_fraction = len(corpus.val) / max(corpus.n_tokens, 1)
        task = corpus.task
        corpus = Corpus.from_text(corpus.text, corpus.name, tokenizer=tokenizer,
                                  val_fraction=val_fraction)
        corpus.task = task
    block = model.config.block_size
    corpus.check_block_size(block)
    model.to(device)

    # batches: one generator for training per rank (seed + rank; saved for exact resumes),
    # fixed evaluation batches
    gen = torch.Generator().manual_seed(train_cfg.seed + dist.rank)
    saved_rng = _saved_rng(trainer_state, dist, message)
    fresh_seed = train_cfg.seed + start_step + 1_000_003 * dist.rank
    if saved_rng is not None:
        try:
            gen.set_state(ckpt.decode_bytes(saved_rng))
        except (RuntimeError, ValueError, TypeError):
            message("the saved batch order cannot be restored; batches are drawn afresh")
            gen.manual_seed(fresh_seed)
    elif "rng" in trainer_state:  # saved by a run with another number of ranks
        gen.manual_seed(fresh_seed)
    B = train_cfg.batch_size

    def get_batch(split: str):
        return corpus.get_batch(split, micro, block, generator=gen, device=device)

    eval_gen = torch.Generator().manual_seed(train_cfg.seed + 1)
    fixed = {s: [corpus.get_batch(s, B, block, generator=eval_gen, device=device)
                 for _ in range(train_cfg.eval_iters)] for s in ("train", "val")}

    def eval_get_batch(split: str, i: int):
        return fixed[split][i]

    probe = _probe_ids(tokenizer, train_cfg.probe_prompt, block, message)
    probe_text = tokenizer.decode(probe)
    sample_cfg = SampleConfig(temperature=0.8, seed=train_cfg.seed)

    def sample_fn(m) -> str:
        from .stepper import generate_text
        return probe_text + generate_text(m, tokenizer, probe_text, train_cfg.sample_tokens,
                                          sample_cfg)

    def attention_fn(m) -> np.ndarray:
        return _attention_of(m, probe)

    elapsed_before = float(previous.get("elapsed_s", 0.0) or 0.0)
    trainer: Trainer | None = None
    schedule = _schedule(train_cfg, start_step, previous, lr_schedule if resume_from else None)

    def checkpoint_fn(step: int, m, optimizer) -> Path:
        summary = {
            "steps": step,
            **trainer.loss_summary(),
            "corpus": corpus.name,
            "corpus_tokens": corpus.n_tokens,
            "date": now_iso(),
            "train_config": train_cfg.to_dict(),
            "elapsed_s": round(elapsed_before + trainer.active_elapsed(), 2),
            "device": str(device),
            "n_params": sum(p.numel() for p in m.parameters()),
            "resumed_from_step": trainer.start_step if trainer.start_step else None,
            # how far along its cosine the learning rate is: what --lr-schedule continue needs
            "lr_progress": schedule.progress(step),
        }
        states = distributed.gather_states(dist, gen.get_state())  # every rank takes part
        if not dist.is_main:
            return None
        state = {"step": step, "rng": _encode_gen(gen)}
        if dist.is_distributed:
            summary["world_size"] = dist.world_size
            state["world_size"] = dist.world_size
            state["rngs"] = [ckpt.encode_bytes(s) for s in states]
        return save_checkpoint(out_path, m, tokenizer, summary,
                               optimizer=optimizer if save_optimizer else None,
                               trainer_state=state)

    if start_step >= train_cfg.steps:
        message(f"the model has already been trained for {start_step} steps; raise steps "
                "above that to continue")
    trainer = Trainer(model, train_cfg, get_batch, callbacks, sample_fn=sample_fn,
                      attention_fn=attention_fn, checkpoint_fn=checkpoint_fn,
                      start_step=start_step, optimizer_state=None, eval_get_batch=eval_get_batch,
                      device=device, control=control, dist=dist, lr_schedule=schedule)
    if optimizer_state is not None:
        try:
            apply_optimizer_state(trainer.optimizer, optimizer_state)
        except (ValueError, KeyError, RuntimeError) as e:
            message(f"the saved optimizer state does not fit this model ({e}); the optimizer "
                    "starts fresh")
    message(f"training {sum(p.numel() for p in model.parameters()):,} parameters on {device} "
            f"from step {start_step} to {train_cfg.steps}")
    if dist.is_distributed or train_cfg.grad_accum > 1:
        message(f"global batch {B} = {dist.world_size} process(es) × {train_cfg.grad_accum} "
                f"accumulation step(s) × {micro} sequences")
    with _stop_on_sigint(control, message):
        try:
            return trainer.run()
        except TrainingDiverged as e:
            return e.result


def _saved_rng(trainer_state: dict, dist: DistContext, message) -> str | None:
    """This rank's saved batch-generator state, when the run that saved it had as many ranks."""
    saved_world = int(trainer_state.get("world_size", 1))
    if saved_world == dist.world_size:
        rngs = trainer_state.get("rngs")
        if isinstance(rngs, list) and len(rngs) == dist.world_size:
            return rngs[dist.rank]
        return trainer_state.get("rng") if dist.world_size == 1 else None
    if "rng" in trainer_state:
        message(f"the checkpoint was trained on {saved_world} process(es), this run has "
                f"{dist.world_size}: batches are drawn afresh (the model and optimizer continue "
                "exactly)")
    return None


def _schedule(cfg: TrainConfig, start_step: int, previous: dict,
              resume: str | None) -> LRSchedule:
    """The learning-rate schedule of this run (``resume`` None: ``cfg``'s own, from step 0)."""
    if resume is None or start_step == 0:
        return LRSchedule.of(cfg)
    if resume == "restart":
        return LRSchedule.of(cfg, origin=start_step)
    progress = previous.get("lr_progress", "unknown")
    if progress == "unknown":  # saved before lr_progress was recorded: its own plain schedule
        saved = previous.get("train_config") or {}
        try:
            progress = LRSchedule(1.0, 0.0, int(saved["warmup_steps"]),
                                  int(saved["steps"])).progress(start_step)
        except (KeyError, TypeError, ValueError):
            progress = None
    if not isinstance(progress, (int, float)) or not 0 <= progress <= 1:
        return LRSchedule.of(cfg)  # the saved run was still warming up: carry on as configured
    return LRSchedule.of(cfg, start_step=start_step, start_progress=float(progress))


def _check_memory(cfg: ModelConfig, batch: int, device: torch.device) -> None:
    """Refuse, with the estimate, a model that would not fit before allocating any of it."""
    from .memory import check_fits, fmt_bytes, training_memory

    est = training_memory(cfg, batch)
    check_fits(est["total"], str(device),
               f"training this model ({cfg.n_params():,} parameters: weights, gradients and "
               f"optimizer {fmt_bytes(est['params'])}; activations for batch {batch} x block "
               f"{cfg.block_size} {fmt_bytes(est['activations'])})")


def _encode_gen(gen: torch.Generator) -> str:
    from .checkpoints import encode_bytes
    return encode_bytes(gen.get_state())

