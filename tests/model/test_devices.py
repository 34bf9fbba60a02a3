"""resolve_device / available_devices, with and without a GPU (availability is faked where a
test needs a particular machine)."""
from __future__ import annotations

import pytest
import torch

from model.devices import DeviceError, available_devices, resolve_device


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)


@pytest.fixture
def one_cuda_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")


def _has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def test_auto_matches_this_machine():
    dev = resolve_device("auto")
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif _has_mps():
        assert dev.type == "mps"
    else:
        assert dev == torch.device("cpu")  # the CPU-only developer and CI machines


def test_auto_is_cpu_without_accelerator(no_accelerator):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("") == torch.device("cpu")
    assert resolve_device("  AUTO ") == torch.device("cpu")


def test_auto_prefers_cuda(one_cuda_gpu):
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu "])
def test_cpu_always_works(name):
    dev = resolve_device(name)
    assert dev.type == "cpu"
    torch.zeros(2, device=dev)  # usable


def test_cuda_without_gpu_is_a_clear_error(no_accelerator):
    with pytest.raises(DeviceError) as info:
        resolve_device("cuda")
    msg = str(info.value)
    assert "cuda" in msg and "no CUDA GPU" in msg
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_really_unavailable_here():
    with pytest.raises(DeviceError, match="cuda"):
        resolve_device("cuda")


def test_cuda_index_out_of_range(one_cuda_gpu):
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match=r"'cuda:3'.*1 CUDA GPU"):
        resolve_device("cuda:3")


def test_mps_unavailable(no_accelerator):
    with pytest.raises(DeviceError, match="mps"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["bogus", "gpu", "cuda:x", "tpu", "cuda:-1:2"])
def test_unknown_device_names(name):
    with pytest.raises(DeviceError) as info:
        resolve_device(name)
    msg = str(info.value)
    assert name in msg
    assert "auto" in msg and "cpu" in msg  # says what would work
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["meta", "xla"])
def test_known_but_unsupported_types(name):
    with pytest.raises(DeviceError, match="unsupported"):
        resolve_device(name)


def test_available_devices_lists_cpu_first(no_accelerator):
    assert available_devices() == [("cpu", "CPU")]


def test_available_devices_with_gpu(one_cuda_gpu):
    devs = available_devices()
    assert devs[0] == ("cpu", "CPU")
    assert ("cuda", "CUDA: Fake GPU") in devs
    for name, _ in devs:
        resolve_device(name)  # every listed device resolves
