"""Head ablation speed figures, printed as JSON (measured, not asserted).

    python benchmarks/bench_ablation.py [--quick] [--checkpoint FILE]

- ``toggle_ms``: switching one head off (or back on) in a real window on the default model with
  a full 256-token context, from ``Session.toggle_head`` to the next-token bars redrawn with
  their ghost bars and painted (p50/p95; target p95 ≤ 60 ms). The worker runs the window again
  with capture under the new head mask, plus one pass without capture for the intact logits.
  ``step_cold_ms`` (a step that slides the full window, computed when asked) is the reference
  measured in the same run: ``toggle_vs_step`` is their ratio of medians.
- ``ranking_ms``: :func:`model.head_effects.head_effects` for every head of the default model
  (16) at 256 tokens, with the worker's torch threads (target ≤ 150 ms). ``one_pass_ms`` is one
  plain forward pass of the same window and ``per_head_loop_ms`` the 16 single-head ablations
  run one after another, both in the same run, interleaved with the batched ranking.

The machine may be shared: the load average at the start and the end is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_gui import InProcess, summary  # noqa: E402 (sets QT_QPA_PLATFORM and the settings)

TARGETS = {"toggle_p95_ms": 60.0, "ranking_p50_ms": 150.0}


def toggle_times(b: InProcess, n: int) -> list[float]:
    s = b.session
    s.worker.lookahead_enabled = False  # nothing running ahead between two toggles
    out = []
    for i in range(n):
        b.settle()
        got = s.results_received
        t0 = time.perf_counter()
        s.toggle_head(i % s.config.n_layer, (i // s.config.n_layer) % s.config.n_head)
        b.wait(lambda got=got: s.results_received > got)
        b.redraws_done()
        out.append((time.perf_counter() - t0) * 1000)
    s.restore_heads()
    b.settle()
    s.worker.lookahead_enabled = True
    return out


def ranking_times(model, ids: list[int], token: int, n: int) -> dict:
    import torch

    from explorer.inference_worker import inference_threads
    from model.ablation import Ablation
    from model.head_effects import head_effects

    torch.set_num_threads(inference_threads())
    cfg = model.config
    idx = torch.tensor([ids])
    batched, one, loop = [], [], []
    head_effects(model, ids, token)  # warm-up
    for _ in range(n):  # interleaved: the three see the same machine load
        t0 = time.perf_counter()
        head_effects(model, ids, token)
        batched.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(idx)
        one.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for li in range(cfg.n_layer):
                for hi in range(cfg.n_head):
                    model.set_ablation(Ablation(frozenset({(li, hi)})))
                    model(idx)
        model.set_ablation(Ablation())
        loop.append((time.perf_counter() - t0) * 1000)
    med = sorted(batched)[len(batched) // 2]
    return {"heads": cfg.n_layer * cfg.n_head, "tokens": len(ids), "threads": torch.get_num_threads(),
            "ranking_ms": summary(batched), "one_pass_ms": summary(one),
            "per_head_loop_ms": summary(loop),
            "ranking_vs_one_pass": round(med / sorted(one)[len(one) // 2], 2),
            "ranking_vs_loop": round(med / sorted(loop)[len(loop) // 2], 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--checkpoint", help="model file (default: the app's default model)")
    args = p.parse_args(argv)
    n = 6 if args.quick else 30
    out: dict = {"quick": args.quick, "targets": TARGETS, "load_start": os.getloadavg()}
    b = InProcess(args.checkpoint, optional_panels=False)
    try:
        s = b.session
        b.fill_context()  # a full window: every toggle recomputes all of it
        out["model"] = {"name": s.info.name, "block_size": s.config.block_size,
                        "heads": s.config.n_layer * s.config.n_head, "context_tokens": s.result.T}
        toggles = toggle_times(b, n)
        b.fill_context()
        cold, _gui, _worker = b.step_times(n, 0.0, lookahead=False)
        out["toggle_ms"] = summary(toggles)
        out["step_cold_ms"] = summary(cold)
        out["toggle_vs_step"] = round(sorted(toggles)[len(toggles) // 2]
                                      / sorted(cold)[len(cold) // 2], 2)
        r = s.result
        path = s.info.path
    finally:
        b.close()
    # the same weights as the window's (its model lives in the worker thread): opened again here
    if path is not None:
        from model.loading import open_model

        model = open_model(path).model
    else:
        from explorer.inference_worker import untrained_default

        model = untrained_default()[0]
    out.update(ranking_times(model, r.ids.tolist(), int(r.planned), n))
    out["load_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
