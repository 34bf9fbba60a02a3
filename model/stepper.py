"""Generation one token at a time, with everything the GUI shows for the current context window.

A :class:`Stepper` holds a prompt and the tokens generated after it. ``step()`` samples the next
token (or takes a forced one), appends it and runs the model on that one token through the KV
cache, so a step appends one row of attention instead of recomputing the whole context.
``back()``, ``rewind_to()``, ``reset()`` and ``resample()`` undo steps; ``redistribute()``
re-ranks the cached logits under new settings without running the model.

Sampling is seeded per position (:func:`model.sampling.next_token`, the one rule the GUI also
uses): the token at absolute text position ``p`` is drawn with ``uniform_for(seed, p, draw)``, so
the same seed and settings give the same text however the user stepped there, and ``planned`` is
exactly what ``step()`` will pick.

The KV cache and the capture buffers of the window the model sees live in a
:class:`~model.context_window.ContextWindow`: every :class:`StepResult` is a set of read-only numpy
views into its buffers, which results a GUI still holds never see change. Past the block size the
window slides like nanoGPT's ``generate``.

``lookahead()`` runs the pass the next ``step()`` will need before it is asked for (the GUI's
worker calls it while it waits for the user): a fork of the window for the planned token, which a
``step()`` picking that token adopts without running the model, and that anything else drops.
Nothing a caller can see changes until then.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable

import numpy as np
import torch

from .ablation import Ablation
from .capture import Recording
from .capture_buffers import to_numpy
from .config import CAPTURE_ALL, CAPTURE_NOTHING, CaptureSpec, ModelConfig, SampleConfig
from .context_window import ContextWindow, inference
from .generation_history import GenerationHistory, checked_lens_k
from .sampling import Distribution, next_token
from .step_result import StepResult
from .tokenizer import Tokenizer
from .transformer import GPT

DEFAULT_SAMPLE = SampleConfig()
EMPTY_PROMPT_NEWLINE = "empty prompt: generation starts from a newline"
EMPTY_PROMPT_TOKEN0 = "empty prompt: generation starts from token 0 ({!r})"


def _start_ids(tokenizer: Tokenizer) -> tuple[list[int], str]:
    ids = tokenizer.start_ids()
    if tokenizer.decode(ids) == "\n":
        return ids, EMPTY_PROMPT_NEWLINE
    return ids, EMPTY_PROMPT_TOKEN0.format(tokenizer.token_str(ids[0]))


class Stepper(GenerationHistory):
    """Steps generation one token at a time; see the module docstring."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, sample: SampleConfig = DEFAULT_SAMPLE,
                 capture: CaptureSpec = CAPTURE_ALL, lens_k: int = 5):
        if model.config.kind != "decoder":
            raise ValueError(f"the stepper generates with decoder models; this one is an "
                             f"{model.config.kind} (see model.train_encoders: translate, "
                             "fill_masks)")
        self.model = model
        self.tokenizer = tokenizer
        self.config: ModelConfig = model.config
        self.sample = sample
        self.lens_k = checked_lens_k(model.config, tokenizer, lens_k)
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
        self._window = ContextWindow(model, capture, self.lens_k)
        self._plan_memo: tuple | None = None  # (logits, settings, plan) of the last _plan
        self._intact: tuple[tuple[int, ...], np.ndarray] | None = None  # window -> intact logits
        # logits kept from this index on were computed under the current ablation; undoing
        # back past it runs the window again (the history holds the old model's logits)
        self._ablated_from = 0
        self._w_o: np.ndarray | None = None  # see _output_projections
        self.lookahead_hits = 0  # steps that adopted a lookahead (for tests and benchmarks)

    # -- public state ---------------------------------------------------------------------------
    @property
    def capture(self) -> CaptureSpec:
        """What is recorded (change it with :meth:`set_capture`)."""
        return self._window.capture

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
    def _prompt_len(self) -> int:
        return self._n_prompt

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
        self._window.drop_fork()
        self._ids, self._n_prompt, self._note = list(ids), len(ids), note
        self._probs, self._ranks, self._forced, self._draws = [], [], [], {}
        try:
            self._logits = [self._window.rebuild(self._ids)]
            self._ablated_from = 0
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
        logits = self._window.adopt(tok)
        if logits is not None:
            self.lookahead_hits += 1
        self._ids.append(tok)
        try:
            if logits is None:
                logits = self._window.advance(self._ids)
        except BaseException:
            self._ids.pop()
            self._window.invalidate()
            raise
        return self._chose(tok, dist, logits, force is not None, draw)

    def set_capture(self, capture: CaptureSpec) -> StepResult | None:
        """Change what is recorded; the window is run again once so the result has it."""
        self._window.set_capture(capture)
        return self.refresh() if self._ids else None

    def refresh(self) -> StepResult:
        """Run the window again (after the weights or the head mask changed). The latest logits
        are replaced; those kept for earlier steps are not."""
        self._need_prompt()
        self._intact = None  # the weights may have changed
        self._w_o = None
        self._window.drop_fork()
        self._logits[-1] = self._window.rebuild(self._ids)
        return self._publish()

    def set_ablation(self, ablation: Ablation) -> StepResult | None:
        """Switch the heads of ``ablation`` off (the empty one switches every head back on)
        and run the window again; it stays through stepping until changed. The result then
        also holds the next-token logits with every head on (``intact_logits``)."""
        if not isinstance(ablation, Ablation):
            raise TypeError(f"expected an Ablation, got {type(ablation).__name__}")
        ablation.check(self.config)
        self.model.set_ablation(ablation)
        if not self._ids:
            return None
        self._window.drop_fork()
        self._logits[-1] = self._window.rebuild(self._ids)
        self._ablated_from = len(self._logits) - 1
        return self._publish()

    @property
    def ablation(self) -> Ablation:
        return self.model.ablation

    def lookahead(self) -> bool:
        """Run the pass that ``step()`` without ``force`` will need next, before it is asked for.

        The token is the one ``step()`` would sample under the current settings (the result's
        ``planned``); the pass is a fork of the window (:meth:`ContextWindow.fork`) that
        ``step()`` adopts when it picks that token with the same weights, head mask and capture;
        every other action drops it first. Returns True when a pass ran (False: no prompt, the
        same lookahead is already there, or the buffers would exceed ``LOOKAHEAD_MAX_BYTES``).
        Nothing visible changes."""
        if not self._ids:
            return False
        return self._window.fork(self._ids, self._plan()[2])

    @property
    def has_lookahead(self) -> bool:
        return self._window.forked

    # -- internals ------------------------------------------------------------------------------
    def _plan(self) -> tuple[Distribution, int, int]:
        """(distribution, draw index, token) of the next token under the current settings: what
        ``step()`` samples, the result's ``planned`` and the token a lookahead runs."""
        pos = len(self._ids)
        logits, draw = self._logits[-1], self.draw_index(pos)
        # step() plans with the distribution its previous result published: ranking a large
        # vocabulary (a stable argsort of 50,257 probabilities) costs milliseconds each time
        key = (self.sample, self.auto_seed, pos, draw)
        memo = self._plan_memo
        if memo is not None and memo[0] is logits and memo[1] == key:
            return memo[2]
        nxt = next_token(logits, self.sample, self.auto_seed, pos, draw)
        self._plan_memo = (logits, key, (nxt.dist, nxt.draw, nxt.token))
        return nxt.dist, nxt.draw, nxt.token

    def _need_prompt(self) -> None:
        if not self._ids:
            raise RuntimeError("no prompt yet: call set_prompt() first")

    def _shrink(self, n_generated: int, rebuild: bool = True) -> None:
        n = self._n_prompt + n_generated
        del self._ids[n:], self._probs[n_generated:], self._ranks[n_generated:]
        del self._forced[n_generated:], self._logits[n_generated + 1:]
        self._window.shrink(self._ids, rebuild)
        if len(self._logits) - 1 < self._ablated_from:
            self._logits[-1] = self._window.rebuild(self._ids)
            self._ablated_from = len(self._logits) - 1

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
        views = self._window.views(t)
        ablation = self.model.ablation
        if ablation:
            intact = self._intact_logits(window)
        else:  # these logits are the intact ones: a head switched off next needs no extra pass
            intact = None
            self._intact = (tuple(window), logits)
        for a in (probs, ranks, forced_arr):
            a.flags.writeable = False
        ids = np.asarray(window, dtype=np.int64)
        ids.flags.writeable = False
        self.result = StepResult(
            ids=ids, tokens=self.tokenizer.token_strs(window),
            pieces=self.tokenizer.token_pieces(window), n_prompt=n_prompt,
            cropped=start, token_probs=probs, token_ranks=ranks, chosen=chosen,
            chosen_prob=chosen_prob, chosen_rank=chosen_rank, forced=forced, logits=logits,
            dist=dist, planned=planned, sample=self.sample, auto_seed=self.auto_seed,
            attention=views.get("attention"),
            scores=views.get("scores"), residual=views.get("residual"),
            attn_out=views.get("attn_out"), mlp_out=views.get("mlp_out"), ffn=views.get("ffn"),
            tok_emb=views.get("tok_emb"), pos_emb=views.get("pos_emb"),
            lens_ids=views.get("lens_ids"), lens_probs=views.get("lens_probs"),
            n_generated=self.n_generated, config=self.config, note=self._note,
            token_forced=forced_arr, draw=draw, chosen_draw=chosen_draw,
            norm_stats=views.get("norm_stats"),
            q=views.get("q"), k=views.get("k"), v=views.get("v"), heads=views.get("heads"),
            w_o=self._output_projections() if self.capture.qkv else None,
            ablation=ablation, intact_logits=intact)
        return self.result

    def _output_projections(self) -> np.ndarray:
        """(L, C, C) every layer's W_O as numbers, copied once per set of weights (results share
        the read-only copy: the GUI thread never touches the model)."""
        if self._w_o is None:
            w = torch.stack([b.attn.c_proj.weight.detach() for b in self.model.h])
            self._w_o = to_numpy(w).copy()
            self._w_o.flags.writeable = False
        return self._w_o

    def _intact_logits(self, window: list[int]) -> np.ndarray:
        """The next-token logits after ``window`` with every head on: one pass without a cache
        or a recording (the fast path), kept while the window stays the same."""
        key = tuple(window)
        if self._intact is not None and self._intact[0] == key:
            return self._intact[1]
        model = self.model
        mask, mode = model.head_mask, model.head_ablation
        try:
            model.set_head_mask(None)
            with inference(model):
                idx = torch.tensor([window], dtype=torch.long, device=model.device)
                logits, _ = model(idx, record=Recording(spec=CAPTURE_NOTHING))
        finally:
            model.head_mask, model.head_ablation = mask, mode
        out = to_numpy(logits[0, -1]).copy()
        out.flags.writeable = False
        self._intact = (key, out)
        return out


