"""What the prompt panel shows for a BERT-style encoder instead of the step controls.

An encoder does not generate: the user hides tokens behind ``[MASK]`` by clicking their chips
and reads the model's prediction for a position in the Prediction panel. This bar says so, counts
the masks, and holds the "Causal mask (as GPT)" checkbox, which runs the same weights under a
decoder's causal mask so the attention maps lose their upper triangle (``Session.set_causal_view``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QWidget

from explorer.theme import THEME
from model.step_result import StepResult

if TYPE_CHECKING:
    from explorer.session import Session

ENCODER_HINT = "Click a token to hide it behind [MASK] (again: restore it)"
NO_STEPS_TIP = ("An encoder fills masks, it does not generate: there is no next token to step "
                "to, so Step, Run and Back are not offered. Click a token to mask it instead; "
                "the Next token panel shows the model's prediction for it.")
CAUSAL_TIP = ("Run the same weights under a decoder's causal mask, as GPT sees its input: every "
              "token sees only itself and the tokens before it (the attention maps lose their "
              "upper triangle). The encoder was trained without it, so its predictions get worse.")


class EncoderBar(QWidget):
    """The hint, the number of masked tokens and the causal-mask checkbox (encoders only)."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("encoderBar")
        self.session = session
        self.hint = QLabel(ENCODER_HINT, self)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f"color: {THEME.accent2};")
        self.hint.setToolTip(NO_STEPS_TIP)
        self.causal = QCheckBox("Causal mask (as GPT)", self)
        self.causal.setToolTip(CAUSAL_TIP)
        self.causal.toggled.connect(self._on_toggled)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.hint, 1)
        lay.addWidget(self.causal, 0, Qt.AlignmentFlag.AlignTop)
        session.causal_view_changed.connect(self._on_causal_view)

    @Slot(bool)
    def _on_toggled(self, on: bool) -> None:
        self.session.set_causal_view(on)

    @Slot(bool)
    def _on_causal_view(self, on: bool) -> None:
        if self.causal.isChecked() != on:
            self.causal.blockSignals(True)
            self.causal.setChecked(on)
            self.causal.blockSignals(False)


def encoder_info(r: StepResult, block_size: int) -> str:
    """The line beside the hint: tokens, masks, the mask in use."""
    n = len(r.masked_positions or ())
    mask = "causal mask" if r.causal_view else "no causal mask"
    return (f"{r.T} tokens · {n} masked · {mask} · context {r.T}/{block_size}")


__all__ = ["EncoderBar", "encoder_info", "ENCODER_HINT", "NO_STEPS_TIP", "CAUSAL_TIP"]
