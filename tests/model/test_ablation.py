"""Head ablation (zero and mean), the batched per-head ranking, the stepper keeping an ablation
through stepping, and the CLI's --ablate / --ablation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.ablation import NO_ABLATION, Ablation
from model.config import CAPTURE_ALL, ConfigError, ModelConfig, SampleConfig
from model.head_effects import head_effects
from model.stepper import Stepper
from model.tokenizer import CharTokenizer
from model.transformer import GPT

VOCAB = "abcdefghijklm"
VARIANTS = [("learned", "pre"), ("rotary", "pre"), ("sinusoidal", "post")]


def make_model(pos_kind="learned", norm="pre", seed=0, block_size=16) -> GPT:
    torch.manual_seed(seed)
    model = GPT(ModelConfig(vocab_size=len(VOCAB), block_size=block_size, n_layer=3, n_head=4,
                            n_embd=16, n_ffn=24, pos_kind=pos_kind, norm=norm))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # larger weights than the GPT-2 init: heads that matter
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    return model.eval()


def ids(t=12, seed=0) -> torch.Tensor:
    return torch.randint(0, len(VOCAB), (1, t), generator=torch.Generator().manual_seed(seed))


def logits_of(model, idx) -> torch.Tensor:
    with torch.no_grad():
        return model(idx, all_logits=True)[0]


def by_hand(model: GPT, heads, mode: str):
    """Hooks on each layer's W_O (c_proj) that replace an off head's slice of its input by zero
    or by that slice's mean over the positions: the ablation written out, outside the model."""
    hs = model.config.head_size
    hooks = []
    for layer in {li for li, _ in heads}:
        cols = [slice(h * hs, (h + 1) * hs) for li, h in heads if li == layer]

        def pre(_module, args, cols=cols):
            y = args[0].clone()
            for c in cols:
                y[..., c] = 0.0 if mode == "zero" else y[..., c].mean(dim=1, keepdim=True)
            return (y,)

        hooks.append(model.h[layer].attn.c_proj.register_forward_pre_hook(pre))
    return hooks


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS)
def test_ablation_equals_the_head_output_replaced_by_hand(pos_kind, norm, mode):
    model = make_model(pos_kind, norm)
    idx = ids()
    heads = {(0, 1), (1, 3), (2, 0)}
    hooks = by_hand(model, heads, mode)
    try:
        expected = logits_of(model, idx)
    finally:
        for h in hooks:
            h.remove()
    intact = logits_of(model, idx)
    model.set_ablation(Ablation(frozenset(heads), mode))
    got = logits_of(model, idx)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, intact, atol=1e-3)  # the heads did something
    assert model.ablation == Ablation(frozenset(heads), mode)


def test_zero_ablation_equals_zeroed_output_projection_columns():
    """A second hand-made check: W_O's columns that read head h, set to zero."""
    model = make_model()
    idx = ids()
    hs = model.config.head_size
    reference = make_model()
    with torch.no_grad():
        reference.h[1].attn.c_proj.weight[:, 2 * hs:3 * hs] = 0.0
    model.set_ablation(Ablation.parse("1.2"))
    torch.testing.assert_close(logits_of(model, idx), logits_of(reference, idx),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS)
