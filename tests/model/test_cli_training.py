"""``train`` as a newcomer runs it: default threads, the optimizer-state file, resuming the
learning-rate schedule, and the README's copy-task recipe (model/__main__.py)."""
from __future__ import annotations

import os

import pytest
import torch

from model import devices
from model.__main__ import main

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
TINY = ["--layers", "1", "--heads", "2", "--embd", "16", "--block", "16", "--batch", "4",
        "--eval-interval", "10", "--eval-iters", "2", "--sample-interval", "100",
        "--device", "cpu"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_spare_threads_leave_busy_cores_alone():
    assert devices.spare_cpu_threads(load=1.7, cores=2) == 1
    assert devices.spare_cpu_threads(load=0.1, cores=2) == 2
    assert devices.spare_cpu_threads(load=9.0, cores=8) == 1
    assert devices.spare_cpu_threads(load=2.2, cores=8) == 6
    assert 1 <= devices.physical_cores() <= (os.cpu_count() or 1)


def test_default_threads_follow_the_load_and_the_bar_says_how_many(corpus, tmp_path, capsys,
                                                                    monkeypatch, restore_threads):
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))  # a very busy machine
    torch.set_num_threads(2)
    out = tmp_path / "m.safetensors"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), "--steps", "3",
                 *TINY]) == 0
    assert torch.get_num_threads() == 1
    assert "threads=1" in capsys.readouterr().err
