"""Playing lessons in the window: every shipped lesson from start to end (each slide's model,
tokens, panel, layer/head/stage reached, a non-empty picture), predict-first answers counted
right and wrong, the shipped answers agree with the models, Add slide round-trips through
save/load and replays, bad lessons end in a message naming slide and field; Help → Concepts."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from explorer.concepts import CONCEPTS
from explorer.lesson_file import FORMAT, Lesson, load_lesson, shipped_lessons
from explorer.lesson_player import DOCKS
from model.shipped import resolve_checkpoint

SHOWN_MS = 90000  # a slide that generates tokens redraws every panel per token


def _open(qtbot, window, lesson: Lesson, index: int = 0) -> None:
    with qtbot.waitSignal(window.lessons.slide_shown, timeout=SHOWN_MS) as sig:
        window.lessons.open(lesson, index)
    assert sig.args == [index]


def _go(qtbot, window, index: int) -> None:
    with qtbot.waitSignal(window.lessons.slide_shown, timeout=SHOWN_MS) as sig:
        window.lessons.go(index)
    assert sig.args == [index]


def _check_state(window, lesson: Lesson, i: int) -> None:
    s = lesson.slides[i]
    session, r = window.session, window.session.result
    where = f"{lesson.path.name} slide {i + 1}"
    assert session.info.path.resolve() == lesson.model_path(s).resolve(), where
    tok, cfg = session.tokenizer, session.config
    prompt_ids = tok.encode(s.prompt)
    forced = list(s.forced_ids) or (tok.encode(s.forced_text) if s.forced_text else [])
    ids = [int(x) for x in r.ids]
    if cfg.kind == "encoder-decoder":  # the prompt is the source; the target starts at <bos>
        assert [int(x) for x in r.source_ids[:len(prompt_ids)]] == prompt_ids, where
        prompt_ids = [cfg.bos_id]
    if cfg.kind == "encoder":  # the text as typed, its masked positions hidden
        assert [int(x) for x in r.original_ids] == prompt_ids, where
        assert set(r.masked_positions) == set(s.mask) and r.causal_view == s.causal, where
        assert all(ids[p] == cfg.mask_id for p in s.mask), where
        assert r.predicted_at == (s.mask[-1] if s.mask else r.predicted_at), where
        assert window.session.causal_view == s.causal
    elif s.steps:
        assert r.n_generated == s.steps and ids[:len(prompt_ids)] == prompt_ids, where
    else:
        assert ids == prompt_ids + forced, where
    assert session.sample.temperature == s.temperature and session.sample.seed == s.seed
    dock = window.docks[DOCKS[s.panel]]
    assert dock.isVisible() and not dock.visibleRegion().isEmpty(), where
    panel = window.panels[DOCKS[s.panel]]
    if s.panel == "attention":
        assert panel.family == (s.family or "self"), where
        assert (panel.view, panel.layer, panel.stage) == (s.view or "head", s.layer, s.stage)
        assert panel.layer_box.currentIndex() == s.layer  # the family's own stack of layers
        assert panel.average == (s.head is None) and (s.head is None or panel.head == s.head)
    elif s.panel == "architecture":
        assert panel.selected == (s.view or None), where
    elif s.panel == "positional encoding":
        assert panel.view == (s.view or "matrix")
    elif s.panel == "next token":
        assert window.distribution_panel.controls.show_logits.isChecked() == (s.view == "logits")
    elif s.panel == "training":
        assert panel.tabs.currentIndex() == (1 if s.view == "film" else 0)
    if s.highlight.token is not None:
        assert session.selected_token == s.highlight.token
    narration = window.lessons.pane.text.toPlainText()
    assert s.narration.split("\n")[0].replace("`", "").replace("*", "")[:20] in narration
    image = window.grab().toImage()
    assert image.width() >= 800 and image.height() >= 500
    # a real picture: many colours, not a blank window
    small = image.scaled(80, 50)
    colours = {small.pixel(x, y) for x in range(80) for y in range(50)}
    assert len(colours) > 30, where


@pytest.mark.parametrize("path", shipped_lessons(), ids=lambda p: p.stem)
def test_every_shipped_lesson_plays_from_start_to_end(qtbot, make_window, path):
    lesson = load_lesson(path)
    first = lesson.slides[0]
    w = make_window(lesson.model_path(first), prompt=first.prompt, optional_panels=True)
    w.resize(1280, 720)
    _open(qtbot, w, lesson)
    for i in range(len(lesson.slides)):
        if i:
            # the clicker key: reveals a pending answer first, then moves on
            if lesson.slides[i - 1].question is not None:
                qtbot.keyClick(w, Qt.Key.Key_PageDown)
                assert w.lessons.revealed and w.lessons.index == i - 1
            with qtbot.waitSignal(w.lessons.slide_shown, timeout=SHOWN_MS):
                qtbot.keyClick(w, Qt.Key.Key_PageDown)
        assert w.lessons.index == i
        _check_state(w, lesson, i)
    assert not w.lessons.pane.next_button.isEnabled() or lesson.slides[-1].question is not None


def test_predict_first_counts_right_and_wrong(qtbot, make_window):
    lesson = load_lesson(next(p for p in shipped_lessons() if p.stem.startswith("02_")))
    w = make_window(lesson.model_path(lesson.slides[0]), optional_panels=True)
    _open(qtbot, w, lesson)
    p = w.lessons
    q = lesson.slides[0].question
    assert q is not None and not p.revealed and "Answer:" not in p.pane.text.toPlainText()
    p.pane.choice_buttons[q.choices.index(q.answer)].click()  # the right one
    p.next()  # reveals, stays on the slide
    assert p.revealed and p.index == 0 and (p.right, p.answered) == (1, 1)
    assert "right" in p.pane.text.toPlainText() and f"Answer: {q.answer}" in \
        p.pane.text.toPlainText()
    assert not any(b.isEnabled() for b in p.pane.choice_buttons)  # no change after the reveal
    k = next(i for i, s in enumerate(lesson.slides) if s.question is not None and i > 0)
    _go(qtbot, w, k)
    q2 = lesson.slides[k].question
    wrong = next(c for c in q2.choices if c != q2.answer)
    p.pick(wrong)
    p.next()
    assert (p.right, p.answered) == (1, 2)
    assert "wrong" in p.pane.text.toPlainText()
    assert p.pane.score.text() == "1 of 2 right"
    _go(qtbot, w, 0)  # going back does not count a slide twice
    p.next()
    assert (p.right, p.answered) == (1, 2)
    # a question nobody picked for is revealed but not counted
    _go(qtbot, w, k)
    assert p.revealed  # counted already: shown with its answer


def _token_choice(c: str) -> str:
    return "\n" if c == "\u21b5" else " " if c == "\u2423" else c


def test_shipped_answers_agree_with_the_models(qtbot, make_window):
    """The answers a lesson reveals are what the model computes: attends_to answers are the
    head's strongest key for the last query; next-token answers the most likely token."""
    checked = 0
    for path in shipped_lessons():
        lesson = load_lesson(path)
        for i, s in enumerate(lesson.slides):
            q = s.question
            if q is None or q.kind == "loss" or (q.kind == "next_token" and not all(
                    len(_token_choice(c)) == 1 for c in q.choices)):
                continue
            w = make_window(lesson.model_path(s), prompt=s.prompt, optional_panels=True)
            _open(qtbot, w, lesson, i)
            r, tok = w.session.result, w.session.tokenizer
            if q.kind == "attends_to":
                # the query: the highlighted cell's, else the last row of the family's map
                # (an encoder-decoder's encoder: source × source; cross: target × source)
                family = s.family or "self"
                maps = r.family_maps(family)[0]
                rows = r.source_pieces if family == "encoder" else r.pieces
                cols = r.source_pieces if family in ("encoder", "cross") else r.pieces
                query = s.highlight.cell[0] if s.highlight.cell is not None else len(rows) - 1
                piece, pos = q.answer.split(" @")
                row = maps[s.layer, s.head, query]
                assert int(np.argmax(row)) == int(pos), (path.name, i)
                assert cols[int(pos)] == piece
                assert all(cols[int(c.split(" @")[1])] == c.split(" @")[0] for c in q.choices)
            elif "lens" in (s.view or "") or s.view == "final.unembed":
                assert tok.decode([int(r.lens_ids[0, -1, 0])]) == _token_choice(q.answer)
            else:
                assert tok.decode([int(np.argmax(r.logits))]) == _token_choice(q.answer)
            checked += 1
            w.close()
    assert checked >= 8


