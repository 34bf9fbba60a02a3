"""Training speed-ups for small models on a CPU, each with a safe fallback.

Where the time of a training step goes for the nanoGPT CPU configuration (4 layers, 4 heads,
128 wide, block 64, batch 12) on one core: about 60 % matrix products, 15 % the attention
kernel (mostly its backward), the rest GELU, layer norm, the optimizer and small copies.
Python overhead, the loss and the batch sampler are each a few percent at most, which is why
``torch.compile`` gains nothing there: it cannot make the matrix products faster.

The levers that do work (measured in ``benchmarks/bench_model.py``):

* **bf16 matrix products** (:func:`default_amp`, :func:`autocast`): on CPUs with native bf16
  dot products (AVX512-BF16 or AMX: AMD Zen 4+, Intel Cooper Lake / Sapphire Rapids+) a
  bf16 GEMM with fp32 accumulation is 2-2.5x faster than fp32. This is mixed precision as on a
  GPU: the weights, gradients and optimizer state stay fp32; under ``torch.autocast`` only the
  matrix products run in bf16, while layer norm, softmax, the loss and (see below) attention stay
  fp32. It changes the numbers slightly (like TF32 on a GPU): loss curves agree to within the
  run-to-run noise of a different seed. Off on CPUs without native bf16, where it is emulated
  and slower. ``TE_CPU_BF16=0`` (or ``1``) in the environment overrides the detection.
* **attention in fp32 under CPU autocast** (:func:`scaled_dot_product_attention`): PyTorch's
  CPU flash attention backward is about 3x slower in bf16 than in fp32 at these sizes, which on
  its own cancels the gain above. :mod:`model.attention` calls this instead of
  ``F.scaled_dot_product_attention``.
* **fused AdamW** (:func:`model.optim.make_optimizer`): one kernel over all parameters instead
  of ~10 small ops per tensor (torch >= 2.4 has it on the CPU).
* **foreach gradient clipping** (:func:`clip_grad_norm_`): one norm kernel for all gradients.

And for the capture path (the GUI): :func:`tune_malloc`, which entry points call once, stops
glibc from page-faulting every large temporary in again.
"""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable

import torch
import torch.nn.functional as F

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    if not sys.platform.startswith("linux"):
        return frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 dot products natively (AVX512-BF16 or AMX-BF16) and
    PyTorch's oneDNN can use them. ``TE_CPU_BF16`` = 0/1 overrides the detection."""
    env = os.environ.get("TE_CPU_BF16", "").strip().lower()
    if env in _FALSE:
        return False
    if env in _TRUE:
        return True
    flags = _cpu_flags()
    if not ({"avx512_bf16", "amx_bf16"} & flags):
        return False  # emulated bf16 (e.g. plain AVX-512) is slower than fp32
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_amp(device: torch.device | str) -> bool:
    """Whether training on ``device`` should use bf16 autocast by default: CUDA GPUs with bf16,
    CPUs with native bf16 dot products; never on MPS or elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def autocast(device: torch.device | str, enabled: bool = True):
    """bf16 autocast for ``device`` (a no-op context when not enabled)."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _cpu_autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _attention_in_fp32(q: torch.Tensor) -> bool:
    return (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)
            and q.requires_grad and torch.is_grad_enabled() and _cpu_autocast_on())


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs):
    """``F.scaled_dot_product_attention``, but in fp32 when training under CPU autocast: the
    bf16 CPU attention backward is ~3x slower than the fp32 one at these sizes. Unchanged
    otherwise (inference keeps bf16, whose forward is fast; GPUs keep their bf16 kernels).
    The output is then fp32; the next linear layer casts it back under autocast."""
    if _attention_in_fp32(q):
        with torch.autocast("cpu", enabled=False):  # autocast would cast back to bf16
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kwargs)
    return F.scaled_dot_product_attention(q, k, v, **kwargs)


def clip_grad_norm_(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` with the foreach kernels (fallback: the default)."""
    params = list(params)
    try:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    except (RuntimeError, TypeError):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


_MALLOC_TUNED = False


def tune_malloc(mmap_threshold: int = 8 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    By default glibc serves large blocks (its threshold moves between 128 KB and 32 MB) with
    fresh ``mmap`` pages and gives them back on ``free``, or trims the heap top, so large
    temporary tensors are page-faulted in again and again: a captured forward pass of a
    4-layer, 128-wide model at 256 tokens took 500-3900 page faults (about 2 µs each in a VM),
    most of the capture overhead (1.4-1.8x the plain pass; 1.2x tuned, with no faults). Blocks
    below ``mmap_threshold`` (8 MB) now come from the heap and up to ``trim_threshold``
    (64 MB) of free heap is kept. Blocks above 8 MB (a GPT-2-small's attention maps) still go
    back to the system at once, so the peak memory does not grow (1.70 GB with, 1.73 GB
    without, at 1024 tokens). PyTorch's CPU tuning guide suggests jemalloc/tcmalloc for the
    same reason.

    Process-wide and meant for entry points (GUI, command line, benchmarks), not for library
    code. Linux with glibc only; a no-op returning False elsewhere or when ``TE_TUNE_MALLOC=0``.
    The cost: up to ``trim_threshold`` of freed memory stays in the process."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if os.environ.get("TE_TUNE_MALLOC", "").strip().lower() in _FALSE:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import platform

        if platform.libc_ver()[0] != "glibc":
            return False
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from <malloc.h>
        ok = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError, ValueError):
        return False
    _MALLOC_TUNED = ok
    return ok


def malloc_tuned() -> bool:
    return _MALLOC_TUNED


__all__ = ["tune_malloc", "malloc_tuned", "cpu_has_native_bf16", "default_amp", "autocast", "scaled_dot_product_attention",
           "clip_grad_norm_"]
