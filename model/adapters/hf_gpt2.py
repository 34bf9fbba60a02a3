"""Hugging Face GPT-2-family model folders: open one from disk, save any GPT as one.

A folder holds ``config.json`` (``model_type`` ``gpt2``), the weights (``model.safetensors``,
possibly sharded with ``model.safetensors.index.json``, or ``pytorch_model.bin`` read with
``torch.load(weights_only=True)``, which refuses any pickle that would build other objects than
tensors) and the tokenizer (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``). gpt2,
distilgpt2 and gpt2-medium/large/xl differ only in their sizes. ``activation_function``
``gelu_new`` (GPT-2's own) is GELU with the tanh approximation; ``gelu`` is the exact one.
"""
from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..bpe_tokenizer import END_OF_TEXT, BPETokenizer
from ..checkpoints import CheckpointError, LoadedCheckpoint, atomic_write_bytes, unwrap_model
from ..config import ConfigError, ModelConfig
from ..devices import resolve_device
from ..tokenizer import CharTokenizer, Tokenizer, TokenizerError
from ..transformer import GPT
from .gpt2_weights import gpt2_state_from_gpt, gpt_from_gpt2_state

SUPPORTED_FAMILIES = ("gpt2",)
SUPPORTED_TEXT = ("GPT-2 family models (model_type 'gpt2': gpt2, distilgpt2, gpt2-medium, "
                  "gpt2-large, gpt2-xl and models trained in their shape)")
# Hugging Face's activation names -> ours
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent}: no config.json, so this is not a Hugging Face "
                              "model folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot be read as JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: is not a JSON object")
    return data


def config_from_hf(hf: dict, where: str) -> ModelConfig:
    """This project's ModelConfig for a Hugging Face GPT-2 ``config.json`` (already parsed)."""
    kind = hf.get("model_type")
    if kind not in SUPPORTED_FAMILIES:
        raise CheckpointError(f"{where}: model_type {kind!r} is not supported; Transformer "
                              f"Explorer opens {SUPPORTED_TEXT}")
    act = hf.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise CheckpointError(f"{where}: activation_function {act!r} is not supported (only "
                              f"{', '.join(sorted(_ACTIVATIONS))})")
    for key, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                    ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if hf.get(key, ok) != ok:
            raise CheckpointError(f"{where}: {key}={hf[key]!r} is a GPT-2 variant this project "
                                  "does not implement")
    n_inner = hf.get("n_inner")
    try:
        return ModelConfig(
            vocab_size=hf.get("vocab_size", 50257),
            block_size=hf.get("n_positions", hf.get("n_ctx", 1024)),
            n_layer=hf.get("n_layer", 12), n_head=hf.get("n_head", 12),
            n_embd=hf.get("n_embd", 768), n_ffn=n_inner if n_inner is not None else 0,
            pos_kind="learned", norm="pre", dropout=0.0, bias=True,
            tie_weights=bool(hf.get("tie_word_embeddings", True)),
            activation=_ACTIVATIONS[act],
            layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-5)))
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: config.json describes an impossible model ({e})") \
            from None


def safe_torch_load(path: Path) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only. A pickle that asks
    for anything else (a function to call, a class to build) is refused before it runs."""
    try:
        with warnings.catch_warnings():  # a newer pickle protocol is read fine; say nothing
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        raise CheckpointError(
            f"{path}: refused: the file's pickle asks for more than tensors (it could run code), "
            f"so it was not loaded ({first[:160]})") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (RuntimeError, OSError, EOFError, ValueError, AttributeError, ImportError) as e:
        raise CheckpointError(f"{path}: not a PyTorch weights file that can be read safely "
                              f"({str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, not a dictionary of "
                              "weights")
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        try:
            # each tensor read into memory of its own: with the default memory map, a tensor
            # the model replaces (the unembedding, re-laid out) stays resident while any other
            # tensor of the file is in use (154 MB of GPT-2-small's 500 MB)
            return load_file(str(path), device="cpu", backend="pread")
        except TypeError:  # safetensors < 0.8 has no backend option
            return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged safetensors file ({e})") from None


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict of a Hugging Face folder, from whichever weights file it has."""
    single = folder / "model.safetensors"
    if single.is_file():
        return _read_safetensors(single)
    for index_name, reader in (("model.safetensors.index.json", _read_safetensors),
                               ("pytorch_model.bin.index.json", safe_torch_load)):
        index = folder / index_name
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise CheckpointError(f"{index}: has no weight_map")
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(reader(folder / str(shard)))
            return state
    if (folder / "pytorch_model.bin").is_file():
        return safe_torch_load(folder / "pytorch_model.bin")
    raise CheckpointError(f"{folder}: no weights (it needs model.safetensors or "
                          "pytorch_model.bin)")


