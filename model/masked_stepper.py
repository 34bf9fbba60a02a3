"""A BERT-style encoder explored one mask at a time: what the GUI shows for an encoder.

A :class:`MaskedStepper` holds a text for a ``config.kind == "encoder"`` model. The user hides
tokens behind ``[MASK]`` (:meth:`~MaskedStepper.toggle_mask`; a second toggle restores the
token), picks the position whose prediction is shown (:meth:`~MaskedStepper.select`), and can
run the same weights under a decoder's causal mask for comparison
(:meth:`~MaskedStepper.set_causal_view`). Each change of the input runs the whole text through
the model once (an encoder has no KV cache: every token sees every other one); choosing another
position or other sampling settings only re-ranks the logits kept for every position.

Every action returns a :class:`~model.step_result.StepResult` whose ``attention``/``scores`` are
the encoder's self-attention (full rows, no causal mask unless ``causal_view``), whose
``logits``/``dist`` are the prediction at ``predicted_at``, and whose ``masked_positions`` say
which tokens are hidden. ``[MASK]`` typed in the text (as ``[MASK]`` or the mask character)
counts as masked too; it has no original to restore.
"""
from __future__ import annotations

import operator
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .ablation import ABLATION_MODES, Ablation, HeadEffects
from .capture import Recording
from .capture_buffers import new_buffers, store, to_numpy
from .config import CAPTURE_ALL, CAPTURE_NOTHING, CaptureSpec, ModelConfig, SampleConfig
from .context_window import inference
from .generation_history import checked_lens_k
from .lens import lens_topk
from .sampling import next_token
from .step_result import StepResult
from .tokenizer import MASK_CHAR, MASK_TEXT, Tokenizer
from .transformer import GPT

DEFAULT_SAMPLE = SampleConfig()
EMPTY_TEXT_NOTE = "empty text: the encoder sees one [MASK] and predicts what it hides"


