"""Sampling: temperature, top-k, top-p, the inverse-CDF draw and repeatable uniforms."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.config import SampleConfig
from model.sampling import (
    Distribution,
    _ranked,
    apply_temperature,
    distribution_for,
    entropy,
    next_token_distribution,
    sample,
    sample_from,
    softmax,
    top_k_mask,
    top_p_mask,
    uniform_for,
)

LOGITS = np.array([1.0, 3.0, -2.0, 0.5, 3.0, 2.0], dtype=np.float32)  # a tie at ids 1 and 4

logit_arrays = arrays(np.float64, st.integers(1, 40),
                      elements=st.floats(-20, 20, allow_nan=False, allow_infinity=False))
temperatures = st.one_of(st.just(0.0), st.floats(0.01, 10.0))
top_ps = st.floats(0.001, 1.0)
uniforms = st.floats(0.0, 1.0, exclude_max=True)


def independent_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


# -- temperature --------------------------------------------------------------------------------
def test_temperature_zero_is_one_hot_argmax():
    p = apply_temperature(np.array([0.1, 5.0, -3.0, 4.9]), 0.0)
    np.testing.assert_array_equal(p, [0, 1, 0, 0])
    d = next_token_distribution(LOGITS, temperature=0.0)
    np.testing.assert_array_equal(d.probs, np.eye(6)[1])  # ties go to the lowest id
    assert d.order[0] == 1 and d.order[1] == 4
    assert d.entropy == 0.0
    for u in (0.0, 0.3, 0.999999):
        assert sample_from(d, u) == 1


@pytest.mark.parametrize("t", [0.25, 1.0, 3.0])
def test_temperature_is_softmax_of_scaled_logits(t):
    d = next_token_distribution(LOGITS, temperature=t)
    np.testing.assert_allclose(d.full_probs, independent_softmax(LOGITS.astype(np.float64) / t),
                               rtol=1e-12)
    np.testing.assert_allclose(d.probs, d.full_probs, rtol=1e-12)
    assert d.kept.all()
    assert d.n_kept == 6


def test_negative_temperature_rejected():
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(LOGITS, -0.5)


@settings(max_examples=80, deadline=None)
@given(logits=logit_arrays, t1=st.floats(0.05, 20), t2=st.floats(0.05, 20))
def test_higher_temperature_flattens(logits, t1, t2):
    lo, hi = min(t1, t2), max(t1, t2)
    e_lo = entropy(apply_temperature(logits, lo))
    e_hi = entropy(apply_temperature(logits, hi))
    assert e_lo <= e_hi + 1e-9
    assert e_hi <= math.log(logits.size) + 1e-9
    # the top token's probability never grows as the temperature rises
    top = int(np.argmax(logits))
    assert apply_temperature(logits, hi)[top] <= apply_temperature(logits, lo)[top] + 1e-12


def test_entropy_rises_monotonically_over_a_sweep():
    temps = np.geomspace(0.01, 100, 60)
    ents = [entropy(apply_temperature(LOGITS, t)) for t in temps]
    assert np.all(np.diff(ents) >= -1e-12)
    assert ents[0] == pytest.approx(math.log(2), abs=1e-6)  # only the tied top two remain
    assert ents[-1] == pytest.approx(math.log(6), abs=1e-2)  # almost uniform


def test_softmax_and_entropy_helpers():
    np.testing.assert_allclose(softmax([0.0, 0.0]), [0.5, 0.5])
    np.testing.assert_allclose(softmax([1000.0, 0.0]), [1.0, 0.0])  # no overflow
    np.testing.assert_allclose(softmax([0.0, -np.inf]), [1.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        softmax([-np.inf, -np.inf])
    with pytest.raises(ValueError, match="finite"):
        softmax([np.nan, 1.0])
    assert entropy([0.5, 0.5, 0.0]) == pytest.approx(math.log(2))
    assert entropy([1.0]) == 0.0


# -- top-k / top-p ------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 5, 6, 7, 100])
def test_top_k_keeps_k(k):
    d = next_token_distribution(LOGITS, temperature=1.0, top_k=k)
    assert d.n_kept == min(k, 6)
    kept_ids = set(np.flatnonzero(d.kept))
    assert kept_ids == set(d.order[:min(k, 6)])
    dropped = np.flatnonzero(~d.kept)
    if dropped.size:
        assert d.full_probs[dropped].max() <= d.full_probs[list(kept_ids)].min()
    assert np.all(d.probs[~d.kept] == 0)


def test_top_k_zero_keeps_all_and_ties_break_by_id():
    assert top_k_mask(np.array([0.2, 0.3, 0.5]), 0).all()
    np.testing.assert_array_equal(top_k_mask(np.array([0.4, 0.2, 0.4]), 1), [True, False, False])


def test_top_p_example():
    probs = np.array([0.1, 0.5, 0.25, 0.15])
    np.testing.assert_array_equal(top_p_mask(probs, 0.5), [False, True, False, False])
    np.testing.assert_array_equal(top_p_mask(probs, 0.6), [False, True, True, False])
    np.testing.assert_array_equal(top_p_mask(probs, 0.75), [False, True, True, False])  # reaches p
    np.testing.assert_array_equal(top_p_mask(probs, 0.76), [False, True, True, True])
    np.testing.assert_array_equal(top_p_mask(probs, 0.01), [False, True, False, False])
    assert top_p_mask(probs, 1.0).all()
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="top_p"):
            top_p_mask(probs, bad)


@settings(max_examples=150, deadline=None)
@given(logits=logit_arrays, t=st.floats(0.05, 10), p=top_ps)
def test_top_p_keeps_smallest_prefix_reaching_p(logits, t, p):
    full = apply_temperature(logits, t)
    keep = top_p_mask(full, p)
    if p == 1.0:  # 1 switches nucleus sampling off, even for tokens with no mass at all
        assert keep.all()
        return
    order = np.argsort(-full, kind="stable")
    n = int(keep.sum())
    assert n >= 1
    assert keep[order[:n]].all()  # a prefix of the ranking
    cum = np.cumsum(full[order])
    assert cum[n - 1] >= p - 1e-9 or n == full.size
    assert n == 1 or cum[n - 2] < p  # one fewer would not reach p


@settings(max_examples=150, deadline=None)
@given(logits=logit_arrays, t=temperatures, k=st.integers(0, 45), p=top_ps)
def test_distribution_invariants(logits, t, k, p):
    d = next_token_distribution(logits, temperature=t, top_k=k, top_p=p)
    v = logits.size
    assert d.probs.shape == d.full_probs.shape == d.kept.shape == d.order.shape == (v,)
    assert d.probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert d.full_probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(d.probs >= 0)
    assert np.all(d.probs[~d.kept] == 0)
    assert sorted(d.order.tolist()) == list(range(v))
    assert d.n_kept >= 1
    if k:
        assert d.n_kept <= k
    # kept is exactly the combination of both masks, cut along one ranking
    assert np.array_equal(d.kept, top_k_mask(d.full_probs, k, d.order)
                          & top_p_mask(d.full_probs, p, d.order))
    assert d.kept[d.order[:d.n_kept]].all()
    # renormalised: on kept tokens the probabilities keep their ratios
    if d.full_probs[d.kept].sum() > 0:
        scale = d.full_probs[d.kept].sum()
        np.testing.assert_allclose(d.probs[d.kept] * scale, d.full_probs[d.kept], rtol=1e-9,
                                   atol=1e-300)
    for r, tok in enumerate(d.order[:5]):
        assert d.rank_of(int(tok)) == r
    assert d.entropy == pytest.approx(entropy(d.probs))


def test_distribution_fields_and_top():
    d = next_token_distribution(LOGITS, temperature=0.7, top_k=3, top_p=0.9)
    assert isinstance(d, Distribution)
    assert (d.temperature, d.top_k, d.top_p) == (0.7, 3, 0.9)
    assert d.logits.dtype == np.float32
    np.testing.assert_array_equal(d.logits, LOGITS)
    ids, probs = d.top(2)
    np.testing.assert_array_equal(ids, [1, 4])
    np.testing.assert_allclose(probs, d.probs[[1, 4]])
    assert d.rank_of(1) == 0 and d.rank_of(4) == 1 and d.rank_of(5) == 2 and d.rank_of(2) == 5


def test_distribution_for_uses_sample_config():
    cfg = SampleConfig(temperature=0.5, top_k=2, top_p=0.8)
    d = distribution_for(LOGITS, cfg)
    e = next_token_distribution(LOGITS, 0.5, 2, 0.8)
    np.testing.assert_array_equal(d.probs, e.probs)
    assert (d.temperature, d.top_k, d.top_p) == (0.5, 2, 0.8)


def test_minus_infinity_logits_are_never_kept_with_mass():
    logits = np.array([0.0, -np.inf, 1.0, -np.inf])
    d = next_token_distribution(logits, temperature=1.0)
    assert d.probs[1] == 0 and d.probs[3] == 0
    for u in np.linspace(0, 0.999999, 50):
        assert sample_from(d, float(u)) in (0, 2)


# -- the draw -----------------------------------------------------------------------------------
def test_sample_from_is_inverse_cdf_over_ranked_tokens():
    probs = np.array([0.2, 0.5, 0.3])
    d = next_token_distribution(np.log(probs), temperature=1.0)
    np.testing.assert_array_equal(d.order, [1, 2, 0])
    assert sample_from(d, 0.0) == 1
    assert sample_from(d, 0.4999) == 1
    assert sample_from(d, 0.5001) == 2
    assert sample_from(d, 0.7999) == 2
    assert sample_from(d, 0.8001) == 0
    assert sample_from(d, 0.999999) == 0
    # half-open intervals: [0, 0.5) -> first token, [0.5, 1) -> second
    half = next_token_distribution(np.zeros(2), temperature=1.0)
    assert sample_from(half, 0.5) == 1
    assert sample_from(half, float(np.nextafter(0.5, 0))) == 0
    quarters = next_token_distribution(np.zeros(4), temperature=1.0)
    assert [sample_from(quarters, u) for u in (0.0, 0.25, 0.5, 0.75)] == [0, 1, 2, 3]


def test_sample_from_rejects_bad_u():
    d = next_token_distribution(LOGITS)
    for u in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match="u="):
            sample_from(d, u)


def test_sample_from_frequencies_follow_probabilities():
    d = next_token_distribution(LOGITS, temperature=1.0)
    us = (np.arange(20000) + 0.5) / 20000  # evenly spread uniforms
    counts = np.bincount([sample_from(d, float(u)) for u in us], minlength=6) / us.size
    np.testing.assert_allclose(counts, d.probs, atol=1e-3)


@settings(max_examples=200, deadline=None)
@given(logits=logit_arrays, t=temperatures, k=st.integers(0, 45), p=top_ps, u=uniforms)
def test_sample_never_picks_a_removed_token(logits, t, k, p, u):
    d = next_token_distribution(logits, temperature=t, top_k=k, top_p=p)
    tok = sample_from(d, u)
    assert 0 <= tok < logits.size
    assert d.kept[tok]
    assert d.probs[tok] > 0


@settings(max_examples=100, deadline=None)
@given(logits=logit_arrays, t=st.floats(0.05, 10), u1=uniforms, u2=uniforms)
def test_sample_rank_grows_with_u(logits, t, u1, u2):
    assume(u1 != u2)
    d = next_token_distribution(logits, temperature=t)
    lo, hi = min(u1, u2), max(u1, u2)
    assert d.rank_of(sample_from(d, lo)) <= d.rank_of(sample_from(d, hi))


distinct_logits = st.lists(st.floats(0.01, 3.0), min_size=1, max_size=30).flatmap(
    lambda gaps: st.permutations(list(np.cumsum(gaps) - 10.0))).map(np.array)


@settings(max_examples=60, deadline=None)
@given(logits=distinct_logits, u=uniforms)
def test_same_u_moves_towards_argmax_as_temperature_drops(logits, u):
    greedy = next_token_distribution(logits, temperature=0.0)
    assert sample_from(greedy, u) == int(greedy.order[0])
    # the mass of the top r tokens grows as T drops, so the rank that u reaches cannot grow
    ranks = []
    for t in (5.0, 1.0, 0.2, 0.05):
        d = next_token_distribution(logits, temperature=t)
        ranks.append(d.rank_of(sample_from(d, u)))
    assert ranks == sorted(ranks, reverse=True)


def test_sample_with_seed_is_repeatable_and_greedy_is_argmax():
    cfg = SampleConfig(temperature=1.0, seed=123)
    a = [sample(LOGITS, cfg) for _ in range(5)]
    b = [sample(LOGITS, cfg) for _ in range(5)]
    assert a == b
    rng = np.random.default_rng(0)
    draws = {sample(LOGITS, cfg, rng) for _ in range(200)}
    assert draws <= set(range(6)) and len(draws) > 2
    assert sample(LOGITS, SampleConfig(temperature=0.0)) == 1
    assert {sample(LOGITS, SampleConfig(temperature=1.0, top_k=1)) for _ in range(20)} == {1}


# -- uniforms -----------------------------------------------------------------------------------
def test_uniform_for_is_repeatable():
    assert uniform_for(7, 3) == uniform_for(7, 3)
    assert uniform_for(7, 3, 1) == uniform_for(7, 3, 1)
    values = {uniform_for(7, pos) for pos in range(50)}
    assert len(values) == 50  # positions get different numbers
    assert uniform_for(7, 3, 0) != uniform_for(7, 3, 1)  # redraws differ
    assert uniform_for(7, 3) != uniform_for(8, 3)  # seeds differ
    assert uniform_for(-1, 0) == uniform_for(-1, 0)  # negative seeds work
    assert all(0.0 <= uniform_for(s, p) < 1.0 for s in range(5) for p in range(20))
    fresh = [uniform_for(None, 0) for _ in range(5)]
    assert all(0.0 <= u < 1.0 for u in fresh) and len(set(fresh)) > 1


def test_uniform_for_is_roughly_uniform():
    us = np.array([uniform_for(11, pos) for pos in range(4000)])
    hist, _ = np.histogram(us, bins=10, range=(0, 1))
    assert hist.min() > 300 and hist.max() < 500


@pytest.mark.parametrize("seed", range(4))
def test_large_vocabulary_order_is_the_stable_argsort(seed):
    """GPT-2-size vocabularies are ranked by a radix sort: the same order as numpy's stable
    argsort, ties (equal probabilities, underflowed zeros, -0.0 and 0.0) by id."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(50257) * 8).astype(np.float32)
    logits[rng.integers(0, 50257, 500)] = logits[7]  # ties
    logits[:3] = [0.0, -0.0, 0.0]
    for t in (1.0, 0.7, 0.01, 0.0):  # 0.01 underflows most probabilities to exactly 0
        d = next_token_distribution(logits, temperature=t, top_k=40 if t == 0.7 else 0)
        want = np.argsort(-(d.full_probs if t > 0 else logits.astype(np.float64)),
                          kind="stable")
        np.testing.assert_array_equal(d.order, want)
    signed = rng.standard_normal(9000) * 1e3  # negatives too, as the greedy path ranks logits
    signed[::7] = -0.0
    signed[1::7] = 0.0
    np.testing.assert_array_equal(_ranked(signed), np.argsort(-signed, kind="stable"))
