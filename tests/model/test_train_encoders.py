"""Training the encoder kinds: a short reverse run learns the mirror alignment in its
cross-attention, BERT's masking rule, and an encoder that learns to fill masks from both sides."""
from __future__ import annotations

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
