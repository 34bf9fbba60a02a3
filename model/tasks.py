"""Synthetic tasks with a known answer: the ideal attention pattern and a score per head.

The tasks are the ones :mod:`model.corpora` generates, one example per line::

    copy       qwhd|qwhd      reverse   abcd>dcba
    induction  bhadbhadbhad   sort      dbca>abcd

Every pattern here is read the way a trained head is: row ``p`` is the query at position ``p``,
whose job is to predict token ``p + 1``; the ideal head puts all its attention on the key(s)
holding the information that prediction needs. Rows where the task defines no answer (the first
copy, the newline, text outside an example) are all zeros in the ideal pattern and are left out
of the scores.

* ``copy`` (induction score): from a token of the second copy (and from the ``|``) to the token
  *after* the same position in the first copy: key ``p - n`` for a string of length ``n``. With
  distinct letters this is exactly the induction pattern "find my earlier occurrence, look one
  further"; with repeated letters it is the aligned position, the only unambiguous answer.
* ``induction`` (induction score): from every token that occurred earlier on its line to the token
  after its most recent earlier occurrence (Olsson et al. 2022, "In-context learning and induction
  heads").
* ``reverse`` (mirror score): from output position ``p`` (and the ``>``) to the input token it must
  write next, the mirror image of ``p`` around the ``>``: key ``2s - p - 1`` with ``s`` the
  position of ``>``.
* ``sort`` (next-letter score): from the ``>`` and every output position to the input position(s)
  holding the next letter of the sorted output, spread evenly over equal letters. A head that
  solves sorting by attention has to find "the smallest remaining letter" in the input; this score
  measures how much of its attention lands on exactly those letters.

A head's score is the mean, over scored rows, of the attention mass it puts on the ideal keys:
1 for a perfect head, about ``1 / (p + 1)`` per row for uniform causal attention. A
previous-token score (mass on key ``p - 1``) is given too: an induction head needs a
previous-token head in an earlier layer.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TASKS = ("copy", "induction", "reverse", "sort")

SCORE_NAMES = {
    "copy": "induction score",
    "induction": "induction score",
    "reverse": "mirror score",
    "sort": "next-letter score",
}

SCORE_HELP = {
    "copy": "mean attention from each token of the second copy to the token after the same "
            "position in the first copy (the token it must write next)",
    "induction": "mean attention from a repeated token to the token after its most recent "
                 "earlier occurrence on the line",
    "reverse": "mean attention from each output position to the mirrored input position "
               "holding the letter it must write next",
    "sort": "mean attention from each output position to the input letter(s) that come next "
            "in sorted order",
}

#: probe prompts: one complete example (its attention shows the pattern) and the start of the
#: next one (the periodic sample shows whether the model can finish it)
_PROBES = {
    "copy": ("hcjafebd|hcjafebd\n", "giaced|"),
    "induction": ("bhadfbhadfbhadf\n", "cgiecgi"),
    "reverse": ("hcjafebd>dbefajch\n", "giaced>"),
    "sort": ("hcjafebd>abcdefhj\n", "gdiace>"),
}
_SHORT_PROBES = {  # for small block sizes
    "copy": ("hcja|hcja\n", "gie|"),
    "induction": ("bhadbhad\n", "cgic"),
    "reverse": ("hcja>ajch\n", "gie>"),
    "sort": ("hcja>achj\n", "gie>"),
}
_SEPARATOR = {"copy": "|", "reverse": ">", "sort": ">"}


def _check(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    return task


def probe_prompt(task: str, block_size: int | None = None) -> str:
    """A prompt for the task's periodic samples and attention snapshots, fitting ``block_size``."""
    _check(task)
    for table in (_PROBES, _SHORT_PROBES):
        full, start = table[task]
        if block_size is None or len(full) + len(start) <= block_size:
            return full + start
        if len(full) <= block_size:
            return full
    full, _ = _SHORT_PROBES[task]
    return full[: max(1, block_size)]


