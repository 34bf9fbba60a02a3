"""Head ablation as plain data (no torch): which heads are off and what they output instead.

An :class:`Ablation` is a set of (layer, head) pairs and a mode: "zero", or "mean", an off head's
mean output over the positions of the current context (one pass over the whole context; every
position, earlier ones included, sees the mean over all of them).
:meth:`model.transformer.GPT.set_ablation` hands it to the model's head mask; the empty ablation
removes the mask, so nothing is ablated and the model runs exactly as before.
:class:`HeadEffects` is what :func:`model.head_effects.head_effects` measures: how much switching
each head off alone changes the log-probability of one token.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ConfigError, ModelConfig

ABLATION_MODES = ("zero", "mean")


@dataclass(frozen=True)
class Ablation:
    """Heads switched off, as (layer, head) pairs, and what they output instead."""

    heads: frozenset[tuple[int, int]] = frozenset()
    mode: str = "zero"

    def __post_init__(self):
        if self.mode not in ABLATION_MODES:
            raise ConfigError(f"ablation mode {self.mode!r} must be 'zero' or 'mean'")
        for pair in self.heads:
            if (not isinstance(pair, tuple) or len(pair) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                               for v in pair)):
                raise ConfigError(f"head {pair!r} must be a (layer, head) pair of whole numbers")
        object.__setattr__(self, "heads", frozenset(self.heads))

    @classmethod
    def parse(cls, text: str, mode: str = "zero") -> Ablation:
        """``"0.1,1.3"``: head 1 of layer 0 and head 3 of layer 1 (layers and heads from 0)."""
        heads = set()
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            layer, dot, head = part.partition(".")
            if not dot or not layer.strip().isdigit() or not head.strip().isdigit():
                raise ConfigError(f"--ablate {part!r} is not LAYER.HEAD (for example 0.1 is "
                                  "head 1 of layer 0)")
            heads.add((int(layer), int(head)))
        return cls(frozenset(heads), mode)

    def __bool__(self) -> bool:
        return bool(self.heads)

    def toggled(self, layer: int, head: int) -> Ablation:
        """This ablation with (layer, head) switched: off if it was on, on if it was off."""
        return Ablation(self.heads ^ {(int(layer), int(head))}, self.mode)

    def with_mode(self, mode: str) -> Ablation:
        return Ablation(self.heads, mode)

    def sorted(self) -> list[tuple[int, int]]:
        return sorted(self.heads)

    def label(self) -> str:
        """``L0H1, L1H3 (zero)``, or ``none``."""
        if not self.heads:
            return "none"
        return ", ".join(f"L{li}H{hi}" for li, hi in self.sorted()) + f" ({self.mode})"

    def check(self, config: ModelConfig) -> None:
        """ConfigError naming the first head the model does not have."""
        for li, hi in self.sorted():
            if li >= config.n_layer or hi >= config.n_head:
                raise ConfigError(f"head {li}.{hi} does not exist: the model has layers "
                                  f"0..{config.n_layer - 1} and heads 0..{config.n_head - 1}")

    def mask(self, config: ModelConfig) -> np.ndarray:
        """(n_layer, n_head) float32 with 0 for an off head and 1 for the others."""
        self.check(config)
        m = np.ones((config.n_layer, config.n_head), dtype=np.float32)
        for li, hi in self.heads:
            m[li, hi] = 0.0
        return m


NO_ABLATION = Ablation()


@dataclass(frozen=True)
class HeadEffects:
    """How switching each head off alone changes log p(token) at the last position."""

    token: int
    mode: str
    base_logprob: float  # with every head on
    delta: np.ndarray  # (n_layer, n_head) log p with that head off - base_logprob

    def ranking(self) -> list[tuple[int, int, float]]:
        """(layer, head, change) from the largest drop to the largest rise."""
        L, H = self.delta.shape
        order = np.argsort(self.delta, axis=None, kind="stable")
        return [(int(i // H), int(i % H), float(self.delta.flat[i])) for i in order]


__all__ = ["ABLATION_MODES", "Ablation", "HeadEffects", "NO_ABLATION"]
