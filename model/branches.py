"""Branches: every continuation taken after one prompt, kept as a tree over token ids.

Rewinding, Resample or taking another token (a forced step) no longer throws the old tokens away:
each generated token is a node whose parent is the token before it (the prompt is the root), so
a continuation that went another way stays as its own branch (a leaf and its path). Each node
keeps the log-probability the model gave its token at temperature 1 (the raw softmax of the
logits it was chosen from, whatever the sampling settings were): the probability of a
continuation under the model is the sum along its path. With heads switched off the ablated
model's logits are the ones recorded, as the stepper ran them.

:class:`BranchTree` is the mutable tree; :meth:`BranchTree.snapshot` gives a frozen
:class:`Branches` (plain tuples) that may cross threads. :class:`Branching` drives a
:class:`~model.stepper.Stepper` and keeps the tree in step with it; switching to a branch
rewinds to where the two paths part and replays the other tokens as forced steps, so the
stepper's state is exactly that of the branch.

Torch-free: the GUI thread imports this module (the stepper is only driven, never imported).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .step_result import StepResult
    from .stepper import Stepper

ROOT = -1  # the prompt: the parent of every first generated token


def token_logprob(logits: np.ndarray, token: int) -> float:
    """log softmax(logits)[token] at temperature 1, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    m = float(np.max(x))
    return float(x[token] - m - math.log(float(np.sum(np.exp(x - m)))))


@dataclass(frozen=True, slots=True)
class Node:
    """One generated token of one or more continuations."""

    token: int
    parent: int  # node index, or ROOT
    logprob: float  # log p(token | the path before it) under the model at temperature 1
    depth: int  # generated tokens up to and including this one (1 for the first)


@dataclass(frozen=True)
class Branches:
    """A frozen view of the tree: what the branch view and the token strip read."""

    nodes: tuple[Node, ...] = ()
    current: int = ROOT  # the node the stepper stands at (ROOT: only the prompt)
    n_prompt: int = 0  # prompt tokens in the whole text
    version: int = 0  # raised by every change of the tree or of ``current``
    n_leaves: int = 0  # continuations (1 or less: nothing has branched yet)

    @cached_property
    def children(self) -> dict[int, list[int]]:
        """node (or ROOT) -> its children in the order they were taken."""
        kids: dict[int, list[int]] = {}
        for i, n in enumerate(self.nodes):
            kids.setdefault(n.parent, []).append(i)
        return kids

    def path(self, node: int) -> list[int]:
        """The nodes from the first generated token to ``node``."""
        out: list[int] = []
        while node != ROOT:
            out.append(node)
            node = self.nodes[node].parent
        return out[::-1]

    def tokens(self, node: int) -> list[int]:
        return [self.nodes[i].token for i in self.path(node)]

    def logprobs(self, node: int) -> list[float]:
        return [self.nodes[i].logprob for i in self.path(node)]

    def total_logprob(self, node: int) -> float:
        """log p(the whole continuation up to ``node`` | prompt) under the model."""
        return float(sum(self.logprobs(node)))

    def leaves(self) -> list[int]:
        """The end of every continuation, in the order they were made."""
        kids = self.children
        return [i for i in range(len(self.nodes)) if i not in kids]

    def is_on(self, node: int, leaf: int) -> bool:
        """Whether ``node`` lies on the path to ``leaf`` (ROOT lies on every path)."""
        return node == ROOT or node in self.path(leaf)

    def current_leaf(self) -> int:
        """The branch the stepper is on: the newest leaf whose path holds ``current``."""
        kids = self.children
        node = self.current
        while node in kids:
            node = kids[node][-1]
        return node

    def split_depths(self, node: int | None = None) -> set[int]:
        """Depths (1 = the first generated token) on the path to ``node`` (default: the current
        one) whose token is one of several taken after the same text: where branches part."""
        if self.n_leaves <= 1:  # nothing branched: no walk over a long text every step
            return set()
        kids = self.children
        path = self.path(self.current if node is None else node)
        return {self.nodes[i].depth for i in path if len(kids.get(self.nodes[i].parent, ())) > 1}

    def split_with(self, a: int, b: int) -> int:
        """Generated tokens the continuations to ``a`` and ``b`` share."""
        pa, pb = self.path(a), self.path(b)
        k = 0
        while k < min(len(pa), len(pb)) and pa[k] == pb[k]:
            k += 1
        return k

    def __len__(self) -> int:
        return len(self.nodes)


