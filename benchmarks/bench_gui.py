"""GUI speed figures, printed as JSON (measured, not asserted).

    python benchmarks/bench_gui.py [--quick] [--checkpoint FILE]

- ``startup``: ``main.py --startup-probe`` in a subprocess: seconds from launch to the first
  painted window, to the model's first result on screen (prompt and next-token panels), and to
  every panel built (target ≤ 2.5 s).
- ``step_ms``: one step at a full 256-token context on the default model, from the request to
  every panel redrawn and painted, the panels' coalescing timers firing when they are due as
  they do for a user (p50/p95; target p95 ≤ 25 ms), with a step requested every ``pace_ms``
  = 100 ms, as a person pressing Step or Space again and again does (tapping tops out near 6-8
  presses a second). Once the window has painted a result, the worker runs the planned next
  step's pass (``Stepper.lookahead``), so a step that takes the planned token finds its pass
  done. ``worker_ms`` is the model's share (request → result received), ``gui_ms`` the GUI
  thread's (result → painted), ``lookahead_hits`` how many steps found their pass done.
- ``step_held_ms``: the same with a step every ``held_pace_ms`` = 40 ms: Space held down (X11's
  default key auto-repeat is 25 a second). At a full window the pass (~15-25 ms here) plus the
  redraw nearly fill that interval, so this is the figure to watch on a slower machine.
- ``step_cold_ms``: the same steps with the lookahead off and no pause: every step computes
  when asked (at a full window every step slides it and recomputes all 256 positions with
  capture). What a step costs when it cannot be foreseen: a clicked bar (forced token), or a
  request that arrives before the pass ahead is done.
- ``cached_step_ms``, ``cached_step_held_ms``, ``cached_step_cold_ms``: the same three just
  below the block size (the KV-cached path: one new token through the model, one new
  attention row).
- ``rerank_ms``: moving the temperature slider: re-rank from cached logits + redraw + paint
  (target ≤ 16 ms).
- ``lateness_ms``: how late a 10 ms QTimer fires while Run generates continuously (p99 target
  ≤ 30 ms): the GUI's responsiveness while the worker computes.

Runs offscreen (QT_QPA_PLATFORM=offscreen) with a temporary settings file.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_TMP = tempfile.mkdtemp(prefix="bench_gui_")
os.environ["TRANSFORMER_EXPLORER_SETTINGS"] = str(Path(_TMP) / "settings.ini")

TARGETS = {"startup_first_result_s": 2.5, "step_p95_ms": 25.0, "rerank_p95_ms": 16.0,
           "lateness_p99_ms": 30.0}
PACE_MS = 100.0  # a person pressing Step again and again
HELD_PACE_MS = 40.0  # Space held down: X11's default key auto-repeat is 25 per second


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50": round(pct(xs, 50), 2), "p95": round(pct(xs, 95), 2),
            "p99": round(pct(xs, 99), 2), "max": round(max(xs), 2) if xs else None}


def bench_startup(runs: int, checkpoint: str | None, device: str = "cpu") -> dict:
    paint, result, panels, wall = [], [], [], []
    for i in range(runs):
        env = dict(os.environ, TRANSFORMER_EXPLORER_SETTINGS=str(Path(_TMP) / f"s{i}.ini"))
        cmd = [sys.executable, str(ROOT / "main.py"), "--startup-probe", "--no-restore",
               "--device", device]
        if checkpoint:
            cmd += ["--checkpoint", checkpoint]
        env["TRANSFORMER_EXPLORER_LAUNCHED"] = repr(time.time())
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        t_exit = time.perf_counter() - t0
        line = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        if proc.returncode != 0 or not line:
            return {"error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}
        d = json.loads(line[-1])
        # the probe's clock starts in main(); add the interpreter's start-up measured here
        launch = d["launch_s"] if "launch_s" in d else 0.0
        paint.append(d["first_paint_s"] + launch)
        result.append(d["first_result_s"] + launch)
        panels.append(d.get("panels_s", d["first_result_s"]) + launch)
        wall.append(t_exit)
    return {"runs": runs, "first_paint_s": round(statistics.median(paint), 3),
            "first_result_s": round(statistics.median(result), 3),
            "all_panels_s": round(statistics.median(panels), 3),
            "process_wall_s": round(statistics.median(wall), 3)}


class InProcess:
    """A real window (all panels) on the default model, driven from here."""

    def __init__(self, checkpoint: str | None, optional_panels: bool = True,
                 device: str = "cpu"):
        from PySide6.QtWidgets import QApplication

        from explorer.app import default_checkpoint, make_settings, sample_from_settings
        from explorer.main_window import MainWindow
        from explorer.session import Session
        from explorer.theme import apply_theme

        self.app = QApplication.instance() or QApplication([])
        apply_theme(self.app)
        settings = make_settings()
        self.session = Session(device=device, sample=sample_from_settings(settings, seed=0))
        self.session.prompt = ("ROMEO:\nBut soft, what light through yonder window breaks? It is "
                               "the east, and Juliet is the sun.\n")
        self.window = MainWindow(self.session, settings, restore=False,
                                 optional_panels=optional_panels)
        self.window.prompt_panel.set_prompt_text(self.session.prompt, apply=False)
        self.window.show()
        self.session.start(default_checkpoint(settings, checkpoint))
        self.wait(lambda: self.session.result is not None, 60)
        self.settle()

    def wait(self, cond, timeout: float = 30.0) -> None:
        """Run the event loop until ``cond()``. It blocks until an event arrives, as the app's
        own loop does, so a result is handled the moment it is posted (polling with a sleep
        added up to a millisecond to every measured step); a 5 ms timer bounds each block."""
        from PySide6.QtCore import QEventLoop, QTimer

        if cond():
            return
        end = time.perf_counter() + timeout
        tick = QTimer()
        tick.start(5)
        try:
            while not cond():
                if time.perf_counter() > end:
                    raise TimeoutError("benchmark: condition not met")
                self.app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
        finally:
            tick.stop()

    def flush_redraws(self) -> None:
        """Fire every pending panel redraw timer now (explorer.redraws), then paint."""
        from explorer import redraws

        timers = redraws.timers()
        for _ in range(3):
            fired = False
            for t in timers:
                if t.isActive():
                    t.stop()
                    t.timeout.emit()
                    fired = True
            self.app.processEvents()
            if not fired:
                break

    def redraws_done(self) -> None:
        """Let the event loop run, the panels' coalescing timers firing when they are due (as
        they would for a user), until none is pending; then paint. What a step costs the user
        includes any frame-pacing delay before a panel redraws."""
        from explorer import redraws

        self.app.processEvents()
        self.wait(lambda: not redraws.pending())  # the panels' own registry of redraw timers
        self.app.processEvents()  # the paints the redraws asked for

    def settle(self) -> None:
        self.flush_redraws()
        self.wait(lambda: not self.session.busy and self.session.worker.pending == 0)
        self.flush_redraws()

    def fill_context(self, length: int | None = None) -> None:
        """A prompt of ``length`` tokens (default: the block, so the window is full after one
        forward pass and every further step slides it)."""
        s = self.session
        block = length or s.config.block_size
        text = (self.session.prompt * (block // max(1, len(self.session.prompt)) + 2))[:block]
        got = s.results_received
        self.window.prompt_panel.set_prompt_text(text)
        self.wait(lambda: s.results_received > got, 60)
        self.settle()

    def step_times(self, n: int, pace_ms: float = 0.0, lookahead: bool = True
                   ) -> tuple[list[float], list[float], list[float]]:
        """``n`` steps, each requested ``pace_ms`` after the previous request (or right after
        it is painted, if later); with ``lookahead`` False the worker never runs ahead."""
        s = self.session
        s.worker.lookahead_enabled = lookahead
        total, gui, worker = [], [], []
        t_next = time.perf_counter()
        for _ in range(n):
            while time.perf_counter() < t_next:  # the user's pause: the event loop runs
                self.app.processEvents()
                time.sleep(0.0005)
            got = s.results_received
            t0 = time.perf_counter()
            t_next = t0 + pace_ms / 1000
            s.step()
            self.wait(lambda got=got: s.results_received > got)
            t1 = time.perf_counter()
            self.redraws_done()
            t2 = time.perf_counter()
            total.append((t2 - t0) * 1000)
            gui.append((t2 - t1) * 1000)
            worker.append((t1 - t0) * 1000)
        s.worker.lookahead_enabled = True
        return total, gui, worker

    def rerank_times(self, n: int) -> list[float]:
        c = self.window.distribution_panel.controls
        out = []
        for i in range(n):
            v = 10 + (i * 7) % 40
            t0 = time.perf_counter()
            c.temp_slider.setValue(v)
            self.window.distribution_panel.flush()
            self.app.processEvents()  # paints the dirty widgets
            out.append((time.perf_counter() - t0) * 1000)
            self.settle()  # let the worker's confirmation land before the next move
        c.temp_slider.setValue(16)
        self.settle()
        return out

    def lateness(self, seconds: float) -> list[float]:
        from PySide6.QtCore import QTimer

        s = self.session
        late: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            late.append(max(0.0, (now - last[0]) * 1000 - 10.0))
            last[0] = now

        timer = QTimer()
        timer.setTimerType(timer.timerType().PreciseTimer)
        timer.setInterval(10)
        timer.timeout.connect(tick)
        s.run(100000, 0)
        last[0] = time.perf_counter()
        timer.start()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.app.processEvents()
            time.sleep(0.0005)
        timer.stop()
        s.stop()
        self.settle()
        return late[1:]

    def close(self) -> None:
        self.window.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    p.add_argument("--checkpoint", help="model file (default: the app's default model)")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up subprocess runs")
    p.add_argument("--device", default="cpu", help="device for the in-process figures")
    p.add_argument("--lookahead-delay", type=int, default=None, metavar="MS",
                   help="most ms the worker waits for the GUI's paint before it runs ahead")
    p.add_argument("--core-panels", action="store_true",
                   help="only the prompt and next-token panels (to see what the others cost)")
    args = p.parse_args(argv)
    quick = args.quick
    out: dict = {"quick": quick, "targets": TARGETS}
    if not args.no_startup:
        out["startup"] = bench_startup(1 if quick else 3, args.checkpoint, args.device)
    b = InProcess(args.checkpoint, optional_panels=not args.core_panels, device=args.device)
    try:
        s = b.session
        if args.lookahead_delay is not None:
            s.worker.lookahead_delay_ms = args.lookahead_delay
        out["lookahead_delay_ms"] = s.worker.lookahead_delay_ms
        out["model"] = {"name": s.info.name, "params": s.info.n_params, "device": s.device,
                        "block_size": s.config.block_size, "trained": s.info.trained,
                        "panels": sorted(b.window.docks)}
        n_steps = 8 if quick else 40
        out["pace_ms"] = PACE_MS
        out["held_pace_ms"] = HELD_PACE_MS
        # below the block size a step goes through the KV cache and appends one row
        for prefix, length in (("cached_", s.config.block_size - n_steps - 1), ("", None)):
            for suffix, pace, ahead in (("", PACE_MS, True), ("_held", HELD_PACE_MS, True),
                                        ("_cold", 0.0, False)):
                b.fill_context(length)  # each set of steps from the same context
                out[f"{prefix}context_tokens"] = s.result.T
                hits = s.worker.lookahead_hits
                total, gui, worker = b.step_times(n_steps, pace, ahead)
                out[f"{prefix}step{suffix}_ms"] = summary(total)
                out[f"{prefix}worker{suffix}_ms"] = summary(worker)  # request → result received
                out[f"{prefix}gui{suffix}_ms"] = summary(gui)  # result → every panel painted
                out[f"{prefix}lookahead_hits{suffix}"] = s.worker.lookahead_hits - hits
        out["rerank_ms"] = summary(b.rerank_times(8 if quick else 40))
        out["lateness_ms"] = summary(b.lateness(1.0 if quick else 4.0))
        out["run_steps_per_s"] = None
        n0, t0 = s.worker.steps_done, time.perf_counter()
        s.run(20 if quick else 100, 0)
        b.wait(lambda: not s.running, 120)
        out["run_steps_per_s"] = round((s.worker.steps_done - n0) / (time.perf_counter() - t0), 1)
    finally:
        b.close()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
