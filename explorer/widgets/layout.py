"""Layout pieces shared by the panels: the explanation column, status lines, a flow layout, and
a label that changes text every step without re-laying out the window (:class:`QuietLabel`)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLayout,
    QScrollArea,
    QSizePolicy,
    QWidget,
)

from explorer.theme import THEME, css_pt, pt

TEXT_PT = 12  # explanations and formulas beside the plots


def rich_text(title: str, formula: str, *paragraphs: str) -> str:
    """The explanation beside a plot: a title, the formula, a few sentences."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs if p)
    return (f"<p style='font-size: {css_pt(TEXT_PT + 2)}'><b>{title}</b></p>"
            f"<p style='font-size: {css_pt(TEXT_PT + 1)}; color:{THEME.accent}'>{formula}</p>{body}")


def explanation_pane(margin: int, min_width: int,
                     max_width: int | None = None) -> tuple[QLabel, QScrollArea]:
    """The scrollable rich-text column beside a plot that holds ``rich_text`` explanations."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    label.setMargin(margin)
    f = label.font()
    f.setPointSizeF(pt(TEXT_PT))
    label.setFont(f)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(label)
    scroll.setMinimumWidth(min_width)
    if max_width is not None:
        scroll.setMaximumWidth(max_width)
    return label, scroll


def status_label(size: float = TEXT_PT) -> QLabel:
    """One line under a plot for hover values; long text never widens the panel."""
    label = QLabel(" ")
    f = label.font()
    f.setPointSizeF(pt(size))
    label.setFont(f)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(1)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class FlowLayout(QLayout):
    """Lays widgets out left to right and wraps onto the next line when the dock is narrow
    (Qt's flow layout example): a panel's controls never force its minimum width."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6):
        super().__init__(parent)
        self._items = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item):  # noqa: N802
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, i):  # noqa: N802
        return self._items[i] if 0 <= i < len(self._items) else None

    def takeAt(self, i):  # noqa: N802
        return self._items.pop(i) if 0 <= i < len(self._items) else None

    def expandingDirections(self):  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802
        size = QSize()
        for it in self._items:
            size = size.expandedTo(it.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _place(self, rect, move: bool) -> int:
        m = self.contentsMargins()
        r = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line = r.x(), r.y(), 0
        gap = self.spacing()
        for it in self._items:
            w = it.widget()
            if w is not None and w.isHidden():
                continue
            hint = it.sizeHint()
            if x > r.x() and x + hint.width() > r.right() + 1:
                x, y, line = r.x(), y + line + gap, 0
            if move:
                it.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + gap
            line = max(line, hint.height())
        return y + line - rect.y() + m.bottom()


def flow_bar(parent: QWidget, *widgets: QWidget) -> tuple[QWidget, FlowLayout]:
    """A wrapping row of controls in its own widget (add it to the panel's layout)."""
    bar = QWidget(parent)
    flow = FlowLayout(bar)
    for w in widgets:
        flow.addWidget(w)
    return bar, flow


def labeled(text: str, widget: QWidget) -> QWidget:
    """A label and its control kept together on one line of a flow bar."""
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(4)
    label = QLabel(text)
    lay.addWidget(label)
    lay.addWidget(widget)
    box.label = label  # type: ignore[attr-defined]
    return box


class QuietLabel(QWidget):
    """A QLabel whose text can change at every step without re-laying out the whole window.

    ``QLabel.setText`` asks the parent layout for a new layout, and inside a dock that re-lays
    out the main window (every dock, the status bar: milliseconds a step), even when the label
    keeps its size. Here the label sits in a holder without a layout, which ignores that request;
    the holder asks for a new layout only when the text needs more room (wider, or another
    height when word-wrapped). Offers the QLabel methods the panels use; ``label`` is the QLabel.
    """

    def __init__(self, parent: QWidget | None = None, word_wrap: bool = False,
                 align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft):
        super().__init__(parent)
        # opaque: a new text repaints this label only, not the dock and window beneath it
        self.setAutoFillBackground(True)
        self.label = QLabel(self)
        self.label.setWordWrap(word_wrap)
        self.label.setAlignment(align | Qt.AlignmentFlag.AlignVCenter)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(word_wrap)
        self.setSizePolicy(policy)

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's API
        if text == self.label.text():
            return
        self.label.setText(text)
        if self.label.wordWrap():
            grow = self.heightForWidth(self.width()) != self.height()
        else:
            hint = self.label.sizeHint()
            grow = hint.width() > self.width() or hint.height() > self.height()
        if grow:
            self.updateGeometry()

    def text(self) -> str:
        return self.label.text()

    def setTextFormat(self, fmt: Qt.TextFormat) -> None:  # noqa: N802
        self.label.setTextFormat(fmt)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return self.label.wordWrap()

    def heightForWidth(self, w: int) -> int:  # noqa: N802
        return self.label.heightForWidth(w)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.label.sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self.label.minimumSizeHint()

    def resizeEvent(self, e) -> None:  # noqa: N802
        self.label.setGeometry(self.rect())
        super().resizeEvent(e)


class DockScroll(QScrollArea):
    """What a dock holds: its panel in a scroll area. A dock may be made smaller than the panel's
    minimum (a 1024 × 768 projector, 200 % scaling): the panel then scrolls instead of pushing
    the window off the screen or being squeezed until its widgets overlap. ``panel`` is the
    panel.

    The panel fills the view and is only made larger than it when it must be: its minimum
    height at the view's width (a word-wrapped text needs more lines when narrow). QScrollArea
    would size a panel with wrapped text to its preferred height instead, and scroll although
    the panel fits."""

    MIN_W, MIN_H = 160, 90

    def __init__(self, panel: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("dockScroll")
        self.setWidgetResizable(False)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setMinimumSize(self.MIN_W, self.MIN_H)
        self._refit = QTimer(self)  # owned: never fires after the dock is gone
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self.fit)
        self.panel = panel
        self.setWidget(panel)
        panel.installEventFilter(self)

    def set_panel(self, panel: QWidget) -> QWidget | None:
        """Hold ``panel`` instead; returns the old one (the caller deletes it)."""
        old = self.takeWidget()
        if old is not None:
            old.removeEventFilter(self)
        self.panel = panel
        self.setWidget(panel)
        panel.installEventFilter(self)
        self.fit()
        return old

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self.panel.sizeHint()

    def fit(self) -> None:
        """The panel as large as the view, and never below its minimum at that width."""
        view = self.viewport().size()
        panel = self.panel
        m = panel.minimumSizeHint().expandedTo(panel.minimumSize())
        w = max(view.width(), m.width())
        lay = panel.layout()
        min_h = m.height()
        if lay is not None and lay.hasHeightForWidth():
            min_h = max(min_h, lay.totalMinimumHeightForWidth(w))
        h = max(view.height(), min_h)
        if panel.size() != QSize(w, h):
            panel.resize(w, h)

    def viewportEvent(self, e) -> bool:  # noqa: N802 - Qt API
        if e.type() == QEvent.Type.Resize:
            self.fit()
        return super().viewportEvent(e)

    def eventFilter(self, obj, e) -> bool:  # noqa: N802 - Qt API
        if obj is self.panel and e.type() == QEvent.Type.LayoutRequest:
            self._refit.start()  # after the panel's layout has settled
        return False
