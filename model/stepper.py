"""Generation one token at a time, with everything the GUI shows for the current context window.

A :class:`Stepper` holds a prompt and the tokens generated after it. ``step()`` samples the next
token (or takes a forced one), appends it and runs the model on that one token through the KV
cache, so a step appends one row of attention instead of recomputing the whole context.
``back()``, ``rewind_to()``, ``reset()`` and ``resample()`` undo steps; ``redistribute()``
re-ranks the cached logits under new settings without running the model.

Sampling is seeded per position: the token at absolute text position ``p`` is drawn with
``uniform_for(seed, p, draw)``, so the same seed and settings give the same text however the
user stepped there, and ``planned`` is exactly what ``step()`` will pick.

Every :class:`StepResult` is a set of numpy views into preallocated buffers of block-size
capacity. Results a GUI still holds never change: once a row an older result can see would be
written again (after back/rewind/resample), the buffers are copied first (copy-on-write).

Past the block size the window slides like nanoGPT's ``generate``: the model sees the last
``block_size`` tokens, recomputed in full with positions starting again at 0.

``lookahead()`` runs the pass the next ``step()`` will need before it is asked for (the GUI's
worker calls it while it waits for the user): the planned token's pass goes into a side state
that a ``step()`` picking that token adopts without running the model, and that anything else
drops. Nothing a caller can see changes until then.
"""
from __future__ import annotations

import math
import operator
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .capture import Recording
from .config import CAPTURE_ALL, CAPTURE_NOTHING, CaptureSpec, ModelConfig, SampleConfig
from .sampling import distribution_for, sample_from, uniform_for
from .step_result import CaptureBuffers, StepResult
from .tokenizer import CharTokenizer
from .topk import topk_rows
from .transformer import GPT

DEFAULT_SAMPLE = SampleConfig()
EMPTY_PROMPT_NEWLINE = "empty prompt: generation starts from a newline"
EMPTY_PROMPT_TOKEN0 = "empty prompt: generation starts from token 0 ({!r})"
#: a lookahead that would need its own capture buffers larger than this is not run (a
#: GPT-2-small's attention and scores at 1024 tokens are 1.2 GB)
LOOKAHEAD_MAX_BYTES = 256 * 2**20


@contextmanager
def _inference(model: torch.nn.Module) -> Iterator[None]:
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


def _start_ids(tokenizer: CharTokenizer) -> tuple[list[int], str]:
    if "\n" in tokenizer.stoi:
        return [tokenizer.stoi["\n"]], EMPTY_PROMPT_NEWLINE
    return [0], EMPTY_PROMPT_TOKEN0.format(tokenizer.token_str(0))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


@dataclass
class _Ahead:
    """The next step's pass, run before it was asked for (see :meth:`Stepper.lookahead`)."""

    key: tuple  # (token, weights fingerprint): what the pass depends on besides the ids
    logits: np.ndarray  # (V,) next-token logits after the token
    slid: bool  # True: the window moved, so the pass has its own cache and buffers (below)
    length: int = 0  # not slid: the live cache's length before the pass appended its row
    cache: Any = None
    bufs: CaptureBuffers | None = None
    start: int = 0


