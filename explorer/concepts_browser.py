"""Help → Concepts: a list of the lecture's concepts; each with its paragraph, its formula and a
button that brings the panel showing it to the front."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from explorer.concepts import CONCEPTS, Concept, concept
from explorer.theme import THEME, css_pt


def concept_html(c: Concept) -> str:
    return (f"<h2>{html.escape(c.title)}</h2><p>{c.text}</p>"
            f"<p style='font-size: {css_pt(THEME.font_pt + 3)};'>{c.formula}</p>"
            f"<p><i>Where to look:</i> {html.escape(c.where)}</p>")


class ConceptsBrowser(QDialog):
    """Not modal: the teacher keeps it open beside the window while showing a concept."""

    show_it = Signal(object)  # the Concept whose panel to bring to the front

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Concepts")
        self.setModal(False)
        self.list = QListWidget()
        for c in CONCEPTS:
            item = QListWidgetItem(c.title)
            item.setData(Qt.ItemDataRole.UserRole, c.key)
            self.list.addItem(item)
        self.list.setMinimumWidth(self.list.sizeHintForColumn(0) + 32)  # every title whole
        self.list.currentRowChanged.connect(self._on_row)
        self.text = QTextBrowser()
        self.show_button = QPushButton("Show it")
        self.show_button.setToolTip("Bring the panel that shows this concept to the front")
        self.show_button.clicked.connect(self._on_show)
        right = QVBoxLayout()
        right.addWidget(self.text, 1)
        right.addWidget(self.show_button, 0, Qt.AlignmentFlag.AlignRight)
        root = QHBoxLayout(self)
        root.addWidget(self.list)
        root.addLayout(right, 1)
        self.resize(820, 460)
        self.current: Concept = CONCEPTS[0]
        self.list.setCurrentRow(0)

    def select(self, key: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == key:
                self.list.setCurrentRow(i)
                self._on_row(i)
                return

    @Slot(int)
    def _on_row(self, row: int) -> None:
        if row < 0:
            return
        c = concept(self.list.item(row).data(Qt.ItemDataRole.UserRole))
        if c is not None:
            self.current = c
            self.text.setHtml(concept_html(c))
            self.show_button.setText(f"Show it: {c.show.panel}")

    @Slot()
    def _on_show(self) -> None:
        self.show_it.emit(self.current)
