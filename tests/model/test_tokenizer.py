"""CharTokenizer: vocabulary, encode/decode, unknown characters, persistence, printable labels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.tokenizer import (
    CharTokenizer,
    TokenizerError,
    UnknownChar,
    UnknownCharactersError,
    printable,
)

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def test_from_text_builds_sorted_vocabulary():
    tok = CharTokenizer.from_text(TEXT)
    assert tok.chars == sorted(set(TEXT))
    assert tok.vocab_size == len(set(TEXT)) == len(tok)
    assert tok.stoi == {c: i for i, c in enumerate(sorted(set(TEXT)))}
    assert tok.kind == "char"
    assert tok.chars[0] == "\n"  # sorted by code point, like nanoGPT's shakespeare_char


def test_explicit_vocabulary_keeps_order():
    tok = CharTokenizer(["z", "a", "\n"])
    assert tok.encode("az\n") == [1, 0, 2]
    assert tok.token_str(0) == "z"


@pytest.mark.parametrize("chars", [[], ["ab"], [""], [1], ["a", "a"]])
def test_invalid_vocabulary(chars):
    with pytest.raises(TokenizerError):
        CharTokenizer(chars)


def test_empty_text_rejected():
    with pytest.raises(TokenizerError, match="empty"):
        CharTokenizer.from_text("")


def test_encode_decode_basics():
    tok = CharTokenizer.from_text("abc")
    assert tok.encode("cab") == [2, 0, 1]
    assert tok.decode([2, 0, 1]) == "cab"
    assert tok.encode("") == []
    assert tok.decode([]) == ""
    assert tok.decode(np.array([0, 1], dtype=np.int64)) == "ab"
    assert tok.decode(torch.tensor([1, 2])) == "bc"


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=1))
def test_roundtrip_own_text(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_roundtrip_any_text_over_vocabulary(data):
    vocab = data.draw(st.text(min_size=1, max_size=30))
    tok = CharTokenizer.from_text(vocab)
    text = data.draw(st.text(alphabet=st.sampled_from(tok.chars), max_size=50))
    assert tok.decode(tok.encode(text)) == text
    ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=50))
    assert tok.encode(tok.decode(ids)) == ids


def test_unknown_characters_listed_with_positions():
    tok = CharTokenizer.from_text("abc ")
    with pytest.raises(UnknownCharactersError) as info:
        tok.encode("ab Xc yX")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.chars == ["X", "y"]
    assert err.positions == [3, 6, 7]
    assert err.unknown == [UnknownChar("X", 3), UnknownChar("y", 6), UnknownChar("X", 7)]
    msg = str(err)
    assert "'X'" in msg and "'y'" in msg
    assert "2 character(s)" in msg
    assert "3, 6, 7" in msg


def test_unknown_characters_message_is_bounded():
    tok = CharTokenizer.from_text("a")
    text = "a" + "".join(chr(ord("A") + i) for i in range(15)) * 3
    with pytest.raises(UnknownCharactersError) as info:
        tok.encode(text)
    err = info.value
    assert len(err.chars) == 15
    assert len(err.positions) == 45
    assert "…" in str(err)
    assert len(str(err)) < 300


def test_unknown_reports_without_raising():
    tok = CharTokenizer.from_text("ab")
    assert tok.unknown("abc\u00e9") == [UnknownChar("c", 2), UnknownChar("\u00e9", 3)]
    assert tok.unknown("abba") == []


def test_drop_skips_unknown():
    tok = CharTokenizer.from_text("ab")
    assert tok.encode("axbyb", errors="drop") == tok.encode("abb")
    assert tok.encode("xyz", errors="drop") == []


def test_replace_defaults_to_space_when_known():
    tok = CharTokenizer.from_text("ab ")
    assert tok.decode(tok.encode("aXb", errors="replace")) == "a b"


def test_replace_falls_back_to_id_zero():
    tok = CharTokenizer.from_text("ab")
    assert tok.encode("aXb", errors="replace") == [0, 0, 1]


def test_replace_with_explicit_character():
    tok = CharTokenizer.from_text("ab?")
    assert tok.decode(tok.encode("aXbY", errors="replace", replacement="?")) == "a?b?"
    with pytest.raises(TokenizerError, match="replacement"):
        tok.encode("aX", errors="replace", replacement="#")


def test_bad_errors_option():
    tok = CharTokenizer.from_text("ab")
    with pytest.raises(TokenizerError, match="errors"):
        tok.encode("ab", errors="ignore")


@pytest.mark.parametrize("bad", [[3], [-1], [0, 1, 2, 99]])
def test_decode_out_of_range(bad):
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        tok.decode(bad)


def test_json_roundtrip_and_files(tmp_path):
    tok = CharTokenizer.from_text(TEXT + "\u00e9\u4e2d\t")
    s = tok.to_json()
    assert "\u4e2d" in s  # stored as the character itself, readable
    assert json.loads(s) == {"kind": "char", "chars": tok.chars}
    assert CharTokenizer.from_json(s) == tok
    assert CharTokenizer.from_dict(tok.to_dict()) == tok
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = CharTokenizer.load(str(path))
    assert loaded == tok
    assert loaded.chars == tok.chars
    assert loaded.encode(TEXT) == tok.encode(TEXT)


def test_equality_and_hash():
    a = CharTokenizer.from_text("hello")
    b = CharTokenizer(sorted("helo"))
    c = CharTokenizer.from_text("help")
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != "hello"
    assert len({a, b, c}) == 2


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", "not valid JSON"),
    ('{"kind": "bpe", "chars": ["a"]}', "bpe"),
    ('{"chars": ["a"]}', "kind"),
    ('["a", "b"]', "kind"),
    ('"char"', "kind"),
    ('{"kind": "char"}', "chars"),
    ('{"kind": "char", "chars": "abc"}', "chars"),
    ('{"kind": "char", "chars": ["a", "a"]}', "duplicate"),
    ('{"kind": "char", "chars": ["ab"]}', "single characters"),
    ('{"kind": "char", "chars": []}', "at least one"),
])
def test_bad_json(text, match):
    with pytest.raises(TokenizerError, match=match):
        CharTokenizer.from_json(text)


def test_load_bad_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"kind": "sentencepiece"}', encoding="utf-8")
    with pytest.raises(TokenizerError, match="sentencepiece"):
        CharTokenizer.load(path)


@pytest.mark.parametrize(("token", "shown"), [
    ("\n", "\u21b5"), ("\t", "\u21e5"), (" ", "\u2423"), ("\r", "\u240d"),
    ("\x00", "\\x00"), ("\x1b", "\\x1b"), ("\x7f", "\\x7f"),
    ("a", "a"), ("Z", "Z"), ("\u00e9", "\u00e9"), ("\u4e2d", "\u4e2d"), ("!", "!"),
])
def test_printable(token, shown):
    assert printable(token) == shown


@settings(max_examples=200, deadline=None)
@given(st.characters())
def test_printable_never_shows_control_or_blank(c):
    shown = printable(c)
    assert shown
    assert shown != " "
    assert all(ord(ch) >= 32 and ord(ch) != 127 for ch in shown)


def test_printable_distinguishes_tokens_of_a_vocabulary():
    chars = [chr(i) for i in range(128)]
    labels = [printable(c) for c in chars]
    assert len(set(labels)) == len(labels)
