"""Planning a training run: every check between the form and Start, without any widget.

Everything a student can get wrong is explained before Start is allowed: an invalid model or
training configuration (the :class:`model.config.ConfigError` message), a corpus that is empty,
binary or too short for the block size, text the loaded model's vocabulary cannot write, and a
configuration that would not fit in memory (with the estimate). :class:`Planner` turns the
form's :class:`FormValues` into a :class:`explorer.training_worker.RunSpec`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QStandardPaths

from explorer.training_worker import RunSpec
from model import tasks
from model.bpe_tokenizer import BPETokenizer
from model.checkpoints import CheckpointError, check_writable
from model.config import ConfigError, ModelConfig, TrainConfig
from model.corpora import Corpus, CorpusError, load_corpus, read_text_file, task_tokenizer
from model.devices import resolve_device
from model.memory import HEADROOM, available_memory, fmt_bytes, training_memory
from model.pairs import SPECIALS, load_pairs, read_tsv_pairs, task_pairs, task_vocabulary
from model.shipped import resolve_corpus
from model.train_encoders import encoder_tokenizer

RUNS_ENV = "TRANSFORMER_EXPLORER_RUNS"
SAMPLE_CORPUS = "sonnets"  # the text that ships with the package (source "sample")
EVAL_ITERS = 5  # batches per evaluation: keeps the final evaluation (on Stop) short


class PlanError(ValueError):
    """The run cannot start; the message says why (shown in red under the form)."""


# -- estimates (pure functions) ---------------------------------------------------------------
def train_flops(cfg, batch: int) -> float:
    """Approximate FLOPs of one training step (forward + backward = 3 × forward)."""
    T = cfg.block_size
    dense = 2 * cfg.n_params() * batch * T
    attention = 4 * cfg.n_layer * batch * T * T * cfg.n_embd
    return 3.0 * (dense + attention)


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def fmt_duration(s: float) -> str:
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def check_memory(cfg, batch: int, device: str) -> None:
    """Raise :class:`PlanError` with the estimate when the run would not fit."""
    est = training_memory(cfg, batch)
    free = available_memory(device)
    if free is None or est["total"] <= HEADROOM * free:
        return
    raise PlanError(
        f"This run would need about {fmt_bytes(est['total'])} of memory (weights, gradients "
        f"and optimizer {fmt_bytes(est['params'])}, activations for batch {batch} × block "
        f"{cfg.block_size} {fmt_bytes(est['activations'])}), but only {fmt_bytes(free)} is free "
        f"on {device}. Use a smaller batch, block size or model.")


def corpus_length_problem(name: str, n_tokens: int, block: int) -> str | None:
    """The message Corpus.from_text would give for a too-short text (checked without encoding)."""
    need = block + 1
    if n_tokens < need:
        return (f"{name}: the corpus has {n_tokens:,} characters, fewer than block size + 1 = "
                f"{need:,}; use a longer text or a smaller block size")
    n_val = max(int(n_tokens * 0.1), need)
    if n_tokens - n_val < need:
        return (f"{name}: the corpus has {n_tokens:,} characters, too few for a training part and "
                f"a validation part of block size + 1 = {need:,} each (needs {2 * need:,}); use "
                "a longer text or a smaller block size")
    return None


class TextCache:
    """Texts of corpus files, read once per (path, size, mtime): errors are cached too."""

    def __init__(self):
        self._cache: dict[tuple, tuple[str | None, str | None]] = {}

    def get(self, path: str) -> tuple[str | None, str | None]:
        """(text, None) or (None, error message)."""
        p = Path(path).expanduser()
        try:
            st = p.stat()
            key = (str(p), st.st_size, st.st_mtime_ns)
        except OSError:
            key = (str(p), None, None)
        if key not in self._cache:
            try:
                self._cache = {key: (read_text_file(p), None)}  # keep one text only
            except CorpusError as e:
                self._cache = {key: (None, str(e))}
        return self._cache[key]


def model_corpus_source(session) -> tuple[str | None, str]:
    """The loaded model's own corpus as a spec ("task:copy" or a readable path) and a
    description; (None, why not) when it cannot be found."""
    info = session.info
    if info is None:
        return None, "no model is loaded"
    name = (info.summary or {}).get("corpus")
    if not name:
        return None, "the loaded model does not say what it was trained on"
    task = tasks.task_of(name)
    if task is not None and str(name).startswith("task:"):
        return f"task:{task}", str(name)
    candidates = [Path(str(name)).expanduser()]
    if info.path is not None:
        candidates.append(Path(info.path).parent / Path(str(name)).name)
    for c in candidates:
        if c.is_file():
            return str(c), str(name)
    return None, f"its corpus {name!r} is not a file found here"


@dataclass
class FormValues:
    source: str = "task:copy"  # "task:NAME" | "file" | "current"
    path: str = ""
    continue_model: bool = False
    preset: str = "tiny"  # tiny | small | medium | custom
    layers: int = 2
    heads: int = 4
    width: int = 64
    block: int = 32
    pos: str = "learned"
    norm: str = "pre"
    dropout: float = 0.0
    steps: int = 1000
    batch: int = 64
    lr: float = 3e-3
    seed: int = 1337
    device: str = "auto"
    sample_every: int = 0  # 0 = auto
    attention_every: int = 0  # 0 = auto
    out_path: str = ""  # "" = a new file in the runs folder
    tokenizer: str = "char"  # a new model on text: "char" or "bpe:VOCAB"
    kind: str = "decoder"  # ModelConfig.kind: decoder | encoder-decoder | encoder


def bpe_vocab(spec: str) -> int:
    """The vocabulary size of a ``bpe:VOCAB`` tokenizer choice; 0 for ``char``."""
    kind, _, size = spec.partition(":")
    return int(size) if kind == "bpe" and size.isdigit() else 0


def auto_intervals(steps: int) -> tuple[int, int, int]:
    """(sample, attention, eval) intervals that give ~20 samples, ~100 frames, ~50 evals."""
    return max(10, steps // 20), max(5, steps // 100), max(10, steps // 50)


def default_runs_dir() -> Path:
    """Where per-run checkpoints go: $TRANSFORMER_EXPLORER_RUNS or <AppData>/runs."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env).expanduser()
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".transformer-explorer") / "runs"


