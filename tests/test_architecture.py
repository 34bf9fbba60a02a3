"""model/ is a GUI-free library: it never imports PySide6, pyqtgraph or explorer.

Checked three ways: import-linter's contract from pyproject.toml (when installed), a static AST
walk over every file in model/ (needs nothing), and importing every model module in a fresh
interpreter to see what actually gets loaded.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "model"
FORBIDDEN = ("PySide6", "pyqtgraph", "explorer")


def _is_forbidden(module: str) -> bool:
    top = module.split(".")[0]
    return top in FORBIDDEN


def forbidden_imports(source: str, filename: str = "<string>", package_depth: int = 1):
    """(line, what) for every import of a forbidden package in ``source``.

    ``package_depth`` is how many packages deep the file sits (model/x.py: 1), so relative imports
    that climb out of model/ (``from .. import explorer``) are caught too. Dynamic imports with a
    literal name (``importlib.import_module("PySide6")``, ``__import__("pyqtgraph")``) count.
    """
    tree = ast.parse(source, filename=filename)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and _is_forbidden(node.module):
                    found.append((node.lineno, node.module))
            elif node.level > package_depth:
                # climbs above model/: the target is a top-level package or one of its modules
                names = [node.module] if node.module else [a.name for a in node.names]
                found += [(node.lineno, "." * node.level + n) for n in names if _is_forbidden(n)]
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                        and _is_forbidden(arg.value):
                    found.append((node.lineno, arg.value))
    return found


def model_files() -> list[Path]:
    return sorted(p for p in MODEL.rglob("*.py") if "__pycache__" not in p.parts)


def test_model_package_has_files():
    files = {p.name for p in model_files()}
    assert {"__init__.py", "config.py", "attention.py", "transformer.py"} <= files


def test_no_gui_imports_in_model_ast():
    problems = []
    for path in model_files():
        depth = len(path.relative_to(ROOT).parts) - 1  # model/x.py -> 1, model/sub/x.py -> 2
        for line, what in forbidden_imports(path.read_text(encoding="utf-8"), str(path), depth):
            problems.append(f"{path.relative_to(ROOT)}:{line} imports {what}")
    assert not problems, "model/ must not import PySide6, pyqtgraph or explorer:\n" + \
        "\n".join(problems)


@pytest.mark.parametrize(("source", "bad"), [
    ("import PySide6", True),
    ("import PySide6.QtWidgets as qw", True),
    ("from PySide6.QtCore import Qt", True),
    ("import numpy, pyqtgraph", True),
    ("from pyqtgraph import PlotWidget", True),
    ("import explorer.app", True),
    ("from explorer import panels", True),
    ("from .. import explorer", True),
    ("from ..explorer.app import main", True),
    ("import importlib\nimportlib.import_module('PySide6.QtGui')", True),
    ("__import__('pyqtgraph')", True),
    ("def f():\n    import PySide6\n", True),  # hidden inside a function
    ("try:\n    import pyqtgraph\nexcept ImportError:\n    pass\n", True),
    ("import torch\nfrom . import config\nfrom .capture import capture", False),
    ("from .explorer_helpers import x", False),  # a sibling module inside model/
    ("import explorerish", False),
    ("x = 'import PySide6'", False),
])
def test_checker_itself(source, bad):
    assert bool(forbidden_imports(textwrap.dedent(source))) is bad


def test_importing_model_loads_no_gui_modules():
    """Import every module of model/ in a fresh interpreter; none of them may pull in Qt."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import model
        for info in pkgutil.walk_packages(model.__path__, "model."):
            if info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
        bad = sorted(m for m in sys.modules
                     if m.split(".")[0] in ("PySide6", "pyqtgraph", "explorer"))
        print("LOADED:" + ",".join(bad))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.strip().splitlines()[-1]
    assert loaded == "LOADED:", f"importing model/ loaded GUI modules: {loaded}"


def test_import_linter_contract():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("lint-imports (import-linter) is not installed; the AST test above still "
                    "enforces the rule")
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    report = out.stdout + out.stderr
    assert out.returncode == 0, f"lint-imports failed:\n{report}"
    assert "KEPT" in report and "BROKEN" not in report
