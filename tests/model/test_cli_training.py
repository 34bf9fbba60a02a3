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


# -- resuming: the learning-rate schedule and the optimizer-state file -------------------------
def test_lr_schedule_fresh_continue_and_restart_curves():
    from model.config import TrainConfig
    from model.optim import LRSchedule, lr_at

    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    fresh = LRSchedule.of(cfg)
    assert [fresh(s) for s in range(120)] == pytest.approx([lr_at(s, cfg) for s in range(120)])
    # an interrupted run continued with the same total: exactly the original curve
    cont = LRSchedule.of(cfg, start_step=40, start_progress=fresh.progress(40))
    assert [cont(s) for s in range(40, 100)] == pytest.approx([lr_at(s, cfg) for s in range(40, 100)])
    # a finished run continued for longer stays at the bottom; halfway, it decays from there
    longer = TrainConfig(steps=200, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    done = LRSchedule.of(longer, start_step=100, start_progress=1.0)
    assert all(done(s) == pytest.approx(1e-4) for s in range(100, 200))
    half = LRSchedule.of(longer, start_step=55, start_progress=fresh.progress(55))
    assert half(55) == pytest.approx(fresh(55))
    assert all(half(s) >= half(s + 1) for s in range(55, 200))
    # restart: warm-up from the resumed step, peak, then the cosine down to min_lr
    re = LRSchedule.of(longer, origin=100)
    assert re(100) == pytest.approx(1e-3 / 11) and re(110) == pytest.approx(1e-3)
    assert re(199) == pytest.approx(1e-4, rel=0.05)


class LRs:
    """Callbacks recording (step, lr) and stopping after ``stop_at`` steps."""

    def __init__(self, control=None, stop_at=None):
        from model.trainer import Callbacks

        outer = self
        self.seen: dict[int, float] = {}

        class CB(Callbacks):
            def on_step(self, m):
                outer.seen[m.step - 1] = m.lr  # m.step: steps done, m.lr: the last one's rate
                if stop_at is not None and m.step == stop_at:
                    control.stop()

        self.cb = CB()


@pytest.fixture(scope="module")
def task_corpus():
    from model.corpora import load_corpus

    return load_corpus("task:copy", block_size=16, n_examples=400)


def _train(corpus, out, steps, **kw):
    from model.config import ModelConfig, TrainConfig
    from model.train_gpt import train_gpt
    from model.trainer import TrainControl

    control = TrainControl()
    rec = LRs(control, kw.pop("stop_at", None))
    cfg = TrainConfig(steps=steps, batch_size=4, warmup_steps=4, lr=1e-3, min_lr=1e-4,
                      eval_interval=10_000, eval_iters=1, sample_interval=10_000,
                      sample_tokens=4, capture_interval=10_000, device="cpu")
    model_cfg = ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)
    result = train_gpt(corpus, model_cfg, cfg, out, callbacks=rec.cb, control=control, **kw)
    assert result.ok
    return rec.seen


def test_resume_continue_carries_the_schedule_on_and_restart_warms_up_anew(task_corpus,
                                                                          tmp_path):
    from model.checkpoints import optimizer_path

    whole = _train(task_corpus, tmp_path / "whole.safetensors", 30)
    part = tmp_path / "part.safetensors"
    first = _train(task_corpus, part, 30, stop_at=12)  # interrupted (Ctrl+C) at step 12
    assert max(first) == 11
    rest = _train(task_corpus, tmp_path / "rest.safetensors", 30, resume_from=part,
                  lr_schedule="continue")
    assert sorted(rest) == list(range(12, 30))
    assert [rest[s] for s in range(12, 30)] == pytest.approx([whole[s] for s in range(12, 30)])

    # a finished run trained for longer: continue keeps to the bottom of the cosine (before,
    # the rate jumped back up to where a 60-step cosine would be at step 30) ...
    more = _train(task_corpus, tmp_path / "more.safetensors", 60, lr_schedule="continue",
                  resume_from=tmp_path / "whole.safetensors")
    assert sorted(more) == list(range(30, 60)) and max(more.values()) <= whole[29]
    assert all(lr == pytest.approx(1e-4) for lr in more.values())
    # ... restart warms up again and runs a whole new cosine over the 30 new steps
    again = _train(task_corpus, tmp_path / "again.safetensors", 60, lr_schedule="restart",
                   resume_from=tmp_path / "whole.safetensors")
    assert again[30] == pytest.approx(1e-3 / 5) and again[34] == pytest.approx(1e-3)
    assert again[59] < again[45] < again[34]
    assert optimizer_path(tmp_path / "again.safetensors").exists()


def test_no_optimizer_state_writes_only_the_model(corpus, tmp_path, capsys, restore_threads):
    from model.checkpoints import load_checkpoint, optimizer_path

    out = tmp_path / "m.safetensors"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), "--steps", "3",
                 "--no-optimizer-state", "--quiet", *TINY]) == 0
    assert load_checkpoint(out).steps == 3
    assert not optimizer_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fox.txt", "m.safetensors"]
    # resuming it works; the optimizer starts fresh and says so
    assert main(["train", "--corpus", str(corpus), "--out", str(out), "--steps", "5",
                 "--resume", str(out), "--lr-schedule", "restart", *TINY]) == 0
    assert "optimizer starts fresh" in capsys.readouterr().out
    assert load_checkpoint(out).steps == 5 and optimizer_path(out).exists()


# -- the README's copy-task recipe -------------------------------------------------------------
COPY_RECIPE = ["train", "--corpus", "task:copy", "--out", "copy.safetensors", "--steps", "1000"]


@pytest.mark.slow
def test_readme_copy_recipe_grows_an_induction_head(tmp_path, monkeypatch, restore_threads):
    """The command the README gives, as given (≈ 40 s of one core's CPU time), learns to copy."""
    import random
    from pathlib import Path

    import numpy as np

    from model import tasks
    from model.__main__ import inspect_prompt
    from model.checkpoints import load_checkpoint
    from model.config import SampleConfig
    from model.corpora import task_example
    from model.stepper import generate_text

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "transformer-explorer-cli " + " ".join(COPY_RECIPE) in readme
    monkeypatch.chdir(tmp_path)
    assert main([*COPY_RECIPE, "--quiet", "--threads", "1"]) == 0
    ck = load_checkpoint("copy.safetensors")
    assert ck.summary["val_loss"] < 1.6  # chance (the copy never found) is about 2.0
    probe = "hcjafebd|hcjafebd\n"
    data = inspect_prompt("copy.safetensors", probe, SampleConfig(temperature=0))
    scores = tasks.head_scores("copy", np.array(data["attention"]), data["tokens"])
    assert scores.max() > 0.3  # uniform attention scores about 0.08 here
    rng = random.Random(5)
    right = 0
    for _ in range(20):  # fresh strings, copied greedily
        s = task_example("copy", rng).split("|")[0]
        right += generate_text(ck.model, ck.tokenizer, f"\n{s}|", len(s),
                               SampleConfig(temperature=0)) == s
    assert right >= 15
