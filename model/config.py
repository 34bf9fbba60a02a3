"""Frozen configuration dataclasses for the model, training and sampling.

Every invalid value raises :class:`ConfigError` with one sentence that names the field and says
why, in words a student understands. Change a config with ``dataclasses.replace``.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from .anatomy import describe

POS_KINDS = ("learned", "sinusoidal", "rotary", "none")
NORM_KINDS = ("pre", "post")
#: decoder: GPT (causal self-attention, next-token prediction); encoder-decoder: Vaswani et al.
#: (an encoder of the source, a decoder with cross-attention to it); encoder: BERT-style
#: (bidirectional self-attention, masked-token prediction)
MODEL_KINDS = ("decoder", "encoder-decoder", "encoder")
# the feed-forward non-linearity: exact GELU (nanoGPT, HF "gelu") or its tanh approximation
# (GPT-2's original code, HF "gelu_new" / "gelu_pytorch_tanh")
ACTIVATIONS = ("gelu", "gelu_tanh")
MAX_TRAIN_SEED = 2**63 - 1


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the reason."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(name: str, v: Any) -> None:
    _check(_is_int(v), f"{name}={v!r} must be a whole number")
    _check(v >= 1, f"{name}={v} must be at least 1")


def _finite(name: str, v: Any) -> None:
    _check(isinstance(v, (int, float)) and not isinstance(v, bool),
           f"{name}={v!r} must be a number")
    _check(math.isfinite(v), f"{name}={v} must be a finite number")


class _JsonMixin:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, s: str):
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{cls.__name__} is not valid JSON: {e}") from None
        return cls.from_dict(d)


@dataclass(frozen=True)
class ModelConfig(_JsonMixin):
    """Shape of a transformer of one of the :data:`MODEL_KINDS`.

    ``n_layer`` counts the layers of the stack that makes the output: the decoder of a GPT or an
    encoder-decoder, the encoder of an encoder. ``n_enc_layer`` is the encoder stack of an
    encoder-decoder. The special token ids (-1 = none) say which ids of the tokenizer pad a
    sequence, start and end a target, or hide a token from an encoder.
    """

    vocab_size: int = 65
    block_size: int = 128  # longest context the model sees
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    n_ffn: int = 0  # hidden width of the feed-forward network; 0 means 4 * n_embd
    pos_kind: str = "learned"  # learned | sinusoidal | rotary | none
    norm: str = "pre"  # pre (GPT-2) | post (Vaswani et al.)
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True  # the unembedding shares the token embedding matrix
    rope_base: float = 10000.0
    kind: str = "decoder"  # decoder | encoder-decoder | encoder
    n_enc_layer: int = 0  # encoder layers of an encoder-decoder; 0 means n_layer
    shared_embeddings: bool = True  # encoder-decoder: source and target share one embedding
    pad_id: int = -1  # padding (encoder-decoder and encoder): never attended to
    bos_id: int = -1  # encoder-decoder: the first token of every target
    eos_id: int = -1  # encoder-decoder: ends a source and a target
    mask_id: int = -1  # encoder: the [MASK] token whose original the model predicts
    activation: str = "gelu"  # gelu (exact) | gelu_tanh (GPT-2's tanh approximation)
    layer_norm_epsilon: float = 1e-5  # added to the variance in every layer norm

    def __post_init__(self) -> None:
        _check(self.kind in MODEL_KINDS,
               f"kind={self.kind!r} must be one of {', '.join(MODEL_KINDS)}")
        _positive_int("vocab_size", self.vocab_size)
        _positive_int("block_size", self.block_size)
        _positive_int("n_layer", self.n_layer)
        _positive_int("n_head", self.n_head)
        _positive_int("n_embd", self.n_embd)
        _check(_is_int(self.n_ffn) and self.n_ffn >= 0,
               f"n_ffn={self.n_ffn!r} must be a whole number >= 0 (0 means 4 * n_embd)")
        if self.n_ffn == 0:
            object.__setattr__(self, "n_ffn", 4 * self.n_embd)
        _check(self.n_embd % self.n_head == 0,
               f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
               "each head gets n_embd / n_head dimensions")
        _check(self.pos_kind in POS_KINDS,
               f"pos_kind={self.pos_kind!r} must be one of {', '.join(POS_KINDS)}")
        _check(self.norm in NORM_KINDS, f"norm={self.norm!r} must be 'pre' or 'post'")
        if self.pos_kind == "rotary":
            _check(self.head_size % 2 == 0,
                   f"pos_kind='rotary' needs an even head size, but n_embd / n_head = {self.head_size}")
        if self.pos_kind == "sinusoidal":
            _check(self.n_embd % 2 == 0,
                   f"pos_kind='sinusoidal' needs an even n_embd, got {self.n_embd}")
        _finite("dropout", self.dropout)
        _check(0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must be in [0, 1)")
        _check(isinstance(self.bias, bool), f"bias={self.bias!r} must be true or false")
        _check(isinstance(self.tie_weights, bool),
               f"tie_weights={self.tie_weights!r} must be true or false")
        _finite("rope_base", self.rope_base)
        _check(self.rope_base > 1.0, f"rope_base={self.rope_base} must be greater than 1")
        _check(_is_int(self.n_enc_layer) and self.n_enc_layer >= 0,
               f"n_enc_layer={self.n_enc_layer!r} must be a whole number >= 0 (0 means n_layer)")
        if self.kind == "encoder-decoder" and self.n_enc_layer == 0:
            object.__setattr__(self, "n_enc_layer", self.n_layer)
        _check(self.kind == "encoder-decoder" or self.n_enc_layer == 0,
               f"n_enc_layer={self.n_enc_layer} needs kind='encoder-decoder' (a {self.kind} "
               "has one stack, n_layer)")
        _check(isinstance(self.shared_embeddings, bool),
               f"shared_embeddings={self.shared_embeddings!r} must be true or false")
        for name in ("pad_id", "bos_id", "eos_id", "mask_id"):
            v = getattr(self, name)
            _check(_is_int(v) and -1 <= v < self.vocab_size,
                   f"{name}={v!r} must be a token id below vocab_size={self.vocab_size} "
                   "(or -1 for none)")
        if self.kind == "encoder-decoder":
            for name in ("pad_id", "bos_id", "eos_id"):
                _check(getattr(self, name) >= 0,
                       f"an encoder-decoder needs {name} (the id of its special token)")
        if self.kind == "encoder":
            _check(self.mask_id >= 0, "an encoder needs mask_id (the id of its [MASK] token)")
        _check(self.activation in ACTIVATIONS,
               f"activation={self.activation!r} must be one of {', '.join(ACTIVATIONS)}")
        _finite("layer_norm_epsilon", self.layer_norm_epsilon)
        _check(0 < self.layer_norm_epsilon < 1,
               f"layer_norm_epsilon={self.layer_norm_epsilon} must be a small positive number")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def n_params(self) -> int:
        """Number of trainable parameters, counting a tied embedding once.

        Counted through the anatomy of a one-layer model (every layer has the same parameters),
        so a config read from an untrusted file (n_layer=10**6) costs no more than a small one."""
        seq2seq = self.kind == "encoder-decoder"
        one = describe(dataclasses.replace(self, n_layer=1, n_enc_layer=1 if seq2seq else 0))
        layers = {"encoder": self.n_enc_layer if seq2seq else self.n_layer,
                  "decoder": self.n_layer}
        return one.n_params + sum((layers[s.name] - 1) * s.layers[0].n_params
                                  for s in one.stacks)


@dataclass(frozen=True)
class TrainConfig(_JsonMixin):
    """How to train: optimisation, schedule and how often to report."""

    steps: int = 2000
    batch_size: int = 12
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 switches clipping off
    eval_interval: int = 250
    eval_iters: int = 20
    sample_interval: int = 250
    sample_tokens: int = 120
    capture_interval: int = 100  # how often the probe prompt's attention is recorded
    log_interval: int = 1
    checkpoint_interval: int = 0  # 0: only on stop and at the end
    probe_prompt: str = "\n"
    seed: int = 1337
    device: str = "auto"
    val_fraction: float = 0.1
    compile: bool = False
    grad_accum: int = 1  # forward/backward passes per optimizer step (the batch is split)
    amp: str = "auto"  # bf16 autocast: "on", "off", or "auto" (see model.trainer.Trainer)

    def __post_init__(self) -> None:
        _positive_int("steps", self.steps)
        _positive_int("batch_size", self.batch_size)
        _finite("lr", self.lr)
        _check(self.lr > 0, f"lr={self.lr} must be positive (it is the learning rate)")
        _finite("min_lr", self.min_lr)
        _check(0 <= self.min_lr <= self.lr,
               f"min_lr={self.min_lr} must be between 0 and lr={self.lr}")
        _check(_is_int(self.warmup_steps) and self.warmup_steps >= 0,
               f"warmup_steps={self.warmup_steps!r} must be a whole number >= 0")
        _finite("weight_decay", self.weight_decay)
        _check(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            _finite(name, v)
            _check(0 <= v < 1, f"{name}={v} must be in [0, 1)")
        _finite("grad_clip", self.grad_clip)
        _check(self.grad_clip >= 0, f"grad_clip={self.grad_clip} must be >= 0 (0 = off)")
        for name in ("eval_interval", "eval_iters", "sample_interval", "capture_interval",
                     "log_interval"):
            _positive_int(name, getattr(self, name))
        _check(_is_int(self.sample_tokens) and self.sample_tokens >= 0,
               f"sample_tokens={self.sample_tokens!r} must be a whole number >= 0")
        _check(_is_int(self.checkpoint_interval) and self.checkpoint_interval >= 0,
               f"checkpoint_interval={self.checkpoint_interval!r} must be a whole number >= 0")
        _check(isinstance(self.probe_prompt, str) and len(self.probe_prompt) > 0,
               "probe_prompt must be a non-empty string")
        _check(_is_int(self.seed), f"seed={self.seed!r} must be a whole number")
        _check(abs(self.seed) <= MAX_TRAIN_SEED,  # torch seeds are 64-bit; steps are added
               f"seed={self.seed} is too large: a seed must lie between -(2**63 - 1) and "
               "2**63 - 1")
        _check(isinstance(self.device, str), f"device={self.device!r} must be a string")
        _finite("val_fraction", self.val_fraction)
        _check(0 < self.val_fraction < 1, f"val_fraction={self.val_fraction} must be in (0, 1)")
        _positive_int("grad_accum", self.grad_accum)
        _check(self.batch_size % self.grad_accum == 0,
               f"batch_size={self.batch_size} must be a multiple of grad_accum={self.grad_accum} "
               "(each accumulation step takes an equal share of the batch)")
        _check(self.amp in ("auto", "on", "off"), f"amp={self.amp!r} must be auto, on or off")


@dataclass(frozen=True)
class SampleConfig(_JsonMixin):
    """How the next token is chosen from the logits."""

    temperature: float = 0.8  # 0 means greedy (always the most likely token)
    top_k: int = 0  # 0 keeps every token
    top_p: float = 1.0  # 1 keeps every token
    seed: int | None = None

    def __post_init__(self) -> None:
        _finite("temperature", self.temperature)
        _check(self.temperature >= 0, f"temperature={self.temperature} must be >= 0 (0 = greedy)")
        _check(_is_int(self.top_k) and self.top_k >= 0,
               f"top_k={self.top_k!r} must be a whole number >= 0 (0 = off)")
        _finite("top_p", self.top_p)
        _check(0 < self.top_p <= 1, f"top_p={self.top_p} must be in (0, 1]")
        _check(self.seed is None or _is_int(self.seed), f"seed={self.seed!r} must be a whole number")


@dataclass(frozen=True)
class CaptureSpec(_JsonMixin):
    """What a forward pass records (see :mod:`model.capture`). Everything off = the fast path."""

    attention: bool = True  # softmax probabilities per layer and head
    scores: bool = True  # scaled scores QK^T/sqrt(d) before the mask
    residual: bool = True  # residual stream after the embedding and after each block
    ffn: bool = True  # feed-forward hidden activations (after the non-linearity)
    logit_lens: bool = True  # per-layer predictions through the final norm and unembedding
    embeddings: bool = True  # token and positional embedding separately
    sublayers: bool = True  # outputs of attention and FFN before they are added
    norms: bool = True  # mean and standard deviation of what enters each layer norm
    # queries, keys, values and the heads' outputs before W_O: opt-in (the GUI's Q, K, V view)
    qkv: bool = False

    @property
    def any(self) -> bool:
        return any(dataclasses.astuple(self))

    @classmethod
    def nothing(cls) -> CaptureSpec:
        return cls(*(False,) * len(dataclasses.fields(cls)))


CAPTURE_ALL = CaptureSpec(qkv=True)
CAPTURE_NOTHING = CaptureSpec.nothing()

__all__ = [
    "POS_KINDS", "NORM_KINDS", "MODEL_KINDS", "ACTIVATIONS", "ConfigError", "ModelConfig",
    "TrainConfig", "SampleConfig",
    "CaptureSpec", "CAPTURE_ALL", "CAPTURE_NOTHING",
]
