"""The torch-free parts of ``model`` import without torch (the GUI's first paint must not wait
for it); ``model.GPT`` is still there, imported on first use.

Each check runs in a fresh interpreter: this test process has torch loaded already (conftest).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TORCH_FREE = ["model", "model.config", "model.tokenizer", "model.sampling", "model.tasks",
              "model.step_result", "model.bpe_tokenizer", "model.positional_view", "model.ablation",
              "model.rollout"]


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("name", TORCH_FREE)
def test_torch_free_module_does_not_import_torch(name):
    out = _run(f"import sys, importlib\nm = importlib.import_module({name!r})\n"
               f"print(m.__file__, 'torch' in sys.modules)")
    path, loaded = out.rsplit(" ", 1)
    assert Path(path).is_relative_to(ROOT)  # this checkout's package, not an installed one
    assert loaded == "False", f"importing {name} loaded torch"


def test_model_gpt_is_loaded_lazily():
    out = _run("import sys, model\n"
               "before = 'torch' in sys.modules\n"
               "gpt = model.GPT\n"
               "print(before, 'torch' in sys.modules, gpt.__module__, gpt is model.GPT)")
    assert out.split() == ["False", "True", "model.transformer", "True"]


def test_unknown_name_is_an_attribute_error():
    out = _run("import model\n"
               "try:\n    model.NoSuchThing\nexcept AttributeError as e:\n    print('ok', e)")
    assert out.startswith("ok") and "NoSuchThing" in out
