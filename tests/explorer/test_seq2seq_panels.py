"""The prompt and attention panels with an encoder-decoder (the shipped numbers_to_words, stepped
by a real Seq2SeqStepper): a source editor and strip beside the target strip; three attention
families whose images are exactly the captured tensors, cross-attention as target × source with
both axes labelled, and each family's own mask."""
from __future__ import annotations

import numpy as np
import pytest
from _panel_support import FakeSession, make_session, shown, tiny_model

from explorer.panels.attention.panel import FAMILY_TITLES, MATRIX_STAGES, AttentionPanel
from explorer.panels.prompt import DEBOUNCE_MS, PromptPanel
from explorer.session import Session
from explorer.widgets.plot_helpers import MASKED_CODE, quantize
from model.config import SampleConfig
from model.loading import open_model
from model.seq2seq_stepper import Seq2SeqStepper
from model.shipped import MODELS, resolve_checkpoint

NUMBERS = MODELS / "numbers_to_words.safetensors"


class Seq2SeqSession(FakeSession):
    """The panels' stand-in session, stepping an encoder-decoder."""

    def set_model(self, model, tokenizer, info=None) -> None:
        self.network, self.tokenizer, self.config, self.info = model, tokenizer, model.config, info
        self.positional = model.pe.view()
        self.result = None
        self.selected_token = -1
        self.running = False
        self.stepper = Seq2SeqStepper(model, tokenizer, self.sample)
        self.model_changed.emit()

    def rank_heads(self) -> None:
        self.rank_requests += 1
        self.head_effects = self.stepper.rank_heads(self.ablation.mode)
        self.heads_ranked.emit(self.head_effects)


@pytest.fixture(scope="module")
def numbers():
    return open_model(resolve_checkpoint("numbers_to_words"))


def seq2seq_session(numbers, source="307", steps=6) -> Seq2SeqSession:
    s = Seq2SeqSession()
    s.sample = SampleConfig(temperature=0.0)
    s.set_model(numbers.model, numbers.tokenizer)
    s.set_prompt(source)
    if steps:
        s.step(steps)
    return s


@pytest.fixture
def panel(qtbot, numbers):
    return shown(qtbot, AttentionPanel(seq2seq_session(numbers)))


def _axis_title(heatmap, side: str) -> str:
    return heatmap.plot.getAxis(side).labelText


# -- attention -----------------------------------------------------------------------------------
def test_the_family_selector_shows_only_for_a_model_with_several_families(qtbot, panel):
    assert panel.family_group.isVisibleTo(panel)
    assert [panel.family_box.itemText(i) for i in range(3)] == [
        "Encoder self-attention", "Decoder masked self-attention", "Cross-attention"]
    decoder = shown(qtbot, AttentionPanel(make_session(tiny_model(), "hello", steps=2)))
    assert not decoder.family_group.isVisibleTo(decoder) and decoder.family == "self"
    with pytest.raises(ValueError, match="families"):
        decoder.set_family("cross")


@pytest.mark.parametrize("family", ["encoder", "self", "cross"])
def test_head_images_equal_each_family_s_captured_tensors(panel, family):
    r = panel.session.result
    attention, scores = r.family_maps(family)
    panel.family_box.setCurrentIndex(panel.family_box.findData(family))
    assert panel.family == family
    L, H, rows, cols = attention.shape
    assert (rows, cols) == {"encoder": (r.S, r.S), "self": (r.T, r.T), "cross": (r.T, r.S)}[family]
    hidden = r.family_mask(family) == 0
    for stage in MATRIX_STAGES:
        panel.set_stage(stage)
        for layer in range(L):
            panel.set_layer(layer)
            panel.set_head(H - 1)
            panel.redraw_now()
            img = panel.heatmap.image.image
            assert img.shape == (rows, cols)
            want = attention[layer, H - 1] if stage == "probs" else (
                scores[layer, H - 1] if stage == "scores"
                else r.masked_family_scores(family)[layer, H - 1])
            np.testing.assert_array_equal(panel.heatmap.matrix, want)
            if stage == "scores":
                np.testing.assert_array_equal(img, want)
            else:  # what the mask hides is NaN (hatched); the rest is the tensor
                np.testing.assert_array_equal(img[~hidden], want[~hidden])
                assert np.isnan(img[hidden]).all()
    upper = np.triu(np.ones((rows, cols), dtype=bool), 1)
    if family == "self":  # the causal mask hides the upper triangle ...
        assert hidden[upper].all()
    else:  # ... the encoder's and cross-attention's masks hide only padding: none here
        assert not hidden.any()
        panel.set_stage("probs")
        panel.redraw_now()
        assert (panel.heatmap.image.image[upper] > 0).all()  # the upper triangle is filled


