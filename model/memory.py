"""Memory estimates: what a model needs and what a device has free, checked before allocating.

Building a model whose configuration is absurd (a typo such as ``--embd 65536``, or a file whose
metadata says ``n_layer=1000000``) would otherwise allocate for minutes and then fail with a
MemoryError or be killed; these estimates let the command line, checkpoint loading and the
training form refuse it at once, with the figure.
"""
from __future__ import annotations

import os

HEADROOM = 0.8  # refuse work whose estimate exceeds this share of the free memory
OVERHEAD = 150 * 2**20  # the interpreter, torch and the app themselves


class MemoryLimitError(ValueError):
    """The estimate exceeds the free memory; the message gives both figures."""


def training_memory(cfg, batch: int) -> dict[str, int]:
    """Bytes a training run needs: weights + gradients + AdamW's two moments (float32) and
    the activations kept for the backward pass of one batch (a generous upper estimate)."""
    P = cfg.n_params()
    B, T, C, F = batch, cfg.block_size, cfg.n_embd, cfg.n_ffn
    L, H, V = cfg.n_layer, cfg.n_head, cfg.vocab_size
    params = 4 * P * 4
    per_layer = B * T * (16 * C + 3 * F) + 3 * B * H * T * T  # norms, qkv, proj, FFN, attention
    acts = 4 * (L * per_layer + 3 * B * T * V + 4 * B * T * C)
    return {"params": params, "activations": acts, "total": params + acts + OVERHEAD}


def inference_memory(cfg) -> int:
    """Bytes to build a model and load its weights: float32 parameters twice (the model and
    the tensors read from the file) and the position tables computed from the config."""
    tables = 3 * 4 * cfg.block_size * cfg.n_embd
    return 2 * 4 * cfg.n_params() + tables + OVERHEAD


def available_memory(device: str = "cpu") -> int | None:
    """Free memory in bytes on ``device`` (CUDA: free GPU memory), None if unknown."""
    if device.startswith("cuda"):
        try:
            import torch

            free, _ = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except Exception:  # noqa: BLE001 - no estimate is better than a failed check
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing). A pass over a GPT-2's full window frees tens of MB of per-layer temporaries in
    the middle of the heap, which would otherwise stay resident and add to the next pass's
    peak. True when it ran."""
    global _trim
    if _trim is None:
        try:
            import ctypes

            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if not _trim:
        return False
    _trim(0)
    return True


_trim = None  # glibc's malloc_trim once looked up; False where there is none


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_fits(need: int, device: str, what: str) -> None:
    """Raise :class:`MemoryLimitError` when ``need`` bytes exceed the free memory's headroom.
    ``what`` starts the message ("this model", "the model in x.safetensors")."""
    free = available_memory(str(device))
    if free is None or need <= HEADROOM * free:
        return
    raise MemoryLimitError(f"{what} would need about {fmt_bytes(need)} of memory, but only "
                           f"{fmt_bytes(free)} is free on {device}")


__all__ = ["HEADROOM", "MemoryLimitError", "training_memory", "inference_memory",
           "available_memory", "fmt_bytes", "check_fits"]
