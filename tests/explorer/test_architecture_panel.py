"""Architecture panel: the diagram draws the model's anatomy, counts the real parameters, and
every block shows its live values."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _panel_support import make_session, shown, tiny_model
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QGraphicsSimpleTextItem

from explorer.panels.architecture.diagram import Diagram
from explorer.panels.architecture.panel import ArchitecturePanel
from model.anatomy import Add, Layer, Stack, describe
from model.config import ModelConfig, SampleConfig
from model.tokenizer import printable


def _panel(qtbot, **kw):
    s = make_session(tiny_model(**kw), "hello there", steps=3)
    return shown(qtbot, ArchitecturePanel(s))


@pytest.mark.parametrize("n_layer", [1, 4, 12])
def test_blocks_follow_the_config_and_count_every_parameter(qtbot, n_layer):
    p = _panel(qtbot, n_layer=n_layer, n_head=2, n_embd=16)
    model = p.session.network
    blocks = list(p.anatomy.boxes())
    layers = sorted({b.layer for b in blocks if b.layer is not None})
    assert layers == list(range(n_layer))
    for i in layers:
        kinds = [b.kind for b in blocks if b.layer == i]
        assert kinds == ["ln", "attn", "add", "ln", "ffn", "add"]  # pre-norm order
    assert sum(b.n_params for b in blocks) == model.num_params()
    attn = p.block("L0.attn")
    assert attn.n_params == sum(x.numel() for x in model.h[0].attn.parameters())
    assert p.block("embed.tok").n_params == model.wte.weight.numel()
    assert p.block("final.unembed").n_params == 0  # tied to the token embedding
    # what is drawn: every layer, or (12 layers) the first and last with the rest collapsed
    drawn_layers = sorted({b.layer for k, b in ((k, p.block(k)) for k in p.items)
                           if b is not None and b.layer is not None})
    if n_layer > 6:
        assert p.collapsed and drawn_layers == [0, n_layer - 1]
        p.set_collapsed(False)
        drawn_layers = sorted({p.block(k).layer for k in p.items
                               if p.block(k) is not None and p.block(k).layer is not None})
    assert drawn_layers == list(range(n_layer))
    assert len([k for k in p.items if k.startswith("L")]) == 6 * n_layer
    assert f"{model.num_params():,}" in p.summary.text()


@pytest.mark.parametrize("pos_kind", ["learned", "sinusoidal", "rotary", "none"])
def test_post_norm_untied_and_positional_kinds(qtbot, pos_kind):
    p = _panel(qtbot, pos_kind=pos_kind, n_layer=2, norm="post", tie_weights=False)
    m = p.session.network
    assert [p.block(k).kind for k in p.items if k.startswith("L0.")] == \
        ["attn", "add", "ln", "ffn", "add", "ln"]
    assert "final.ln" not in p.items  # post-norm ends in the block's norm
    assert p.items["final.unembed"].box.n_params == m.lm_head.weight.numel()
    assert ("embed.add" in p.items) == m.pe.additive
    pos = p.items["embed.pos"].box
    assert pos.n_params == sum(x.numel() for x in m.pe.parameters())
    assert p.items["embed.pos"].dashed != m.pe.additive  # drawn unconnected when not added
    assert f"{m.num_params():,}" in p.summary.text()
    _click(qtbot, p, "embed.pos")
    if m.pe.additive:
        np.testing.assert_array_equal(p.detail_heatmap.image.image, p.session.result.pos_emb)
    else:
        assert p.detail_stack.currentWidget() is p.detail_text
        assert ("rotates every query" in p.detail_text.text()) == (pos_kind == "rotary")


def _click(qtbot, p, key):
    item = p.items[key]
    p.view.ensureVisible(item)
    qtbot.wait(10)
    pos = p.view.mapFromScene(item.sceneBoundingRect().center())
    qtbot.mouseClick(p.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pos.x(), pos.y()))
    assert p.selected == key


def _hook_inputs(model, module_names):
    """Inputs each named submodule really receives in a forward pass of the context."""
    got, handles = {}, []
    for name in module_names:
        mod = model.get_submodule(name)
        handles.append(mod.register_forward_hook(
            lambda m, inp, out, name=name: got.__setitem__(name, inp[0][0].detach().numpy())))
    return got, handles


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_clicking_blocks_shows_live_values(qtbot, norm):
    p = _panel(qtbot, n_layer=2, n_head=2, n_embd=16, norm=norm)
    r = p.session.result
    model = p.session.network
    _click(qtbot, p, "L1.ffn")
    np.testing.assert_array_equal(p.detail_heatmap.image.image, r.ffn[1])
    assert "GELU" in p.explain.text()
    _click(qtbot, p, "embed.tok")
    np.testing.assert_array_equal(p.detail_heatmap.image.image, r.tok_emb)
    _click(qtbot, p, "L0.attn")
    T = r.T
    img = p.detail_heads.image.image
    assert img.shape == (T, 2 * T)
    lower = np.tril(np.ones((T, T), dtype=bool))
    np.testing.assert_array_equal(img[:, T:][lower], r.attention[0, 1][lower])
    _click(qtbot, p, "L1.add_2")
    np.testing.assert_allclose(p.detail_heatmap.image.image,
                               np.linalg.norm(r.residual, axis=-1), rtol=1e-5)
    assert p.detail_heatmap.highlighted_row == 2
    # layer norm statistics: the real input of each norm (checked with forward hooks)
    names = [f"h.{i}.ln_{j}" for i in range(2) for j in (1, 2)]
    got, handles = _hook_inputs(model, names)
    with torch.no_grad():
        model(torch.tensor([r.ids.tolist()]))
    for h in handles:
        h.remove()
    for i in range(2):
        for j in (1, 2):
            b = p.block(f"L{i}.ln_{j}")
            x = got[f"h.{i}.ln_{j}"]
            np.testing.assert_allclose(p.ln_stats(b), np.stack([x.mean(-1), x.std(-1)], -1),
                                       atol=2e-5)
    _click(qtbot, p, "L1.ln_2")
    table, _rows, cols = p.detail_series.export_table()
    assert cols == ["mean μ", "std σ"]
    np.testing.assert_allclose(table[:, 1], got["h.1.ln_2"].std(-1), atol=2e-5)
    # the two norms of a layer have different titles
    where = "before" if norm == "pre" else "after"
    assert f"LayerNorm 2 ({where} FFN) — layer 1" in p.explain.text()
    _click(qtbot, p, "L1.ln_1")
    assert f"LayerNorm 1 ({where} attention) — layer 1" in p.explain.text()
    # logit lens: layer × position table of the top prediction and its probability
    _click(qtbot, p, "final.unembed")
    lens = p.lens_model
    assert (lens.rowCount(), lens.columnCount()) == (3, T)
    tok = p.session.tokenizer
    cell = lens.data(lens.index(1, 4))
    assert cell.split()[0] == printable(tok.chars[r.lens_ids[1, 4, 0]])
    assert f"{r.lens_probs[1, 4, 0]:.2f}" in cell
    # softmax: the next-token distribution at the current temperature
    _click(qtbot, p, "final.softmax")
    table, labels, _ = p.detail_series.export_table()
    np.testing.assert_allclose(table[:, 0], r.dist.top(10)[1], rtol=1e-6)
    assert "τ = 0.8" in p.explain.text() and "(τ &lt; 1)" in p.explain.text()
    assert p.items["final.softmax"].sub == "τ = 0.8"  # the box shows the temperature too


def test_collapsed_layers_expand_on_click_and_details_follow_steps(qtbot):
    p = _panel(qtbot, n_layer=12, n_head=2, n_embd=16)
    assert "L5.attn" not in p.items
    p.select_block("collapsed:1:10")
    assert not p.collapsed and "L5.attn" in p.items
    p.select_block("L5.ffn")
    r = p.session.step()
    qtbot.waitUntil(lambda: p.detail_heatmap.image.image.shape[0] == r.T, timeout=2000)
    np.testing.assert_array_equal(p.detail_heatmap.image.image, r.ffn[5])


def test_detail_export(qtbot, tmp_path):
    p = _panel(qtbot, n_layer=1)
    p.select_block("L0.ffn")
    plot = p.current_plot()
    assert plot.export_png(tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    m = np.loadtxt(plot.export_csv(tmp_path / "f.csv"), delimiter=",")
    np.testing.assert_array_equal(m.astype(np.float32), p.session.result.ffn[0])


def test_opens_on_the_first_attention_block_at_the_top_of_the_diagram(qtbot):
    p = _panel(qtbot, n_layer=4, n_head=2, n_embd=16)
    assert p.selected == "L0.attn" and p.view.selected == "L0.attn"
    assert p.detail_stack.currentWidget() is p.detail_heads  # its heads, not a "click" hint
    bar = p.view.verticalScrollBar()
    p.resize(300, 200)  # a small view: the diagram scrolls, and growing rescales it
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    p.resize(900, 500)
    qtbot.wait(10)
    assert bar.maximum() > 0 and bar.value() == bar.minimum()  # the input row stays in view
    # a new model opens at the top again, even after the user scrolled down
    bar.setValue(bar.maximum())
    p.session.model_changed.emit()
    assert bar.value() == bar.minimum() and p.selected == "L0.attn"


def test_the_panel_draws_from_the_config_and_the_step_result_alone(qtbot):
    """No weights are read: with the network gone, the diagram and the live values remain."""
    p = _panel(qtbot, n_layer=2, n_head=2, n_embd=16, norm="post")
    n_params = p.session.network.num_params()
    r = p.session.result
    p.session.network = None
    p.session.model_changed.emit()
    assert f"{n_params:,} parameters" in p.summary.text()
    assert sum(p.items[k].box.n_params for k in p.items) == n_params
    _click(qtbot, p, "L1.ln_2")
    table, _rows, _cols = p.detail_series.export_table()
    np.testing.assert_array_equal(table, r.norm_stats[3])
    _click(qtbot, p, "embed.pos")
    np.testing.assert_array_equal(p.detail_heatmap.image.image, r.pos_emb)


def _renamed(stack: Stack, prefix: str, name: str) -> Stack:
    def box(b):
        skip = {"skip": prefix + b.skip if b.skip else b.skip} if isinstance(b, Add) else {}
        return dataclasses.replace(b, key=prefix + b.key, **skip)
    return dataclasses.replace(
        stack, name=name, title=name.title(), inputs=tuple(box(b) for b in stack.inputs),
        layers=tuple(Layer(la.index, tuple(box(b) for b in la.boxes)) for la in stack.layers),
        closing=tuple(box(b) for b in stack.closing))


def test_the_diagram_draws_every_stack_of_an_anatomy(qtbot):
    """Two stacks (as an encoder–decoder will have) are drawn one after the other, each with
    its inputs, layers and closing norm, then the head."""
    one = describe(ModelConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=8))
    two = dataclasses.replace(one, stacks=(_renamed(one.stacks[0], "enc.", "encoder"),
                                           one.stacks[0]))
    view = Diagram()
    qtbot.addWidget(view)
    view.build(two, [0, 1])
    assert set(view.items) == {b.key for b in two.boxes()}
    labels = [it.text() for it in view.scene().items() if isinstance(it, QGraphicsSimpleTextItem)]
    for label in ("Encoder Input", "Encoder Layer 1", "Encoder output", "Decoder Input",
                  "Decoder Layer 0", "Output"):
        assert label in labels
    # the encoder's closing norm has a row of its own, above the decoder's input
    assert view.items["enc.final.ln"].y() < view.items["embed.tok"].y()
    assert view.items["final.ln"].y() == view.items["final.softmax"].y()


def test_lens_cells_not_computed_for_a_large_vocabulary_show_a_dash(qapp):
    from explorer.panels.architecture.panel import LensModel

    m = LensModel()
    ids = np.array([[[-1, -1], [7, 3]]], dtype=np.int64)  # position 0 left out (model.lens)
    probs = np.array([[[np.nan, np.nan], [0.5, 0.2]]], dtype=np.float32)
    m.set_data(ids, probs, ["a", "b"], None)
    assert m.data(m.index(0, 0)) == "\u2014"
    assert "not computed" in m.data(m.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    assert m.data(m.index(0, 1)) == "7  0.50"


# -- an encoder–decoder and a BERT-style encoder -------------------------------------------------
def _config(kind: str, **kw) -> ModelConfig:
    ids = {"encoder-decoder": dict(pad_id=0, bos_id=1, eos_id=2), "encoder": dict(mask_id=3),
           "decoder": {}}[kind]
    base = dict(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=8)
    if kind == "encoder-decoder":
        base["n_enc_layer"] = 3
    return ModelConfig(kind=kind, **{**base, **ids, **kw})


def _texts(view) -> list[str]:
    return [it.text() for it in view.scene().items() if isinstance(it, QGraphicsSimpleTextItem)]


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_an_encoder_decoder_is_two_stacks_side_by_side_with_cross_attention_arrows(qtbot, norm):
    cfg = _config("encoder-decoder", norm=norm)
    a = describe(cfg)
    view = Diagram()
    qtbot.addWidget(view)
    view.build(a, list(range(3)))
    assert set(view.items) == {b.key for b in a.boxes()}
    enc, dec = a.stacks
    enc_items = [view.items[b.key].sceneBoundingRect() for b in enc.boxes()]
    dec_items = [view.items[b.key].sceneBoundingRect() for b in [*dec.boxes(), *a.head]]
    # two columns: every encoder box left of every decoder box, both starting at the top
    assert max(r.right() for r in enc_items) < min(r.left() for r in dec_items)
    assert view.items["enc.embed.tok"].y() == view.items["embed.tok"].y()
    # data flows down each column
    e0, e2 = view.items["E0.attn"].y(), view.items["E2.ffn"].y()
    assert e0 < e2 < view.items[[*enc.boxes()][-1].key].y() + 1
    assert view.items["L0.cross"].y() < view.items["L1.cross"].y() < view.items["final.softmax"].y()
    texts = _texts(view)
    assert {"Encoder", "Decoder", "next token"} <= set(texts)
    assert "Encoder layer 2" in texts and "Decoder layer 1" in texts
    # one arrow from the encoder's output into the cross-attention of every decoder layer
    assert len(view.cross_arrows) == cfg.n_layer
    assert sorted(k for _item, k in view.cross_arrows) == [f"L{i}.cross" for i in range(2)]
    out = view.items[[*enc.boxes()][-1].key].sceneBoundingRect()  # the encoder's last box
    for item, key in view.cross_arrows:
        box = view.items[key]
        assert box.box.reads == "encoder" and box.box.kind == "attn"
        line = item.path().toSubpathPolygons()[0]
        start, end = line.first(), line.last()
        assert start.x() == pytest.approx(out.center().x()) and start.y() == \
            pytest.approx(out.bottom() - 2, abs=3)
        r = box.sceneBoundingRect()
        assert end.x() == pytest.approx(r.left() + 2, abs=1)
        assert r.top() < end.y() < r.bottom()
    # self-attention: the encoder's is bidirectional, the decoder's masked
    assert "bidirectional" in view.items["E0.attn"].sub
    assert "bidirectional" not in view.items["L0.attn"].sub
    assert "from the encoder" in view.items["L0.cross"].sub


def test_collapsed_encoder_decoder_layers_keep_an_arrow_into_the_collapsed_decoder_layers(qtbot):
    cfg = _config("encoder-decoder", n_layer=5, n_enc_layer=4)
    view = Diagram()
    qtbot.addWidget(view)
    view.build(describe(cfg), [0, -1])
    assert {"E0.attn", "E3.attn", "L0.cross", "L4.cross"} <= set(view.items)
    assert "E1.attn" not in view.items and "L2.cross" not in view.items
    assert sorted(k for _i, k in view.cross_arrows) == ["L0.cross", "L4.cross",
                                                         "collapsed:decoder:1:3"]


def _fake_s2s_result(cfg: ModelConfig, T: int = 3, S: int = 5):
    """What a step of an encoder–decoder reports (the StepResult fields the anatomy names),
    made by hand: random maps whose rows sum to 1."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    L, Le, H, C, F = cfg.n_layer, cfg.n_enc_layer, cfg.n_head, cfg.n_embd, cfg.n_ffn

    def probs(*shape):
        x = rng.random(shape).astype(np.float32)
        return x / x.sum(-1, keepdims=True)

    causal = np.tril(probs(L, H, T, T))
    causal /= causal.sum(-1, keepdims=True)
    f32 = np.float32
    return SimpleNamespace(
        pieces=["␂", "t", "w"][:T], source_pieces=list("307␃␀")[:S], T=T, S=S,
        sample=SampleConfig(temperature=0.8), causal_view=False, dist=None,
        attention=causal, cross_attention=probs(L, H, T, S),
        encoder_attention=probs(Le, H, S, S),
        residual=rng.normal(size=(L + 1, T, C)).astype(f32),
        encoder_residual=rng.normal(size=(Le + 1, S, C)).astype(f32),
        ffn=rng.normal(size=(L, T, F)).astype(f32),
        encoder_ffn=rng.normal(size=(Le, S, F)).astype(f32),
        tok_emb=rng.normal(size=(T, C)).astype(f32),
        encoder_tok_emb=rng.normal(size=(S, C)).astype(f32),
        pos_emb=rng.normal(size=(T, C)).astype(f32),
        encoder_pos_emb=rng.normal(size=(S, C)).astype(f32),
        norm_stats=rng.random((3 * L + 1, T, 2)).astype(f32),
        encoder_norm_stats=rng.random((2 * Le + 1, S, 2)).astype(f32))