def _lines(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) of each line, end exclusive and not counting the newline."""
    out, start = [], 0
    for i, t in enumerate(tokens):
        if t == "\n":
            out.append((start, i))
            start = i + 1
    out.append((start, len(tokens)))
    return [(a, b) for a, b in out if b > a]


def ideal_targets(task: str, tokens: Sequence[str] | str) -> list[list[int]]:
    """For every query position, the key positions an ideal head attends to ([] = no answer)."""
    _check(task)
    tokens = list(tokens)
    T = len(tokens)
    targets: list[list[int]] = [[] for _ in range(T)]
    for a, b in _lines(tokens):
        line = tokens[a:b]
        if task == "induction":
            last: dict[str, int] = {}
            for p in range(a, b):
                j = last.get(tokens[p])
                if j is not None and j + 1 <= p:
                    targets[p] = [j + 1]
                last[tokens[p]] = p
            continue
        sep = _SEPARATOR[task]
        if sep not in line:
            continue
        s = a + line.index(sep)
        n = s - a
        if n == 0:
            continue
        # the separator and output tokens predict outputs 0 .. n-1; the last output predicts "\n"
        rows = range(s, min(s + n, b))
        if task == "copy":
            for p in rows:
                targets[p] = [p - n]
        elif task == "reverse":
            for p in rows:
                targets[p] = [2 * s - p - 1]
        else:  # sort
            order = sorted(tokens[a:s])
            for p in rows:
                want = order[p - s]
                targets[p] = [j for j in range(a, s) if tokens[j] == want]
    return targets


def ideal_attention(task: str, tokens: Sequence[str] | str) -> np.ndarray:
    """(T, T) float32: the ideal pattern; each defined row sums to 1, undefined rows are 0."""
    targets = ideal_targets(task, tokens)
    T = len(targets)
    out = np.zeros((T, T), dtype=np.float32)
    for p, keys in enumerate(targets):
        if keys:
            out[p, keys] = 1.0 / len(keys)
    return out


def scored_rows(task: str, tokens: Sequence[str] | str) -> np.ndarray:
    """(T,) bool: the query positions that count for :func:`head_scores`."""
    return np.array([bool(k) for k in ideal_targets(task, tokens)], dtype=bool)


def _check_attention(attention: np.ndarray, T: int) -> np.ndarray:
    a = np.asarray(attention, dtype=np.float32)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attention must have shape (L, H, T, T), got {a.shape}")
    if a.shape[-1] != T:
        raise ValueError(f"attention covers {a.shape[-1]} positions but there are {T} tokens")
    return a


def head_scores(task: str, attention: np.ndarray, tokens: Sequence[str] | str) -> np.ndarray:
    """(L, H) float32 in [0, 1]: per head, the mean attention mass on the ideal keys.

    ``attention`` is (L, H, T, T) softmax probabilities of the same ``tokens``. With no scored
    row (e.g. a prompt holding no complete example) the scores are NaN.
    """
    tokens = list(tokens)
    a = _check_attention(attention, len(tokens))
    ideal = ideal_attention(task, tokens)  # (T, T)
    rows = ideal.sum(axis=1) > 0  # (T,)
    L, H = a.shape[:2]
    if not rows.any():
        return np.full((L, H), np.nan, dtype=np.float32)
    on_target = (a[:, :, rows, :] * (ideal[rows] > 0)).sum(axis=-1)  # (L, H, R)
    return on_target.mean(axis=-1).astype(np.float32)


def previous_token_scores(attention: np.ndarray) -> np.ndarray:
    """(L, H) float32: mean attention from position p to p - 1 (over p >= 1)."""
    a = np.asarray(attention, dtype=np.float32)
    if a.ndim != 4 or a.shape[-1] < 2:
        L, H = a.shape[:2] if a.ndim >= 2 else (0, 0)
        return np.full((L, H), np.nan, dtype=np.float32)
    T = a.shape[-1]
    idx = np.arange(1, T)
    return a[:, :, idx, idx - 1].mean(axis=-1).astype(np.float32)


def best_head(scores: np.ndarray) -> tuple[int, int] | None:
    """(layer, head) with the highest finite score, or None."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0 or not np.isfinite(s).any():
        return None
    i = int(np.nanargmax(np.where(np.isfinite(s), s, -np.inf)))
    return int(i // s.shape[1]), int(i % s.shape[1])


def task_of(name: str | None) -> str | None:
    """``"task:copy"`` or ``"copy"`` -> ``"copy"``; anything else -> None."""
    if not name:
        return None
    name = str(name).strip()
    if name.startswith("task:"):
        name = name[5:].strip()
    return name if name in TASKS else None


__all__ = ["TASKS", "SCORE_NAMES", "SCORE_HELP", "probe_prompt", "ideal_targets",
           "ideal_attention", "scored_rows", "head_scores", "previous_token_scores", "best_head",
           "task_of"]
