"""Byte-level BPE through the tokenizers library: the same ids as transformers' GPT-2 tokenizer,
visible pieces, character offsets, deterministic training, saved inside checkpoints, and
``python -m model train --tokenizer bpe:VOCAB``."""
from __future__ import annotations

import json

import pytest
import torch

from model.__main__ import main
from model.bpe_tokenizer import BPETokenizer
from model.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from model.config import ModelConfig
from model.tokenizer import TokenizerError, tokenizer_from_json
from model.transformer import GPT


@pytest.fixture(scope="module")
def fast(bpe_folder):
    transformers = pytest.importorskip("transformers")
    return transformers.GPT2TokenizerFast.from_pretrained(str(bpe_folder))


@pytest.mark.parametrize("files", ["tokenizer.json", "vocab.json + merges.txt"])
def test_ids_identical_to_transformers_and_tokenizers(bpe_folder, fast, samples, tmp_path,
                                                      files):
    from tokenizers import ByteLevelBPETokenizer

    if files == "tokenizer.json":
        tok = BPETokenizer.from_file(bpe_folder / "tokenizer.json")
    else:
        tok = BPETokenizer.from_vocab_merges(bpe_folder / "vocab.json", bpe_folder / "merges.txt")
    lib = ByteLevelBPETokenizer(str(bpe_folder / "vocab.json"), str(bpe_folder / "merges.txt"))
    assert tok.vocab_size == len(fast) == 300
    for text in samples:
        ids = tok.encode(text)
        assert ids == fast(text)["input_ids"], text
        assert ids == lib.encode(text).ids, text
        assert tok.decode(ids) == text == fast.decode(ids)
    assert tok.encode("<|endoftext|>") == [299] == fast("<|endoftext|>")["input_ids"]


def test_pieces_make_whitespace_and_partial_characters_visible(bpe_folder):
    tok = BPETokenizer.from_folder(bpe_folder)
    vocab = json.loads((bpe_folder / "vocab.json").read_text(encoding="utf-8"))
    assert tok.token_pieces([vocab["Ġthe"], vocab["Ċ"], vocab["ĉ"]]) == ["␣the", "↵", "⇥"]
    assert tok.token_str(vocab["Ġthe"]) == " the"
    assert tok.token_bytes(vocab["Ġthe"]) == b" the"
    ids = tok.encode("🦀")  # an unseen emoji: tokens holding parts of its four bytes
    pieces = tok.token_pieces(ids)
    assert len(ids) > 1 and all(p.startswith("\\x") for p in pieces)
    assert "".join(pieces) == "\\xf0\\x9f\\xa6\\x80"
    assert tok.token_pieces(tok.encode("\x07")) == ["\\x07"]  # a control byte shows its code
    assert tok.token_pieces([299]) == ["<|endoftext|>"]
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        tok.token_pieces([300])


def test_offsets_are_character_spans_as_transformers_gives_them(bpe_folder, fast, samples):
    tok = BPETokenizer.from_folder(bpe_folder)
    for text in samples:
        ids, spans = tok.encode(text), tok.offsets(text)
        assert spans == [tuple(o) for o in
                         fast(text, return_offsets_mapping=True)["offset_mapping"]], text
        covered = set()
        for (a, b), i in zip(spans, ids, strict=True):
            covered.update(range(a, b))
            piece = tok.token_str(i)
            if "\ufffd" not in piece:  # whole characters: the span is exactly the token's text
                assert text[a:b] == piece
        assert covered == set(range(len(text)))
        assert [a for a, _ in spans] == sorted(a for a, _ in spans)
    # a token that ends inside a character reaches to that character's end, and the token
    # holding the rest of it covers the character again
    crab = tok.offsets("a 🦀")
    assert crab[-1] == (2, 3) and all(b == 3 for _, b in crab[1:])