def test_a_sampled_slide_replays_the_same_tokens(qtbot, make_window):
    lesson = load_lesson(next(p for p in shipped_lessons() if p.stem.startswith("06_")))
    k = next(i for i, s in enumerate(lesson.slides) if s.steps)
    w = make_window(lesson.model_path(lesson.slides[k]), optional_panels=True)
    _open(qtbot, w, lesson, k)
    first = [int(x) for x in w.session.result.ids]
    _go(qtbot, w, k - 1)
    _go(qtbot, w, k)
    assert [int(x) for x in w.session.result.ids] == first
    assert w.session.result.n_generated == lesson.slides[k].steps


def test_add_slide_from_current_view_round_trips(qtbot, make_window, tmp_path, dialogs):
    w = make_window(resolve_checkpoint("induction"), prompt="fbjhca", optional_panels=True)
    s = w.session
    for _ in range(3):
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.step()
    att = w.panels["Attention"]
    w.show_panel("Attention")
    att.open_head(1, 2)
    att.set_stage("masked")
    s.select_token(4)
    ids = [int(x) for x in s.result.ids]
    w.add_slide_from_view()
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.set_prompt("abc")  # somewhere else
    w.show_panel("Positional")
    w.panels["Positional encoding"].set_view("curves")
    w.add_slide_from_view()
    assert len(w.recorded_lesson.slides) == 2 and not dialogs
    out = tmp_path / "mine"
    assert w.save_lesson(out)
    lesson = load_lesson(tmp_path / "mine.json")
    assert lesson.slides == w.recorded_lesson.slides
    a, b = lesson.slides
    assert (a.model, a.panel, a.layer, a.head, a.stage, a.highlight.token) == (
        "induction", "attention", 1, 2, "masked", 4)
    assert a.prompt == "fbjhca" and list(a.forced_ids) == ids[6:]
    assert (b.panel, b.view, b.prompt, b.forced_ids) == ("positional encoding", "curves", "abc",
                                                          ())
    _open(qtbot, w, lesson)  # it replays: same tokens, same view
    assert [int(x) for x in s.result.ids] == ids
    assert (att.layer, att.head, att.stage, s.selected_token) == (1, 2, "masked", 4)
    _check_state(w, lesson, 0)


