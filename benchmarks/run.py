"""Run every benchmark and print ONE JSON document with every figure (see benchmarks/README.md).

    python benchmarks/run.py [--quick] [--only model,gui,panels,training,gpt2,ablation,ddp]
                             [--skip-gui] [--device cpu|cuda] [--out FILE] [--timeout S]

Each benchmark script runs in its own subprocess (``sys.executable benchmarks/bench_X.py``,
``QT_QPA_PLATFORM=offscreen``) so that Qt and torch state (threads, allocator, autocast, an
open QApplication) never leaks from one into the next; its JSON is read from its stdout and kept
whole under ``benchmarks``. ``figures`` collects the headline numbers: each has its raw
``value`` and, where the benchmark measured one in the same run, a ``reference`` and the
``ratio`` between them, plus the ``target`` and whether it is met. A benchmark that fails or
times out appears as ``{"error": ..., "stderr_tail": ...}`` and its figures as errors; the
document is still valid JSON and the exit status 0. Exit status 2: bad options; 1: the document
could not be written to ``--out``.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from headline_figures import collect_figures, device_notes  # noqa: E402

#: name -> (script, needs Qt, takes --device); run in this order
BENCHES = {
    "model": ("bench_model.py", False, True),
    "panels": ("bench_panels.py", True, False),
    "gui": ("bench_gui.py", True, True),
    "training": ("bench_training.py", True, False),
    "gpt2": ("bench_gpt2.py", True, False),
    "ablation": ("bench_ablation.py", True, False),
    "ddp": ("bench_ddp.py", False, True),
}
#: run only when named in --only: each takes minutes (bench_gpt2 first writes a 500 MB random
#: GPT-2-small folder), which the quick run (under a minute) cannot afford. Their documents are
#: kept whole under ``benchmarks``; the headline figures come from the four above.
OPT_IN = ("gpt2", "ablation", "ddp")
# the quick training run: 100 steps instead of bench_training's 200 keeps the whole quick run
# under a minute on a 2-core machine (lateness still gets a few hundred timer ticks)
QUICK_EXTRA = {"training": ["--steps", "100"]}
# what start-up cannot avoid: the interpreter and the libraries the app imports
IMPORT_FLOOR = "import torch, numpy, safetensors, PySide6.QtWidgets, pyqtgraph"


# -- machine ---------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass
    return None


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: str) -> dict:
    """Importing torch costs seconds, so only the CUDA case does (for the GPU's name)."""
    info = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gb": _mem_total_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "pyside6": _version("PySide6-Essentials") or _version("PySide6"),
        "device": device,
        "gpu": None,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": _load(),
    }
    if device == "cuda":
        try:
            import torch

            info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except Exception as e:  # a broken install: the bench_model child reports the details
            info["gpu"] = f"unknown ({e})"
    return info


# -- children ----------------------------------------------------------------------------------
def parse_json(stdout: str) -> dict:
    """The last JSON object in ``stdout`` that starts at the beginning of a line (a child may
    print a warning before its document)."""
    dec = json.JSONDecoder()
    found, i = None, 0
    while i < len(stdout):
        if stdout[i] == "{" and (i == 0 or stdout[i - 1] == "\n"):
            try:
                obj, end = dec.raw_decode(stdout, i)
            except json.JSONDecodeError:
                i += 1
                continue
            if isinstance(obj, dict):
                found = obj
            i = end
        else:
            i += 1
    if found is None:
        raise ValueError("no JSON object in its output")
    return found


