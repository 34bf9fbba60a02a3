"""Training on several processes (torchrun + DDP over gloo on the CPU) and gradient accumulation.

The multi-process tests run the real command line under ``python -m torch.distributed.run`` on
127.0.0.1 with a free port, one torch thread per rank, and a timeout so nothing can hang.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model import distributed
from model.__main__ import main
from model.checkpoints import load_checkpoint, read_metadata
from model.config import ModelConfig, TrainConfig
from model.corpora import Corpus, load_corpus
from model.train_gpt import train_gpt
from model.trainer import Callbacks, Trainer
from model.transformer import GPT

ROOT = Path(__file__).resolve().parents[2]
TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog {i * 7 % 13}.\n"
               for i in range(300))
SEED = 1337
BLOCK = 16
SHAPE = ["--layers", "1", "--heads", "2", "--embd", "16", "--block", str(BLOCK)]
QUIET = ["--eval-iters", "1", "--sample-interval", "100000", "--amp", "off", "--quiet",
         "--device", "cpu", "--seed", str(SEED)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_cmd(nproc: int, port: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "model", "train",
            *args]


def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), TE_CPU_BF16="0")
    e.pop("RANK", None)
    return e


def torchrun(nproc: int, args: list[str], timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_cmd(nproc, free_port(), args), cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("ddp") / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def two_rank_run(corpus_file, tmp_path_factory):
    """3 optimizer steps on 2 ranks, global batch 8 (4 sequences per rank)."""
    out = tmp_path_factory.mktemp("ddp") / "two.safetensors"
    r = torchrun(2, ["--corpus", str(corpus_file), "--out", str(out), *SHAPE, "--batch", "8",
                     "--steps", "3", "--eval-interval", "100000", *QUIET])
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r


class StepRecorder(Callbacks):
    def __init__(self):
        self.steps = []

    def on_step(self, m):
        self.steps.append((m.loss, m.grad_norm))


def cli_model_and_config(corpus: Corpus, steps: int, batch: int) -> tuple[ModelConfig,
                                                                          TrainConfig]:
    """The model and training configuration the command line builds from SHAPE and QUIET."""
    mcfg = ModelConfig(vocab_size=corpus.vocab_size, block_size=BLOCK, n_layer=1, n_head=2,
                       n_embd=16, pos_kind="learned")
    tcfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, min_lr=1e-4,
                       warmup_steps=max(1, steps // 20), eval_interval=100000, eval_iters=1,
                       sample_interval=100000, seed=SEED, device="cpu", amp="off")
    return mcfg, tcfg


@pytest.mark.parametrize("accum", [1, 2])
def test_two_ranks_with_half_batches_equal_one_rank_with_the_whole_batch(two_rank_run,
                                                                          corpus_file, tmp_path,
                                                                          accum):
    if accum == 1:
        out, _ = two_rank_run
    else:  # each rank: 2 micro-batches of 2, the first without the gradient exchange (no_sync)
        out = tmp_path / "accum.safetensors"
        r = torchrun(2, ["--corpus", str(corpus_file), "--out", str(out), *SHAPE, "--batch",
                         "8", "--grad-accum", "2", "--steps", "3", "--eval-interval", "100000",
                         *QUIET])
        assert r.returncode == 0, r.stdout + r.stderr
    corpus = load_corpus(corpus_file, block_size=BLOCK)
    mcfg, tcfg = cli_model_and_config(corpus, steps=3, batch=8)
    # one process sees what the two ranks saw together: rank r's stream (seed + r), 4 rows each
    # (two draws of 2 rows from a generator are its one draw of 4)
    gens = [torch.Generator().manual_seed(SEED + r) for r in range(2)]

    def get_batch(split):
        parts = [corpus.get_batch(split, 4, BLOCK, generator=g) for g in gens]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    fixed = corpus.get_batch("val", 2, BLOCK, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(SEED)  # the same initial weights as train_gpt
    model = GPT(mcfg)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, tcfg, get_batch, eval_get_batch=lambda split, i: fixed).run()
    ddp = load_checkpoint(out).model.state_dict()
    ref = model.state_dict()
    assert read_metadata(out)["summary"]["steps"] == 3
    moved = 0.0
    for name, w in ref.items():
        torch.testing.assert_close(ddp[name], w, rtol=0, atol=1e-5, msg=name)
        moved = max(moved, float((w - start[name]).abs().max()))
    assert moved > 1e-4  # the weights really changed in those steps


def test_only_rank_zero_reports(two_rank_run):
    _, r = two_rank_run
    assert r.stdout.count("done: step 3") == 1


def test_accumulating_two_micro_batches_equals_one_batch_twice_as_large(corpus_file, tmp_path):
    corpus = load_corpus(corpus_file, block_size=BLOCK)
    weights, steps = [], []
    for accum in (1, 2):
        mcfg, tcfg = cli_model_and_config(corpus, steps=4, batch=8)
        tcfg = TrainConfig(**{**tcfg.to_dict(), "grad_accum": accum})
        out = tmp_path / f"accum{accum}.safetensors"
        rec = StepRecorder()
        assert train_gpt(corpus, mcfg, tcfg, out, rec).ok
        weights.append(load_checkpoint(out).model.state_dict())
        steps.append(torch.tensor(rec.steps, dtype=torch.float64))
    for name, w in weights[0].items():
        torch.testing.assert_close(weights[1][name], w, rtol=0, atol=1e-5, msg=name)
    # AdamW hides a gradient off by a constant factor from the weights; the norm shows it
    torch.testing.assert_close(steps[1], steps[0], rtol=1e-5, atol=0)


def test_a_two_rank_checkpoint_resumes_on_one_process(two_rank_run, corpus_file, tmp_path,
                                                      capsys):
    out, _ = two_rank_run
    more = tmp_path / "more.safetensors"
    rc = main(["train", "--corpus", str(corpus_file), "--out", str(more), "--resume", str(out),
               "--steps", "6", "--batch", "8", "--eval-interval", "100000", *QUIET])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    ck = load_checkpoint(more)
    assert ck.steps == 6 and ck.summary["resumed_from_step"] == 3
    assert "world_size" not in ck.summary  # this save came from one process


def test_batch_that_does_not_split_over_the_ranks_is_one_clear_error(corpus_file, tmp_path,
                                                                     capsys):
    rc = main(["train", "--corpus", str(corpus_file), "--out", str(tmp_path / "x.safetensors"),
               *SHAPE, "--batch", "6", "--grad-accum", "4", "--steps", "2", *QUIET])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "batch" in err[0] and "multiple of" in err[0]


def test_micro_batch_size_splits_the_global_batch():
    assert distributed.micro_batch_size(12, 2, 3) == 2
    with pytest.raises(distributed.DistributedError, match="multiple of 8"):
        distributed.micro_batch_size(12, 2, 4)


def _rank_pid(port: int, rank: int) -> int | None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        wanted = {f"MASTER_PORT={port}", f"RANK={rank}", f"LOCAL_RANK={rank}"}
        if wanted <= {v.decode(errors="replace") for v in environ}:
            return int(pid)
    return None


def _start_long_run(corpus_file, out: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    args = ["--corpus", str(corpus_file), "--out", str(out), *SHAPE, "--batch", "4",
            "--steps", "1000000", "--eval-interval", "1000000", "--checkpoint-interval", "20",
            *QUIET]
    p = subprocess.Popen(torchrun_cmd(2, port, args), cwd=ROOT, env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not out.exists():
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise AssertionError("no checkpoint appeared: " + "".join(p.communicate()))
        time.sleep(0.2)
    return p, port


def test_a_killed_rank_stops_the_other_with_a_message_and_keeps_the_checkpoint(corpus_file,
                                                                                tmp_path):
    out = tmp_path / "killed.safetensors"
    p, port = _start_long_run(corpus_file, out)
    try:
        pid = _rank_pid(port, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0
    assert "error: rank 0: the exchange with the other training processes failed" in stderr
    ck = load_checkpoint(out)  # the last checkpoint is whole
    assert ck.steps > 0 and ck.steps % 20 == 0


def test_ctrl_c_stops_every_rank_and_saves(corpus_file, tmp_path):
    out = tmp_path / "stopped.safetensors"
    p, _ = _start_long_run(corpus_file, out)
    try:
        first = read_metadata(out)["summary"]["steps"]
        p.send_signal(signal.SIGINT)  # what a Ctrl+C in the terminal does to torchrun
        stdout, stderr = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert stdout.count("done: step") == 1, stdout + stderr  # rank 0 finished and saved
    ck = load_checkpoint(out)
    assert ck.steps >= first and ck.summary["world_size"] == 2
