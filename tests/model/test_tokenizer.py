"""The tokenizer interface and CharTokenizer: vocabulary, encode/decode, offsets, pieces, unknown
characters, persistence (and the kind-dispatching factory), printable labels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.tokenizer import (
    TOKENIZER_KINDS,
    CharTokenizer,
    Tokenizer,
    TokenizerError,
    UnknownChar,
    UnknownCharactersError,
    load_tokenizer,
    printable,
    tokenizer_from_dict,
    tokenizer_from_json,
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


# -- the interface -----------------------------------------------------------------------------
EMOJI = "\U0001F600"
COMBINING = "e\u0301"  # e + combining acute: two code points, one glyph


def test_char_tokenizer_is_a_tokenizer_and_the_interface_is_abstract():
    assert isinstance(CharTokenizer.from_text("ab"), Tokenizer)
    with pytest.raises(TypeError):
        Tokenizer()


def test_offsets_are_python_indices_with_emoji_and_combining_characters():
    text = f"a{EMOJI}b{COMBINING}!"
    tok = CharTokenizer.from_text(text)
    spans = tok.offsets(text)
    assert spans == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert [text[s:e] for s, e in spans] == tok.token_strs(tok.encode(text))


def test_offsets_follow_the_errors_option():
    tok = CharTokenizer.from_text("ab")
    text = f"a{EMOJI}xb"
    with pytest.raises(UnknownCharactersError):
        tok.offsets(text)
    assert tok.offsets(text, errors="drop") == [(0, 1), (3, 4)]
    assert len(tok.offsets(text, errors="drop")) == len(tok.encode(text, errors="drop"))
    assert tok.offsets(text, errors="replace") == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(TokenizerError, match="errors"):
        tok.offsets("ab", errors="ignore")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_offsets_cover_each_token_text(data):
    vocab = data.draw(st.text(min_size=1, max_size=20))
    tok = CharTokenizer.from_text(vocab)
    text = data.draw(st.text(max_size=40))
    ids = tok.encode(text, errors="drop")
    spans = tok.offsets(text, errors="drop")
    assert [text[s:e] for s, e in spans] == tok.token_strs(ids)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_unknown_positions_count_code_points_after_an_emoji():
    tok = CharTokenizer.from_text("abc ")
    text = f"a{EMOJI} b\u200bc\u00a7"
    assert tok.unknown(text) == [UnknownChar(EMOJI, 1), UnknownChar("\u200b", 4),
                                 UnknownChar("\u00a7", 6)]
    assert tok.without_unknown(text) == "a bc"
    assert tok.without_unknown("abc") == "abc"


def test_token_pieces_make_whitespace_and_controls_visible():
    tok = CharTokenizer(["a", " ", "\n", "\t", "\x00", "\u200b", EMOJI])
    assert tok.token_pieces(range(tok.vocab_size)) == [
        "a", "\u2423", "\u21b5", "\u21e5", "\\x00", "\\u200b", EMOJI]
    assert tok.token_pieces([]) == []
    assert tok.token_pieces(np.array([1, 0], dtype=np.int64)) == ["\u2423", "a"]


@pytest.mark.parametrize(("piece", "shown"), [
    (" the", "\u2423the"), ("a\nb", "a\u21b5b"), ("\r\n", "\u240d\u21b5"), ("  ", "\u2423\u2423"),
    (COMBINING, COMBINING), ("x\u200by", "x\\u200by"), ("", ""),
])
def test_printable_shows_multi_character_pieces_character_by_character(piece, shown):
    assert printable(piece) == shown


class WordTokenizer(Tokenizer):
    """A stand-in for a tokenizer with multi-character tokens: only the interface's defaults."""

    kind = "test-words"

    def __init__(self, words):
        self.words = list(words)

    @property
    def vocab_size(self):
        return len(self.words)

    def _split(self, text):
        i, out = 0, []
        while i < len(text):
            for w in sorted(self.words, key=len, reverse=True):
                if text.startswith(w, i):
                    out.append((self.words.index(w), i, i + len(w)))
                    i += len(w)
                    break
            else:
                out.append((None, i, i + 1))
                i += 1
        return out

    def encode(self, text, errors="strict"):
        if errors == "strict" and self.unknown(text):
            raise UnknownCharactersError(self.unknown(text))
        return [t for t, _, _ in self._split(text) if t is not None]

    def decode(self, ids):
        return "".join(self.words[int(i)] for i in ids)

    def token_str(self, token_id):
        return self.words[int(token_id)]

    def offsets(self, text, errors="strict"):
        self.encode(text, errors)
        return [(s, e) for t, s, e in self._split(text) if t is not None]

    def unknown(self, text):
        return [UnknownChar(text[s], s) for t, s, _ in self._split(text) if t is None]

    def to_dict(self):
        return {"kind": self.kind, "words": self.words}

    @classmethod
    def from_dict(cls, d):
        return cls(d["words"])