def _s2s_panel(qtbot, cfg, result, tokenizer=None):
    from _panel_support import FakeSession

    s = FakeSession()
    s.config, s.result, s.tokenizer = cfg, result, tokenizer
    p = shown(qtbot, ArchitecturePanel(s))
    s.model_changed.emit()
    p.redraw_now()
    return p


def test_encoder_and_cross_attention_blocks_show_source_and_target_by_source_maps(qtbot):
    cfg = _config("encoder-decoder")
    r = _fake_s2s_result(cfg)
    p = _s2s_panel(qtbot, cfg, r)
    T, S, H = r.T, r.S, cfg.n_head
    assert "3 encoder + 2 decoder layers" in p.summary.text()
    # it opens on the first cross-attention: each head's target × source map side by side
    assert p.selected == "L0.cross"
    img = p.detail_heads.image.image
    assert img.shape == (T, H * S)
    np.testing.assert_array_equal(img[:, S:2 * S], r.cross_attention[0, 1])
    _click(qtbot, p, "L1.cross")
    np.testing.assert_array_equal(p.detail_heads.image.image[:, :S], r.cross_attention[1, 0])
    assert "Cross-attention" in p.explain.text() and "decoder layer 1" in p.explain.text()
    assert p.detail_heads.row_axis._labels == r.pieces
    # a click on a head shows it alone (target × source, the source tokens labelled) ...
    p.detail_heads.clicked.emit(0, S + 2)
    np.testing.assert_array_equal(p.detail_heads.image.image, r.cross_attention[1, 1])
    assert p.detail_heads.col_axis._labels == r.source_pieces
    # ... also in the next layer, until a click brings every head back
    _click(qtbot, p, "L0.cross")
    np.testing.assert_array_equal(p.detail_heads.image.image, r.cross_attention[0, 1])
    p.detail_heads.clicked.emit(0, 1)
    assert p.detail_heads.image.image.shape == (T, H * S)
    # the encoder's self-attention: source × source, every cell (no causal mask)
    _click(qtbot, p, "E2.attn")
    img = p.detail_heads.image.image
    assert img.shape == (S, H * S) and np.isfinite(img).all()
    np.testing.assert_array_equal(img[:, S:], r.encoder_attention[2, 1])
    assert p.detail_heads.row_axis._labels == r.source_pieces
    assert "Bidirectional" in p.explain.text() and "encoder layer 2" in p.explain.text()
    # the decoder's own attention stays masked above the diagonal
    _click(qtbot, p, "L0.attn")
    img = p.detail_heads.image.image
    assert np.isnan(img[0, 1]) and img[1, 0] == r.attention[0, 0, 1, 0]
    # the encoder's other blocks show the encoder's values, about the source tokens
    _click(qtbot, p, "E1.ffn")
    np.testing.assert_array_equal(p.detail_heatmap.image.image, r.encoder_ffn[1])
    _click(qtbot, p, "enc.embed.tok")
    np.testing.assert_array_equal(p.detail_heatmap.image.image, r.encoder_tok_emb)
    _click(qtbot, p, "E0.add_2")
    np.testing.assert_allclose(p.detail_heatmap.image.image,
                               np.linalg.norm(r.encoder_residual, axis=-1), rtol=1e-5)
    assert p.detail_heatmap.col_axis._labels == r.source_pieces
    _click(qtbot, p, "E1.ln_2")
    table, _rows, _cols = p.detail_series.export_table()
    np.testing.assert_array_equal(table, r.encoder_norm_stats[3])
    # and the decoder's the target's
    _click(qtbot, p, "L1.ffn")
    np.testing.assert_array_equal(p.detail_heatmap.image.image, r.ffn[1])


