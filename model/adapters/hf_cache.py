"""Find a model NAME (``gpt2``, ``openai-community/gpt2``) in the local Hugging Face cache.

Only what is already on disk: nothing is downloaded. The cache is where ``huggingface-cli
download`` and ``from_pretrained`` put models: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``; a model ``org/name`` lives
in ``models--org--name/snapshots/<revision>/`` and ``refs/main`` names the revision.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..checkpoints import CheckpointError

# the hub moved the original GPT-2 models under organisations; a cache may hold either name
_ALIASES = {
    "gpt2": ("openai-community/gpt2",),
    "gpt2-medium": ("openai-community/gpt2-medium",),
    "gpt2-large": ("openai-community/gpt2-large",),
    "gpt2-xl": ("openai-community/gpt2-xl",),
    "distilgpt2": ("distilbert/distilgpt2",),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def looks_like_model_name(s: str) -> bool:
    """``gpt2`` or ``org/name``: no file suffix a checkpoint would have, at most one slash."""
    return bool(_NAME.match(s)) and not s.endswith((".safetensors", ".pt", ".pth", ".bin",
                                                     ".ckpt", ".json"))


def cache_dirs() -> list[Path]:
    """Where the Hugging Face cache may be, in the order the hub library looks."""
    out: list[Path] = []
    if os.environ.get("HF_HUB_CACHE"):
        out.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        out.append(Path(os.environ["HF_HOME"]) / "hub")
    if os.environ.get("XDG_CACHE_HOME"):
        out.append(Path(os.environ["XDG_CACHE_HOME"]) / "huggingface" / "hub")
    out.append(Path.home() / ".cache" / "huggingface" / "hub")
    seen: list[Path] = []
    for p in out:
        p = p.expanduser()
        if p not in seen:
            seen.append(p)
    return seen


def _snapshot(repo: Path) -> Path | None:
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        rev = ref.read_text(encoding="utf-8").strip()
        if rev and (snapshots / rev / "config.json").is_file():
            return snapshots / rev
    if not snapshots.is_dir():
        return None
    # no usable refs/main (an offline copy): the newest complete snapshot
    candidates = [s for s in snapshots.iterdir() if (s / "config.json").is_file()]
    return max(candidates, key=lambda s: s.stat().st_mtime) if candidates else None


def find_cached(name: str) -> Path:
    """The snapshot folder of ``name``; else one :class:`CheckpointError` saying where it
    looked and how to get the model."""
    names = (name, *_ALIASES.get(name, ()))
    dirs = cache_dirs()
    for d in dirs:
        for n in names:
            repo = d / ("models--" + n.replace("/", "--"))
            if repo.is_dir():
                snap = _snapshot(repo)
                if snap is not None:
                    return snap
    looked = ", ".join(str(d) for d in dirs)
    raise CheckpointError(
        f"{name!r} is not a file or folder here, and no model of that name is in the local "
        f"Hugging Face cache (looked in {looked}); nothing is downloaded: on a machine with "
        f"network run `huggingface-cli download {name}` (then copy the cache folder here), or "
        "pass the path of a model folder")


__all__ = ["cache_dirs", "find_cached", "looks_like_model_name"]