def open_hf_folder(folder: str | Path, device: str | torch.device = "cpu",
                   name: str | None = None) -> LoadedCheckpoint:
    """Open a GPT-2-family folder; every problem is one :class:`CheckpointError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder")
    hf = _read_json(folder / "config.json")
    config = config_from_hf(hf, str(folder / "config.json"))
    try:
        tokenizer = BPETokenizer.from_folder(folder)
    except TokenizerError as e:
        raise CheckpointError(str(e)) from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size:,} tokens but config.json says "
            f"vocab_size={config.vocab_size:,}; they do not belong to the same model")
    model = gpt_from_gpt2_state(read_weights(folder), config, conv1d=True, source=str(folder),
                                config_name="config.json")
    try:
        dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    except ValueError as e:
        raise CheckpointError(f"{folder}: {e}") from None
    model.to(dev).eval()
    summary = {"source": "huggingface", "model_type": hf.get("model_type"),
               "name": name or folder.name, "folder": str(folder)}
    return LoadedCheckpoint(model=model, tokenizer=tokenizer, config=config, summary=summary,
                            path=folder)


def hf_config(config: ModelConfig, tokenizer: Tokenizer) -> dict:
    """``config.json`` for ``GPT2LMHeadModel`` describing a model of this config."""
    out = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None if config.n_ffn == 4 * config.n_embd else config.n_ffn,
        "activation_function": "gelu_new" if config.activation == "gelu_tanh" else "gelu",
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": config.tie_weights,
        "torch_dtype": "float32",
    }
    eot = tokenizer.end_of_text if isinstance(tokenizer, BPETokenizer) else None
    if eot is not None:
        out["bos_token_id"] = out["eos_token_id"] = eot
    return out


def _char_tokenizer_json(tokenizer: CharTokenizer) -> BPETokenizer:
    """A character tokenizer as a ``tokenizer.json``: a BPE without merges over the same
    characters and ids, so transformers and this project both read it."""
    from tokenizers import Tokenizer, decoders, models

    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(tokenizer.chars)}, merges=[]))
    tok.decoder = decoders.Fuse()
    return BPETokenizer(tok)


def save_hf_folder(model: torch.nn.Module, tokenizer: Tokenizer, folder: str | Path) -> Path:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files so that
    ``transformers.GPT2LMHeadModel.from_pretrained(folder)`` gives the same logits."""
    folder = Path(folder)
    model = unwrap_model(model)
    if not isinstance(model, GPT):
        raise CheckpointError(f"{folder}: only this project's GPT can be exported")
    config = model.config
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(f"{folder}: cannot export: the tokenizer has "
                              f"{tokenizer.vocab_size} tokens, the model {config.vocab_size}")
    if isinstance(tokenizer, BPETokenizer):
        bpe = tokenizer
    elif isinstance(tokenizer, CharTokenizer):
        bpe = _char_tokenizer_json(tokenizer)
    else:
        raise CheckpointError(f"{folder}: cannot export a {tokenizer.kind!r} tokenizer in "
                              "Hugging Face's format")
    state = gpt2_state_from_gpt(model)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        bpe.save_folder(folder)
        # GPT-2's class for its byte-level BPE; any other tokenizer.json as it stands
        cls = "GPT2Tokenizer" if bpe.byte_level else "PreTrainedTokenizerFast"
        tok_cfg = {"model_max_length": config.block_size, "tokenizer_class": cls}
        if bpe.end_of_text is not None:
            tok_cfg.update(bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, unk_token=END_OF_TEXT)
        (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2),
                                                      encoding="utf-8")
        weights = folder / "model.safetensors"
        tmp = folder / ".model.safetensors.tmp"
        save_file(state, str(tmp), metadata={"format": "pt"})
        tmp.replace(weights)
        # config.json last: a new folder cut short by a crash has none, so it is not taken for
        # a complete model
        atomic_write_bytes(folder / "config.json",
                           json.dumps(hf_config(config, bpe), indent=2).encode("utf-8"))
    except OSError as e:
        raise CheckpointError(f"{folder}: cannot write ({e.strerror or e})") from None
    return folder


__all__ = ["SUPPORTED_FAMILIES", "SUPPORTED_TEXT", "config_from_hf", "open_hf_folder",
           "read_weights", "safe_torch_load", "save_hf_folder", "hf_config"]
