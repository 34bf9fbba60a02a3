"""Branches panel: every continuation taken after the prompt, and two of them compared.

Rewinding, Resample or clicking another bar keeps the old continuation (model.branches). The
list shows each one with its text, its length and its log-probability under the model (at
temperature 1: the probability of that very text, whatever the sampling settings were); click
one to switch to it (the worker rewinds to where the two part and replays the rest). Below,
the current branch is compared with another, token by token from where they part: the
probability the model gave each token, and the total log-probability of each.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.redraws import LiveRedraw
from explorer.theme import THEME, mono_font, prob_color
from model.branches import Branches

if TYPE_CHECKING:
    from explorer.session import Session

INTRO = ("Every continuation after the prompt is kept; click one to switch to it. \u2503 marks "
         "where it parts from the current one (on the token strip: a notch). log p: the whole "
         "continuation's log-probability under the model (temperature 1).")
SHARED_SHOWN = 12  # characters of the shared text shown before the point where a branch parts


def visible(text: str) -> str:
    """Text for one table cell: line breaks and tabs made visible."""
    return text.replace("\n", "\u23ce").replace("\t", "\u21e5")


def _item(text: str, align: Qt.AlignmentFlag | None = None) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if align is not None:
        it.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
    return it


def _prob_item(logp: float) -> QTableWidgetItem:
    p = math.exp(logp)
    it = _item(f"{p:.3f}", Qt.AlignmentFlag.AlignRight)
    it.setBackground(QBrush(prob_color(p)))
    it.setForeground(QBrush(QColor("#0b0c10")))
    return it


class BranchesPanel(LiveRedraw, QWidget):
    """The list of branches (click: switch) and a token-by-token comparison of two."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.leaves: list[int] = []  # the branch of each row of the list
        self.other = -1  # the branch compared with the current one (-1: none)
        self._last_current = -1
        self._init_redraw()

        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        intro.setStyleSheet(f"color: {THEME.muted};")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "Continuation", "Tokens", "log p"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setFont(mono_font(THEME.font_pt))
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for c in (0, 2, 3):
            head.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.cellClicked.connect(self._on_clicked)
        self.table.setToolTip("Click a continuation to switch to it")

        self.other_box = QComboBox()
        self.other_box.setToolTip("The branch compared with the current one")
        self.other_box.activated.connect(self._on_other)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.compare = QTableWidget(0, 5)
        self.compare.setHorizontalHeaderLabels(
            ["Position", "This branch", "p", "Other branch", "p"])
        self.compare.verticalHeader().hide()
        self.compare.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.compare.setFont(mono_font(THEME.font_pt))
        ch = self.compare.horizontalHeader()
        for c in range(5):
            ch.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch if c in (1, 3)
                                    else QHeaderView.ResizeMode.ResizeToContents)

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(intro)
        tl.addWidget(self.table, 1)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Compare this branch with"))
        row.addWidget(self.other_box, 1)
        bl.addLayout(row)
        bl.addWidget(self.summary)
        bl.addWidget(self.compare, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setChildrenCollapsible(False)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)

        session.branches_changed.connect(self.schedule_redraw)
        session.model_changed.connect(self.schedule_redraw)

    # -- drawing ------------------------------------------------------------------------------
    def redraw_now(self) -> None:
        if not self._begin_redraw():
            return
        b = self.session.branches
        tok = self.session.tokenizer
        if tok is None:
            return
        self.leaves = b.leaves()
        here = b.current_leaf() if len(b) else -1
        if here != self._last_current:
            # the branch just left is the natural one to compare with
            if self._last_current in self.leaves and self._last_current != here:
                self.other = self._last_current
            self._last_current = here
        if self.other not in self.leaves or self.other == here:
            rest = [leaf for leaf in self.leaves if leaf != here]
            self.other = rest[-1] if rest else -1
        self._fill_list(b, here, tok.decode)
        self._fill_other_box(b, here, tok.decode)
        self._fill_compare(b, here, tok.token_pieces)

    def _label(self, b: Branches, leaf: int, decode, here: int = -1) -> str:
        """The continuation's text; for another branch than ``here``, the end of what they
        share, a bar, and where this one went instead."""
        toks = b.tokens(leaf)
        if here < 0 or leaf == here:
            return visible(decode(toks))
        k = b.split_with(leaf, here)
        shared = visible(decode(toks[:k]))
        if len(shared) > SHARED_SHOWN:
            shared = "\u2026" + shared[-SHARED_SHOWN:]
        return f"{shared}\u2503{visible(decode(toks[k:]))}"

    def _fill_list(self, b: Branches, here: int, decode) -> None:
        t = self.table
        t.setRowCount(len(self.leaves))
        bold = mono_font(THEME.font_pt)
        bold.setBold(True)
        for row, leaf in enumerate(self.leaves):
            mark = "\u25b6" if leaf == here else ""
            depth = b.nodes[leaf].depth
            at = ""
            if leaf == here and b.current != leaf:
                at = f" (at token {b.nodes[b.current].depth if b.current >= 0 else 0})"
            items = [_item(mark, Qt.AlignmentFlag.AlignCenter),
                     _item(self._label(b, leaf, decode, here)),
                     _item(f"{depth}{at}", Qt.AlignmentFlag.AlignRight),
                     _item(f"{b.total_logprob(leaf):.2f}", Qt.AlignmentFlag.AlignRight)]
            for col, it in enumerate(items):
                if leaf == here:
                    it.setFont(bold)
                t.setItem(row, col, it)

    def _fill_other_box(self, b: Branches, here: int, decode) -> None:
        box = self.other_box
        box.blockSignals(True)
        box.clear()
        for leaf in self.leaves:
            if leaf != here:
                box.addItem(f"#{self.leaves.index(leaf) + 1}: "
                            f"{self._label(b, leaf, decode, here)[:80]}", leaf)
        box.setCurrentIndex(max(0, box.findData(self.other)))
        box.setEnabled(box.count() > 0)
        box.blockSignals(False)

    def _fill_compare(self, b: Branches, here: int, pieces) -> None:
        t = self.compare
        other = self.other
        if here < 0 or other < 0:
            t.setRowCount(0)
            self.summary.setText("Only one continuation so far: rewind, resample or click "
                                 "another bar to make a second.")
            return
        shared = b.split_with(here, other)
        ta, tb = b.tokens(here), b.tokens(other)
        la, lb = b.logprobs(here), b.logprobs(other)
        n = max(len(ta), len(tb)) - shared
        t.setRowCount(n)
        for row in range(n):
            k = shared + row
            t.setItem(row, 0, _item(str(b.n_prompt + k), Qt.AlignmentFlag.AlignRight))
            for col, (toks, lps) in ((1, (ta, la)), (3, (tb, lb))):
                if k < len(toks):
                    t.setItem(row, col, _item(pieces([toks[k]])[0]))
                    t.setItem(row, col + 1, _prob_item(lps[k]))
                else:
                    t.setItem(row, col, _item(""))
                    t.setItem(row, col + 1, _item(""))
        sa, sb = sum(la[shared:]), sum(lb[shared:])
        text = (f"They share the first {shared} generated tokens. From there, "
                f"<b>this branch</b>: {len(ta) - shared} tokens, log p = {sa:.2f}; "
                f"<b>the other</b>: {len(tb) - shared} tokens, log p = {sb:.2f}. "
                f"Whole continuations: {sum(la):.2f} vs {sum(lb):.2f}.")
        if len(ta) == len(tb) and sa != sb:
            ratio = math.exp(min(abs(sa - sb), 700.0))
            more = "this branch" if sa > sb else "the other"
            text += f" The model finds {more} {ratio:.3g}\u00d7 more likely."
        self.summary.setText(text)

    # -- user ---------------------------------------------------------------------------------
    @Slot(int, int)
    def _on_clicked(self, row: int, _col: int) -> None:
        if 0 <= row < len(self.leaves):
            leaf = self.leaves[row]
            b = self.session.branches
            if leaf != b.current_leaf() or b.current != leaf:
                self.session.switch_branch(leaf)

    @Slot(int)
    def _on_other(self, i: int) -> None:
        self.other = int(self.other_box.itemData(i))
        self.schedule_redraw()


__all__ = ["BranchesPanel"]
