"""The anatomy describes the real network: parameter counts per box equal the nn.Module's,
sizes and flags match its submodules, and every recorded tensor it names is in a StepResult and
holds what that box computed."""
from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import transformer
from model.anatomy import (
    Add,
    Anatomy,
    Attention,
    FeedForward,
    Norm,
    Positions,
    Unembedding,
    describe,
)
from model.config import CAPTURE_ALL, NORM_KINDS, POS_KINDS, ModelConfig, SampleConfig
from model.stepper import Stepper
from model.tokenizer import CharTokenizer
from model.transformer import GPT

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = list(itertools.product(POS_KINDS, NORM_KINDS, (True, False), (True, False)))
IDS = [f"{p}-{n}-bias{b}-tie{t}" for p, n, b, t in VARIANTS]
TOK = CharTokenizer(list("\n abcdefgh"))


def config(pos_kind="learned", norm="pre", bias=True, tie=True, **kw) -> ModelConfig:
    kw = {"vocab_size": TOK.vocab_size, "block_size": 10, "n_layer": 2, "n_head": 2,
          "n_embd": 8, "n_ffn": 12, **kw}
    return ModelConfig(pos_kind=pos_kind, norm=norm, bias=bias, tie_weights=tie, **kw)


def owned_params(model: GPT, anatomy: Anatomy) -> dict[str, int]:
    """Parameters of ``model`` per box key, each tensor given to the box whose module holds it;
    a tensor shared by two modules (tied weights) is listed once, under its first name."""
    boxes = [b for b in anatomy.boxes() if b.module]
    counts = {b.key: 0 for b in anatomy.boxes()}
    for name, p in model.named_parameters():
        owners = [b for b in boxes if name.startswith(b.module + ".")]
        assert len(owners) == 1, f"{name} belongs to {[b.key for b in owners]}"
        counts[owners[0].key] += p.numel()
    return counts


@pytest.mark.parametrize(("pos_kind", "norm", "bias", "tie"), VARIANTS, ids=IDS)
def test_parameter_counts_per_box_equal_the_modules(pos_kind, norm, bias, tie):
    cfg = config(pos_kind, norm, bias, tie)
    model, anatomy = GPT(cfg), describe(cfg)
    counts = owned_params(model, anatomy)
    assert {b.key: b.n_params for b in anatomy.boxes()} == counts
    assert anatomy.n_params == model.num_params() == cfg.n_params()
    for box in anatomy.boxes():
        if box.module:  # every box with weights names a module that really has them
            assert sum(p.numel() for p in model.get_submodule(box.module).parameters()) \
                >= box.n_params


@pytest.mark.parametrize("n_layer", [1, 3])
@pytest.mark.parametrize("n_ffn", [0, 20])
def test_sizes_follow_the_config(n_layer, n_ffn):
    cfg = config(n_layer=n_layer, n_ffn=n_ffn, n_head=4, n_embd=16)
    model, anatomy = GPT(cfg), describe(cfg)
    counts = owned_params(model, anatomy)
    assert anatomy.n_params == sum(counts.values()) == model.num_params()
    (stack,) = anatomy.stacks
    assert stack.n_layer == anatomy.n_layer == n_layer
    for layer in stack.layers:
        attn = next(b for b in layer.boxes if isinstance(b, Attention))
        ffn = next(b for b in layer.boxes if isinstance(b, FeedForward))
        mod = model.get_submodule(attn.module)
        assert (attn.n_head, attn.head_size) == (mod.n_head, mod.head_size)
        assert ffn.hidden == model.get_submodule(ffn.module).c_fc.out_features
        assert all(b.layer == layer.index for b in layer.boxes)


@pytest.mark.parametrize(("pos_kind", "norm", "bias", "tie"), VARIANTS, ids=IDS)
def test_structure_matches_the_network(pos_kind, norm, bias, tie):
    cfg = config(pos_kind, norm, bias, tie)
    model, anatomy = GPT(cfg), describe(cfg)
    keys = [b.key for b in anatomy.boxes()]
    assert len(keys) == len(set(keys))
    (stack,) = anatomy.stacks
    assert stack.norm == norm
    for layer in stack.layers:
        kinds = [b.kind for b in layer.boxes]
        assert kinds == (["ln", "attn", "add", "ln", "ffn", "add"] if norm == "pre"
                         else ["attn", "add", "ln", "ffn", "add", "ln"])
        norms = [b for b in layer.boxes if isinstance(b, Norm)]
        assert len({b.name for b in norms}) == 2  # the two norms of a layer have distinct names
        for b in norms:
            ln = model.get_submodule(b.module)
            assert isinstance(ln, torch.nn.LayerNorm) and ln.eps == b.eps
            assert b.has_bias == (ln.bias is not None) and b.placement == norm
        # a residual skips what the sublayer computes: from the layer input, then (pre-norm)
        # from the first sum or (post-norm) from the first norm, whose output the FFN reads
        adds = [b for b in layer.boxes if isinstance(b, Add)]
        i = layer.index
        assert [a.skip for a in adds] == ["", f"L{i}.add_1" if norm == "pre" else f"L{i}.ln_1"]
    assert [b.kind for b in stack.closing] == (["ln"] if norm == "pre" else [])
    assert isinstance(model.ln_f, torch.nn.LayerNorm) == bool(stack.closing)
    pos = anatomy.box("embed.pos")
    assert isinstance(pos, Positions) and pos.pos_kind == model.pe.kind
    assert pos.additive == model.pe.additive
    assert pos.has_table == any(True for _ in model.pe.parameters())
    assert (anatomy.box("embed.add") is not None) == model.pe.additive
    unembed = anatomy.box("final.unembed")
    assert isinstance(unembed, Unembedding)
    assert unembed.tied == (model.lm_head.weight is model.wte.weight)


