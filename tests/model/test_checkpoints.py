"""Checkpoints: self-describing safetensors, atomic writes, clear errors, optimizer state."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import model.checkpoints as ckpt
from model.checkpoints import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    load_optimizer_state,
    optimizer_path,
    read_metadata,
    save_checkpoint,
)
from model.config import POS_KINDS, ModelConfig, TrainConfig
from model.optim import apply_optimizer_state, make_optimizer
from model.tokenizer import CharTokenizer
from model.transformer import GPT

TOK = CharTokenizer("\n abcdefghij")
CFG = ModelConfig(vocab_size=TOK.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16)


def make_model(**kw) -> GPT:
    torch.manual_seed(0)
    m = GPT(dataclasses.replace(CFG, **kw))
    with torch.no_grad():  # make every weight distinctive (LayerNorm starts at 1/0)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def idx() -> torch.Tensor:
    return torch.tensor([[1, 3, 4, 5, 2, 7, 8, 0, 3, 3]])


@pytest.fixture
def saved(tmp_path):
    m = make_model()
    path = save_checkpoint(tmp_path / "m.safetensors", m, TOK, {"steps": 7, "val_loss": 1.5})
    return path, m


# -- roundtrip ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pos_kind", POS_KINDS)
@pytest.mark.parametrize("tie", [True, False])
def test_roundtrip_gives_identical_logits(tmp_path, pos_kind, tie):
    m = make_model(pos_kind=pos_kind, tie_weights=tie)
    path = save_checkpoint(tmp_path / "m.safetensors", m, TOK, {"steps": 3})
    ck = load_checkpoint(path)
    assert ck.config == m.config and ck.tokenizer == TOK and ck.path == path
    assert not ck.model.training
    with torch.no_grad():
        a, _ = m(idx(), all_logits=True)
        b, _ = ck.model(idx(), all_logits=True)
    assert torch.equal(a, b)
    assert (ck.model.lm_head.weight is ck.model.wte.weight) == tie
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    assert ("lm_head.weight" in keys) != tie  # tied: stored once
    assert not any(k.startswith("pe.") and k != "pe.wpe.weight" for k in keys)  # no buffers


def test_tied_weights_stay_tied_when_training_after_load(saved):
    path, _ = saved
    ck = load_checkpoint(path)
    with torch.no_grad():
        ck.model.wte.weight[0, 0] = 42.0
    assert ck.model.lm_head.weight[0, 0] == 42.0


def test_metadata_is_self_describing(saved):
    path, m = saved
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == FORMAT == "transformer-explorer/1"
    assert ModelConfig.from_json(meta["config"]) == m.config
    assert CharTokenizer.from_json(meta["tokenizer"]) == TOK
    summary = json.loads(meta["summary"])
    assert summary["steps"] == 7 and summary["val_loss"] == 1.5 and "date" in summary
    md = read_metadata(path)
    assert md["config"] == m.config and md["tokenizer"] == TOK and md["summary"]["steps"] == 7
    assert load_checkpoint(path).summary == md["summary"]


def test_loaded_model_on_requested_device(saved):
    path, _ = saved
    ck = load_checkpoint(path, device="cpu")
    assert ck.model.device.type == "cpu"
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_checkpoint(path, device="tpu")


def test_save_refuses_tokenizer_that_does_not_fit(tmp_path):
    with pytest.raises(CheckpointError, match="vocab_size"):
        save_checkpoint(tmp_path / "x.safetensors", make_model(), CharTokenizer("ab"))


# -- atomic writes -----------------------------------------------------------------------------
def test_crash_mid_write_keeps_the_previous_file(tmp_path, monkeypatch):
    m = make_model()
    path = save_checkpoint(tmp_path / "m.safetensors", m, TOK, {"steps": 1})
    before = path.read_bytes()

    def half_then_crash(f, data):
        f.write(data[: len(data) // 2])
        raise OSError("disk on fire")

    monkeypatch.setattr(ckpt, "_write_all", half_then_crash)
    with torch.no_grad():
        m.wte.weight.add_(1.0)
    with pytest.raises(CheckpointError, match="m.safetensors: cannot be saved .disk on fire"):
        save_checkpoint(path, m, TOK, {"steps": 2})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]  # temp file cleaned up
    assert load_checkpoint(path).summary["steps"] == 1


def test_crash_before_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    m = make_model()
    path = save_checkpoint(tmp_path / "m.safetensors", m, TOK, {"steps": 1})
    before = path.read_bytes()

    def no_sync(fd):
        raise OSError("power cut")

    monkeypatch.setattr(ckpt.os, "fsync", no_sync)
    with pytest.raises(CheckpointError, match="power cut"):
        save_checkpoint(path, m, TOK, {"steps": 2})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_write_uses_temp_file_fsync_and_replace(tmp_path, monkeypatch):
    calls = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(ckpt.os, "replace", lambda a, b: (calls.append(("replace", a, b)),
                                                          real_replace(a, b))[1])
    monkeypatch.setattr(ckpt.os, "fsync", lambda fd: (calls.append(("fsync",)),
                                                      real_fsync(fd))[1])
    path = save_checkpoint(tmp_path / "m.safetensors", make_model(), TOK)
    kinds = [c[0] for c in calls]
    assert kinds.index("fsync") < kinds.index("replace")
    (_, src, dst), = [c for c in calls if c[0] == "replace"]
    assert os.path.dirname(src) == str(tmp_path) and str(dst) == str(path)


# -- refusing bad files ------------------------------------------------------------------------
def assert_refused(path, *words):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_file(tmp_path):
    assert_refused(tmp_path / "nope.safetensors", "no such file")


def test_truncated_file(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    for n in (len(data) - 10, len(data) // 2, 100):
        bad = tmp_path / f"cut{n}.safetensors"
        bad.write_bytes(data[:n])
        assert_refused(bad, "truncated")
        with pytest.raises(CheckpointError, match="truncated"):
            read_metadata(bad)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(data[:5])
    assert_refused(tiny, "not a safetensors file")


def test_not_safetensors(tmp_path):
    p = tmp_path / "notes.safetensors"
    p.write_text("these are my notes, not a model\n" * 10)
    assert_refused(p, "not a safetensors file")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert_refused(empty, "not a safetensors file")


class _Boom:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps(_Boom(str(marker))))
    assert_refused(p, "not a safetensors file")
    with pytest.raises(CheckpointError):
        read_metadata(p)
    assert not marker.exists()
    torch_file = tmp_path / "torch.safetensors"  # a torch.save zip renamed
    torch.save(make_model().state_dict(), torch_file)
    assert_refused(torch_file, "not a safetensors file")


def test_missing_metadata(tmp_path):
    p = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    assert_refused(p, "no metadata")


def _rewrite(path, tmp_path, name, tensors=None, **meta_changes):
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path)) if tensors is None else tensors
    meta.update(meta_changes)
    out = tmp_path / name
    save_file(tensors, str(out), metadata=meta)
    return out


def test_metadata_from_before_activation_and_epsilon_loads_with_the_old_defaults(saved,
                                                                                  tmp_path):
    """Checkpoints written before ModelConfig had ``activation`` and ``layer_norm_epsilon``
    load as exact GELU with epsilon 1e-5, which is what those models were trained with."""
    path, m = saved
    d = m.config.to_dict()
    old = {k: v for k, v in d.items() if k not in ("activation", "layer_norm_epsilon")}
    ck = load_checkpoint(_rewrite(path, tmp_path, "old.safetensors", config=json.dumps(old)))
    assert ck.config == m.config
    assert ck.config.activation == "gelu" and ck.config.layer_norm_epsilon == 1e-5
    assert ck.model.h[0].mlp.gelu.approximate == "none" and ck.model.ln_f.eps == 1e-5
    x = torch.tensor([TOK.encode("abc\nhij")])
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x, all_logits=True)[0], m(x, all_logits=True)[0],
                                   atol=0, rtol=0)


def test_wrong_format(saved, tmp_path):
    path, _ = saved
    assert_refused(_rewrite(path, tmp_path, "f.safetensors", format="someone-else/2"),
                   "unsupported format", "someone-else/2")


def test_wrong_shape(saved, tmp_path):
    path, _ = saved
    t = load_file(str(path))
    t["h.0.mlp.c_fc.weight"] = torch.zeros(3, 16)
    assert_refused(_rewrite(path, tmp_path, "s.safetensors", tensors=t),
                   "wrong shapes", "h.0.mlp.c_fc.weight", "(3, 16)", "(64, 16)")


def test_missing_and_unexpected_weights(saved, tmp_path):
    path, _ = saved
    t = load_file(str(path))
    del t["h.1.attn.c_attn.weight"]
    t["extra.weight"] = torch.zeros(2)
    msg = assert_refused(_rewrite(path, tmp_path, "k.safetensors", tensors=t),
                         "missing weights", "h.1.attn.c_attn.weight")
    assert "unexpected weights: extra.weight" in msg


def test_non_finite_weights(saved, tmp_path):
    path, _ = saved
    t = load_file(str(path))
    t["wte.weight"][0, 0] = float("nan")
    assert_refused(_rewrite(path, tmp_path, "n.safetensors", tensors=t), "NaN", "wte.weight")


def test_incompatible_config(saved, tmp_path):
    path, m = saved
    d = m.config.to_dict()
    unknown = dict(d, n_expert=8)
    assert_refused(_rewrite(path, tmp_path, "u.safetensors", config=json.dumps(unknown)),
                   "incompatible model config", "n_expert")
    invalid = dict(d, n_head=3)
    assert_refused(_rewrite(path, tmp_path, "i.safetensors", config=json.dumps(invalid)),
                   "incompatible model config", "n_head")
    wrong_vocab = dict(d, vocab_size=99)
    assert_refused(_rewrite(path, tmp_path, "v.safetensors", config=json.dumps(wrong_vocab)),
                   "vocab_size=99", "12 characters")
    assert_refused(_rewrite(path, tmp_path, "j.safetensors", config="{not json"),
                   "'config'", "not valid JSON")
    assert_refused(_rewrite(path, tmp_path, "t.safetensors", tokenizer='{"kind": "bpe"}'),
                   "tokenizer", "bpe")


# -- optimizer state ---------------------------------------------------------------------------
def test_optimizer_path():
    assert optimizer_path("runs/x.safetensors").as_posix() == "runs/x.optim.safetensors"
    assert optimizer_path("x.bin").name == "x.bin.optim.safetensors"


def _train_steps(m, opt, n):
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        x = torch.randint(0, TOK.vocab_size, (4, 8), generator=g)
        _, loss = m(x, torch.roll(x, -1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def test_optimizer_state_roundtrip(tmp_path):
    tc = TrainConfig(lr=1e-2)
    m = make_model().train()
    opt = make_optimizer(m, tc)
    _train_steps(m, opt, 3)
    path = save_checkpoint(tmp_path / "m.safetensors", m, TOK, {"steps": 3}, optimizer=opt,
                           trainer_state={"step": 3, "note": "hi"})
    opath = optimizer_path(path)
    assert opath.exists()
    st = load_optimizer_state(opath)
    assert st.trainer_state == {"step": 3, "note": "hi"}
    assert st.id == read_metadata(path)["id"] != ""  # the pair belongs together

    m2 = load_checkpoint(path).model.train()
    opt2 = make_optimizer(m2, tc)
    apply_optimizer_state(opt2, st.state_dict)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, s in a["state"].items():
        for k, v in s.items():
            assert torch.equal(v, b["state"][pid][k]), (pid, k)
    _train_steps(m, opt, 2)  # continuing gives the same weights as never stopping
    _train_steps(m2, opt2, 2)
    for (n1, p1), (_, p2) in zip(m.named_parameters(), m2.named_parameters(), strict=True):
        assert torch.equal(p1, p2), n1


def test_optimizer_file_refuses_bad_content(tmp_path):
    p = tmp_path / "x.optim.safetensors"
    p.write_bytes(pickle.dumps({"state": {}}))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_optimizer_state(p)
    save_file({"w": torch.zeros(1)}, str(p), metadata={"format": FORMAT})
    with pytest.raises(CheckpointError, match="unsupported format"):
        load_optimizer_state(p)