def new_run_path(runs_dir: Path, corpus_name: str) -> Path:
    """A fresh ``<date>-<time>-<corpus>.safetensors`` in ``runs_dir``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", corpus_name).strip("-")[:40] or "run"
    base = runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"
    path = Path(f"{base}.safetensors")
    i = 2
    while path.exists():
        path = Path(f"{base}-{i}.safetensors")
        i += 1
    return path


def device_name(name: str) -> str:
    """``auto``/``cpu``/``cuda``… as the device torch will really use ("cpu" if unavailable)."""
    try:
        return str(resolve_device(name))
    except Exception:  # noqa: BLE001
        return "cpu"


@dataclass
class Plan:
    """What the form describes: the checked configs, and the RunSpec (not for light checks)."""

    model_cfg: object  # ModelConfig (the loaded model's when continuing)
    train_cfg: object  # TrainConfig
    device: str
    start_step: int = 0
    resume_from: Path | None = None
    spec: RunSpec | None = None


def _spec_name(spec: str) -> str:
    return spec if spec.startswith("task:") else Path(spec).name


def _train_config(v: FormValues, start: int, probe: str, sample_tokens: int) -> TrainConfig:
    s_int, a_int, e_int = auto_intervals(v.steps)
    try:
        return TrainConfig(
            steps=start + v.steps, batch_size=v.batch, lr=v.lr, min_lr=v.lr / 10,
            warmup_steps=min(100, max(1, v.steps // 10)), eval_interval=e_int,
            eval_iters=EVAL_ITERS, sample_interval=v.sample_every or s_int,
            sample_tokens=sample_tokens, capture_interval=v.attention_every or a_int,
            log_interval=1, checkpoint_interval=max(50, v.steps // 10), probe_prompt=probe,
            seed=v.seed, device=v.device)
    except ConfigError as e:
        raise PlanError(f"Training: {e}") from None


class Planner:
    """Checks form values against the session; remembers corpus files used in this session."""

    def __init__(self, session, runs_dir: Path):
        self.session = session
        self.runs_dir = runs_dir
        self.texts = TextCache()
        self.known_corpora: dict[str, str] = {}  # file name -> path used in this session
        self._pairs: dict[tuple, tuple[int, int] | str] = {}  # _pair_facts, or its error

    def current_corpus(self) -> tuple[str | None, str]:
        """The loaded model's corpus (a task or a readable file) and why not if unavailable."""
        src, why = model_corpus_source(self.session)
        if src is None:
            info = self.session.info
            name = (info.summary or {}).get("corpus") if info else None
            if name and str(name) in self.known_corpora:
                return self.known_corpora[str(name)], str(name)
        return src, why

    def corpus_spec(self, v: FormValues) -> tuple[str, str | None]:
        """(spec for load_corpus, the text if it is a file)."""
        if v.source.startswith("task:"):
            return v.source, None
        if v.source == "current":
            src, why = self.current_corpus()
            if src is None:
                raise PlanError(f"The loaded model's corpus cannot be used: {why}. Open the "
                                "text file instead.")
        else:
            src = v.path
            if not src:
                raise PlanError("Choose a text file (Open… or drop one onto this panel), or "
                                "pick a synthetic task.")
        if src.startswith("task:"):
            return src, None
        text, err = self.texts.get(src)
        if err:
            raise PlanError(err)
        return src, text

    def plan(self, v: FormValues, light: bool = False) -> Plan:
        """Check everything; with ``light`` only what is cheap (no corpus encoding, no copy)."""
        if v.kind != "decoder":
            return self._plan_encoder_kind(v, light)
        spec, text = self.corpus_spec(v)
        task = tasks.task_of(spec) if spec.startswith("task:") else None
        tokenizer = None
        resume_from = None
        start = 0
        if v.continue_model:
            if self.session.config is None:
                raise PlanError("No model is loaded to continue; choose 'Train a new model'.")
            cfg = self.session.config
            if cfg.kind != "decoder":
                raise PlanError(f"The loaded model is an {cfg.kind}; continuing works for decoder "
                                "(GPT) models. Choose 'Train a new model'.")
            tokenizer = self.session.tokenizer
            info = self.session.info
            path = info.path if info is not None else None
            if path is not None and Path(path).is_file():  # steps and optimizer from the file
                resume_from = Path(path)
                done = (info.summary or {}).get("steps", 0)
                start = int(done) if isinstance(done, (int, float)) else 0
        else:
            bpe = bpe_vocab(v.tokenizer)
            if bpe and task:
                raise PlanError("A byte-level BPE is learned from a text file; the synthetic "
                                "tasks use their own tokens: choose 'characters'.")
            vocab = task_tokenizer(task).vocab_size if task else bpe or len(set(text or " "))
            try:
                cfg = ModelConfig(vocab_size=vocab, block_size=v.block, n_layer=v.layers,
                                  n_head=v.heads, n_embd=v.width, pos_kind=v.pos, norm=v.norm,
                                  dropout=v.dropout)
            except ConfigError as e:
                raise PlanError(f"Model: {e}") from None
        block = cfg.block_size
        if text is not None:
            problem = corpus_length_problem(Path(spec).name, len(text), block)
            if problem:
                raise PlanError(problem)
            if tokenizer is not None:
                # each distinct character once: a corpus is megabytes
                missing = sorted({u.char for u in tokenizer.unknown("".join(set(text)))})
                if missing:
                    shown = ", ".join(repr(c) for c in missing[:8])
                    raise PlanError(f"The loaded model cannot continue on this text: it has "
                                    f"{len(missing)} character(s) its vocabulary lacks ({shown}).")
        probe = tasks.probe_prompt(task, block) if task else (text or "\n")[: min(32, block)]
        tc = _train_config(v, start, probe, 48 if task else 160)
        device = device_name(v.device)
        check_memory(cfg, v.batch, device)
        plan = Plan(model_cfg=cfg, train_cfg=tc, device=device, start_step=start,
                    resume_from=resume_from)
        if light:
            return plan
        try:
            if text is not None:
                if not v.continue_model and bpe_vocab(v.tokenizer):
                    tokenizer = BPETokenizer.train(text, bpe_vocab(v.tokenizer))
                    # a short text may yield fewer merges than asked for: the model fits the BPE
                    cfg = dataclasses.replace(cfg, vocab_size=tokenizer.vocab_size)
                    plan.model_cfg = cfg
                corpus = Corpus.from_text(text, Path(spec).name, tokenizer=tokenizer,
                                          block_size=block)
                corpus.source = spec
                self.known_corpora[Path(spec).name] = spec
            else:
                corpus = load_corpus(spec, block_size=block, tokenizer=tokenizer)
        except CorpusError as e:
            raise PlanError(str(e)) from None
        out = self._out_path(v, corpus.name)
        weights = None
        if v.continue_model and resume_from is None:
            # the inference worker copies its model's weights; the run builds its own from them
            weights = self.session.copy_weights()
        plan.spec = RunSpec(corpus=corpus, train_cfg=tc, out_path=out,
                            model_cfg=None if v.continue_model else cfg,
                            resume_from=resume_from, weights=weights,
                            tokenizer=tokenizer if v.continue_model else None, task=task)
        return plan

    def _out_path(self, v: FormValues, corpus_name: str) -> Path:
        out = Path(v.out_path).expanduser() if v.out_path else new_run_path(self.runs_dir,
                                                                             corpus_name)
        try:  # now, not when the first checkpoint is due: no training is lost to it
            check_writable(out)
        except CheckpointError as e:
            raise PlanError(f"Save to: {e}") from None
        return out

    def _plan_encoder_kind(self, v: FormValues, light: bool) -> Plan:
        """A new encoder-decoder (source → target pairs: a task or a source<TAB>target file)
        or a new BERT-style encoder (masked tokens of a task's text or a text file), as
        ``python -m model train --arch encoder-decoder|encoder`` trains them."""
        if v.continue_model:
            raise PlanError(f"Continuing works for decoder (GPT) models; an {v.kind} is "
                            "trained anew: choose 'Train a new model'.")
        seq2seq = v.kind == "encoder-decoder"
        if v.source.startswith("task:"):
            spec, text = v.source, None
        elif v.source == "file":
            if not v.path:
                raise PlanError("Choose a file of source<TAB>target lines (Open… or drop one "
                                "onto this panel), or pick a task." if seq2seq else
                                "Choose a text file (Open… or drop one onto this panel), or "
                                "pick a synthetic task.")
            spec = v.path
            text = None if seq2seq else self._text(v.path)
        elif v.source == "sample" and not seq2seq:
            spec = resolve_corpus(SAMPLE_CORPUS)
            text = self._text(spec)
        else:
            raise PlanError(f"An {v.kind} is trained on a task or a file.")
        try:
            if seq2seq:
                vocab, longest = self._pair_facts(spec)
                if longest + 1 > v.block:
                    raise PlanError(f"{_spec_name(spec)}: the longest source or target has "
                                    f"{longest} characters; with its end token that is more "
                                    f"than the block size {v.block}. Use a block of at least "
                                    f"{longest + 1}.")
                special = dict(pad_id=0, bos_id=1, eos_id=2)  # the pairs' vocabulary
            else:
                if text is not None:
                    problem = corpus_length_problem(Path(spec).name, len(text), v.block)
                    if problem:
                        raise PlanError(problem)
                    encoder_tokenizer(text)  # refuses a text holding a special character
                    vocab = len(set(text)) + 2
                else:
                    vocab = task_tokenizer(tasks.task_of(spec)).vocab_size + 2
                special = dict(mask_id=0)
        except CorpusError as e:
            raise PlanError(str(e)) from None
        try:
            cfg = ModelConfig(kind=v.kind, vocab_size=vocab, block_size=v.block,
                              n_layer=v.layers, n_head=v.heads, n_embd=v.width, pos_kind=v.pos,
                              norm=v.norm, dropout=v.dropout, **special)
        except ConfigError as e:
            raise PlanError(f"Model: {e}") from None
        tc = _train_config(v, 0, "\n", 1)  # samples: held-out pairs / a masked window
        device = device_name(v.device)
        check_memory(cfg, v.batch, device)
        plan = Plan(model_cfg=cfg, train_cfg=tc, device=device)
        if light:
            return plan
        try:
            if seq2seq:
                corpus = load_pairs(spec, block_size=v.block)
            elif text is not None:
                corpus = Corpus.from_text(text, Path(spec).name,
                                          tokenizer=encoder_tokenizer(text), block_size=v.block)
                corpus.source = spec
            else:  # as python -m model train --arch encoder: the task's text, its characters
                plain = load_corpus(spec, block_size=v.block)
                corpus = load_corpus(spec, block_size=v.block,
                                     tokenizer=encoder_tokenizer(plain.text))
                corpus.task = plain.task
        except CorpusError as e:
            raise PlanError(str(e)) from None
        plan.spec = RunSpec(corpus=corpus, train_cfg=tc, out_path=self._out_path(v, corpus.name),
                            model_cfg=cfg)
        return plan

    def _text(self, path: str) -> str:
        text, err = self.texts.get(path)
        if err:
            raise PlanError(err)
        return text

    def _pair_facts(self, spec: str) -> tuple[int, int]:
        """(vocabulary size, longest source or target) of a task or a pairs file, cached per
        task and per file version; a malformed file raises CorpusError naming its line."""
        key: tuple = (spec,)
        if not spec.startswith("task:"):
            p = Path(spec).expanduser()
            try:
                st = p.stat()
                key = (str(p), st.st_size, st.st_mtime_ns)
            except OSError:
                key = (str(p), None, None)
        hit = self._pairs.get(key)
        if hit is None:
            try:
                if spec.startswith("task:"):
                    task = spec[5:]
                    pairs = task_pairs(task)
                    vocab = task_vocabulary(task).vocab_size
                else:
                    pairs = read_tsv_pairs(Path(spec).expanduser())
                    vocab = len(SPECIALS) + len({c for s, t in pairs for c in s + t})
                hit = (vocab, max(max(len(s), len(t)) for s, t in pairs))
            except CorpusError as e:
                hit = str(e)
            self._pairs = {key: hit}  # one file at a time
        if isinstance(hit, str):
            raise CorpusError(hit)
        return hit


__all__ = ["PlanError", "Plan", "Planner", "FormValues",
           "train_flops", "check_memory", "corpus_length_problem", "TextCache",
           "model_corpus_source", "auto_intervals", "default_runs_dir", "new_run_path",
           "device_name", "fmt_duration", "fmt_params", "RUNS_ENV", "EVAL_ITERS"]
