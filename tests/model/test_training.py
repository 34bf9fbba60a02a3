"""The training loop: schedule, pause/resume/stop from another thread, divergence, resuming,
determinism and a tiny task that actually trains."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.checkpoints import load_checkpoint, load_optimizer_state, optimizer_path, read_metadata
from model.config import ModelConfig, TrainConfig
from model.corpora import Corpus, CorpusError, load_corpus
from model.optim import lr_at, make_optimizer, param_groups
from model.train_gpt import evaluate_split, train_gpt
from model.trainer import Callbacks, TrainControl, Trainer, TrainingDiverged
from model.transformer import GPT

TINY = ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)
QUIET = dict(eval_interval=10_000, eval_iters=2, sample_interval=10_000, sample_tokens=8,
             capture_interval=10_000, device="cpu", warmup_steps=2)


def tcfg(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 20, "batch_size": 4, **QUIET, **kw})


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus("task:copy", block_size=16, n_examples=400)


class Recorder(Callbacks):
    def __init__(self):
        self.steps, self.evals, self.samples, self.attention = [], [], [], []
        self.checkpoints, self.messages = [], []

    def on_step(self, m):
        self.steps.append(m)

    def on_eval(self, m):
        self.evals.append(m)

    def on_sample(self, step, text):
        self.samples.append((step, text))

    def on_attention(self, step, a):
        self.attention.append((step, a))

    def on_checkpoint(self, step, path):
        self.checkpoints.append((step, path))

    def on_message(self, text):
        self.messages.append(text)


class Bigram(nn.Module):
    """Not a GPT: the Trainer only needs model(x, y) -> (logits, loss)."""

    def __init__(self, vocab: int, nan_after: int | None = None):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.nan_after = nan_after
        self.calls = 0

    def forward(self, x, y):
        logits = self.table(x) + self.bias
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        if self.training:
            self.calls += 1
            if self.nan_after is not None and self.calls > self.nan_after:
                loss = loss * float("nan")
        return logits, loss


def batches(corpus, seed=0, block=16, bs=4):
    g = torch.Generator().manual_seed(seed)
    return lambda split: corpus.get_batch(split, bs, block, generator=g)


# -- schedule and optimizer --------------------------------------------------------------------
def test_lr_warmup_and_cosine_endpoints():
    c = TrainConfig(steps=1000, lr=1e-3, min_lr=1e-4, warmup_steps=100)
    assert lr_at(0, c) == pytest.approx(1e-3 / 101)
    assert lr_at(99, c) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(100, c) == pytest.approx(1e-3)  # the top, where the cosine starts
    assert lr_at(550, c) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down the cosine
    assert lr_at(1000, c) == pytest.approx(1e-4)
    assert lr_at(5000, c) == pytest.approx(1e-4)
    warm = [lr_at(s, c) for s in range(101)]
    decay = [lr_at(s, c) for s in range(100, 1001)]
    assert all(a < b for a, b in zip(warm, warm[1:], strict=False))
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    assert min(decay) >= 1e-4


def test_lr_without_warmup_starts_at_lr():
    c = TrainConfig(steps=10, lr=2e-3, min_lr=0.0, warmup_steps=0)
    assert lr_at(0, c) == pytest.approx(2e-3) and lr_at(10, c) == 0.0


def test_weight_decay_only_on_matrices():
    m = GPT(dataclasses_replace(TINY, vocab_size=12))
    groups = param_groups(m, 0.1)
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == m.num_params()  # the tied embedding counted once
    opt = make_optimizer(m, TrainConfig())
    assert isinstance(opt, torch.optim.AdamW)


def dataclasses_replace(cfg, **kw):
    import dataclasses
    return dataclasses.replace(cfg, **kw)


# -- the loop ----------------------------------------------------------------------------------
def test_trainer_is_model_agnostic_and_reports(corpus):
    rec = Recorder()
    m = Bigram(corpus.vocab_size)
    cfg = tcfg(steps=12, log_interval=4, eval_interval=5, lr=1e-2, sample_interval=6,
               capture_interval=6)
    saved = []
    t = Trainer(m, cfg, batches(corpus), rec, sample_fn=lambda mm: "txt",
                attention_fn=lambda mm: np.zeros((1, 1, 2, 2), np.float32),
                checkpoint_fn=lambda s, mm, o: saved.append(s) or f"ck{s}")
    r = t.run()
    assert r.step == 12 and not r.stopped and r.reason == "finished" and r.ok
    assert [s.step for s in rec.steps] == [4, 8, 12]
    for s in rec.steps:
        assert math.isfinite(s.loss) and s.tokens_per_s > 0 and s.elapsed >= 0
        assert math.isfinite(s.grad_norm) and s.lr == pytest.approx(lr_at(s.step - 1, cfg))
    assert [e.step for e in rec.evals] == [0, 5, 10, 12]  # start, every 5, end
    assert [s for s, _ in rec.samples] == [0, 6, 12]
    assert [s for s, _ in rec.attention] == [0, 6, 12]
    assert saved == [12] and rec.checkpoints == [(12, "ck12")]
    assert r.val_loss == rec.evals[-1].val_loss and r.train_loss == rec.evals[-1].train_loss
    assert not m.training  # left in eval mode


def test_checkpoint_interval(corpus):
    saved = []
    t = Trainer(Bigram(corpus.vocab_size), tcfg(steps=10, checkpoint_interval=4),
                batches(corpus), checkpoint_fn=lambda s, m, o: saved.append(s))
    t.run()
    assert saved == [4, 8, 10]


def test_probes_run_without_gradients_in_eval_mode(corpus):
    seen = []

    def sample_fn(m):
        seen.append((m.training, torch.is_grad_enabled()))
        return ""

    m = Bigram(corpus.vocab_size)
    Trainer(m, tcfg(steps=2), batches(corpus), sample_fn=sample_fn).run()
    assert seen and all(s == (False, False) for s in seen)


class Steep(nn.Module):
    """loss = 100 * sum(w): every gradient is 100, the norm 200 for four weights."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(4))

    def forward(self, x, y):
        return None, (self.w * 100).sum()


