"""ModelConfig / TrainConfig / SampleConfig / CaptureSpec: validation, defaults, JSON, n_params."""
from __future__ import annotations

import dataclasses
import itertools
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.config import (
    CAPTURE_ALL,
    CAPTURE_NOTHING,
    NORM_KINDS,
    POS_KINDS,
    CaptureSpec,
    ConfigError,
    ModelConfig,
    SampleConfig,
    TrainConfig,
)
from model.transformer import GPT

NAN = float("nan")
INF = float("inf")

# (overrides, field the message must name)
MODEL_INVALID = [
    ({"n_embd": 30, "n_head": 4}, "n_embd"),  # width not divisible by heads
    ({"n_embd": 30, "n_head": 4}, "n_head"),
    ({"n_layer": 0}, "n_layer"),
    ({"n_layer": -2}, "n_layer"),
    ({"n_layer": 2.0}, "n_layer"),
    ({"n_layer": True}, "n_layer"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"vocab_size": "65"}, "vocab_size"),
    ({"block_size": 0}, "block_size"),
    ({"n_head": 0}, "n_head"),
    ({"n_embd": 0}, "n_embd"),
    ({"n_ffn": -1}, "n_ffn"),
    ({"n_ffn": 1.5}, "n_ffn"),
    ({"pos_kind": "alibi"}, "pos_kind"),
    ({"pos_kind": "Learned"}, "pos_kind"),
    ({"norm": "sandwich"}, "norm"),
    ({"norm": None}, "norm"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": 1.5}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
    ({"dropout": NAN}, "dropout"),
    ({"dropout": "0.1"}, "dropout"),
    ({"bias": 1}, "bias"),
    ({"tie_weights": "yes"}, "tie_weights"),
    ({"rope_base": 1.0}, "rope_base"),
    ({"rope_base": -5.0}, "rope_base"),
    ({"rope_base": INF}, "rope_base"),
    ({"pos_kind": "rotary", "n_embd": 12, "n_head": 4}, "rotary"),  # head size 3 is odd
    ({"pos_kind": "sinusoidal", "n_embd": 9, "n_head": 3}, "n_embd"),  # odd width
]

TRAIN_INVALID = [
    ({"steps": 0}, "steps"),
    ({"steps": -1}, "steps"),
    ({"steps": 10.0}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": -1e-3}, "lr"),
    ({"lr": 0.0}, "lr"),
    ({"lr": NAN}, "lr"),
    ({"lr": INF}, "lr"),
    ({"lr": "fast"}, "lr"),
    ({"min_lr": -1e-5}, "min_lr"),
    ({"min_lr": 1e-2, "lr": 1e-3}, "min_lr"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"warmup_steps": 1.5}, "warmup_steps"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"beta1": 1.0}, "beta1"),
    ({"beta1": -0.1}, "beta1"),
    ({"beta2": 1.0}, "beta2"),
    ({"beta2": NAN}, "beta2"),
    ({"grad_clip": -1.0}, "grad_clip"),
    ({"eval_interval": 0}, "eval_interval"),
    ({"eval_iters": 0}, "eval_iters"),
    ({"sample_interval": 0}, "sample_interval"),
    ({"capture_interval": 0}, "capture_interval"),
    ({"log_interval": 0}, "log_interval"),
    ({"sample_tokens": -1}, "sample_tokens"),
    ({"checkpoint_interval": -1}, "checkpoint_interval"),
    ({"probe_prompt": ""}, "probe_prompt"),
    ({"probe_prompt": 5}, "probe_prompt"),
    ({"seed": 1.5}, "seed"),
    ({"seed": None}, "seed"),
    ({"device": None}, "device"),
    ({"val_fraction": 0.0}, "val_fraction"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"val_fraction": NAN}, "val_fraction"),
]

