"""Tokenizers: the interface every model's tokenizer implements, and the character-level one.

:class:`Tokenizer` is all the GUI and the command line know of a tokenizer: ids from text and
back, what each token's label shows (:meth:`Tokenizer.token_pieces`), which characters of the
text each token covers (:meth:`Tokenizer.offsets`), the characters it cannot encode, and a
JSON-able description whose ``"kind"`` field says which class reads it back
(:func:`tokenizer_from_dict`). :class:`CharTokenizer` is one token per distinct character of the
training corpus; a byte-level BPE is another kind behind the same interface.

Unknown characters are reported, never silently dropped: :class:`UnknownCharactersError` says
which characters and where, and ``encode(..., errors="drop"|"replace")`` is the explicit way out.
Every position and offset is a Python ``str`` index (code points); a GUI whose text widget
counts otherwise (Qt: UTF-16 code units) converts them itself.
"""
from __future__ import annotations

import importlib
import json
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

CHAR_KIND = "char"

# Special tokens of the encoder kinds, as characters so a CharTokenizer holds them like any
# other. Their labels (printable) are <pad>, <bos>, <eos>: the Unicode control pictures have no
# glyph in the fonts most desktops have (DejaVu), so a chip would show an empty box.
PAD_CHAR = "\u2400"  # ␀ fills a shorter sequence of a batch; never attended to
BOS_CHAR = "\u2402"  # ␂ starts every target of an encoder-decoder
EOS_CHAR = "\u2403"  # ␃ ends a source and a target
MASK_CHAR = "\u2588"  # █ hides a token from an encoder, which predicts what it was ([MASK])
MASK_TEXT = "[MASK]"  # how a user writes MASK_CHAR in a prompt


def mask_text_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every ``[MASK]`` written out in ``text``: an encoder reads each as its
    mask token, so its characters are not unknown ones."""
    spans, start = [], text.find(MASK_TEXT)
    while start >= 0:
        spans.append((start, start + len(MASK_TEXT)))
        start = text.find(MASK_TEXT, start + len(MASK_TEXT))
    return spans


class TokenizerError(ValueError):
    """The tokenizer description is invalid."""


@dataclass(frozen=True)
class UnknownChar:
    char: str
    position: int  # index in the text


class UnknownCharactersError(ValueError):
    """The text holds characters the model's vocabulary does not have."""

    def __init__(self, unknown: Sequence[UnknownChar]):
        self.unknown = list(unknown)
        distinct = sorted({u.char for u in self.unknown})
        shown = ", ".join(repr(c) for c in distinct[:10]) + (" …" if len(distinct) > 10 else "")
        where = ", ".join(str(u.position) for u in self.unknown[:10])
        if len(self.unknown) > 10:
            where += " …"
        super().__init__(
            f"{len(distinct)} character(s) not in the model's vocabulary: {shown} "
            f"(at position {where})")

    @property
    def chars(self) -> list[str]:
        return sorted({u.char for u in self.unknown})

    @property
    def positions(self) -> list[int]:
        return [u.position for u in self.unknown]


_VISIBLE = {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423", "\r": "\u240d",
            PAD_CHAR: "<pad>", BOS_CHAR: "<bos>", EOS_CHAR: "<eos>"}


def _visible_char(c: str) -> str:
    shown = _VISIBLE.get(c)
    if shown is not None:
        return shown
    if unicodedata.category(c)[0] in "CZ":
        # control, format, separator and unassigned characters would render as blanks
        code = ord(c)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return c


def printable(piece: str) -> str:
    """How a token's text is shown in labels: whitespace and control characters made visible,
    character by character (a BPE token " the" shows as "␣the")."""
    if len(piece) == 1:
        return _visible_char(piece)
    return "".join(_visible_char(c) for c in piece)


