"""What one stepper state shows (:class:`StepResult`) and the buffers its arrays view.

The stepper fills the buffers; the GUI reads the StepResult.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ModelConfig, SampleConfig
from .sampling import Distribution


@dataclass(frozen=True, eq=False)
class StepResult:
    """What the model saw and predicted for the current context window (T tokens).

    Arrays are read-only views; they stay valid and unchanged whatever the stepper does next.
    """

    ids: np.ndarray  # (T,) int64 token ids of the current context window
    tokens: list[str]  # (T,) token strings (raw characters)
    n_prompt: int  # leading prompt tokens in the window
    cropped: int  # tokens dropped from the front (long prompt or slid window)
    token_probs: np.ndarray  # (T,) float32 probability of each generated token when chosen; NaN for prompt
    token_ranks: np.ndarray  # (T,) int64 rank of each generated token when chosen; -1 for prompt
    chosen: int | None  # id appended by this step (None for set_prompt/back/reset/redistribute)
    chosen_prob: float | None
    chosen_rank: int | None
    forced: bool
    logits: np.ndarray  # (V,) float32 raw logits for the next token
    dist: Distribution  # next-token distribution under `sample`
    planned: int  # the token the next step() would pick
    sample: SampleConfig
    attention: np.ndarray | None  # (L, H, T, T) softmax probabilities, exactly 0 above the diagonal
    scores: np.ndarray | None  # (L, H, T, T) QKᵀ/√d before the mask
    residual: np.ndarray | None  # (L+1, T, C) after the embedding and after each block
    attn_out: np.ndarray | None  # (L, T, C) attention sublayer output before it is added
    mlp_out: np.ndarray | None  # (L, T, C) FFN sublayer output before it is added
    ffn: np.ndarray | None  # (L, T, F) FFN hidden activations after GELU
    tok_emb: np.ndarray | None  # (T, C)
    pos_emb: np.ndarray | None  # (T, C), None if the positional encoding is not additive
    lens_ids: np.ndarray | None  # (L+1, T, k) int64 logit-lens top-k ids
    lens_probs: np.ndarray | None  # (L+1, T, k) float32 logit-lens top-k probabilities
    n_generated: int  # generated tokens in the whole text, not only the window
    # -- additions --------------------------------------------------------------------------
    config: ModelConfig | None = None
    note: str = ""  # e.g. how an empty prompt was started, or that a long prompt was cropped
    token_forced: np.ndarray | None = None  # (T,) bool: generated tokens that were forced
    draw: int = 0  # draw index `planned` used (resample raises it for a position)
    chosen_draw: int | None = None  # draw index used for `chosen` (None when forced or no step)
    # (N, T, 2) mean and standard deviation of what enters each layer norm, the norms in reading
    # order (ln_1, ln_2 of each layer, then the final norm of a pre-norm model)
    norm_stats: np.ndarray | None = None

    @property
    def T(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_layer(self) -> int:
        return self.config.n_layer if self.config is not None else 0

    @property
    def n_head(self) -> int:
        return self.config.n_head if self.config is not None else 0

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the next-token distribution."""
        return self.dist.entropy

    @property
    def text(self) -> str:
        """The window's text."""
        return "".join(self.tokens)

    def masked_scores(self) -> np.ndarray:
        """(L, H, T, T) scores with -inf where a key lies after its query."""
        if self.scores is None:
            raise ValueError("scores were not captured (CaptureSpec.scores is off)")
        keep = np.tril(np.ones((self.T, self.T), dtype=bool))
        return np.where(keep, self.scores, np.float32(-np.inf)).astype(np.float32)


class CaptureBuffers:
    """Capture arrays of block-size capacity; results get read-only prefix views.

    ``seen`` is how many rows some result may already show: rewriting one of them copies
    the buffers first, so older results never change.
    """

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], type]],
                 zeroed: bool = True):
        self.shapes = shapes  # name -> (full shape, axes that have block-size length, dtype)
        # zeroed=False when the first write fills every entry (a full window): zeroing 10+ MB
        # each slid step costs more than the rest of the bookkeeping
        new = np.zeros if zeroed else np.empty
        self.arrays = {n: new(s, dtype=d) for n, (s, _, d) in shapes.items()}
        self.seen = 0

    def _prefix(self, name: str, n: int) -> tuple:
        shape, axes, _ = self.shapes[name]
        return tuple(slice(0, n) if i in axes else slice(None) for i in range(len(shape)))

    def make_writable(self, row: int) -> None:
        if row < self.seen:  # copy-on-write: keep rows [:row], forget the rest
            fresh = {n: np.zeros(s, dtype=d) for n, (s, _, d) in self.shapes.items()}
            for n, a in self.arrays.items():
                sl = self._prefix(n, row)
                fresh[n][sl] = a[sl]
            self.arrays = fresh
            self.seen = row

    def write(self, name: str, row: int, data: np.ndarray) -> None:
        """Store rows row..row+t. Square (…, T, T) arrays also get columns [:row+t]."""
        a = self.arrays[name]
        t = data.shape[-2] if len(self.shapes[name][1]) == 2 else None
        if t is not None:
            a[..., row:row + t, :row + t] = data
        else:
            axis = self.shapes[name][1][0]
            idx = (slice(None),) * axis + (slice(row, row + data.shape[axis]),)
            a[idx] = data

    def views(self, n: int) -> dict[str, np.ndarray]:
        self.seen = max(self.seen, n)
        out = {}
        for name, a in self.arrays.items():
            v = a[self._prefix(name, n)]
            v.flags.writeable = False
            out[name] = v
        return out
