"""Model benchmarks: every figure is a ratio against a reference measured in the same run.

    python benchmarks/bench_model.py [--quick] [--out FILE] [--threads N] [--no-tune-malloc]
                                     [--device cpu|cuda]

Prints ONE JSON document. Sections:

* ``training``: tokens/s of our training loop (:class:`model.trainer.Trainer` with its
  defaults, cheap callbacks; ``speedup_fp32``: the same with bf16 autocast forced off)
  against a plain nanoGPT-style PyTorch loop written here (fused qkv Linear, SDPA with
  ``is_causal=True``, GELU MLP, pre-LayerNorm, tied embeddings, non-fused AdamW with nanoGPT's
  decay groups, ``clip_grad_norm_(1.0)``, ``get_batch`` by ``torch.stack`` of random slices),
  on the configuration nanoGPT documents for CPUs: 4 layers, 4 heads, 128 wide, block 64,
  batch 12, vocabulary 65. Target: ours >= 1.25x.
* ``capture``: forward time with everything captured vs the plain forward (T = 64, 256).
  Target <= 1.3x.
* ``kv_cache``: one KV-cached step ``model(idx[:, -1:], cache=cache)`` vs the full recompute
  ``model(idx)`` at T = 64, 256 (block 256) and 1024 (block 1024). Target >= 3x at T = 256.
  ``stepper``: ``Stepper.step()`` (capture on) vs ``Stepper.refresh()`` (a full captured
  recompute of the window, what the GUI would otherwise do).
* ``gpt2_small``: a GPT-2-small-sized model (12 layers, 12 heads, 768 wide, vocabulary 50257,
  block 1024, random weights): Stepper step time at 128 tokens (target <= 150 ms) and the peak
  RSS of a fresh process at 1024 tokens (target <= 2 GB). Skipped with ``--quick``.

The machine may be shared and noisy: measurements of A and B are interleaved (A, B, A, B, …)
and medians reported; seeds are fixed and so are torch's threads (1 by default: on a busy
2-core machine two OpenMP threads that wait for each other can make a step 5x slower).
glibc's malloc is tuned the way the application's entry points are meant to tune it
(:func:`model.speedups.tune_malloc`; ``--no-tune-malloc`` measures without). Timings are
wall-clock (``time.perf_counter``); most sections also give the ratio of process CPU time,
which other processes on a shared machine disturb less when one thread is used.
Figures are reported, never asserted (tests only check that the document is complete).

``--device cuda`` runs the training, capture, KV-cache and stepper comparisons (and the
GPT-2-small step time) on the GPU, both sides of every ratio alike, with
``torch.cuda.synchronize()`` before each clock reading; the peak-RSS child stays on the CPU
(host memory is what it measures). The reference loop stays the plain fp32 loop there too
(nanoGPT itself would switch to fused AdamW and bf16 autocast on a GPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import resource
except ImportError:  # Windows
    resource = None

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from model import speedups  # noqa: E402
from model.capture import capture  # noqa: E402
from model.config import CAPTURE_ALL, CaptureSpec, ModelConfig, SampleConfig, TrainConfig  # noqa: E402
from model.corpora import Corpus  # noqa: E402
from model.stepper import Stepper  # noqa: E402
from model.tokenizer import CharTokenizer  # noqa: E402
from model.transformer import GPT  # noqa: E402

SEED = 1337
# nanoGPT's README, "I only have a macbook": train_shakespeare_char on the CPU
NANO_CPU = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=65)
# what the GUI records for a GPT-2-small-sized model: attention (the main view), residual
# stream, sublayer outputs and embeddings. Off: scores (a second L·H·T² array), FFN hidden
# activations (4x the residual) and the logit lens ((L+1)·T·V floats: 2.7 GB at T = 1024).
LARGE_SPEC = dataclasses.replace(CAPTURE_ALL, scores=False, ffn=False, logit_lens=False)
GPT2_SMALL = ModelConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)


# -- measurement helpers -----------------------------------------------------------------------
DEVICE = torch.device("cpu")  # set by main() from --device


def sync() -> None:
    """Wait for queued GPU work, so a clock reading after it counts it (no-op on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _median(xs):
    return float(statistics.median(xs))


def interleave(fns: dict, rounds: int, inner: int = 1, warmup: int = 1) -> dict:
    """Median seconds per call of each function, measured A, B, A, B, … (``inner`` calls per
    turn, ``rounds`` turns each): wall-clock under the name, process CPU time under name_cpu."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    sync()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t, c = time.perf_counter(), time.process_time()
            for _ in range(inner):
                f()
            sync()
            wall[k].append((time.perf_counter() - t) / inner)
            cpu[k].append((time.process_time() - c) / inner)
    out = {k: _median(v) for k, v in wall.items()}
    out.update({f"{k}_cpu": _median(v) for k, v in cpu.items()})
    return out


def _ms(s: float) -> float:
    return round(s * 1e3, 3)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b > 0 else float("nan")


def random_text(n: int, vocab: int = 65, seed: int = SEED) -> tuple[str, CharTokenizer]:
    chars = [chr(33 + i) for i in range(vocab)]  # printable, distinct
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=n)
    return "".join(chars[i] for i in ids), CharTokenizer(chars)


# -- the reference: a minimal nanoGPT-style model and loop ------------------------------------
class RefAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class RefBlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = RefAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))


class RefGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([RefBlock(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        B, T = idx.size()
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


def reference_loop(data: np.ndarray, cfg: dict, lr: float = 1e-3):
    """nanoGPT's train.py reduced to what runs each iteration on a CPU (no autocast, GradScaler
    disabled, non-fused AdamW); returns ``step()``."""
    torch.manual_seed(SEED)
    B, T = cfg["batch_size"], cfg["block_size"]
    model = RefGPT(cfg["vocab_size"], T, cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
    model.to(DEVICE).train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))
    warmup, max_iters, min_lr = 100, 5000, lr / 10

    def get_batch():
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i:i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
        return x.to(DEVICE), y.to(DEVICE)

    def get_lr(it):
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        ratio = min(1.0, (it - warmup) / (max_iters - warmup))
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    state = {"it": 0, "batch": get_batch()}

    def step():
        for g in optimizer.param_groups:
            g["lr"] = get_lr(state["it"])
        x, y = state["batch"]
        _, loss = model(x, y)
        state["batch"] = get_batch()  # prefetch, as nanoGPT does
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["it"] += 1
        return loss.item()  # log_interval=1 in nanoGPT's CPU command

    return step, sum(p.numel() for p in params)


# -- our loop ----------------------------------------------------------------------------------
class _Clock:
    """Cheap callbacks: a timestamp (wall and CPU) per step."""

    def __init__(self):
        from model.trainer import Callbacks

        class CB(Callbacks):
            def __init__(cb):
                cb.wall, cb.cpu = [], []

            def on_step(cb, metrics):
                sync()
                cb.wall.append(time.perf_counter())
                cb.cpu.append(time.process_time())

        self.cb = CB()


def our_trainer_round(corpus: Corpus, model: GPT, cfg: dict, steps: int, gen: torch.Generator,
                      amp: bool | None = None):
    """Run our Trainer for 1 + ``steps`` steps; (wall s, cpu s, amp used, optimizer class,
    optimizer implementation) of the last ``steps``. ``amp=None``: the Trainer's default."""
    from model.trainer import Trainer

    B, T = cfg["batch_size"], cfg["block_size"]
    big = 10 ** 9
    tcfg = TrainConfig(steps=steps + 1, batch_size=B, lr=1e-3, warmup_steps=100,
                       eval_interval=big, eval_iters=1, sample_interval=big,
                       capture_interval=big, log_interval=1, seed=SEED, device=DEVICE.type)
    clock = _Clock().cb
    trainer = Trainer(model, tcfg,
                      lambda split: corpus.get_batch(split, B, T, generator=gen, device=DEVICE),
                      clock, device=DEVICE, **({} if amp is None else {"amp": amp}))
    trainer.run()
    return (clock.wall[-1] - clock.wall[0], clock.cpu[-1] - clock.cpu[0],
            bool(getattr(trainer, "amp", False)), type(trainer.optimizer).__name__,
            _optimizer_impl(trainer.optimizer))


