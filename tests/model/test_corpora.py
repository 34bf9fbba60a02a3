"""Corpora: refusing unusable files, synthetic tasks, the train/validation split and batches."""
from __future__ import annotations

import pytest
import torch

from model.corpora import (
    SYNTHETIC_TASKS,
    TASK_ALPHABET,
    Corpus,
    CorpusError,
    check_task_line,
    load_corpus,
    read_text_file,
    synthetic_text,
    task_tokenizer,
)
from model.tokenizer import CharTokenizer

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40  # 1800 characters


# -- files -------------------------------------------------------------------------------------
def test_reads_utf8_text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("héllo wörld ✓\n", encoding="utf-8")
    assert read_text_file(p) == "héllo wörld ✓\n"


def test_bom_dropped_and_crlf_normalised(tmp_path):
    p = tmp_path / "win.txt"
    p.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n")
    assert read_text_file(p) == "one\ntwo\n"


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"\xef\xbb\xbf", "empty"),
    (b"abc\x00def", "binary"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"caf\xe9 au lait", "UTF-8"),  # Latin-1, not UTF-8
    (b"\xff\xfeh\x00i\x00", "binary"),  # UTF-16 has NUL bytes
])
def test_unusable_files_are_refused_naming_file_and_reason(tmp_path, data, reason):
    p = tmp_path / "bad.bin"
    p.write_bytes(data)
    with pytest.raises(CorpusError) as e:
        read_text_file(p)
    assert "bad.bin" in str(e.value) and reason in str(e.value)
    with pytest.raises(CorpusError):
        load_corpus(str(p))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_text_file(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="folder"):
        read_text_file(tmp_path)


