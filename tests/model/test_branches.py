"""Branches survive any sequence of step / back / rewind / reset / resample / force / switch: a
seeded random walk checks that no continuation is lost and that every branch's tokens and
probabilities equal a fresh stepper that replays them."""
from __future__ import annotations

import random

import numpy as np
import pytest

from model.branches import ROOT, Branches, Branching, BranchTree, token_logprob
from model.config import SampleConfig
from model.stepper import Stepper
from tests.model.test_stepper import make_model

SEEDED = SampleConfig(temperature=1.2, seed=3)
PROMPT = "abc"


def replay(model, tok, tokens: list[int]) -> tuple[list[float], np.ndarray]:
    """A fresh stepper takes ``tokens`` after the prompt: their log-probabilities under the
    model and the logits it ends with."""
    s = Stepper(model, tok, SEEDED)
    s.set_prompt(PROMPT)
    logps = []
    for t in tokens:
        logps.append(token_logprob(s.result.logits, t))
        s.step(force=t)
    return logps, s.result.logits


def assert_branches_exact(b: Branches, model, tok) -> None:
    for leaf in b.leaves():
        logps, _ = replay(model, tok, b.tokens(leaf))
        np.testing.assert_allclose(b.logprobs(leaf), logps, atol=1e-5)
        assert b.total_logprob(leaf) == pytest.approx(sum(logps), abs=1e-4)


def paths(b: Branches) -> set[tuple[int, ...]]:
    """Every continuation the tree holds, prefixes included."""
    out = {()}
    for leaf in b.leaves():
        t = b.tokens(leaf)
        out.update(tuple(t[:k]) for k in range(1, len(t) + 1))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_walk_keeps_every_continuation_exact(seed):
    rng = random.Random(seed)
    model, tok = make_model("learned", block_size=7)  # the walk crosses the sliding window
    br = Branching(Stepper(model, tok, SEEDED))
    br.set_prompt(PROMPT)
    n_prompt = len(tok.encode(PROMPT))
    seen: set[tuple[int, ...]] = {()}
    for i in range(60):
        st = br.stepper
        n = st.n_generated
        action = rng.choice(["step", "step", "force", "back", "rewind", "reset", "resample",
                             "switch"])
        if action == "step" or (n == 0 and action in ("back", "resample")):
            br.step()
        elif action == "force":
            br.step(force=rng.randrange(tok.vocab_size))
        elif action == "back":
            br.back()
        elif action == "rewind":
            br.rewind_to(rng.randint(0, n))
        elif action == "reset":
            br.reset()
        elif action == "resample":
            br.resample()
        else:
            snap = br.snapshot()
            target = rng.choice([ROOT, *range(len(snap.nodes))])
            r = br.switch(target)
            want = snap.tokens(target) if target != ROOT else []
            assert st.ids[n_prompt:] == want
            np.testing.assert_allclose(r.logits, replay(model, tok, want)[1], atol=1e-5)
        b = br.snapshot()
        generated = tuple(st.ids[n_prompt:])
        seen.add(generated)
        # the stepper stands where the tree says, and nothing taken so far was thrown away
        assert list(generated) == (b.tokens(b.current) if b.current != ROOT else [])
        assert seen <= paths(b)
        assert b.n_leaves == len(b.leaves())
        assert b.split_depths() == {
            d for d in range(1, len(generated) + 1)
            if len({p[d - 1] for p in paths(b) if len(p) >= d and p[:d - 1] == generated[:d - 1]})
            > 1}
        if i % 20 == 19:
            assert_branches_exact(b, model, tok)
    assert len(br.snapshot().leaves()) > 1  # the walk did branch
    assert_branches_exact(br.snapshot(), model, tok)


def test_rewinding_and_stepping_differently_keeps_the_old_continuation():
    model, tok = make_model("learned", block_size=12)
    br = Branching(Stepper(model, tok, SEEDED))
    br.set_prompt(PROMPT)
    for _ in range(4):
        br.step()
    old = br.stepper.ids
    br.rewind_to(2)
    other = next(t for t in range(tok.vocab_size) if t != old[len(old) - 2])
    br.step(force=other)
    b = br.snapshot()
    assert len(b.leaves()) == 2
    first, second = b.leaves()
    assert b.tokens(first) == old[-4:]
    assert b.split_with(first, second) == 2
    assert b.split_depths() == {3}
    assert b.current_leaf() == second
    r = br.switch(first)
    assert br.stepper.ids == old
    assert br.snapshot().current_leaf() == first
    # the old tokens were sampled, not clicked: replayed, they still show as sampled
    assert not r.token_forced[r.n_prompt:].any()


def test_a_new_prompt_starts_a_new_tree():
    model, tok = make_model()
    br = Branching(Stepper(model, tok, SEEDED))
    br.set_prompt(PROMPT)
    br.step()
    br.set_prompt("ab")
    b = br.snapshot()
    assert len(b) == 0 and b.current == ROOT and b.n_prompt == 2


def test_tree_refuses_a_rewind_past_the_text():
    t = BranchTree(3)
    t.advance(1, -0.5)
    with pytest.raises(ValueError, match="cannot rewind to 2"):
        t.rewind_to(2)


def test_token_logprob_is_the_log_softmax():
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    p = np.exp(x.astype(np.float64)) / np.exp(x.astype(np.float64)).sum()
    assert token_logprob(x, 1) == pytest.approx(np.log(p[1]), rel=1e-12)