SAMPLE_INVALID = [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": -1e-9}, "temperature"),
    ({"temperature": NAN}, "temperature"),
    ({"temperature": INF}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_k": -1}, "top_k"),
    ({"top_k": 2.5}, "top_k"),
    ({"top_k": True}, "top_k"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": -0.5}, "top_p"),
    ({"top_p": 1.0001}, "top_p"),
    ({"top_p": NAN}, "top_p"),
    ({"seed": 1.5}, "seed"),
    ({"seed": "42"}, "seed"),
]


def _ids(cases):
    return [f"{field}:{kw!r}" for kw, field in cases]


def _assert_names_field(cls, kw, field):
    with pytest.raises(ConfigError, match=re.escape(field)) as info:
        cls(**kw)
    assert isinstance(info.value, ValueError)  # callers may catch ValueError
    msg = str(info.value)
    assert msg and "\n" not in msg  # one sentence


@pytest.mark.parametrize(("kw", "field"), MODEL_INVALID, ids=_ids(MODEL_INVALID))
def test_model_config_rejects(kw, field):
    _assert_names_field(ModelConfig, kw, field)


@pytest.mark.parametrize(("kw", "field"), TRAIN_INVALID, ids=_ids(TRAIN_INVALID))
def test_train_config_rejects(kw, field):
    _assert_names_field(TrainConfig, kw, field)


@pytest.mark.parametrize(("kw", "field"), SAMPLE_INVALID, ids=_ids(SAMPLE_INVALID))
def test_sample_config_rejects(kw, field):
    _assert_names_field(SampleConfig, kw, field)


def test_divisibility_message_explains_head_size():
    with pytest.raises(ConfigError) as info:
        ModelConfig(n_embd=30, n_head=4)
    msg = str(info.value)
    assert "30" in msg and "4" in msg and "divisible" in msg


def test_replace_revalidates():
    cfg = ModelConfig()
    with pytest.raises(ConfigError, match="n_layer"):
        dataclasses.replace(cfg, n_layer=0)
    with pytest.raises(ConfigError, match="top_p"):
        dataclasses.replace(SampleConfig(), top_p=0.0)


@pytest.mark.parametrize("kw", [
    {"dropout": 0.0}, {"dropout": 0.999}, {"n_ffn": 1}, {"rope_base": 1.0001},
    {"pos_kind": "rotary", "n_embd": 8, "n_head": 4}, {"pos_kind": "none", "n_embd": 9, "n_head": 3},
    {"pos_kind": "learned", "n_embd": 9, "n_head": 3}, {"bias": False, "tie_weights": False},
    {"n_layer": 1, "n_head": 1, "n_embd": 1, "vocab_size": 1, "block_size": 1},
])
def test_model_config_accepts_boundaries(kw):
    ModelConfig(**kw)


@pytest.mark.parametrize("kw", [
    {"min_lr": 0.0}, {"min_lr": 1e-3, "lr": 1e-3}, {"grad_clip": 0.0}, {"warmup_steps": 0},
    {"sample_tokens": 0}, {"checkpoint_interval": 0}, {"beta1": 0.0}, {"weight_decay": 0.0},
    {"seed": -3}, {"lr": 1}, {"val_fraction": 0.5},
])
def test_train_config_accepts_boundaries(kw):
    TrainConfig(**kw)


@pytest.mark.parametrize("kw", [
    {"temperature": 0.0}, {"temperature": 0}, {"temperature": 100.0}, {"top_k": 0},
    {"top_k": 1}, {"top_p": 1.0}, {"top_p": 1e-6}, {"seed": None}, {"seed": 0}, {"seed": -1},
])
def test_sample_config_accepts_boundaries(kw):
    SampleConfig(**kw)


def test_n_ffn_zero_means_four_times_width():
    assert ModelConfig(n_embd=32, n_head=4, n_ffn=0).n_ffn == 128
    assert ModelConfig(n_embd=48, n_head=4).n_ffn == 192  # default is 0
    assert ModelConfig(n_embd=32, n_head=4, n_ffn=7).n_ffn == 7


def test_head_size():
    assert ModelConfig(n_embd=48, n_head=6).head_size == 8


def test_configs_are_frozen():
    for cfg in (ModelConfig(), TrainConfig(), SampleConfig(), CaptureSpec()):
        field = dataclasses.fields(cfg)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, field, getattr(cfg, field))


@pytest.mark.parametrize("cfg", [
    ModelConfig(),
    ModelConfig(vocab_size=3, block_size=7, n_layer=1, n_head=2, n_embd=6, n_ffn=5,
                pos_kind="none", norm="post", dropout=0.25, bias=False, tie_weights=False,
                rope_base=500.0),
    ModelConfig(pos_kind="rotary", rope_base=12345.5),
    TrainConfig(),
    TrainConfig(steps=3, lr=0.5, min_lr=0.0, probe_prompt="To be\n\u00e9", device="cpu",
                compile=True, seed=-7),
    SampleConfig(),
    SampleConfig(temperature=0.0, top_k=3, top_p=0.5, seed=99),
    CaptureSpec(),
    CaptureSpec.nothing(),
    CaptureSpec(attention=True, scores=False, ffn=False),
], ids=lambda c: type(c).__name__)
def test_json_roundtrip(cfg):
    s = cfg.to_json()
    assert json.loads(s) == cfg.to_dict()
    back = type(cfg).from_json(s)
    assert back == cfg
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert back.to_json() == s  # stable (sorted keys)


@settings(max_examples=40, deadline=None)
@given(
    n_head=st.integers(1, 4), head_size=st.integers(1, 6).map(lambda h: 2 * h),
    n_layer=st.integers(1, 6), vocab=st.integers(1, 300), block=st.integers(1, 512),
    n_ffn=st.integers(0, 100), pos_kind=st.sampled_from(POS_KINDS),
    norm=st.sampled_from(NORM_KINDS), dropout=st.floats(0, 0.99), bias=st.booleans(),
    tie=st.booleans(), rope_base=st.floats(1.5, 1e6),
)
def test_json_roundtrip_property(n_head, head_size, n_layer, vocab, block, n_ffn, pos_kind,
                                 norm, dropout, bias, tie, rope_base):
    cfg = ModelConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head,
                      n_embd=n_head * head_size, n_ffn=n_ffn, pos_kind=pos_kind, norm=norm,
                      dropout=dropout, bias=bias, tie_weights=tie, rope_base=rope_base)
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_from_dict_unknown_field_is_named():
    d = ModelConfig().to_dict() | {"n_layers": 3, "zzz": 1}
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict(d)
    msg = str(info.value)
    assert "ModelConfig" in msg and "n_layers" in msg and "zzz" in msg
    with pytest.raises(ConfigError, match="temp"):
        SampleConfig.from_dict({"temp": 1.0})
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1.0})


