"""Positional encoding panel: every view shows the model's own encoding, for every kind."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from _panel_support import make_session, shown, tiny_model

from explorer.panels.positional import VIEWS, PositionalPanel, display_matrix
from model.positional import sinusoidal_table
from model.positional_view import DESCRIPTIONS


def _panel(qtbot, kind: str, **kw):
    s = make_session(tiny_model(kind, n_layer=1, n_head=2, n_embd=16, block_size=48, **kw),
                     "hello there", steps=2)
    return shown(qtbot, PositionalPanel(s))


@pytest.mark.parametrize("kind", ["learned", "sinusoidal", "rotary"])
def test_views_match_the_models_encoding(qtbot, kind):
    p = _panel(qtbot, kind)
    pe = p.session.network.pe
    m = pe.matrix()
    # the table: what is shown, and what is exported, is the model's matrix
    img = p.matrix_plot.image.image
    np.testing.assert_array_equal(img, display_matrix(kind, m))
    np.testing.assert_array_equal(p.matrix_plot.matrix, m)
    if kind == "sinusoidal":
        np.testing.assert_allclose(img, sinusoidal_table(48, 16).numpy(), atol=1e-6)
    if kind == "learned":
        np.testing.assert_array_equal(img, pe.wpe.weight.detach().numpy())
    if kind == "rotary":
        assert img.shape == (48, 16 // 2 // 2)  # (positions, head_size / 2)
        np.testing.assert_allclose(np.cos(img), np.cos(m), atol=1e-5)  # angles, wrapped
        assert p.matrix_plot.colorbar.levels() == pytest.approx((-np.pi, np.pi))
    # the similarity matrix
    p.set_view("similarity")
    p.redraw_now()
    np.testing.assert_array_equal(p.similarity_plot.image.image, pe.similarity())
    # curves of chosen dimensions
    p.set_view("curves")
    p.set_dims("0, 1, 3")
    p.redraw_now()
    x, ys = p.curve_values()
    want = m[:, [0, 1, 3]]
    np.testing.assert_allclose(ys, np.cos(want) if kind == "rotary" else want, rtol=1e-6)
    shown = [c for c in p._curves if c.isVisible()]
    assert len(shown) == 3
    np.testing.assert_allclose(shown[2].yData, ys[:, 2])
    # the formula and explanation of this kind are beside the view
    assert DESCRIPTIONS[kind][0].split("(")[0].split("=")[0].strip()[:4] in p.text.text()
    assert not p.showing_explanation


@pytest.mark.parametrize("kind", ["learned", "sinusoidal", "rotary", "none"])
def test_prompt_view_shows_token_and_position_norms(qtbot, kind):
    p = _panel(qtbot, kind)
    p.set_view("prompt")
    p.redraw_now()
    r = p.session.result
    tok_norm = np.linalg.norm(r.tok_emb, axis=-1)
    heights = p.tok_bars.opts["height"]
    np.testing.assert_allclose(heights, tok_norm, rtol=1e-5)
    if kind in ("learned", "sinusoidal"):
        np.testing.assert_allclose(p.pos_bars.opts["height"], np.linalg.norm(r.pos_emb, axis=-1),
                                   rtol=1e-5)
        assert p.pos_bars.isVisible()
    else:
        assert r.pos_emb is None and not p.pos_bars.isVisible()
    assert p.prompt_axis.labels[0] == "h"


def test_none_explains_what_the_model_has_instead(qtbot):
    p = _panel(qtbot, "none")
    for view in ("matrix", "curves", "similarity"):
        p.set_view(view)
        p.redraw_now()
        assert p.showing_explanation
        assert p.stack.currentWidget() is p.none_page
        text = p.none_page.text()
        assert "no positional encoding" in text.lower()
        assert p.session.network.pe.explanation.split(".")[1].strip()[:30] in text
        assert "causal mask" in text
        assert p.current_plot() is None
    p.set_view("prompt")
    assert not p.showing_explanation


def test_model_change_and_selected_token(qtbot):
    p = _panel(qtbot, "learned")
    p.session.select_token(3)
    assert p.matrix_plot.highlighted_row == 3
    s = p.session
    s.set_model(tiny_model("sinusoidal", n_embd=8, block_size=20))
    s.set_prompt("the fox")
    p.redraw_now()
    assert p.kind == "sinusoidal"
    assert p.matrix_plot.image.image.shape == (20, 8)
    assert "Sinusoidal" in p.text.text()
    assert p._context_line.value() == 7  # end of the current context


def test_exports(qtbot, tmp_path):
    p = _panel(qtbot, "sinusoidal")
    for view in VIEWS:
        p.set_view(view)
        p.redraw_now()
        plot = p.current_plot()
        assert plot.export_png(tmp_path / f"{view}.png").read_bytes()[:4] == b"\x89PNG"
        ET.parse(plot.export_svg(tmp_path / f"{view}.svg"))
        table = np.loadtxt(plot.export_csv(tmp_path / f"{view}.csv"), delimiter=",", ndmin=2)
        assert table.shape[0] > 0
    p.set_view("matrix")
    m = np.loadtxt(p.matrix_plot.export_csv(tmp_path / "m.csv"), delimiter=",")
    np.testing.assert_array_equal(m.astype(np.float32), p.session.network.pe.matrix())
