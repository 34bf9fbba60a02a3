"""What a generating stepper remembers of its text, and the actions that move through it.

:class:`GenerationHistory` is shared by the decoder's :class:`model.stepper.Stepper` and the
encoder-decoder's :class:`model.seq2seq_stepper.Seq2SeqStepper`: the generated tokens with the
logits, probability and rank each was chosen with, the draw index of every position (so a
resample draws again), and back / rewind / reset / resample / redistribute. A stepper keeps
its token ids in ``_ids`` (``_prompt_len`` of them before the generated ones) and provides
``_need_prompt``, ``_shrink(n_generated, rebuild)``, ``_publish(...)`` and ``step()``.
"""
from __future__ import annotations

import operator

import numpy as np

from .config import ModelConfig, SampleConfig
from .sampling import Distribution
from .step_result import StepResult
from .tokenizer import Tokenizer


def checked_lens_k(config: ModelConfig, tokenizer: Tokenizer, lens_k: int) -> int:
    """What every stepper (decoder, encoder-decoder, masked encoder) checks of what it is given:
    the tokenizer belongs to the model, and the logit lens' top-k is a whole number >= 1.
    Returns the top-k, at most the vocabulary."""
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's "
                         f"vocabulary has {config.vocab_size}: they do not belong together")
    if not isinstance(lens_k, int) or lens_k < 1:
        raise ValueError(f"lens_k={lens_k!r} must be a whole number >= 1")
    return min(lens_k, config.vocab_size)


class GenerationHistory:
    #: the end of "nothing to undo: …" when no token has been generated
    NOTHING_GENERATED = "no token has been generated after the prompt"

    sample: SampleConfig
    auto_seed: int
    _ids: list[int]
    _logits: list[np.ndarray]  # next-token logits after 0, 1, … generated tokens
    _probs: list[float]
    _ranks: list[int]
    _forced: list[bool]
    _draws: dict[int, int]

    # -- what a stepper provides -----------------------------------------------------------------
    @property
    def _prompt_len(self) -> int:
        raise NotImplementedError

    def _need_prompt(self) -> None:
        raise NotImplementedError

    def _shrink(self, n_generated: int, rebuild: bool = True) -> None:
        raise NotImplementedError

    def _publish(self, chosen: int | None = None, chosen_prob: float | None = None,
                 chosen_rank: int | None = None, forced: bool = False,
                 chosen_draw: int | None = None) -> StepResult:
        raise NotImplementedError

    def step(self, force: int | None = None) -> StepResult:
        raise NotImplementedError

    # -- state ---------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The seed in use: the sample config's, or one fixed when the stepper was made."""
        return self.sample.seed if self.sample.seed is not None else self.auto_seed

    @property
    def n_generated(self) -> int:
        return max(0, len(self._ids) - self._prompt_len)

    def draw_index(self, position: int) -> int:
        return self._draws.get(position, 0)

    def logits_at(self, n_generated: int) -> np.ndarray:
        """The next-token logits kept after the first ``n_generated`` generated tokens: what
        the token at that place was drawn from (the model as it ran then)."""
        if not 0 <= n_generated < len(self._logits):
            raise ValueError(f"no logits after {n_generated!r} generated tokens: there are "
                             f"{self.n_generated}")
        return self._logits[n_generated]

    # -- actions -------------------------------------------------------------------------------
    def _chose(self, tok: int, dist: Distribution, logits: np.ndarray, forced: bool,
               draw: int | None) -> StepResult:
        """Remember the token a step appended (and the logits after it) and publish."""
        prob, rank = float(dist.probs[tok]), dist.rank_of(tok)
        self._logits.append(logits)
        self._probs.append(prob)
        self._ranks.append(rank)
        self._forced.append(forced)
        return self._publish(chosen=tok, chosen_prob=prob, chosen_rank=rank, forced=forced,
                             chosen_draw=draw)

    def back(self) -> StepResult:
        """Undo the last generated token (ValueError if there is none)."""
        self._need_prompt()
        if self.n_generated == 0:
            raise ValueError(f"nothing to undo: {self.NOTHING_GENERATED}")
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
        """Back to the prompt (an encoder-decoder: to ``bos``, the source stays encoded)."""
        return self.rewind_to(0)

    def resample(self) -> StepResult:
        """Undo the last token and draw it again with the next draw index for its position."""
        self._need_prompt()
        if self.n_generated == 0:
            raise ValueError(f"nothing to resample: {self.NOTHING_GENERATED}")
        self._shrink(self.n_generated - 1, rebuild=False)  # step() runs the model once
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


__all__ = ["GenerationHistory", "checked_lens_k"]
