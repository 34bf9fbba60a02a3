"""Training text: UTF-8 files or synthetic tasks, a train/validation split and random batches.

A corpus is a string turned into token ids with a :class:`~model.tokenizer.CharTokenizer`. The
last ``val_fraction`` of the ids is held out for validation (as in nanoGPT). ``get_batch`` cuts
random windows of ``block_size + 1`` ids: ``x`` is a window without its last id and ``y`` the
same window shifted by one, so ``y[b, t]`` is the token that follows ``x[b, :t + 1]``.

Synthetic tasks need no download; each line is one example over a small alphabet:

* ``copy``:      a random string, ``|`` and the same string again      ``qwhd|qwhd``
* ``induction``: a random string of distinct letters repeated 2-3 times ``bhadbhadbhad``
* ``reverse``:   a random string, ``>`` and the string backwards        ``abcd>dcba``
* ``sort``:      a random string, ``>`` and its letters in order        ``dbca>abcd``
"""
from __future__ import annotations

import errno
import random
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .tokenizer import CharTokenizer, TokenizerError

if TYPE_CHECKING:
    from .token_files import TokenFiles

SYNTHETIC_TASKS = ("copy", "induction", "reverse", "sort")
TASK_PREFIX = "task:"
TASK_ALPHABET = "abcdefghij"  # small on purpose: a tiny model learns these tasks in minutes
TASK_MIN_LEN = 3
TASK_MAX_LEN = 8
TASK_EXAMPLES = 20_000  # lines in a task corpus from load_corpus (about 260k characters)
TASK_DESCRIPTIONS = {
    "copy": "a random string, '|' and the same string again (qwhd|qwhd)",
    "induction": "a random string of distinct letters repeated 2-3 times (bhadbhadbhad)",
    "reverse": "a random string, '>' and the same string backwards (abcd>dcba)",
    "sort": "a random string, '>' and its letters in alphabetical order (dbca>abcd)",
}
_TASK_SEPARATORS = {"copy": "|\n", "induction": "\n", "reverse": ">\n", "sort": ">\n"}


class CorpusError(ValueError):
    """The training text cannot be used; the message names the file (or task) and the reason."""


# -- files -------------------------------------------------------------------------------------
# A corpus is held in memory as text and as int64 ids (about 12 bytes per character), so a file
# above this size would take gigabytes before training even starts.
MAX_CORPUS_BYTES = 256 * 2**20


def _check_corpus_file(p: Path) -> None:
    """Refuse, before opening, what cannot be a corpus: a named pipe (reading would wait for a
    writer forever), a device such as /dev/zero (it never ends) and files above the limit."""
    st = p.stat()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(p))
    if not stat.S_ISREG(st.st_mode):
        raise CorpusError(f"{p}: is not a regular file (a named pipe, device or socket); give "
                          "a UTF-8 text file")
    if st.st_size > MAX_CORPUS_BYTES:
        raise CorpusError(f"{p}: the file is {st.st_size / 2**20:,.0f} MB; a text corpus can be "
                          f"at most {MAX_CORPUS_BYTES // 2**20} MB (it is held in memory, about "
                          "12 bytes per character)")


def read_text_file(path: str | Path) -> str:
    """The text of a UTF-8 file. Binary (NUL bytes or not UTF-8), empty or unreadable files are
    refused with a :class:`CorpusError`. A UTF-8 byte-order mark is dropped and Windows line
    endings (CRLF) become ``\\n``."""
    p = Path(path)
    try:
        _check_corpus_file(p)
        data = p.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{p}: is a folder, not a text file") from None
    except OSError as e:
        raise CorpusError(f"{p}: cannot be read ({e.strerror or e})") from None
    if not data:
        raise CorpusError(f"{p}: the file is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"{p}: looks like a binary file, not text (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{p}: is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start} cannot be "
            "decoded); save it as UTF-8 or pick a text file") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n")
    if not text:
        raise CorpusError(f"{p}: the file is empty")
    return text


# -- synthetic tasks ---------------------------------------------------------------------------
def _check_task(task: str) -> str:
    if task not in SYNTHETIC_TASKS:
        raise CorpusError(f"unknown task {task!r}: choose one of {', '.join(SYNTHETIC_TASKS)}")
    return task


def task_tokenizer(task: str) -> CharTokenizer:
    """The tokenizer of a synthetic task: its whole alphabet, whatever the seed or length."""
    _check_task(task)
    return CharTokenizer(sorted(set(TASK_ALPHABET + _TASK_SEPARATORS[task])))


def task_example(task: str, rng: random.Random) -> str:
    """One example line (ending in ``\\n``) of a synthetic task."""
    _check_task(task)
    n = rng.randint(TASK_MIN_LEN, TASK_MAX_LEN)
    if task == "induction":
        s = "".join(rng.sample(TASK_ALPHABET, n))  # distinct letters: the continuation is unique
        return s * rng.randint(2, 3) + "\n"
    s = "".join(rng.choice(TASK_ALPHABET) for _ in range(n))
    if task == "copy":
        return f"{s}|{s}\n"
    if task == "reverse":
        return f"{s}>{s[::-1]}\n"
    return f"{s}>{''.join(sorted(s))}\n"  # sort


