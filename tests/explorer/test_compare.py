"""Compare mode: each column equals a separate session with the same settings (same settings in
both columns give the same results), one key steps both, and the ``--compare`` spec is read
with clear messages."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from explorer.compare import ColumnSpec, CompareWindow, parse_column_spec
from explorer.session import Session
from model.ablation import Ablation
from model.config import ConfigError, SampleConfig

N_STEPS = 4


def assert_same_result(a, b) -> None:
    assert np.array_equal(a.ids, b.ids)
    assert a.text == b.text and a.planned == b.planned
    np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.dist.probs, b.dist.probs)
    np.testing.assert_array_equal(a.attention, b.attention)
    assert a.ablation == b.ablation


def run_alone(qtbot, spec: ColumnSpec):
    """A separate session with the column's settings, stepped N_STEPS times."""
    s = Session(device="cpu", sample=spec.sample)
    s.prompt = spec.prompt
    if spec.ablation:
        s.set_ablation(spec.ablation)
    try:
        with qtbot.waitSignal(s.step_ready, timeout=20000):
            s.start(spec.checkpoint, spec.prompt)
        if spec.ablation:
            qtbot.waitUntil(lambda: s.result.ablation == spec.ablation, timeout=10000)
        for _ in range(N_STEPS):
            with qtbot.waitSignal(s.step_ready, timeout=10000):
                s.step()
        return s.result
    finally:
        s.close()


def open_compare(qtbot, left: ColumnSpec, right: ColumnSpec) -> CompareWindow:
    w = CompareWindow(left, right)
    qtbot.addWidget(w)
    w.show()
    a, b = w.sessions
    with qtbot.waitSignals([a.step_ready, b.step_ready], timeout=20000):
        w.start()
    for col in w.columns:
        if col.spec.ablation:
            qtbot.waitUntil(lambda c=col: c.session.result.ablation == c.spec.ablation,
                            timeout=10000)
    return w


@pytest.mark.parametrize("what", ["temperature", "ablation", "same"])
def test_the_two_columns_equal_two_separate_sessions(qtbot, tiny_models, what):
    left = ColumnSpec(tiny_models["tiny"], "Hello", SampleConfig(temperature=0.5, seed=7))
    right = {"temperature": parse_column_spec("temperature=1.5;top_k=5", left),
             "ablation": parse_column_spec("ablate=0.1,1.0", left),
             "same": left}[what]
    w = open_compare(qtbot, left, right)
    try:
        a, b = w.sessions
        for _ in range(N_STEPS):
            with qtbot.waitSignals([a.step_ready, b.step_ready], timeout=10000):
                qtbot.keyClick(w, Qt.Key.Key_Space)  # one key steps both
        assert a.result.n_generated == b.result.n_generated == N_STEPS
        assert w.left.strip.result is a.result and w.right.strip.result is b.result
        ra, rb = a.result, b.result
    finally:
        w.close()
    assert_same_result(ra, run_alone(qtbot, left))
    assert_same_result(rb, run_alone(qtbot, right))
    if what == "same":
        assert_same_result(ra, rb)
    else:
        assert not np.array_equal(ra.dist.probs, rb.dist.probs)


def test_the_spec_changes_only_what_it_names(tiny_models):
    base = ColumnSpec(tiny_models["tiny"], "Hi", SampleConfig(temperature=0.8, seed=1))
    s = parse_column_spec("temperature=1.5; prompt=a\\nb; ablate=0.1,1.0; ablation=mean", base)
    assert s.sample == SampleConfig(temperature=1.5, seed=1)
    assert s.prompt == "a\nb" and s.checkpoint == base.checkpoint
    assert s.ablation == Ablation(frozenset({(0, 1), (1, 0)}), "mean")
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        parse_column_spec("temprature=1", base)
    with pytest.raises(ConfigError, match="--compare"):
        parse_column_spec("top_k=many", base)


def test_a_bad_heads_entry_is_named_in_the_column(qtbot, tiny_models):
    spec = ColumnSpec(tiny_models["tiny"], "Hello", SampleConfig(seed=1))
    w = open_compare(qtbot, spec, spec)
    try:
        w.right.heads_edit.setText("0.x")
        w.right.apply_heads()
        assert w.right.status.text()  # the reason, in the column
        assert w.right.session.ablation == Ablation()
    finally:
        w.close()


def test_side_by_side_opens_from_the_main_window_and_asks_to_save_a_trained_snapshot(
        qtbot, make_window, tiny_models):
    import dataclasses

    w = make_window(tiny_models["tiny"], sample=SampleConfig(temperature=0.9, seed=2))
    cw = w.open_compare("temperature=1.5")
    try:
        a, b = cw.sessions
        qtbot.waitUntil(lambda: a.result is not None and b.result is not None, timeout=20000)
        assert a.sample == w.session.sample and b.sample.temperature == 1.5
        assert a.info.path == b.info.path == tiny_models["tiny"]
    finally:
        cw.close()
    assert w.compare_window is None
    w.session.info = dataclasses.replace(w.session.info, path=None, trained=True)
    assert w.open_compare() is None
    assert "save this trained model" in w.statusBar().currentMessage()
