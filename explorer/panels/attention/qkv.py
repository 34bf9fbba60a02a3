"""Q, K and V with their real numbers, for one layer, one head and one query token.

Two stages of the attention panel (Vaswani et al. 2017, equation 1, read left to right):

* "Q · K": the query vector q_i of the selected token, the key vectors k_j of every token, and
  the dot products q_i·k_j that make one row of scores, then ÷√d, + the causal mask, softmax.
* "× V": the softmax row weighting the value vectors v_j, their weighted sum (the head's output
  for token i), every head's output side by side and the projection W_O that mixes them into
  the attention sublayer's output.

Small matrices show their numbers in the cells, larger ones are heatmaps; hovering a cell says
its value (and for a score, the two vectors and their product). Everything is drawn in one
graphics layout, so PNG/SVG export the whole view; CSV writes one row per key.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Signal
from PySide6.QtWidgets import QWidget

from explorer.theme import THEME, colormap
from explorer.widgets.exports import export_png, export_svg, replace_scene_export, write_csv
from explorer.widgets.plot_helpers import DIVERGING_CMAP, PROB_CMAP, LabelAxis, tick_font

MAX_NUMBERS = 120  # a matrix with more cells is a heatmap without numbers in it
MAX_NUMBER_COLS = 8  # nor one with more columns (the numbers would overlap)
ROW_PX = 72  # height of a one-row matrix (a vector) with its title and axis


def vec_text(v: np.ndarray, n: int = 8) -> str:
    """[0.12, −0.40, …] with at most ``n`` numbers."""
    items = [f"{x:+.2f}" for x in v[:n]]
    return "[" + ", ".join(items) + (", …" if v.size > n else "") + "]"


class MatrixPlot:
    """One titled matrix in the layout: an image, numbers in small ones, labels on the axes."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, title: str,
                 rowspan: int = 1, colspan: int = 1):
        # label axes that keep only the labels that fit (a token per row, a dimension per column)
        self.row_axis, self.col_axis = LabelAxis("left"), LabelAxis("bottom", numeric=True)
        self.plot: pg.PlotItem = layout.addPlot(row=row, col=col, rowspan=rowspan,
                                                colspan=colspan, title=title,
                                                axisItems={"left": self.row_axis,
                                                           "bottom": self.col_axis})
        self.plot.invertY(True)
        self.plot.setDefaultPadding(0.0)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.texts: list[pg.TextItem] = []
        self.values = np.zeros((0, 0), dtype=np.float32)
        self.row_labels: list[str] = []
        self.col_labels: list[str] = []

    def set(self, values: np.ndarray, cmap: str, levels: tuple[float, float],
            row_labels: Sequence[str], col_labels: Sequence[str], highlight_row: int = -1,
            numbers: bool = True) -> None:
        v = np.atleast_2d(np.asarray(values, dtype=np.float32))
        self.values = v
        self.row_labels, self.col_labels = list(row_labels), list(col_labels)
        shown = np.where(np.isfinite(v), v, np.float32(levels[0]))
        self.image.setImage(shown, levels=levels,
                            lut=colormap(cmap).getLookupTable(nPts=256))
        self.image.setRect(0, 0, v.shape[1], v.shape[0])
        self.plot.setXRange(0, v.shape[1], padding=0)
        self.plot.setYRange(0, v.shape[0], padding=0)
        self.row_axis.set_labels(self.row_labels)
        self.col_axis.set_labels(self.col_labels)
        for t in self.texts:
            self.plot.removeItem(t)
        self.texts = []
        one_row = v.shape[0] == 1
        self.plot.setMaximumHeight(ROW_PX if one_row else 100000)
        if numbers and v.size <= MAX_NUMBERS and v.shape[1] <= MAX_NUMBER_COLS:
            for i in range(v.shape[0]):
                for j in range(v.shape[1]):
                    x = float(v[i, j])
                    s = "−∞" if x == -np.inf else f"{x:.2f}"
                    bold = i == highlight_row
                    t = pg.TextItem(s, color=THEME.text if not bold else THEME.accent2,
                                    anchor=(0.5, 0.5))
                    t.setFont(tick_font())
                    t.setPos(j + 0.5, i + 0.5)
                    self.plot.addItem(t)
                    self.texts.append(t)

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int]:
        vb = self.plot.vb
        if not vb.sceneBoundingRect().contains(scene_pos):
            return -1, -1
        p = vb.mapSceneToView(scene_pos)
        i, j = math.floor(p.y()), math.floor(p.x())
        if 0 <= i < self.values.shape[0] and 0 <= j < self.values.shape[1]:
            return i, j
        return -1, -1


def _sym(a: np.ndarray) -> tuple[float, float]:
    finite = a[np.isfinite(a)]
    m = float(np.max(np.abs(finite))) if finite.size else 1.0
    return (-m or -1.0, m or 1.0)


