"""Sequence-to-sequence data: source → target pairs for an encoder-decoder.

Tasks that need no download, chosen so that cross-attention is readable::

    reverse   abcd → dcba          copy      abcd → abcd          sort   dbca → abcd
    numbers   307 → three hundred seven
    dates     2024-03-07 → 7 March 2024

or a user's file of ``source<TAB>target`` lines (``path.tsv``). The held-out pairs are never
trained on: a source that occurs in the validation part does not occur in the training part,
and the score is exact match (the whole predicted target equals the reference).

Every vocabulary holds the special tokens :data:`~model.tokenizer.PAD_CHAR`,
:data:`~model.tokenizer.BOS_CHAR` and :data:`~model.tokenizer.EOS_CHAR` first.
"""
from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .corpora import TASK_ALPHABET, TASK_MAX_LEN, TASK_MIN_LEN, CorpusError, read_text_file
from .tokenizer import BOS_CHAR, EOS_CHAR, PAD_CHAR, CharTokenizer, UnknownCharactersError

SEQ2SEQ_TASKS = ("reverse", "sort", "copy", "numbers", "dates")
SEQ2SEQ_DESCRIPTIONS = {
    "reverse": "a random string and the same string backwards (abcd → dcba)",
    "sort": "a random string and its letters in alphabetical order (dbca → abcd)",
    "copy": "a random string and the same string (abcd → abcd)",
    "numbers": "a number from 0 to 9999 and its English words (307 → three hundred seven)",
    "dates": "an ISO date and the same date written out (2024-03-07 → 7 March 2024)",
}
SPECIALS = (PAD_CHAR, BOS_CHAR, EOS_CHAR)
PAIR_EXAMPLES = 20_000  # pairs of a random-string task (enough not to memorise)

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_MONTHS = ("January February March April May June July August September October November "
           "December").split()


def number_words(n: int) -> str:
    """0 ≤ n < 1,000,000 in English words without "and" or hyphens (307 → three hundred
    seven, 1042 → one thousand forty two)."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"{n} is outside 0 .. 999999")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    return number_words(n // 1000) + " thousand" + \
        ("" if n % 1000 == 0 else " " + number_words(n % 1000))


def date_words(d: datetime.date) -> str:
    """2024-03-07 → 7 March 2024."""
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _string_pairs(task: str, n: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        s = "".join(rng.choice(TASK_ALPHABET) for _ in range(rng.randint(TASK_MIN_LEN,
                                                                          TASK_MAX_LEN)))
        out.append((s, {"reverse": s[::-1], "sort": "".join(sorted(s)), "copy": s}[task]))
    return out


def _all_numbers() -> list[tuple[str, str]]:
    return [(str(n), number_words(n)) for n in range(10_000)]


def _all_dates() -> list[tuple[str, str]]:
    d, end, out = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31), []
    while d <= end:
        out.append((d.isoformat(), date_words(d)))
        d += datetime.timedelta(days=1)
    return out


def task_pairs(task: str, seed: int = 0, n_examples: int = PAIR_EXAMPLES
               ) -> list[tuple[str, str]]:
    """The pairs of a task in a fixed shuffled order (same task and seed, same list). Random
    string tasks draw ``n_examples``; numbers and dates enumerate their whole domain."""
    if task not in SEQ2SEQ_TASKS:
        raise CorpusError(f"unknown sequence-to-sequence task {task!r}: choose one of "
                          f"{', '.join(SEQ2SEQ_TASKS)}")
    rng = random.Random(f"transformer-explorer:pairs:{task}:{int(seed)}")
    if task == "numbers":
        pairs = _all_numbers()
    elif task == "dates":
        pairs = _all_dates()
    else:
        return _string_pairs(task, n_examples, rng)
    rng.shuffle(pairs)
    return pairs


def task_vocabulary(task: str) -> CharTokenizer:
    """The task's whole alphabet (every source and target it can make) and the specials."""
    if task in ("reverse", "sort", "copy"):
        chars = set(TASK_ALPHABET)
    elif task == "numbers":
        chars = set("0123456789") | set(" ".join(number_words(n) for n in range(1000))) \
            | set("thousand")
    elif task == "dates":
        chars = set("0123456789- ") | set("".join(_MONTHS))
    else:
        raise CorpusError(f"unknown sequence-to-sequence task {task!r}")
    return CharTokenizer(list(SPECIALS) + sorted(chars))


