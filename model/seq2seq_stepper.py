"""Stepping an encoder-decoder: the source encoded once, the target generated one token at a time.

:class:`Seq2SeqStepper` has the request API of :class:`model.stepper.Stepper` (what the GUI's
inference worker and :class:`model.branches.Branching` call): ``set_prompt`` sets the *source*
text, encodes it once (:meth:`EncoderDecoder.new_cache`: the memory and every decoder layer's
cross-attention keys and values), and starts the target with ``bos``; ``step`` samples the next
target token and runs that one token through the decoder's KV cache; ``back``, ``rewind_to``,
``reset`` and ``resample`` undo steps (the cache is cut back); ``redistribute`` re-ranks the
cached logits. Sampling is the one rule of :func:`model.sampling.next_token`, seeded per target
position, so ``planned`` is what ``step()`` picks.

Every :class:`StepResult` is about the target (``ids``, ``attention`` = the decoder's masked
self-attention, ``residual``, …) and also carries the source and what the encoder computed
(``source_*``, ``encoder_*``) and the decoder's attention over the source (``cross_*``), all
read-only numpy arrays recorded by the model's own capture path (:mod:`model.capture`).

The target never slides: it holds at most ``block_size`` tokens, ``bos`` included. Once the model
has written ``eos`` (or the target is full) ``step()`` refuses with a sentence and the result's
``note`` says so; ``back`` or a new source go on.
"""
from __future__ import annotations

import secrets

import numpy as np
import torch

from .ablation import NO_ABLATION, Ablation, HeadEffects
from .capture import Recording
from .capture_buffers import CaptureBuffers, new_buffers, store, to_numpy
from .config import CAPTURE_ALL, CAPTURE_NOTHING, CaptureSpec, ModelConfig, SampleConfig
from .context_window import inference
from .encoder_decoder import EncoderDecoder, Seq2SeqCache
from .generation_history import GenerationHistory, checked_lens_k
from .sampling import Distribution, next_token
from .step_result import StepResult
from .tokenizer import Tokenizer

DEFAULT_SAMPLE = SampleConfig()
FINISHED_NOTE = "the target is complete: the model wrote its end token"
GO_ON = "Go back, force another token or edit the source to go on."
FULL_NOTE = "the target has reached the block size ({}): no more steps"


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _stack(tensors: list[torch.Tensor]) -> np.ndarray | None:
    """L × (1, …) -> (L, …) read-only numpy (None when nothing was recorded)."""
    if not tensors:
        return None
    return _readonly(to_numpy(torch.stack([t[0] for t in tensors])).copy())


