"""Transformer Explorer's model library: a GPT that shows its work. Torch and numpy only."""
from .config import CaptureSpec, ConfigError, ModelConfig, SampleConfig, TrainConfig
from .tokenizer import CharTokenizer, UnknownCharactersError
from .transformer import GPT

__all__ = ["CaptureSpec", "ConfigError", "ModelConfig", "SampleConfig", "TrainConfig",
           "CharTokenizer", "UnknownCharactersError", "GPT"]
