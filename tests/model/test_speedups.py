"""model.speedups: the CPU training speed-ups keep the math (within bf16 rounding) and fall back."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model import speedups
from model.capture import additive_causal_mask, causal_mask
from model.config import ModelConfig, TrainConfig
from model.transformer import GPT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_detection(monkeypatch):
    speedups.cpu_has_native_bf16.cache_clear()
    yield
    speedups.cpu_has_native_bf16.cache_clear()


def test_env_overrides_bf16_detection(monkeypatch):
    monkeypatch.setenv("TE_CPU_BF16", "0")
    assert speedups.cpu_has_native_bf16() is False
    assert speedups.default_amp("cpu") is False
    speedups.cpu_has_native_bf16.cache_clear()
    monkeypatch.setenv("TE_CPU_BF16", "1")
    assert speedups.cpu_has_native_bf16() is True
    assert speedups.default_amp("cpu") is True


def test_default_amp_is_off_where_it_does_not_pay():
    assert speedups.default_amp("meta") is False


def test_sdpa_runs_in_fp32_when_training_under_cpu_autocast():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 8, 4, requires_grad=True) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
        y = speedups.scaled_dot_product_attention(qb, kb, vb, is_causal=True)
    assert y.dtype == torch.float32  # computed in fp32 from the bf16 inputs
    ref = F.scaled_dot_product_attention(qb.float(), kb.float(), vb.float(), is_causal=True)
    torch.testing.assert_close(y, ref)
    y.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_sdpa_unchanged_outside_autocast_and_without_grad():
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    torch.testing.assert_close(speedups.scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               rtol=0, atol=0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = speedups.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert y.dtype == torch.bfloat16  # inference keeps the (fast) bf16 forward


@pytest.mark.parametrize("t,tk,offset", [(1, 1, 0), (4, 4, 0), (2, 7, 5), (3, 9, 2)])
def test_additive_mask_equals_masked_fill(t, tk, offset):
    s = torch.randn(2, 3, t, tk)
    expected = s.masked_fill(~causal_mask(t, tk, offset), float("-inf"))
    got = s + additive_causal_mask(t, tk, offset)
    assert torch.equal(got, expected)
    with torch.inference_mode():  # a mask first made in inference mode still works with grad
        additive_causal_mask(5, 5, 1)
    x = torch.randn(5, 5, requires_grad=True)
    (x + additive_causal_mask(5, 5, 1)).softmax(-1).sum().backward()


def test_clip_matches_the_plain_version():
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    oa = torch.optim.AdamW(a.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    ob = torch.optim.AdamW(b.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1,
                           foreach=False)
    x = torch.randn(8, 4)
    for _ in range(3):
        for m, o, clip in ((a, oa, speedups.clip_grad_norm_),
                           (b, ob, torch.nn.utils.clip_grad_norm_)):
            o.zero_grad()
            (m(x) ** 2).sum().backward()
            clip(list(m.parameters()), 0.5)
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_amp_training_step_on_cpu_tracks_fp32():
    """One bf16-autocast step of the GPT moves the loss like the fp32 step (bf16 rounding)."""
    cfg = ModelConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(0)
    x = torch.randint(11, (4, 16))
    y = torch.randint(11, (4, 16))
    losses = {}
    for amp in (False, True):
        torch.manual_seed(1)
        m = GPT(cfg)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            _, loss = m(x, y)
        loss.backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in m.parameters())
        losses[amp] = loss.item()
    assert math.isfinite(losses[True])
    assert abs(losses[True] - losses[False]) < 0.02


def test_trainer_uses_the_fast_path_on_cpu(monkeypatch):
    from model.trainer import Trainer

    monkeypatch.setenv("TE_CPU_BF16", "1")
    cfg = TrainConfig(steps=2, batch_size=2, eval_iters=1, device="cpu")
    m = GPT(ModelConfig(vocab_size=7, block_size=8, n_layer=1, n_head=1, n_embd=8))
    batch = (torch.randint(7, (2, 8)), torch.randint(7, (2, 8)))
    t = Trainer(m, cfg, lambda split: batch)
    assert t.amp is True
    assert Trainer(m, cfg, lambda split: batch, amp=False).amp is False
    r = t.run()
    assert r.step == 2 and math.isfinite(r.train_loss)


def test_tune_malloc_is_safe_to_call_twice():
    # in a subprocess: the setting is process-wide and would outlive this test
    code = ("from model import speedups; a = speedups.tune_malloc(); "
            "assert speedups.tune_malloc() == a == speedups.malloc_tuned(); print(a)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() in ("True", "False")
    env = dict(os.environ, TE_TUNE_MALLOC="0")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env=env)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr


def test_train_config_amp_chooses_autocast_over_the_detection(monkeypatch):
    from model.trainer import Trainer

    monkeypatch.setenv("TE_CPU_BF16", "1")
    m = GPT(ModelConfig(vocab_size=7, block_size=8, n_layer=1, n_head=1, n_embd=8))
    batch = (torch.randint(7, (2, 8)), torch.randint(7, (2, 8)))
    amps = {}
    for amp in ("auto", "on", "off"):
        cfg = TrainConfig(steps=1, batch_size=2, eval_iters=1, device="cpu", amp=amp)
        amps[amp] = Trainer(m, cfg, lambda split: batch).amp
    assert amps == {"auto": True, "on": True, "off": False}
    monkeypatch.setenv("TE_CPU_BF16", "0")
    cfg = TrainConfig(steps=1, batch_size=2, eval_iters=1, device="cpu", amp="on")
    assert Trainer(m, cfg, lambda split: batch).amp is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_is_off_by_default_and_on_when_asked():
    from model.trainer import Trainer

    m = GPT(ModelConfig(vocab_size=7, block_size=8, n_layer=1, n_head=1, n_embd=8))
    batch = (torch.randint(7, (2, 8)), torch.randint(7, (2, 8)))
    cfg = TrainConfig(steps=3, batch_size=2, eval_iters=1, device="cuda")
    assert Trainer(m, cfg, lambda split: batch).amp is False
    t = Trainer(m, TrainConfig(**{**cfg.to_dict(), "amp": "on"}), lambda split: batch)
    assert t.amp is torch.cuda.is_bf16_supported()
    r = t.run()
    assert r.step == 3 and math.isfinite(r.train_loss)
