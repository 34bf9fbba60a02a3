"""Fixtures for the tests that compare against Hugging Face (transformers is a test dependency):
a byte-level BPE trained with the tokenizers library on text written here, and small random
GPT-2 models saved with ``save_pretrained``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

TEXT = (
    "The quick brown fox jumps over the lazy dog. Then the dog sleeps; the fox runs on.\n"
    "Crème brûlée, naïve café, façade, jalapeño, Ångström, smörgåsbord and São Paulo.\n"
    "Emoji: 😀 🎉 🐍 👩‍💻 and flags 🇫🇷.\n"
    "    indented    with   many spaces\t\ttabs\n\n\nand blank lines\r\n"
    "def f(x):\n    return x * 2  # code, too\n"
) * 20

# what the tokenizer comparisons encode: ordinary, accented, emoji and whitespace-heavy text
SAMPLES = [
    "The fox jumps over the lazy dog.",
    "Crème brûlée à São Paulo: naïve façade, Ångström.",
    "Emoji 😀🎉 in a row 🐍 👩‍💻 🇫🇷 and unseen ones 🦀🦕",
    "  leading\t\ttabs   and    runs of spaces \n\n\n trailing   ",
    "mixed Ωμέγα Кириллица 中文 ﬁ ligature \u00a0nbsp \u200bzero-width",
]


@pytest.fixture(scope="session")
def bpe_folder(tmp_path_factory) -> Path:
    """tokenizer.json, vocab.json and merges.txt of a byte-level BPE (300 tokens, the last one
    <|endoftext|> as in GPT-2) trained by the tokenizers library on the text above."""
    from tokenizers import ByteLevelBPETokenizer

    folder = tmp_path_factory.mktemp("bpe")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=299, min_frequency=2, show_progress=False)
    bpe.add_special_tokens(["<|endoftext|>"])
    bpe.save(str(folder / "tokenizer.json"))
    bpe.save_model(str(folder))
    vocab = folder / "vocab.json"
    pieces = json.loads(vocab.read_text(encoding="utf-8"))
    pieces["<|endoftext|>"] = len(pieces)  # GPT-2's vocab.json lists it too
    vocab.write_text(json.dumps(pieces), encoding="utf-8")
    return folder


def _hf_gpt2(vocab_size: int, activation: str = "gelu_new", seed: int = 0, **kw):
    """A small random ``GPT2LMHeadModel`` with eager attention (so it returns its maps)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     activation_function=activation, bos_token_id=vocab_size - 1,
                     eos_token_id=vocab_size - 1, attn_implementation="eager",
                     initializer_range=0.2, **kw)
    model = GPT2LMHeadModel(cfg).eval()
    # weights ten times GPT-2's initial scale, non-zero biases and norms: activations of order
    # one, where a wrong GELU, epsilon or mapping changes the logits well beyond the tolerance
    model.post_init()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.fixture
def samples() -> list[str]:
    return list(SAMPLES)


@pytest.fixture
def make_hf_folder(tmp_path, bpe_folder):
    """``make(name, activation="gelu_new", seed=0, **GPT2Config fields) -> (hf_model, folder)``:
    a random GPT-2 saved with ``save_pretrained`` beside the BPE's tokenizer files."""
    def make(name: str = "hf", activation: str = "gelu_new", seed: int = 0, **kw):
        vocab = len(json.loads((bpe_folder / "vocab.json").read_text(encoding="utf-8")))
        model = _hf_gpt2(vocab, activation, seed, **kw)
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(folder))
        for f in ("tokenizer.json", "vocab.json", "merges.txt"):
            shutil.copy(bpe_folder / f, folder / f)
        return model, folder
    return make