class MaskedStepper:
    """Masks, predictions and the causal comparison for an encoder; see the module docstring."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, sample: SampleConfig = DEFAULT_SAMPLE,
                 capture: CaptureSpec = CAPTURE_ALL, lens_k: int = 5):
        cfg = model.config
        if cfg.kind != "encoder":
            raise ValueError(f"the masked stepper explores encoder models; this one is a "
                             f"{cfg.kind} (model.stepper.Stepper steps decoders)")
        self.model = model
        self.tokenizer = tokenizer
        self.config: ModelConfig = cfg
        self.sample = sample
        self.lens_k = checked_lens_k(cfg, tokenizer, lens_k)
        self._capture = capture
        self.auto_seed = secrets.randbits(32)  # used while sample.seed is None
        self.result: StepResult | None = None
        self._original: list[int] = []  # the window's ids as typed ([MASK] typed stays one)
        self._hidden: set[int] = set()  # positions masked by toggle_mask
        self._selected = 0
        self._causal = False
        self._cropped = 0
        self._note = ""
        self._logits: np.ndarray | None = None  # (T, V) the prediction at every position
        self._views: dict[str, np.ndarray] = {}
        self._intact: tuple[tuple, np.ndarray] | None = None  # (key, (T, V) logits, every head on)
        self._w_o: np.ndarray | None = None
        self.lookahead_hits = 0  # the worker's interface: nothing is ever run ahead here

    # -- public state ---------------------------------------------------------------------------
    @property
    def capture(self) -> CaptureSpec:
        return self._capture

    @property
    def seed(self) -> int:
        return self.sample.seed if self.sample.seed is not None else self.auto_seed

    @property
    def ids(self) -> list[int]:
        """What the model sees: the text with the masked positions replaced by [MASK]."""
        m = self.config.mask_id
        return [m if i in self._hidden else t for i, t in enumerate(self._original)]

    @property
    def original_ids(self) -> list[int]:
        return list(self._original)

    @property
    def masked_positions(self) -> tuple[int, ...]:
        m = self.config.mask_id
        return tuple(i for i, t in enumerate(self.ids) if t == m)

    @property
    def predicted_at(self) -> int:
        return self._selected

    @property
    def causal_view(self) -> bool:
        return self._causal

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.ids)

    @property
    def n_generated(self) -> int:
        return 0  # an encoder fills masks; it does not generate

    @property
    def ablation(self) -> Ablation:
        return self.model.ablation

    # -- public actions -------------------------------------------------------------------------
    def set_prompt(self, text: str, errors: str = "strict") -> StepResult:
        """Start over from ``text`` (``[MASK]`` in it becomes the mask token); no position is
        masked by hand. Longer than the block size: the model sees the last block of tokens.
        The position shown is the first [MASK], else the one shown before if it still exists."""
        ids = self.tokenizer.encode(text.replace(MASK_TEXT, MASK_CHAR), errors=errors)
        note = ""
        if not ids:
            ids, note = [self.config.mask_id], EMPTY_TEXT_NOTE
        block = self.config.block_size
        cropped = max(0, len(ids) - block)
        if cropped:
            note = (f"the text is longer than the block size ({block}): the encoder sees its last "
                    f"{block} tokens, the first {cropped} are cropped")
        old = self._original, self._hidden, self._selected, self._cropped, self._note
        self._original, self._hidden, self._cropped, self._note = ids[cropped:], set(), cropped, note
        typed = self.masked_positions
        self._selected = typed[0] if typed else min(self._selected, len(self._original) - 1)
        try:
            self._run()
        except BaseException:
            self._original, self._hidden, self._selected, self._cropped, self._note = old
            raise
        return self._publish()

    def toggle_mask(self, position: int, select: bool = True) -> StepResult:
        """Hide the token at ``position`` behind [MASK], or restore it if it is hidden; with
        ``select`` its prediction is the one shown. A [MASK] typed in the text has nothing to
        restore (ValueError)."""
        p = self._position(position)
        if p in self._hidden:
            self._hidden.discard(p)
        elif self._original[p] == self.config.mask_id:
            raise ValueError(f"token {p} is [MASK] in the text itself: there is no original to "
                             "restore (edit the text to change it)")
        else:
            self._hidden.add(p)
        try:
            self._run()
        except BaseException:
            self._hidden ^= {p}
            raise
        if select:
            self._selected = p
        return self._publish()

    def select(self, position: int) -> StepResult:
        """Show the prediction at ``position`` (no forward pass: every position's is kept)."""
        self._selected = self._position(position)
        return self._publish()

    def set_causal_view(self, on: bool) -> StepResult | None:
        """Run the same weights under a decoder's causal mask (True) or as trained (False)."""
        self._causal = bool(on)
        if not self._original:
            return None
        self._run()
        return self._publish()

    def redistribute(self, sample: SampleConfig) -> StepResult:
        """New sampling settings for the shown prediction, from the kept logits."""
        if not isinstance(sample, SampleConfig):
            raise TypeError(f"expected a SampleConfig, got {type(sample).__name__}")
        self.sample = sample
        self._need_text()
        return self._publish()

    def set_capture(self, capture: CaptureSpec) -> StepResult | None:
        """Change what is recorded; the text is run again once so the result has it."""
        self._capture = capture
        return self.refresh() if self._original else None

    def refresh(self) -> StepResult:
        """Run the text again (after the weights or the head mask changed)."""
        self._need_text()
        self._intact = None
        self._w_o = None
        self._run()
        return self._publish()

    def set_ablation(self, ablation: Ablation) -> StepResult | None:
        """Switch the heads of ``ablation`` off (the empty one switches every head back on) and
        run the text again; the result then also holds the intact prediction
        (``intact_logits``) at the shown position."""
        if not isinstance(ablation, Ablation):
            raise TypeError(f"expected an Ablation, got {type(ablation).__name__}")
        ablation.check(self.config)
        self.model.set_ablation(ablation)
        if not self._original:
            return None
        self._run()
        return self._publish()

    def rank_heads(self, mode: str = "zero") -> HeadEffects:
        """How switching each head off alone changes log p of the token that stands at the
        shown position (the hidden one; for a [MASK] typed in the text, the planned fill):
        one batched pass, a row per head and one with every head on, under the mask mode in
        use. The model's own head mask is untouched."""
        self._need_text()
        if mode not in ABLATION_MODES:
            raise ValueError(f"ablation mode {mode!r} must be one of {', '.join(ABLATION_MODES)}")
        model, cfg, p = self.model, self.config, self._selected
        token = self._original[p]
        if token == cfg.mask_id:
            token = int(self.result.planned) if self.result is not None else token
        L, H = cfg.n_layer, cfg.n_head
        masks = torch.ones((L * H + 1, L * H), device=model.device)
        masks[1:].fill_diagonal_(0.0)  # row 1 + i switches head i (layer-major) off
        idx = torch.tensor([self.ids], dtype=torch.long, device=model.device)
        saved = model.head_mask, model.head_ablation
        try:
            model.set_head_mask(masks.view(L * H + 1, L, H), mode)
            with inference(model), self._mask_mode():
                logits, _ = model(idx.expand(L * H + 1, -1), all_logits=True,
                                  record=Recording(spec=CAPTURE_NOTHING))
            lp = torch.log_softmax(logits[:, p].float(), dim=-1)[:, token]  # (L·H + 1,)
        finally:
            model.head_mask, model.head_ablation = saved
        base = float(lp[0])
        delta = to_numpy(lp[1:] - lp[0]).reshape(L, H)
        return HeadEffects(token=int(token), mode=mode, base_logprob=base, delta=delta)

    def lookahead(self) -> bool:
        """Nothing to run ahead: a new mask changes every position's prediction."""
        return False

    @property
    def has_lookahead(self) -> bool:
        return False

    # -- internals ------------------------------------------------------------------------------
    def _need_text(self) -> None:
        if not self._original:
            raise RuntimeError("no text yet: call set_prompt() first")

    def _position(self, position: int) -> int:
        self._need_text()
        try:
            p = operator.index(position)
        except TypeError:
            raise ValueError(f"position {position!r} is not a whole number") from None
        t = len(self._original)
        if not 0 <= p < t:
            raise ValueError(f"position {p} is outside the text: it has {t} tokens "
                             f"(positions 0..{t - 1})")
        return p

    @contextmanager
    def _mask_mode(self) -> Iterator[None]:
        """The encoder's blocks under a causal mask while ``causal_view`` is on."""
        blocks = [b.attn for b in self.model.h]
        before = [a.causal for a in blocks]
        for a in blocks:
            a.causal = self._causal
        try:
            yield
        finally:
            for a, c in zip(blocks, before, strict=True):
                a.causal = c

    def _run(self) -> None:
        """One pass of the whole input: the logits at every position and what is captured."""
        model, spec, cfg = self.model, self._capture, self.config
        ids = self.ids
        t = len(ids)
        idx = torch.tensor([ids], dtype=torch.long, device=model.device)
        rec = Recording(spec=spec)
        rec.qk_scores = spec.scores  # the results compute the scores from the queries and keys
        rec.defer_lens = True  # top-k only (model.lens)
        with inference(model), self._mask_mode():
            logits, _ = model(idx, all_logits=True, record=rec)  # (1, T, V)
            lens = None
            if spec.logit_lens:
                lens = lens_topk(lambda x: model.lm_head(model.ln_f(x)),
                                 rec.resid[-(cfg.n_layer + 1):], cfg.vocab_size,
                                 self.lens_k)[:3]  # (values, indices, first); not the logits
            views: dict[str, np.ndarray] = {}
            if spec.any:
                bufs = new_buffers(cfg, spec, self.lens_k, model.pe.additive, rows=t)
                store(bufs, rec, spec, 0, self.lens_k, lens)
                views = bufs.views(t)  # fresh buffers each pass: older results never change
        out = to_numpy(logits[0]).copy()  # (T, V)
        out.flags.writeable = False
        self._logits, self._views = out, views

    def _intact_logits(self) -> np.ndarray:
        """(T, V) the prediction at every position with every head on: one pass without a
        recording, kept while the input and the mask mode stay the same."""
        key = (tuple(self.ids), self._causal)
        if self._intact is not None and self._intact[0] == key:
            return self._intact[1]
        model = self.model
        mask, mode = model.head_mask, model.head_ablation
        try:
            model.set_head_mask(None)
            with inference(model), self._mask_mode():
                idx = torch.tensor([self.ids], dtype=torch.long, device=model.device)
                logits, _ = model(idx, all_logits=True, record=Recording(spec=CAPTURE_NOTHING))
        finally:
            model.head_mask, model.head_ablation = mask, mode
        out = to_numpy(logits[0]).copy()
        out.flags.writeable = False
        self._intact = (key, out)
        return out

    def _output_projections(self) -> np.ndarray:
        """(L, C, C) every layer's W_O, copied once per set of weights."""
        if self._w_o is None:
            w = torch.stack([b.attn.c_proj.weight.detach() for b in self.model.h])
            self._w_o = to_numpy(w).copy()
            self._w_o.flags.writeable = False
        return self._w_o

    def _publish(self) -> StepResult:
        ids_list = self.ids
        t = len(ids_list)
        p = self._selected
        logits = self._logits[p]
        position = self._cropped + t  # the draw's position: what StepResult.with_sample uses
        nxt = next_token(logits, self.sample, self.auto_seed, position, 0)
        ablation = self.model.ablation
        intact = self._intact_logits()[p] if ablation else None
        views = self._views

        def frozen(a: np.ndarray) -> np.ndarray:
            a.flags.writeable = False
            return a

        ids = frozen(np.asarray(ids_list, dtype=np.int64))
        self.result = StepResult(
            ids=ids, tokens=self.tokenizer.token_strs(ids_list),
            pieces=self.tokenizer.token_pieces(ids_list), n_prompt=t, cropped=self._cropped,
            token_probs=frozen(np.full(t, np.nan, dtype=np.float32)),
            token_ranks=frozen(np.full(t, -1, dtype=np.int64)), chosen=None, chosen_prob=None,
            chosen_rank=None, forced=False, logits=logits, dist=nxt.dist, planned=nxt.token,
            sample=self.sample, auto_seed=self.auto_seed,
            attention=views.get("attention"), scores=views.get("scores"),
            residual=views.get("residual"), attn_out=views.get("attn_out"),
            mlp_out=views.get("mlp_out"), ffn=views.get("ffn"), tok_emb=views.get("tok_emb"),
            pos_emb=views.get("pos_emb"), lens_ids=views.get("lens_ids"),
            lens_probs=views.get("lens_probs"), n_generated=0, config=self.config,
            note=self._note, token_forced=frozen(np.zeros(t, dtype=bool)), draw=0,
            norm_stats=views.get("norm_stats"), q=views.get("q"), k=views.get("k"),
            v=views.get("v"), heads=views.get("heads"),
            w_o=self._output_projections() if self._capture.qkv else None,
            ablation=ablation, intact_logits=intact,
            masked_positions=self.masked_positions, predicted_at=p, causal_view=self._causal,
            original_ids=frozen(np.asarray(self._original, dtype=np.int64)))
        return self.result


__all__ = ["MaskedStepper", "EMPTY_TEXT_NOTE"]
