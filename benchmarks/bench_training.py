"""Training in the GUI vs headless: tokens/s, event-loop lateness and loss-curve refresh rate.

Runs the same configuration (the training panel's own plan for a preset on a synthetic task)
twice per torch thread count, in one process:

* headless: :func:`model.train_gpt.train_gpt` called directly in the main thread, no Qt;
* GUI: the :class:`explorer.panels.training.panel.TrainingPanel` (offscreen, 1000 × 750) training in
  its QThread while a 10 ms ``QTimer`` measures how late the GUI's event loop runs.

Prints one JSON object. Targets (issue 5, not asserted): GUI tokens/s ≥ 0.95 × headless,
event-loop lateness p99 ≤ 30 ms, loss curve redrawn at least twice a second.

    python benchmarks/bench_training.py            # 600 steps, threads 1 and 2, 2 rounds
    python benchmarks/bench_training.py --quick    # 200 steps, threads 1, 1 round
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short run: 200 steps, 1 thread, 1 round")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--task", default="copy")
    p.add_argument("--preset", default="tiny", choices=("tiny", "small", "medium"))
    p.add_argument("--threads", type=int, nargs="+", default=None)
    p.add_argument("--rounds", type=int, default=None)
    return p.parse_args(argv)


def percentile(a, q) -> float:
    return float(np.percentile(np.asarray(a, dtype=float), q)) if len(a) else float("nan")


def main(argv=None) -> int:
    a = parse_args(argv)
    steps = a.steps or (200 if a.quick else 600)
    threads = a.threads or ([1] if a.quick else [1, 2])
    rounds = a.rounds or (1 if a.quick else 2)

    import torch
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QObject, Qt, QTimer, Slot
    from PySide6.QtWidgets import QApplication

    from explorer.panels.training.panel import TrainingPanel
    from explorer.session import Session
    from explorer.theme import apply_theme
    from explorer.training_worker import training_threads
    from model.train_gpt import train_gpt

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
    session = Session(device="cpu")
    panel = TrainingPanel(session, runs_dir=tmp)
    panel.resize(1000, 750)
    panel.show()
    f = panel.form
    f.set_source(f"task:{a.task}")
    f.preset.setCurrentIndex(f.preset.findData(a.preset))
    f.steps.setValue(steps)
    f.device.setCurrentIndex(f.device.findData("cpu") if f.device.findData("cpu") >= 0 else 0)
    f.cancel_measurement()
    spec = panel.planner.plan(f.values()).spec
    tokens_per_step = spec.train_cfg.batch_size * spec.model_cfg.block_size

    class Probe(QObject):
        """10 ms timer; lateness = interval between ticks minus 10 ms."""

        def __init__(self):
            super().__init__()
            self.clock = QElapsedTimer()
            self.timer = QTimer(self)
            self.timer.setTimerType(Qt.TimerType.PreciseTimer)
            self.timer.setInterval(10)
            self.timer.timeout.connect(self.tick)
            self.late: list[float] = []
            self.last = None

        def start(self):
            self.late.clear()
            self.clock.start()
            self.last = self.clock.nsecsElapsed()
            self.timer.start()

        @Slot()
        def tick(self):
            now = self.clock.nsecsElapsed()
            self.late.append(max(0.0, (now - self.last) / 1e6 - 10.0))
            self.last = now

        def stop(self):
            self.timer.stop()

    class Waiter(QObject):
        def __init__(self):
            super().__init__()
            self.loop = QEventLoop()

        @Slot(object)
        def done(self, _result):
            self.loop.quit()

    probe = Probe()
    waiter = Waiter()
    panel.run_finished.connect(waiter.done)

    def headless(n_threads: int) -> dict:
        torch.set_num_threads(n_threads)
        t0 = time.perf_counter()
        r = train_gpt(spec.corpus, spec.model_cfg, spec.train_cfg, tmp / "headless.safetensors")
        wall = time.perf_counter() - t0
        return {"tokens_per_s": steps * tokens_per_step / r.elapsed, "train_s": r.elapsed,
                "wall_s": wall, "final_loss": r.train_loss}

    def gui(n_threads: int) -> dict:
        panel.form.cancel_measurement()
        import explorer.training_worker as tw

        original = tw.training_threads
        tw.training_threads = lambda: n_threads  # the worker reads it when the run starts
        try:
            probe.start()
            t0 = time.perf_counter()
            cpu0 = time.thread_time()  # CPU time of the GUI thread alone
            assert panel.start(), panel.form.error.text()
            waiter.loop.exec()
            wall = time.perf_counter() - t0
            gui_cpu = time.thread_time() - cpu0
            probe.stop()
        finally:
            tw.training_threads = original
        lv = panel.loss_view
        times = np.asarray(lv.redraw_times, dtype=float)
        times = times[(times >= t0) & (times <= t0 + wall)]
        per_s = np.histogram(times, bins=np.arange(t0, t0 + wall, 1.0))[0] if wall > 2 else []
        r = panel.result
        return {"tokens_per_s": steps * tokens_per_step / panel.elapsed,
                "train_s": panel.elapsed, "wall_s": wall, "final_loss": r.train_loss,
                "gui_thread_cpu_share": gui_cpu / wall,
                "lateness_ms": {"p50": percentile(probe.late, 50),
                                "p99": percentile(probe.late, 99),
                                "max": float(max(probe.late)) if probe.late else float("nan")},
                "loss_redraws_per_s": {"mean": float(len(times) / wall),
                                       "min_in_any_second": int(min(per_s)) if len(per_s) else 0}}

    out = {"load_average": os.getloadavg(), "steps": steps, "preset": a.preset, "task": a.task, "n_params":
           spec.model_cfg.n_params(), "tokens_per_step": tokens_per_step,
           "cpu_count": os.cpu_count(), "default_training_threads": training_threads(),
           "runs": []}
    for rnd in range(rounds):
        for n in threads:
            # alternate the order so a change in the machine's load does not favour one side
            if rnd % 2 == 0:
                h = headless(n)
                g = gui(n)
            else:
                g = gui(n)
                h = headless(n)
            out["runs"].append({"round": rnd, "threads": n, "headless": h, "gui": g,
                                "ratio": g["tokens_per_s"] / h["tokens_per_s"]})
    summary = {}
    for n in threads:
        rs = [r for r in out["runs"] if r["threads"] == n]
        summary[str(n)] = {
            "headless_tokens_per_s": float(np.median([r["headless"]["tokens_per_s"] for r in rs])),
            "gui_tokens_per_s": float(np.median([r["gui"]["tokens_per_s"] for r in rs])),
            "ratio_median": float(np.median([r["ratio"] for r in rs])),
            "lateness_p99_ms": float(np.median([r["gui"]["lateness_ms"]["p99"] for r in rs])),
            "gui_thread_cpu_share": float(np.median([r["gui"]["gui_thread_cpu_share"]
                                                     for r in rs])),
            "loss_redraws_per_s_min": min(r["gui"]["loss_redraws_per_s"]["mean"] for r in rs)}
    out["summary"] = summary
    panel.shutdown(2000)
    session.close()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
