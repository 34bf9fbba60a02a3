"""CaptureBuffers: block-size arrays that results view without copying, copy-on-write for rows
a result can see, and ``store`` copying one recorded pass into them exactly."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.capture import capture
from model.capture_buffers import CaptureBuffers, new_buffers, store
from model.config import CAPTURE_ALL, CaptureSpec, ModelConfig
from model.step_result import QKScores
from model.transformer import GPT


def small(pos_kind="learned") -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16,
                      pos_kind=pos_kind)
    return GPT(cfg).eval()


def test_new_buffers_hold_what_the_spec_asks_for():
    cfg = small().config
    spec = CaptureSpec(attention=True, scores=False, residual=False, ffn=False, logit_lens=True,
                       embeddings=True, sublayers=False, norms=False)
    only = new_buffers(cfg, spec, lens_k=3, additive_positions=False)
    assert set(only.arrays) == {"attention", "tok_emb", "lens_ids", "lens_probs"}
    assert only.arrays["attention"].shape == (2, 2, 8, 8)
    assert only.arrays["lens_ids"].shape == (3, 8, 3) and only.arrays["lens_ids"].dtype == np.int64
    full = new_buffers(cfg, CAPTURE_ALL, lens_k=3, additive_positions=True)
    assert {"q", "k", "v", "heads", "residual", "attn_out", "mlp_out", "ffn", "pos_emb",
            "norm_stats"} <= set(full.arrays)
    # the scores are not kept: the views compute them from the queries and keys
    assert "scores" not in full.arrays and isinstance(full.views(3)["scores"], QKScores)
    assert {"q", "k"} <= set(full.views(3))
    scores_only = new_buffers(cfg, dataclasses.replace(CaptureSpec.nothing(), scores=True),
                              lens_k=3, additive_positions=False)
    assert set(scores_only.arrays) == {"q", "k"}  # no values, no heads' outputs
    assert scores_only.arrays["q"].shape == (2, 2, 8, cfg.head_size)
    views = scores_only.views(5)
    assert set(views) == {"scores"} and views["scores"].shape == (2, 2, 5, 5)
    assert full.arrays["ffn"].shape == (2, 8, cfg.n_ffn)
    n_norms = 2 * cfg.n_layer + (1 if cfg.norm == "pre" else 0)  # ln_1, ln_2 each, final norm
    assert full.arrays["norm_stats"].shape == (n_norms, 8, 2)


def test_views_are_read_only_prefixes_and_rewrites_copy_first():
    bufs = CaptureBuffers({"a": ((2, 4, 4), (1, 2), np.float32), "r": ((4, 3), (0,), np.float32)})
    bufs.write("a", 0, np.ones((2, 3, 3), np.float32))
    bufs.write("r", 0, np.full((3, 3), 5, np.float32))
    v = bufs.views(3)
    assert v["a"].shape == (2, 3, 3) and v["r"].shape == (3, 3)
    with pytest.raises(ValueError):
        v["r"][0, 0] = 1
    before = {k: x.copy() for k, x in v.items()}
    bufs.make_writable(2)  # row 2 is seen by v: the buffers are copied before it is rewritten
    bufs.write("r", 2, np.full((1, 3), 9, np.float32))
    bufs.write("a", 2, np.full((2, 1, 3), 7, np.float32))
    for k in v:
        np.testing.assert_array_equal(v[k], before[k])  # the old result did not change
    w = bufs.views(3)
    assert w["r"][2].tolist() == [9, 9, 9] and w["r"][1].tolist() == [5, 5, 5]
    assert w["a"][0, 2].tolist() == [7, 7, 7] and w["a"][0, 1, :2].tolist() == [1, 1]


def test_writing_unseen_rows_does_not_copy():
    bufs = CaptureBuffers({"r": ((4, 2), (0,), np.float32)})
    bufs.views(2)
    arrays = bufs.arrays
    bufs.make_writable(2)  # rows from 2 on were never shown
    assert bufs.arrays is arrays


@pytest.mark.parametrize("pos_kind", ["learned", "rotary"])
def test_store_copies_a_recorded_pass_exactly(pos_kind):
    model = small(pos_kind)
    idx = torch.tensor([[1, 4, 2, 9, 3]])
    with torch.inference_mode(), capture(model, CAPTURE_ALL) as rec:
        model(idx)
    bufs = new_buffers(model.config, CAPTURE_ALL, lens_k=2, additive_positions=model.pe.additive)
    ref = {"attention": torch.stack(rec.attn_probs)[:, 0].numpy(),
           "residual": torch.stack(rec.resid)[:, 0].numpy(),
           "ffn": torch.stack(rec.ffn_hidden)[:, 0].numpy(),
           "tok_emb": rec.tok_emb[0].numpy()}
    scores = torch.stack(rec.attn_scores)[:, 0].numpy()
    lens = torch.softmax(rec.logit_lens[:, 0], dim=-1).topk(2)
    store(bufs, rec, CAPTURE_ALL, past=0, lens_k=2)
    v = bufs.views(5)
    for name, want in ref.items():
        np.testing.assert_array_equal(v[name], want)
    # the scores from the stored queries and keys: those the pass computed
    np.testing.assert_allclose(np.asarray(v["scores"]), scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(v["lens_probs"], lens.values.numpy())
    assert rec.attn_probs == [None, None]  # dropped from the recording once copied
    assert ("pos_emb" in v) == (pos_kind == "learned")


def test_buffers_start_small_and_grow_without_changing_what_results_show():
    bufs = CaptureBuffers({"a": ((2, 256, 256), (1, 2), np.float32),
                           "r": ((256, 3), (0,), np.float32)}, rows=10)
    assert bufs.capacity == 64 and bufs.arrays["a"].shape == (2, 64, 64)  # not 256 x 256
    assert CaptureBuffers({"r": ((256, 3), (0,), np.float32)}, rows=100).capacity == 150
    bufs.write("a", 0, np.ones((2, 10, 10), np.float32))
    bufs.write("r", 0, np.full((10, 3), 2, np.float32))
    old = bufs.views(10)
    bufs.reserve(70)  # doubles: the rows so far are kept, old views keep their arrays
    assert bufs.capacity == 128 and bufs.arrays["a"].shape == (2, 128, 128)
    bufs.write("a", 10, np.full((2, 60, 70), 3, np.float32))
    new = bufs.views(70)
    np.testing.assert_array_equal(old["a"], np.ones((2, 10, 10)))
    np.testing.assert_array_equal(new["a"][:, :10, :10], old["a"])
    assert (new["a"][:, :10, 10:] == 0).all()  # above the diagonal: still zero
    np.testing.assert_array_equal(new["r"][:10], old["r"])
    bufs.reserve(1000)  # never past the block size
    assert bufs.capacity == 256
    assert bufs.full_nbytes() == 2 * 256 * 256 * 4 + 256 * 3 * 4


def test_a_set_past_the_threshold_keeps_what_is_only_looked_at_in_float16(monkeypatch):
    import model.capture_buffers as capture_buffers

    cfg = small().config
    full = dataclasses.replace(CAPTURE_ALL, qkv=True)
    f32 = new_buffers(cfg, full, lens_k=3, additive_positions=True)
    assert not f32.half and all(a.dtype != np.float16 for a in f32.arrays.values())
    nbytes = sum(a.nbytes for a in f32.arrays.values())  # at block-size capacity (rows=None)
    monkeypatch.setattr(capture_buffers, "HALF_ABOVE_BYTES", nbytes - 1)
    half = new_buffers(cfg, full, lens_k=3, additive_positions=True)
    assert half.half
    for name, a in half.arrays.items():
        want = np.float16 if name in capture_buffers.HALF_NAMES else f32.arrays[name].dtype
        assert a.dtype == want, name
    assert {"attention", "ffn", "q", "k"} <= {n for n, a in half.arrays.items()
                                             if a.dtype == np.float16}
    assert half.arrays["residual"].dtype == half.arrays["lens_probs"].dtype == np.float32
    monkeypatch.setattr(capture_buffers, "HALF_ABOVE_BYTES", nbytes)  # not past it: float32
    assert not new_buffers(cfg, full, lens_k=3, additive_positions=True).half
