"""Pure sampling functions on a 1-D array of logits (numpy, so the GUI can re-rank cheaply).

:func:`next_token` is the one rule for the next token: logits, settings, seed and position give
the distribution, the draw and the token. The stepper plans and samples with it, and the GUI
calls it on cached logits when a slider moves (no forward pass), so both always agree.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .config import SampleConfig


@dataclass(frozen=True)
class Distribution:
    """The next-token distribution under given settings."""

    logits: np.ndarray  # (V,) raw logits from the model
    probs: np.ndarray  # (V,) after temperature, top-k and top-p (sums to 1)
    full_probs: np.ndarray  # (V,) after temperature only (what top-k/top-p cut from)
    kept: np.ndarray  # (V,) bool: candidates that survive top-k and top-p
    order: np.ndarray  # (V,) token ids by descending full probability (ties by id)
    temperature: float
    top_k: int
    top_p: float

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the distribution actually sampled from."""
        return entropy(self.probs)

    def rank_of(self, token: int) -> int:
        """0-based rank of a token by probability (0 = most likely)."""
        return int(np.flatnonzero(self.order == int(token))[0])

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = self.order[:k]
        return ids, self.probs[ids]


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x)
    if not np.isfinite(m):
        raise ValueError("logits contain no finite value")
    e = np.exp(x - m)
    return e / e.sum()


def entropy(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    return max(0.0, float(-(nz * np.log(nz)).sum()))  # a one-hot gives 0.0, never -0.0


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softmax(logits / T); T = 0 is greedy (all mass on the argmax)."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    if temperature == 0:
        p = np.zeros_like(logits)
        p[int(np.argmax(logits))] = 1.0
        return p
    return softmax(logits / temperature)


#: arrays from this size on are ranked by the radix sort below (a large vocabulary)
_RADIX_MIN = 4096


def _ranked(values: np.ndarray) -> np.ndarray:
    """Indices by descending value, equal values by ascending index: a stable sort, so results
    never depend on sort internals. ``np.argsort(-values, kind="stable")`` (a merge sort of
    float64) costs 4-8 ms for GPT-2's 50,257 tokens at every step; for large arrays of finite
    float64 this is the same order from an LSD radix sort: each float's bits mapped to an
    unsigned key that orders as the floats do (descending), sorted 16 bits at a time by numpy's
    stable radix sort of uint16, least significant digit first (~1.5 ms)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < _RADIX_MIN or sys.byteorder != "little" or not np.isfinite(values).all():
        return np.argsort(-values, kind="stable")
    bits = (values + 0.0).view(np.uint64)  # + 0.0: -0.0 becomes 0.0 (they compare equal)
    negative = (bits >> np.uint64(63)).astype(bool)
    # descending: a larger positive float has larger bits, so a smaller key (~bits, top bit
    # cleared); negatives (top bit set) come after every positive, the most negative last
    key = np.where(negative, bits, ~bits & np.uint64(0x7FFF_FFFF_FFFF_FFFF))
    digits = key.view(np.uint16).reshape(-1, 4)  # little-endian: column 0 is the lowest
    order = np.argsort(digits[:, 0], kind="stable")
    for c in (1, 2, 3):
        order = order[np.argsort(digits[order, c], kind="stable")]
    return order


def top_k_mask(probs: np.ndarray, k: int, order: np.ndarray | None = None) -> np.ndarray:
    """Keep the k most likely tokens (k = 0 or k >= V keeps all)."""
    keep = np.ones(probs.shape, dtype=bool)
    if k and k < probs.size:
        order = _ranked(probs) if order is None else order
        keep[:] = False
        keep[order[:k]] = True
    return keep


def top_p_mask(probs: np.ndarray, p: float, order: np.ndarray | None = None) -> np.ndarray:
    """Nucleus sampling (Holtzman et al. 2019): the smallest set whose mass reaches p."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p={p} must be in (0, 1]")
    keep = np.ones(probs.shape, dtype=bool)
    if p < 1:
        order = _ranked(probs) if order is None else order
        cum = np.cumsum(probs[order])
        n = int(np.searchsorted(cum, p - 1e-12) + 1)  # include the token that crosses p
        keep[:] = False
        keep[order[:n]] = True
    return keep


def next_token_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0,
                            top_p: float = 1.0) -> Distribution:
    logits = np.asarray(logits, dtype=np.float32).reshape(-1)
    full = apply_temperature(logits, temperature)
    order = _ranked(full) if temperature > 0 else _ranked(logits.astype(np.float64))
    kept = top_k_mask(full, top_k, order) & top_p_mask(full, top_p, order)
    probs = np.where(kept, full, 0.0)
    probs = probs / probs.sum()
    return Distribution(logits=logits, probs=probs.astype(np.float64), full_probs=full,
                        kept=kept, order=order, temperature=float(temperature), top_k=int(top_k),
                        top_p=float(top_p))


def distribution_for(logits: np.ndarray, cfg: SampleConfig) -> Distribution:
    return next_token_distribution(logits, cfg.temperature, cfg.top_k, cfg.top_p)


def sample_from(dist: Distribution, u: float) -> int:
    """Inverse-CDF draw with a uniform number u in [0, 1), walking tokens from most to least
    likely: the same u picks the same token whenever the distribution is the same, and moving
    the temperature towards 0 moves the pick towards the most likely token."""
    if not 0 <= u < 1:
        raise ValueError(f"u={u} must be in [0, 1)")
    ranked = dist.probs[dist.order]
    cum = np.cumsum(ranked)
    i = int(np.searchsorted(cum, u * cum[-1], side="right"))
    i = min(i, dist.n_kept - 1) if dist.n_kept else 0
    # skip zero-probability tokens that searchsorted may land on through rounding
    while ranked[i] == 0 and i > 0:
        i -= 1
    return int(dist.order[i])


def uniform_for(seed: int | None, position: int, draw: int = 0) -> float:
    """The uniform number used at a given position: repeatable for a fixed seed."""
    if seed is None:
        return float(np.random.default_rng().random())
    return float(np.random.default_rng([int(seed) & 0xFFFFFFFF, position, draw]).random())


@dataclass(frozen=True)
class NextToken:
    """What :func:`next_token` decides."""

    dist: Distribution  # the distribution under the settings
    draw: int  # draw index at this position (resampling raises it)
    token: int  # the token drawn


def next_token(logits: np.ndarray, sample: SampleConfig, auto_seed: int, position: int,
               draw: int = 0) -> NextToken:
    """The next token after a text of ``position`` tokens: the distribution of ``logits`` under
    ``sample``, and the token drawn from it with ``uniform_for(seed, position, draw)``, where the
    seed is ``sample.seed``, or ``auto_seed`` while that is None. The same arguments give the
    same token however the text was stepped to."""
    seed = sample.seed if sample.seed is not None else auto_seed
    dist = distribution_for(logits, sample)
    return NextToken(dist, draw, sample_from(dist, uniform_for(seed, position, draw)))


def sample(logits: np.ndarray, cfg: SampleConfig, rng: np.random.Generator | None = None) -> int:
    dist = distribution_for(logits, cfg)
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    return sample_from(dist, float(rng.random()))
