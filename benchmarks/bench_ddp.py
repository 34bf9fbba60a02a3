"""Training on several processes (torchrun + DDP) vs one process with several threads.

Each arm runs the real command line (``python -m model train``, under
``python -m torch.distributed.run`` for more than one process) on the same corpus with the same
global batch and steps, and reads the training time the checkpoint records (``elapsed_s``: the
training loop only, without start-up, the first evaluation or the final save). tokens/s =
steps × global batch × block / elapsed_s, summed over ranks by construction.

Arms on the CPU (default): 1 process × 1 thread (the reference), 1 process × N threads, and N
processes × 1 thread (gloo), N = ``--procs`` (default 2, the cores of the project's laptop).
With ``--device cuda``: one process with bf16 autocast off and on (the measurement that decides
the Trainer's default for CUDA), and, with two or more GPUs, N processes (NCCL) with it off.

Prints one JSON object; nothing is asserted.

    python benchmarks/bench_ddp.py                 # nanoGPT's CPU configuration, 150 steps
    python benchmarks/bench_ddp.py --quick         # 40 steps
    python benchmarks/bench_ddp.py --device cuda --steps 300 --embd 384 --layers 6 --block 256
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="40 steps")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--procs", type=int, default=2, help="processes (and threads) to compare")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=128)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--batch", type=int, default=12, help="global batch (split over processes)")
    p.add_argument("--amp", default="auto", choices=("auto", "on", "off"),
                   help="bf16 autocast for the CPU arms (auto: the Trainer's default)")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_arm(a, corpus: Path, out: Path, procs: int, threads: int, amp: str) -> dict:
    steps = a.steps or (40 if a.quick else 150)
    args = ["train", "--corpus", str(corpus), "--out", str(out), "--layers", str(a.layers),
            "--heads", str(a.heads), "--embd", str(a.embd), "--block", str(a.block),
            "--batch", str(a.batch), "--steps", str(steps), "--eval-interval", str(steps * 10),
            "--eval-iters", "1", "--sample-interval", str(steps * 10), "--quiet",
            "--device", a.device, "--amp", amp, "--threads", str(threads)]
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "model",
               *args]
    else:
        cmd = [sys.executable, "-m", "model", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
    from model.checkpoints import read_metadata

    summary = read_metadata(out)["summary"]
    elapsed = float(summary["elapsed_s"])
    return {"processes": procs, "threads_per_process": threads, "amp": amp, "steps": steps,
            "train_s": elapsed, "wall_s": round(wall, 2),
            "tokens_per_s": round(steps * a.batch * a.block / elapsed, 1)}


def main(argv=None) -> int:
    a = parse_args(argv)
    from model.corpora import synthetic_text

    tmp = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    corpus = tmp / "corpus.txt"
    corpus.write_text(synthetic_text("sort", 40_000), encoding="utf-8")  # ~500k characters
    arms: dict[str, dict] = {}
    n = a.procs
    load = [os.getloadavg()[0]]
    if a.device == "cpu":
        plan = {"1p_x_1t": (1, 1, a.amp), f"1p_x_{n}t": (1, n, a.amp),
                f"{n}p_x_1t_ddp": (n, 1, a.amp)}
    else:
        import torch

        plan = {"1gpu_amp_off": (1, 1, "off"), "1gpu_amp_on": (1, 1, "on")}
        if torch.cuda.device_count() >= n:
            plan[f"{n}gpu_ddp_amp_off"] = (n, 1, "off")
    for name, (procs, threads, amp) in plan.items():
        arms[name] = run_arm(a, corpus, tmp / f"{name}.safetensors", procs, threads, amp)
    load.append(os.getloadavg()[0])

    def ratio(x: str, y: str) -> float | None:
        tx, ty = arms[x].get("tokens_per_s"), arms[y].get("tokens_per_s")
        return round(tx / ty, 3) if tx and ty else None

    ratios = ({f"ddp_{n}p_vs_threads_{n}t": ratio(f"{n}p_x_1t_ddp", f"1p_x_{n}t"),
               f"threads_{n}t_vs_1t": ratio(f"1p_x_{n}t", "1p_x_1t"),
               f"ddp_{n}p_vs_1t": ratio(f"{n}p_x_1t_ddp", "1p_x_1t")}
              if a.device == "cpu" else
              {"amp_on_vs_off": ratio("1gpu_amp_on", "1gpu_amp_off")})
    print(json.dumps({
        "benchmark": "ddp", "device": a.device, "quick": a.quick,
        "config": {"layers": a.layers, "heads": a.heads, "embd": a.embd, "block": a.block,
                   "global_batch": a.batch},
        "cpu_count": os.cpu_count(), "loadavg_start_end": load,
        "arms": arms, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
