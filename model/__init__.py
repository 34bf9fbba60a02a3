"""Transformer Explorer's model library: a GPT that shows its work. Torch and numpy only.

The package namespace is lazy (PEP 562): ``import model`` or ``import model.tokenizer`` does not
import torch. ``model.GPT`` and the other names below import their module on first use, so the
GUI can import the torch-free parts (config, tokenizer, sampling, tasks) at module level and
torch is loaded only when a model is built.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the submodule that defines it
_LAZY = {
    "CaptureSpec": "config",
    "ConfigError": "config",
    "ModelConfig": "config",
    "SampleConfig": "config",
    "TrainConfig": "config",
    "CharTokenizer": "tokenizer",
    "Tokenizer": "tokenizer",
    "load_tokenizer": "tokenizer",
    "tokenizer_from_dict": "tokenizer",
    "UnknownCharactersError": "tokenizer",
    "GPT": "transformer",
}

__all__ = [  # noqa: F822 - provided lazily by __getattr__
    "CaptureSpec", "ConfigError", "ModelConfig", "SampleConfig", "TrainConfig",
    "CharTokenizer", "Tokenizer", "load_tokenizer", "tokenizer_from_dict", "UnknownCharactersError",
    "GPT",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        # submodules (``model.stepper``) are found by the import system, not here
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from .config import CaptureSpec, ConfigError, ModelConfig, SampleConfig, TrainConfig
    from .tokenizer import (
        CharTokenizer,
        Tokenizer,
        UnknownCharactersError,
        load_tokenizer,
        tokenizer_from_dict,
    )
    from .transformer import GPT