def _inputs_and_outputs(model: GPT, names: list[str]) -> dict[str, tuple]:
    """(input, output) each named submodule sees in the next forward pass, as numpy."""
    got, handles = {}, []
    for name in names:
        def hook(_mod, inp, out, name=name):
            got[name] = (inp[0][0].detach().numpy(), out[0].detach().numpy())
        handles.append(model.get_submodule(name).register_forward_hook(hook))
    return got, handles


@pytest.mark.parametrize(("pos_kind", "norm"), [("learned", "pre"), ("rotary", "post"),
                                                ("sinusoidal", "post"), ("none", "pre")])
@pytest.mark.parametrize("stacked", [True, False], ids=["stacked-norm-stats", "norm-by-norm"])
def test_recorded_tensors_are_in_the_step_result_and_show_their_box(pos_kind, norm, stacked,
                                                                    monkeypatch):
    if not stacked:  # as a long pass does: each norm's statistics computed on their own
        monkeypatch.setattr(transformer, "_STACKED_NORM_STATS", 0)
    cfg = config(pos_kind, norm, n_layer=3, block_size=32)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    with torch.no_grad():  # make the norms' inputs differ from layer to layer
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    anatomy = describe(cfg)
    st = Stepper(model, TOK, SampleConfig(seed=1), capture=CAPTURE_ALL)
    st.set_prompt("abc defgh abc defgh ")
    r = st.step()
    assert r.T == 21
    T = r.T
    for box in anatomy.boxes():
        for rec in box.recorded:
            value = getattr(r, rec.field)
            assert value is not None, f"{box.key}: {rec.field} is not in the StepResult"
            if rec.index is not None:
                assert 0 <= rec.index < len(value), f"{box.key}: {rec.field}[{rec.index}]"
    # what each box names is what it computed: compare with the modules' real inputs/outputs
    norms = [b for b in anatomy.boxes() if isinstance(b, Norm)]
    blocks = [f"h.{i}" for i in range(cfg.n_layer)]
    got, handles = _inputs_and_outputs(model, [b.module for b in norms] + blocks)
    with torch.no_grad():
        model(torch.tensor([r.ids.tolist()]))
    for h in handles:
        h.remove()
    assert len(r.norm_stats) == len(norms)
    for b in norms:
        (stats,) = [x for x in b.recorded if x.field == "norm_stats"]
        x = got[b.module][0].astype(np.float64)  # (T, C) entering the norm
        np.testing.assert_allclose(r.norm_stats[stats.index],
                                   np.stack([x.mean(-1), x.std(-1)], -1), atol=2e-5,
                                   err_msg=b.key)
    for b in anatomy.boxes():
        for rec in b.recorded:
            if rec.field == "residual" and b.layer is not None:
                np.testing.assert_allclose(r.residual[rec.index], got[f"h.{b.layer}"][1],
                                           atol=2e-5, err_msg=b.key)
            if rec.field in ("attention", "ffn", "attn_out", "mlp_out"):
                assert rec.index == b.layer and getattr(r, rec.field).shape[-2] == T
    if anatomy.box("embed.add") is not None:
        (rec,) = anatomy.box("embed.add").recorded
        tok_pos = r.tok_emb + r.pos_emb
        np.testing.assert_allclose(r.residual[rec.index], tok_pos, atol=1e-6)


def test_importing_the_anatomy_leaves_torch_unimported():
    code = ("import sys\n"
            "from model.anatomy import describe\n"
            "from model.config import ModelConfig\n"
            "a = describe(ModelConfig())\n"
            "print(a.n_params, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n, torch_loaded = proc.stdout.split()
    assert torch_loaded == "False"
    assert int(n) == GPT(ModelConfig()).num_params()


def test_n_params_of_a_huge_config_is_counted_without_describing_every_layer(monkeypatch):
    """A checkpoint's metadata may claim n_layer=10**6: counting its parameters (to refuse it)
    must not build a million layers of boxes."""
    import model.anatomy as anatomy_module

    small = ModelConfig(vocab_size=11, block_size=16, n_layer=3, n_head=2, n_embd=8)
    assert small.n_params() == describe(small).n_params
    per_layer = describe(small).stacks[0].layers[0].n_params
    built = []

    class CountedLayer(anatomy_module.Layer):
        def __post_init__(self):
            built.append(self.index)

    monkeypatch.setattr(anatomy_module, "Layer", CountedLayer)
    huge = dataclasses.replace(small, n_layer=10**6)
    assert huge.n_params() == small.n_params() + (10**6 - 3) * per_layer
    assert len(built) <= 2  # one-layer anatomies, not a million layers