class Stepper:
    """Steps generation one token at a time; see the module docstring."""

    def __init__(self, model: GPT, tokenizer: CharTokenizer, sample: SampleConfig = DEFAULT_SAMPLE,
                 capture: CaptureSpec = CAPTURE_ALL, lens_k: int = 5):
        if tokenizer.vocab_size != model.config.vocab_size:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's "
                             f"vocabulary has {model.config.vocab_size}: they do not belong together")
        if not isinstance(lens_k, int) or lens_k < 1:
            raise ValueError(f"lens_k={lens_k!r} must be a whole number >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.config: ModelConfig = model.config
        self.sample = sample
        self.capture = capture
        self.lens_k = min(lens_k, model.config.vocab_size)
        self.auto_seed = secrets.randbits(32)  # used while sample.seed is None
        self.result: StepResult | None = None
        self._ids: list[int] = []  # the whole text, prompt included, never cropped
        self._n_prompt = 0
        self._note = ""
        self._logits: list[np.ndarray] = []  # next-token logits after 0, 1, … generated tokens
        self._probs: list[float] = []  # per generated token
        self._ranks: list[int] = []
        self._forced: list[bool] = []
        self._draws: dict[int, int] = {}  # absolute position -> draw index (raised by resample)
        self._cache = None
        self._queries: torch.Tensor | None = None  # (L, H, block, hs) for scores above the diagonal
        self._bufs: CaptureBuffers | None = None
        self._start = 0  # absolute index of the window's first token
        self._valid = False  # the KV cache (and buffers) hold the window ids[_start:]
        self._ahead: _Ahead | None = None  # see lookahead()
        self._spare = None  # a second KV cache, for lookaheads that slide the window
        self.lookahead_hits = 0  # steps that adopted a lookahead (for tests and benchmarks)

    # -- public state ---------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The seed in use: the sample config's, or one fixed when the stepper was made."""
        return self.sample.seed if self.sample.seed is not None else self.auto_seed

    @property
    def ids(self) -> list[int]:
        return list(self._ids)

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self._ids)

    @property
    def prompt_text(self) -> str:
        return self.tokenizer.decode(self._ids[:self._n_prompt])

    @property
    def n_generated(self) -> int:
        return len(self._ids) - self._n_prompt

    def draw_index(self, position: int) -> int:
        return self._draws.get(position, 0)

    # -- public actions -------------------------------------------------------------------------
    def set_prompt(self, text: str, errors: str = "strict") -> StepResult:
        """Start over from ``text`` (UnknownCharactersError for characters not in the vocabulary)."""
        ids = self.tokenizer.encode(text, errors=errors)
        note = ""
        if not ids:
            ids, note = _start_ids(self.tokenizer)
        block = self.config.block_size
        if len(ids) > block:
            note = (f"the prompt is longer than the block size ({block}): the model sees its last "
                    f"{block} tokens, the first {len(ids) - block} are cropped")
        self._drop_ahead()
        self._ids, self._n_prompt, self._note = list(ids), len(ids), note
        self._probs, self._ranks, self._forced, self._draws = [], [], [], {}
        self._valid = False
        try:
            with _inference(self.model):
                self._logits = [self._rebuild()]
        except BaseException:
            self._ids, self._n_prompt = [], 0  # no half-set prompt: stepping needs a new one
            raise
        return self._publish()

    def step(self, force: int | None = None) -> StepResult:
        """Sample the next token (or take ``force``), append it and run the model on it."""
        self._need_prompt()
        dist, draw, tok = self._plan()
        if force is not None:
            draw = None
            tok = int(force)
            if not 0 <= tok < self.config.vocab_size or tok != force:
                raise ValueError(f"forced token {force!r} is not a token id "
                                 f"(0..{self.config.vocab_size - 1})")
        logits = self._take_ahead(tok)
        self._ids.append(tok)
        try:
            if logits is None:
                with _inference(self.model):
                    logits = self._advance(tok)
        except BaseException:
            self._ids.pop()
            self._valid = False
            raise
        prob, rank = float(dist.probs[tok]), dist.rank_of(tok)
        self._logits.append(logits)
        self._probs.append(prob)
        self._ranks.append(rank)
        self._forced.append(force is not None)
        return self._publish(chosen=tok, chosen_prob=prob, chosen_rank=rank,
                             forced=force is not None, chosen_draw=draw)

    def back(self) -> StepResult:
        """Undo the last generated token (ValueError if there is none)."""
        self._need_prompt()
        if self.n_generated == 0:
            raise ValueError("nothing to undo: no token has been generated after the prompt")
        self._shrink(self.n_generated - 1)
        return self._publish()

    def rewind_to(self, n_generated: int) -> StepResult:
        """Keep only the first ``n_generated`` generated tokens."""
        self._need_prompt()
        n_generated = operator.index(n_generated)
        if not 0 <= n_generated <= self.n_generated:
            raise ValueError(f"cannot rewind to {n_generated!r} generated tokens: there are "
                             f"{self.n_generated}")
        self._shrink(n_generated)
        return self._publish()

    def reset(self) -> StepResult:
        """Back to the prompt."""
        return self.rewind_to(0)

    def resample(self) -> StepResult:
        """Undo the last token and draw it again with the next draw index for its position."""
        self._need_prompt()
        if self.n_generated == 0:
            raise ValueError("nothing to resample: no token has been generated after the prompt")
        self._shrink(self.n_generated - 1, rebuild=False)  # step() runs the window once
        pos = len(self._ids)
        self._draws[pos] = self.draw_index(pos) + 1
        return self.step()

    def redistribute(self, sample: SampleConfig) -> StepResult:
        """New sampling settings for the next token, from the cached logits: no forward pass."""
        if not isinstance(sample, SampleConfig):
            raise TypeError(f"expected a SampleConfig, got {type(sample).__name__}")
        self.sample = sample
        self._need_prompt()
        return self._publish()

    def set_capture(self, capture: CaptureSpec) -> StepResult | None:
        """Change what is recorded; the window is run again once so the result has it."""
        self._drop_ahead()
        self.capture = capture
        self._valid = False
        return self.refresh() if self._ids else None

    def refresh(self) -> StepResult:
        """Run the window again (after the weights or the head mask changed). The latest logits
        are replaced; those kept for earlier steps are not."""
        self._need_prompt()
        self._drop_ahead()
        with _inference(self.model):
            self._logits[-1] = self._rebuild()
        return self._publish()

    def lookahead(self) -> bool:
        """Run the pass that ``step()`` without ``force`` will need next, before it is asked for.

        The token is the one ``step()`` would sample under the current settings (the result's
        ``planned``). Below the block size its row goes into the live KV cache past what any
        result shows; when the step would slide the window, the whole next window is run into a
        second cache and fresh buffers. ``step()`` adopts the pass when it picks that token
        (same weights, head mask and capture); every other action drops it first. Returns True
        when a pass ran (False: no prompt, the same lookahead is already there, or the buffers
        would exceed ``LOOKAHEAD_MAX_BYTES``). Nothing visible changes."""
        if not self._ids:
            return False
        pos = len(self._ids)
        tok = self._plan()[2]
        key = self._ahead_key(tok)
        if key[1] is None:
            return False  # a change to such weights could not be noticed: never run ahead
        if self._ahead is not None:
            if self._ahead.key == key:
                return False
            self._drop_ahead()
        s = max(0, pos + 1 - self.config.block_size)  # the next window's start
        with _inference(self.model):
            if self._valid and s == self._start:  # one cached row, as _advance would run it
                length = self._cache.length
                logits = self._run([tok], past=pos - s)
                self._ahead = _Ahead(key, logits, slid=False, length=length)
                return True
            if self._bufs is not None and sum(a.nbytes for a in self._bufs.arrays.values()) \
                    > LOOKAHEAD_MAX_BYTES:
                return False
            live = self._cache, self._bufs, self._start, self._valid
            self._cache = self._spare
            self._ids.append(tok)
            try:
                logits = self._rebuild()
                self._ahead = _Ahead(key, logits, slid=True, cache=self._cache, bufs=self._bufs,
                                     start=self._start)
                self._spare = None
            finally:
                self._ids.pop()
                self._cache, self._bufs, self._start, self._valid = live
        return True

    @property
    def has_lookahead(self) -> bool:
        return self._ahead is not None

    # -- internals ------------------------------------------------------------------------------
    def _plan(self) -> tuple:
        """(distribution, draw index, token) of the next token under the current settings: what
        ``step()`` samples, the result's ``planned`` and the token a lookahead runs."""
        pos = len(self._ids)
        dist = distribution_for(self._logits[-1], self.sample)
        draw = self.draw_index(pos)
        return dist, draw, sample_from(dist, uniform_for(self.seed, pos, draw))

    def _ahead_key(self, tok: int) -> tuple:
        """What a pass depends on besides the ids: the token, the weights (each parameter's
        in-place version counter), the head mask and what is captured."""
        m = self.model
        try:
            weights = sum(p._version for p in m.parameters())
        except RuntimeError:  # parameters made under inference_mode have no version counter
            weights = None
        return (int(tok), weights, id(m.head_mask), self.capture)

    def _take_ahead(self, tok: int) -> np.ndarray | None:
        """The lookahead's logits when it is for ``tok`` (its state adopted), else None (dropped)."""
        a = self._ahead
        if a is None:
            return None
        if a.key != self._ahead_key(tok):
            self._drop_ahead()
            return None
        self._ahead = None
        if a.slid:
            self._spare = self._cache  # the old window's cache: no step goes back to it cheaply
            self._cache, self._bufs, self._start, self._valid = a.cache, a.bufs, a.start, True
        self.lookahead_hits += 1
        return a.logits

    def _drop_ahead(self) -> None:
        a, self._ahead = self._ahead, None
        if a is None:
            return
        if a.slid:
            self._spare = a.cache
        else:
            self._cache.truncate(a.length)  # forget the row it appended (no result showed it)

    def _need_prompt(self) -> None:
        if not self._ids:
            raise RuntimeError("no prompt yet: call set_prompt() first")

    def _advance(self, tok: int) -> np.ndarray:
        """The token is already appended to the ids; bring the cache up to date with it."""
        s = max(0, len(self._ids) - self.config.block_size)
        if self._valid and s == self._start:
            return self._run([tok], past=len(self._ids) - 1 - s)
        return self._rebuild()  # the window slid: recompute it in full

    def _shrink(self, n_generated: int, rebuild: bool = True) -> None:
        self._drop_ahead()
        n = self._n_prompt + n_generated
        del self._ids[n:], self._probs[n_generated:], self._ranks[n_generated:]
        del self._forced[n_generated:], self._logits[n_generated + 1:]
        s = max(0, n - self.config.block_size)
        if self._valid and s == self._start:
            self._cache.truncate(n - s)  # the buffers keep their rows until copy-on-write
        elif rebuild and self.capture.any:
            with _inference(self.model):
                self._rebuild()  # logits come from the history, not from this pass
        else:
            self._valid = False  # nothing to show (yet): rebuilt on the next step

    def _rebuild(self) -> np.ndarray:
        """Run the whole window ids[-block:] from an empty cache into fresh buffers."""
        self._valid = False
        if self._cache is None:
            self._cache = self.model.new_cache()
        self._cache.reset()
        self._start = max(0, len(self._ids) - self.config.block_size)
        self._bufs = None
        logits = self._run(self._ids[self._start:], past=0)
        self._valid = True
        return logits

    def _run(self, new: list[int], past: int) -> np.ndarray:
        """Forward ``new`` after ``past`` cached window positions; store what is captured at rows
        past…past+t; return the next-token logits (V,)."""
        model, spec = self.model, self.capture
        idx = torch.tensor([new], dtype=torch.long, device=model.device)  # (1, t)
        rec = Recording(spec=spec)  # an explicit recording: never one left attached to the model
        taps: list[torch.Tensor | None] = [None] * self.config.n_layer
        full = past == 0 and len(new) == self.config.block_size
        # a full window that has slid (start > 0) is never followed by a cached step (any step
        # or undo moves the start): the queries for scores above the diagonal are not needed
        handles = self._tap_queries(taps) if spec.scores and not (full and self._start) else []
        bufs = self._bufs
        if spec.any and bufs is None:
            # a full window writes every entry: no need to zero them; and the model computes
            # attention and scores straight into these fresh buffers (no result sees them yet)
            bufs = self._new_buffers(zeroed=not full)
            if full:
                rec.out = {name: torch.from_numpy(bufs.arrays[name]).unsqueeze(1)
                           for name in ("attention", "scores") if name in bufs.arrays}
        try:
            logits, _ = model(idx, cache=self._cache, record=rec)  # (1, 1, V)
        finally:
            for h in handles:
                h.remove()
        if spec.any:
            self._bufs = bufs  # only now: a failed pass leaves no half-written buffers to show
            self._bufs.make_writable(past)
            self._store(rec, taps if handles else None, past, len(new))
        out = _np(logits[0, -1]).copy()  # (V,) kept in the history: nothing else may share it
        out.flags.writeable = False
        return out

    def _tap_queries(self, taps: list) -> list:
        """Queries are not recorded by the model; scores above the diagonal for rows that were
        computed before a cached step need them (score[i, j] = q_i·k_j / √d for j > i)."""
        c = self.config.n_embd
        handles = []
        for i, block in enumerate(self.model.h):
            def hook(_mod, _inp, out, i=i):
                taps[i] = out[..., :c]  # (1, t, C): q is the first third of c_attn
            handles.append(block.attn.c_attn.register_forward_hook(hook))
        return handles

    def _new_buffers(self, zeroed: bool = True) -> CaptureBuffers:
        cfg, spec = self.config, self.capture
        L, H, B, C, F, k = (cfg.n_layer, cfg.n_head, cfg.block_size, cfg.n_embd, cfg.n_ffn,
                            self.lens_k)
        f32, i64 = np.float32, np.int64
        shapes: dict = {}
        if spec.attention:
            shapes["attention"] = ((L, H, B, B), (2, 3), f32)
        if spec.scores:
            shapes["scores"] = ((L, H, B, B), (2, 3), f32)
        if spec.residual:
            shapes["residual"] = ((L + 1, B, C), (1,), f32)
        if spec.sublayers:
            shapes["attn_out"] = ((L, B, C), (1,), f32)
            shapes["mlp_out"] = ((L, B, C), (1,), f32)
        if spec.ffn:
            shapes["ffn"] = ((L, B, F), (1,), f32)
        if spec.embeddings:
            shapes["tok_emb"] = ((B, C), (0,), f32)
            if self.model.pe.additive:
                shapes["pos_emb"] = ((B, C), (0,), f32)
        if spec.logit_lens:
            shapes["lens_ids"] = ((L + 1, B, k), (1,), i64)
            shapes["lens_probs"] = ((L + 1, B, k), (1,), f32)
        return CaptureBuffers(shapes, zeroed=zeroed)

    def _store(self, rec: Recording, taps: list | None, past: int, t: int) -> None:
        bufs, spec = self._bufs, self.capture
        if spec.attention:
            self._write_layers("attention", past, rec.attn_probs)  # L × (1, H, t, Tk)
        if spec.scores:
            self._write_layers("scores", past, rec.attn_scores)
            if taps is not None:
                self._store_future_scores(taps, past, t)
        if spec.residual:
            self._write_layers("residual", past, rec.resid)  # (L+1) × (1, t, C)
        if spec.sublayers:
            self._write_layers("attn_out", past, rec.attn_out)  # L × (1, t, C)
            self._write_layers("mlp_out", past, rec.mlp_out)
        if spec.ffn:
            self._write_layers("ffn", past, rec.ffn_hidden)  # L × (1, t, F)
        if spec.embeddings:
            bufs.write("tok_emb", past, _np(rec.tok_emb[0]))  # (t, C)
            if rec.pos_emb is not None and "pos_emb" in bufs.arrays:
                bufs.write("pos_emb", past, _np(rec.pos_emb))
        if spec.logit_lens:
            probs = torch.softmax(rec.logit_lens[:, 0].float(), dim=-1)  # (L+1, t, V)
            values, indices = topk_rows(probs, self.lens_k)  # (L+1, t, k)
            bufs.write("lens_ids", past, indices.cpu().numpy())
            bufs.write("lens_probs", past, _np(values))

    def _write_layers(self, name: str, past: int, tensors: list) -> None:
        """Copy per-layer tensors (1, …) into buffer ``name`` at rows past…past+t, one layer at a
        time, dropping each from the (local) recording once copied: the whole (L, …) stack never
        exists twice (a GPT-2-small's attention at 1024 tokens is 600 MB per copy)."""
        arr = self._bufs.arrays[name]
        square = len(self._bufs.shapes[name][1]) == 2  # (L, H, T, T) vs (L, T, X)
        for i in range(len(tensors)):
            d = _np(tensors[i][0])  # (H, t, Tk) or (t, X)
            tensors[i] = None
            t = d.shape[-2]
            dst = arr[i, :, past:past + t, :past + t] if square else arr[i, past:past + t]
            if d.ctypes.data != dst.ctypes.data or d.strides != dst.strides:  # not computed in place
                dst[...] = d

    def _store_future_scores(self, taps: list, past: int, t: int) -> None:
        """Keep the rotated queries, and fill the scores of earlier queries against the new keys."""
        cfg = self.config
        L, H, hs = cfg.n_layer, cfg.n_head, cfg.head_size
        if self._queries is None:
            self._queries = torch.zeros((L, H, cfg.block_size, hs), device=self.model.device,
                                        dtype=self._cache.k.dtype)
        positions = torch.arange(past, past + t, device=self.model.device)
        for i, q in enumerate(taps):
            q = q.view(1, t, H, hs).transpose(1, 2)  # (1, H, t, hs)
            q, _ = self.model.pe.rotate(q, q, positions)
            self._queries[i, :, past:past + t] = q[0]
        if past == 0:
            return  # a full pass recorded every score itself
        k_new = self._cache.k[:, 0, :, past:past + t]  # (L, H, t, hs), already rotated
        s = self._queries[:, :, :past] @ k_new.transpose(-2, -1)  # (L, H, past, t)
        self._bufs.arrays["scores"][:, :, :past, past:past + t] = _np(s / math.sqrt(hs))

    def _publish(self, chosen: int | None = None, chosen_prob: float | None = None,
                 chosen_rank: int | None = None, forced: bool = False,
                 chosen_draw: int | None = None) -> StepResult:
        n = len(self._ids)
        t = min(n, self.config.block_size)
        start = n - t
        window = self._ids[start:]
        n_prompt = max(0, self._n_prompt - start)
        probs = np.full(t, np.nan, dtype=np.float32)
        ranks = np.full(t, -1, dtype=np.int64)
        forced_arr = np.zeros(t, dtype=bool)
        g0 = max(0, start - self._n_prompt)  # first generated token inside the window
        probs[n_prompt:] = self._probs[g0:]
        ranks[n_prompt:] = self._ranks[g0:]
        forced_arr[n_prompt:] = self._forced[g0:]
        logits = self._logits[-1]
        dist, draw, planned = self._plan()
        views = self._bufs.views(t) if (self.capture.any and self._bufs is not None) else {}
        for a in (probs, ranks, forced_arr):
            a.flags.writeable = False
        ids = np.asarray(window, dtype=np.int64)
        ids.flags.writeable = False
        self.result = StepResult(
            ids=ids, tokens=[self.tokenizer.token_str(i) for i in window], n_prompt=n_prompt,
            cropped=start, token_probs=probs, token_ranks=ranks, chosen=chosen,
            chosen_prob=chosen_prob, chosen_rank=chosen_rank, forced=forced, logits=logits,
            dist=dist, planned=planned, sample=self.sample, attention=views.get("attention"),
            scores=views.get("scores"), residual=views.get("residual"),
            attn_out=views.get("attn_out"), mlp_out=views.get("mlp_out"), ffn=views.get("ffn"),
            tok_emb=views.get("tok_emb"), pos_emb=views.get("pos_emb"),
            lens_ids=views.get("lens_ids"), lens_probs=views.get("lens_probs"),
            n_generated=self.n_generated, config=self.config, note=self._note,
            token_forced=forced_arr, draw=draw, chosen_draw=chosen_draw)
        return self.result


