"""The shipped encoder kinds (model/assets/models/): they load, score what their card says on
held-out data, and match the card (parsed, not copied)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.checkpoints import load_checkpoint
from model.corpora import load_corpus
from model.pairs import load_pairs
from model.shipped import resolve_corpus
from model.tokenizer import MASK_CHAR
from model.train_encoders import fill_masks, masked_accuracy, seq2seq_accuracy, translate
from tests.model.test_shipped_models import MB, card_section

MODELS = Path(__file__).resolve().parents[2] / "model" / "assets" / "models"
NUMBERS = MODELS / "numbers_to_words.safetensors"
ENCODER = MODELS / "sonnets_encoder.safetensors"


def _num(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m is not None, f"{pattern!r} not found in {text!r}"
    return float(m.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def numbers():
    return load_checkpoint(NUMBERS)


def test_numbers_model_matches_its_card(numbers):
    rows = card_section(NUMBERS.name)
    cfg, s = numbers.config, numbers.summary
    assert cfg.kind == "encoder-decoder"
    assert cfg.n_enc_layer == _num(r"(\d+) encoder", rows["model"])
    assert cfg.n_layer == _num(r"(\d+) decoder layers", rows["model"])
    assert cfg.n_embd == _num(r"width (\d+)", rows["model"])
    assert cfg.vocab_size == _num(r"(\d+) tokens", rows["tokenizer"])
    assert numbers.model.num_params() == _num(r"([\d,]+) parameters", rows["model"])
    assert round(NUMBERS.stat().st_size / MB, 1) == _num(r"([\d.]+) MB", rows["model"])
    assert NUMBERS.stat().st_size <= 3 * MB
    assert numbers.steps == _num(r"([\d,]+) steps", rows["training"])
    assert round(100 * s["exact_match"], 2) == _num(r"([\d.]+) % exact match", rows["result"])
    assert s["exact_match"] >= 0.99


def test_numbers_model_spells_held_out_numbers(numbers):
    assert translate(numbers.model, numbers.tokenizer, ["307", "9999", "0"]) == [
        "three hundred seven", "nine thousand nine hundred ninety nine", "zero"]
    held_out = load_pairs("task:numbers", tokenizer=numbers.tokenizer).val_pairs
    acc, _ = seq2seq_accuracy(numbers.model, numbers.tokenizer, held_out[:300])
    assert acc >= 0.98


def test_sonnets_encoder_matches_its_card_and_fills_masks():
    ck = load_checkpoint(ENCODER)
    rows = card_section(ENCODER.name)
    cfg, s = ck.config, ck.summary
    assert cfg.kind == "encoder" and ck.tokenizer.encode(MASK_CHAR) == [cfg.mask_id]
    assert cfg.n_layer == _num(r"(\d+) layers", rows["model"])
    assert cfg.n_embd == _num(r"width (\d+)", rows["model"])
    assert cfg.vocab_size == _num(r"(\d+) tokens", rows["tokenizer"])
    assert ck.model.num_params() == _num(r"([\d,]+) parameters", rows["model"])
    assert round(ENCODER.stat().st_size / MB, 1) == _num(r"([\d.]+) MB", rows["model"])
    assert ENCODER.stat().st_size <= 3 * MB
    assert ck.steps == _num(r"([\d,]+) steps", rows["training"])
    assert round(100 * s["masked_accuracy"], 2) == _num(r"([\d.]+) % masked-token accuracy",
                                                        rows["result"])
    corpus = load_corpus(resolve_corpus("sonnets"), block_size=cfg.block_size,
                         tokenizer=ck.tokenizer)
    acc, n = masked_accuracy(ck.model, corpus, "val", batches=5)
    assert n > 500 and acc > 0.3  # a space everywhere scores about 0.17
    filled, _ = fill_masks(ck.model, ck.tokenizer, "to a su" + MASK_CHAR + "mer's day")
    assert filled == "to a summer's day"
