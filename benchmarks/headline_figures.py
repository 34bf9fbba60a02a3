"""The headline figures of benchmarks/run.py, picked out of each benchmark's JSON document.

Every figure has the same keys: ``value`` (raw, in ``unit``), ``reference`` and ``ratio`` where
the benchmark measured a reference in the same run (else None), ``target`` with ``target_on``
("value" or "ratio") and ``higher_is_better``, ``meets_target`` (None when there is no target or
no value) and ``source`` (which benchmark and which part of its document). A figure whose
benchmark failed, was skipped or lacks a field is ``{"error": "..."}`` instead.
"""
from __future__ import annotations


def figure(value, unit: str, source: str, reference=None, reference_is: str | None = None,
           ratio=None, target: float | None = None, target_on: str = "value",
           higher_is_better: bool = False, **extra) -> dict:
    """One headline number; ``meets_target`` compares ``target_on`` ("value" or "ratio")."""
    judged = ratio if target_on == "ratio" else value
    meets = None
    if target is not None and isinstance(judged, (int, float)) and not isinstance(judged, bool):
        meets = judged >= target if higher_is_better else judged <= target
    return dict({"value": value, "unit": unit, "reference": reference,
                 "reference_is": reference_is, "ratio": ratio, "target": target,
                 "target_on": target_on if target is not None else None,
                 "higher_is_better": higher_is_better, "meets_target": meets,
                 "source": source}, **extra)


def _r(a, b, nd: int = 3):
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return round(a / b, nd) if ok and b else None


def _round(x, nd: int = 3):
    return round(x, nd) if isinstance(x, float) else x


def _training_summary(t: dict) -> tuple[str, dict]:
    """bench_training's summary for the thread count the app uses by default."""
    s = t["summary"]
    key = str(t.get("default_training_threads", ""))
    key = key if key in s else sorted(s)[0]
    return key, s[key]


def _model_figures(m: dict) -> dict:
    tr, cap, kv, g = m["training"], m["capture"], m["kv_cache"], m["gpt2_small"]
    src = "bench_model"
    out = {"training_headless_vs_reference": figure(
        tr["ours_tokens_per_s"], "tokens/s", f"{src}.training", tr["reference_tokens_per_s"],
        "plain PyTorch nanoGPT-style loop, same config, same run", tr["speedup"], 1.25, "ratio",
        True, speedup_fp32=tr["speedup_fp32"], bf16_autocast=tr["ours_bf16_autocast"])}
    for T in ("T64", "T256"):
        c = cap[T]
        out[f"capture_overhead_{T}"] = figure(
            c["captured_ms"], "ms", f"{src}.capture.{T}", c["plain_ms"],
            "forward with nothing captured", c["ratio"], 1.3, "ratio")
    for T in ("T64", "T256", "T1024"):
        k = kv[T]
        out[f"kv_cache_{T}"] = figure(
            k["cached_ms"], "ms", f"{src}.kv_cache.{T}", k["full_ms"],
            "full recompute of the context", k["speedup"],
            3.0 if T == "T256" else None, "ratio", True, ratio_is="full / cached (speed-up)")
    st = kv["stepper"]
    out["stepper_step_T256"] = figure(
        st["step_ms"], "ms", f"{src}.kv_cache.stepper", st["full_recompute_ms"],
        "Stepper.refresh(): full captured recompute", st["speedup"], None, "ratio", True,
        ratio_is="refresh / step (speed-up)")
    skipped = bool(g["skipped"])
    out["gpt2_small_step_T128"] = figure(
        g["step_ms_T128"], "ms", f"{src}.gpt2_small", g["full_recompute_ms_T128"],
        "full captured recompute of the 128 tokens", g["step_speedup_T128"], 150.0,
        skipped=skipped, ratio_is="refresh / step (speed-up)")
    out["gpt2_small_peak_rss_T1024"] = figure(
        g["peak_rss_gb_T1024"], "GB", f"{src}.gpt2_small", g["rss_after_model_gb"],
        "RSS right after building the model (weights alone)",
        _r(g["peak_rss_gb_T1024"], g["rss_after_model_gb"]), 2.0, skipped=skipped,
        rss_error=g.get("rss_error"))
    return out


