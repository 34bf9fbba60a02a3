"""GPT-2-size figures, printed as ONE JSON document: ours against transformers, same weights, same
thread count, measured side by side in this run (ratios), plus the GUI at that size.

    python benchmarks/bench_gpt2.py [--quick] [--folder DIR] [--threads N] [--skip-gui]

The model: a random GPT-2-small folder (124M parameters, vocabulary 50,257, 12 × 12 heads, 1,024
positions) written by transformers' ``save_pretrained`` (:mod:`gpt2_folder`; made once in
``--folder``, default a folder under the system's temporary directory, never committed). Both
sides run on the CPU with ``torch.set_num_threads(--threads)`` (default 1: the app's inference
worker uses cores − 1 = 1 on the 2-core target). Measurements of the two sides are interleaved
(A, B, A, B, …) and medians reported. Figures are reported, never asserted.

* ``step``: one generation step with every attention map captured. Ours: ``Stepper.step()``
  with ``CaptureSpec(attention=True)`` only (one new token through the KV cache, its attention
  row copied into the capture buffers, sampling). Theirs: ``GPT2LMHeadModel`` with eager
  attention, ``output_attentions=True`` and its ``DynamicCache``, fed the token ours chose. Both
  go on from a prompt of 128 (512) tokens, one token a step. ``ratio`` = theirs / ours (target ≥ 1.0).
* ``prompt``: a prompt change, a full forward with the same capture. Ours:
  ``Stepper.set_prompt``; theirs: the forward of all T tokens with ``output_attentions=True``
  and ``use_cache=True``. ``ratio`` as above (target ≥ 1.0).
* ``gui`` (subprocesses, offscreen): ``open_first_result_s`` = ``main.py --startup-probe
  --checkpoint FOLDER`` from launch to the first result on screen, the median of three
  launches made before the model figures (target ≤ 5 s);
  ``step_ms`` = one step at 128 tokens from the request to every visible panel redrawn and
  painted, the window as a user sees it (every capture on; lookahead off, so every step
  computes when asked: p95 target ≤ 150 ms); ``peak_rss_gb`` = the peak resident memory of a
  window with all panels that took a 1,021-token prompt and cached steps to the block's 1,024
  tokens (target ≤ 2.5 GB at 1,024 tokens); ``peak_rss_slid_gb`` = the same after one more
  step, which slides the full window (a pass over all 1,024 positions whose captures are made
  while the window still shows the last ones: two sets of them at once).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from gpt2_folder import make_gpt2_folder  # noqa: E402

TARGETS = {"step_ratio": 1.0, "prompt_ratio": 1.0, "gui_step_p95_ms": 150.0,
           "open_first_result_s": 5.0, "peak_rss_gb": 2.5}
RSS_TOKENS = 1021  # three cached steps reach the block (1,024); the step after slides the window
DEFAULT_FOLDER = Path(tempfile.gettempdir()) / "transformer-explorer-bench-gpt2-small"
TEXT = ("ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet "
        "is the sun. Arise, fair sun, and kill the envious moon, who is already sick and pale "
        "with grief that thou her maid art far more fair than she.\n")


def prompt_of(tokenizer, n: int) -> str:
    """A text that encodes to about ``n`` tokens (BPE merges at the cut may differ by one)."""
    ids = tokenizer.encode(TEXT * (n // 20 + 2))[:n]
    return tokenizer.decode(ids)


def median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 2)


def bench_model(folder: Path, threads: int, reps: int, sizes: tuple[int, ...]) -> dict:
    import torch
    from transformers import DynamicCache, GPT2LMHeadModel

    from model.config import CAPTURE_NOTHING, SampleConfig
    from model.loading import open_model
    from model.speedups import tune_malloc
    from model.stepper import Stepper

    torch.set_num_threads(threads)
    tune_malloc()
    ours = open_model(folder)
    theirs = GPT2LMHeadModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    spec = dataclasses.replace(CAPTURE_NOTHING, attention=True)
    # transformers 5 renamed past_key_values to cache
    cache_kw = "cache" if "cache" in inspect.signature(theirs.forward).parameters \
        else "past_key_values"
    out: dict = {"threads": threads, "capture": "attention only (as output_attentions=True)",
                 "step": {}, "prompt": {}}
    for n in sizes:
        stepper = Stepper(ours.model, ours.tokenizer, SampleConfig(seed=0), capture=spec)
        r = stepper.set_prompt(prompt_of(ours.tokenizer, n))
        ids = torch.tensor([r.ids.tolist()])
        T = int(ids.shape[1])
        prompt_text = stepper.prompt_text
        a_step, b_step, a_prompt, b_prompt = [], [], [], []
        with torch.inference_mode():
            cache = DynamicCache()
            theirs(input_ids=ids, use_cache=True, **{cache_kw: cache})
            for _ in range(reps):  # both sides go on one token a step (T, T+1, …)
                t0 = time.perf_counter()
                r = stepper.step()
                a_step.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                o = theirs(input_ids=torch.tensor([[int(r.chosen)]]), use_cache=True,
                           output_attentions=True, **{cache_kw: cache})
                b_step.append(time.perf_counter() - t0)
                assert len(o.attentions) == ours.config.n_layer
            for _ in range(max(2, reps // 3)):
                t0 = time.perf_counter()
                stepper.set_prompt(prompt_text)
                a_prompt.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                theirs(input_ids=ids, use_cache=True, output_attentions=True)
                b_prompt.append(time.perf_counter() - t0)
        for key, a, b in (("step", a_step, b_step), ("prompt", a_prompt, b_prompt)):
            ours_ms, theirs_ms = median_ms(a), median_ms(b)
            out[key][str(T)] = {"ours_ms": ours_ms, "transformers_ms": theirs_ms,
                                "ratio": round(theirs_ms / ours_ms, 3), "n": len(a)}
    return out


def bench_open(folder: Path, runs: int = 3) -> dict:
    """``main.py --startup-probe --checkpoint FOLDER``: launch → first result on screen (the
    median of ``runs`` launches)."""
    from bench_gui import bench_startup

    return bench_startup(runs, str(folder))


def child_gui(folder: Path, n_steps: int, rss_tokens: int) -> dict:
    """In a fresh process: the GUI step at 128 tokens, then the peak RSS at ``rss_tokens``."""
    import resource

    from bench_gui import InProcess, summary

    b = InProcess(str(folder))
    try:
        s = b.session
        tok = s.tokenizer
        out: dict = {"panels": sorted(b.window.docks), "visible_tab": "Attention"}
        b.window.prompt_panel.set_prompt_text(prompt_of(tok, 128))
        b.wait(lambda: s.result is not None and s.result.T >= 120, 120)
        b.settle()
        out["step_tokens"] = s.result.T
        total, gui, worker = b.step_times(n_steps, 0.0, lookahead=False)
        out["step_ms"] = summary(total)
        out["worker_ms"] = summary(worker)
        out["gui_ms"] = summary(gui)
        try:
            got = s.results_received
            b.window.prompt_panel.set_prompt_text(prompt_of(tok, rss_tokens))
            b.wait(lambda: s.results_received > got and s.result.T >= rss_tokens - 8, 300)
            b.settle()
            for name in ("Architecture", "Positional encoding", "Attention"):
                b.window.show_panel(name)  # every panel draws its view of the long context
                b.redraws_done()
            def peak_gb() -> float:
                return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3)

            def step() -> None:
                got = s.results_received
                s.step()
                b.wait(lambda: s.results_received > got, 120)
                b.redraws_done()

            while s.result.T < s.config.block_size:  # below the block size: cached steps
                step()
            out["rss_tokens"] = s.result.T
            out["peak_rss_gb"] = peak_gb()
            step()  # a full window slides: a pass over all 1,024 positions, captured anew
            out["peak_rss_slid_gb"] = peak_gb()
        except TimeoutError as e:  # keep the step figures
            out["peak_rss_error"] = str(e)
    finally:
        b.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--folder", type=Path, default=DEFAULT_FOLDER,
                   help="where the random GPT-2-small folder is (made if missing)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-gui", action="store_true", help="only the model figures")
    p.add_argument("--child-gui", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = make_gpt2_folder(a.folder)
    n_steps = 8 if a.quick else 20
    if a.child_gui:
        print(json.dumps(child_gui(folder, n_steps, RSS_TOKENS)))
        return 0
    load = [round(x, 2) for x in os.getloadavg()]
    out: dict = {"quick": a.quick, "targets": TARGETS, "folder": str(folder),
                 "load_average_start": load}
    if not a.skip_gui:  # first: after the model figures the machine has just held two
        # 124M models and transformers, and a launch measured then took up to 2 s longer
        out["open"] = bench_open(folder, 1 if a.quick else 3)
    out["model"] = bench_model(folder, a.threads, 3 if a.quick else 7, (128, 512))
    if not a.skip_gui:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child-gui", "--folder",
               str(folder)] + (["--quick"] if a.quick else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        try:
            out["gui"] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            out["gui"] = {"error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    m, g = out["model"], out.get("gui", {})
    out["figures"] = {
        "step_ratio": {k: v["ratio"] for k, v in m["step"].items()},
        "prompt_ratio": {k: v["ratio"] for k, v in m["prompt"].items()},
        "gui_step_p95_ms": g.get("step_ms", {}).get("p95"),
        "open_first_result_s": out.get("open", {}).get("first_result_s"),
        "peak_rss_gb": g.get("peak_rss_gb"),
        "peak_rss_slid_gb": g.get("peak_rss_slid_gb"),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
