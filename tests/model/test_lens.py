"""The logit lens at a large vocabulary: top-k in chunks for the last positions only, never the
whole (L+1, T, V) tensor, and the same top-k as the brute-force lens where it is computed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import model.lens as lens_mod
from model.capture import capture
from model.config import CAPTURE_ALL, ModelConfig, SampleConfig
from model.lens import lens_positions, lens_topk
from model.stepper import Stepper
from model.tokenizer import CharTokenizer
from model.transformer import GPT


def brute_force(model: GPT, resid: list[torch.Tensor]) -> torch.Tensor:
    """(L+1, t, V) lens probabilities, the whole tensor."""
    with torch.no_grad():
        return torch.softmax(model.lm_head(model.ln_f(torch.stack(resid)))[:, 0], dim=-1)


def big_vocab_model(vocab: int) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=vocab, block_size=64, n_layer=2, n_head=2, n_embd=16)
    return GPT(cfg).eval()


def test_lens_positions_keep_small_models_whole_and_bound_big_ones():
    assert lens_positions(7, 256, 65) == 256  # a character model: every position
    assert lens_positions(13, 128, 50257) == 10  # GPT-2 at 128 tokens: ⌈128 / 13⌉
    assert lens_positions(13, 1024, 50257) == 79
    assert lens_positions(13, 1, 50257) == 1  # a cached step: its own position


def test_big_vocabulary_lens_is_chunked_and_matches_the_brute_force_lens():
    vocab = 90_000  # (L+1)·T·V = 3 · 64 · 90000 > LENS_FULL_MAX
    model = big_vocab_model(vocab)
    idx = torch.randint(0, vocab, (1, 64), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), capture(model, CAPTURE_ALL) as rec:
        model(idx)
    want = brute_force(model, rec.resid)  # (3, 64, V) for the reference only
    sizes: list[int] = []

    def unembed(x: torch.Tensor) -> torch.Tensor:
        out = model.lm_head(model.ln_f(x))
        sizes.append(out.numel())
        return out

    with torch.inference_mode():
        values, indices, first, last = lens_topk(unembed, rec.resid, vocab, k=3)
        logits, _ = model(idx)
    # the last row is the model's own next-token output (what the stepper takes from here)
    torch.testing.assert_close(last, logits[0, -1], atol=1e-5, rtol=1e-5)
    n = lens_positions(3, 64, vocab)
    assert first == 64 - n and values.shape == (3, n, 3) and indices.shape == (3, n, 3)
    # never more than one chunk of logits at a time, and far less than the whole lens
    assert max(sizes) <= max(lens_mod.LENS_CHUNK_ELEMS, vocab)
    assert sum(sizes) == 3 * n * vocab < want.numel()
    top = want[:, first:].topk(3, dim=-1)
    torch.testing.assert_close(values, top.values, atol=1e-6, rtol=1e-5)
    picked = torch.gather(want[:, first:], -1, indices)
    torch.testing.assert_close(picked, values, atol=1e-6, rtol=1e-5)


@pytest.fixture
def forced_chunks(monkeypatch):
    """The chunked path for a character model: any lens counts as big, 4 rows a chunk."""
    monkeypatch.setattr(lens_mod, "LENS_FULL_MAX", 0)
    monkeypatch.setattr(lens_mod, "LENS_CHUNK_ELEMS", 4 * 40)


def test_stepper_with_chunked_lens_matches_brute_force_where_computed(forced_chunks):
    torch.manual_seed(0)
    chars = [chr(ord("a") + i) for i in range(26)] + [chr(ord("A") + i) for i in range(14)]
    tok = CharTokenizer(chars)
    model = GPT(ModelConfig(vocab_size=40, block_size=32, n_layer=3, n_head=2,
                            n_embd=16)).eval()
    s = Stepper(model, tok, SampleConfig(seed=3), lens_k=4)
    r = s.set_prompt("abcdefghijklmnopqrst")  # 20 tokens, 4 residuals a position
    n = lens_positions(4, 20, 40)
    assert n == 5
    with torch.inference_mode(), capture(model, CAPTURE_ALL) as rec:
        model(torch.tensor([r.ids.tolist()]))
    want = brute_force(model, rec.resid).numpy()  # (4, 20, 40)
    assert (r.lens_ids[:, :20 - n] == -1).all() and np.isnan(r.lens_probs[:, :20 - n]).all()
    top = np.sort(want[:, 20 - n:], axis=-1)[..., ::-1][..., :4]
    np.testing.assert_allclose(r.lens_probs[:, 20 - n:], top, atol=1e-6)
    picked = np.take_along_axis(want[:, 20 - n:], r.lens_ids[:, 20 - n:], axis=-1)
    np.testing.assert_allclose(picked, r.lens_probs[:, 20 - n:], atol=1e-6)
    # a cached step gets the lens of its own new position, and the earlier rows stay
    r2 = s.step()
    with torch.inference_mode(), capture(model, CAPTURE_ALL) as rec:
        model(torch.tensor([r2.ids.tolist()]))
    want2 = brute_force(model, rec.resid).numpy()
    np.testing.assert_allclose(r2.lens_probs[:, 20],
                               np.sort(want2[:, 20], axis=-1)[:, ::-1][:, :4], atol=1e-6)
    np.testing.assert_array_equal(r2.lens_ids[:, :20], r.lens_ids)