def test_bad_lessons_end_in_a_message_naming_slide_and_field(qtbot, make_window, tmp_path,
                                                             dialogs):
    w = make_window(resolve_checkpoint("induction"), optional_panels=True)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": FORMAT, "version": 1, "title": "t",
                               "slides": [{"model": "induction", "prompt": "ab",
                                           "stage": "soft"}]}))
    assert not w.open_lesson(bad)
    assert dialogs and "slide 1" in dialogs[-1][2] and "\"stage\"" in dialogs[-1][2]
    # valid as a file, wrong for this model: a layer it lacks, a token outside its vocabulary
    for slide, words in (({"panel": "attention", "layer": 7}, ["slide 2", "\"layer\"", "2 layers"]),
                         ({"forced_ids": [40]}, ["slide 2", "\"forced_ids\"", "11 tokens"]),
                         ({"prompt": "XYZ"}, ["slide 2", "\"prompt\""]),
                         ({"highlight": {"head": [0, 9]}}, ["slide 2", "\"head\"", "4 heads"]),
                         ({"panel": "attention", "family": "cross"},
                          ["slide 2", "\"family\" 'cross'", "encoder-decoder", "a decoder"]),
                         ({"mask": [1]}, ["slide 2", "\"mask\"", "encoder", "a decoder"])):
        f = tmp_path / "model_mismatch.json"
        f.write_text(json.dumps({"format": FORMAT, "version": 1, "title": "t", "slides": [
            {"model": "induction", "prompt": "ab"},
            {"model": "induction", "prompt": "ab", **slide}]}))
        lesson = load_lesson(f)
        _open(qtbot, w, lesson)
        with qtbot.waitSignal(w.lessons.failed, timeout=SHOWN_MS) as sig:
            w.lessons.next()
        for word in words:
            assert word in sig.args[0], (word, sig.args[0])
        assert dialogs[-1][2] == sig.args[0]  # the window showed it
    assert w.session.result is not None  # the app stays up