def finite(x):
    """``x`` with NaN and infinities as None: strict JSON has neither (a child may print them)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def child_env() -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in
                                                       env.get("PYTHONPATH", "").split(os.pathsep)
                                                       if p])
    return env


def run_child(cmd: list[str], timeout: float) -> dict:
    """Run one benchmark; its JSON document, or ``{"error", "stderr_tail", ...}``."""
    t0 = time.perf_counter()
    try:
        # its own session: on a timeout the whole group goes (bench_model starts a child too)
        p = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, errors="replace",
                             start_new_session=hasattr(os, "killpg"))
    except OSError as e:
        return {"error": f"could not start: {e}", "returncode": None, "stderr_tail": "",
                "elapsed_s": 0.0}
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            os.killpg(p.pid, signal.SIGKILL)
        else:
            p.kill()
        out, err = p.communicate()
        return {"error": f"timed out after {timeout:g} s", "returncode": None,
                "stderr_tail": (err or "")[-2000:], "elapsed_s": round(timeout, 1)}
    elapsed = round(time.perf_counter() - t0, 1)
    if p.returncode != 0:
        return {"error": f"exit status {p.returncode}", "returncode": p.returncode,
                "stderr_tail": (err or out)[-2000:], "elapsed_s": elapsed}
    try:
        doc = finite(parse_json(out))
    except ValueError as e:
        return {"error": str(e), "returncode": 0,
                "stderr_tail": (err + out)[-2000:], "elapsed_s": elapsed}
    doc.setdefault("elapsed_s", elapsed)
    doc["runner_elapsed_s"] = elapsed
    return doc


def bench_command(name: str, quick: bool, device: str) -> list[str]:
    script, _, takes_device = BENCHES[name]
    cmd = [sys.executable, str(HERE / script)]
    if quick:
        cmd += ["--quick"] + QUICK_EXTRA.get(name, [])
    if takes_device:
        cmd += ["--device", device]
    return cmd


def import_floor(runs: int, timeout: float) -> dict:
    """Wall seconds of a fresh interpreter importing what the app imports (start-up's floor)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        try:
            p = subprocess.run([sys.executable, "-c", IMPORT_FLOOR], cwd=ROOT, env=child_env(),
                               capture_output=True, text=True, timeout=timeout)
        except (subprocess.TimeoutExpired, OSError) as e:
            return {"error": str(e)}
        if p.returncode != 0:
            return {"error": f"exit status {p.returncode}", "stderr_tail": p.stderr[-2000:]}
        times.append(time.perf_counter() - t0)
    return {"runs": runs, "command": IMPORT_FLOOR, "import_s": round(statistics.median(times), 3)}


# -- main --------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="every benchmark quick (< 60 s in all)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)} "
                                  f"(default: all but {', '.join(OPT_IN)})")
    p.add_argument("--skip-gui", action="store_true",
                   help="leave out the benchmarks that need Qt (panels, gui, training)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="passed to the benchmarks that take it (model, gui)")
    p.add_argument("--out", type=Path, help="also write the JSON document to this file")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds allowed per benchmark (default 180 quick, 1800 full)")
    a = p.parse_args(argv)
    names = [n for n in BENCHES if n not in OPT_IN]
    if a.only:
        names = [n.strip().removeprefix("bench_") for n in a.only.split(",") if n.strip()]
        bad = [n for n in names if n not in BENCHES]
        if bad or not names:
            p.error(f"--only: unknown benchmark {', '.join(bad) or '(none)'}; "
                    f"choose from {', '.join(BENCHES)}")
    a.names = names
    a.timeout = a.timeout or (180.0 if a.quick else 1800.0)
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    t0 = time.perf_counter()
    doc: dict = {"benchmark": "run", "quick": a.quick, "device": a.device,
                 "options": {"only": a.names, "skip_gui": a.skip_gui, "timeout_s": a.timeout},
                 "machine": machine_info(a.device)}
    results: dict = {}
    for name in BENCHES:
        _, needs_qt, _ = BENCHES[name]
        if name not in a.names:
            results[name] = {"skipped": "not in --only" + (" (run only when named)"
                                                           if name in OPT_IN else "")}
        elif needs_qt and a.skip_gui:
            results[name] = {"skipped": "--skip-gui"}
        else:
            print(f"[run.py] bench_{name} ...", file=sys.stderr, flush=True)
            results[name] = run_child(bench_command(name, a.quick, a.device), a.timeout)
            print(f"[run.py] bench_{name}: {results[name].get('error', 'ok')} "
                  f"({results[name].get('runner_elapsed_s', results[name].get('elapsed_s'))} s)",
                  file=sys.stderr, flush=True)
    floor: dict = {"skipped": "bench_gui not run"}
    if "error" not in results["gui"] and "skipped" not in results["gui"]:
        floor = import_floor(1 if a.quick else 3, a.timeout)
    doc["figures"] = collect_figures(results, floor)
    doc["import_floor"] = floor
    doc["benchmarks"] = {f"bench_{k}": v for k, v in results.items()}
    doc["failed"] = [f"bench_{k}" for k, v in results.items() if "error" in v]
    doc["machine"]["load_average_end"] = _load()
    m = results["model"]
    if a.device == "cuda" and "device_name" in m:
        doc["machine"]["gpu"] = m["device_name"]
    doc["notes"] = device_notes(a.device, results)
    doc["elapsed_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(finite(doc), indent=2, ensure_ascii=False, allow_nan=False, default=str)
    print(text, flush=True)
    if a.out is not None:
        try:
            a.out.write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            print(f"run.py: cannot write {a.out}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
