"""What ships inside the package: the example models (with their model card) and a sample corpus.

They live in ``model/assets/`` as package data, so a ``pip install`` (not only a clone) carries
them, and a command can name them from any folder: ``--checkpoint shakespeare_char`` or
``--corpus sonnets``. A path that exists always wins over a shipped name, so a user's own
``induction.safetensors`` in the current folder is never shadowed.
"""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
MODELS = ASSETS / "models"
CORPORA = ASSETS / "corpora"
DEFAULT_MODEL = MODELS / "shakespeare_char.safetensors"

MODEL_SUFFIX = ".safetensors"
OPTIM_SUFFIX = ".optim.safetensors"
CORPUS_SUFFIX = ".txt"


def shipped_models() -> list[Path]:
    """The shipped model files, sorted by name."""
    if not MODELS.is_dir():
        return []
    return sorted(p for p in MODELS.glob("*" + MODEL_SUFFIX) if not p.name.endswith(OPTIM_SUFFIX))


def shipped_corpora() -> list[Path]:
    """The shipped sample corpora (plain UTF-8 text), sorted by name."""
    return sorted(CORPORA.glob("*" + CORPUS_SUFFIX)) if CORPORA.is_dir() else []


def _by_name(spec: str, files: list[Path], suffix: str) -> Path | None:
    # only a bare name counts ("induction" or "induction.safetensors"), never a path with folders
    if not spec or Path(spec).name != spec:
        return None
    stem = spec[: -len(suffix)] if spec.endswith(suffix) else spec
    return next((p for p in files if p.name == stem + suffix), None)


def resolve_checkpoint(spec: str | Path) -> Path:
    """``spec`` itself when it exists, else the shipped model of that name, else ``spec``
    unchanged (so loading it reports the missing file under the name the user typed)."""
    path = Path(spec)
    if path.exists():
        return path
    return _by_name(str(spec), shipped_models(), MODEL_SUFFIX) or path


def resolve_corpus(spec: str) -> str:
    """Like :func:`resolve_checkpoint` for a corpus: ``sonnets`` is the shipped sample text.
    Synthetic tasks (``task:copy``) and existing files pass through unchanged."""
    if spec.startswith("task:") or Path(spec).exists():
        return spec
    found = _by_name(spec, shipped_corpora(), CORPUS_SUFFIX)
    return str(found) if found is not None else spec


#: the prompt each shipped model is best shown with (File → Examples in the explorer starts
#: from it): the induction model gets a sequence of distinct letters and the start of its
#: repeat, so the next tokens are predictable only by looking back (what an induction head does)
DEFAULT_PROMPTS = {
    "shakespeare_char": "ROMEO:\n",
    "induction": "\nbhadgcebhad",
    "shakespeare_bpe": "ROMEO:\n",
    "numbers_to_words": "307",  # a source: the model writes "three hundred seven"
    "sonnets_encoder": "Shall I compare thee to a summer's day?\n",
}


def default_prompt(path: str | Path) -> str | None:
    """The prompt to start a shipped model from, or None for any other file."""
    p = Path(path)
    if p.parent.resolve() != MODELS.resolve():
        return None
    return DEFAULT_PROMPTS.get(p.name[: -len(MODEL_SUFFIX)] if p.name.endswith(MODEL_SUFFIX)
                               else p.name)


def model_names() -> list[str]:
    """Names ``--checkpoint`` accepts besides paths (for help texts and messages)."""
    return [p.name[: -len(MODEL_SUFFIX)] for p in shipped_models()]


__all__ = ["ASSETS", "MODELS", "CORPORA", "DEFAULT_MODEL", "shipped_models", "shipped_corpora",
           "resolve_checkpoint", "resolve_corpus", "model_names", "DEFAULT_PROMPTS",
           "default_prompt"]