@pytest.mark.parametrize("model,slide,words", [
    ("numbers_to_words", {"panel": "attention", "family": "encoder", "layer": 3},
     ["\"layer\" is 3", "3 encoder layers"]),
    ("numbers_to_words", {"panel": "attention", "family": "self", "layer": 2},
     ["\"layer\" is 2", "2 decoder layers"]),
    ("numbers_to_words", {"mask": [0]}, ["\"mask\"", "an encoder-decoder"]),
    ("sonnets_encoder", {"mask": [0, 5]}, ["\"mask\" has position 5", "2 tokens"]),
    ("sonnets_encoder", {"steps": 3, "sampling": {"seed": 1}},
     ["does not generate", "\"steps\""]),
    ("sonnets_encoder", {"panel": "attention", "family": "encoder"},
     ["\"family\" 'encoder'", "an encoder"]),
], ids=["enc-layer", "dec-layer", "mask-s2s", "mask-range", "enc-steps", "enc-family"])
def test_encoder_slides_wrong_for_the_model_name_slide_and_field(qtbot, make_window, tmp_path,
                                                                 dialogs, model, slide, words):
    w = make_window(resolve_checkpoint(model), optional_panels=True)
    f = tmp_path / "l.json"
    f.write_text(json.dumps({"format": FORMAT, "version": 1, "title": "t", "slides": [
        {"model": model, "prompt": "ab" if model != "numbers_to_words" else "12"},
        {"model": model, "prompt": "ab" if model != "numbers_to_words" else "12", **slide}]}))
    lesson = load_lesson(f)
    _open(qtbot, w, lesson)
    with qtbot.waitSignal(w.lessons.failed, timeout=SHOWN_MS) as sig:
        w.lessons.next()
    assert "slide 2" in sig.args[0]
    for word in words:
        assert word in sig.args[0], (word, sig.args[0])
    assert w.session.result is not None  # the app stays up


def test_encoder_and_seq2seq_slides_record_and_replay(qtbot, make_window, tmp_path):
    """Add slide from current view keeps an encoder-decoder's source, target and attention
    family, and an encoder's masks and causal view; the slides replay to the same state."""
    w = make_window(resolve_checkpoint("numbers_to_words"), prompt="42", optional_panels=True)
    s = w.session
    for _ in range(3):
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.step()
    target = [int(x) for x in s.result.ids]
    att = w.panels["Attention"]
    w.show_panel("Attention")
    att.set_family("cross")
    att.open_head(1, 3)
    w.add_slide_from_view()
    a = w.recorded_lesson.slides[-1]
    assert (a.model, a.prompt, a.family, a.layer, a.head) == ("numbers_to_words", "42", "cross",
                                                              1, 3)
    assert list(a.forced_ids) == target[1:] and not a.mask
    with qtbot.waitSignal(s.model_opened, timeout=SHOWN_MS):
        s.load_checkpoint(resolve_checkpoint("sonnets_encoder"))
    qtbot.waitUntil(lambda: s.result is not None and s.is_encoder, timeout=SHOWN_MS)
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.set_prompt("to be or not")
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.toggle_mask(3)
    with qtbot.waitSignal(s.step_ready, timeout=5000):
        s.set_causal_view(True)
    w.show_panel("Next token")
    w.add_slide_from_view()
    b = w.recorded_lesson.slides[-1]
    assert (b.model, b.prompt, b.mask, b.causal, b.forced_ids, b.family) == (
        "sonnets_encoder", "to be or not", (3,), True, (), "")
    assert w.save_lesson(tmp_path / "rec")
    lesson = load_lesson(tmp_path / "rec.json")
    assert lesson.slides == w.recorded_lesson.slides
    _open(qtbot, w, lesson)
    assert [int(x) for x in s.result.ids] == target and att.family == "cross"
    assert (att.layer, att.head) == (1, 3)
    _go(qtbot, w, 1)
    assert s.result.masked_positions == (3,) and s.result.causal_view and s.causal_view
    _go(qtbot, w, 0)  # back to the encoder-decoder, and again to the encoder (as trained)
    _check_state(w, lesson, 0)