def read_tsv_pairs(path: str | Path) -> list[tuple[str, str]]:
    """``source<TAB>target`` lines of a UTF-8 file. Empty lines are skipped; any other line
    without exactly one tab, or with an empty side, is refused naming its line number."""
    p = Path(path)
    text = read_text_file(p)
    pairs = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            what = "has no tab" if len(parts) == 1 else f"has {len(parts) - 1} tabs"
            raise CorpusError(f"{p}: line {number} {what}; every line must be "
                              "source<TAB>target")
        src, tgt = parts
        if not src or not tgt:
            side = "source" if not src else "target"
            raise CorpusError(f"{p}: line {number} has an empty {side}; every line must be "
                              "source<TAB>target")
        for c in SPECIALS:
            if c in line:
                raise CorpusError(f"{p}: line {number} holds the special character {c!r}, "
                                  "which the model reserves")
        pairs.append((src, tgt))
    if not pairs:
        raise CorpusError(f"{p}: the file has no source<TAB>target lines")
    return pairs


def _encode_side(tok: CharTokenizer, text: str, name: str, where: str, side: str) -> list[int]:
    try:
        return tok.encode(text)
    except UnknownCharactersError as e:
        raise CorpusError(f"{name}: the {side} of {where} does not fit the model's vocabulary: "
                          f"{e}") from None


@dataclass
class PairCorpus:
    """Pairs encoded as padded id tensors, split into training pairs and held-out pairs.

    ``src``: the source ids, ``eos``, padding; ``tgt_in``: ``bos`` and the target; ``tgt_out``:
    the target and ``eos``, padded with -1 (ignored by the loss)."""

    name: str
    tokenizer: CharTokenizer
    train_pairs: list[tuple[str, str]]
    val_pairs: list[tuple[str, str]]
    source: str = ""
    task: str | None = None
    _tensors: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def pad_id(self) -> int:
        return self.tokenizer.stoi[PAD_CHAR]

    @property
    def bos_id(self) -> int:
        return self.tokenizer.stoi[BOS_CHAR]

    @property
    def eos_id(self) -> int:
        return self.tokenizer.stoi[EOS_CHAR]

    @property
    def n_pairs(self) -> int:
        return len(self.train_pairs) + len(self.val_pairs)

    def pairs(self, split: str) -> list[tuple[str, str]]:
        if split == "train":
            return self.train_pairs
        if split == "val":
            return self.val_pairs
        raise CorpusError(f"split={split!r} must be 'train' or 'val'")

    def longest(self) -> tuple[int, int]:
        """Tokens of the longest source (with ``eos``) and target (with ``bos``/``eos``)."""
        all_pairs = self.train_pairs + self.val_pairs
        return (max(len(s) for s, _ in all_pairs) + 1, max(len(t) for _, t in all_pairs) + 1)

    def check_block_size(self, block_size: int) -> None:
        """Refuse pairs the model cannot hold, naming the first one that is too long."""
        for i, (s, t) in enumerate(self.train_pairs + self.val_pairs):
            for side, text in (("source", s), ("target", t)):
                if len(text) + 1 > block_size:
                    raise CorpusError(
                        f"{self.name}: the {side} of pair {i + 1} ({text[:30]!r}) has "
                        f"{len(text)} characters; with its end token that is more than the "
                        f"block size {block_size}. Use a larger --block or shorter pairs")

    def encode_source(self, text: str, where: str = "the source") -> list[int]:
        return _encode_side(self.tokenizer, text, self.name, where, "source") + [self.eos_id]

    def tensors(self, split: str, device="cpu"):
        """(src, tgt_in, tgt_out) of every pair of a split, padded to the longest."""
        key = (split, str(device))
        t = self._tensors.get(key)
        if t is None:
            t = tuple(x.to(device) for x in _pad_pairs(self, self.pairs(split)))
            self._tensors[key] = t
        return t

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator | None = None,
                  device="cpu"):
        """``((src, tgt_in), tgt_out)`` of ``batch_size`` random pairs, trimmed to their own
        longest source and target."""
        src, tgt_in, tgt_out = self.tensors(split, device)
        ix = torch.randint(len(src), (batch_size,), generator=generator).to(src.device)
        return _trim(src[ix], tgt_in[ix], tgt_out[ix], self.pad_id)

    def iter_batches(self, split: str, batch_size: int, device="cpu"):
        """Every pair of a split once, in order, as ``((src, tgt_in), tgt_out)`` batches."""
        src, tgt_in, tgt_out = self.tensors(split, device)
        for i in range(0, len(src), batch_size):
            yield _trim(src[i:i + batch_size], tgt_in[i:i + batch_size],
                        tgt_out[i:i + batch_size], self.pad_id)

    def describe(self) -> str:
        return (f"{self.name}: {self.n_pairs:,} pairs ({len(self.train_pairs):,} train, "
                f"{len(self.val_pairs):,} held out), {self.vocab_size} tokens")