class BranchTree:
    """The mutable tree (owned by whoever drives the stepper); see the module docstring."""

    def __init__(self, n_prompt: int = 0):
        self.nodes: list[Node] = []
        self._child: dict[tuple[int, int], int] = {}  # (parent, token) -> node
        self._has_child: set[int] = set()  # nodes (and ROOT) with at least one child
        self.n_leaves = 0
        self.current = ROOT
        self.n_prompt = n_prompt
        self.version = 0

    def reset(self, n_prompt: int) -> None:
        """A new prompt: every branch of the old one goes."""
        self.nodes, self._child, self.current, self.n_prompt = [], {}, ROOT, n_prompt
        self._has_child, self.n_leaves = set(), 0
        self.version += 1

    @property
    def depth(self) -> int:
        return self.nodes[self.current].depth if self.current != ROOT else 0

    def advance(self, token: int, logprob: float) -> int:
        """``token`` follows the current node: its existing child for that token, or a new one."""
        key = (self.current, int(token))
        node = self._child.get(key)
        if node is None:
            node = len(self.nodes)
            self.nodes.append(Node(int(token), self.current, float(logprob), self.depth + 1))
            self._child[key] = node
            if self.current == ROOT or self.current in self._has_child:
                self.n_leaves += 1  # a new continuation; else it extends a leaf
            self._has_child.add(self.current)
        self.current = node
        self.version += 1
        return node

    def rewind_to(self, depth: int) -> None:
        """Stand at the ancestor of the current node with ``depth`` generated tokens."""
        if not 0 <= depth <= self.depth:
            raise ValueError(f"cannot rewind to {depth} generated tokens: there are {self.depth}")
        while self.depth > depth:
            self.current = self.nodes[self.current].parent
        self.version += 1

    def snapshot(self) -> Branches:
        return Branches(tuple(self.nodes), self.current, self.n_prompt, self.version,
                        self.n_leaves)


class Branching:
    """Drives a :class:`~model.stepper.Stepper` and records every token it takes in a
    :class:`BranchTree`: the same actions as the stepper, plus :meth:`switch`."""

    def __init__(self, stepper: Stepper):
        self.stepper = stepper
        self.tree = BranchTree()

    def snapshot(self) -> Branches:
        return self.tree.snapshot()

    def set_prompt(self, text: str, errors: str = "strict") -> StepResult:
        r = self.stepper.set_prompt(text, errors=errors)
        self.tree.reset(len(self.stepper.ids) - self.stepper.n_generated)
        return r

    def step(self, force: int | None = None) -> StepResult:
        before = self.stepper.result
        r = self.stepper.step(force=force)
        self.tree.advance(r.chosen, token_logprob(before.logits, r.chosen))
        return r

    def back(self) -> StepResult:
        r = self.stepper.back()
        self.tree.rewind_to(self.stepper.n_generated)
        return r

    def rewind_to(self, n_generated: int) -> StepResult:
        r = self.stepper.rewind_to(n_generated)
        self.tree.rewind_to(self.stepper.n_generated)
        return r

    def reset(self) -> StepResult:
        return self.rewind_to(0)

    def resample(self) -> StepResult:
        """The last token drawn again (see Stepper.resample); the old one stays as a branch."""
        n = self.stepper.n_generated
        logits = self.stepper.logits_at(n - 1) if n > 0 else None
        r = self.stepper.resample()
        self.tree.rewind_to(n - 1)
        self.tree.advance(r.chosen, token_logprob(logits, r.chosen))
        return r

    def switch(self, node: int) -> StepResult:
        """Make the continuation up to ``node`` the stepper's text: rewind to where it parts from
        the current one, then take its tokens again: a plain step where the stepper would draw
        that very token anyway (so it still shows as sampled), else a forced one."""
        snap = self.tree.snapshot()
        if not (node == ROOT or 0 <= node < len(snap.nodes)):
            raise ValueError(f"there is no branch {node!r}")
        keep = snap.split_with(snap.current, node) if node != ROOT else 0
        target = snap.tokens(node) if node != ROOT else []
        r = self.rewind_to(keep)
        for tok in target[keep:]:
            r = self.step(force=None if r.planned == tok else tok)
        return r


__all__ = ["ROOT", "Branches", "BranchTree", "Branching", "Node", "token_logprob"]