def test_concepts_are_two_clicks_away_and_jump_to_their_panel(qtbot, make_window):
    w = make_window(resolve_checkpoint("shakespeare_char"), optional_panels=True)
    help_menu = next(a.menu() for a in w.menuBar().actions() if "Help" in a.text())
    concepts = next(a.menu() for a in help_menu.actions() if a.menu() is not None
                    and "Concepts" in a.text())
    titles = [a.text() for a in concepts.actions()]
    assert all(c.title in titles for c in CONCEPTS)
    assert len(CONCEPTS) >= 18
    assert {"encoder-decoder", "cross-attention", "bert"} <= {c.key for c in CONCEPTS}
    for c in CONCEPTS:
        assert c.text and c.formula and c.where
        action = next(a for a in concepts.actions() if a.text() == c.title)
        action.trigger()
        browser = w._concepts
        assert browser is not None and browser.isVisible()
        assert c.title in browser.text.toPlainText()
        browser.show_button.click()
        if c.example:  # opens the example of the kind it needs, then shows the panel
            qtbot.waitUntil(lambda c=c: w.session.config.kind == c.kind
                            and w.session.result is not None
                            and w.session.result.kind == c.kind and w._pending_view is None,
                            timeout=60_000)
            assert w.session.info.name == c.example
        title = DOCKS[c.show.panel]
        dock = w.docks[title]
        assert dock.isVisible() and not dock.visibleRegion().isEmpty(), c.key
        panel = w.panels[title]
        if c.show.panel == "attention":
            assert (panel.view, panel.stage, panel.layer) == (c.show.view, c.show.stage,
                                                              c.show.layer)
            assert panel.family == (c.show.family or "self"), c.key
        elif c.show.panel == "architecture":
            assert panel.selected == (c.show.view or None)
        elif c.show.panel == "positional encoding":
            assert panel.view == c.show.view
    browser.close()


def test_a_lesson_keeps_its_narration_in_presenter_mode(qtbot, make_window):
    lesson = load_lesson(shipped_lessons()[1])
    w = make_window(lesson.model_path(lesson.slides[0]), optional_panels=True)
    w.presenter.set_active(True)
    _open(qtbot, w, lesson, 1)
    visible = sorted(t for t, d in w.docks.items() if d.isVisible())
    assert visible == sorted({"Prompt", "Lesson", DOCKS[lesson.slides[1].panel]})
    qtbot.keyClick(w, Qt.Key.Key_2)  # the presenter's panel keys keep it too
    assert w.docks["Lesson"].isVisible()
    w.presenter.set_active(False)
    w.lessons.close()
    assert not w.docks["Lesson"].isVisible()
    assert "PgDown" in [k.toString() for k in w.prompt_panel.act_step.shortcuts()]


def test_cli_lesson_screenshot_per_slide(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from explorer.app import SETTINGS_ENV

    root = Path(__file__).resolve().parents[2]
    lesson = next(p for p in shipped_lessons() if p.stem.startswith("05_"))
    n = len(load_lesson(lesson).slides)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               **{SETTINGS_ENV: str(tmp_path / "settings.ini")})
    proc = subprocess.run(
        [sys.executable, "main.py", "--lesson", lesson.stem, "--screenshot",
         str(tmp_path / "slide.png"), "--size", "1280x720", "--no-restore"],
        cwd=root, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i in range(1, n + 1):
        f = tmp_path / f"slide-{i:02d}.png"
        assert f.is_file() and f.stat().st_size > 20_000, f