class QKVView(pg.GraphicsLayoutWidget):
    """The numbers inside one head for one query token (see the module docstring)."""

    hovered_text = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = "attention-qkv"
        self.ci.setContentsMargins(4, 4, 4, 4)
        self.stage = "qk"
        self.data: dict[str, np.ndarray] = {}
        self.labels: list[str] = []
        self.info: dict = {}
        self.plots: dict[str, MatrixPlot] = {}
        self.export_header = None
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        replace_scene_export(self.scene())

    # -- data -----------------------------------------------------------------------------------
    def show_head(self, r, layer: int, head: int, query: int, stage: str,
                  w_o: np.ndarray | None) -> str | None:
        """Draw ``stage`` for ``query`` in (layer, head) of result ``r``; returns why not, or
        None when drawn."""
        if r.q is None or r.k is None or r.v is None or r.attention is None or r.scores is None:
            return ("Q, K and V were not recorded for this step (CaptureSpec.qkv, attention and "
                    "scores are needed).")
        hs = r.q.shape[-1]
        q = r.q[layer, head, query]  # (hs,)
        # the keys the mask lets through: up to the query (causal), all of them (an encoder)
        K = r.k[layer, head, :query + 1] if r.is_causal else r.k[layer, head]
        K_all = r.k[layer, head]  # (T, hs)
        V = r.v[layer, head]
        dots = K_all @ q  # (T,)
        scaled = dots / math.sqrt(hs)
        masked = np.where(np.arange(r.T) > query, -np.inf, scaled) if r.is_causal else scaled
        weights = r.attention[layer, head, query]  # (T,)
        weighted = weights[:, None] * V  # (T, hs)
        out = weighted.sum(axis=0)  # (hs,)
        self.labels = [f"{p} @{j}" for j, p in enumerate(r.pieces)]
        self.info = dict(layer=layer, head=head, query=query, hs=hs, token=r.pieces[query])
        self.data = dict(q=q[None], K=K_all, steps=np.stack([dots, scaled, masked, weights], 1),
                         recorded=r.scores[layer, head, query], weights=weights[:, None], V=V,
                         weighted=weighted, out=out[None], n_keys=np.array(K.shape[0]))
        if r.heads is not None:
            self.data["heads"] = r.heads[layer, query][None]  # (1, C)
        if r.attn_out is not None:
            self.data["attn_out"] = r.attn_out[layer, query][None]
        if w_o is not None:
            self.data["W_O"] = w_o
        self.stage = stage
        self._layout()
        return None

    def _layout(self) -> None:
        self.ci.clear()
        self.plots = {}
        d, info = self.data, self.info
        hs, i = info["hs"], info["query"]
        dims = [f"d{k}" for k in range(hs)]
        tok = f"'{info['token']}' @{i}"
        if self.stage == "qk":
            p = self._add("q", 0, 0, f"query q of {tok}", colspan=2)
            p.set(d["q"], DIVERGING_CMAP, _sym(d["q"]), ["q"], dims)
            p = self._add("K", 1, 0, "keys k<sub>j</sub> of every token")
            p.set(d["K"], DIVERGING_CMAP, _sym(d["K"]), self.labels, dims, highlight_row=i)
            st = d["steps"]
            p = self._add("steps", 1, 1, "q·k<sub>j</sub> → ÷√d → + mask → softmax")
            # one colour scale per column would mislead: colour by the softmax weight only
            colour = np.repeat(st[:, 3:4], 4, axis=1)
            p.set(colour, PROB_CMAP, (0.0, 1.0), self.labels,
                  ["q·k", f"÷√{hs}", "+ M", "softmax"], highlight_row=i)
            self._numbers(p, st)
            self.ci.layout.setColumnStretchFactor(0, 3)
            self.ci.layout.setColumnStretchFactor(1, 2)
            self.ci.layout.setRowStretchFactor(0, 1)
            self.ci.layout.setRowStretchFactor(1, 8)
        else:
            p = self._add("weights", 0, 0, f"weights of {tok}")
            p.set(d["weights"], PROB_CMAP, (0.0, 1.0), self.labels, ["a"], highlight_row=i,
                  numbers=False)
            p = self._add("V", 0, 1, "values v<sub>j</sub>")
            p.set(d["V"], DIVERGING_CMAP, _sym(d["V"]), self.labels, dims)
            p = self._add("weighted", 0, 2, "a<sub>j</sub> · v<sub>j</sub>")
            p.set(d["weighted"], DIVERGING_CMAP, _sym(d["weighted"]), self.labels, dims)
            p = self._add("out", 1, 0, f"head output o = Σ<sub>j</sub> a<sub>j</sub> v<sub>j</sub>"
                          f" (head {info['head']})", colspan=3)
            p.set(d["out"], DIVERGING_CMAP, _sym(d["out"]), ["o"], dims)
            row = 2
            if "heads" in d:
                C = d["heads"].shape[1]
                cols = [f"h{k // hs}.{k % hs}" for k in range(C)]
                p = self._add("heads", row, 0, "every head's output side by side: concat",
                              colspan=3)
                p.set(d["heads"], DIVERGING_CMAP, _sym(d["heads"]), ["concat"], cols)
                row += 1
            if "W_O" in d:
                p = self._add("W_O", row, 0, "W<sub>O</sub> (rows: output, columns: concat)",
                              colspan=3)
                p.set(d["W_O"], DIVERGING_CMAP, _sym(d["W_O"]),
                      [f"out {k}" for k in range(d["W_O"].shape[0])],
                      [f"in {k}" for k in range(d["W_O"].shape[1])])
                self.ci.layout.setRowStretchFactor(row, 2)
                row += 1
            if "attn_out" in d:
                p = self._add("attn_out", row, 0, "= y = W<sub>O</sub> · concat + b: the "
                              "attention output added to the residual stream", colspan=3)
                p.set(d["attn_out"], DIVERGING_CMAP, _sym(d["attn_out"]), ["y"],
                      [f"{k}" for k in range(d["attn_out"].shape[1])])
            self.ci.layout.setColumnStretchFactor(0, 1)
            self.ci.layout.setColumnStretchFactor(1, 3)
            self.ci.layout.setColumnStretchFactor(2, 3)
            self.ci.layout.setRowStretchFactor(0, 6)

    def _add(self, key: str, row: int, col: int, title: str, colspan: int = 1) -> MatrixPlot:
        p = MatrixPlot(self.ci, row, col, title, colspan=colspan)
        self.plots[key] = p
        return p

    @staticmethod
    def _numbers(p: MatrixPlot, values: np.ndarray) -> None:
        """The score steps' own numbers (the colours show the softmax weight)."""
        p.values = values.astype(np.float32)
        if values.size > MAX_NUMBERS:
            return
        for t, x in zip(p.texts, values.ravel(), strict=True):
            t.setText("−∞" if x == -np.inf else f"{x:.2f}")

    # -- hover ----------------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos) -> None:
        for key, p in self.plots.items():
            i, j = p.cell_at(scene_pos)
            if i >= 0:
                self.hovered_text.emit(self.hover_text(key, i, j))
                return

    def hover_text(self, key: str, i: int, j: int) -> str:
        """What hovering cell (i, j) of matrix ``key`` says."""
        d, info = self.data, self.info
        p = self.plots[key]
        v = float(p.values[i, j])
        where = f"{p.row_labels[i] if i < len(p.row_labels) else i}, " \
                f"{p.col_labels[j] if j < len(p.col_labels) else j}"
        if key in ("steps", "K"):
            q, k = d["q"][0], d["K"][i]
            dot = float(q @ k)
            text = (f"key {self.labels[i]}: q = {vec_text(q)} · k = {vec_text(k)} = {dot:+.4f}; "
                    f"÷√{info['hs']} = {dot / math.sqrt(info['hs']):+.4f}")
            if i > info["query"]:
                text += " → masked (−∞): the key comes after the query"
            else:
                text += f" → softmax weight {float(d['weights'][i, 0]):.4f}"
            return text
        if key in ("weighted", "V", "weights"):
            a = float(d["weights"][i, 0])
            vv = float(d["V"][i, j]) if key != "weights" else float("nan")
            if key == "weights":
                return f"weight of {self.labels[i]}: {a:.4f}"
            return f"{where}: a = {a:.4f} × v = {vv:+.4f} = {a * vv:+.4f}"
        return f"{where}: {v:+.4f}"

    # -- export ---------------------------------------------------------------------------------
    def export_table(self) -> tuple[np.ndarray, list[str], list[str]] | None:
        """One row per key: q·k, ÷√d, masked, softmax, then v_j and a_j·v_j."""
        d = self.data
        if not d:
            return None
        hs = self.info["hs"]
        m = np.concatenate([d["steps"], d["V"], d["weighted"]], axis=1)
        cols = (["q.k", "q.k/sqrt(d)", "masked", "softmax"] + [f"v_{k}" for k in range(hs)]
                + [f"a*v_{k}" for k in range(hs)])
        return m, self.labels, cols

    def export_png(self, path: str | Path, width: int | None = None) -> Path:
        return export_png(self.ci, path, width)

    def export_svg(self, path: str | Path) -> Path:
        return export_svg(self.ci, path)

    def export_csv(self, path: str | Path) -> Path:
        t = self.export_table()
        if t is None:
            raise ValueError("nothing to export yet")
        info, d = self.info, self.data
        header = (f"Q, K, V of layer {info['layer']}, head {info['head']}, query "
                  f"{self.labels[info['query']]}\n"
                  f"q = {' '.join(f'{x:.9g}' for x in d['q'][0])}\n"
                  f"head output o = {' '.join(f'{x:.9g}' for x in d['out'][0])}")
        if self.export_header:
            header = self.export_header() + "\n" + header
        return write_csv(path, *t, header)


__all__ = ["QKVView", "vec_text"]