def _pad_pairs(corpus: PairCorpus, pairs: Sequence[tuple[str, str]]):
    tok, name = corpus.tokenizer, corpus.name
    srcs, tgts = [], []
    for i, (s, t) in enumerate(pairs):
        srcs.append(_encode_side(tok, s, name, f"pair {i + 1}", "source") + [corpus.eos_id])
        tgts.append(_encode_side(tok, t, name, f"pair {i + 1}", "target"))
    S = max(len(s) for s in srcs)
    T = max(len(t) for t in tgts) + 1
    src = torch.full((len(pairs), S), corpus.pad_id, dtype=torch.long)
    tgt_in = torch.full((len(pairs), T), corpus.pad_id, dtype=torch.long)
    tgt_out = torch.full((len(pairs), T), -1, dtype=torch.long)
    for i, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        src[i, :len(s)] = torch.tensor(s)
        tgt_in[i, :len(t) + 1] = torch.tensor([corpus.bos_id] + t)
        tgt_out[i, :len(t) + 1] = torch.tensor(t + [corpus.eos_id])
    return src, tgt_in, tgt_out


def _trim(src, tgt_in, tgt_out, pad_id: int):
    s = int((src != pad_id).sum(1).max())
    t = int((tgt_out != -1).sum(1).max())
    return (src[:, :s].contiguous(), tgt_in[:, :t].contiguous()), tgt_out[:, :t].contiguous()


def _split(pairs: list[tuple[str, str]], val_fraction: float) -> tuple[list, list]:
    """The last ``val_fraction`` of the pairs is held out; training pairs whose source also
    occurs there are dropped, so no held-out source was ever seen."""
    n_val = max(1, int(len(pairs) * val_fraction))
    if len(pairs) - n_val < 1:
        raise CorpusError(f"{len(pairs)} pair(s) are too few for a training and a held-out part")
    val = pairs[-n_val:]
    held = {s for s, _ in val}
    train = [p for p in pairs[:-n_val] if p[0] not in held]
    if not train:
        raise CorpusError("every training pair's source is also held out; use more pairs")
    return train, val


def load_pairs(spec: str | Path, tokenizer: CharTokenizer | None = None,
               val_fraction: float = 0.1, seed: int = 0, block_size: int | None = None,
               n_examples: int = PAIR_EXAMPLES) -> PairCorpus:
    """Pairs from ``"task:NAME"`` (:data:`SEQ2SEQ_TASKS`) or a ``source<TAB>target`` file.

    ``tokenizer``: a trained model's vocabulary; a pair with a character outside it is refused
    naming the pair. Without one the task's alphabet (or the file's characters) and the
    special tokens make a new one."""
    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise CorpusError(f"val_fraction={val_fraction!r} must be between 0 and 1")
    spec = str(spec)
    task = spec[5:].strip() if spec.startswith("task:") else None
    if task is not None:
        pairs = task_pairs(task, seed, n_examples)
        name = f"task:{task}"
        own = task_vocabulary(task)
    else:
        pairs = read_tsv_pairs(spec)
        name = Path(spec).name
        chars = sorted({c for s, t in pairs for c in s + t})
        own = CharTokenizer(list(SPECIALS) + chars)
    if tokenizer is not None:
        missing = [c for c in SPECIALS if c not in tokenizer.stoi]
        if missing:
            raise CorpusError(f"{name}: the model's vocabulary has no {missing[0]!r} token, so "
                              "it is not an encoder-decoder's vocabulary")
    train, val = _split(pairs, val_fraction)
    corpus = PairCorpus(name=name, tokenizer=tokenizer or own, train_pairs=train,
                        val_pairs=val, source=spec, task=task)
    corpus.tensors("train")  # every pair in the vocabulary, else one clear error now
    corpus.tensors("val")
    if block_size is not None:
        corpus.check_block_size(block_size)
    return corpus


def exact_match(predict: Callable[[list[str]], list[str]], pairs: Sequence[tuple[str, str]],
                batch_size: int = 256) -> tuple[float, list[tuple[str, str, str]]]:
    """The fraction of pairs whose predicted target equals the reference, and the misses as
    (source, reference, prediction)."""
    hits, misses = 0, []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        for (s, t), p in zip(chunk, predict([s for s, _ in chunk]), strict=True):
            if p == t:
                hits += 1
            else:
                misses.append((s, t, p))
    return (hits / len(pairs) if pairs else float("nan")), misses


__all__ = ["SEQ2SEQ_TASKS", "SEQ2SEQ_DESCRIPTIONS", "SPECIALS", "number_words", "date_words",
           "task_pairs", "task_vocabulary", "read_tsv_pairs", "PairCorpus", "load_pairs",
           "exact_match"]