def test_gradient_clipping(corpus, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    after = []

    def spy(params, max_norm, *a, **k):
        params = list(params)
        norm = real(params, max_norm, *a, **k)
        after.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm()
                                                                 for p in params]))))
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    rec = Recorder()
    Trainer(Steep(), tcfg(steps=3, grad_clip=0.5), batches(corpus), rec).run()
    assert [s.grad_norm for s in rec.steps] == pytest.approx([200.0] * 3)  # before clipping
    assert after == pytest.approx([0.5] * 3)
    after.clear()
    rec = Recorder()
    Trainer(Steep(), tcfg(steps=3, grad_clip=0.0), batches(corpus), rec).run()
    assert after == [] and rec.steps[-1].grad_norm == pytest.approx(200.0)


def run_in_thread(trainer):
    out = {}

    def target():
        try:
            out["result"] = trainer.run()
        except BaseException as e:  # noqa: BLE001 - hand it to the test thread
            out["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, out


class StepEvents(Callbacks):
    def __init__(self):
        self.reached = {}
        self.last = 0
        self.lock = threading.Lock()

    def when(self, step):
        with self.lock:
            ev = self.reached.setdefault(step, threading.Event())
            if self.last >= step:
                ev.set()
        return ev

    def on_step(self, m):
        with self.lock:
            self.last = m.step
            for s, ev in self.reached.items():
                if m.step >= s:
                    ev.set()


def test_pause_really_pauses_and_resume_continues(corpus):
    cb = StepEvents()
    saved = []
    t = Trainer(Bigram(corpus.vocab_size), tcfg(steps=1_000_000, eval_iters=1), batches(corpus),
                cb, checkpoint_fn=lambda s, m, o: saved.append(s))
    th, out = run_in_thread(t)
    try:
        assert cb.when(3).wait(10)
        t.pause()
        assert t.is_paused
        assert t.wait_until_paused(10)
        paused_at = t.step
        th.join(0.05)  # give a loop that ignored the pause a chance to move on
        assert t.step == paused_at and cb.last == paused_at and th.is_alive()
        t.resume()
        assert not t.is_paused
        assert cb.when(paused_at + 3).wait(10)
        assert t.step > paused_at
    finally:
        t.stop()
        th.join(10)
    assert not th.is_alive()
    r = out["result"]
    assert r.stopped and r.reason == "stopped" and r.step < 1_000_000
    assert saved == [r.step]  # stop saves a checkpoint


def test_stop_while_paused(corpus):
    cb = StepEvents()
    saved = []
    t = Trainer(Bigram(corpus.vocab_size), tcfg(steps=1_000_000, eval_iters=1), batches(corpus),
                cb, checkpoint_fn=lambda s, m, o: saved.append(s))
    th, out = run_in_thread(t)
    assert cb.when(2).wait(10)
    t.pause()
    assert t.wait_until_paused(10)
    at = t.step
    t.stop()
    th.join(10)
    assert not th.is_alive()
    assert out["result"].stopped and out["result"].step == at and saved == [at]


def test_paused_time_is_not_counted(corpus):
    control = TrainControl()
    cb = StepEvents()
    t = Trainer(Bigram(corpus.vocab_size), tcfg(steps=1_000_000, eval_iters=1), batches(corpus),
                cb, control=control)
    th, out = run_in_thread(t)
    assert cb.when(2).wait(10)
    control.pause()
    assert control.wait_until_paused(10)
    before = t.active_elapsed()
    th.join(0.1)  # the paused thread does not finish, and its clock stands still meanwhile
    assert th.is_alive() and t.active_elapsed() == before
    control.stop()
    th.join(10)
    assert out["result"].elapsed < before + 0.09


# -- divergence --------------------------------------------------------------------------------
def test_nan_loss_stops_with_a_message_and_saves_nothing(corpus):
    rec = Recorder()
    saved = []
    t = Trainer(Bigram(corpus.vocab_size, nan_after=5), tcfg(steps=50, checkpoint_interval=3),
                batches(corpus), rec, checkpoint_fn=lambda s, m, o: saved.append(s))
    with pytest.raises(TrainingDiverged) as e:
        t.run()
    msg = str(e.value)
    assert "diverged at step 6" in msg and "nan" in msg and "learning rate" in msg
    assert "step 3" in msg  # the last good checkpoint
    assert saved == [3]  # step 6 was never saved
    assert e.value.result is not None and not e.value.result.ok and e.value.result.diverged
    assert rec.messages[-1] == msg


def test_nan_found_late_on_accelerators_still_never_saved(corpus):
    """On a GPU the loss is checked only when reported; a checkpoint always checks first."""
    saved = []
    t = Trainer(Bigram(corpus.vocab_size, nan_after=2),
                tcfg(steps=50, log_interval=100, checkpoint_interval=5),
                batches(corpus), checkpoint_fn=lambda s, m, o: saved.append(s))
    t._check_every_step = False  # behave like CUDA
    with pytest.raises(TrainingDiverged, match=r"between steps 1 and 5.*nan"):
        t.run()
    assert saved == []


def test_inf_gradient_with_finite_loss_is_caught(corpus):
    class InfGrad(Bigram):
        def __init__(self, vocab):
            super().__init__(vocab)
            self.z = nn.Parameter(torch.zeros(()))

        def forward(self, x, y):
            logits, loss = super().forward(x, y)
            if self.training and self.calls > 2:
                loss = loss + torch.sqrt(self.z)  # value 0, gradient +inf
            return logits, loss

    for clip in (0.0, 1.0):
        saved = []
        with pytest.raises(TrainingDiverged, match="step 3: the gradient norm became inf"):
            Trainer(InfGrad(corpus.vocab_size), tcfg(steps=10, grad_clip=clip),
                    batches(corpus), checkpoint_fn=lambda s, m, o, saved=saved: saved.append(s)
                    ).run()
        assert saved == []


class NanGPT(GPT):
    nan_after = 3

    def forward(self, idx, targets=None, **kw):
        logits, loss = super().forward(idx, targets, **kw)
        if targets is not None and self.training:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls > self.nan_after:
                loss = loss * float("nan")
        return logits, loss


def test_nan_never_overwrites_the_last_good_checkpoint(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    r = train_gpt(corpus, TINY, tcfg(steps=4), out)
    assert r.ok and out.exists()
    good, good_optim = out.read_bytes(), optimizer_path(out).read_bytes()

    ck = load_checkpoint(out)
    bad = NanGPT(ck.config)
    bad.load_state_dict(ck.model.state_dict())

    class Keep(Recorder):
        def on_checkpoint(self, step, path):
            super().on_checkpoint(step, path)
            self.saved_bytes = path.read_bytes()

    rec = Keep()
    r = train_gpt(corpus, None, tcfg(steps=20, checkpoint_interval=2), out, rec, model=bad,
                  tokenizer=ck.tokenizer)
    assert not r.ok and r.diverged and r.stopped
    assert "diverged" in r.reason and "nan" in r.reason and r.step == 4
    assert any("nan" in m for m in rec.messages)
    assert [s for s, _ in rec.checkpoints] == [2]
    assert out.read_bytes() == rec.saved_bytes  # the step-2 save survived the divergence
    assert load_checkpoint(out).summary["steps"] == 2
    # once more without any save in between: the file from the first run is untouched
    out2 = tmp_path / "n.safetensors"
    out2.write_bytes(good)
    bad2 = NanGPT(ck.config)
    bad2.load_state_dict(ck.model.state_dict())
    r = train_gpt(corpus, None, tcfg(steps=20), out2, model=bad2, tokenizer=ck.tokenizer)
    assert not r.ok and out2.read_bytes() == good
    assert not optimizer_path(out2).exists()
    assert optimizer_path(out).read_bytes() != good_optim  # (the step-2 save above)
    assert "No checkpoint was written in this run" in r.reason


# -- train_gpt ---------------------------------------------------------------------------------
def test_train_gpt_writes_a_self_describing_checkpoint(corpus, tmp_path):
    rec = Recorder()
    out = tmp_path / "run" / "copy.safetensors"
    cfg = tcfg(steps=6, probe_prompt="abc|", sample_interval=3, capture_interval=3)
    r = train_gpt(corpus, TINY, cfg, out, rec)
    assert r.ok and r.step == 6 and r.checkpoint == out
    md = read_metadata(out)
    s = md["summary"]
    assert s["steps"] == 6 and s["corpus"] == "task:copy" and s["device"] == "cpu"
    assert s["train_loss"] == pytest.approx(r.train_loss) and s["val_loss"] == r.val_loss
    assert s["train_config"]["steps"] == 6 and "date" in s and s["elapsed_s"] >= 0
    assert md["config"].vocab_size == corpus.vocab_size and md["tokenizer"] == corpus.tokenizer
    assert load_optimizer_state(optimizer_path(out)).trainer_state["step"] == 6
    # probes: sample text starts with the probe prompt; attention of the probe (L, H, T, T)
    assert rec.samples and all(t.startswith("abc|") and len(t) == 4 + 8 for _, t in rec.samples)
    step, att = rec.attention[-1]
    assert step == 6 and att.shape == (1, 2, 4, 4) and att.dtype == np.float32
    assert np.allclose(att.sum(-1), 1.0, atol=1e-5) and np.all(np.triu(att, 1) == 0)


def test_stop_saves_a_checkpoint(corpus, tmp_path):
    control = TrainControl()

    class StopAt5(Recorder):
        def on_step(self, m):
            super().on_step(m)
            if m.step == 5:
                threading.Thread(target=control.stop).start()

    out = tmp_path / "m.safetensors"
    rec = StopAt5()
    r = train_gpt(corpus, TINY, tcfg(steps=1000), out, rec, control=control)
    assert r.stopped and r.reason == "stopped" and 5 <= r.step < 1000
    assert read_metadata(out)["summary"]["steps"] == r.step
    assert rec.checkpoints == [(r.step, out)]


def test_resume_continues_schedule_and_step_count(corpus, tmp_path):
    cfg = tcfg(steps=20, warmup_steps=4, lr=3e-3, min_lr=1e-4)
    full = Recorder()
    train_gpt(corpus, TINY, cfg, tmp_path / "full.safetensors", full)

    control = TrainControl()

    class StopAt10(Recorder):
        def on_step(self, m):
            super().on_step(m)
            if m.step == 10:
                control.stop()

    first = StopAt10()
    out = tmp_path / "part.safetensors"
    r1 = train_gpt(corpus, TINY, cfg, out, first, control=control)
    assert r1.stopped and r1.step == 10
    second = Recorder()
    r2 = train_gpt(corpus, None, cfg, out, second, resume_from=out)
    assert r2.step == 20 and not r2.stopped
    assert [m.step for m in second.steps] == list(range(11, 21))
    assert [m.lr for m in second.steps] == [m.lr for m in full.steps[10:]]
    # optimizer state, weights and batch order all continue: the very same losses
    np.testing.assert_allclose([m.loss for m in first.steps + second.steps],
                               [m.loss for m in full.steps], rtol=1e-5)
    s = read_metadata(out)["summary"]
    assert s["steps"] == 20 and s["resumed_from_step"] == 10


def test_resume_without_optimizer_file_uses_summary_steps(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    train_gpt(corpus, TINY, tcfg(steps=5), out)
    optimizer_path(out).unlink()
    rec = Recorder()
    r = train_gpt(corpus, None, tcfg(steps=8), out, rec, resume_from=out)
    assert r.step == 8 and [m.step for m in rec.steps] == [6, 7, 8]
    assert any("optimizer starts fresh" in m for m in rec.messages)


def test_resume_refuses_a_corpus_with_foreign_characters(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    train_gpt(corpus, TINY, tcfg(steps=2), out)
    other = Corpus.from_text("XYZ xyz\n" * 100, "other.txt", block_size=16)
    with pytest.raises(CorpusError, match=r"other.txt.*vocabulary lacks"):
        train_gpt(other, None, tcfg(steps=4), out, resume_from=out)


def test_same_seed_same_losses(corpus, tmp_path):
    runs = []
    for i, seed in enumerate((5, 5, 6)):
        rec = Recorder()
        train_gpt(corpus, TINY, tcfg(steps=8, seed=seed), tmp_path / f"{i}.safetensors", rec)
        runs.append([m.loss for m in rec.steps])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_compile_falls_back_cleanly(corpus, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    rec = Recorder()
    r = Trainer(Bigram(corpus.vocab_size), tcfg(steps=3, compile=True), batches(corpus),
                rec).run()
    assert r.ok and any("torch.compile" in m for m in rec.messages)

    class FailsOnCall(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *a):
            raise RuntimeError("backend exploded")

    monkeypatch.setattr(torch, "compile", lambda m: FailsOnCall(m))
    rec = Recorder()
    r = Trainer(Bigram(corpus.vocab_size), tcfg(steps=3, compile=True), batches(corpus),
                rec).run()
    assert r.ok and r.step == 3 and any("backend exploded" in m for m in rec.messages)


def test_evaluate_split_counts_every_token(corpus):
    m = GPT(dataclasses_replace(TINY, vocab_size=corpus.vocab_size))
    loss, n = evaluate_split(m, corpus, "val", 16, batch_size=8)
    assert n == len(corpus.val) - 1
    assert abs(loss - math.log(corpus.vocab_size)) < 0.3  # untrained: about uniform


def test_tiny_copy_task_learns(tmp_path):
    corpus = load_corpus("task:copy", block_size=24)
    cfg = TrainConfig(steps=300, batch_size=16, lr=5e-3, min_lr=5e-4, warmup_steps=20,
                      eval_interval=300, eval_iters=5, sample_interval=10_000,
                      capture_interval=10_000, sample_tokens=0, device="cpu", seed=1)
    model_cfg = ModelConfig(block_size=24, n_layer=1, n_head=4, n_embd=32, pos_kind="rotary")
    rec = Recorder()
    t0 = time.perf_counter()
    r = train_gpt(corpus, model_cfg, cfg, tmp_path / "copy.safetensors", rec)
    assert time.perf_counter() - t0 < 15
    start, end = rec.evals[0].val_loss, r.val_loss
    assert start > math.log(corpus.vocab_size) - 0.1
    assert end < start - 0.25, (start, end)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_resumes_on_cpu_and_nan_is_caught(corpus, tmp_path):
    out = tmp_path / "gpu.safetensors"
    rec = Recorder()
    r = train_gpt(corpus, TINY, tcfg(steps=10, device="cuda", log_interval=5), out, rec)
    assert r.ok and read_metadata(out)["summary"]["device"].startswith("cuda")
    assert [m.step for m in rec.steps] == [5, 10]
    rec = Recorder()
    r = train_gpt(corpus, None, tcfg(steps=14, device="cpu"), out, rec, resume_from=out)
    assert r.step == 14 and [m.step for m in rec.steps] == [11, 12, 13, 14]
    assert not any("optimizer starts fresh" in m for m in rec.messages)
    # on CUDA the loss is checked when reported; a checkpoint still never holds a NaN model
    ck = load_checkpoint(out)
    bad = NanGPT(ck.config)
    bad.load_state_dict(ck.model.state_dict())
    before = out.read_bytes()
    r = train_gpt(corpus, None, tcfg(steps=30, device="cuda", log_interval=100,
                                     checkpoint_interval=10), out, model=bad,
                  tokenizer=ck.tokenizer)
    assert not r.ok and "between steps" in r.reason and out.read_bytes() == before
