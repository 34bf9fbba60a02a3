"""Character-level tokenizer: one token per distinct character of the training corpus.

Unknown characters are reported, never silently dropped: :class:`UnknownCharactersError` says
which characters and where, and ``encode(..., errors="drop"|"replace")`` is the explicit way out.
"""
from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

TOKENIZER_KIND = "char"


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


def printable(token: str) -> str:
    """How a token is shown in labels: whitespace and control characters made visible."""
    special = {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423", "\r": "\u240d"}
    if token in special:
        return special[token]
    if len(token) == 1 and unicodedata.category(token)[0] in "CZ":
        # control, format, separator and unassigned characters would render as blanks
        code = ord(token)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return token


class CharTokenizer:
    """Maps each character to an integer id (sorted order, like nanoGPT's shakespeare_char)."""

    kind = TOKENIZER_KIND

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

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        n = len(self.chars)
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise TokenizerError(f"token id {i} is outside the vocabulary (0..{n - 1})")
            out.append(self.chars[i])
        return "".join(out)

    def token_str(self, i: int) -> str:
        return self.chars[int(i)]

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        if not isinstance(d, dict) or d.get("kind") != TOKENIZER_KIND:
            kind = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise TokenizerError(f"unsupported tokenizer kind {kind!r} (expected 'char')")
        chars = d.get("chars")
        if not isinstance(chars, list):
            raise TokenizerError("tokenizer JSON has no 'chars' list")
        return cls(chars)

    @classmethod
    def from_json(cls, s: str) -> CharTokenizer:
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise TokenizerError(f"tokenizer is not valid JSON: {e}") from None
        return cls.from_dict(d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
