"""Shipped models and the sample corpus are found by name from any folder (model/shipped.py)."""
from __future__ import annotations

from pathlib import Path

from model import shipped
from model.__main__ import main


def test_a_shipped_name_resolves_and_a_real_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped.resolve_checkpoint("induction") == shipped.MODELS / "induction.safetensors"
    assert shipped.resolve_checkpoint("induction.safetensors") == \
        shipped.MODELS / "induction.safetensors"
    assert shipped.model_names() == ["induction", "numbers_to_words", "shakespeare_bpe",
                                     "shakespeare_char", "sonnets_encoder"]
    # a file of that name in the current folder is the user's own: it is never shadowed
    (tmp_path / "induction.safetensors").write_bytes(b"mine")
    assert shipped.resolve_checkpoint("induction.safetensors") == Path("induction.safetensors")
    # a path with folders is never taken for a name; an unknown name stays as typed
    assert shipped.resolve_checkpoint("x/shakespeare_char") == Path("x/shakespeare_char")
    assert shipped.resolve_checkpoint("nonesuch") == Path("nonesuch")
    assert shipped.resolve_corpus("sonnets") == str(shipped.CORPORA / "sonnets.txt")
    assert shipped.resolve_corpus("task:copy") == "task:copy"


def test_the_sample_corpus_is_small_plain_text():
    (sonnets,) = shipped.shipped_corpora()
    text = sonnets.read_text(encoding="utf-8")
    assert 5_000 < len(text.encode()) <= 50_000
    assert "Shall I compare thee to a summer's day?" in text


def test_cli_finds_a_shipped_model_from_another_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--checkpoint", "shakespeare_char", "--corpus", "sonnets", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"loss"' in out and "sonnets.txt" in out
    assert main(["generate", "--checkpoint", "nonesuch", "--tokens", "5"]) == 2
    assert "nonesuch" in capsys.readouterr().err
