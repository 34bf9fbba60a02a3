"""File → Examples opens a shipped model with a prompt that shows what it learned (the
induction example used to keep the Shakespeare prompt and strip it to junk)."""
from __future__ import annotations

import pytest

from model import shipped
from model.checkpoints import load_checkpoint


@pytest.mark.parametrize("name", sorted(shipped.DEFAULT_PROMPTS))
def test_every_shipped_model_has_a_prompt_it_can_read(name):
    path = shipped.resolve_checkpoint(name)
    assert path.is_file()
    tok = load_checkpoint(path).tokenizer
    assert tok.without_unknown(shipped.DEFAULT_PROMPTS[name]) == shipped.DEFAULT_PROMPTS[name]
    assert shipped.default_prompt(path) == shipped.DEFAULT_PROMPTS[name]
    assert {p.stem for p in shipped.shipped_models()} <= set(shipped.DEFAULT_PROMPTS)


def test_examples_induction_loads_its_own_prompt(qtbot, window):
    s = window.session
    path = shipped.resolve_checkpoint("induction")
    window._fill_examples()
    act = next(a for a in window.examples_menu.actions() if a.text() == "induction")
    prompt = shipped.DEFAULT_PROMPTS["induction"]
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        act.trigger()
    qtbot.waitUntil(lambda: s.result is not None and s.result.text == prompt and
                    s.info.name == "induction", timeout=20000)
    assert window.prompt_panel.editor.toPlainText() == prompt
    assert not s.prompt_check.unknown
    # the induction head at work: after "bhad gce bhad" the model expects the "g" that followed
    # "bhad" the first time
    assert s.tokenizer.decode([int(s.result.planned)]) == "g"
    assert path.stem == "induction"
