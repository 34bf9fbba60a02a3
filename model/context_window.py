"""The context window of a stepped text: the KV cache of the tokens the model sees and the
capture buffers of what it recorded for them, kept in step with the text one row at a time.

A :class:`ContextWindow` is told the whole text's ids and works out its window: the last
``block_size`` tokens. ``advance`` runs one new token through the cache (one new row of
attention) or, once the window has slid, the whole window again with positions from 0, as
nanoGPT's ``generate`` does; ``shrink`` forgets rows after an undo. Results view the buffers
without copying; rows a result can already see are copied before they are written again
(:class:`~model.capture_buffers.CaptureBuffers`).

``fork`` runs the pass a next token will need before it is asked for (a lookahead): below the
block size its row goes into the live cache past what any result shows; when the token would
slide the window, the next window is run into a second cache and fresh buffers. ``adopt`` takes
that pass when the token and everything else it depended on are the same, and drops it
otherwise. Nothing a caller can see changes until it is adopted.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .attention import KVCache
from .capture import Recording
from .capture_buffers import CaptureBuffers, new_buffers, store, to_numpy
from .config import CaptureSpec
from .lens import lens_topk
from .memory import release_free_memory
from .transformer import GPT

#: a lookahead that would need its own capture buffers larger than this is not run (a
#: GPT-2-small's attention and scores at 1024 tokens are 1.2 GB)
LOOKAHEAD_MAX_BYTES = 256 * 2**20


@contextmanager
def inference(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and inference mode for the duration; the mode is restored."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if was_training:
            model.train(True)


@dataclass
class Fork:
    """A pass run ahead for one next token (see :meth:`ContextWindow.fork`)."""

    key: tuple  # (token, weights fingerprint, head mask, capture): what the pass depends on
    logits: np.ndarray  # (V,) next-token logits after the token
    slid: bool  # True: the window moved, so the pass has its own cache and buffers (below)
    length: int = 0  # not slid: the live cache's length before the pass appended its row
    cache: KVCache | None = None
    bufs: CaptureBuffers | None = None
    start: int = 0


class ContextWindow:
    """KV cache + capture buffers for the last ``block_size`` tokens of a text; see the module
    docstring. Every method that takes ``ids`` is given the whole text, prompt included."""

    def __init__(self, model: GPT, capture: CaptureSpec, lens_k: int):
        self.model = model
        self.config = model.config
        self.capture = capture
        self.lens_k = lens_k
        self.start = 0  # absolute index of the window's first token
        self.valid = False  # the cache (and buffers) hold the window ids[start:]
        self._cache: KVCache | None = None
        self._bufs: CaptureBuffers | None = None
        self._fork: Fork | None = None
        self._spare: KVCache | None = None  # a second cache, for forks that slide the window

    # -- the window ---------------------------------------------------------------------------
    def start_of(self, n: int) -> int:
        """Where the window of a text of ``n`` tokens starts."""
        return max(0, n - self.config.block_size)

    def invalidate(self) -> None:
        """The cache no longer matches the text: the next pass runs the whole window."""
        self.valid = False

    def set_capture(self, capture: CaptureSpec) -> None:
        self.drop_fork()
        self.capture = capture
        self.valid = False

    def rebuild(self, ids: list[int]) -> np.ndarray:
        """Run the whole window ids[-block:] from an empty cache into fresh buffers; return the
        next-token logits (V,)."""
        with inference(self.model):
            return self._rebuild(ids)

    def advance(self, ids: list[int]) -> np.ndarray:
        """The last of ``ids`` is new: bring the cache up to date with it (one cached row, or
        the whole window once it has slid); return the next-token logits (V,)."""
        with inference(self.model):
            s = self.start_of(len(ids))
            if self.valid and s == self.start and self.cached_steps:
                return self._run(ids[-1:], past=len(ids) - 1 - s)
            return self._rebuild(ids)

    def shrink(self, ids: list[int], rebuild: bool = True) -> None:
        """The text was cut back to ``ids``: forget the later rows. When the window has to
        move, it is run again now if ``rebuild`` (and something is captured), else on the
        next pass."""
        self.drop_fork()
        n = len(ids)
        s = self.start_of(n)
        if self.valid and s == self.start and self.cached_steps:
            self._cache.truncate(n - s)  # the buffers keep their rows until copy-on-write
        elif rebuild and self.capture.any:
            self.rebuild(ids)  # the logits come from the history, not from this pass
        else:
            self.valid = False  # nothing to show (yet): rebuilt on the next step

    @property
    def cached_steps(self) -> bool:
        """A new token can run alone through the KV cache. Not under mean ablation: an off
        head's mean over the context changes with every token, so every row changes."""
        return not self.model.mean_ablated

    def views(self, t: int) -> dict[str, np.ndarray]:
        """Read-only views of the first ``t`` rows of every buffer (empty if nothing is captured)."""
        if not self.capture.any or self._bufs is None:
            return {}
        return self._bufs.views(t)

    # -- lookahead ----------------------------------------------------------------------------
    @property
    def forked(self) -> bool:
        return self._fork is not None

    def fork(self, ids: list[int], tok: int) -> bool:
        """Run the pass that ``advance(ids + [tok])`` would run, without changing what the
        window shows. Returns True when a pass ran (False: the same fork is already there,
        the weights cannot be fingerprinted, or the buffers would exceed
        ``LOOKAHEAD_MAX_BYTES``)."""
        key = self._fork_key(tok)
        if key[1] is None:
            return False  # a change to such weights could not be noticed: never run ahead
        if self._fork is not None:
            if self._fork.key == key:
                return False
            self.drop_fork()
        pos = len(ids)
        s = self.start_of(pos + 1)  # the next window's start
        with inference(self.model):
            if self.valid and s == self.start and self.cached_steps:  # one cached row
                length = self._cache.length
                logits = self._run([tok], past=pos - s)
                self._fork = Fork(key, logits, slid=False, length=length)
                return True
            if self._bufs is not None and self._bufs.full_nbytes() > LOOKAHEAD_MAX_BYTES:
                return False
            live = self._cache, self._bufs, self.start, self.valid
            self._cache = self._spare
            try:
                logits = self._rebuild([*ids, tok])
                self._fork = Fork(key, logits, slid=True, cache=self._cache, bufs=self._bufs,
                                  start=self.start)
                self._spare = None
            finally:
                self._cache, self._bufs, self.start, self.valid = live
        return True

    def adopt(self, tok: int) -> np.ndarray | None:
        """The fork's logits when it is for ``tok`` and still valid (its state becomes the
        window's: the caller appends ``tok`` to its ids), else None (the fork is dropped)."""
        f = self._fork
        if f is None:
            return None
        if f.key != self._fork_key(tok):
            self.drop_fork()
            return None
        self._fork = None
        if f.slid:
            self._spare = self._cache  # the old window's cache: no step goes back to it cheaply
            self._cache, self._bufs, self.start, self.valid = f.cache, f.bufs, f.start, True
        return f.logits

    def drop_fork(self) -> None:
        f, self._fork = self._fork, None
        if f is None:
            return
        if f.slid:
            self._spare = f.cache
        else:
            self._cache.truncate(f.length)  # forget the row it appended (no result showed it)

    def _fork_key(self, tok: int) -> tuple:
        """What a pass depends on besides the ids: the token, the weights (each parameter's
        in-place version counter), the head mask and what is captured."""
        m = self.model
        try:
            weights = sum(p._version for p in m.parameters())
        except RuntimeError:  # parameters made under inference_mode have no version counter
            weights = None
        return (int(tok), weights, id(m.head_mask), m.head_ablation, self.capture)

    # -- passes -------------------------------------------------------------------------------
    def _rebuild(self, ids: list[int]) -> np.ndarray:
        self.valid = False
        if self._cache is None:
            self._cache = self.model.new_cache()
        self._cache.reset()
        self.start = self.start_of(len(ids))
        self._bufs = None
        logits = self._run(ids[self.start:], past=0)
        self.valid = True
        if self._bufs is not None and self._bufs.half:  # a large model's whole window: give
            release_free_memory()  # its temporaries' pages back before the next one
        return logits

    def _run(self, new: list[int], past: int) -> np.ndarray:
        """Forward ``new`` after ``past`` cached window positions; store what is captured at rows
        past…past+t; return the next-token logits (V,)."""
        model, spec = self.model, self.capture
        idx = torch.tensor([new], dtype=torch.long, device=model.device)  # (1, t)
        rec = Recording(spec=spec)  # an explicit recording: never one left attached to the model
        full = past == 0 and len(new) == self.config.block_size
        # the scores are not kept: the results compute them from the queries and keys
        rec.qk_scores = spec.scores
        rec.defer_lens = True  # top-k only, in chunks for a large vocabulary (model.lens)
        # the lens's last row is the next-token logits: one read of the unembedding, not two
        rec.logits_from_lens = spec.logit_lens
        bufs = self._bufs
        if spec.any and bufs is None:
            # a full window writes every entry: no need to zero them; and the model computes
            # attention straight into these fresh buffers (no result sees them yet), so the L
            # layers' maps never exist twice (0.6 GB for a GPT-2-small at 1,000 tokens)
            t = past + len(new)
            bufs = new_buffers(self.config, spec, self.lens_k, self.model.pe.additive,
                               zeroed=not full, rows=t)
            rec.out = {name: torch.from_numpy(bufs.arrays[name])[:, :, :t, :t].unsqueeze(1)
                       for name in ("attention",) if name in bufs.arrays}
            # every layer's values are copied in as the pass records them (Recording.keep):
            # the pass never holds all of them besides the buffers (420 MB for GPT-2 at 1,000)
            rec.out.update({name: torch.from_numpy(bufs.arrays[name])[:, :t].unsqueeze(1)
                            for name in ("residual", "attn_out", "mlp_out", "ffn", "heads")
                            if name in bufs.arrays})
            rec.out.update({name: torch.from_numpy(bufs.arrays[name])[:, :, :t].unsqueeze(1)
                            for name in ("q", "k", "v") if name in bufs.arrays})
        logits, _ = model(idx, cache=self._cache, record=rec)  # (1, 1, V), None with the lens
        lens = None
        if spec.logit_lens:
            *lens, last = lens_topk(self._unembed, rec.resid[-(self.config.n_layer + 1):],
                                    self.config.vocab_size, self.lens_k)
            logits = last.view(1, 1, -1)
        if spec.any:
            self._bufs = bufs  # only now: a failed pass leaves no half-written buffers to show
            self._bufs.make_writable(past)
            self._bufs.reserve(past + len(new))
            store(self._bufs, rec, spec, past, self.lens_k, lens)
        out = to_numpy(logits[0, -1]).copy()  # (V,) kept in the history: nothing else may share it
        out.flags.writeable = False
        return out

    def _unembed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(self.model.ln_f(x))


__all__ = ["ContextWindow", "Fork", "LOOKAHEAD_MAX_BYTES", "inference"]