def test_an_encoder_only_model_is_drawn_as_a_bidirectional_encoder(qtbot):
    a = describe(_config("encoder"))
    view = Diagram()
    qtbot.addWidget(view)
    view.build(a, [0, 1])
    texts = " ".join(_texts(view))
    assert "Encoder" in texts and "bidirectional" in texts and "no causal mask" in texts
    assert "each token" in texts and "next token" not in texts
    assert all("bidirectional" in view.items[f"L{i}.attn"].sub for i in range(2))
    assert view.items["final.softmax"].sub == "probabilities of each token"
    assert view.cross_arrows == []
    # a GPT's drawing says none of it
    gpt = describe(_config("decoder"))
    view.build(gpt, [0, 1])
    assert "bidirectional" not in " ".join(_texts(view)) + view.items["L0.attn"].sub


def test_the_shipped_encoder_decoder_steps_values_reach_every_kind_of_block(qtbot):
    """The same views with the real stepper's results (model.seq2seq_stepper)."""
    from model.loading import open_model
    from model.seq2seq_stepper import Seq2SeqStepper
    from model.shipped import resolve_checkpoint

    m = open_model(resolve_checkpoint("numbers_to_words"))
    st = Seq2SeqStepper(m.model, m.tokenizer, SampleConfig(temperature=0.0))
    st.set_prompt("307")
    st.step()
    r = st.step()
    p = _s2s_panel(qtbot, m.config, r, m.tokenizer)
    S, T, H = r.S, r.T, m.config.n_head
    img = p.detail_heads.image.image  # L0.cross
    assert img.shape == (T, H * S)
    np.testing.assert_array_equal(img[:, :S], r.cross_attention[0, 0])
    assert p.detail_heads.row_axis._labels == r.pieces
    for key in [b.key for b in p.anatomy.boxes()]:  # every block has its values
        _click(qtbot, p, key)
        if p.detail_stack.currentWidget() is p.detail_text:
            assert "captured" not in p.detail_text.text(), key
    _click(qtbot, p, "E2.attn")
    np.testing.assert_array_equal(p.detail_heads.image.image[:, S:2 * S],
                                  r.encoder_attention[2, 1])
    assert p.detail_heads.row_axis._labels == r.source_pieces
    _click(qtbot, p, "enc.final.ln")
    table, _rows, _cols = p.detail_series.export_table()
    np.testing.assert_array_equal(table, r.encoder_norm_stats[-1])