def test_cross_attention_is_target_rows_by_source_columns_with_both_axes_labelled(panel):
    r = panel.session.result
    panel.set_family("cross")
    panel.set_stage("probs")
    panel.redraw_now()
    table, row_labels, col_labels = panel.heatmap.export_table()
    assert table.shape == (r.T, r.S)
    np.testing.assert_allclose(table.sum(-1), 1, atol=1e-5)  # each target row over the source
    assert panel.heatmap.row_axis._labels == r.pieces
    assert panel.heatmap.col_axis._labels == r.source_pieces == ["3", "0", "7", "<eos>"]
    assert "target" in _axis_title(panel.heatmap, "left")
    assert "source" in _axis_title(panel.heatmap, "bottom")
    assert "Cross-attention" in panel.formula.text()
    text = panel.hover_text(2, 1)
    assert f"target '{r.pieces[2]}' @2 → source '0' @1" in text
    assert FAMILY_TITLES["cross"].lower() in text
    panel.set_stage("masked")  # the mask of cross-attention is the source padding
    assert "padding" in panel.formula.text()
    panel.set_family("encoder")
    assert "source" in _axis_title(panel.heatmap, "left")
    assert "no causal mask" in panel.formula.text()


@pytest.mark.parametrize("family", ["encoder", "self", "cross"])
def test_all_heads_grid_works_for_each_family(panel, family):
    r = panel.session.result
    attention = r.family_maps(family)[0]
    L, H, rows, cols = attention.shape
    panel.set_family(family)
    panel.set_stage("probs")
    panel.set_view("grid")
    panel.redraw_now()
    codes = panel.grid.image.image
    assert codes.shape == (L * rows, H * cols)
    want = quantize(attention, (0.0, 1.0))
    for layer in range(L):
        for head in range(H):
            cell = codes[layer * rows:(layer + 1) * rows, head * cols:(head + 1) * cols]
            hidden = r.family_mask(family) == 0
            np.testing.assert_array_equal(cell[~hidden], want[layer, head][~hidden])
            assert (cell[hidden] == MASKED_CODE).all()
    # a pixel maps back to its layer, head, query and key, and a click opens that head
    row, col = (L - 1) * rows + rows - 1, (H - 1) * cols + cols - 1
    assert panel.grid_cell(row, col) == (L - 1, H - 1, rows - 1, cols - 1)
    assert f"layer {L - 1}, head {H - 1}" in panel.grid_hover_text(row, col)
    panel._on_grid_click(row, col)
    assert panel.view == "head" and (panel.layer, panel.head) == (L - 1, H - 1)
    panel.redraw_now()
    assert panel.heatmap.image.image.shape == (rows, cols)


def test_lines_and_rollout_follow_self_attention_and_say_why_not_for_cross(panel):
    r = panel.session.result
    panel.set_family("cross")
    panel.set_view("lines")
    panel.redraw_now()
    assert "cross-attention" in panel.hover_label.text()
    panel.set_family("encoder")
    panel.set_view("rollout")
    panel.redraw_now()
    t, flow = panel.rollout_values()
    assert t == r.S - 1 and flow.shape == (r.S,)
    np.testing.assert_allclose(flow.sum(), 1, atol=1e-5)
    panel.set_view("lines")
    panel.redraw_now()
    assert len(panel.lines.segments) > 0