class Seq2SeqStepper(GenerationHistory):
    """Steps an encoder-decoder's target one token at a time; see the module docstring."""

    NOTHING_GENERATED = "no target token has been generated yet"

    def __init__(self, model: EncoderDecoder, tokenizer: Tokenizer,
                 sample: SampleConfig = DEFAULT_SAMPLE, capture: CaptureSpec = CAPTURE_ALL,
                 lens_k: int = 5):
        if model.config.kind != "encoder-decoder":
            raise ValueError(f"the sequence-to-sequence stepper needs an encoder-decoder; this "
                             f"model is a {model.config.kind}")
        self.model = model
        self.tokenizer = tokenizer
        self.config: ModelConfig = model.config
        self.sample = sample
        self.lens_k = checked_lens_k(model.config, tokenizer, lens_k)
        self._capture = capture
        self.auto_seed = secrets.randbits(32)
        self.result: StepResult | None = None
        self._source = ""
        self._src: list[int] = []  # source ids with eos
        self._ids: list[int] = []  # the target: bos + generated
        self._logits: list[np.ndarray] = []  # next-token logits after 0, 1, … generated tokens
        self._probs: list[float] = []
        self._ranks: list[int] = []
        self._forced: list[bool] = []
        self._draws: dict[int, int] = {}
        self._cache: Seq2SeqCache | None = None
        self._valid = 0  # target positions the decoder cache holds
        self._bufs: CaptureBuffers | None = None
        self._encoder: dict[str, np.ndarray | None] = {}
        self._ablated_from = 0
        self._intact: tuple[tuple[int, ...], np.ndarray] | None = None
        self._w_o: np.ndarray | None = None
        self.lookahead_hits = 0

    # -- public state ---------------------------------------------------------------------------
    @property
    def capture(self) -> CaptureSpec:
        return self._capture

    @property
    def ids(self) -> list[int]:
        """The target so far: ``bos`` and the generated tokens."""
        return list(self._ids)

    @property
    def source_ids(self) -> list[int]:
        return list(self._src)

    @property
    def text(self) -> str:
        """The target's text (without ``bos`` and a final ``eos``)."""
        ids = self._ids[1:]
        if ids and ids[-1] == self.config.eos_id:
            ids = ids[:-1]
        return self.tokenizer.decode(ids)

    @property
    def prompt_text(self) -> str:
        """The source text (what ``set_prompt`` was given, unknown characters dropped)."""
        return self._source

    @property
    def _prompt_len(self) -> int:
        return 1  # bos

    @property
    def finished(self) -> bool:
        """The last token is ``eos`` or the target is full: ``step()`` refuses."""
        return bool(self._ids) and (self._ids[-1] == self.config.eos_id and len(self._ids) > 1
                                    or len(self._ids) >= self.config.block_size)

    # -- public actions -------------------------------------------------------------------------
    def set_prompt(self, text: str, errors: str = "strict") -> StepResult:
        """Encode the source ``text`` once and start its target with ``bos``."""
        src = self.tokenizer.encode(text, errors=errors) + [self.config.eos_id]
        block = self.config.block_size
        if len(src) > block:
            raise ValueError(f"the source has {len(src) - 1} tokens; with its end token that is "
                             f"more than the model's block size {block}: shorten it")
        kept = self.tokenizer.decode(src[:-1])
        self._source, self._src = kept, src
        self._ids, self._probs, self._ranks, self._forced, self._draws = \
            [self.config.bos_id], [], [], [], {}
        try:
            self._logits = [self._rebuild()]
            self._ablated_from = 0
        except BaseException:
            self._ids, self._src = [], []
            raise
        return self._publish()

    def step(self, force: int | None = None) -> StepResult:
        """Sample the next target token (or take ``force``) and run it through the decoder."""
        self._need_prompt()
        if len(self._ids) >= self.config.block_size:
            raise ValueError(FULL_NOTE.format(self.config.block_size).capitalize() + ".")
        if force is None and self.finished:
            raise ValueError(f"{FINISHED_NOTE[0].upper()}{FINISHED_NOTE[1:]}. {GO_ON}")
        dist, draw, tok = self._plan()
        if force is not None:
            draw = None
            tok = int(force)
            if not 0 <= tok < self.config.vocab_size or tok != force:
                raise ValueError(f"forced token {force!r} is not a token id "
                                 f"(0..{self.config.vocab_size - 1})")
        self._ids.append(tok)
        try:
            logits = self._advance()
        except BaseException:
            self._ids.pop()
            self._valid = 0
            raise
        return self._chose(tok, dist, logits, force is not None, draw)

    def set_capture(self, capture: CaptureSpec) -> StepResult | None:
        self._capture = capture
        return self.refresh() if self._ids else None

    def refresh(self) -> StepResult:
        """Encode the source and run the target again (after the weights, the head mask or the
        capture changed). The latest logits are replaced; those kept for earlier steps are not."""
        self._need_prompt()
        self._intact = None
        self._w_o = None
        self._logits[-1] = self._rebuild()
        return self._publish()

    def set_ablation(self, ablation: Ablation) -> StepResult | None:
        """Switch heads of the decoder's masked self-attention off (zero ablation; layers and
        heads as in :class:`Ablation`) and run again; the empty ablation switches them on."""
        if not isinstance(ablation, Ablation):
            raise TypeError(f"expected an Ablation, got {type(ablation).__name__}")
        ablation.check(self.config)
        if ablation and ablation.mode != "zero":
            raise ValueError("an encoder-decoder's heads are switched off with zero ablation "
                             "only (mean ablation needs the whole context in one pass)")
        self.model.set_head_mask(torch.from_numpy(ablation.mask(self.config)) if ablation
                                 else None, "self")
        if not self._ids:
            return None
        self._logits[-1] = self._rebuild()
        self._ablated_from = len(self._logits) - 1
        return self._publish()

    def set_head_mask(self, mask, family: str) -> StepResult | None:
        """Switch heads of any family ("encoder", "self", "cross") on (1) or off (0): a
        (layers, heads) array, None for all on; the source is encoded again."""
        self.model.set_head_mask(None if mask is None else torch.as_tensor(mask), family)
        if not self._ids:
            return None
        self._logits[-1] = self._rebuild()
        self._ablated_from = len(self._logits) - 1
        return self._publish()

    @property
    def ablation(self) -> Ablation:
        """The decoder self-attention heads switched off now."""
        m = self.model.head_masks.get("self")
        if m is None:
            return NO_ABLATION
        off = (m == 0).nonzero().tolist()
        return Ablation(frozenset((int(a), int(b)) for a, b in off), "zero")

    def rank_heads(self, mode: str = "zero") -> HeadEffects:
        """How switching each head of the decoder's masked self-attention off alone changes
        log p(planned token) for the current target: one pass per head (these models are
        small), the model's own head masks untouched."""
        self._need_prompt()
        if mode != "zero":
            raise ValueError("an encoder-decoder's heads are ranked with zero ablation only")
        model, cfg = self.model, self.config
        token = int(self.result.planned) if self.result is not None else self._plan()[2]
        dev = model.device
        src = torch.tensor([self._src], device=dev)
        tgt = torch.tensor([self._ids], device=dev)
        saved = dict(model.head_masks)
        delta = np.zeros((cfg.n_layer, cfg.n_head), dtype=np.float32)
        try:
            with inference(model):
                model.head_masks.pop("self", None)
                logits, _ = model(src, tgt, record=Recording(spec=CAPTURE_NOTHING))
                base = float(torch.log_softmax(logits[0, -1].float(), -1)[token])
                for layer in range(cfg.n_layer):
                    for head in range(cfg.n_head):
                        mask = torch.ones((cfg.n_layer, cfg.n_head), device=dev)
                        mask[layer, head] = 0
                        model.head_masks["self"] = mask
                        logits, _ = model(src, tgt, record=Recording(spec=CAPTURE_NOTHING))
                        lp = float(torch.log_softmax(logits[0, -1].float(), -1)[token])
                        delta[layer, head] = lp - base
        finally:
            model.head_masks.clear()
            model.head_masks.update(saved)
        return HeadEffects(token=token, mode=mode, base_logprob=base, delta=delta)

    def lookahead(self) -> bool:
        """Not run ahead: a step of these small decoders costs a few milliseconds."""
        return False

    @property
    def has_lookahead(self) -> bool:
        return False

    # -- internals ------------------------------------------------------------------------------
    def _need_prompt(self) -> None:
        if not self._ids:
            raise RuntimeError("no source yet: call set_prompt() first")

    def _plan(self) -> tuple[Distribution, int, int]:
        pos = len(self._ids)
        nxt = next_token(self._logits[-1], self.sample, self.auto_seed, pos, self.draw_index(pos))
        return nxt.dist, nxt.draw, nxt.token

    def _shrink(self, n_generated: int, rebuild: bool = True) -> None:
        # rebuild: unused (the decoder cache is cut back the same way for every caller)
        n = 1 + n_generated
        del self._ids[n:], self._probs[n_generated:], self._ranks[n_generated:]
        del self._forced[n_generated:], self._logits[n_generated + 1:]
        if self._cache is not None and self._valid >= n:
            self._cache.decoder.truncate(n)  # the buffers keep their rows until copy-on-write
            self._valid = n
        if len(self._logits) - 1 < self._ablated_from:
            self._logits[-1] = self._rebuild()
            self._ablated_from = len(self._logits) - 1

    def _rebuild(self) -> np.ndarray:
        """Encode the source and run the whole target from an empty decoder cache into fresh
        buffers; return the next-token logits."""
        model, spec = self.model, self._capture
        self._valid = 0
        self._bufs = None
        with inference(model):
            src = torch.tensor([self._src], dtype=torch.long, device=model.device)
            rec = Recording(spec=spec)
            self._cache = model.new_cache(src, record=rec if spec.any else None)
            self._encoder = self._encoder_views(rec) if spec.any else {}
            return self._run(self._ids, past=0)

    def _advance(self) -> np.ndarray:
        """The last target token is new: one cached row (or the whole target again)."""
        if self._cache is None or self._valid != len(self._ids) - 1:
            return self._rebuild()
        with inference(self.model):
            return self._run(self._ids[-1:], past=self._valid)

    def _run(self, new: list[int], past: int) -> np.ndarray:
        model, spec = self.model, self._capture
        idx = torch.tensor([new], dtype=torch.long, device=model.device)
        rec = Recording(spec=spec)
        rec.qk_scores = spec.scores  # the results compute the scores from the queries and keys
        if spec.any and self._bufs is None:
            self._bufs = new_buffers(self.config, spec, self.lens_k, model.pe.additive,
                                     rows=past + len(new), source_len=len(self._src))
        logits, _ = model(None, idx, cache=self._cache, record=rec if spec.any else None)
        self._valid = past + len(new)
        if spec.any:
            self._bufs.make_writable(past)
            self._bufs.reserve(past + len(new))
            store(self._bufs, rec, spec, past, self.lens_k)
        out = to_numpy(logits[0, -1]).copy()
        out.flags.writeable = False
        return out

    def _encoder_views(self, rec: Recording) -> dict[str, np.ndarray | None]:
        """The encoder's recorded values as read-only numpy arrays (computed once per source)."""
        enc = rec.encoder
        out: dict[str, np.ndarray | None] = {
            "encoder_attention": _stack(rec.enc_attn_probs),
            "encoder_scores": _stack(rec.enc_attn_scores),
        }
        if enc is None:
            return out
        out.update(encoder_residual=_stack(enc.resid), encoder_attn_out=_stack(enc.attn_out),
                   encoder_mlp_out=_stack(enc.mlp_out), encoder_ffn=_stack(enc.ffn_hidden),
                   encoder_norm_stats=_stack(enc.norm_stats))
        out["encoder_tok_emb"] = None if enc.tok_emb is None else \
            _readonly(to_numpy(enc.tok_emb[0]).copy())
        out["encoder_pos_emb"] = None if enc.pos_emb is None else \
            _readonly(to_numpy(enc.pos_emb).copy())
        return out

    def _note(self) -> str:
        if self.finished:
            if len(self._ids) >= self.config.block_size:
                return FULL_NOTE.format(self.config.block_size)
            return FINISHED_NOTE
        if len(self._src) == 1:
            return "empty source: the encoder reads only its end token"
        return ""

    def _publish(self, chosen: int | None = None, chosen_prob: float | None = None,
                 chosen_rank: int | None = None, forced: bool = False,
                 chosen_draw: int | None = None) -> StepResult:
        t = len(self._ids)
        probs = np.full(t, np.nan, dtype=np.float32)
        ranks = np.full(t, -1, dtype=np.int64)
        forced_arr = np.zeros(t, dtype=bool)
        probs[1:] = self._probs
        ranks[1:] = self._ranks
        forced_arr[1:] = self._forced
        logits = self._logits[-1]
        dist, draw, planned = self._plan()
        views = self._bufs.views(t) if self._bufs is not None and self._capture.any else {}
        ablation = self.ablation
        intact = self._intact_logits() if ablation else None
        ids = np.asarray(self._ids, dtype=np.int64)
        src = np.asarray(self._src, dtype=np.int64)
        for a in (probs, ranks, forced_arr, ids, src):
            a.flags.writeable = False
        tok = self.tokenizer
        self.result = StepResult(
            ids=ids, tokens=tok.token_strs(self._ids), pieces=tok.token_pieces(self._ids),
            n_prompt=1, cropped=0, token_probs=probs, token_ranks=ranks, chosen=chosen,
            chosen_prob=chosen_prob, chosen_rank=chosen_rank, forced=forced, logits=logits,
            dist=dist, planned=planned, sample=self.sample, auto_seed=self.auto_seed,
            attention=views.get("attention"), scores=views.get("scores"),
            residual=views.get("residual"), attn_out=views.get("attn_out"),
            mlp_out=views.get("mlp_out"), ffn=views.get("ffn"), tok_emb=views.get("tok_emb"),
            pos_emb=views.get("pos_emb"), lens_ids=views.get("lens_ids"),
            lens_probs=views.get("lens_probs"), n_generated=self.n_generated,
            config=self.config, note=self._note(), token_forced=forced_arr, draw=draw,
            chosen_draw=chosen_draw, norm_stats=views.get("norm_stats"),
            q=views.get("q"), k=views.get("k"), v=views.get("v"), heads=views.get("heads"),
            w_o=self._output_projections() if self._capture.qkv else None,
            ablation=ablation, intact_logits=intact,
            source_ids=src, source_tokens=tok.token_strs(self._src),
            source_pieces=tok.token_pieces(self._src),
            cross_attention=views.get("cross_attention"), cross_scores=views.get("cross_scores"),
            cross_out=views.get("cross_out"), **self._encoder)
        return self.result

    def _output_projections(self) -> np.ndarray:
        """(L, C, C) the decoder self-attention's W_O of every layer."""
        if self._w_o is None:
            w = torch.stack([b.attn.c_proj.weight.detach() for b in self.model.h])
            self._w_o = _readonly(to_numpy(w).copy())
        return self._w_o

    def _intact_logits(self) -> np.ndarray:
        """The next-token logits with every head on: one pass without a cache or a recording."""
        key = (*self._src, -1, *self._ids)
        if self._intact is not None and self._intact[0] == key:
            return self._intact[1]
        model = self.model
        masks = dict(model.head_masks)
        try:
            model.head_masks.clear()
            with inference(model):
                dev = model.device
                logits, _ = model(torch.tensor([self._src], device=dev),
                                  torch.tensor([self._ids], device=dev),
                                  record=Recording(spec=CAPTURE_NOTHING))
        finally:
            model.head_masks.update(masks)
        out = _readonly(to_numpy(logits[0, -1]).copy())
        self._intact = (key, out)
        return out


__all__ = ["Seq2SeqStepper", "FINISHED_NOTE", "FULL_NOTE"]