def test_an_encoders_attention_block_fills_the_square_unless_the_causal_view_is_on(qtbot):
    from types import SimpleNamespace

    cfg = _config("encoder")
    T, H = 4, cfg.n_head
    a = np.random.default_rng(1).random((cfg.n_layer, H, T, T)).astype(np.float32)
    a /= a.sum(-1, keepdims=True)
    r = SimpleNamespace(pieces=list("ab█d"), T=T, attention=a, causal_view=False,
                        sample=SampleConfig(temperature=0.8), dist=None)
    p = _s2s_panel(qtbot, cfg, r)
    assert "2 encoder layers" in p.summary.text()
    assert p.selected == "L0.attn"
    img = p.detail_heads.image.image
    np.testing.assert_array_equal(img[:, T:], a[0, 1])  # the upper triangle too
    assert "Bidirectional" in p.explain.text() and "causal mask</b>" not in p.explain.text()
    p.session.result = SimpleNamespace(**{**vars(r), "causal_view": True})
    p.redraw_now()
    img = p.detail_heads.image.image
    assert np.isnan(img[0, 1]) and img[1, 0] == a[0, 0, 1, 0]
    assert "Shown now under a causal mask" in p.explain.text()


@pytest.mark.parametrize("layers", [(3, 2), (1, 4), (4, 1)])
def test_the_two_column_labels_cover_no_box_and_no_cross_attention_arrow(qtbot, layers):
    """(1, 4): the encoder ends above the last decoder layers, so arrows run down too."""
    n_enc, n_dec = layers
    view = Diagram()
    qtbot.addWidget(view)
    view.build(describe(_config("encoder-decoder", n_enc_layer=n_enc, n_layer=n_dec)),
               list(range(4)))
    boxes = [it.sceneBoundingRect().adjusted(2, 2, -2, -2) for it in view.items.values()]
    # the cross-attention arrows as points every 2 px along their lines
    points = []
    for item, _key in view.cross_arrows:
        line = item.path().toSubpathPolygons()[0]
        for a, b in zip(list(line)[:-1], list(line)[1:], strict=True):
            n = int(max(abs(b.x() - a.x()), abs(b.y() - a.y())) // 2) + 1
            points += [a + (b - a) * (k / n) for k in range(n + 1)]
    for t in view.scene().items():
        if not isinstance(t, QGraphicsSimpleTextItem):
            continue
        r = t.sceneBoundingRect()
        assert not [b for b in boxes if b.intersects(r)], t.text()
        assert not [p for p in points if r.contains(p)], t.text()
    # no two arrows share a lane, and boxes of one column do not overlap
    assert len({round(item.path().toSubpathPolygons()[0][3].x())
                for item, _k in view.cross_arrows}) == n_dec
    for i, a in enumerate(boxes):
        assert not [b for b in boxes[i + 1:] if a.intersects(b)]


def test_a_deep_encoder_collapses_and_a_click_on_its_collapsed_layers_expands_them(qtbot):
    cfg = _config("encoder-decoder", n_enc_layer=8, n_layer=2)
    p = _s2s_panel(qtbot, cfg, _fake_s2s_result(cfg))
    assert p.collapsed and p.collapse_box.isEnabled()
    assert {"E0.attn", "E7.attn", "L0.cross", "L1.cross"} <= set(p.items)
    assert "E3.attn" not in p.items
    collapsed = [it for it in p.view.scene().items()
                 if getattr(it, "dashed", False) and "more layers" in it.box.title]
    assert len(collapsed) == 1  # encoder layers 1–6; the decoder's two are drawn
    item = collapsed[0]
    p.view.ensureVisible(item)
    qtbot.wait(10)
    pos = p.view.mapFromScene(item.sceneBoundingRect().center())
    qtbot.mouseClick(p.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pos.x(), pos.y()))
    assert not p.collapsed and "E3.attn" in p.items
    assert len(p.view.cross_arrows) == 2


