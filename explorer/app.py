"""Start the explorer: command-line options, the QApplication, the Session and the MainWindow.

Start-up is arranged so the window paints quickly: nothing torch-related is imported before the
first paint (torch takes ≈1.5 s to import). Then the inference worker imports torch and loads the
first model while the GUI thread stays free; the panels whose modules import torch are built
after the model's first result is on screen. (Importing torch in a thread *during* Qt's start-up
was tried: on a 2-core machine the two imports share the GIL, so the first paint came a second
later and the first result no sooner.) ``--startup-probe`` prints when the window first painted and when the
model's first result was on screen, then exits (used by benchmarks/bench_gui.py).

Settings live in QSettings (organisation "TransformerExplorer"). Set the environment variable
``TRANSFORMER_EXPLORER_SETTINGS`` to an .ini path to use another file (tests do, so they never
touch the user's settings).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from model.config import ConfigError, SampleConfig

SETTINGS_ENV = "TRANSFORMER_EXPLORER_SETTINGS"
LAUNCH_ENV = "TRANSFORMER_EXPLORER_LAUNCHED"  # epoch seconds when a benchmark launched us
ORG = "TransformerExplorer"
APP = "Transformer Explorer"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="transformer-explorer",
                                description="See a GPT-style transformer think.")
    p.add_argument("--checkpoint", metavar="FILE|FOLDER|NAME",
                   help="the model to open: a Transformer Explorer .safetensors file, or the "
                        "name of a model that ships with the package (shakespeare_char, "
                        "induction); a Hugging Face GPT-2-family folder (config.json, "
                        "model.safetensors or pytorch_model.bin, tokenizer.json or vocab.json + "
                        "merges.txt); a nanoGPT ckpt.pt (or its folder, with meta.pkl or a GPT-2 "
                        "tokenizer beside it); or a model name such as gpt2 found in the local "
                        "Hugging Face cache (never downloaded). Default: shakespeare_char")
    p.add_argument("--prompt", metavar="TEXT", help="start with this prompt")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the last one used, "
                                                  "else auto)")
    p.add_argument("--seed", type=int, default=None, help="fixed sampling seed (repeatable text)")
    p.add_argument("--screenshot", metavar="FILE.png",
                   help="open the window, type the prompt, perform --steps steps, save a PNG of "
                        "the whole window and exit (works with QT_QPA_PLATFORM=offscreen)")
    p.add_argument("--steps", type=int, default=10, help="steps before --screenshot (default 10; "
                                                         "none for an encoder)")
    p.add_argument("--mask", metavar="P,…", default="",
                   help="an encoder (BERT-style): hide the tokens at these positions (from 0) "
                        "behind [MASK], as a click on their chips does; the last one's "
                        "prediction is shown")
    p.add_argument("--causal-mask", action="store_true",
                   help="an encoder (BERT-style): show its input under a causal mask, as GPT "
                        "sees it, to compare")
    p.add_argument("--show", metavar="PANEL", default=None,
                   help="with --screenshot: bring this panel to the front first (attention, "
                        "positional, architecture, training)")
    p.add_argument("--size", metavar="WxH", default=None,
                   help="window size in screen pixels, e.g. 1024x768 (with --scale: the size of "
                        "the whole screen at that scaling)")
    p.add_argument("--scale", type=float, default=None, metavar="F",
                   help="render as on a display scaled by F (1.5 = 150 %%, 2 = 200 %%): sets "
                        "QT_SCALE_FACTOR")
    p.add_argument("--presenter", action="store_true",
                   help="start in presenter mode (large text, light theme, clicker keys)")
    p.add_argument("--lesson", metavar="FILE",
                   help="play this lesson file (see docs/LESSONS.md), or a shipped lesson by "
                        "name; with --screenshot: one PNG per slide (FILE-01.png, ...)")
    p.add_argument("--slide", type=int, default=None, metavar="N",
                   help="with --lesson: start at slide N (1 = the first); with --screenshot: "
                        "only that slide")
    p.add_argument("--ablate", metavar="L.H,…", default="",
                   help="start with these attention heads switched off, e.g. 0.1,1.3 = head 1 of "
                        "layer 0 and head 3 of layer 1")
    p.add_argument("--ablation", default="zero", choices=("zero", "mean"),
                   help="what a switched-off head outputs (default zero)")
    p.add_argument("--attention-view", default=None,
                   choices=("head", "grid", "lines", "rollout"),
                   help="with --screenshot: the attention panel's view")
    p.add_argument("--attention-stage", default=None,
                   choices=("probs", "masked", "scores", "qk", "xv"),
                   help="with --screenshot: the attention panel's stage (qk, xv: the numbers)")
    p.add_argument("--attention-family", default=None, choices=("encoder", "self", "cross"),
                   help="with --screenshot: an encoder-decoder's attention family (encoder "
                        "self-attention, the decoder's own, cross-attention)")
    p.add_argument("--branch-at", metavar="N", type=int, default=None,
                   help="with --screenshot: after the steps, rewind to N generated tokens, take "
                        "the most likely other token there and step on (a second branch)")
    p.add_argument("--compare", metavar="KEY=VALUE;…", default=None,
                   help="with --screenshot: picture the side-by-side window, its right column "
                        "changed by KEY=VALUE pairs (temperature, top_k, top_p, seed, prompt, "
                        "checkpoint, ablate, ablation), e.g. 'temperature=1.5'")
    p.add_argument("--startup-probe", action="store_true",
                   help="print start-up timings as JSON once the model's first result is shown, "
                        "then exit")
    p.add_argument("--no-restore", action="store_true",
                   help="start with the default layout and settings")
    args = p.parse_args(argv)
    if args.steps < 0:
        p.error("--steps must be >= 0")
    if args.screenshot and not args.screenshot.lower().endswith(".png"):
        p.error("--screenshot needs a .png file name")
    if args.size is not None:
        try:
            w, h = (int(x) for x in args.size.lower().split("x"))
        except ValueError:
            p.error(f"--size must look like 1024x768, got {args.size!r}")
        if not (320 <= w <= 16384 and 240 <= h <= 16384):
            p.error(f"--size {args.size}: width and height must be between 320x240 and 16384")
        args.size = (w, h)
    if args.slide is not None and args.lesson is None:
        p.error("--slide needs --lesson FILE")
    if args.slide is not None and args.slide < 1:
        p.error(f"--slide counts from 1, got {args.slide}")
    if args.scale is not None and not 0.5 <= args.scale <= 4:
        p.error(f"--scale must be between 0.5 and 4, got {args.scale}")
    if args.branch_at is not None and not 0 <= args.branch_at < args.steps:
        p.error("--branch-at must lie between 0 and --steps - 1")
    try:
        args.mask = [int(x) for x in args.mask.split(",") if x.strip()]
    except ValueError:
        p.error(f"--mask {args.mask!r} must be token positions separated by commas, e.g. 3,10")
    if any(m < 0 for m in args.mask):
        p.error("--mask positions count from 0")
    from model.ablation import Ablation
    from model.config import ConfigError

    try:
        args.ablate = Ablation.parse(args.ablate, args.ablation)
    except ConfigError as e:
        p.error(str(e))
    if args.compare is not None:
        from explorer.compare import NO_SPEC, parse_column_spec

        try:
            parse_column_spec(args.compare, NO_SPEC)  # checked now; applied to the run later
        except (ConfigError, OSError) as e:
            p.error(f"--compare: {e}")
    return args


_GUI_GC = None  # pyqtgraph's GarbageCollector, once started


def collect_garbage_in_gui_thread() -> None:
    """Python's cycle collector off, and run on a 1 s timer in the GUI thread instead.

    Closed windows leave reference cycles of Qt widgets (pyqtgraph's plots and their
    parentless menus); the automatic collector runs in whichever thread happens to allocate, so
    it could destroy those widgets in the inference or training thread, which deadlocks or
    crashes Qt (seen: a QMenu destroyed in the worker while the GUI thread destroyed another).
    Call once a QApplication exists."""
    global _GUI_GC
    if _GUI_GC is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _GUI_GC = GarbageCollector(interval=1.0)


def window_size(size: tuple[int, int], scale: float | None) -> tuple[int, int]:
    """The window's size in Qt's (device-independent) pixels for a screen of ``size`` pixels
    scaled by ``scale``: 1920x1080 at 150 % is a 1280x720 window drawn with 1.5 pixels per unit."""
    s = scale or 1.0
    return round(size[0] / s), round(size[1] / s)


def make_settings():
    from PySide6.QtCore import QSettings

    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORG, APP)


def sample_fields(settings, seed: int | None = None) -> dict:
    """The sampling settings saved last time (``seed`` overrides) as SampleConfig fields.

    A plain dict: reading it must not import torch (the worker builds the SampleConfig)."""

    def num(key, kind, default):
        try:
            v = settings.value(key)
            return default if v is None else kind(v)
        except (TypeError, ValueError):
            return default

    saved_seed = num("sample/seed", int, -1)
    return {"temperature": num("sample/temperature", float, 0.8),
            "top_k": num("sample/top_k", int, 0), "top_p": num("sample/top_p", float, 1.0),
            "seed": seed if seed is not None else (None if saved_seed < 0 else saved_seed)}


def sample_from_settings(settings, seed: int | None = None):
    """The SampleConfig saved last time (``seed`` overrides), or the default one."""
    fields = sample_fields(settings, seed)
    try:
        return SampleConfig(**fields)
    except ConfigError:
        return SampleConfig(seed=fields["seed"])


def default_checkpoint(settings, explicit: str | None) -> Path | None:
    from model.shipped import DEFAULT_MODEL, resolve_checkpoint, shipped_models

    if explicit:
        return resolve_checkpoint(explicit)
    if DEFAULT_MODEL.exists():
        return DEFAULT_MODEL
    ex = shipped_models()
    return ex[0] if ex else None


class _Driver:
    """Drives --screenshot and --startup-probe: waits for results, steps, grabs, quits."""

    def __init__(self, app, window, session, args, t0: float):
        from PySide6.QtCore import QObject, QTimer, Slot

        self.app, self.window, self.session, self.args, self.t0 = app, window, session, args, t0
        self.times: dict[str, float] = {}
        self.exit_code = 0
        self._shown_panel = False  # --show: the panel was brought to the front
        self._busy_waits = 0
        self._branched = False  # --branch-at: the second branch was made
        self._masked = False  # --mask: the tokens were masked
        self.compare_window = None  # --compare: the side-by-side window pictured
        self._compare_waiting = 0  # its columns still loading or running
        driver = self

        class Hooks(QObject):
            @Slot(object)
            def on_step(self, result) -> None:
                driver._on_step(result)

            @Slot(bool)
            def on_running(self, running: bool) -> None:
                if not running and driver.state == "running":
                    driver.state = "settling"
                    QTimer.singleShot(250, self.finish)

            @Slot()
            def finish(self) -> None:
                driver._finish()

            @Slot(object)
            def column_step(self, result) -> None:
                driver._on_column_step(result)

            @Slot(bool)
            def column_running(self, running: bool) -> None:
                if not running:
                    driver._column_done()

            @Slot()
            def panels(self) -> None:
                driver.times.setdefault("panels_s", time.perf_counter() - driver.t0)

            @Slot()
            def timeout(self) -> None:
                if driver.state == "done":
                    return
                pending = " (panels still loading)" if driver.window.panels_pending else ""
                print(f"transformer-explorer: gave up waiting (state {driver.state}{pending})",
                      file=sys.stderr)
                driver.exit_code = 1
                driver.state = "done"  # not _finish(): it may wait again for what never came
                driver.window.close()
                driver.app.exit(1)

        self.hooks = Hooks()
        self.state = "loading"
        session.step_ready.connect(self.hooks.on_step)
        session.running_changed.connect(self.hooks.on_running)
        window.panels_loaded.connect(self.hooks.panels)
        QTimer.singleShot(120_000, self.hooks.timeout)

    def launch_offset(self, launched_epoch: float) -> float:
        """Seconds from the launcher's epoch stamp to main()'s start."""
        return (time.time() - (time.perf_counter() - self.t0)) - launched_epoch

    def _on_step(self, result) -> None:
        from PySide6.QtCore import QTimer

        if self.state == "loading":
            self.times["first_result_s"] = time.perf_counter() - self.t0
            if self.args.startup_probe and not self.args.screenshot:
                self.state = "settling"
                QTimer.singleShot(0, self.hooks.finish)  # after this result is drawn
                return
            self.state = "prompt"
            if self.args.causal_mask:
                self.session.set_causal_view(True)
            self.window.prompt_panel.set_prompt_text(self.session.prompt)
        elif self.state == "rewinding":  # --branch-at: take another token than last time
            alt = next(int(t) for t in result.dist.order if int(t) != int(result.planned))
            self.state = "forcing"
            self.session.step(force=alt)
        elif self.state == "forcing":
            left = self.args.steps - result.n_generated
            if left > 0:
                self.state = "running"
                self.session.run(left, 0)
            else:
                self.state = "settling"
                QTimer.singleShot(250, self.hooks.finish)
        elif self.state == "prompt" and result.chosen is None and self.args.mask \
                and self.session.is_encoder and not self._masked:
            self._masked = True
            for i in self.args.mask:
                if i >= result.T:
                    print(f"transformer-explorer: --mask {i}: the text has {result.T} tokens",
                          file=sys.stderr)
                    continue
                self.session.toggle_mask(i)
        elif self.state == "prompt" and result.chosen is None:
            if self.args.steps > 0 and not self.session.is_encoder:  # an encoder does not step
                self.state = "running"
                self.session.run(self.args.steps, 0)
            else:
                self.state = "settling"
                QTimer.singleShot(250, self.hooks.finish)

    def _finish(self) -> None:
        if self.state == "done":
            return
        if self.window.panels_pending:  # the screenshot shows every panel
            self.window.panels_loaded.connect(self.hooks.finish)
            return
        self.times.setdefault("panels_s", time.perf_counter() - self.t0)
        if self.args.branch_at is not None and not self._branched:
            self._branched = True
            self.state = "rewinding"
            self.session.rewind_to(self.args.branch_at)
            return
        if self.args.compare is not None and self.compare_window is None:
            self._open_compare()
            return
        if self.args.show and not self._shown_panel:
            self._shown_panel = True
            attention = self.window.panels.get("Attention")
            if attention is not None and self.args.attention_view:
                attention.set_view(self.args.attention_view)
            if attention is not None and self.args.attention_stage:
                attention.set_stage(self.args.attention_stage)
            if attention is not None and self.args.attention_family:
                try:
                    attention.set_family(self.args.attention_family)
                except ValueError as e:
                    print(f"transformer-explorer: {e}", file=sys.stderr)
            if self.window.show_panel(self.args.show):
                from PySide6.QtCore import QTimer

                QTimer.singleShot(400, self.hooks.finish)  # let the panel's coalesced redraw run
                return
            print(f"transformer-explorer: no panel named {self.args.show!r}", file=sys.stderr)
        if self.args.show and self._busy_waits == 0:
            # again: the default layout raises the Attention tab once every panel is built
            self.window.show_panel(self.args.show)
        if (self.session.busy or self._busy_waits == 0) and self._busy_waits < 50:
            from PySide6.QtCore import QTimer

            self._busy_waits += 1  # the redraw of the panel shown, and work it asked for
            QTimer.singleShot(300, self.hooks.finish)
            return
        self.state = "done"
        self.app.processEvents()
        self.times["shown_s"] = time.perf_counter() - self.t0
        if self.args.screenshot:
            out = Path(self.args.screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            shown = self.compare_window if self.compare_window is not None else self.window
            if not shown.grab().save(str(out), "PNG"):
                print(f"transformer-explorer: could not write {out}", file=sys.stderr)
                self.exit_code = 1
            else:
                info = self.session.info
                print(f"saved {out}" + (f" (model: {info.name})" if info is not None else ""))
        if self.args.startup_probe:
            out = {k: round(v, 4) for k, v in self.times.items()}
            launched = os.environ.get(LAUNCH_ENV)
            if launched:  # the launcher's clock: includes the interpreter's own start-up
                out["launch_s"] = round(self.launch_offset(float(launched)), 4)
            print(json.dumps(out), flush=True)
        self.window.close()
        self.app.exit(self.exit_code)


    def _open_compare(self) -> None:
        """--compare: open the side-by-side window, step both columns, then finish."""
        self.state = "comparing"
        w = self.window.open_compare(self.args.compare)
        if w is None:
            self.state = "settling"
            self.args.compare = None
            self._finish()
            return
        if self.args.size is not None:
            w.resize(*window_size(self.args.size, self.args.scale))
        else:
            w.resize(self.window.size())
        self.compare_window = w
        self._compare_waiting = 2
        for s in w.sessions:
            s.step_ready.connect(self.hooks.column_step)
            s.running_changed.connect(self.hooks.column_running)

    def _on_column_step(self, _result) -> None:
        """Both columns stepped once their first result shows the heads they switch off."""
        if self.state != "comparing":
            return
        if all(s.result is not None and s.result.ablation == s.ablation
               for s in self.compare_window.sessions):
            self._compare_waiting = 1
            self._column_done()

    def _column_done(self) -> None:
        from PySide6.QtCore import QTimer

        self._compare_waiting -= 1
        if self._compare_waiting > 0:
            return
        if self.state == "comparing" and self.args.steps > 0:
            self.state = "comparing-run"
            self._compare_waiting = 2
            for s in self.compare_window.sessions:
                s.run(self.args.steps, 0)
            return
        self.state = "settling"
        QTimer.singleShot(600, self.hooks.finish)


class _LessonDriver:
    """Drives ``--lesson FILE --screenshot OUT.png``: plays the slides (or only ``--slide N``)
    and saves one picture per slide, OUT-01.png, OUT-02.png, ... (OUT.png with ``--slide``)."""

    def __init__(self, app, window, lesson, args):
        from PySide6.QtCore import QObject, QTimer, Slot

        self.app, self.window, self.lesson, self.args = app, window, lesson, args
        self.exit_code = 0
        self.first = (args.slide or 1) - 1
        self.last = self.first if args.slide else len(lesson.slides) - 1
        self.saved: list[str] = []
        driver = self

        class Hooks(QObject):
            @Slot(int)
            def shown(self, i: int) -> None:
                QTimer.singleShot(500, lambda: driver._grab(i))  # the panels' redraws first

            @Slot(str)
            def failed(self, text: str) -> None:
                print(f"transformer-explorer: {text}", file=sys.stderr)
                driver._quit(LESSON_EXIT)

            @Slot()
            def timeout(self) -> None:
                print(f"transformer-explorer: gave up waiting for slide "
                      f"{driver.window.lessons.index + 1}", file=sys.stderr)
                driver._quit(1)

        self.hooks = Hooks()
        window.lessons.slide_shown.connect(self.hooks.shown)
        window.lessons.failed.connect(self.hooks.failed)
        QTimer.singleShot(60_000 * max(2, self.last - self.first + 1), self.hooks.timeout)

    def out_path(self, i: int) -> Path:
        out = Path(self.args.screenshot)
        return out if self.args.slide else out.with_name(f"{out.stem}-{i + 1:02d}{out.suffix}")

    def _grab(self, i: int) -> None:
        out = self.out_path(i)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.app.processEvents()
        if not self.window.grab().save(str(out), "PNG"):
            print(f"transformer-explorer: could not write {out}", file=sys.stderr)
            self._quit(1)
            return
        print(f"saved {out} (slide {i + 1} of {len(self.lesson.slides)})")
        self.saved.append(str(out))
        if i >= self.last:
            self._quit(0)
        else:
            self.window.lessons.go(i + 1)

    def _quit(self, code: int) -> None:
        self.exit_code = code
        self.window.close()
        self.app.exit(code)


def find_lesson(spec: str) -> Path:
    """``spec`` itself when it exists, else the shipped lesson of that name."""
    from explorer.lesson_file import shipped_lessons

    p = Path(spec)
    if p.exists():
        return p
    stem = spec[:-5] if spec.endswith(".json") else spec
    return next((x for x in shipped_lessons() if x.stem == stem and Path(spec).name == spec), p)


NO_DISPLAY_EXIT = 2
LESSON_EXIT = 2  # a lesson file that cannot be played


def missing_display(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why Qt cannot open a window here, in one line, or None when it can (or may).

    Without this check Qt's xcb plugin aborts the process (exit 134) with a message that blames
    a library that is installed. Only Linux and the BSDs need a display server; a platform the
    user chose (``QT_QPA_PLATFORM``) is theirs to answer for."""
    if environ.get("QT_QPA_PLATFORM"):
        return None
    if not (platform.startswith("linux") or "bsd" in platform):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return ("transformer-explorer: no display (neither DISPLAY nor WAYLAND_DISPLAY is set): start "
            "it on a desktop, or set QT_QPA_PLATFORM=offscreen to make --screenshot images "
            "without one")


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:  # an application that exists already has its display
        problem = missing_display()
        if problem:
            print(problem, file=sys.stderr)
            return NO_DISPLAY_EXIT

    lesson = None
    if args.lesson is not None:  # a bad lesson file: one line, before any window opens
        from explorer.lesson_file import LessonError, load_lesson

        try:
            lesson = load_lesson(find_lesson(args.lesson))
        except LessonError as e:
            print(f"transformer-explorer: {e}", file=sys.stderr)
            return LESSON_EXIT
        if args.slide is not None and args.slide > len(lesson.slides):
            print(f"transformer-explorer: {args.lesson}: there is no slide {args.slide} (the "
                  f"lesson has {len(lesson.slides)})", file=sys.stderr)
            return LESSON_EXIT
        first = lesson.slides[(args.slide or 1) - 1]
        if args.checkpoint is None:  # start with the slide's model: no second load
            args.checkpoint = str(lesson.model_path(first))
        if args.prompt is None:
            args.prompt = first.prompt

    if args.scale is not None:  # must be set before the QApplication exists
        os.environ["QT_SCALE_FACTOR"] = f"{args.scale:g}"
    from PySide6.QtCore import QEvent, QObject, QTimer, Slot

    app = QApplication.instance() or QApplication([sys.argv[0]])
    collect_garbage_in_gui_thread()
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    from explorer.look_menu import saved_look
    from explorer.theme import apply_theme

    settings = make_settings()
    if args.no_restore:
        settings.clear()
    apply_theme(app, **saved_look(settings))

    from explorer.main_window import DEFAULT_PROMPT, MainWindow
    from explorer.session import Session

    device = args.device or str(settings.value("device", "auto") or "auto")
    session = Session(device=device)
    session.set_ablation(args.ablate)  # applied once the first model is there
    saved_prompt = settings.value("prompt/text")
    session.prompt = args.prompt if args.prompt is not None else (
        str(saved_prompt) if saved_prompt is not None else DEFAULT_PROMPT)
    try:
        window = MainWindow(session, settings, restore=not args.no_restore, defer_panels=True)
    except BaseException:
        session.close()
        raise
    window.prompt_panel.set_prompt_text(session.prompt, apply=False)
    if args.size is not None:
        window.resize(*window_size(args.size, args.scale))
    if args.presenter:
        window.presenter.set_active(True)
    window.interactive = not (args.screenshot or args.startup_probe)
    driver = _Driver(app, window, session, args, t0) \
        if (args.screenshot or args.startup_probe) and lesson is None else None
    lesson_driver = _LessonDriver(app, window, lesson, args) \
        if lesson is not None and args.screenshot else None

    class FirstPaint(QObject):
        """Starts loading the model once the window has painted (and times it)."""

        done = False

        def eventFilter(self, obj, e) -> bool:  # noqa: N802
            if not self.done and e.type() == QEvent.Type.Paint:
                self.done = True
                if driver is not None:
                    driver.times["first_paint_s"] = time.perf_counter() - t0
                obj.removeEventFilter(self)
                start_session()
            return False

    started = []

    def start_session() -> None:
        if started:
            return
        started.append(True)
        # the worker imports torch, builds the SampleConfig and loads the model: the GUI
        # thread stays free to paint meanwhile
        session.start(default_checkpoint(settings, args.checkpoint),
                      sample=sample_fields(settings, args.seed))

    def first_result(_result) -> None:
        # the prompt and next-token panels show the model; now build the panels that import
        # torch at module level, one per event-loop turn (each reads the session's state)
        session.step_ready.disconnect(first_result_hook.fire)
        window.load_optional_panels_soon()
        if lesson is not None:
            window.lessons.open(lesson, (args.slide or 1) - 1)

    class Hook(QObject):
        @Slot(object)
        def fire(self, result) -> None:
            first_result(result)

    first_result_hook = Hook()
    session.step_ready.connect(first_result_hook.fire)
    painter = FirstPaint()
    window.installEventFilter(painter)
    window.show()
    QTimer.singleShot(1500, start_session)  # in case no paint event ever arrives
    try:
        code = app.exec()
    finally:
        session.close()
    if lesson_driver is not None:
        return lesson_driver.exit_code
    return driver.exit_code if driver is not None else code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
