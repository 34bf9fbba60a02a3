"""Token files (`python -m model prepare`): layout, equality with the in-memory corpus, errors,
and memory that stays flat when the file grows."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.__main__ import main
from model.checkpoints import read_metadata
from model.corpora import Corpus, CorpusError, load_corpus
from model.token_files import TokenFiles, iter_text, prepare, token_dtype
from model.tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[2]
TEXT = "".join(f"Line {i}: naïve café — {i * i % 97} ✓\n" for i in range(400))


@pytest.fixture
def text_file(tmp_path) -> Path:
    p = tmp_path / "text.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def read_ids(folder: Path, split: str, dtype) -> np.ndarray:
    return np.fromfile(folder / f"{split}.bin", dtype=dtype)


def test_prepare_writes_nanogpt_layout_that_decodes_back_to_the_text(text_file, tmp_path):
    out = tmp_path / "tok"
    # small pieces, so characters of several bytes and the split fall across piece boundaries
    meta = prepare(text_file, out, val_fraction=0.1, chunk_bytes=37)
    tok = CharTokenizer.load(out / "tokenizer.json")
    assert tok == CharTokenizer.from_text(TEXT)
    assert meta["dtype"] == "uint16" and json.loads((out / "meta.json").read_text()) == meta
    train, val = read_ids(out, "train", np.uint16), read_ids(out, "val", np.uint16)
    assert len(val) == int(len(TEXT) * 0.1) and len(train) + len(val) == len(TEXT)
    assert tok.decode(np.concatenate([train, val])) == TEXT
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "tokenizer.json", "train.bin",
                                                     "val.bin"]


def test_reading_in_pieces_cleans_up_like_read_text_file(tmp_path):
    p = tmp_path / "crlf.txt"
    p.write_bytes("\ufeff".encode() + b"a\r\nb\r\n" * 50)
    pieces = list(iter_text(p, chunk_bytes=3))  # CRLF pairs split across pieces
    assert "".join(pieces) == "a\nb\n" * 50


def test_a_vocabulary_beyond_65536_characters_uses_uint32(tmp_path):
    text = "".join(chr(0x10000 + i) for i in range(70_000))
    src = tmp_path / "wide.txt"
    src.write_text(text, encoding="utf-8")
    meta = prepare(src, tmp_path / "wide")
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70_000
    ids = np.concatenate([read_ids(tmp_path / "wide", s, np.uint32) for s in ("train", "val")])
    assert ids.max() == 69_999 and np.all(np.diff(ids.astype(np.int64)) == 1)
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32


def test_batches_and_windows_equal_the_in_memory_corpus(text_file, tmp_path):
    prepare(text_file, tmp_path / "tok")
    files = TokenFiles.open(tmp_path / "tok", block_size=16)
    mem = Corpus.from_text(TEXT, "text", val_fraction=0.1)
    assert files.n_tokens == mem.n_tokens and files.tokenizer == mem.tokenizer
    for split in ("train", "val"):
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        for _ in range(3):
            a, b = files.get_batch(split, 5, 16, generator=g1), mem.get_batch(split, 5, 16,
                                                                              generator=g2)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        wa, wb = list(files.iter_windows(split, 16, 7)), list(mem.iter_windows(split, 16, 7))
        assert len(wa) == len(wb)
        for (xa, ya), (xb, yb) in zip(wa, wb, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_train_and_eval_read_a_token_folder(text_file, tmp_path, capsys):
    assert main(["prepare", "--corpus", str(text_file), "--out", str(tmp_path / "tok")]) == 0
    out = tmp_path / "m.safetensors"
    assert main(["train", "--corpus", str(tmp_path / "tok"), "--out", str(out), "--layers", "1",
                 "--heads", "2", "--embd", "16", "--block", "16", "--batch", "4", "--steps", "3",
                 "--eval-iters", "1", "--quiet", "--device", "cpu"]) == 0
    summary = read_metadata(out)["summary"]
    assert summary["corpus"] == "tok" and summary["corpus_tokens"] == len(TEXT)
    assert main(["eval", "--checkpoint", str(out), "--corpus", str(tmp_path / "tok"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tokens"] == int(len(TEXT) * 0.1) - 1 and np.isfinite(result["loss"])


@pytest.mark.parametrize("spec", ["bpe:512", "some/folder"])
def test_prepare_refuses_other_tokenizers_in_one_line(text_file, tmp_path, capsys, spec):
    rc = main(["prepare", "--corpus", str(text_file), "--tokenizer", spec,
               "--out", str(tmp_path / "tok")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "only 'char'" in err[0]
    assert not (tmp_path / "tok").exists()


def test_broken_token_folders_are_named_clearly(text_file, tmp_path):
    with pytest.raises(CorpusError, match="prepare"):
        load_corpus(tmp_path)  # a folder without meta.json
    prepare(text_file, tmp_path / "tok")
    with open(tmp_path / "tok" / "train.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CorpusError, match="incomplete"):
        load_corpus(tmp_path / "tok")
    prepare(text_file, tmp_path / "tok")
    with pytest.raises(CorpusError, match="another vocabulary"):
        load_corpus(tmp_path / "tok", tokenizer=CharTokenizer("abc"))


PEAK = """
import os, sys
from model.__main__ import main
rc = main(sys.argv[1:])
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print("PEAK_KB", peak, rc)
"""


def _fake_token_folder(folder: Path, n_tokens: int) -> None:
    """Token files of ``n_tokens`` made instantly: a sparse train.bin (all id 0), a small
    val.bin and the description."""
    folder.mkdir()
    CharTokenizer("ab").save(folder / "tokenizer.json")
    with open(folder / "train.bin", "wb") as f:
        f.truncate(n_tokens * 2)
    (np.arange(2000) % 2).astype(np.uint16).tofile(folder / "val.bin")
    (folder / "meta.json").write_text(json.dumps({
        "format": "transformer-explorer token files", "version": 1,
        "tokenizer": "tokenizer.json", "dtype": "uint16", "vocab_size": 2,
        "train_tokens": n_tokens, "val_tokens": 2000, "val_fraction": 0.1, "source": "fake"}))


def _peak_rss_mb(folder: Path, out: Path) -> float:
    args = ["train", "--corpus", str(folder), "--out", str(out), "--layers", "1", "--heads",
            "1", "--embd", "8", "--block", "32", "--batch", "8", "--steps", "30",
            "--eval-iters", "2", "--quiet", "--device", "cpu", "--threads", "1"]
    r = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = [x for x in r.stdout.splitlines() if x.startswith("PEAK_KB")]
    assert line and line[0].split()[2] == "0", r.stdout + r.stderr
    return int(line[0].split()[1]) / 1024


def test_peak_memory_stays_flat_when_the_token_file_grows_tenfold(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    _fake_token_folder(small, 20_000_000)  # 40 MB
    _fake_token_folder(large, 200_000_000)  # 400 MB: loading it would add 360 MB (1.4 GB as ids)
    peak_small = _peak_rss_mb(small, tmp_path / "s.safetensors")
    peak_large = _peak_rss_mb(large, tmp_path / "l.safetensors")
    assert peak_large - peak_small < 40, (peak_small, peak_large)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_come_through_pinned_memory_and_equal_the_cpu_ones(text_file, tmp_path):
    prepare(text_file, tmp_path / "tok")
    files = TokenFiles.open(tmp_path / "tok")
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    xc, yc = files.get_batch("train", 6, 16, generator=g1, device="cuda")
    x, y = files.get_batch("train", 6, 16, generator=g2)
    torch.cuda.synchronize()
    assert xc.is_cuda and torch.equal(xc.cpu(), x) and torch.equal(yc.cpu(), y)