def test_the_numbers_stages_show_the_decoder_s_heads_and_explain_themselves_elsewhere(panel):
    panel.set_family("cross")
    panel.set_stage("qk")
    panel.redraw_now()
    assert not panel.numbers_shown and "decoder's masked self-attention" in panel.formula.text()
    panel.set_family("self")
    assert panel.numbers_shown


def test_the_ablation_panel_switches_the_decoder_s_heads_to_zero(qtbot, numbers):
    from explorer.panels.ablation import AblationPanel

    s = seq2seq_session(numbers, "42", steps=3)
    p = shown(qtbot, AblationPanel(s))
    cfg = numbers.config
    assert len(p.buttons) == cfg.n_layer * cfg.n_head
    mean = p.mode_box.model().item(p.mode_box.findData("mean"))
    assert not mean.isEnabled() and p.mode_box.model().item(0).isEnabled()
    assert s.head_effects is not None and s.head_effects.delta.shape == (cfg.n_layer, cfg.n_head)
    p.buttons[(1, 2)].click()
    assert s.result.ablation.sorted() == [(1, 2)] and s.result.intact_logits is not None


# -- prompt --------------------------------------------------------------------------------------
@pytest.fixture
def live(qtbot):
    """A real Session (its worker steps numbers_to_words) and a prompt panel on it."""
    s = Session(device="cpu")
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.start(NUMBERS, prompt="42", sample={"temperature": 0.0})
    p = PromptPanel(s)
    qtbot.addWidget(p)
    p.resize(900, 500)
    p.show()
    qtbot.waitExposed(p)
    yield s, p
    s.close()


def test_the_prompt_panel_holds_a_source_editor_and_the_target_strip(qtbot, live):
    s, p = live
    assert p.source_label.isVisible() and p.source_label.text() == "Source (encoder input)"
    assert p.target_label.isVisible() and p.target_label.text() == "Target (decoder output)"
    assert p.source_strip.result.pieces == ["4", "2", "<eos>"]
    assert p.strip.result.pieces == ["<bos>"] and p.editor.toPlainText() == "42"
    assert "source" in p.editor.placeholderText()
    while not s.result.complete:
        with qtbot.waitSignal(s.step_ready, timeout=10000):
            p.step()
    assert p.plain_text() == "42 → forty two" and p.strip.result is s.result
    assert not p.act_step.isEnabled() and not p.act_run.isEnabled()
    assert p.act_back.isEnabled() and "complete" in p.info.text()
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        p.back()
    assert p.act_step.isEnabled() and p.act_run.isEnabled()


def test_typing_a_source_re_encodes_it_and_restarts_the_target(qtbot, live):
    s, p = live
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        p.step()
    assert s.result.n_generated == 1
    with qtbot.waitSignal(s.step_ready, timeout=DEBOUNCE_MS + 10000):
        p.editor.setPlainText("19")  # debounced like a prompt
    assert p.source_strip.result.pieces == ["1", "9", "<eos>"] and p.strip.result.pieces == ["<bos>"]
    assert s.result.n_generated == 0


def test_a_source_too_long_is_explained_under_the_editor(qtbot, live):
    s, p = live
    p.set_prompt_text("9" * 50)
    assert p.note.isVisible() and "50 tokens" in p.note.text() and "block size 48" in p.note.text()
    assert p.source_strip.result.pieces == ["4", "2", "<eos>"]  # the last source that fitted
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        p.set_prompt_text("")
    assert "Empty source" in p.note.text() and s.result.source_pieces == ["<eos>"]


def test_a_decoder_model_has_no_source_strip(window):
    p = window.prompt_panel
    assert not p.source_label.isVisibleTo(p) and not p.source_scroll.isVisibleTo(p)
    assert not p.target_label.isVisibleTo(p) and p.source_strip.result is None


def test_the_screenshot_option_picks_an_attention_family(capsys):
    from explorer.app import parse_args

    assert parse_args(["--attention-family", "cross"]).attention_family == "cross"
    with pytest.raises(SystemExit) as e:
        parse_args(["--attention-family", "decoder"])
    assert e.value.code == 2 and "--attention-family" in capsys.readouterr().err