def synthetic_text(task: str, n_examples: int = 4000, seed: int = 0) -> str:
    """``n_examples`` lines of a synthetic task; the same task and seed give the same text."""
    _check_task(task)
    if not isinstance(n_examples, int) or n_examples < 1:
        raise CorpusError(f"n_examples={n_examples!r} must be a whole number >= 1")
    rng = random.Random(f"transformer-explorer:{task}:{int(seed)}")
    return "".join(task_example(task, rng) for _ in range(n_examples))


def check_task_line(task: str, line: str) -> bool:
    """Whether one line (without its ``\\n``) is a correct example of the task."""
    _check_task(task)
    if task == "induction":
        for reps in (2, 3):
            n, r = divmod(len(line), reps)
            if r == 0 and TASK_MIN_LEN <= n <= TASK_MAX_LEN and line == line[:n] * reps \
                    and len(set(line[:n])) == n and set(line) <= set(TASK_ALPHABET):
                return True
        return False
    sep = "|" if task == "copy" else ">"
    if line.count(sep) != 1:
        return False
    a, b = line.split(sep)
    if not (TASK_MIN_LEN <= len(a) <= TASK_MAX_LEN and set(a) <= set(TASK_ALPHABET)):
        return False
    expected = {"copy": a, "reverse": a[::-1], "sort": "".join(sorted(a))}[task]
    return b == expected


# -- encoding ----------------------------------------------------------------------------------
def _encode(text: str, tokenizer: CharTokenizer) -> np.ndarray:
    """Vectorised ``tokenizer.encode`` (strict) for long texts; returns int64 ids."""
    if not isinstance(tokenizer, CharTokenizer):  # subword tokenizers encode in native code
        return np.asarray(tokenizer.encode(text), dtype=np.int64)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    vocab = np.array([ord(c) for c in tokenizer.chars], dtype=np.uint32)
    order = np.argsort(vocab, kind="stable")
    sorted_vocab = vocab[order]
    pos = np.searchsorted(sorted_vocab, codes)
    pos_c = np.minimum(pos, len(sorted_vocab) - 1)
    if not np.array_equal(sorted_vocab[pos_c], codes):
        tokenizer.encode(text)  # raises UnknownCharactersError with the characters and places
    return order[pos_c].astype(np.int64)


