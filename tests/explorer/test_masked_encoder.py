"""A BERT-style encoder in the explorer: the session and worker mask tokens, pick the predicted
position and switch the causal comparison; the prompt strip, the prediction panel and the
attention panel show it; torch stays in the worker thread."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.panels.distribution import highlighted_token
from explorer.session import ENCODER_NO_STEPS, Session
from model.shipped import MODELS

ENCODER = MODELS / "sonnets_encoder.safetensors"
TEXT = "Shall I compare thee to a summer's day?"


@pytest.fixture
def session(qtbot):
    s = Session(device="cpu")
    s.prompt = TEXT
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.start(ENCODER)
    yield s
    s.close()


def test_session_masks_selects_and_compares(qtbot, session):
    s = session
    assert s.is_encoder
    r = s.result
    assert r.masked_positions == () and r.predicted_at == 0 and not r.is_causal
    p = TEXT.index("mmer") + 1
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_mask(p)
    r = s.result
    assert r.masked_positions == (p,) and r.predicted_at == p and s.selected_token == p
    assert s.tokenizer.token_pieces([int(r.dist.order[0])]) == ["m"]  # "su█mer"
    q = TEXT.index("day")
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.select_position(q)
    assert s.result.predicted_at == q and s.result.masked_positions == (p,)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.set_causal_view(True)
    r = s.result
    assert r.causal_view and np.all(np.triu(r.attention, k=1) == 0)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_mask(p)  # restored, still under the causal mask
    assert s.result.masked_positions == () and s.result.causal_view


def test_an_encoder_does_not_step(qtbot, session):
    s = session
    # the first result reaches the GUI a moment before the worker counts its request done
    qtbot.waitUntil(lambda: s.worker.requests_handled >= 1 and not s.busy, timeout=10000)
    handled = s.worker.requests_handled
    for act in (s.step, s.back, s.reset, s.resample, lambda: s.run(5)):
        with qtbot.waitSignal(s.message, timeout=2000) as msg:
            act()
        assert msg.args == [ENCODER_NO_STEPS]
    assert not s.running and s.worker.requests_handled == handled


def test_mask_written_in_the_prompt_is_no_unknown_character(qtbot, session):
    s = session
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        check = s.set_prompt("Shall I com[MASK]are thee")
    assert check.unknown == () and check.n_tokens == len("Shall I com_are thee")
    p = len("Shall I com")
    assert s.result.masked_positions == (p,) and s.result.predicted_at == p
    assert s.selected_token == p
    # a typed [MASK] has no original: a click says so in the status line and shows its
    # prediction, no dialog
    with qtbot.waitSignal(s.step_ready, timeout=2000):
        s.select_position(0)
    messages: list[str] = []
    s.message.connect(messages.append)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_mask(p)
    assert any("written in the text" in m for m in messages)
    assert s.result.predicted_at == p and s.result.masked_positions == (p,)


def _click_chip(qtbot, strip, i: int) -> None:
    from PySide6.QtCore import Qt

    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=strip.chip_rect(i).center())


@pytest.fixture
def encoder_window(make_window):
    return make_window(ENCODER, prompt=TEXT, optional_panels=True)


def test_clicking_a_chip_masks_it_and_the_prediction_follows(qtbot, encoder_window):
    w = encoder_window
    s, prompt, dist = w.session, w.prompt_panel, w.distribution_panel
    assert s.is_encoder and prompt.encoder_bar.isVisible()
    assert not prompt.buttons.isVisible() and not prompt.legend.isVisible()
    assert "does not generate" in prompt.encoder_bar.hint.toolTip()
    with qtbot.waitSignal(s.message, timeout=2000) as msg:
        prompt.act_step.trigger()  # Space: the reason in the status bar, no step
    assert msg.args == [ENCODER_NO_STEPS]
    assert not dist.controls.resample_button.isEnabled()
    strip = prompt.strip
    assert not strip.show_planned
    p = TEXT.index("mmer") + 1
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        _click_chip(qtbot, strip, p)
    r = s.result
    assert r.masked_positions == (p,) and r.predicted_at == p
    assert strip._labels[p] == "[MASK]" and strip.selected == p
    assert "[MASK] hiding 'm'" in strip.tooltip_for(p)
    dist.flush()
    text = dist.summary.text()
    assert f"Prediction at position {p}</b> (masked: 'm')" in text
    assert dist.shown_ids[0] == r.dist.order[0]
    assert highlighted_token(r) == int(r.original_ids[p])  # the answer's bar is outlined
    assert "the hidden 'm' (outlined) has" in text
    assert f"position {p}" in dist.plot.getAxis("bottom").labelText
    assert "1 masked" in prompt.info.text()
    # a second click restores the token; the prediction stays at that position
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        _click_chip(qtbot, strip, p)
    assert s.result.masked_positions == () and s.result.predicted_at == p
    dist.flush()
    assert "not masked" in dist.summary.text()
    assert strip._labels[p] == "m"


def test_causal_toggle_makes_the_attention_map_lower_triangular(qtbot, encoder_window):
    w = encoder_window
    s, att = w.session, w.panels["Attention"]
    w.docks["Attention"].show()
    w.docks["Attention"].raise_()
    T = s.result.T
    upper = np.triu(np.ones((T, T), dtype=bool), k=1)
    qtbot.waitUntil(lambda: att.heatmap.matrix is not None
                    and att.heatmap.matrix.shape == (T, T), timeout=5000)
    display, values, _ = att.head_matrix()
    assert not np.isnan(display[upper]).any() and (values[upper] > 0).all()  # full rows
    assert "no causal mask" in att.formula.text()
    box = w.prompt_panel.encoder_bar.causal
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        box.setChecked(True)
    assert s.causal_view and s.result.causal_view
    att.redraw_now()
    display, values, _ = att.head_matrix()
    assert np.isnan(display[upper]).all() and (values[upper] == 0).all()
    assert not np.isnan(display[~upper]).any()
    assert "no causal mask" not in att.formula.text()
    np.testing.assert_array_equal(att.heatmap.matrix[~upper],
                                  s.result.attention[att.layer, att.head][~upper])
    w.distribution_panel.flush()
    assert "under a causal mask" in w.distribution_panel.summary.text()
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        box.setChecked(False)
    att.redraw_now()
    assert not np.isnan(att.head_matrix()[0][upper]).any()


def test_no_torch_in_the_gui_thread(qtbot, make_window, monkeypatch):
    from tests.explorer.test_threads import GuiThreadTorch

    torch_in_gui = GuiThreadTorch(monkeypatch)
    w = make_window(ENCODER, prompt=TEXT, optional_panels=True)
    s = w.session
    torch_in_gui.on = True
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        _click_chip(qtbot, w.prompt_panel.strip, 3)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.select_position(5)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        w.prompt_panel.encoder_bar.causal.setChecked(True)
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_head(0, 1)
    for name in ("Attention", "Architecture", "Positional encoding", "Ablation"):
        w.docks[name].show()
        w.docks[name].raise_()
        qtbot.wait(50)
    w.distribution_panel.flush()
    torch_in_gui.on = False
    assert not torch_in_gui.calls, "\n".join(torch_in_gui.calls)


def test_a_decoder_opened_after_the_encoder_steps_again(qtbot, encoder_window, tiny_models):
    w = encoder_window
    s, prompt = w.session, w.prompt_panel
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        w.prompt_panel.encoder_bar.causal.setChecked(True)
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        w.open_model(tiny_models["tiny"])
    assert not s.is_encoder and not s.causal_view
    assert not prompt.encoder_bar.causal.isChecked() and not prompt.encoder_bar.isVisible()
    assert prompt.buttons.isVisible() and prompt.legend.isVisible() and prompt.strip.show_planned
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step()
    assert s.result.n_generated == 1 and s.result.predicted_at is None


def test_the_numbers_of_one_query_see_every_key(qtbot, encoder_window):
    w = encoder_window
    s, att = w.session, w.panels["Attention"]
    w.docks["Attention"].show()
    w.docks["Attention"].raise_()
    att.set_stage("qk")
    att.redraw_now()
    assert att.numbers_shown and "the mask" in att.formula.text()
    q = 3  # the selected token's query: every key counts, the later ones too
    s.select_token(q)
    att.redraw_now()
    data = att.qkv.data
    assert int(data["n_keys"]) == s.result.T
    assert np.isfinite(data["steps"][:, 2]).all()  # nothing masked
    np.testing.assert_allclose(data["steps"][:, 3], s.result.attention[att.layer, att.head, q])


def test_the_ablation_panel_ranks_heads_for_the_shown_position(qtbot, encoder_window):
    w = encoder_window
    s, panel = w.session, w.panels["Ablation"]
    p = TEXT.index("mmer") + 1
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_mask(p)
    with qtbot.waitSignal(s.heads_ranked, timeout=10000) as ranked:
        w.docks["Ablation"].show()
        w.docks["Ablation"].raise_()
    eff = ranked.args[0]
    assert eff.token == int(s.result.original_ids[p]) and eff.delta.shape == (3, 4)
    qtbot.waitUntil(lambda: len(panel.ranking) == 12, timeout=5000)
    assert "'m': log p" in panel.hover_label.text()
    q = TEXT.index("day")
    with qtbot.waitSignal(s.heads_ranked, timeout=10000) as ranked:
        s.select_position(q)  # another position: ranked again, for its token
    assert ranked.args[0].token == int(s.result.original_ids[q])