def _gui_figures(d: dict, floor: dict) -> dict:
    src = "bench_gui"
    st, cold, rr, late = d["step_ms"], d["step_cold_ms"], d["rerank_ms"], d["lateness_ms"]
    cached = d.get("cached_step_ms", {})
    out = {"step_with_redraw": figure(
        st["p95"], "ms (p95)", f"{src}.step_ms", cold["p95"],
        "the same steps computed when asked (no lookahead, p95)", _r(st["p95"], cold["p95"]),
        25.0, p50=st["p50"], worker_p95=d["worker_ms"]["p95"], gui_thread_p95=d["gui_ms"]["p95"],
        context_tokens=d.get("context_tokens"), pace_ms=d.get("pace_ms"),
        lookahead_hits=d.get("lookahead_hits"), cold_p50=cold["p50"],
        held_pace_ms=d.get("held_pace_ms"), held_p50=d.get("step_held_ms", {}).get("p50"),
        held_p95=d.get("step_held_ms", {}).get("p95"),
        cached_held_p95=d.get("cached_step_held_ms", {}).get("p95"),
        cached_p95=cached.get("p95"), cached_cold_p95=d.get("cached_step_cold_ms", {}).get("p95"),
        cached_context_tokens=d.get("cached_context_tokens")),
        "slider_redraw": figure(
        rr["p95"], "ms (p95)", f"{src}.rerank_ms", st["p95"], "a step with redraw (p95)",
        _r(rr["p95"], st["p95"]), 16.0, p50=rr["p50"]),
        "lateness_generating": figure(
        late["p99"], "ms (p99)", f"{src}.lateness_ms", None, None, None, 30.0,
        p50=late["p50"], max=late["max"], run_steps_per_s=d.get("run_steps_per_s"))}
    s = d.get("startup")
    if s is None or "error" in s:
        out["startup"] = {"error": (s or {}).get("error", "start-up was not measured")}
    else:
        fl = floor.get("import_s")
        out["startup"] = figure(
            s["first_result_s"], "s", f"{src}.startup", fl,
            "fresh interpreter importing torch, numpy, safetensors, PySide6, pyqtgraph", _r(
                s["first_result_s"], fl), 2.5, first_paint_s=s["first_paint_s"],
            all_panels_s=s["all_panels_s"])
    return out


def _panels_figures(p: dict) -> dict:
    src = "bench_panels"
    co = p["coalescing"]
    return {
        "attention_head_redraw": figure(p["attention_head_ms"], "ms", f"{src}", None, None, None,
                                        float(p.get("attention_head_target_ms", 10))),
        "attention_all_heads_redraw": figure(
            p["attention_all_heads_ms"], "ms", f"{src}", None, None, None,
            float(p.get("attention_all_heads_target_ms", 30))),
        "redraw_coalescing": figure(co["redraws"], "redraws", f"{src}.coalescing",
                                    co["signals"], "step_ready signals in the burst",
                                    _r(co["redraws"], co["signals"]), 3),
    }


def _training_figures(t: dict, model: dict | None) -> dict:
    src = "bench_training"
    threads, s = _training_summary(t)
    head = None
    if model and "error" not in model:
        head = model.get("training", {}).get("speedup")
    ratio = _round(s["ratio_median"])
    return {
        "training_gui_vs_headless": figure(
            _round(s["gui_tokens_per_s"], 1), "tokens/s", f"{src}.summary.{threads}",
            _round(s["headless_tokens_per_s"], 1),
            "model.train_gpt.train_gpt headless, same plan, same run", ratio, 0.95, "ratio", True,
            threads=int(threads), gui_vs_reference_derived=_round(ratio * head)
            if isinstance(head, (int, float)) and isinstance(ratio, (int, float)) else None),
        "lateness_training": figure(_round(s["lateness_p99_ms"]), "ms (p99)", f"{src}", None,
                                    None, None, 30.0, threads=int(threads)),
        "loss_curve_redraws": figure(_round(s["loss_redraws_per_s_min"]), "redraws/s", f"{src}",
                                     None, None, None, 2.0, "value", True),
    }


#: every figure name, by the benchmark it comes from (a failed benchmark errors all of its own)
FIGURES = {
    "model": ("training_headless_vs_reference", "capture_overhead_T64", "capture_overhead_T256",
              "kv_cache_T64", "kv_cache_T256", "kv_cache_T1024", "stepper_step_T256",
              "gpt2_small_step_T128", "gpt2_small_peak_rss_T1024"),
    "panels": ("attention_head_redraw", "attention_all_heads_redraw", "redraw_coalescing"),
    "gui": ("step_with_redraw", "slider_redraw", "lateness_generating", "startup"),
    "training": ("training_gui_vs_headless", "lateness_training", "loss_curve_redraws"),
}


def collect_figures(results: dict, floor: dict) -> dict:
    makers = {"model": _model_figures, "panels": _panels_figures,
              "gui": lambda d: _gui_figures(d, floor),
              "training": lambda d: _training_figures(d, results.get("model"))}
    figs: dict = {}
    for name, keys in FIGURES.items():
        doc = results.get(name)
        if doc is None or "skipped" in doc and isinstance(doc["skipped"], str):
            why = (doc or {}).get("skipped", "not run")
            got = {k: {"error": f"bench_{name} skipped: {why}"} for k in keys}
        elif "error" in doc:
            got = {k: {"error": f"bench_{name} failed: {doc['error']}"} for k in keys}
        else:
            try:
                got = makers[name](doc)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                got = {k: {"error": f"bench_{name}'s document lacks a field: "
                                    f"{type(e).__name__}: {e}"} for k in keys}
        figs.update({k: got.get(k, {"error": "not produced"}) for k in keys})
    return figs


def device_notes(device: str, results: dict) -> list[str]:
    """Warn when a benchmark ran somewhere other than where --device asked (the app falls back
    to the CPU when a device is missing; bench_panels and bench_training always use the CPU)."""
    notes = []
    gui = results.get("gui", {})
    ran = gui.get("model", {}).get("device") if isinstance(gui.get("model"), dict) else None
    if ran is not None and str(ran).split(":")[0] != device:
        notes.append(f"bench_gui ran on {ran}, not on the requested {device}")
    if device != "cpu":
        notes += [f"bench_{n} always runs on the CPU" for n in ("panels", "training")
                  if "error" not in results.get(n, {}) and "skipped" not in results.get(n, {})]
    return notes
