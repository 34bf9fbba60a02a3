"""Sequence-to-sequence pairs: the tasks' answers, user TSV files and their errors, held-out
pairs, padded batches and exact match."""
from __future__ import annotations

import datetime

import pytest
import torch

from model.corpora import CorpusError
from model.pairs import (
    SEQ2SEQ_TASKS,
    date_words,
    exact_match,
    load_pairs,
    number_words,
    read_tsv_pairs,
    task_pairs,
    task_vocabulary,
)
from model.tokenizer import BOS_CHAR, EOS_CHAR, PAD_CHAR


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty two"),
    (100, "one hundred"), (307, "three hundred seven"), (1000, "one thousand"),
    (1042, "one thousand forty two"), (9999, "nine thousand nine hundred ninety nine"),
    (120_015, "one hundred twenty thousand fifteen"),
])
def test_number_words(n, words):
    assert number_words(n) == words


def test_date_words():
    assert date_words(datetime.date(2024, 3, 7)) == "7 March 2024"
    assert date_words(datetime.date(1999, 12, 31)) == "31 December 1999"


@pytest.mark.parametrize("task", SEQ2SEQ_TASKS)
def test_task_pairs_are_right_repeatable_and_fit_their_vocabulary(task):
    pairs = task_pairs(task, seed=1, n_examples=300)
    assert pairs[:50] == task_pairs(task, seed=1, n_examples=300)[:50]
    tok = task_vocabulary(task)
    assert tok.chars[:3] == [PAD_CHAR, BOS_CHAR, EOS_CHAR]
    for s, t in pairs[:300]:
        tok.encode(s + t)  # every character is in the vocabulary
        if task == "reverse":
            assert t == s[::-1]
        elif task == "sort":
            assert t == "".join(sorted(s))
        elif task == "copy":
            assert t == s
        elif task == "numbers":
            assert t == number_words(int(s))
        else:
            assert t == date_words(datetime.date.fromisoformat(s))


def test_held_out_sources_are_never_trained_on():
    c = load_pairs("task:reverse", n_examples=3000)
    assert len(c.val_pairs) == 300
    assert not {s for s, _ in c.val_pairs} & {s for s, _ in c.train_pairs}
    numbers = load_pairs("task:numbers")
    assert len(numbers.val_pairs) == 1000 and len(numbers.train_pairs) == 9000


def test_batches_are_padded_and_shifted():
    c = load_pairs("task:reverse", n_examples=500)
    (src, tgt_in), tgt_out = c.get_batch("train", 8, generator=torch.Generator().manual_seed(0))
    assert src.shape[0] == tgt_in.shape[0] == 8 and tgt_in.shape == tgt_out.shape
    for b in range(8):
        n = int((src[b] != c.pad_id).sum())
        s = c.tokenizer.decode(src[b, :n - 1].tolist())
        assert src[b, n - 1] == c.eos_id
        t = s[::-1]
        assert tgt_in[b, 0] == c.bos_id and c.tokenizer.decode(tgt_in[b, 1:len(t) + 1].tolist()) == t
        assert c.tokenizer.decode(tgt_out[b, :len(t)].tolist()) == t
        assert tgt_out[b, len(t)] == c.eos_id and (tgt_out[b, len(t) + 1:] == -1).all()
    assert int((src != c.pad_id).sum(1).max()) == src.shape[1]  # trimmed to the longest


def test_a_users_tsv_file(tmp_path):
    p = tmp_path / "pairs.tsv"
    p.write_text("".join(f"{w}\t{w.upper()}\n" for w in ("cat", "dog", "owl", "bee", "ant",
                                                          "elk", "yak", "emu", "gnu", "fox"))
                 + "\n", encoding="utf-8")
    assert read_tsv_pairs(p)[0] == ("cat", "CAT")
    c = load_pairs(str(p), val_fraction=0.2)
    assert c.val_pairs == [("gnu", "GNU"), ("fox", "FOX")] and len(c.train_pairs) == 8
    assert c.name == "pairs.tsv" and set("CATcat") <= set(c.tokenizer.chars)


@pytest.mark.parametrize("text, message", [
    ("a\tb\nno tab here\n", "line 2 has no tab"),
    ("a\tb\nc\td\te\n", "line 2 has 2 tabs"),
    ("a\tb\n\nc\t\n", "line 3 has an empty target"),
    ("\tb\n", "line 1 has an empty source"),
    (f"a{EOS_CHAR}\tb\n", "line 1 holds the special character"),
    ("\n\n", "no source<TAB>target lines"),
])
def test_malformed_tsv_lines_are_named(tmp_path, text, message):
    p = tmp_path / "bad.tsv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        load_pairs(str(p))
    assert message in str(e.value) and "bad.tsv" in str(e.value)


def test_a_pair_longer_than_the_block_is_refused():
    with pytest.raises(CorpusError, match=r"target of pair \d+ .* block size 20"):
        load_pairs("task:numbers", block_size=20)


def test_a_target_outside_the_models_vocabulary_is_refused(tmp_path):
    model_vocab = task_vocabulary("reverse")
    p = tmp_path / "other.tsv"
    p.write_text("abc\tcba\nabd\tXYZ\n", encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        load_pairs(str(p), tokenizer=model_vocab, val_fraction=0.5)
    assert "target of pair 1" in str(e.value) and "'X'" in str(e.value)
    with pytest.raises(CorpusError, match="not an encoder-decoder's vocabulary"):
        from model.tokenizer import CharTokenizer
        load_pairs("task:reverse", tokenizer=CharTokenizer("abcdefghij"))


def test_unknown_task_is_named():
    with pytest.raises(CorpusError, match="unknown sequence-to-sequence task 'induction'"):
        load_pairs("task:induction")


def test_exact_match_counts_whole_targets():
    pairs = [("ab", "ba"), ("abc", "cba"), ("x", "x")]
    acc, misses = exact_match(lambda srcs: [s[::-1] if len(s) < 3 else "cb" for s in srcs],
                              pairs, batch_size=2)
    assert acc == pytest.approx(2 / 3) and misses == [("abc", "cba", "cb")]
