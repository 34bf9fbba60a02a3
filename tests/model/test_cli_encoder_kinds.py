"""The CLI with --arch encoder-decoder and --arch encoder: train, eval (exact match, masked-token
accuracy), generate, inspect --json (the three attention families), and one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.__main__ import main
from model.checkpoints import load_checkpoint
from model.stepper import Stepper

TINY = ["--layers", "1", "--heads", "2", "--embd", "16", "--block", "16", "--batch", "8",
        "--eval-interval", "10", "--eval-iters", "2", "--sample-interval", "100", "--quiet",
        "--threads", "1", "--device", "cpu"]
TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "rev.safetensors"
    assert main(["train", "--arch", "encoder-decoder", "--corpus", "task:reverse", "--out",
                 str(out), "--steps", "20", "--enc-layers", "2", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "fox.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = folder / "enc.safetensors"
    assert main(["train", "--arch", "encoder", "--corpus", str(corpus), "--out", str(out),
                 "--steps", "20", *TINY]) == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_train_writes_an_encoder_decoder_with_its_score(seq2seq, capsys):
    ck = load_checkpoint(seq2seq)
    assert ck.config.kind == "encoder-decoder" and ck.config.n_enc_layer == 2
    assert ck.config.n_layer == 1 and 0 <= ck.summary["exact_match"] <= 1
    assert ck.summary["task"] == "reverse"
    with pytest.raises(ValueError, match="decoder models"):
        Stepper(ck.model, ck.tokenizer)  # the stepper refuses clearly, not halfway


def test_eval_prints_exact_match_of_held_out_pairs(seq2seq, capsys):
    assert main(["eval", "--checkpoint", str(seq2seq), "--corpus", "task:reverse"]) == 0
    out = capsys.readouterr().out
    assert "val exact match" in out and "of 2,000 held-out pairs of task:reverse" in out
    assert main(["eval", "--checkpoint", str(seq2seq), "--corpus", "task:reverse",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pairs"] == 2000 and 0 <= data["exact_match"] <= 1
    assert data["correct"] == round(data["exact_match"] * 2000)


def test_inspect_json_gives_the_three_attention_families(seq2seq, capsys):
    assert main(["inspect", "--checkpoint", str(seq2seq), "--prompt", "abcde", "--target",
                 "edc", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cross = np.array(data["cross_attention"])
    enc = np.array(data["encoder_attention"])
    dec = np.array(data["attention"])
    assert cross.shape == (1, 2, 4, 6)  # [layer][head][target (bos + 3)][source (5 + eos)]
    assert enc.shape == (2, 2, 6, 6) and dec.shape == (1, 2, 4, 4)
    np.testing.assert_allclose(cross.sum(-1), 1, atol=1e-5)
    assert (enc[..., np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] > 0).all()
    assert (dec[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] == 0).all()
    assert data["source_pieces"][-1] == "<eos>" and data["target_pieces"][0] == "<bos>"
    assert main(["inspect", "--checkpoint", str(seq2seq), "--prompt", "abcde"]) == 0
    assert "cross-attention head" in capsys.readouterr().out


def test_generate_prints_the_translation(seq2seq, capsys):
    assert main(["generate", "--checkpoint", str(seq2seq), "--prompt", "abcd"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and set(out.strip()) <= set("abcdefghij")


def test_encoder_train_eval_generate_inspect(encoder, tmp_path, capsys):
    ck = load_checkpoint(encoder)
    assert ck.config.kind == "encoder" and 0 <= ck.summary["masked_accuracy"] <= 1
    corpus = tmp_path / "fox.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    assert main(["eval", "--checkpoint", str(encoder), "--corpus", str(corpus)]) == 0
    assert "val masked-token accuracy" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", str(encoder), "--prompt", "the qu[MASK]ck"]) == 0
    filled = capsys.readouterr().out.strip()
    assert len(filled) == 9 and filled.startswith("the qu") and filled.endswith("ck")
    assert main(["inspect", "--checkpoint", str(encoder), "--prompt", "the [MASK]uick",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["position"] for m in data["masks"]] == [4]
    assert np.array(data["encoder_attention"]).shape == (1, 2, 9, 9)
    assert "attention" not in data  # an encoder has no decoder self-attention


def test_malformed_tsv_is_one_line_naming_the_line(tmp_path, capsys):
    p = tmp_path / "pairs.tsv"
    p.write_text("abc\tcba\nabd\tdba\nno tab\n", encoding="utf-8")
    assert main(["train", "--arch", "encoder-decoder", "--corpus", str(p), "--out",
                 str(tmp_path / "x.safetensors"), *TINY]) == 2
    line = one_error_line(capsys)
    assert "pairs.tsv" in line and "line 3 has no tab" in line


def test_a_source_longer_than_the_block_is_refused(seq2seq, capsys):
    assert main(["generate", "--checkpoint", str(seq2seq), "--prompt", "a" * 40]) == 2
    assert "block size 16" in one_error_line(capsys)
    assert main(["inspect", "--checkpoint", str(seq2seq), "--prompt", "a" * 40]) == 2
    assert "block size 16" in one_error_line(capsys)


def test_a_target_vocabulary_mismatch_is_refused(seq2seq, tmp_path, capsys):
    p = tmp_path / "other.tsv"
    p.write_text("abc\tcba\nabd\tDBA\n", encoding="utf-8")
    assert main(["eval", "--checkpoint", str(seq2seq), "--corpus", str(p)]) == 2
    line = one_error_line(capsys)
    assert "target of pair" in line and "'D'" in line
    assert main(["eval", "--checkpoint", str(seq2seq), "--corpus", "task:numbers"]) == 2
    assert "vocabulary" in one_error_line(capsys)


@pytest.mark.parametrize("extra, message", [
    (["--arch", "encoder-decoder", "--resume", "x.safetensors"], "decoder models only"),
    (["--arch", "encoder", "--enc-layers", "2"], "need --arch encoder-decoder"),
    (["--arch", "encoder", "--tokenizer", "bpe:300"], "one token per character"),
    (["--arch", "encoder-decoder", "--block", "6"], "block size 6"),
])
def test_bad_training_requests(extra, message, tmp_path, capsys):
    assert main(["train", "--corpus", "task:reverse", "--out", str(tmp_path / "o.safetensors"),
                 *TINY, *extra]) == 2
    assert message in one_error_line(capsys)