class NonFiniteLogitsError(ValueError):
    """The model's output holds NaN or infinite values, so no token can be drawn from it."""


def generate_text(model: GPT, tokenizer: CharTokenizer, prompt: str, n_tokens: int,
                  sample: SampleConfig = DEFAULT_SAMPLE,
                  on_text: Callable[[str], None] | None = None) -> str:
    """The ``n_tokens`` characters generated after ``prompt`` (the prompt is not included).

    Fast path for the command line and training samples: no capture, KV cache, sliding window
    past the block size. Same seed and settings give the same text as a :class:`Stepper`.
    An empty prompt starts from a newline (or token 0), as in the stepper. ``on_text`` gets
    each token's text as soon as it is drawn (the command line streams it).
    """
    if not isinstance(n_tokens, int) or n_tokens < 0:
        raise ValueError(f"n_tokens={n_tokens!r} must be a whole number >= 0")
    ids = tokenizer.encode(prompt) or _start_ids(tokenizer)[0]
    if n_tokens == 0:
        return ""
    block = model.config.block_size
    seed = sample.seed if sample.seed is not None else secrets.randbits(32)
    rec = Recording(spec=CAPTURE_NOTHING)
    device = model.device
    out: list[int] = []
    with _inference(model):
        cache = model.new_cache()
        logits, _ = model(torch.tensor([ids[-block:]], device=device), cache=cache, record=rec)
        for _ in range(n_tokens):
            if not bool(torch.isfinite(logits[0, -1]).all()):
                raise NonFiniteLogitsError(
                    f"the model's output for token {len(out) + 1} holds NaN or infinite "
                    "values, so no token can be drawn: its weights are damaged or too large")
            dist = distribution_for(_np(logits[0, -1]), sample)
            tok = sample_from(dist, uniform_for(seed, len(ids), 0))
            ids.append(tok)
            out.append(tok)
            if on_text is not None:
                on_text(tokenizer.decode([tok]))
            if len(out) == n_tokens:
                break
            if cache.length < block:
                idx = torch.tensor([[tok]], device=device)  # (1, 1)
            else:  # slide: the last block_size tokens again, positions from 0
                cache.reset()
                idx = torch.tensor([ids[-block:]], device=device)  # (1, block)
            logits, _ = model(idx, cache=cache, record=rec)
    return tokenizer.decode(out)


__all__ = ["StepResult", "Stepper", "generate_text", "NonFiniteLogitsError",
           "EMPTY_PROMPT_NEWLINE"]
