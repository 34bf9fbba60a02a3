"""The Q, K, V recording (CaptureSpec.qkv): what it records reproduces the recorded scores, the
softmax weights times V, and the attention output through W_O; and recording it leaves the
model's numbers as they are."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from model.capture import capture
from model.config import CAPTURE_ALL, CAPTURE_NOTHING, ModelConfig, SampleConfig
from model.stepper import Stepper
from model.tokenizer import CharTokenizer
from model.transformer import GPT

VOCAB = "abcdefghij"
QKV_ONLY = dataclasses.replace(CAPTURE_NOTHING, qkv=True)


def make_model(pos_kind="learned", norm="pre", block_size=10) -> GPT:
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=len(VOCAB), block_size=block_size, n_layer=2, n_head=3,
                            n_embd=12, pos_kind=pos_kind, norm=norm))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(15)
    return model.eval()


@pytest.mark.parametrize("pos_kind", ["learned", "rotary"])
def test_recording_qkv_changes_nothing(pos_kind):
    model = make_model(pos_kind)
    idx = torch.tensor([[1, 4, 2, 7, 3, 3]])
    with torch.no_grad():
        plain = model(idx, all_logits=True)[0]
        with capture(model, QKV_ONLY) as rec:
            got = model(idx, all_logits=True)[0]
    assert torch.equal(got, plain)  # qkv alone keeps the SDPA path
    assert len(rec.q) == len(rec.k) == len(rec.v) == len(rec.heads) == 2
    assert rec.q[0].shape == (1, 3, 6, 4) and rec.heads[0].shape == (1, 6, 12)


@pytest.mark.parametrize(("pos_kind", "norm"), [("learned", "pre"), ("rotary", "pre"),
                                                ("sinusoidal", "post")])
def test_stepped_qkv_reproduce_scores_weights_and_output(pos_kind, norm):
    model = make_model(pos_kind, norm)
    st = Stepper(model, CharTokenizer(list(VOCAB)), SampleConfig(seed=0), capture=CAPTURE_ALL)
    st.set_prompt("abcda")
    for _ in range(3):
        r = st.step()  # cached steps: one new row of q, k, v each
    hs = model.config.head_size
    T = r.T
    scores = np.einsum("lhqd,lhkd->lhqk", r.q, r.k) / math.sqrt(hs)
    np.testing.assert_allclose(scores, r.scores, atol=1e-4, rtol=1e-4)
    mixed = np.einsum("lhqk,lhkd->lhqd", r.attention, r.v)  # (L, H, T, hs)
    heads = mixed.transpose(0, 2, 1, 3).reshape(2, T, 3 * hs)
    np.testing.assert_allclose(heads, r.heads, atol=1e-4, rtol=1e-4)
    for layer in range(2):
        proj = model.h[layer].attn.c_proj
        out = r.heads[layer] @ proj.weight.detach().numpy().T + proj.bias.detach().numpy()
        np.testing.assert_allclose(out, r.attn_out[layer], atol=1e-4, rtol=1e-4)
    # slide the window: the whole window again, positions from 0
    for _ in range(4):
        r = st.step()
    assert r.cropped > 0
    scores = np.einsum("lhqd,lhkd->lhqk", r.q, r.k) / math.sqrt(hs)
    np.testing.assert_allclose(scores, r.scores, atol=1e-4, rtol=1e-4)


def test_results_share_one_read_only_copy_of_w_o_until_the_weights_change():
    model = make_model()
    st = Stepper(model, CharTokenizer(list(VOCAB)), SampleConfig(seed=0), capture=CAPTURE_ALL)
    a = st.set_prompt("abc")
    b = st.step()
    for layer in range(2):
        np.testing.assert_array_equal(a.w_o[layer], model.h[layer].attn.c_proj.weight.detach())
    assert b.w_o is a.w_o and not a.w_o.flags.writeable
    with torch.no_grad():
        model.h[1].attn.c_proj.weight.mul_(2)
    c = st.refresh()
    np.testing.assert_array_equal(c.w_o[1], model.h[1].attn.c_proj.weight.detach())
    assert c.w_o is not a.w_o
    assert Stepper(model, CharTokenizer(list(VOCAB)), capture=QKV_ONLY.__class__()
                   ).set_prompt("ab").w_o is None  # only with CaptureSpec.qkv