class Tokenizer(ABC):
    """What the rest of the project may ask of a tokenizer (see the module docstring)."""

    kind: ClassVar[str]  # the "kind" of its description (to_dict), unique per class

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids (0..vocab_size-1)."""

    @abstractmethod
    def encode(self, text: str, errors: str = "strict") -> list[int]:
        """Text to ids. errors: 'strict' raises UnknownCharactersError for characters the
        tokenizer cannot encode, 'drop' leaves them out."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text (TokenizerError for an id outside the vocabulary)."""

    @abstractmethod
    def token_str(self, token_id: int) -> str:
        """The text one token stands for on its own."""

    @abstractmethod
    def offsets(self, text: str, errors: str = "strict") -> list[tuple[int, int]]:
        """For each token ``encode(text, errors)`` gives, the span ``(start, end)`` of ``text``
        it covers (Python str indices; a token may cover several characters)."""

    @abstractmethod
    def unknown(self, text: str) -> list[UnknownChar]:
        """The characters of ``text`` the tokenizer cannot encode, with their positions."""

    @abstractmethod
    def to_dict(self) -> dict:
        """A JSON-able description with a ``"kind"`` field; :func:`tokenizer_from_dict` reads it."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        """The tokenizer :meth:`to_dict` described (TokenizerError if it is not one of this kind)."""

    # -- built on the above ------------------------------------------------------------------
    def token_strs(self, ids: Iterable[int]) -> list[str]:
        """:meth:`token_str` of each id."""
        return [self.token_str(i) for i in ids]

    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes one token stands for (a byte-level BPE token may hold part of a
        character)."""
        return self.token_str(token_id).encode("utf-8")

    def token_pieces(self, ids: Iterable[int]) -> list[str]:
        """What the label of each token shows: its text with whitespace and control characters
        made visible (:func:`printable`)."""
        return [printable(self.token_str(i)) for i in ids]

    def without_unknown(self, text: str) -> str:
        """``text`` with the characters the tokenizer cannot encode left out."""
        bad = {u.position for u in self.unknown(text)}
        return "".join(c for i, c in enumerate(text) if i not in bad) if bad else text

    def start_ids(self) -> list[int]:
        """Where generation starts from an empty prompt: a newline if the tokenizer has one
        token for it, else token 0."""
        ids = self.encode("\n", errors="drop")
        return ids if len(ids) == 1 else [0]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``; :func:`load_tokenizer` reads it back."""
        Path(path).write_text(self.to_json(), encoding="utf-8")


def _parse_json(s: str) -> dict:
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        raise TokenizerError(f"tokenizer is not valid JSON: {e}") from None


def _kind_of(d: object) -> object:
    return d.get("kind") if isinstance(d, dict) else type(d).__name__


class CharTokenizer(Tokenizer):
    """Maps each character to an integer id (sorted order, like nanoGPT's shakespeare_char)."""

    kind = CHAR_KIND

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if not chars:
            raise TokenizerError("a tokenizer needs at least one character")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise TokenizerError(f"vocabulary entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise TokenizerError("the vocabulary has duplicate characters")
        self.chars: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}
        # every step labels a whole window: look the labels up, do not work them out again
        self._pieces = [printable(c) for c in chars]

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not text:
            raise TokenizerError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(tuple(self.chars))

    def unknown(self, text: str) -> list[UnknownChar]:
        return [UnknownChar(c, i) for i, c in enumerate(text) if c not in self.stoi]

    def encode(self, text: str, errors: str = "strict", replacement: str | None = None) -> list[int]:
        """Text to ids. errors: 'strict' raises UnknownCharactersError, 'drop' skips unknown
        characters, 'replace' substitutes ``replacement`` (default: a space if known, else id 0)."""
        if errors == "strict":
            bad = self.unknown(text)
            if bad:
                raise UnknownCharactersError(bad)
            return [self.stoi[c] for c in text]
        if errors == "drop":
            return [self.stoi[c] for c in text if c in self.stoi]
        if errors == "replace":
            if replacement is None:
                rid = self.stoi.get(" ", 0)
            elif replacement in self.stoi:
                rid = self.stoi[replacement]
            else:
                raise TokenizerError(f"replacement {replacement!r} is not in the vocabulary")
            return [self.stoi.get(c, rid) for c in text]
        raise TokenizerError(f"errors={errors!r} must be 'strict', 'drop' or 'replace'")

    def offsets(self, text: str, errors: str = "strict") -> list[tuple[int, int]]:
        """One character per token: token k of ``encode(text, errors)`` covers one character."""
        if errors in ("strict", "drop"):
            if errors == "strict":
                bad = self.unknown(text)
                if bad:
                    raise UnknownCharactersError(bad)
            return [(i, i + 1) for i, c in enumerate(text) if c in self.stoi]
        if errors == "replace":
            return [(i, i + 1) for i in range(len(text))]
        raise TokenizerError(f"errors={errors!r} must be 'strict', 'drop' or 'replace'")

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        n = len(self.chars)
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise TokenizerError(f"token id {i} is outside the vocabulary (0..{n - 1})")
            out.append(self.chars[i])
        return "".join(out)

    def token_str(self, token_id: int) -> str:
        return self.chars[int(token_id)]

    def token_strs(self, ids: Iterable[int]) -> list[str]:
        chars = self.chars
        return [chars[i] for i in ids]

    def token_pieces(self, ids: Iterable[int]) -> list[str]:
        pieces = self._pieces
        return [pieces[i] for i in ids]

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        if not isinstance(d, dict) or d.get("kind") != CHAR_KIND:
            raise TokenizerError(f"unsupported tokenizer kind {_kind_of(d)!r} (expected 'char')")
        chars = d.get("chars")
        if not isinstance(chars, list):
            raise TokenizerError("tokenizer JSON has no 'chars' list")
        return cls(chars)

    @classmethod
    def from_json(cls, s: str) -> CharTokenizer:
        return cls.from_dict(_parse_json(s))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


#: kind -> the class that reads descriptions of that kind (a new tokenizer adds itself here)
TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {CharTokenizer.kind: CharTokenizer}
# kinds whose module needs a library of its own (tokenizers): imported when first read, and it
# adds itself to TOKENIZER_KINDS
_KIND_MODULES = {"bpe": ".bpe_tokenizer"}


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """The tokenizer a :meth:`Tokenizer.to_dict` description stands for, whatever its kind."""
    kind = _kind_of(d)
    if isinstance(kind, str) and kind not in TOKENIZER_KINDS and kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[kind], __package__)
    cls = TOKENIZER_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(repr(k) for k in sorted(set(TOKENIZER_KINDS) | set(_KIND_MODULES)))
        raise TokenizerError(f"unsupported tokenizer kind {kind!r} (known kinds: {known})")
    return cls.from_dict(d)


def tokenizer_from_json(s: str) -> Tokenizer:
    return tokenizer_from_dict(_parse_json(s))


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer file written by :meth:`Tokenizer.save`, whatever its kind."""
    return tokenizer_from_json(Path(path).read_text(encoding="utf-8"))
