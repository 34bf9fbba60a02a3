"""The headless CLI: python -m model train|generate|inspect|eval, and its one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.__main__ import main
from model.checkpoints import load_checkpoint, read_metadata

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
TINY = ["--layers", "1", "--heads", "2", "--embd", "16", "--block", "16", "--batch", "4",
        "--eval-interval", "10", "--eval-iters", "2", "--sample-interval", "100", "--quiet",
        "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cli") / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "fox.safetensors"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), "--steps", "20", *TINY]) == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_train_writes_a_loadable_self_describing_checkpoint(trained):
    ck = load_checkpoint(trained)
    assert ck.config.n_layer == 1 and ck.config.n_embd == 16 and ck.config.block_size == 16
    meta = read_metadata(trained)
    assert meta["summary"]["steps"] == 20
    assert meta["summary"]["corpus"] == "fox.txt"
    assert np.isfinite(meta["summary"]["val_loss"])


def test_resume_continues_the_step_count(trained, corpus, tmp_path):
    out = tmp_path / "more.safetensors"
    rc = main(["train", "--corpus", str(corpus), "--out", str(out), "--resume", str(trained),
               "--steps", "30", "--quiet", "--threads", "1", "--device", "cpu"])
    assert rc == 0
    assert read_metadata(out)["summary"]["steps"] == 30


def test_generate_prints_prompt_and_requested_number_of_tokens(trained, capsys):
    assert main(["generate", "--checkpoint", str(trained), "--prompt", "the ", "--tokens", "25",
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the ")
    body = out[len("the "):]
    assert len(body.rstrip("\n")) <= 25 <= len(body)
    # same seed, same text
    main(["generate", "--checkpoint", str(trained), "--prompt", "the ", "--tokens", "25",
          "--seed", "3"])
    assert capsys.readouterr().out == out


def test_inspect_json_has_tokens_ids_next_token_attention_config(trained, capsys):
    assert main(["inspect", "--checkpoint", str(trained), "--prompt", "the fox", "--json",
                 "--top-k", "3", "--temperature", "0.5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"] == list("the fox")
    tok = load_checkpoint(trained).tokenizer
    assert data["ids"] == tok.encode("the fox")
    assert len(data["next_token"]) == 3  # top-k removes the rest
    assert {"token", "id", "prob"} <= set(data["next_token"][0])
    assert sum(c["prob"] for c in data["next_token"]) == pytest.approx(1.0, abs=1e-6)
    probs = [c["prob"] for c in data["next_token"]]
    assert probs == sorted(probs, reverse=True)
    att = np.array(data["attention"])
    assert att.shape == (1, 2, 7, 7)  # [layer][head][query][key]
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(att, k=1) == 0)
    assert data["config"]["n_head"] == 2


def test_inspect_readable_summary(trained, capsys):
    assert main(["inspect", "--checkpoint", str(trained), "--prompt", "the fox"]) == 0
    out = capsys.readouterr().out
    assert "next token" in out and "layer 0:" in out


def test_eval_prints_validation_loss(trained, corpus, capsys):
    assert main(["eval", "--checkpoint", str(trained), "--corpus", str(corpus), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["split"] == "val" and data["tokens"] > 0
    assert 0 < data["loss"] < np.log(load_checkpoint(trained).config.vocab_size) + 1


def test_eval_gives_the_loss_per_character(trained, corpus, tmp_path, capsys):
    # a character model: one token per character, so the two figures agree
    assert main(["eval", "--checkpoint", str(trained), "--corpus", str(corpus), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["characters"] == data["tokens"]
    assert data["loss_per_char"] == pytest.approx(data["loss"])
    # a BPE model: the same total loss spread over the characters its predicted tokens cover
    bpe = tmp_path / "bpe.safetensors"
    assert main(["train", "--corpus", str(corpus), "--out", str(bpe), "--steps", "5",
                 "--tokenizer", "bpe:300", *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(bpe), "--corpus", str(corpus), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    tok = load_checkpoint(bpe).tokenizer
    ids = tok.encode(TEXT)
    n_val = max(int(len(ids) * 0.1), 16 + 1)  # the last 10 %, at least a block (16) + 1
    predicted = ids[len(ids) - n_val + 1:]  # every validation token but the first
    assert data["tokens"] == len(predicted)
    assert data["characters"] == len(tok.decode(predicted)) > data["tokens"]
    assert data["loss_per_char"] == pytest.approx(data["loss"] * len(predicted)
                                                  / data["characters"])
    assert data["loss_per_char"] < data["loss"]
    main(["eval", "--checkpoint", str(bpe), "--corpus", str(corpus)])
    assert f"{data['loss_per_char']:.4f} per character" in capsys.readouterr().out


@pytest.mark.parametrize("args, expected", [
    (["generate", "--checkpoint", "{missing}", "--prompt", "a"], "no such file"),
    (["generate", "--checkpoint", "{corrupt}", "--prompt", "a"], "corrupt.safetensors"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "the €"], "€"),
    (["train", "--corpus", "{binary}", "--out", "{out}", *TINY], "binary"),
    (["train", "--corpus", "task:nope", "--out", "{out}", *TINY], "copy"),
    (["train", "--corpus", "{corpus}", "--out", "{out}", "--embd", "30", "--heads", "4"],
     "n_embd=30"),
    (["train", "--corpus", "{corpus}", "--out", "{out}", "--lr", "-1"], "lr=-1"),
    (["train", "--corpus", "{corpus}", "--out", "{tmp}/x.bin"], ".safetensors"),
    (["train", "--corpus", "{corpus}", "--out", "{out}", "--device", "cuda:7"], "cuda"),
    (["eval", "--checkpoint", "{ckpt}", "--corpus", "{empty}"], "empty"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(args, expected, trained, corpus, tmp_path,
                                                   capsys):
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00\x01not a safetensors file" * 10)
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.txt").write_text("")
    subs = {"{missing}": str(tmp_path / "nope.safetensors"),
            "{corrupt}": str(tmp_path / "corrupt.safetensors"),
            "{ckpt}": str(trained), "{binary}": str(tmp_path / "bin.txt"),
            "{out}": str(tmp_path / "out.safetensors"), "{corpus}": str(corpus),
            "{empty}": str(tmp_path / "empty.txt"), "{tmp}": str(tmp_path)}
    argv = [subs.get(a, a) for a in args]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc = main(argv)
    assert rc != 0
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "out.safetensors").exists()


def test_module_entry_point_exit_code_and_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "model", "generate", "--checkpoint",
         str(tmp_path / "missing.safetensors")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.safetensors" in lines[0]


def test_task_corpora_get_the_task_recipe_unless_overridden():
    from model.__main__ import TASK_RECIPE, TEXT_RECIPE, _apply_recipe_defaults, build_parser

    p = build_parser()
    a = p.parse_args(["train", "--corpus", "task:copy", "--out", "x.safetensors"])
    _apply_recipe_defaults(a)
    assert (a.pos, a.lr, a.batch) == (TASK_RECIPE["pos"], TASK_RECIPE["lr"], TASK_RECIPE["batch"])
    a = p.parse_args(["train", "--corpus", "task:copy", "--out", "x.safetensors", "--pos",
                      "learned", "--lr", "0.01"])
    _apply_recipe_defaults(a)
    assert (a.pos, a.lr, a.batch) == ("learned", 0.01, TASK_RECIPE["batch"])
    a = p.parse_args(["train", "--corpus", "text.txt", "--out", "x.safetensors"])
    _apply_recipe_defaults(a)
    assert (a.pos, a.lr, a.batch) == (TEXT_RECIPE["pos"], TEXT_RECIPE["lr"], TEXT_RECIPE["batch"])
