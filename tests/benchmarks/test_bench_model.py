"""benchmarks/bench_model.py --quick runs and prints one complete JSON document.

Only the shape of the document is checked: the figures are measurements on whatever machine
runs the tests, so none is asserted (see the benchmark for the targets).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_model.py"

TOP = {"benchmark", "quick", "threads", "seed", "torch", "python", "machine", "cpu_count",
       "malloc_tuned", "training", "capture", "kv_cache", "gpt2_small", "elapsed_s"}
TRAINING = {"config", "rounds", "steps_per_round", "ours_tokens_per_s", "reference_tokens_per_s",
            "ours_ms_per_step", "reference_ms_per_step", "speedup", "speedup_cpu_time",
            "target_speedup", "ours_bf16_autocast", "ours_optimizer", "cpu_native_bf16",
            "ours_fp32_tokens_per_s", "speedup_fp32"}
CAPTURE_T = {"plain_ms", "captured_ms", "ratio", "ratio_cpu_time"}
KV_T = {"full_ms", "cached_ms", "speedup", "speedup_cpu_time"}
STEPPER = {"T", "step_ms", "full_recompute_ms", "speedup", "step_cpu_ms",
           "full_recompute_cpu_ms", "spec", "block_size"}
GPT2 = {"skipped", "config", "n_params", "spec", "step_ms_T128", "step_cpu_ms_T128",
        "full_recompute_ms_T128", "full_recompute_cpu_ms_T128", "step_speedup_T128",
        "target_step_ms", "target_peak_rss_gb", "peak_rss_gb_T1024", "vm_hwm_gb_T1024",
        "rss_after_model_gb", "rss_error"}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def test_quick_benchmark_prints_complete_json(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(out)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)  # the whole of stdout is one JSON document
    assert json.loads(out.read_text(encoding="utf-8")) == doc

    assert set(doc) == TOP
    assert doc["quick"] is True and doc["threads"] >= 1

    tr = doc["training"]
    assert set(tr) == TRAINING
    for k in ("ours_tokens_per_s", "reference_tokens_per_s", "speedup", "speedup_cpu_time",
              "ours_fp32_tokens_per_s", "speedup_fp32"):
        assert _is_number(tr[k]) and tr[k] > 0, k
    assert tr["config"]["n_params_ours"] == tr["config"]["n_params_reference"]

    cap = doc["capture"]
    for T in ("T64", "T256"):
        assert set(cap[T]) == CAPTURE_T
        assert all(_is_number(v) and v > 0 for v in cap[T].values())

    kv = doc["kv_cache"]
    for T in ("T64", "T256", "T1024"):
        assert set(kv[T]) == KV_T
        assert all(_is_number(v) and v > 0 for v in kv[T].values())
    assert set(kv["stepper"]) == STEPPER

    g = doc["gpt2_small"]
    assert set(g) == GPT2
    assert g["skipped"] is True  # --quick leaves out the GPT-2-small-sized model
