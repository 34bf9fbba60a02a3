"""StepResult: the seed it carries, its labels, and ``with_sample`` (what the GUI shows when a
slider moves) giving exactly what the stepper gives after ``redistribute``."""
from __future__ import annotations

import numpy as np
import pytest

from model.config import SampleConfig
from model.step_result import QKScores
from model.stepper import Stepper
from tests.model.test_stepper import make_model

SETTINGS = [SampleConfig(), SampleConfig(temperature=0.3), SampleConfig(temperature=2.0, top_k=3),
            SampleConfig(temperature=1.5, top_p=0.6), SampleConfig(temperature=0.0),
            SampleConfig(temperature=1.1, seed=7), SampleConfig(temperature=0.9, top_k=4, seed=1)]


def stepped(sample=SETTINGS[1], block_size=8, n=10, resample=True):
    model, tok = make_model(block_size=block_size)
    st = Stepper(model, tok, sample)
    st.set_prompt("abc")
    for _ in range(n):
        st.step()
    if resample:
        st.resample()  # the last position now draws with index 1 ...
        st.back()  # ... and is the next one again
    return st


def assert_same_next(a, b):
    np.testing.assert_array_equal(a.dist.probs, b.dist.probs)
    np.testing.assert_array_equal(a.dist.order, b.dist.order)
    assert (a.planned, a.draw, a.sample, a.seed) == (b.planned, b.draw, b.sample, b.seed)


@pytest.mark.parametrize("start", [SampleConfig(temperature=1.3), SampleConfig(seed=11)])
@pytest.mark.parametrize("block_size", [8, 32])
def test_with_sample_equals_the_steppers_redistribute(start, block_size):
    st = stepped(start, block_size=block_size)
    r = st.result
    assert r.draw == 1 and r.position == len(st.ids)
    assert r.cropped == (len(st.ids) - block_size if block_size == 8 else 0)
    for cfg in SETTINGS:
        assert_same_next(r.with_sample(cfg), st.redistribute(cfg))
    # and back: the result under its own settings is itself
    assert_same_next(r.with_sample(start), r)


def test_planned_differs_between_settings_so_the_comparison_means_something():
    r = stepped(SampleConfig(temperature=1.3)).result
    planned = {r.with_sample(SampleConfig(temperature=t, seed=s)).planned
               for t in (0.5, 1.0, 3.0) for s in (None, 1, 2, 3, 4)}
    assert len(planned) > 1


def test_result_carries_the_steppers_seed():
    st = stepped(resample=False)
    assert st.result.auto_seed == st.auto_seed and st.result.seed == st.auto_seed
    r = st.redistribute(SampleConfig(seed=5))
    assert r.seed == 5 and r.auto_seed == st.auto_seed
    # a step after redistribute draws what the result planned, with the result's seed
    assert st.step().chosen == r.planned


def test_tokens_and_pieces_come_from_the_tokenizer():
    model, tok = make_model(vocab="\n abc")
    st = Stepper(model, tok, SampleConfig(seed=0))
    r = st.set_prompt("a b\nc")
    assert r.tokens == ["a", " ", "b", "\n", "c"] == tok.token_strs(r.ids)
    assert r.pieces == ["a", "\u2423", "b", "\u21b5", "c"] == tok.token_pieces(r.ids)
    assert r.text == "a b\nc"


def test_qk_scores_compute_any_part_as_the_whole_array_has_it():
    """QKScores: QKᵀ/√d on demand; a head's slice, a row, a cell and numpy's own indexing give
    what the whole array (numpy's product as the reference) holds there."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    k = rng.standard_normal((3, 2, 6, 4)).astype(np.float32)
    s = QKScores(q, k)
    ref = np.einsum("lhqd,lhkd->lhqk", q.astype(np.float64), k.astype(np.float64)) / 2.0
    assert s.shape == (3, 2, 5, 6) and len(s) == 3 and s.ndim == 4 and s.dtype == np.float32
    whole = np.asarray(s)
    assert whole.dtype == np.float32 and whole.shape == s.shape
    np.testing.assert_allclose(whole, ref, rtol=1e-5, atol=1e-6)
    for index in (1, (1, 0), (-1, 1, 2), (0, 1, slice(1, 4)), (2, slice(None), 3, slice(0, 6, 2)),
                  (0, 1, 4, 5), (slice(1, None), 0), (1, 0, [0, 2]), (Ellipsis, 0),
                  (np.int64(2), np.int64(1))):
        got = s[index]
        np.testing.assert_allclose(got, ref[index], rtol=1e-5, atol=1e-6)
        assert np.shape(got) == np.shape(ref[index]), index
    assert isinstance(s[0, 1, 4, 5], np.float32)
    with pytest.raises(IndexError):
        s[3]
    np.testing.assert_allclose(np.where(np.ones((5, 6), bool), s, 0), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(s.copy(), whole)
