"""Choosing where tensors live: CUDA when present, then Apple's MPS, then the CPU."""
from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A requested device is unknown or not available on this machine."""


def available_devices() -> list[tuple[str, str]]:
    """(name, description) of every usable device, CPU first."""
    out = [("cpu", "CPU")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            name = "cuda" if i == 0 else f"cuda:{i}"
            out.append((name, f"CUDA: {torch.cuda.get_device_name(i)}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(("mps", "Apple MPS"))
    return out


def resolve_device(name: str | None = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; anything else must be available here."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda' was requested but no CUDA GPU is available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError("device 'mps' was requested but Apple MPS is not available here")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}: use auto, cpu, cuda or mps")
    return dev
