"""Training the encoder kinds: a short reverse run learns the mirror alignment in its
cross-attention, BERT's masking rule, and an encoder that learns to fill masks from both sides."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.capture import capture
from model.checkpoints import load_checkpoint
from model.config import ModelConfig, TrainConfig
from model.corpora import Corpus
from model.pairs import load_pairs
from model.tokenizer import MASK_CHAR
from model.train_encoders import (
    encoder_tokenizer,
    fill_masks,
    mask_tokens,
    masked_accuracy,
    seq2seq_accuracy,
    train_encoder,
    train_encoder_decoder,
    translate,
)


def mirror_fraction(model, tokenizer, source: str) -> float:
    """The best head's fraction of target positions i whose heaviest cross-attention weight
    falls on source position n-1-i (target position i is the decoder input that predicts the
    i-th output letter, which is source letter n-1-i)."""
    cfg = model.config
    src = torch.tensor([tokenizer.encode(source) + [cfg.eos_id]])
    tgt = torch.tensor([[cfg.bos_id] + tokenizer.encode(source[::-1])])
    with torch.no_grad(), capture(model) as rec:
        model(src, tgt)
    a = torch.stack(rec.cross_attn_probs)[:, 0]  # (L, H, T, S)
    n = len(source)
    heaviest = a[:, :, :n, :].argmax(-1)  # (L, H, n)
    want = torch.arange(n - 1, -1, -1)
    return float((heaviest == want).float().mean(-1).max())


def test_a_short_reverse_run_learns_the_mirror_alignment(tmp_path):
    pairs = load_pairs("task:reverse", n_examples=4000)
    model_cfg = ModelConfig(block_size=12, n_layer=2, n_head=4, n_embd=64, pos_kind="learned")
    train_cfg = TrainConfig(steps=250, batch_size=64, lr=3e-3, min_lr=3e-4, warmup_steps=12,
                            weight_decay=0.01, eval_interval=250, eval_iters=1,
                            sample_interval=250, sample_tokens=0, seed=0, device="cpu")
    out = tmp_path / "reverse.safetensors"
    result = train_encoder_decoder(pairs, model_cfg, train_cfg, out)
    assert result.ok and result.step == 250
    ck = load_checkpoint(out)
    assert ck.config.kind == "encoder-decoder" and ck.summary["exact_match"] >= 0.9
    fractions = [mirror_fraction(ck.model, ck.tokenizer, s) for s, _ in pairs.val_pairs[:20]]
    assert sum(fractions) / len(fractions) >= 0.9
    acc, _ = seq2seq_accuracy(ck.model, ck.tokenizer, pairs.val_pairs[:100])
    assert acc >= 0.9
    assert translate(ck.model, ck.tokenizer, ["abcdef"]) == ["fedcba"]


def test_bert_masking_rule():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(4, 30, (64, 32))
    inp, targets = mask_tokens(x, mask_id=0, vocab_size=30, generator=gen)
    chosen = targets != -1
    assert chosen.any(1).all()  # every row predicts something
    assert 0.12 < chosen.float().mean() < 0.2
    assert (targets[chosen] == x[chosen]).all()
    assert (inp[~chosen] == x[~chosen]).all()
    masked = (inp[chosen] == 0).float().mean()
    kept = (inp[chosen] == x[chosen]).float().mean()
    assert 0.72 < masked < 0.88 and 0.05 < kept < 0.2  # 80 % [MASK], ~10 % kept (+ chance)
    inp, targets = mask_tokens(x, 0, 30, gen, corrupt=False)
    assert (inp[targets != -1] == 0).all()


def test_an_encoder_learns_to_fill_masks_from_both_sides(tmp_path):
    text = "the cat sat on the mat. " * 120
    corpus = Corpus.from_text(text, "cats", tokenizer=encoder_tokenizer(text), block_size=16)
    model_cfg = ModelConfig(block_size=16, n_layer=2, n_head=2, n_embd=32)
    train_cfg = TrainConfig(steps=300, batch_size=32, lr=5e-3, min_lr=5e-4, warmup_steps=15,
                            weight_decay=0.01, eval_interval=300, eval_iters=1,
                            sample_interval=300, sample_tokens=0, seed=0, device="cpu")
    out = tmp_path / "enc.safetensors"
    assert train_encoder(corpus, model_cfg, train_cfg, out).ok
    ck = load_checkpoint(out)
    assert ck.config.kind == "encoder" and ck.tokenizer.encode(MASK_CHAR) == [ck.config.mask_id]
    acc, n = masked_accuracy(ck.model, corpus, batches=5)
    assert n > 50 and acc > 0.8  # chance is about 1 in 10
    # the first character can only be known from what follows it: no causal mask
    filled, probs = fill_masks(ck.model, ck.tokenizer, MASK_CHAR + "he cat sat on")
    assert filled.startswith("t") and probs.shape == (14, ck.config.vocab_size)


def test_mirror_scores_count_the_mirrored_source_position_of_each_target_row():
    from model.train_encoders import mirror_scores

    n = 5
    a = np.zeros((2, 3, n + 1, n + 1))  # target rows (start + n letters) × source (n + end)
    a[:, :, np.arange(n + 1), np.arange(n + 1)] = 1.0  # a diagonal: mirrored only at the middle
    a[1, 2, np.arange(n), np.arange(n)] = 0.0
    a[1, 2, np.arange(n), np.arange(n - 1, -1, -1)] = 1.0  # one head reads the mirrored letter
    s = mirror_scores(a, n)
    assert s.shape == (2, 3) and s[1, 2] == 1.0 and s[0, 0] == 0.2  # only i = 2 = n-1-i
    with pytest.raises(ValueError, match="no 7 mirrored"):
        mirror_scores(a, 7)


def test_training_reports_scores_and_cross_attention_of_the_held_out_probe(tmp_path):
    from model.train_encoders import LIVE_PAIRS, attention_probe_pair, cross_attention_of
    from model.trainer import Callbacks

    got: dict[str, list] = {"score": [], "attention": []}

    class Record(Callbacks):
        def on_score(self, step, scores):
            got["score"].append((step, scores))

        def on_attention(self, step, attention):
            got["attention"].append((step, attention))

    pairs = load_pairs("task:reverse", n_examples=500)
    src, tgt = attention_probe_pair(pairs)
    assert (src, tgt) in pairs.val_pairs and len(src) == max(len(s) for s, _ in
                                                             pairs.val_pairs[:64])
    model_cfg = ModelConfig(block_size=12, n_layer=1, n_head=2, n_embd=16)
    train_cfg = TrainConfig(steps=10, batch_size=8, eval_interval=10, eval_iters=1,
                            sample_interval=5, capture_interval=5, seed=0, device="cpu")
    out = tmp_path / "r.safetensors"
    assert train_encoder_decoder(pairs, model_cfg, train_cfg, out, callbacks=Record()).ok
    assert [s for s, _ in got["score"]] == [0, 5, 10]
    ck = load_checkpoint(out)
    live, _ = seq2seq_accuracy(ck.model, ck.tokenizer, pairs.val_pairs[:LIVE_PAIRS])
    assert got["score"][-1][1] == {"exact_match": live}  # the final weights, live subset
    assert [s for s, _ in got["attention"]] == [0, 5, 10]
    a = got["attention"][-1][1]
    assert a.shape == (1, 2, len(tgt) + 1, len(src) + 1)
    np.testing.assert_allclose(a, cross_attention_of(ck.model, ck.tokenizer, src, tgt),
                               atol=1e-6)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
