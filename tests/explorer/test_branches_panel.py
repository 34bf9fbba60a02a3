"""Branches in the GUI: stepping differently after a rewind keeps the old continuation, the token
strip marks where they part, the Branches panel lists both and compares them, and clicking one
switches the text back to it exactly."""
from __future__ import annotations

import math

import numpy as np

from explorer.panels.branches import BranchesPanel
from model.config import SampleConfig


def test_a_branch_is_kept_marked_listed_compared_and_switched_to(qtbot, make_window,
                                                                 tiny_models):
    w = make_window(tiny_models["tiny"], sample=SampleConfig(temperature=1.0, seed=1))
    s = w.session
    panel = BranchesPanel(s)
    qtbot.addWidget(panel)
    panel.show()
    for _ in range(3):
        with qtbot.waitSignal(s.step_ready, timeout=10000):
            s.step()
    old_ids = s.result.ids.copy()
    old_text = s.result.text
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.rewind_to(1)
    other = next(t for t in range(s.tokenizer.vocab_size) if t != int(old_ids[-2]))
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step(force=other)

    b = s.branches
    assert len(b.leaves()) == 2
    first, second = b.leaves()
    assert b.tokens(first) == old_ids[-3:].tolist()
    assert b.current_leaf() == second
    n_prompt = s.result.n_prompt
    assert w.prompt_panel.strip.splits == {n_prompt + 1}  # the second generated token

    panel._redraw.flush()
    panel.redraw_now()
    assert panel.table.rowCount() == 2
    assert panel.table.item(1, 0).text() == "\u25b6"  # the current one
    assert float(panel.table.item(0, 3).text()) == round(b.total_logprob(first), 2)
    assert panel.other == first
    assert panel.compare.rowCount() == 2  # from where they part: 2 tokens of the old branch
    p_shown = float(panel.compare.item(0, 4).text())
    assert math.isclose(p_shown, math.exp(b.logprobs(first)[1]), abs_tol=5e-4)

    with qtbot.waitSignal(s.step_ready, timeout=10000):
        panel._on_clicked(0, 1)
    assert np.array_equal(s.result.ids, old_ids)
    assert s.result.text == old_text
    assert s.branches.current == first
    assert len(s.branches.leaves()) == 2
