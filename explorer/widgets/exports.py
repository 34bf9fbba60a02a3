"""PNG, SVG and CSV export of the panels' plots (context menus and Export buttons)."""
from __future__ import annotations

import csv
import io
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401  (registers pg.exporters.*)
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QAction, QBrush, QColor, QPainter
from PySide6.QtWidgets import (
    QFileDialog,
    QMenu,
    QToolButton,
    QWidget,
)

from explorer.theme import THEME


# -- export ------------------------------------------------------------------------------------
def export_png(item, path: str | Path, width: int | None = None) -> Path:
    """Render a graphics item (a plot, a layout, a scene) to PNG."""
    path = Path(path)
    ex = pg.exporters.ImageExporter(item)
    w = int(ex.parameters()["width"])
    target = int(width) if width else max(w, 1200)  # crisp enough for slides
    ex.parameters()["width"] = max(target, 16)
    ex.export(str(path))
    return path


def export_svg(item, path: str | Path) -> Path:
    """SVG of a graphics item: pyqtgraph's exporter, or Qt's QSvgGenerator where that fails
    (pyqtgraph 0.14's exporter cannot parse the path data newer Qt versions write)."""
    path = Path(path)
    try:
        pg.exporters.SVGExporter(item).export(str(path))
        return path
    except Exception:  # noqa: BLE001 - any failure: fall back to Qt's generator
        pass
    from PySide6.QtSvg import QSvgGenerator  # QtSvg loads only when an SVG is written

    scene = item.scene() if hasattr(item, "scene") and callable(item.scene) else item
    source = item.sceneBoundingRect() if hasattr(item, "sceneBoundingRect") else \
        scene.sceneRect()
    w, h = max(1, int(source.width())), max(1, int(source.height()))
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QSize(w, h))
    gen.setViewBox(QRectF(0, 0, w, h))
    views = scene.views()
    # the scene is laid out for the screen: render at its resolution so text and pens match
    gen.setResolution(int(views[0].logicalDpiX()) if views else 96)
    gen.setTitle(path.stem)
    painter = QPainter(gen)
    try:
        bg = views[0].backgroundBrush() if views else QBrush(QColor(THEME.background))
        painter.fillRect(QRectF(0, 0, w, h), bg if bg.style() != Qt.BrushStyle.NoBrush
                         else QBrush(QColor(THEME.background)))
        scene.render(painter, QRectF(0, 0, w, h), source)
    finally:
        painter.end()
    return path


def write_csv(path: str | Path, matrix: np.ndarray, row_labels: Sequence[str],
              col_labels: Sequence[str], title: str = "") -> Path:
    """Numbers only on the data lines; labels in '#' header lines (``np.loadtxt`` skips them).

    Values read back exactly (as the array's own dtype). NaN and ±inf are written as ``nan`` / ``inf`` / ``-inf`` (``np.loadtxt`` reads them back).
    """
    path = Path(path)
    src = np.asarray(matrix)
    # enough digits to read the same float back: 9 for float32, 17 for float64
    fmt = "%.9g" if src.dtype.itemsize <= 4 else "%.17g"
    m = np.atleast_2d(src.astype(np.float64))

    def row(labels) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([str(s).replace("\n", "\u21b5")
                                                     for s in labels])
        return buf.getvalue()

    lines = []
    if title:
        lines += [f"# {t}" for t in title.splitlines()]
    lines.append("# rows: " + row(row_labels))
    lines.append("# columns: " + row(col_labels))
    header = "\n".join(lines)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(header + "\n")
        np.savetxt(f, m, delimiter=",", fmt=fmt)
    return path


def _ask_path(parent: QWidget | None, kind: str, stem: str) -> str:
    filters = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)",
               "csv": "CSV table (*.csv)"}
    path, _ = QFileDialog.getSaveFileName(parent, f"Export {kind.upper()}", f"{stem}.{kind}",
                                          filters[kind])
    if path and not path.lower().endswith("." + kind):
        path += "." + kind
    return path


def replace_scene_export(scene) -> None:
    """Hide pyqtgraph's own "Export..." entry: ours (PNG/SVG/CSV) sit in the same context menu,
    and pyqtgraph 0.14's SVG export fails with recent Qt versions."""
    for action in scene.contextMenu:
        if action.text().replace("&", "").startswith("Export"):
            action.setVisible(False)


def add_export_actions(menu: QMenu, target, parent: QWidget | None = None) -> list[QAction]:
    """Add "Export PNG/SVG/CSV…" to a menu. ``target`` has export_png/svg/csv(path)."""
    actions = []
    if menu is None:
        return actions
    # weak references: pyqtgraph's view-box menu has no Qt parent, so a connection holding the
    # plot strongly would keep the plot, its menus and its frames alive after the window is gone
    target_ref = weakref.ref(target)
    parent_ref = weakref.ref(parent) if parent is not None else None
    menu.addSeparator()
    for kind in ("png", "svg", "csv"):
        if not hasattr(target, f"export_{kind}"):
            continue
        act = QAction(f"Export {kind.upper()}…", menu)

        def run(_checked=False, kind=kind):
            t, owner = target_ref(), parent_ref() if parent_ref is not None else None
            if t is None:
                return
            stem = getattr(t, "name", "plot")
            path = _ask_path(owner or (t if isinstance(t, QWidget) else None), kind, stem)
            if path:
                getattr(t, f"export_{kind}")(path)

        act.triggered.connect(run)
        menu.addAction(act)
        actions.append(act)
    return actions


def export_button(parent: QWidget, target_getter: Callable[[], object],
                  text: str = "Export") -> QToolButton:
    """A toolbar button with PNG/SVG/CSV entries for whichever plot ``target_getter`` returns."""
    btn = QToolButton(parent)
    btn.setText(text)
    btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(btn)
    for kind in ("png", "svg", "csv"):
        act = menu.addAction(f"{kind.upper()}…")

        def run(_checked=False, kind=kind):
            target = target_getter()
            if target is None or not hasattr(target, f"export_{kind}"):
                return
            path = _ask_path(parent, kind, getattr(target, "name", "plot"))
            if path:
                getattr(target, f"export_{kind}")(path)

        act.triggered.connect(run)
    btn.setMenu(menu)
    return btn