def test_ablating_nothing_is_the_plain_model_bit_for_bit(pos_kind, norm):
    model = make_model(pos_kind, norm)
    idx = ids()
    plain = logits_of(model, idx)
    model.set_ablation(Ablation.parse("0.1"))
    model.set_ablation(NO_ABLATION)
    assert model.head_mask is None
    assert torch.equal(logits_of(model, idx), plain)
    tok = CharTokenizer(list(VOCAB))
    a = Stepper(make_model(pos_kind, norm), tok, SampleConfig(seed=3), capture=CAPTURE_ALL)
    b = Stepper(make_model(pos_kind, norm), tok, SampleConfig(seed=3), capture=CAPTURE_ALL)
    a.set_prompt("abcabc")
    b.set_prompt("abcabc")
    b.set_ablation(Ablation.parse("2.3", "mean"))
    b.set_ablation(NO_ABLATION)
    for _ in range(4):
        ra, rb = a.step(), b.step()
    for name in ("logits", "attention", "scores", "residual", "q", "k", "v", "heads"):
        assert np.array_equal(getattr(ra, name), getattr(rb, name)), name
    assert rb.intact_logits is None and not rb.ablation


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize(("pos_kind", "norm"), VARIANTS)
def test_head_ranking_equals_separate_single_head_ablations(pos_kind, norm, mode):
    model = make_model(pos_kind, norm)
    idx = ids(t=14)
    token = 5
    eff = head_effects(model, idx[0].tolist(), token, mode)
    assert model.head_mask is None  # the model's own mask is left alone
    base = torch.log_softmax(logits_of(model, idx)[0, -1], -1)[token]
    assert eff.base_logprob == pytest.approx(float(base), abs=1e-5)
    L, H = model.config.n_layer, model.config.n_head
    expected = np.zeros((L, H))
    for li in range(L):
        for hi in range(H):
            model.set_ablation(Ablation(frozenset({(li, hi)}), mode))
            lp = torch.log_softmax(logits_of(model, idx)[0, -1], -1)[token]
            expected[li, hi] = float(lp - base)
    model.set_ablation(NO_ABLATION)
    np.testing.assert_allclose(eff.delta, expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() > 1e-3
    ranked = eff.ranking()
    assert [d for *_, d in ranked] == sorted(d for *_, d in ranked)
    assert {(li, hi) for li, hi, _ in ranked} == {(li, hi) for li in range(L) for hi in range(H)}


def test_head_ranking_in_chunks_of_heads_is_the_same(monkeypatch):
    import model.head_effects as he

    model = make_model("rotary", "post")
    idx = ids(t=14)[0].tolist()
    whole = head_effects(model, idx, 4, "mean")
    monkeypatch.setattr(he, "RANKING_BATCH_BYTES", 1)  # one head of every layer at a time
    np.testing.assert_allclose(head_effects(model, idx, 4, "mean").delta, whole.delta,
                               atol=1e-6, rtol=0)


def test_head_ranking_keeps_an_ablation_the_model_runs_with():
    model = make_model()
    model.set_ablation(Ablation.parse("0.0,1.1", "mean"))
    mask = model.head_mask
    head_effects(model, ids()[0].tolist(), 2)
    assert model.head_mask is mask and model.head_ablation == "mean"


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_stepper_keeps_the_ablation_through_stepping(mode):
    tok = CharTokenizer(list(VOCAB))
    model = make_model("rotary", "pre")
    st = Stepper(model, tok, SampleConfig(seed=1), capture=CAPTURE_ALL)
    plain = st.set_prompt("abcdab")
    ablation = Ablation.parse("0.2,2.1", mode)
    r = st.set_ablation(ablation)
    assert np.array_equal(r.intact_logits, plain.logits)  # kept from before: no extra pass
    assert r.ablation == ablation and st.ablation == ablation
    for _ in range(5):
        r = st.step()
    st.back()
    r = st.step(force=3)
    st.lookahead()
    r = st.step()
    assert r.ablation == ablation
    full = torch.tensor([st.ids[-model.config.block_size:]])
    torch.testing.assert_close(torch.from_numpy(np.array(r.logits)),
                               logits_of(model, full)[0, -1], atol=1e-5, rtol=1e-5)
    # the ghost bars: the same window with every head on
    model.set_ablation(NO_ABLATION)
    torch.testing.assert_close(torch.from_numpy(np.array(r.intact_logits)),
                               logits_of(model, full)[0, -1], atol=1e-5, rtol=1e-5)
    model.set_ablation(ablation)
    assert r.intact_dist() is not None and r.intact_dist().probs.sum() == pytest.approx(1.0)


def test_undo_past_the_ablation_shows_the_ablated_model():
    tok = CharTokenizer(list(VOCAB))
    model = make_model()
    st = Stepper(model, tok, SampleConfig(seed=1), capture=CAPTURE_ALL)
    st.set_prompt("abcdab")
    for _ in range(3):
        st.step()
    st.set_ablation(Ablation.parse("1.0,1.1,1.2"))
    r = st.rewind_to(1)
    full = torch.tensor([st.ids])
    torch.testing.assert_close(torch.from_numpy(np.array(r.logits)),
                               logits_of(model, full)[0, -1], atol=1e-5, rtol=1e-5)


def test_mean_ablation_refuses_cached_steps():
    model = make_model()
    model.set_ablation(Ablation.parse("0.0", "mean"))
    cache = model.new_cache()
    with torch.no_grad():
        model(ids(t=4), cache=cache)
        with pytest.raises(ValueError, match="mean ablation"):
            model(ids(t=1), cache=cache)


def test_ablation_parse_and_check():
    a = Ablation.parse(" 0.1, 1.3 ,", "mean")
    assert a.heads == {(0, 1), (1, 3)} and a.mode == "mean"
    assert a.toggled(0, 1).heads == {(1, 3)} and a.toggled(2, 0).heads == {(0, 1), (1, 3), (2, 0)}
    assert a.label() == "L0H1, L1H3 (mean)" and NO_ABLATION.label() == "none"
    assert not Ablation.parse("")
    for bad in ("1", "a.b", "1.2.3", "-1.0"):
        with pytest.raises(ConfigError, match="LAYER.HEAD"):
            Ablation.parse(bad)
    with pytest.raises(ConfigError, match="'half'"):
        Ablation(mode="half")
    with pytest.raises(ConfigError, match=r"head 3\.0 does not exist"):
        Ablation.parse("3.0").check(make_model().config)
    with pytest.raises(ConfigError, match=r"does not exist"):
        Stepper(make_model(), CharTokenizer(list(VOCAB))).set_ablation(Ablation.parse("0.4"))


# -- command line -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from model.checkpoints import save_checkpoint

    path = tmp_path_factory.mktemp("abl") / "m.safetensors"
    save_checkpoint(path, make_model(), CharTokenizer(list(VOCAB)))
    return path


def test_inspect_ablate_json(checkpoint, capsys):
    from model.__main__ import main

    args = ["inspect", "--checkpoint", str(checkpoint), "--prompt", "abcabca", "--json",
            "--temperature", "1"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*args, "--ablate", "0.1,2.3", "--ablation", "mean", "--rank-heads"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ablation"] == {"heads": [[0, 1], [2, 3]], "mode": "mean"}
    intact = {c["id"]: c["prob"] for c in plain["next_token"]}
    for c in data["next_token_intact"]:
        if c["id"] in intact:
            assert c["prob"] == pytest.approx(intact[c["id"]], abs=1e-6)
    assert data["next_token"] != plain["next_token"]
    assert len(data["head_effects"]["ranking"]) == 12


@pytest.mark.parametrize(("ablate", "expected"), [("0.9", "head 0.9 does not exist"),
                                                  ("x", "LAYER.HEAD")])
def test_bad_ablate_is_one_line(checkpoint, capsys, ablate, expected):
    from model.__main__ import main

    for cmd in (["generate", "--tokens", "3"], ["inspect"]):
        rc = main([*cmd, "--checkpoint", str(checkpoint), "--prompt", "abc", "--ablate", ablate])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and expected in err[0]


def test_generate_with_ablation_differs_and_is_repeatable(checkpoint, capsys):
    from model.__main__ import main

    base = ["generate", "--checkpoint", str(checkpoint), "--prompt", "abc", "--tokens", "30",
            "--seed", "4", "--temperature", "0"]
    outs = []
    for extra in ([], ["--ablate", "0.0,0.1,0.2,0.3"], ["--ablate", "0.0,0.1,0.2,0.3"],
                  ["--ablate", "0.0,0.1,0.2,0.3", "--ablation", "mean"]):
        assert main([*base, *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[1] == outs[2] and outs[0] != outs[1] and outs[1] != outs[3]