def test_training_is_deterministic_and_round_trips(samples):
    text = "\n".join(samples) * 30
    a, b = BPETokenizer.train(text, 400), BPETokenizer.train(text, 400)
    assert a == b and a.to_json() == b.to_json()
    assert a != BPETokenizer.train(text, 300)
    assert 257 < a.vocab_size <= 400 and a.end_of_text == 0
    for s in samples + ["never seen: ☃ ℵ 🦕 \x00"]:
        assert a.decode(a.encode(s)) == s
    back = tokenizer_from_json(a.to_json())
    assert type(back) is BPETokenizer and back == a
    assert back.encode(samples[1]) == a.encode(samples[1])
    assert a.unknown("anything ☃") == [] and a.start_ids() == a.encode("\n")
    with pytest.raises(TokenizerError, match="at least 257"):
        BPETokenizer.train(text, 100)


def test_checkpoint_carries_the_bpe_tokenizer(tmp_path, samples):
    tok = BPETokenizer.train("\n".join(samples) * 10, 320)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2,
                            n_embd=16)).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, tok)
    assert read_metadata(path)["tokenizer"].to_dict()["kind"] == "bpe"
    ck = load_checkpoint(path)
    assert type(ck.tokenizer) is BPETokenizer and ck.tokenizer == tok
    x = torch.tensor([tok.encode(samples[2])[:32]])
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x, all_logits=True)[0], model(x, all_logits=True)[0])


def _corpus(tmp_path, samples):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(samples * 40), encoding="utf-8")
    return path


def test_cli_train_with_bpe_then_generate_and_eval(tmp_path, samples, capsys):
    corpus = _corpus(tmp_path, samples)
    out = tmp_path / "bpe.safetensors"
    args = ["train", "--corpus", str(corpus), "--out", str(out), "--tokenizer", "bpe:300",
            "--layers", "1", "--heads", "2", "--embd", "16", "--block", "16", "--steps", "3",
            "--batch", "2", "--eval-interval", "3", "--eval-iters", "1", "--quiet"]
    assert main(args) == 0
    ck = load_checkpoint(out)
    assert type(ck.tokenizer) is BPETokenizer and ck.config.vocab_size == ck.tokenizer.vocab_size
    # the tokenizer was learned from the corpus, deterministically
    assert ck.tokenizer == BPETokenizer.train(corpus.read_text(encoding="utf-8"), 300)
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(out), "--prompt", "The fox", "--tokens", "5",
                 "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("The fox")
    assert main(["eval", "--checkpoint", str(out), "--corpus", str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tokens"] > 0 and result["loss"] > 0


@pytest.mark.parametrize(("spec", "words"), [
    ("bpe:10", "at least 257"),
    ("bpe:many", "'char' or 'bpe:VOCAB'"),
    ("wordpiece", "'char' or 'bpe:VOCAB'"),
])
def test_cli_bad_tokenizer_spec_is_one_line(tmp_path, samples, capsys, spec, words):
    corpus = _corpus(tmp_path, samples)
    rc = main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "x.safetensors"),
               "--tokenizer", spec, "--steps", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "x.safetensors").exists()


def test_character_tokenizer_exported_as_tokenizer_json_encodes_like_the_original(tmp_path):
    """Export writes a character model's vocabulary as a BPE without merges; read back, it gives
    the same ids, offsets and unknown characters (the library's own offsets go wrong after a
    character it drops)."""
    from model.adapters.hf_gpt2 import save_hf_folder
    from model.tokenizer import CharTokenizer, UnknownCharactersError

    char = CharTokenizer.from_text("abc \n")
    model = GPT(ModelConfig(vocab_size=char.vocab_size, block_size=8, n_layer=1, n_head=1,
                            n_embd=8))
    back = BPETokenizer.from_folder(save_hf_folder(model, char, tmp_path / "hf"))
    for text in ("ab c\n", "xxab cx\n", "abxc", "é"):
        for method in ("encode", "offsets"):
            assert getattr(back, method)(text, errors="drop") == \
                getattr(char, method)(text, errors="drop"), (method, text)
        assert back.unknown(text) == char.unknown(text)
    assert back.decode(char.encode("ab c\n")) == "ab c\n"
    with pytest.raises(UnknownCharactersError, match="'x'"):
        back.encode("abxc")
