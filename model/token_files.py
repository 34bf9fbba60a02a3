"""Token files: a corpus encoded once into ``train.bin``/``val.bin`` and read from disk while
training, so a corpus larger than memory trains with constant memory.

``python -m model prepare --corpus FILE --tokenizer char --out DIR`` writes, as nanoGPT's
``prepare.py`` scripts do, the token ids one after another as unsigned integers (``uint16``, or
``uint32`` when the vocabulary has more than 65,536 tokens) in ``train.bin`` (the first 90 % by
default) and ``val.bin`` (the rest), plus ``tokenizer.json`` and ``meta.json`` (counts, dtype,
source). Preparing streams the text in chunks (two passes: the vocabulary, then the ids), so it
needs no more memory than a chunk either.

``train --corpus DIR`` opens the folder as a :class:`TokenFiles`, which draws the same random
windows as :class:`model.corpora.Corpus` (same generator, same indices) but reads them with
``np.memmap``. The map is opened afresh for every batch, as in nanoGPT: pages read for earlier
batches are released, so the process's memory does not grow with the file. On a CUDA device the
batch goes through pinned memory and is copied without blocking, so reading the next batch on the
CPU overlaps the GPU's work on the current one.
"""
from __future__ import annotations

import codecs
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .corpora import CorpusError
from .tokenizer import CharTokenizer, TokenizerError

FORMAT = "transformer-explorer token files"
VERSION = 1
META = "meta.json"
TOKENIZER = "tokenizer.json"
SPLIT_FILES = {"train": "train.bin", "val": "val.bin"}
CHUNK_BYTES = 4 << 20  # text read per step while preparing


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (nanoGPT's choice for GPT-2's 50,257 tokens), else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def check_tokenizer_spec(spec: str) -> str:
    """The tokenizers ``prepare`` can build: only ``char`` for now."""
    if spec == "char":
        return spec
    raise CorpusError(f"--tokenizer {spec!r}: only 'char' (one token per character) is "
                      "available so far; BPE (bpe:SIZE or a tokenizer folder) comes later")


