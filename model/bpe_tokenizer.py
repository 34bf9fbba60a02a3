"""Subword tokenizers through Hugging Face's ``tokenizers`` library: GPT-2's byte-level BPE and
any other ``tokenizer.json``.

A byte-level BPE (GPT-2) first maps every byte of the UTF-8 text to a printable character
(a space becomes ``Ġ``, a newline ``Ċ``) and then merges frequent pairs, so every text can be
encoded and nothing is ever unknown. The pieces shown to a person are the token's own bytes with
whitespace made visible (``Ġthe`` shows as ``␣the``); a token holding part of a character (an
emoji is often split over several tokens) shows its bytes as ``\\xf0\\x9f``.

Training (:meth:`BPETokenizer.train`) is deterministic: the same text and vocabulary size give
the same merges. Saved inside checkpoints as JSON (``{"kind": "bpe", "tokenizer": {...}}``) and
as Hugging Face files (``tokenizer.json``, ``vocab.json`` + ``merges.txt``) for export.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from .tokenizer import (
    TOKENIZER_KINDS,
    Tokenizer,
    TokenizerError,
    UnknownChar,
    UnknownCharactersError,
    printable,
)

BPE_KIND = "bpe"
END_OF_TEXT = "<|endoftext|>"  # GPT-2's document separator; trained BPEs get it as id 0
MIN_BPE_VOCAB = 257  # the 256 bytes and the end-of-text token


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (openai/gpt-2, encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


_BYTE_OF_CHAR = {c: b for b, c in _bytes_to_unicode().items()}
# str.translate table: each byte character to the Latin-1 character of its byte, and every other
# character below U+0100 to U+FFFF, so that a piece encodes to Latin-1 exactly when all its
# characters are byte characters (the others below U+0100 would otherwise encode as themselves)
_LATIN1_OF_CHAR = {**{i: "\uffff" for i in range(256)},
                   **{ord(c): chr(b) for c, b in _BYTE_OF_CHAR.items()}}


class BPETokenizer(Tokenizer):
    """A ``tokenizers.Tokenizer`` behind this project's tokenizer interface."""

    kind = BPE_KIND

    def __init__(self, tokenizer: HFTokenizer):
        self._tok = tokenizer
        # read from the library's objects, not from its JSON (parsing GPT-2's takes 0.3 s)
        self.byte_level = isinstance(tokenizer.decoder, decoders.ByteLevel)
        n = tokenizer.get_vocab_size(with_added_tokens=True)
        if n < 1:
            raise TokenizerError("the tokenizer has an empty vocabulary")
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        if sorted(vocab.values()) != list(range(n)):
            raise TokenizerError("the tokenizer's ids are not 0 .. vocab size - 1 without gaps")
        self._pieces: list[str] = [""] * n
        for piece, i in vocab.items():
            self._pieces[i] = piece
        self._special = {t.content for t in tokenizer.get_added_tokens_decoder().values()
                         if t.special}
        self._bytes: list[bytes] = [self._piece_bytes(p) for p in self._pieces]
        # id -> text and id -> label, filled as ids are asked for: the stepper labels its whole
        # window at every step (up to 1,024 tokens); plain dicts, whose values never change,
        # so the GUI thread and the worker may both fill them
        self._strs: dict[int, str] = {}
        self._labels: dict[int, str] = {}

    def _piece_bytes(self, piece: str) -> bytes:
        if self.byte_level and piece not in self._special:
            try:  # every character one of GPT-2's 256 byte characters (C speed: 50k pieces)
                return piece.translate(_LATIN1_OF_CHAR).encode("latin-1")
            except UnicodeEncodeError:
                pass
        return piece.encode("utf-8")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        """A GPT-2-style byte-level BPE with ``vocab_size`` tokens learned from ``text``."""
        if not isinstance(vocab_size, int) or vocab_size < MIN_BPE_VOCAB:
            raise TokenizerError(
                f"a byte-level BPE needs a vocabulary of at least {MIN_BPE_VOCAB} tokens (the "
                f"256 bytes and {END_OF_TEXT}), got {vocab_size!r}")
        if not text:
            raise TokenizerError("cannot train a tokenizer on empty text")
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=2, show_progress=False,
            special_tokens=[END_OF_TEXT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        # the whole text as one item: split into lines, a newline followed by indentation would
        # be counted as other pieces than encoding the text gives
        tok.train_from_iterator([text], trainer=trainer)
        return cls(tok)

    @classmethod
    def from_file(cls, path: str | Path) -> BPETokenizer:
        """A ``tokenizer.json`` written by the ``tokenizers`` library or ``transformers``."""
        path = Path(path)
        try:
            return cls(HFTokenizer.from_str(path.read_text(encoding="utf-8")))
        except TokenizerError as e:
            raise TokenizerError(f"{path}: {e}") from None
        except Exception as e:  # the library's own parse errors
            raise TokenizerError(f"{path}: not a tokenizer.json the tokenizers library can read "
                                 f"({e})") from None

    @classmethod
    def from_vocab_merges(cls, vocab: str | Path, merges: str | Path) -> BPETokenizer:
        """GPT-2's original files: ``vocab.json`` (piece -> id) and ``merges.txt``."""
        try:
            model = models.BPE.from_file(str(vocab), str(merges))
        except Exception as e:
            raise TokenizerError(f"{vocab} / {merges}: not a GPT-2 vocabulary and merges file "
                                 f"({e})") from None
        tok = HFTokenizer(model)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        pieces = json.loads(Path(vocab).read_text(encoding="utf-8"))
        if END_OF_TEXT in pieces:  # as transformers' GPT2TokenizerFast does
            tok.add_special_tokens([END_OF_TEXT])
        return cls(tok)

    @classmethod
    def from_folder(cls, folder: str | Path) -> BPETokenizer:
        """The tokenizer of a Hugging Face model folder: ``tokenizer.json``, else ``vocab.json``
        + ``merges.txt``."""
        folder = Path(folder)
        if (folder / "tokenizer.json").is_file():
            return cls.from_file(folder / "tokenizer.json")
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            return cls.from_vocab_merges(folder / "vocab.json", folder / "merges.txt")
        raise TokenizerError(f"{folder}: no tokenizer (it needs tokenizer.json, or vocab.json "
                             "and merges.txt)")

    # -- facts ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def __len__(self) -> int:
        return len(self._pieces)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and other._tok.to_str() == self._tok.to_str()

    def __hash__(self) -> int:
        return hash(self._tok.to_str())

    @property
    def end_of_text(self) -> int | None:
        """The id of ``<|endoftext|>`` when the vocabulary has it."""
        return self._tok.token_to_id(END_OF_TEXT)

    # -- encoding ------------------------------------------------------------------------------
    def unknown(self, text: str) -> list[UnknownChar]:
        """Characters no token covers (never any for a byte-level BPE)."""
        if self.byte_level or not text:
            return []
        bad = {c for c in set(text) if not self._tok.encode(c, add_special_tokens=False).ids}
        return [UnknownChar(c, i) for i, c in enumerate(text) if c in bad]

    def _encode(self, text: str, errors: str) -> tuple[list[int], list[tuple[int, int]]]:
        if errors not in ("strict", "drop"):
            raise TokenizerError(f"errors={errors!r} must be 'strict' or 'drop'")
        bad = self.unknown(text)
        if bad and errors == "strict":
            raise UnknownCharactersError(bad)
        if not bad:
            enc = self._tok.encode(text, add_special_tokens=False)
            return enc.ids, [(a, b) for a, b in enc.offsets]
        # the library's offsets go wrong after a character it drops: encode the text without
        # them and map the offsets back onto the original text
        gone = {u.position for u in bad}
        keep = [i for i in range(len(text)) if i not in gone]
        enc = self._tok.encode("".join(text[i] for i in keep), add_special_tokens=False)
        return enc.ids, [(keep[a], keep[b - 1] + 1) for a, b in enc.offsets]

    def encode(self, text: str, errors: str = "strict") -> list[int]:
        """Text to ids. 'strict' raises :class:`UnknownCharactersError` for characters no token
        covers (a byte-level BPE has none), 'drop' leaves them out."""
        return self._encode(text, errors)[0]

    def offsets(self, text: str, errors: str = "strict") -> list[tuple[int, int]]:
        """(start, end) character span of each token of ``text`` in ``text``, as transformers'
        offset mapping gives them: a token that holds part of a character (an emoji split over
        two tokens) covers that whole character, so neighbouring spans overlap there."""
        return self._encode(text, errors)[1]

    def _check_id(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self._pieces):
            raise TokenizerError(f"token id {i} is outside the vocabulary "
                                 f"(0..{len(self._pieces) - 1})")
        return i

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; bytes that do not form a whole character become U+FFFD."""
        return b"".join(self._bytes[self._check_id(i)] for i in ids).decode("utf-8", "replace")

    def token_bytes(self, i: int) -> bytes:
        return self._bytes[self._check_id(i)]

    def token_str(self, i: int) -> str:
        """The text of one token (a part of a character decodes to U+FFFD)."""
        return self.token_bytes(i).decode("utf-8", "replace")

    def token_strs(self, ids: Iterable[int]) -> list[str]:
        memo = self._strs
        out = []
        for i in ids:
            s = memo.get(i)
            if s is None:
                s = memo[int(i)] = self.token_str(i)
            out.append(s)
        return out

    def token_pieces(self, ids: Iterable[int]) -> list[str]:
        """Each token as a label: ``␣the`` for GPT-2's ``Ġthe``, ``↵`` for a newline, and the
        bytes as ``\\xf0\\x9f`` for a token that holds only part of a character."""
        memo = self._labels
        out = []
        for i in ids:
            label = memo.get(i)
            if label is None:
                label = memo[int(i)] = self._label(self._check_id(i))
            out.append(label)
        return out

    def _label(self, i: int) -> str:
        if self._pieces[i] in self._special:
            return self._pieces[i]
        try:
            text = self._bytes[i].decode("utf-8")
        except UnicodeDecodeError:
            text = self._bytes[i].decode("utf-8", "backslashreplace")
        return printable(text)

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "tokenizer": json.loads(self._tok.to_str())}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        if not isinstance(d, dict) or d.get("kind") != BPE_KIND:
            kind = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise TokenizerError(f"unsupported tokenizer kind {kind!r} (expected 'bpe')")
        spec = d.get("tokenizer")
        if not isinstance(spec, dict):
            raise TokenizerError("the 'bpe' tokenizer description has no 'tokenizer' object")
        try:
            tok = HFTokenizer.from_str(json.dumps(spec))
        except Exception as e:
            raise TokenizerError(f"the BPE tokenizer JSON cannot be read ({e})") from None
        return cls(tok)

    @classmethod
    def from_json(cls, s: str) -> BPETokenizer:
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise TokenizerError(f"tokenizer is not valid JSON: {e}") from None
        return cls.from_dict(d)

    def save_folder(self, folder: str | Path) -> list[Path]:
        """Hugging Face's files: ``tokenizer.json`` and, for a BPE model, ``vocab.json`` and
        ``merges.txt`` (what GPT-2's slow tokenizer reads)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "tokenizer.json"
        path.write_text(self._tok.to_str(pretty=True), encoding="utf-8")
        written = [path]
        if isinstance(self._tok.model, models.BPE) and self.byte_level:
            written += [Path(p) for p in self._tok.model.save(str(folder))]
        return written


TOKENIZER_KINDS[BPE_KIND] = BPETokenizer

__all__ = ["BPE_KIND", "END_OF_TEXT", "MIN_BPE_VOCAB", "BPETokenizer"]