def test_a_wide_attention_detail_is_max_pooled_and_hover_and_click_still_find_the_head(
        qtbot, monkeypatch):
    # a GPT-2's 12 heads at 1,024 tokens would be a 1,024 × 12,288 image: the cells are pooled
    import explorer.panels.architecture.panel as arch
    from explorer.widgets.plot_helpers import causal_future, pool_cells

    p = _panel(qtbot, n_layer=2, n_head=3, n_embd=24)
    r = p.session.result
    T = r.T
    monkeypatch.setattr(arch, "MAX_MOSAIC", 3 * T // 2)  # pooled 2×2
    _click(qtbot, p, "L1.attn")
    tq = -(-T // 2)
    img = p.detail_heads.image.image
    assert img.shape == (tq, 3 * tq)
    want = pool_cells(np.where(causal_future(T), np.nan, r.attention[1]), 2, "max")
    for h in range(3):
        np.testing.assert_array_equal(img[:, h * tq:(h + 1) * tq], want[h])
    assert "pooled 2×2" in p.detail_heads.plot.getAxis("bottom").labelText
    # each pooled row is labelled with the query it starts at
    assert p.detail_heads.row_axis.labels == [f"{i} {r.pieces[i]}" for i in range(0, T, 2)]
    p.detail_heads.hovered.emit(tq - 1, 2 * tq + 1)  # head 2, the last queries, keys 2-3
    text = p.hover_label.text()
    assert text.startswith(f"head 2 · query '{r.pieces[2 * (tq - 1)]}' @{2 * (tq - 1)}")
    assert f"key '{r.pieces[2]}' @2" in text and "largest of 2×2" in text
    with qtbot.waitSignal(p.session.ablation_changed, timeout=5000):
        p.detail_heads.clicked.emit(0, 2 * tq + 1)
    assert p.session.ablation.heads == frozenset({(1, 2)})