def test_from_dict_missing_fields_use_defaults():
    assert ModelConfig.from_dict({}) == ModelConfig()
    assert ModelConfig.from_dict({"n_layer": 2}) == ModelConfig(n_layer=2)


def test_from_dict_and_json_errors():
    with pytest.raises(ConfigError, match="JSON object"):
        ModelConfig.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="JSON object"):
        SampleConfig.from_json("[1, 2]")
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{steps: 3")
    with pytest.raises(ConfigError, match="n_head"):
        ModelConfig.from_json(json.dumps({"n_embd": 10, "n_head": 3}))


def test_capture_spec_any_and_nothing():
    assert CAPTURE_ALL.any
    assert not CAPTURE_NOTHING.any
    assert CaptureSpec.nothing() == CAPTURE_NOTHING
    assert all(not v for v in dataclasses.astuple(CAPTURE_NOTHING))
    for f in dataclasses.fields(CaptureSpec):
        assert dataclasses.replace(CAPTURE_NOTHING, **{f.name: True}).any


# -- parameter count ----------------------------------------------------------------------------
VARIANTS = list(itertools.product(POS_KINDS, NORM_KINDS, (True, False), (True, False)))


@pytest.mark.parametrize(("pos_kind", "norm", "bias", "tie"), VARIANTS,
                         ids=[f"{p}-{n}-bias{b}-tie{t}" for p, n, b, t in VARIANTS])
def test_n_params_matches_model(pos_kind, norm, bias, tie):
    cfg = ModelConfig(vocab_size=11, block_size=9, n_layer=2, n_head=2, n_embd=8, n_ffn=0,
                      pos_kind=pos_kind, norm=norm, bias=bias, tie_weights=tie)
    assert cfg.n_params() == GPT(cfg).num_params()


@settings(max_examples=30, deadline=None)
@given(
    n_head=st.integers(1, 3), head_size=st.integers(1, 4).map(lambda h: 2 * h),
    n_layer=st.integers(1, 3), vocab=st.integers(1, 40), block=st.integers(1, 40),
    n_ffn=st.integers(0, 24), pos_kind=st.sampled_from(POS_KINDS),
    norm=st.sampled_from(NORM_KINDS), bias=st.booleans(), tie=st.booleans(),
)
def test_n_params_matches_model_property(n_head, head_size, n_layer, vocab, block, n_ffn,
                                         pos_kind, norm, bias, tie):
    cfg = ModelConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head,
                      n_embd=n_head * head_size, n_ffn=n_ffn, pos_kind=pos_kind, norm=norm,
                      bias=bias, tie_weights=tie)
    assert cfg.n_params() == GPT(cfg).num_params()


def test_tied_embedding_counted_once():
    tied = ModelConfig(vocab_size=50, n_embd=16, n_head=2, n_layer=1, tie_weights=True)
    untied = dataclasses.replace(tied, tie_weights=False)
    assert untied.n_params() - tied.n_params() == 50 * 16