def test_interface_defaults_work_for_multi_character_tokens(monkeypatch):
    tok = WordTokenizer([" the", "cat", "\n", "!"])
    text = f"cat the{EMOJI}!"
    ids = tok.encode(text, errors="drop")
    assert ids == [1, 0, 3]
    assert tok.token_pieces(ids) == ["cat", "\u2423the", "!"]
    assert [text[s:e] for s, e in tok.offsets(text, errors="drop")] == tok.token_strs(ids)
    assert tok.offsets(text, errors="drop")[1] == (3, 7)  # one token, four characters
    assert tok.without_unknown(text) == "cat the!"
    assert tok.start_ids() == [2]
    assert WordTokenizer(["a"]).start_ids() == [0]  # no newline token
    # the factory reads every registered kind
    monkeypatch.setitem(TOKENIZER_KINDS, WordTokenizer.kind, WordTokenizer)
    again = tokenizer_from_json(tok.to_json())
    assert isinstance(again, WordTokenizer) and again.words == tok.words


def test_start_ids_prefer_a_newline():
    assert CharTokenizer(["a", "\n"]).start_ids() == [1]
    assert CharTokenizer(["b", "a"]).start_ids() == [0]


def test_save_and_load_through_the_factory(tmp_path):
    tok = CharTokenizer.from_text(TEXT + EMOJI + COMBINING)
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is CharTokenizer and loaded == tok
    assert loaded.encode(TEXT + EMOJI) == tok.encode(TEXT + EMOJI)
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))) == tok
    assert tokenizer_from_json(tok.to_json()).token_pieces(range(tok.vocab_size)) == \
        tok.token_pieces(range(tok.vocab_size))


@pytest.mark.parametrize(("d", "match"), [
    ({"kind": "sentencepiece"}, "'sentencepiece' .*known kinds: 'bpe', 'char'"),
    ({"kind": "bpe"}, "no 'tokenizer' object"),
    ({"chars": ["a"]}, "kind None"),
    (["a"], "kind 'list'"),
    ({"kind": ["char"]}, "kind"),
    ({"kind": "char", "chars": "ab"}, "chars"),
])
def test_factory_rejects_unknown_kinds_and_bad_descriptions(d, match):
    with pytest.raises(TokenizerError, match=match):
        tokenizer_from_dict(d)


def test_load_tokenizer_reports_bad_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{nope", encoding="utf-8")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        load_tokenizer(path)


def test_mask_text_spans_find_every_written_mask():
    from model.tokenizer import MASK_TEXT, mask_text_spans

    text = f"ab{MASK_TEXT}c{MASK_TEXT}{MASK_TEXT}[MASK"
    spans = mask_text_spans(text)
    assert spans == [(2, 8), (9, 15), (15, 21)]
    assert all(text[a:b] == MASK_TEXT for a, b in spans)
    assert mask_text_spans("no mask [MAS K]") == []
