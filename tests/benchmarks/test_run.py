"""benchmarks/run.py: one quick run of every benchmark gives one complete JSON document.

This is the only test that runs the benchmarks (each costs seconds), so it also checks the shape
of each benchmark's own document (what tests/benchmarks/test_bench_model.py and the bench_panels
test in tests/explorer/test_attention_panel.py used to do). Figures are measurements on whatever
machine runs the tests, so no timing is asserted; functional facts (a burst of signals coalesces
into a few redraws, our model and the reference have the same parameters) are.
The runner's failure handling is tested in-process with tiny stand-in scripts.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"


def _load_run():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


run = _load_run()
from headline_figures import FIGURES  # noqa: E402  (run.py put benchmarks/ on sys.path)

TOP = {"benchmark", "quick", "device", "options", "machine", "figures", "import_floor",
       "benchmarks", "failed", "notes", "elapsed_s"}
MACHINE = {"cpu_model", "cores", "cores_usable", "memory_gb", "platform", "python", "torch",
           "pyside6", "device", "gpu", "date", "load_average_start", "load_average_end"}
FIGURE_KEYS = {"value", "unit", "reference", "reference_is", "ratio", "target", "target_on",
               "higher_is_better", "meets_target", "source"}
ALL_FIGURES = {k for keys in FIGURES.values() for k in keys}
EXPECTED_FIGURES = {  # the figures issue 6 asks for, by name: a rename must be deliberate
    "training_headless_vs_reference", "training_gui_vs_headless", "capture_overhead_T64",
    "capture_overhead_T256", "kv_cache_T64", "kv_cache_T256", "kv_cache_T1024",
    "stepper_step_T256", "step_with_redraw", "slider_redraw", "startup", "lateness_generating",
    "lateness_training", "gpt2_small_step_T128", "gpt2_small_peak_rss_T1024",
    "attention_head_redraw", "attention_all_heads_redraw", "redraw_coalescing",
    "loss_curve_redraws"}

# bench_model's document (was tests/benchmarks/test_bench_model.py)
MODEL_TOP = {"benchmark", "quick", "device", "device_name", "threads", "seed", "torch", "python",
             "machine", "cpu_count", "malloc_tuned", "training", "capture", "kv_cache",
             "gpt2_small", "elapsed_s", "runner_elapsed_s"}
MODEL_TRAINING = {"config", "rounds", "steps_per_round", "ours_tokens_per_s",
                  "reference_tokens_per_s", "ours_ms_per_step", "reference_ms_per_step",
                  "speedup", "speedup_cpu_time", "target_speedup", "ours_bf16_autocast",
                  "ours_optimizer", "cpu_native_bf16", "ours_fp32_tokens_per_s", "speedup_fp32"}
CAPTURE_T = {"plain_ms", "captured_ms", "ratio", "ratio_cpu_time"}
KV_T = {"full_ms", "cached_ms", "speedup", "speedup_cpu_time"}
STEPPER = {"T", "step_ms", "full_recompute_ms", "speedup", "step_cpu_ms",
           "full_recompute_cpu_ms", "spec", "block_size"}
GPT2 = {"skipped", "step_device", "rss_device", "config", "n_params", "spec", "step_ms_T128",
        "step_cpu_ms_T128", "full_recompute_ms_T128", "full_recompute_cpu_ms_T128",
        "step_speedup_T128", "target_step_ms", "target_peak_rss_gb", "peak_rss_gb_T1024",
        "vm_hwm_gb_T1024", "rss_after_model_gb", "rss_error"}
SUMMARY = {"p50", "p95", "p99", "max", "n"}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@pytest.fixture(scope="module")
def quick_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run.json"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    # about 40 s on a 2-core machine; the limit leaves room for a loaded CI machine
    p = subprocess.run([sys.executable, str(RUN), "--quick", "--out", str(out)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)  # the whole of stdout is one JSON document
    assert json.loads(out.read_text(encoding="utf-8")) == doc
    return doc


def test_quick_run_is_complete(quick_doc):
    doc = quick_doc
    assert set(doc) == TOP
    assert doc["failed"] == [], {k: v.get("stderr_tail") for k, v in doc["benchmarks"].items()}
    assert doc["quick"] is True and doc["device"] == "cpu" and doc["notes"] == []
    assert set(doc["benchmarks"]) == {f"bench_{n}" for n in run.BENCHES}
    m = doc["machine"]
    assert set(m) == MACHINE
    assert m["cores"] >= 1 and m["cpu_model"] and m["torch"] and m["gpu"] is None
    assert datetime.fromisoformat(m["date"]).tzinfo is not None
    assert doc["import_floor"]["import_s"] > 0


def test_quick_run_has_every_figure(quick_doc):
    figs = quick_doc["figures"]
    assert set(figs) == ALL_FIGURES == EXPECTED_FIGURES
    for name, f in figs.items():
        assert "error" not in f, (name, f)
        assert FIGURE_KEYS <= set(f), name
        assert f["source"].startswith("bench_"), name
        if f.get("skipped"):  # --quick leaves out the GPT-2-small-sized model
            assert name.startswith("gpt2_small") and f["value"] is None, name
            continue
        assert _number(f["value"]) and f["value"] > 0, (name, f["value"])
        if f["reference"] is not None:
            assert _number(f["ratio"]) and f["ratio"] > 0, name
        if f["target"] is not None:
            assert isinstance(f["meets_target"], bool), name
    assert {n for n, f in figs.items() if f.get("skipped")} == {
        "gpt2_small_step_T128", "gpt2_small_peak_rss_T1024"}
    # the ratios the issue asks for really are against a reference from the same run
    for name in ("training_headless_vs_reference", "training_gui_vs_headless",
                 "capture_overhead_T256", "kv_cache_T256", "step_with_redraw", "startup"):
        assert figs[name]["reference"] is not None, name
    assert figs["kv_cache_T256"]["ratio"] == pytest.approx(
        figs["kv_cache_T256"]["reference"] / figs["kv_cache_T256"]["value"], rel=0.05)


def test_quick_run_keeps_bench_model_document(quick_doc):
    doc = quick_doc["benchmarks"]["bench_model"]
    assert set(doc) == MODEL_TOP
    assert doc["quick"] is True and doc["device"] == "cpu" and doc["threads"] >= 1
    tr = doc["training"]
    assert set(tr) == MODEL_TRAINING
    assert tr["config"]["n_params_ours"] == tr["config"]["n_params_reference"]
    for T in ("T64", "T256"):
        assert set(doc["capture"][T]) == CAPTURE_T
        assert all(_number(v) and v > 0 for v in doc["capture"][T].values())
    for T in ("T64", "T256", "T1024"):
        assert set(doc["kv_cache"][T]) == KV_T
        assert all(_number(v) and v > 0 for v in doc["kv_cache"][T].values())
    assert set(doc["kv_cache"]["stepper"]) == STEPPER
    assert set(doc["gpt2_small"]) == GPT2 and doc["gpt2_small"]["skipped"] is True


def test_quick_run_keeps_gui_panels_and_training_documents(quick_doc):
    b = quick_doc["benchmarks"]
    panels = b["bench_panels"]  # was the bench_panels test in test_attention_panel.py
    for key in ("attention_head_ms", "attention_all_heads_ms", "attention_lines_ms",
                "positional_step_ms", "architecture_build_ms"):
        assert panels[key] > 0, key
    assert panels["attention_all_heads_image"] == [1536, 1536]  # 12 × 12 heads of 128 tokens
    assert 1 <= panels["coalescing"]["redraws"] <= 3 < panels["coalescing"]["signals"]
    gui = b["bench_gui"]
    for key in ("step_ms", "worker_ms", "gui_ms", "rerank_ms", "lateness_ms"):
        assert SUMMARY <= set(gui[key]) and gui[key]["n"] > 0, key
    assert gui["context_tokens"] == gui["model"]["block_size"]
    assert gui["startup"]["first_paint_s"] <= gui["startup"]["first_result_s"]
    training = b["bench_training"]
    assert training["steps"] == 100  # run.py's quick setting
    assert training["runs"] and all(r["gui"]["final_loss"] == pytest.approx(
        r["headless"]["final_loss"], rel=1e-3) for r in training["runs"])


# -- failure handling, in-process with stand-in scripts ------------------------------------------
def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return [sys.executable, str(path)]


def test_parse_json_skips_noise_around_the_document():
    assert run.parse_json('warning: {x}\n{"a": 1}\n') == {"a": 1}
    assert run.parse_json('{"a": 1}\nnoise\n{"b": {"c": 2}}\n') == {"b": {"c": 2}}
    with pytest.raises(ValueError):
        run.parse_json("no json here\n")


def test_run_child_reports_failures(tmp_path):
    bad = run.run_child(_script(tmp_path, "bad.py",
                                "import sys\nprint('boom: no GPU', file=sys.stderr)\n"
                                "sys.exit(3)\n"), timeout=30)
    assert bad["error"] == "exit status 3" and "boom: no GPU" in bad["stderr_tail"]
    junk = run.run_child(_script(tmp_path, "junk.py", "print('not json')\n"), timeout=30)
    assert "no JSON" in junk["error"]
    slow = run.run_child(_script(tmp_path, "slow.py", "import time\ntime.sleep(30)\n"),
                         timeout=1)
    assert slow["error"].startswith("timed out")
    good = run.run_child(_script(tmp_path, "good.py", "print('{\"x\": NaN, \"y\": [1]}')\n"),
                         timeout=30)
    assert good["x"] is None and good["y"] == [1]  # strict JSON: NaN becomes null


def test_a_failed_benchmark_still_gives_valid_json(tmp_path, monkeypatch, capsys):
    cmd = _script(tmp_path, "fail.py", "import sys\nsys.exit('cannot run here')\n")
    monkeypatch.setattr(run, "bench_command", lambda name, quick, device: cmd)
    out = tmp_path / "doc.json"
    assert run.main(["--quick", "--only", "model,panels", "--skip-gui", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(out.read_text(encoding="utf-8"))
    assert doc["failed"] == ["bench_model"]
    assert "cannot run here" in doc["benchmarks"]["bench_model"]["stderr_tail"]
    assert doc["benchmarks"]["bench_panels"] == {"skipped": "--skip-gui"}
    assert doc["benchmarks"]["bench_gui"] == {"skipped": "not in --only"}
    for name in FIGURES["model"]:
        assert "bench_model failed" in doc["figures"][name]["error"]
    for name in FIGURES["gui"]:
        assert "skipped" in doc["figures"][name]["error"]


def test_a_document_missing_fields_gives_figure_errors():
    figs = run.collect_figures({"model": {"training": {}}, "gui": {"skipped": "x"}}, {})
    assert "lacks a field" in figs["kv_cache_T256"]["error"]
    assert set(figs) == ALL_FIGURES


def test_long_benchmarks_run_only_when_named(tmp_path, monkeypatch, capsys):
    assert not set(run.OPT_IN) & set(run.parse_args([]).names)
    assert run.parse_args(["--only", "gpt2,bench_ablation,ddp"]).names == [
        "gpt2", "ablation", "ddp"]
    ran = []

    def command(name, quick, device):
        ran.append(name)
        return _script(tmp_path, f"{name}.py", "print('{\"x\": 1}')\n")

    monkeypatch.setattr(run, "bench_command", command)
    assert run.main(["--quick", "--only", "ablation", "--skip-gui"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert ran == []  # it needs Qt
    assert doc["benchmarks"]["bench_ablation"] == {"skipped": "--skip-gui"}
    assert run.main(["--quick", "--only", "ddp"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert ran == ["ddp"] and doc["benchmarks"]["bench_ddp"]["x"] == 1
    assert "run only when named" in doc["benchmarks"]["bench_gpt2"]["skipped"]


def test_unknown_benchmark_is_a_usage_error():
    with pytest.raises(SystemExit) as e:
        run.parse_args(["--only", "model,nope"])
    assert e.value.code == 2
    assert run.parse_args(["--only", "bench_gui"]).names == ["gui"]
