"""Training on several processes at once with PyTorch's DistributedDataParallel (DDP).

``torchrun --nproc_per_node N -m model train ...`` starts N copies of the command line; torchrun
tells each one its place through environment variables (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``). :func:`start` reads them and joins the process
group: NCCL between GPUs, gloo between CPU processes. Every process (a *rank*) holds a full copy
of the model, draws its own batches and computes gradients on them; DDP averages the gradients
over the ranks during ``backward``, so every copy takes the same optimizer step.

Besides the gradients the ranks must agree on *when to stop*: a Ctrl+C (torchrun passes the
signal it gets on to every rank: SIGINT for Ctrl+C, SIGTERM for ``kill``) lands on the ranks at
different steps, and a rank that left the loop
early would leave the others waiting in the next gradient exchange. :func:`any_rank` is the one
small exchange per step that lets them all stop after the same step. It runs on a gloo group even
when the gradients go through NCCL, so asking it never waits for the GPU.
"""
from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .devices import DeviceError, resolve_device

DEFAULT_TIMEOUT_S = 600  # how long a rank waits for the others before giving up
# torch >= 2.12 renamed DDP's switch for re-sending buffers before every forward pass
_NO_BUFFER_SYNC = {
    "forward_sync_buffers" if "forward_sync_buffers" in
    inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers": False}


class DistributedError(RuntimeError):
    """Training on several processes cannot go on; the message says why in one line."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands among the ranks of one training run."""

    rank: int = 0
    local_rank: int = 0  # rank on this machine: which GPU it uses
    world_size: int = 1
    backend: str = ""  # "nccl" or "gloo"; "" when training in one process
    control: object = field(default=None, compare=False, repr=False)  # gloo group for flags

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, evaluates, samples and writes the checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


SINGLE = DistContext()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"the environment variable {name}={value!r} is not a whole "
                               "number (it is set by torchrun)") from None


def launched_by_torchrun() -> bool:
    return os.environ.get("RANK") is not None and os.environ.get("WORLD_SIZE") is not None


def start(device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) \
        -> tuple[DistContext, torch.device]:
    """Join the ranks torchrun started (or stay alone without torchrun) and pick this rank's
    device: with CUDA, GPU ``LOCAL_RANK`` of this machine."""
    if not launched_by_torchrun() or _env_int("WORLD_SIZE") == 1:
        return SINGLE, resolve_device(device)
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK") or 0
    dev = resolve_device(device)
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(f"rank {rank} wants GPU {local_rank} but this machine has "
                              f"{torch.cuda.device_count()}; start at most that many processes "
                              "per machine (--nproc_per_node)")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise DeviceError(f"training on several processes needs CUDA GPUs or the CPU, not "
                          f"{dev.type!r}; use --device cpu or cuda")
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
        control = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    except (RuntimeError, ValueError) as e:
        raise DistributedError(f"rank {rank} could not join the other {world - 1} process(es) "
                               f"({_first_line(e)})") from None
    return DistContext(rank, local_rank, world, backend, control), dev


def shutdown(ctx: DistContext) -> None:
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def _first_line(e: BaseException) -> str:
    """The gist of a (often long) communication error: its first sentence, without the
    ``[source.cc:123]`` prefix."""
    lines = str(e).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else type(e).__name__
    return text.split(". ")[0].rstrip(".")


def peer_failure(ctx: DistContext, e: BaseException) -> DistributedError:
    """The message for a failed exchange with the other ranks (one of them died or hung)."""
    return DistributedError(
        f"rank {ctx.rank}: the exchange with the other training processes failed, so this one "
        f"stops too: another rank has probably crashed, been killed or timed out "
        f"({_first_line(e)})")


def is_exchange_error(e: BaseException) -> bool:
    """Whether an exception came from the communication between ranks."""
    if isinstance(e, dist.DistError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("gloo", "Gloo", "NCCL", "Connection closed", "Connection reset",
                            "Broken pipe", "timed out", "Timed out"))


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one of them."""
    if not ctx.is_distributed:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=ctx.control)
    return bool(t.item())


def gather_states(ctx: DistContext, state: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``state`` (a uint8 tensor of the same size on each rank, e.g. a random
    generator's state), in rank order, on every rank."""
    if not ctx.is_distributed:
        return [state]
    out = [torch.empty_like(state) for _ in range(ctx.world_size)]
    dist.all_gather(out, state, group=ctx.control)
    return out


def micro_batch_size(batch_size: int, world_size: int, grad_accum: int) -> int:
    """Sequences per forward pass on each rank so that one optimizer step sees ``batch_size``
    sequences in all (the global batch), whatever the number of ranks."""
    parts = world_size * grad_accum
    if batch_size % parts:
        raise DistributedError(
            f"the batch of {batch_size} sequences does not split evenly over {world_size} "
            f"process(es) × {grad_accum} accumulation step(s); use a batch that is a multiple "
            f"of {parts}")
    return batch_size // parts


def wrap(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """The model as DDP sees it. Buffers (masks, rotary tables) are computed, not learned, so
    they are not re-broadcast before every forward pass."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, **_NO_BUFFER_SYNC)


@contextlib.contextmanager
def stop_on_sigterm(control, ctx: DistContext):
    """A ``kill`` of torchrun reaches the ranks as SIGTERM (and SIGKILL 30 s later): the first
    one stops training after the current step on every rank, with a checkpoint, as Ctrl+C
    (SIGINT, handled in :mod:`model.train_gpt`) does. Only for ranks of a torchrun job, in the
    main thread."""
    if not ctx.is_distributed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, previous)
        if ctx.is_main:
            print("stopping after this step on every rank and saving", file=sys.stderr)
        control.stop()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["DEFAULT_TIMEOUT_S", "DistributedError", "DistContext", "SINGLE",
           "launched_by_torchrun", "start", "shutdown", "peer_failure", "is_exchange_error",
           "any_rank", "gather_states", "micro_batch_size", "wrap", "stop_on_sigterm"]
