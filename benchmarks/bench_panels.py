"""Redraw speed of the "look inside" panels; prints one JSON object (nothing is asserted).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_panels.py [--quick] [--out FILE]

- ``attention_head_ms``: one head at 256 tokens, from ``session.result`` to a rendered image
  (target ≤ 10 ms).
- ``attention_all_heads_ms``: the all-heads mosaic of 12 layers × 12 heads at 128 tokens
  (target ≤ 30 ms).
- ``coalescing``: N ``step_ready`` signals in a burst cause this many redraws (target: a few).
- plus the lines view, the positional and architecture panels for reference.
Times are medians over repeats; a redraw includes building the QImage the screen shows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from PySide6.QtCore import QObject, Signal  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from model.ablation import NO_ABLATION  # noqa: E402
from model.config import ModelConfig, SampleConfig  # noqa: E402
from model.stepper import Stepper  # noqa: E402
from model.tokenizer import CharTokenizer  # noqa: E402
from model.transformer import GPT  # noqa: E402

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 8


class BenchSession(QObject):
    """The Session signals and attributes the panels use (see .notes/API.md), run in-thread."""

    model_changed = Signal()
    step_ready = Signal(object)
    sample_changed = Signal(object)
    selected_token_changed = Signal(int)
    ablation_changed = Signal(object)  # never emitted here: no head is switched off

    def __init__(self, model, tokenizer):
        super().__init__()
        self.tokenizer, self.config = tokenizer, model.config
        self.positional = model.pe.view()
        self.ablation = NO_ABLATION
        self.info = None
        self.sample = SampleConfig(seed=0)
        self.selected_token = -1
        self.stepper = Stepper(model, tokenizer, self.sample)
        self.result = None

    def show(self, text: str):
        self.result = self.stepper.set_prompt(text)
        self.step_ready.emit(self.result)
        return self.result

    def select_token(self, i: int) -> None:
        self.selected_token = i
        self.selected_token_changed.emit(i)


def median_ms(fn, repeats: int, setup=None) -> float:
    times = []
    for i in range(repeats):
        if setup is not None:
            setup(i)
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = ap.parse_args()
    t_start = time.perf_counter()
    repeats = 5 if args.quick else 30
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    app = QApplication.instance() or QApplication([])
    from explorer.panels.architecture.panel import ArchitecturePanel
    from explorer.panels.attention.panel import AttentionPanel
    from explorer.panels.positional import PositionalPanel
    from explorer.theme import apply_theme
    apply_theme(app)

    tok = CharTokenizer.from_text(TEXT)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=12, n_head=12,
                      n_embd=96, pos_kind="learned")
    model = GPT(cfg).eval()
    session = BenchSession(model, tok)
    out: dict = {"device": "cpu", "python": platform.python_version(), "quick": args.quick,
                 "model": f"{cfg.n_layer} layers × {cfg.n_head} heads, C={cfg.n_embd}"}

    panel = AttentionPanel(session)
    panel.resize(900, 700)
    panel.show()
    app.processEvents()

    # one head at 256 tokens
    r256 = session.show(TEXT[:256])
    assert r256.T == 256
    panel.redraw_now()
    app.processEvents()

    def pick_head(i):
        panel.layer, panel.head = i % 12, (5 * i) % 12

    def head_redraw():
        panel.redraw_now()
        panel.heatmap.image.render()  # the QImage the screen would show

    out["attention_head_ms"] = median_ms(head_redraw, repeats, pick_head)
    out["attention_head_target_ms"] = 10
    panel.set_stage("masked")
    out["attention_head_masked_ms"] = median_ms(head_redraw, repeats, pick_head)
    panel.set_stage("probs")

    # all heads at 128 tokens
    session.show(TEXT[:128])
    panel.set_view("grid")
    panel.redraw_now()

    def grid_redraw():
        panel.redraw_now()
        panel.grid.image.render()

    out["attention_all_heads_ms"] = median_ms(grid_redraw, repeats)
    out["attention_all_heads_target_ms"] = 30
    out["attention_all_heads_image"] = list(panel.grid.image.image.shape)

    # lines view, all heads of a layer, 128 tokens
    panel.set_view("lines")
    panel.set_lines_all_heads(True)
    panel.redraw_now()
    app.processEvents()
    out["attention_lines_ms"] = median_ms(panel.redraw_now, repeats)
    out["attention_lines_paint_ms"] = median_ms(lambda: panel.lines.grab(),
                                                max(2, repeats // 5))

    # coalescing: a burst of step_ready signals
    panel.set_view("head")
    app.processEvents()
    n = 50
    before = panel.redraw_count
    t = time.perf_counter()
    for _ in range(n):
        session.step_ready.emit(session.result)
    while panel._redraw.pending:
        app.processEvents()
    out["coalescing"] = {"signals": n, "redraws": panel.redraw_count - before,
                         "ms": round((time.perf_counter() - t) * 1000, 1)}

    # the other panels, for reference
    pe = PositionalPanel(session)
    pe.resize(900, 700)
    pe.show()
    app.processEvents()
    out["positional_model_change_ms"] = median_ms(
        lambda: (pe._on_model_changed(), pe.redraw_now()), max(2, repeats // 5))
    pe.set_view("prompt")
    out["positional_step_ms"] = median_ms(pe.redraw_now, repeats)
    arch = ArchitecturePanel(session)
    arch.resize(900, 700)
    arch.show()
    app.processEvents()
    out["architecture_build_ms"] = median_ms(arch._build_diagram, max(2, repeats // 5))
    for key in ("L5.ffn", "L5.attn", "final.unembed"):
        arch.select_block(key)
        out[f"architecture_detail_{key}_ms"] = median_ms(arch.redraw_now, repeats)
    # tear the widgets down while the QApplication still exists (else Python may crash at exit
    # destroying them in the wrong order)
    for w in (panel, pe, arch):
        w.close()
        w.deleteLater()
    session.deleteLater()
    app.processEvents()
    out["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
