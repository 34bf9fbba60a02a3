"""Ideal attention patterns and per-head scores of the synthetic tasks (model/tasks.py)."""
import random

import numpy as np
import pytest

from model import tasks
from model.corpora import check_task_line, task_example


def causal_uniform(T: int) -> np.ndarray:
    a = np.tril(np.ones((T, T), dtype=np.float32))
    return a / a.sum(axis=1, keepdims=True)


def stack(*heads: np.ndarray) -> np.ndarray:
    """(H, T, T) heads -> (1, H, T, T)"""
    return np.stack(heads)[None]


def test_copy_ideal_is_the_shifted_diagonal():
    toks = "abc|abc\n"
    ideal = tasks.ideal_attention("copy", toks)
    assert ideal.shape == (8, 8)
    # '|' (3) -> a (0), a (4) -> b (1), b (5) -> c (2); c (6) predicts the newline: no answer
    expected = {3: 0, 4: 1, 5: 2}
    for p in range(8):
        if p in expected:
            assert ideal[p, expected[p]] == 1.0 and ideal[p].sum() == 1.0
        else:
            assert ideal[p].sum() == 0.0
    assert np.all(np.triu(ideal, 1) == 0)  # never looks ahead


def test_copy_with_repeated_letters_uses_the_aligned_position():
    ideal = tasks.ideal_attention("copy", "aab|aab")
    assert ideal[3, 0] == 1 and ideal[4, 1] == 1 and ideal[5, 2] == 1


def test_induction_targets_follow_the_previous_occurrence():
    toks = "bhadbhad\nxy"
    t = tasks.ideal_targets("induction", toks)
    assert t[:4] == [[], [], [], []]
    assert t[4:8] == [[1], [2], [3], [4]]  # b(4) -> h(1), ..., d(7) -> b(4)
    assert t[8:] == [[], [], []]  # nothing crosses a line


def test_reverse_mirror_and_sort_next_letter():
    t = tasks.ideal_targets("reverse", "abcd>dcba")
    assert t[4] == [3] and t[5] == [2] and t[7] == [0] and t[8] == []
    s = tasks.ideal_targets("sort", "dbab>abbd")
    # '>' must write 'a' (input position 2); 'a' must write 'b' (positions 1 and 3) ...
    assert s[4] == [2] and s[5] == [1, 3] and s[6] == [1, 3] and s[7] == [0] and s[8] == []
    ideal = tasks.ideal_attention("sort", "dbab>abbd")
    assert ideal[5, 1] == pytest.approx(0.5) and ideal[5, 3] == pytest.approx(0.5)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_perfect_head_scores_one_and_uniform_scores_low(task):
    rng = random.Random(3)
    toks = "".join(task_example(task, rng) for _ in range(3))
    T = len(toks)
    ideal = tasks.ideal_attention(task, toks)
    perfect = ideal.copy()
    undefined = perfect.sum(axis=1) == 0
    perfect[undefined] = causal_uniform(T)[undefined]  # any valid pattern on unscored rows
    uniform = causal_uniform(T)
    prev = np.zeros((T, T), np.float32)
    prev[0, 0] = 1
    prev[np.arange(1, T), np.arange(T - 1)] = 1
    s = tasks.head_scores(task, stack(perfect, uniform, prev), toks)
    assert s.shape == (1, 3)
    assert s[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert s[0, 1] < 0.3
    assert s[0, 2] < 0.5 and s[0, 2] < s[0, 0]
    assert tasks.best_head(s) == (0, 0)
    p = tasks.previous_token_scores(stack(perfect, uniform, prev))
    assert p[0, 2] == pytest.approx(1.0)


def test_scores_per_layer_and_head_and_nan_without_examples():
    toks = "abc|abc"
    ideal = tasks.ideal_attention("copy", toks)
    u = causal_uniform(7)
    att = np.stack([np.stack([u, ideal + (ideal.sum(1, keepdims=True) == 0) * u]),
                    np.stack([u, u])])  # (2, 2, T, T)
    s = tasks.head_scores("copy", att, toks)
    assert s.shape == (2, 2) and tasks.best_head(s) == (0, 1)
    assert np.isnan(tasks.head_scores("copy", att, "abcdefg")).all()
    with pytest.raises(ValueError):
        tasks.head_scores("copy", att, "abc")
    with pytest.raises(ValueError):
        tasks.ideal_attention("nope", "abc")


@pytest.mark.parametrize("task", tasks.TASKS)
def test_probe_prompts_are_task_examples_that_fit(task):
    for block in (None, 64, 24, 12, 5):
        p = tasks.probe_prompt(task, block)
        assert p and (block is None or len(p) <= block)
    full = tasks.probe_prompt(task).split("\n")[0]
    assert check_task_line(task, full)
    assert tasks.scored_rows(task, tasks.probe_prompt(task)).any()


def test_task_of():
    assert tasks.task_of("task:sort") == "sort" and tasks.task_of("copy") == "copy"
    assert tasks.task_of("shakespeare.txt") is None and tasks.task_of(None) is None
