"""Choosing where tensors live (CUDA when present, then Apple's MPS, then the CPU) and how many
CPU threads a headless training run takes."""
from __future__ import annotations

import os
from pathlib import Path

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


def _usable_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """Cores this process may use, counting hyper-threads of one core once (Linux's sysfs
    topology; elsewhere every logical CPU counts)."""
    cpus = _usable_cpus()
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def spare_cpu_threads(load: float | None = None, cores: int | None = None) -> int:
    """Torch threads for a headless training run: one per physical core that other work leaves
    idle (cores minus the 1-minute load average, rounded), at least one.

    torch's default (every physical core) thrashes on a busy machine: on the 2-core test box
    with the other core busy, copy-task training took 235 s with the default and 27 s with one
    thread (and 0.8k vs 27k tokens/s for the GUI's training thread, explorer/training_worker.py).
    """
    cores = physical_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows has no load average
            load = 0.0
    return max(1, min(cores, round(cores - load)))