# -- reading a large text file in pieces -------------------------------------------------------
def iter_text(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The text of a UTF-8 file in pieces, with the checks and clean-ups of
    :func:`model.corpora.read_text_file` (no NUL bytes, valid UTF-8, no byte-order mark,
    CRLF -> LF), without holding the whole file in memory."""
    p = Path(path)
    if p.is_dir():
        raise CorpusError(f"{p}: is a folder, not a text file")
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    first = True
    held = ""  # a trailing '\r' that may start a CRLF split across two pieces
    try:
        f = open(p, "rb")
    except FileNotFoundError:
        raise CorpusError(f"{p}: no such file") from None
    except OSError as e:
        raise CorpusError(f"{p}: cannot be read ({e.strerror or e})") from None
    with f:
        while True:
            data = f.read(chunk_bytes)
            final = not data
            nul = data.find(b"\x00")
            if nul >= 0:
                raise CorpusError(f"{p}: looks like a binary file, not text (NUL byte at offset "
                                  f"{offset + nul})")
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{p}: is not UTF-8 text (byte 0x{e.object[e.start]:02x} near offset "
                    f"{offset + e.start} cannot be decoded); save it as UTF-8") from None
            offset += len(data)
            if first and text:
                text = text.removeprefix("\ufeff")
                first = False
            text = held + text
            held = ""
            if text.endswith("\r") and not final:
                text, held = text[:-1], "\r"
            text = text.replace("\r\n", "\n")
            if text:
                yield text
            if final:
                return


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _atomic_path(folder: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the files from other users
    return Path(tmp)


def prepare(corpus: str | Path, out_dir: str | Path, tokenizer: str = "char",
            val_fraction: float = 0.1, chunk_bytes: int = CHUNK_BYTES) -> dict:
    """Encode a UTF-8 text file into token files in ``out_dir``; returns the meta data written.

    Each file appears whole or not at all (written beside, then renamed); ``meta.json`` comes
    last, so a folder interrupted halfway is not mistaken for a finished one."""
    check_tokenizer_spec(tokenizer)
    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise CorpusError(f"val_fraction={val_fraction!r} must be between 0 and 1")
    src = Path(corpus)
    # pass 1: the vocabulary and the number of tokens
    seen = np.zeros(0, dtype=np.uint32)
    n = 0
    for text in iter_text(src, chunk_bytes):
        codes = _codes(text)
        seen = np.union1d(seen, np.unique(codes))
        n += len(codes)
    if n < 2:
        raise CorpusError(f"{src}: the file is empty" if n == 0 else
                          f"{src}: the text has 1 character; it needs at least 2")
    try:
        tok = CharTokenizer([chr(c) for c in seen])  # sorted, as CharTokenizer.from_text
    except TokenizerError as e:
        raise CorpusError(f"{src}: {e}") from None
    dtype = token_dtype(tok.vocab_size)
    n_val = min(max(int(n * val_fraction), 1), n - 1)
    counts = {"train": n - n_val, "val": n_val}

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out {out}: is a file; give a folder for the token files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmps = {s: _atomic_path(out, f) for s, f in [*SPLIT_FILES.items(), ("tok", TOKENIZER),
                                                     ("meta", META)]}
    except OSError as e:
        raise CorpusError(f"{out}: cannot write there ({e.strerror or e})") from None
    # pass 2: the ids, the first n - n_val into train.bin and the rest into val.bin
    try:
        with open(tmps["train"], "wb") as ftrain, open(tmps["val"], "wb") as fval:
            written = 0
            for text in iter_text(src, chunk_bytes):
                ids = np.searchsorted(seen, _codes(text)).astype(dtype)
                cut = max(0, min(len(ids), counts["train"] - written))
                ftrain.write(ids[:cut].tobytes())
                fval.write(ids[cut:].tobytes())
                written += len(ids)
        if written != n:
            raise CorpusError(f"{src}: the file changed while it was being prepared; try again")
        meta = {"format": FORMAT, "version": VERSION, "tokenizer": TOKENIZER,
                "dtype": dtype.name, "vocab_size": tok.vocab_size, "train_tokens": counts["train"],
                "val_tokens": counts["val"], "val_fraction": val_fraction, "source": src.name}
        tok.save(tmps["tok"])
        tmps["meta"].write_text(json.dumps(meta, indent=1), encoding="utf-8")
        for s, f in [*SPLIT_FILES.items(), ("tok", TOKENIZER), ("meta", META)]:
            os.replace(tmps[s], out / f)
    except OSError as e:
        raise CorpusError(f"{out}: cannot write the token files ({e.strerror or e})") from None
    finally:
        for t in tmps.values():
            t.unlink(missing_ok=True)
    return meta


# -- reading -----------------------------------------------------------------------------------
def is_token_folder(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


@dataclass
class TokenFiles:
    """A prepared corpus on disk; the batch interface of :class:`model.corpora.Corpus`."""

    folder: Path
    name: str
    tokenizer: CharTokenizer
    dtype: np.dtype
    counts: dict[str, int]
    source: str = ""
    task: None = None  # token files are never a synthetic task
    meta: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, folder: str | Path, tokenizer: CharTokenizer | None = None,
             block_size: int | None = None) -> TokenFiles:
        """Open a folder written by :func:`prepare`. ``tokenizer`` (a model's, when resuming)
        must be the one the files were written with."""
        d = Path(folder)
        if not is_token_folder(d):
            raise CorpusError(f"{d}: is a folder without token files ({META} is missing); make "
                              "them with: python -m model prepare --corpus FILE --out FOLDER")
        try:
            meta = json.loads((d / META).read_text(encoding="utf-8"))
            tok = CharTokenizer.load(d / meta["tokenizer"])
            dtype = np.dtype(meta["dtype"])
            counts = {"train": int(meta["train_tokens"]), "val": int(meta["val_tokens"])}
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise ValueError(f"unknown format {meta.get('format')!r} "
                                 f"version {meta.get('version')!r}")
        except (OSError, ValueError, KeyError, TypeError, TokenizerError) as e:
            raise CorpusError(f"{d}: the token files' description cannot be read ({e}); "
                              "prepare the corpus again") from None
        if dtype != token_dtype(tok.vocab_size):
            raise CorpusError(f"{d}: {META} says {dtype.name} for a vocabulary of "
                              f"{tok.vocab_size}; prepare the corpus again")
        for split, fname in SPLIT_FILES.items():
            path = d / fname
            size = path.stat().st_size if path.is_file() else -1
            if size != counts[split] * dtype.itemsize:
                raise CorpusError(
                    f"{path}: should hold {counts[split]:,} tokens "
                    f"({counts[split] * dtype.itemsize:,} bytes) but "
                    f"{'is missing' if size < 0 else f'has {size:,} bytes'}; the files are "
                    "incomplete or from another preparation, so prepare the corpus again")
        if tokenizer is not None and tokenizer != tok:
            raise CorpusError(
                f"{d}: the token files were written with another vocabulary "
                f"({tok.vocab_size} characters) than the model's ({tokenizer.vocab_size}); "
                "their token ids would mean other characters. Train on the text file instead")
        files = cls(folder=d, name=d.name, tokenizer=tok, dtype=dtype, counts=counts,
                    source=str(folder), meta=meta)
        if block_size is not None:
            files.check_block_size(block_size)
        return files

    # -- facts ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def n_tokens(self) -> int:
        return self.counts["train"] + self.counts["val"]

    def split(self, split: str) -> np.memmap:
        """A fresh read-only map of one split's ids (dropped by the caller after use)."""
        if split not in SPLIT_FILES:
            raise CorpusError(f"split={split!r} must be 'train' or 'val'")
        return np.memmap(self.folder / SPLIT_FILES[split], dtype=self.dtype, mode="r")

    def check_block_size(self, block_size: int) -> None:
        for part, n in self.counts.items():
            if n < block_size + 1:
                raise CorpusError(
                    f"{self.name}: the {part} part has {n:,} tokens, fewer than block size + 1 "
                    f"= {block_size + 1:,}; use a longer text or a smaller block size")

    def default_probe_prompt(self, max_chars: int = 16) -> str:
        return self.tokenizer.decode(self.split("train")[:max_chars])

    def describe(self) -> str:
        return (f"{self.name}: {self.n_tokens:,} tokens ({self.counts['train']:,} train, "
                f"{self.counts['val']:,} validation) in {self.dtype.name} token files, "
                f"{self.vocab_size} distinct characters")

    # -- batches -------------------------------------------------------------------------------
    def _count(self, split: str) -> int:
        if split not in self.counts:
            raise CorpusError(f"split={split!r} must be 'train' or 'val'")
        return self.counts[split]

    @staticmethod
    def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
        if device.type == "cuda":  # pinned: the copy runs asynchronously to the host
            return t.pin_memory().to(device, non_blocking=True)
        return t.to(device)

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  generator: torch.Generator | None = None, device="cpu"):
        """``batch_size`` random windows, the same ones :meth:`Corpus.get_batch` draws with
        the same generator: ``x`` and ``y`` (B, T) int64, ``y`` = ``x`` shifted by one."""
        n = self._count(split)
        if n < block_size + 1:
            self.check_block_size(block_size)
        device = torch.device(device)
        ix = torch.randint(n - block_size, (batch_size,), generator=generator)
        rows = ix.numpy()[:, None] + np.arange(block_size + 1)
        batch = torch.from_numpy(self.split(split)[rows].astype(np.int64))  # reads B windows
        return (self._to(batch[:, :-1].contiguous(), device),
                self._to(batch[:, 1:].contiguous(), device))

    def iter_windows(self, split: str, block_size: int, batch_size: int, device="cpu"):
        """Every token of a split once, as non-overlapping windows (for a full evaluation)."""
        device = torch.device(device)
        n = self._count(split)
        full = (n - 1) // block_size
        for i in range(0, full, batch_size):
            b = min(batch_size, full - i)
            ids = self.split(split)[i * block_size:(i + b) * block_size + 1].astype(np.int64)
            t = torch.from_numpy(ids)
            yield (self._to(t[:-1].view(b, block_size), device),
                   self._to(t[1:].view(b, block_size), device))
        rest = n - 1 - full * block_size
        if rest > 0:
            start = full * block_size
            t = torch.from_numpy(self.split(split)[start:start + rest + 1].astype(np.int64))
            yield self._to(t[:-1].view(1, rest), device), self._to(t[1:].view(1, rest), device)


__all__ = ["FORMAT", "VERSION", "TokenFiles", "prepare", "iter_text", "token_dtype",
           "check_tokenizer_spec", "is_token_folder"]