def test_not_utf8_message_says_where(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("abc é".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"0xe9 at offset 4"):
        read_text_file(p)


def test_corpus_shorter_than_block_is_refused(tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("hello", encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        load_corpus(str(p), block_size=8)
    msg = str(e.value)
    assert "short.txt" in msg and "5 tokens" in msg and "block size + 1 = 9" in msg
    with pytest.raises(CorpusError, match="block size"):
        Corpus.from_text("abcdefgh", "eight", block_size=8)  # needs block + 1 = 9
    # just enough for a window, not for a training and a validation part
    with pytest.raises(CorpusError, match="validation"):
        Corpus.from_text("abcdefghi", "nine", block_size=8)
    Corpus.from_text("abcdefghijklmnopqr", "ok", block_size=8)  # 2 * 9 tokens


def test_load_corpus_from_path(tmp_path):
    p = tmp_path / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    c = load_corpus(str(p), block_size=16)
    assert c.name == "fox.txt" and c.source == str(p) and c.task is None
    assert c.tokenizer == CharTokenizer.from_text(TEXT)
    assert c.tokenizer.decode(torch.cat([c.train, c.val]).tolist()) == TEXT


def test_given_tokenizer_must_cover_the_text():
    tok = CharTokenizer("abc")
    with pytest.raises(CorpusError, match=r"vocabulary.*'d'"):
        Corpus.from_text("abcd" * 10, "t", tokenizer=tok)
    c = Corpus.from_text("cab" * 10, "t", tokenizer=tok)
    assert c.train[:3].tolist() == [2, 0, 1]


def test_fast_encoding_matches_the_tokenizer():
    tok = CharTokenizer(list("zyx\n é✓"))  # not sorted on purpose
    text = "xyz é✓\nzz x" * 7
    c = Corpus.from_text(text, "t", tokenizer=tok)
    assert torch.cat([c.train, c.val]).tolist() == tok.encode(text)
    assert c.train.dtype == torch.int64


# -- synthetic tasks ---------------------------------------------------------------------------
@pytest.mark.parametrize("task", SYNTHETIC_TASKS)
def test_tasks_are_deterministic_and_valid(task):
    a = synthetic_text(task, n_examples=300, seed=7)
    assert a == synthetic_text(task, n_examples=300, seed=7)
    assert a != synthetic_text(task, n_examples=300, seed=8)
    lines = a.split("\n")
    assert lines[-1] == "" and len(lines) == 301
    for line in lines[:-1]:
        assert check_task_line(task, line), line
    assert set(a) <= set(task_tokenizer(task).chars)


def test_task_examples_look_like_the_issue_says():
    line = synthetic_text("copy", 1, seed=0).rstrip("\n")
    a, b = line.split("|")
    assert a == b and set(a) <= set(TASK_ALPHABET)
    line = synthetic_text("reverse", 1, seed=0).rstrip("\n")
    a, b = line.split(">")
    assert b == a[::-1]
    line = synthetic_text("sort", 1, seed=0).rstrip("\n")
    a, b = line.split(">")
    assert b == "".join(sorted(a))
    line = synthetic_text("induction", 1, seed=0).rstrip("\n")
    n = next(n for n in range(3, 9) if line[:n] * (len(line) // n) == line and len(line) % n == 0)
    assert len(set(line[:n])) == n and len(line) // n in (2, 3)


def test_check_task_line_rejects_wrong_answers():
    assert check_task_line("copy", "abc|abc")
    assert not check_task_line("copy", "abc|abd")
    assert not check_task_line("reverse", "abc>abc")
    assert check_task_line("sort", "cab>abc")
    assert not check_task_line("sort", "cab>acb")
    assert check_task_line("induction", "bhadbhad")
    assert not check_task_line("induction", "bhadbhac")
    assert not check_task_line("induction", "aabaab")  # letters of the pattern must be distinct


def test_task_tokenizer_independent_of_seed_and_length():
    for task in SYNTHETIC_TASKS:
        c1 = load_corpus(f"task:{task}", block_size=16)
        c2 = load_corpus(f"task:{task}", block_size=16, n_examples=50, seed=3)
        assert c1.tokenizer == c2.tokenizer == task_tokenizer(task)
        assert c1.name == f"task:{task}" and c1.task == task


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(CorpusError) as e:
        load_corpus("task:copyy")
    msg = str(e.value)
    assert "copyy" in msg
    for t in SYNTHETIC_TASKS:
        assert t in msg
    with pytest.raises(CorpusError, match="copy, induction, reverse, sort"):
        synthetic_text("nope")


def test_default_probe_prompt_of_a_task_ends_at_the_separator():
    assert load_corpus("task:copy").default_probe_prompt().endswith("|")
    assert load_corpus("task:sort").default_probe_prompt().endswith(">")


# -- split and batches -------------------------------------------------------------------------
def test_split_sizes_last_part_is_validation():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    c = Corpus.from_text(text, "t", val_fraction=0.1)
    assert len(c.train) == 900 and len(c.val) == 100 and c.n_tokens == 1000
    assert c.tokenizer.decode(c.val.tolist()) == text[900:]
    c = Corpus.from_text(text, "t", val_fraction=0.25)
    assert len(c.val) == 250


def test_validation_part_grows_to_one_window():
    text = "ab" * 100  # 200 tokens: 10% would be 20, fewer than block + 1
    c = Corpus.from_text(text, "t", val_fraction=0.1, block_size=32)
    assert len(c.val) == 33 and len(c.train) == 167
    c.check_block_size(32)


def test_batch_shapes_and_shift():
    c = Corpus.from_text(TEXT, "fox", block_size=16)
    g = torch.Generator().manual_seed(0)
    x, y = c.get_batch("train", 5, 16, generator=g)
    assert x.shape == y.shape == (5, 16)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    text = c.tokenizer.decode(c.train.tolist())
    for b in range(5):  # every row is a real window of the training part
        row = c.tokenizer.decode(x[b].tolist()) + c.tokenizer.decode(y[b, -1:].tolist())
        assert row in text
    xv, yv = c.get_batch("val", 3, 16, generator=g)
    assert xv.shape == (3, 16) and torch.equal(xv[:, 1:], yv[:, :-1])


def test_batches_repeat_for_the_same_generator_state():
    c = Corpus.from_text(TEXT, "fox", block_size=16)
    a = c.get_batch("train", 4, 16, generator=torch.Generator().manual_seed(3))
    b = c.get_batch("train", 4, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_batch_window_larger_than_split_is_refused():
    c = Corpus.from_text(TEXT, "fox", block_size=16)
    with pytest.raises(CorpusError, match="val part"):
        c.get_batch("val", 2, len(c.val))
    with pytest.raises(CorpusError, match="split"):
        c.get_batch("test", 2, 4)


def test_iter_windows_covers_every_token_once():
    c = Corpus.from_text(TEXT, "fox", block_size=16)
    n = 0
    first = None
    for x, y in c.iter_windows("val", 16, batch_size=3):
        assert x.shape == y.shape and torch.equal(x[:, 1:], y[:, :-1])
        first = y if first is None else first
        n += y.numel()
    assert n == len(c.val) - 1
    assert first[0, 0] == c.val[1]