class NonFiniteLogitsError(ValueError):
    """The model's output holds NaN or infinite values, so no token can be drawn from it."""


def generate_text(model: GPT, tokenizer: Tokenizer, prompt: str, n_tokens: int,
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
    auto_seed = secrets.randbits(32)
    rec = Recording(spec=CAPTURE_NOTHING)
    device = model.device
    out: list[int] = []
    with inference(model):
        cache = model.new_cache()
        logits, _ = model(torch.tensor([ids[-block:]], device=device), cache=cache, record=rec)
        for _ in range(n_tokens):
            if not bool(torch.isfinite(logits[0, -1]).all()):
                raise NonFiniteLogitsError(
                    f"the model's output for token {len(out) + 1} holds NaN or infinite "
                    "values, so no token can be drawn: its weights are damaged or too large")
            tok = next_token(to_numpy(logits[0, -1]), sample, auto_seed, len(ids)).token
            ids.append(tok)
            out.append(tok)
            if on_text is not None:
                on_text(tokenizer.decode([tok]))
            if len(out) == n_tokens:
                break
            if model.mean_ablated:  # an off head's mean changes with every token: whole window
                cache.reset()
                idx = torch.tensor([ids[-block:]], device=device)
            elif cache.length < block:
                idx = torch.tensor([[tok]], device=device)  # (1, 1)
            else:  # slide: the last block_size tokens again, positions from 0
                cache.reset()
                idx = torch.tensor([ids[-block:]], device=device)  # (1, block)
            logits, _ = model(idx, cache=cache, record=rec)
    return tokenizer.decode(out)


__all__ = ["StepResult", "Stepper", "generate_text", "NonFiniteLogitsError",
           "EMPTY_PROMPT_NEWLINE"]
