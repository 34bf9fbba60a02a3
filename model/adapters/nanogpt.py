"""nanoGPT checkpoints (``ckpt.pt`` from Karpathy's ``train.py``) and their tokenizers.

``ckpt.pt`` is a pickle holding ``model_args`` (n_layer, n_head, n_embd, block_size, bias,
vocab_size, dropout), ``model`` (the state dict, prefixed ``_orig_mod.`` when the model was
compiled) and training state; it is read with ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain containers. nanoGPT's layout is GPT-2's with ``nn.Linear``
weights (no transposition), exact GELU and layer norms with epsilon 1e-5: the defaults here.

The tokenizer: a character-level model's ``meta.pkl`` (a plain dict with ``stoi``/``itos``,
beside ``ckpt.pt`` or in ``data/<dataset>/``), read with an unpickler that builds no objects
but dicts, lists, tuples, strings and numbers; or, for a GPT-2 BPE model, GPT-2's tokenizer
files beside ``ckpt.pt`` or ``gpt2`` in the local Hugging Face cache.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from ..bpe_tokenizer import BPETokenizer
from ..checkpoints import CheckpointError, LoadedCheckpoint
from ..config import ConfigError, ModelConfig
from ..devices import resolve_device
from ..tokenizer import CharTokenizer, TokenizerError
from .gpt2_weights import gpt_from_gpt2_state
from .hf_cache import find_cached
from .hf_gpt2 import safe_torch_load

CKPT_NAME = "ckpt.pt"
GPT2_VOCAB = 50257  # nanoGPT pads it to 50304 for speed; the extra rows are never used


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle's own opcodes make (dict, list, tuple, str, bytes, numbers,
    bool, None): any request for a class or function is refused, so nothing can run."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it asks for {module}.{name}")


def read_meta(path: Path) -> CharTokenizer:
    """nanoGPT's ``meta.pkl`` -> a character tokenizer with the same ids."""
    try:
        data = _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused: the pickle is not a plain dictionary ({e}), so "
                              "it was not loaded") from None
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot be read ({e})") from None
    itos = data.get("itos") if isinstance(data, dict) else None
    if not isinstance(itos, dict) or not itos:
        raise CheckpointError(f"{path}: not a nanoGPT meta.pkl (it needs an 'itos' dictionary "
                              "from ids to characters)")
    n = len(itos)
    if sorted(k for k in itos if isinstance(k, int)) != list(range(n)):
        raise CheckpointError(f"{path}: the ids in 'itos' are not 0 .. {n - 1}")
    chars = [itos[i] for i in range(n)]
    if not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise CheckpointError(f"{path}: 'itos' maps ids to strings that are not single "
                              "characters; only character-level meta.pkl files are supported")
    try:
        return CharTokenizer(chars)
    except TokenizerError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _ckpt_file(path: Path) -> Path:
    if path.is_dir():
        if not (path / CKPT_NAME).is_file():
            raise CheckpointError(f"{path}: no {CKPT_NAME} in this folder")
        return path / CKPT_NAME
    return path


def _meta_candidates(ckpt: Path, dataset: object) -> list[Path]:
    here = ckpt.parent
    out = [here / "meta.pkl"]
    if isinstance(dataset, str) and dataset and "/" not in dataset and dataset not in ("..", "."):
        out += [here / "data" / dataset / "meta.pkl", here.parent / "data" / dataset / "meta.pkl"]
    return out


def find_tokenizer(ckpt: Path, dataset: object, vocab_size: int):
    """The tokenizer that belongs to a nanoGPT checkpoint (see the module docstring)."""
    metas = _meta_candidates(ckpt, dataset)
    for m in metas:
        if m.is_file():
            return read_meta(m), str(m)
    looked = ", ".join(str(m) for m in metas)
    if vocab_size >= GPT2_VOCAB:
        try:
            return BPETokenizer.from_folder(ckpt.parent), str(ckpt.parent)
        except TokenizerError:
            pass
        try:
            folder = find_cached("gpt2")
            return BPETokenizer.from_folder(folder), str(folder)
        except (CheckpointError, TokenizerError):
            pass
        raise CheckpointError(
            f"{ckpt}: no tokenizer found: this model has GPT-2's vocabulary, so it needs GPT-2's "
            f"tokenizer (tokenizer.json, or vocab.json and merges.txt, beside {ckpt.name}, or "
            f"gpt2 in the local Hugging Face cache); no meta.pkl either (looked for {looked})")
    raise CheckpointError(
        f"{ckpt}: no tokenizer found: nanoGPT keeps a character model's vocabulary in meta.pkl "
        f"beside its dataset; looked for {looked}. Copy that meta.pkl beside {ckpt.name}")


def open_nanogpt(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Open ``ckpt.pt`` (or a folder holding it); every problem is one CheckpointError."""
    ckpt = _ckpt_file(Path(path))
    data = safe_torch_load(ckpt)
    args, state = data.get("model_args"), data.get("model")
    if not isinstance(args, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{ckpt}: not a nanoGPT checkpoint (it needs 'model_args' and "
                              "'model' entries)")
    train_cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
    try:
        config = ModelConfig(
            vocab_size=args.get("vocab_size", 50304), block_size=args.get("block_size", 1024),
            n_layer=args.get("n_layer", 12), n_head=args.get("n_head", 12),
            n_embd=args.get("n_embd", 768), pos_kind="learned", norm="pre",
            bias=bool(args.get("bias", True)), tie_weights=True, activation="gelu",
            layer_norm_epsilon=1e-5)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{ckpt}: model_args describe an impossible model ({e})") from None
    tokenizer, tok_source = find_tokenizer(ckpt, train_cfg.get("dataset"), config.vocab_size)
    summary: dict = {"source": "nanogpt", "tokenizer_from": tok_source}
    if isinstance(data.get("iter_num"), int):
        summary["steps"] = data["iter_num"]
    n = tokenizer.vocab_size
    if n > config.vocab_size:
        raise CheckpointError(f"{ckpt}: the tokenizer ({tok_source}) has {n:,} tokens but the "
                              f"model only {config.vocab_size:,}; they do not belong together")
    if n < config.vocab_size:
        # nanoGPT rounds GPT-2's 50257 up to 50304: rows no text can produce, cut off here so
        # the model's vocabulary is the tokenizer's
        summary["note"] = (f"the model's {config.vocab_size:,} output rows were cut to the "
                           f"tokenizer's {n:,} (nanoGPT pads the vocabulary)")
        state = {k: (v[:n] if k.endswith(("wte.weight", "lm_head.weight"))
                     and isinstance(v, torch.Tensor) and v.dim() == 2 else v)
                 for k, v in state.items()}
        config = ModelConfig(**{**config.to_dict(), "vocab_size": n})
    model = gpt_from_gpt2_state(state, config, conv1d=False, source=str(ckpt),
                                config_name="model_args")
    if isinstance(data.get("best_val_loss"), (float, torch.Tensor)):
        summary["val_loss"] = float(data["best_val_loss"])
    try:
        dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    except ValueError as e:
        raise CheckpointError(f"{ckpt}: {e}") from None
    model.to(dev).eval()
    return LoadedCheckpoint(model=model, tokenizer=tokenizer, config=config, summary=summary,
                            path=ckpt)


__all__ = ["CKPT_NAME", "open_nanogpt", "read_meta", "find_tokenizer"]
