"""One way in for every model a person can open: ``open_model(path_or_name)``.

- a Transformer Explorer checkpoint (``.safetensors`` with this project's metadata),
- a Hugging Face GPT-2-family folder (``config.json`` + weights + tokenizer),
- a nanoGPT ``ckpt.pt`` (or the folder holding it),
- a model name such as ``gpt2`` found in the local Hugging Face cache (never downloaded).

Every problem is one :class:`~model.checkpoints.CheckpointError` naming what is wrong.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .adapters.hf_cache import find_cached, looks_like_model_name
from .adapters.hf_gpt2 import open_hf_folder
from .adapters.nanogpt import CKPT_NAME, open_nanogpt
from .checkpoints import CheckpointError, LoadedCheckpoint, load_checkpoint

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt")
# files of a Hugging Face folder: given one of them (a drop, a file dialog), open the folder
HF_FOLDER_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


def open_model(source: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """The model, tokenizer and summary behind ``source`` (see the module docstring)."""
    path = Path(source)
    if path.is_dir():
        if (path / "config.json").is_file():
            return open_hf_folder(path, device)
        if (path / CKPT_NAME).is_file():
            return open_nanogpt(path, device)
        raise CheckpointError(
            f"{path}: this folder has neither config.json (a Hugging Face model folder) nor "
            f"{CKPT_NAME} (a nanoGPT checkpoint)")
    if path.is_file():
        if path.name in HF_FOLDER_FILES and (path.parent / "config.json").is_file():
            return open_hf_folder(path.parent, device)
        if path.suffix in PICKLE_SUFFIXES:
            return open_nanogpt(path, device)
        return load_checkpoint(path, device)
    if looks_like_model_name(str(source)):
        return open_hf_folder(find_cached(str(source)), device, name=str(source))
    return load_checkpoint(path, device)  # its message for a file that is not there


__all__ = ["open_model"]