def _optimizer_impl(opt) -> str:
    d = opt.defaults
    return "fused" if d.get("fused") else ("foreach" if d.get("foreach") else "for-loop")


def bench_training(quick: bool) -> dict:
    cfg = NANO_CPU
    text, tok = random_text(200_000 if quick else 1_000_000, cfg["vocab_size"])
    corpus = Corpus.from_text(text, "random", tokenizer=tok)
    data = np.concatenate([corpus.train.numpy(), corpus.val.numpy()]).astype(np.uint16)
    ref_step, ref_params = reference_loop(data, cfg)
    mcfg = ModelConfig(vocab_size=cfg["vocab_size"], block_size=cfg["block_size"],
                       n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"])
    torch.manual_seed(SEED)
    model = GPT(mcfg)
    torch.manual_seed(SEED)
    model32 = GPT(mcfg)  # our loop with bf16 autocast forced off: where the gain comes from
    gen = torch.Generator().manual_seed(SEED)
    rounds, steps = (3, 4) if quick else (9, 15)
    tokens = steps * cfg["batch_size"] * cfg["block_size"]
    ref_step()  # warm-up (allocations, optimizer state)
    our_trainer_round(corpus, model, cfg, 2, gen)
    our_trainer_round(corpus, model32, cfg, 2, gen, amp=False)
    ours_w, ours_c, ref_w, ref_c, o32_w = [], [], [], [], []
    amp = impl = None
    for _ in range(rounds):
        w, c, amp, _, impl = our_trainer_round(corpus, model, cfg, steps, gen)
        ours_w.append(w)
        ours_c.append(c)
        o32_w.append(our_trainer_round(corpus, model32, cfg, steps, gen, amp=False)[0])
        ref_step()  # untimed, as the first step of our round is
        sync()
        t, tc = time.perf_counter(), time.process_time()
        for _ in range(steps):
            ref_step()
        sync()
        ref_w.append(time.perf_counter() - t)
        ref_c.append(time.process_time() - tc)
    ours_tps, ref_tps = tokens / _median(ours_w), tokens / _median(ref_w)
    return {
        "config": dict(cfg, n_params_ours=sum(p.numel() for p in model.parameters()),
                       n_params_reference=ref_params),
        "rounds": rounds, "steps_per_round": steps,
        "ours_tokens_per_s": round(ours_tps, 1),
        "reference_tokens_per_s": round(ref_tps, 1),
        "ours_ms_per_step": _ms(_median(ours_w) / steps),
        "reference_ms_per_step": _ms(_median(ref_w) / steps),
        "speedup": _ratio(ours_tps, ref_tps),
        "speedup_cpu_time": _ratio(_median(ref_c), _median(ours_c)),
        "ours_fp32_tokens_per_s": round(tokens / _median(o32_w), 1),
        "speedup_fp32": _ratio(tokens / _median(o32_w), ref_tps),
        "target_speedup": 1.25,
        "ours_bf16_autocast": amp,
        "ours_optimizer": impl,
        "cpu_native_bf16": speedups.cpu_has_native_bf16(),
    }


# -- capture overhead, KV cache, stepper -------------------------------------------------------
def _small_model(block: int) -> GPT:
    torch.manual_seed(SEED)
    m = GPT(ModelConfig(vocab_size=65, block_size=block, n_layer=4, n_head=4, n_embd=128))
    return m.to(DEVICE).eval()


def bench_capture(quick: bool) -> dict:
    model = _small_model(256)
    out = {"model": "4 layers, 4 heads, 128 wide, vocab 65", "spec": "CAPTURE_ALL",
           "target_ratio": 1.3}
    g = torch.Generator().manual_seed(SEED)
    for T in (64, 256):
        idx = torch.randint(65, (1, T), generator=g).to(DEVICE)

        def plain(idx=idx):
            model(idx)

        def captured(idx=idx):
            with capture(model, CAPTURE_ALL):
                model(idx)

        with torch.inference_mode():
            r = interleave({"plain": plain, "captured": captured},
                           rounds=5 if quick else 15, inner=3 if quick else 10)
        out[f"T{T}"] = {"plain_ms": _ms(r["plain"]), "captured_ms": _ms(r["captured"]),
                        "ratio": _ratio(r["captured"], r["plain"]),
                        "ratio_cpu_time": _ratio(r["captured_cpu"], r["plain_cpu"])}
    return out


def _kv_pair(model: GPT, T: int, quick: bool) -> dict:
    g = torch.Generator().manual_seed(SEED)
    idx = torch.randint(model.config.vocab_size, (1, T), generator=g).to(DEVICE)
    cache = model.new_cache()
    with torch.inference_mode():
        model(idx[:, :-1], cache=cache)  # T-1 positions cached

        def full():
            model(idx)

        def cached():
            cache.truncate(T - 1)
            model(idx[:, -1:], cache=cache)

        r = interleave({"full": full, "cached": cached}, rounds=5 if quick else 15,
                       inner=2 if quick else 6)
    return {"full_ms": _ms(r["full"]), "cached_ms": _ms(r["cached"]),
            "speedup": _ratio(r["full"], r["cached"]),
            "speedup_cpu_time": _ratio(r["full_cpu"], r["cached_cpu"])}


def _prompt(tok: CharTokenizer, n: int, seed: int = SEED) -> str:
    rng = np.random.default_rng(seed)
    return tok.decode(rng.integers(0, tok.vocab_size, size=n).tolist())


def bench_stepper(model: GPT, tok: CharTokenizer, T: int, spec: CaptureSpec, quick: bool,
                  steps: int | None = None, rounds: int | None = None) -> dict:
    """Median time of ``Stepper.step()`` reaching context lengths T-steps+1 … T, against
    ``Stepper.refresh()`` (a full captured recompute of the same window), interleaved."""
    steps = steps or (3 if quick else 8)
    rounds = rounds or (2 if quick else 5)
    st = Stepper(model, tok, SampleConfig(temperature=1.0, seed=SEED), capture=spec)
    step_t, full_t, step_c, full_c = [], [], [], []
    prompt = _prompt(tok, T - steps)
    for _ in range(rounds):
        st.set_prompt(prompt)
        for _ in range(steps):
            sync()
            t, c = time.perf_counter(), time.process_time()
            st.step()
            sync()
            step_t.append(time.perf_counter() - t)
            step_c.append(time.process_time() - c)
        for _ in range(max(1, steps // 4)):
            sync()
            t, c = time.perf_counter(), time.process_time()
            st.refresh()
            sync()
            full_t.append(time.perf_counter() - t)
            full_c.append(time.process_time() - c)
    return {"T": T, "step_ms": _ms(_median(step_t)), "full_recompute_ms": _ms(_median(full_t)),
            "speedup": _ratio(_median(full_t), _median(step_t)),
            "step_cpu_ms": _ms(_median(step_c)), "full_recompute_cpu_ms": _ms(_median(full_c))}


def bench_kv(quick: bool) -> dict:
    small, big = _small_model(256), _small_model(1024)
    out = {"model": "4 layers, 4 heads, 128 wide, vocab 65; block 256 (T=64, 256), "
                    "block 1024 (T=1024)", "target_speedup_T256": 3.0}
    for T in (64, 256):
        out[f"T{T}"] = _kv_pair(small, T, quick)
    out["T1024"] = _kv_pair(big, 1024, quick)
    _, tok = random_text(10, 65)
    out["stepper"] = dict(bench_stepper(small, tok, 256, CAPTURE_ALL, quick),
                          spec="CAPTURE_ALL", block_size=256)
    return out


# -- GPT-2-small-sized model ---------------------------------------------------------------------
def _big_tokenizer(vocab: int) -> CharTokenizer:
    return CharTokenizer([chr(i) for i in range(vocab)])  # < 0xD800: no surrogates


def _spec_dict(spec: CaptureSpec) -> dict:
    return {k: v for k, v in dataclasses.asdict(spec).items()}


def _vm_hwm() -> int | None:
    """Peak RSS of this process image in bytes from /proc (Linux), else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _maxrss() -> int | None:
    if resource is None:
        return None
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def rss_child(T: int, spec_json: str, threads: int) -> None:
    """Fresh process: build the model, set a T-1 token prompt, step once; print peak RSS.

    ``ru_maxrss`` survives ``exec`` on Linux (a child started from a big parent reports at
    least the parent's size), so the parent starts this child before it builds anything big;
    VmHWM, which belongs to the new process image only, is reported beside it."""
    torch.set_num_threads(threads)
    spec = CaptureSpec.from_json(spec_json)
    start = _maxrss()
    torch.manual_seed(SEED)
    model = GPT(GPT2_SMALL).eval()
    after_model = _maxrss()
    tok = _big_tokenizer(GPT2_SMALL.vocab_size)
    st = Stepper(model, tok, SampleConfig(temperature=1.0, seed=SEED), capture=spec)
    st.set_prompt(_prompt(tok, T - 1))
    st.step()
    print(json.dumps({"start": start, "after_model": after_model, "peak": _maxrss(),
                      "vm_hwm": _vm_hwm(), "T": st.result.T}))


def _peak_rss(T: int, spec: CaptureSpec, threads: int, tuned: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", str(T),
           "--spec", spec.to_json(), "--threads", str(threads)]
    if not tuned:
        cmd.append("--no-tune-malloc")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout)[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_gpt2_small(threads: int, rss: dict | None = None) -> dict:
    """``rss``: the child's result when main() started it early (see :func:`rss_child`)."""
    if rss is None:
        rss = _peak_rss(1024, LARGE_SPEC, threads, speedups.malloc_tuned())
    torch.manual_seed(SEED)
    model = GPT(GPT2_SMALL).to(DEVICE).eval()
    tok = _big_tokenizer(GPT2_SMALL.vocab_size)
    step = bench_stepper(model, tok, 128, LARGE_SPEC, quick=False, steps=6, rounds=3)
    del model
    gb = 1e9
    out = {
        "skipped": False, "step_device": str(DEVICE), "rss_device": "cpu",
        "config": GPT2_SMALL.to_dict(), "n_params": GPT2_SMALL.n_params(),
        "spec": _spec_dict(LARGE_SPEC),
        "step_ms_T128": step["step_ms"], "step_cpu_ms_T128": step["step_cpu_ms"],
        "full_recompute_ms_T128": step["full_recompute_ms"],
        "full_recompute_cpu_ms_T128": step["full_recompute_cpu_ms"],
        "step_speedup_T128": step["speedup"], "target_step_ms": 150.0,
        "target_peak_rss_gb": 2.0,
    }
    if "error" in rss:
        out.update(peak_rss_gb_T1024=None, vm_hwm_gb_T1024=None, rss_after_model_gb=None,
                   rss_error=rss["error"])
    else:
        hwm = rss.get("vm_hwm")
        peak = rss["peak"] or hwm
        out.update(peak_rss_gb_T1024=round(peak / gb, 3) if peak else None,
                   vm_hwm_gb_T1024=round(hwm / gb, 3) if hwm else None,
                   rss_after_model_gb=round(rss["after_model"] / gb, 3)
                   if rss["after_model"] else None, rss_error=None)
    return out


def gpt2_small_skipped() -> dict:
    keys = ("step_device", "rss_device", "config", "n_params", "spec", "step_ms_T128", "step_cpu_ms_T128",
            "full_recompute_ms_T128", "full_recompute_cpu_ms_T128", "step_speedup_T128",
            "target_step_ms", "target_peak_rss_gb", "peak_rss_gb_T1024", "vm_hwm_gb_T1024",
            "rss_after_model_gb", "rss_error")
    return dict({"skipped": True}, **{k: None for k in keys})


# -- main ----------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer iterations, no GPT-2-small section (< 40 s)")
    ap.add_argument("--out", help="also write the JSON document to this file")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for every measurement (default 1)")
    ap.add_argument("--no-tune-malloc", action="store_true",
                    help="leave glibc's malloc as it is (default: model.speedups.tune_malloc())")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="where the model comparisons run (default cpu; peak RSS stays on cpu)")
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global DEVICE
    if args.device == "cuda" and not args.rss_child:
        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA GPU is available on this machine")
        DEVICE = torch.device("cuda")
    torch.set_num_threads(args.threads)
    tuned = False if args.no_tune_malloc else speedups.tune_malloc()
    if args.rss_child:
        rss_child(args.rss_child, args.spec, args.threads)
        return {}
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    # the peak-RSS child first, while this process is still small (see rss_child)
    rss = None if args.quick else _peak_rss(1024, LARGE_SPEC, args.threads, tuned)
    doc = {
        "benchmark": "bench_model",
        "quick": bool(args.quick),
        "device": str(DEVICE),
        "device_name": (torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda"
                        else "cpu"),
        "threads": torch.get_num_threads(),
        "seed": SEED,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "malloc_tuned": tuned,
    }
    doc["training"] = bench_training(args.quick)
    doc["capture"] = bench_capture(args.quick)
    doc["kv_cache"] = bench_kv(args.quick)
    doc["gpt2_small"] = (gpt2_small_skipped() if args.quick
                         else bench_gpt2_small(args.threads, rss))
    doc["elapsed_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return doc


if __name__ == "__main__":
    main()
