"""Test support for the "look inside" panels: a small real GPT, a Stepper, and a stand-in Session.

``FakeSession`` has the signals and attributes of explorer.session.Session (see .notes/API.md)
and runs a real :class:`model.stepper.Stepper` synchronously, so panels see real StepResults.
"""
from __future__ import annotations

import torch
from PySide6.QtCore import QObject, Signal

from model.ablation import NO_ABLATION, Ablation
from model.config import ModelConfig, SampleConfig
from model.head_effects import head_effects
from model.stepper import Stepper
from model.tokenizer import CharTokenizer
from model.transformer import GPT

TEXT = "hello there, general kenobi!\nthe quick brown fox jumps over the lazy dog.\n"
TOKENIZER = CharTokenizer.from_text(TEXT)


def tiny_model(pos_kind: str = "learned", n_layer: int = 2, n_head: int = 2, n_embd: int = 16,
               block_size: int = 64, norm: str = "pre", seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=TOKENIZER.vocab_size, block_size=block_size, n_layer=n_layer,
                      n_head=n_head, n_embd=n_embd, pos_kind=pos_kind, norm=norm, **kw)
    model = GPT(cfg)
    model.eval()
    # sharper, more varied attention than the 0.02-std init gives, so patterns are visible
    with torch.no_grad():
        for block in model.h:
            block.attn.c_attn.weight.mul_(12.0)
    return model


class FakeSession(QObject):
    model_changed = Signal()
    step_ready = Signal(object)
    sample_changed = Signal(object)
    busy_changed = Signal(bool)
    message = Signal(str)
    error = Signal(str, str)
    selected_token_changed = Signal(int)
    ablation_changed = Signal(object)
    heads_ranked = Signal(object)

    def __init__(self):
        super().__init__()
        self.network = None  # the model: the real Session never holds it (it stays in the worker)
        self.tokenizer = None
        self.config = None
        self.positional = None
        self.info = None
        self.result = None
        self.sample = SampleConfig(temperature=0.8, seed=1)
        self.selected_token = -1
        self.stepper: Stepper | None = None
        self.ablation = NO_ABLATION
        self.head_effects = None
        self.rank_requests = 0

    def set_model(self, model, tokenizer=TOKENIZER, info=None) -> None:
        self.network, self.tokenizer, self.config, self.info = model, tokenizer, model.config, info
        self.positional = model.pe.view()  # what the worker sends with a loaded model
        self.result = None
        self.selected_token = -1
        self.stepper = Stepper(model, tokenizer, self.sample)
        self.model_changed.emit()

    def _publish(self, r):
        self.result = r
        self.step_ready.emit(r)
        return r

    def set_prompt(self, text: str):
        return self._publish(self.stepper.set_prompt(text))

    def step(self, n: int = 1):
        r = None
        for _ in range(n):
            r = self._publish(self.stepper.step())
        return r

    def set_ablation(self, ablation) -> None:
        self.ablation = ablation
        self.head_effects = None
        self.ablation_changed.emit(ablation)
        self._publish(self.stepper.set_ablation(ablation))

    def toggle_head(self, layer: int, head: int) -> None:
        self.set_ablation(self.ablation.toggled(layer, head))

    def set_ablation_mode(self, mode: str) -> None:
        self.set_ablation(self.ablation.with_mode(mode))

    def restore_heads(self) -> None:
        self.set_ablation(Ablation(frozenset(), self.ablation.mode))

    def rank_heads(self) -> None:
        """Synchronous here (the real session asks the worker)."""
        self.rank_requests += 1
        r = self.result
        self.head_effects = head_effects(self.network, r.ids.tolist(), int(r.planned),
                                         self.ablation.mode)
        self.heads_ranked.emit(self.head_effects)

    def select_token(self, i: int) -> None:
        self.selected_token = int(i)
        self.selected_token_changed.emit(int(i))


def make_session(model=None, prompt: str = "hello there", steps: int = 0) -> FakeSession:
    s = FakeSession()
    s.set_model(model if model is not None else tiny_model())
    s.set_prompt(prompt)
    if steps:
        s.step(steps)
    return s


def shown(qtbot, panel):
    """Add ``panel`` to qtbot, show it at a fixed size and draw it once (no timer wait)."""
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    panel.show()
    qtbot.waitExposed(panel)
    panel.redraw_now()
    return panel