# -- corpus ------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Token ids of a text, split into a training part and a validation part (the end)."""

    name: str
    text: str
    tokenizer: CharTokenizer
    train: torch.Tensor  # (N_train,) int64
    val: torch.Tensor  # (N_val,) int64
    source: str = ""  # what load_corpus was given ("task:copy" or a path)
    task: str | None = None  # the synthetic task, if any
    _on_device: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_text(cls, text: str, name: str, tokenizer: CharTokenizer | None = None,
                  val_fraction: float = 0.1, block_size: int | None = None) -> Corpus:
        """Encode ``text`` (a new tokenizer of its characters unless one is given) and split it.

        With ``block_size`` both parts are checked to hold at least ``block_size + 1`` tokens;
        the validation part is enlarged to that size when the fraction gives fewer."""
        if not isinstance(text, str) or not text:
            raise CorpusError(f"{name}: the text is empty")
        if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
            raise CorpusError(f"val_fraction={val_fraction!r} must be between 0 and 1")
        if tokenizer is None:
            try:
                tokenizer = CharTokenizer.from_text(text)
            except TokenizerError as e:
                raise CorpusError(f"{name}: {e}") from None
        try:
            ids = _encode(text, tokenizer)
        except ValueError as e:  # UnknownCharactersError
            raise CorpusError(f"{name}: the text does not fit the model's vocabulary: {e}") \
                from None
        n = len(ids)
        n_val = int(n * val_fraction)
        if block_size is not None:
            if not isinstance(block_size, int) or block_size < 1:
                raise CorpusError(f"block_size={block_size!r} must be a whole number >= 1")
            need = block_size + 1
            if n < need:
                raise CorpusError(
                    f"{name}: the corpus has {n:,} tokens, fewer than block size + 1 = {need:,}; "
                    "use a longer text or a smaller block size")
            n_val = max(n_val, need)
            if n - n_val < need:
                raise CorpusError(
                    f"{name}: the corpus has {n:,} tokens, too few for a training part and a "
                    f"validation part of at least block size + 1 = {need:,} tokens each "
                    f"(needs {2 * need:,}); use a longer text or a smaller block size")
        else:
            if n < 2:
                raise CorpusError(f"{name}: the corpus has {n} token(s); it needs at least 2")
            n_val = min(max(n_val, 1), n - 1)
        data = torch.from_numpy(ids)
        return cls(name=name, text=text, tokenizer=tokenizer, train=data[: n - n_val],
                   val=data[n - n_val:])

    # -- facts ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def n_tokens(self) -> int:
        return len(self.train) + len(self.val)

    def split(self, split: str) -> torch.Tensor:
        if split == "train":
            return self.train
        if split == "val":
            return self.val
        raise CorpusError(f"split={split!r} must be 'train' or 'val'")

    def check_block_size(self, block_size: int) -> None:
        """Raise :class:`CorpusError` unless both parts hold a window of ``block_size + 1``."""
        for part in ("train", "val"):
            n = len(self.split(part))
            if n < block_size + 1:
                raise CorpusError(
                    f"{self.name}: the {part} part has {n:,} tokens, fewer than block size + 1 "
                    f"= {block_size + 1:,}; use a longer text or a smaller block size")

    def default_probe_prompt(self, max_chars: int = 16) -> str:
        """A prompt that shows something: the start of a task example, else the text's start."""
        if self.task is not None:
            line = self.text.split("\n", 1)[0]
            if self.task == "induction":
                return line[: max(1, min(max_chars, len(line) * 2 // 3))]
            sep = "|" if self.task == "copy" else ">"
            return line[: line.index(sep) + 1]
        return self.text[:max_chars]

    def describe(self) -> str:
        return (f"{self.name}: {self.n_tokens:,} tokens ({len(self.train):,} train, "
                f"{len(self.val):,} validation), {self.vocab_size} distinct characters")

    # -- batches -------------------------------------------------------------------------------
    def _data(self, split: str, device: torch.device) -> torch.Tensor:
        data = self.split(split)
        if device.type == "cpu":
            return data
        key = (split, str(device))
        cached = self._on_device.get(key)
        if cached is None:  # small corpora: keep a copy on the accelerator, index there
            cached = data.to(device)
            self._on_device[key] = cached
        return cached

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  generator: torch.Generator | None = None, device="cpu"):
        """``batch_size`` random windows: ``x`` and ``y`` (B, T) int64, ``y`` = ``x`` shifted by
        one. ``generator`` (a CPU :class:`torch.Generator`) makes the batches repeatable."""
        data = self.split(split)
        n = len(data)
        if n < block_size + 1:
            self.check_block_size(block_size)
        device = torch.device(device)
        ix = torch.randint(n - block_size, (batch_size,), generator=generator)
        windows = self._data(split, device).unfold(0, block_size + 1, 1)  # view, no copy
        if device.type != "cpu":
            ix = ix.to(device, non_blocking=True)
        batch = windows[ix]  # (B, T+1) copy
        return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()

    def iter_windows(self, split: str, block_size: int, batch_size: int, device="cpu"):
        """Every token of a split once, as non-overlapping windows (for a full evaluation)."""
        data = self.split(split)
        device = torch.device(device)
        n = len(data)
        full = (n - 1) // block_size
        if full:
            windows = data[: full * block_size + 1]
            xs = windows[:-1].view(full, block_size)
            ys = windows[1:].view(full, block_size)
            for i in range(0, full, batch_size):
                yield xs[i:i + batch_size].to(device), ys[i:i + batch_size].to(device)
        rest = n - 1 - full * block_size
        if rest > 0:
            start = full * block_size
            yield (data[start:start + rest].view(1, rest).to(device),
                   data[start + 1:start + 1 + rest].view(1, rest).to(device))


def task_name(spec: str) -> str | None:
    """``"task:copy"`` -> ``"copy"``; anything else -> None."""
    if isinstance(spec, str) and spec.startswith(TASK_PREFIX):
        return spec[len(TASK_PREFIX):].strip()
    return None


def load_corpus(spec: str | Path, block_size: int | None = None,
                tokenizer: CharTokenizer | None = None, val_fraction: float = 0.1,
                n_examples: int = TASK_EXAMPLES, seed: int = 0) -> Corpus | TokenFiles:
    """A corpus from ``"task:NAME"`` (a synthetic task), the path of a UTF-8 text file or a
    folder of token files (:class:`model.token_files.TokenFiles`, read from disk as needed).

    A task corpus has ``n_examples`` lines (enough that a small model learns the task rather
    than memorising the lines) and always the task's full alphabet as its vocabulary."""
    task = task_name(spec) if isinstance(spec, str) else None
    if task is not None:
        _check_task(task)
        text = synthetic_text(task, n_examples=n_examples, seed=seed)
        corpus = Corpus.from_text(text, f"{TASK_PREFIX}{task}",
                                  tokenizer=tokenizer or task_tokenizer(task),
                                  val_fraction=val_fraction, block_size=block_size)
        corpus.task = task
    elif Path(spec).is_dir():  # token files from `python -m model prepare`
        from .token_files import TokenFiles  # (it imports this module)

        return TokenFiles.open(spec, tokenizer=tokenizer, block_size=block_size)
    else:
        path = Path(spec)
        text = read_text_file(path)
        corpus = Corpus.from_text(text, path.name, tokenizer=tokenizer,
                                  val_fraction=val_fraction, block_size=block_size)
    corpus.source = str(spec)
    return corpus


__all__ = [
    "MAX_CORPUS_BYTES", "SYNTHETIC_TASKS", "TASK_ALPHABET", "TASK_DESCRIPTIONS", "CorpusError", "Corpus",
    "read_text_file", "synthetic_text", "task_tokenizer", "task_example", "check_task_line",
    "load_corpus", "task_name",
]
