"""A random GPT-2-small folder (124M parameters, vocabulary 50,257, 12 layers × 12 heads, 1,024
positions) written by transformers' ``save_pretrained``, for the GPT-2-size benchmarks.

    python benchmarks/gpt2_folder.py DIR

The tokenizer is a byte-level BPE of GPT-2's size: trained by the tokenizers library on the
Shakespeare corpus beside the checkout (about 21,500 tokens is all that text yields; else the
shipped sonnets), then grown to 50,256
with merges of two existing tokens (each a valid BPE merge), plus ``<|endoftext|>``. Nothing is
downloaded; the weights are random (transformers' GPT-2 initialisation, seed 0). Never commit
such a folder: it is 500 MB.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the shared data folder beside the checkout (or beside a worktree's parent folder)
CORPUS_CANDIDATES = (ROOT.parent / "shared" / "data" / "tinyshakespeare.txt",
                     ROOT.parent.parent / "shared" / "data" / "tinyshakespeare.txt",
                     ROOT / "model" / "assets" / "corpora" / "sonnets.txt")
VOCAB = 50257
EOT = "<|endoftext|>"


def _corpus() -> str:
    for p in CORPUS_CANDIDATES:
        if p.is_file():
            return p.read_text(encoding="utf-8")
    # no corpus on disk: text made here still gives a byte-level BPE to grow from
    rng = random.Random(0)
    words = ["the", "king", "queen", "love", "death", "night", "sweet", "lord", "fair", "thou"]
    return " ".join(rng.choice(words) for _ in range(200_000))


def write_tokenizer(folder: Path) -> None:
    """vocab.json, merges.txt and tokenizer.json of a 50,257-token byte-level BPE."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([_corpus()], vocab_size=VOCAB - 1, min_frequency=1,
                            show_progress=False)
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges_file = folder / "merges.txt"
    lines = merges_file.read_text(encoding="utf-8").splitlines()
    header, merges = lines[:1], [m for m in lines[1:] if m]
    pieces = sorted(vocab, key=vocab.get)
    rng = random.Random(0)
    while len(vocab) < VOCAB - 1:  # grow with merges of existing tokens: a valid BPE
        a, b = rng.choice(pieces), rng.choice(pieces)
        if a + b in vocab or len(a + b) > 16:
            continue
        vocab[a + b] = len(vocab)
        pieces.append(a + b)
        merges.append(f"{a} {b}")
    vocab[EOT] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges_file.write_text("\n".join(header + merges) + "\n", encoding="utf-8")
    grown = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(merges_file))
    grown.add_special_tokens([EOT])
    grown.save(str(folder / "tokenizer.json"))


def make_gpt2_folder(folder: str | Path, seed: int = 0) -> Path:
    """Write the folder (see the module docstring) unless it already holds a complete one."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = Path(folder)
    if all((folder / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json")):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_tokenizer(folder)
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=VOCAB, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python benchmarks/gpt2_folder.py DIR", file=sys.stderr)
        sys.exit(2)
    print(make_gpt2_folder(sys.argv[1]))
