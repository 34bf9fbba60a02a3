"""nanoGPT checkpoints: a ``ckpt.pt`` built from a state dict with nanoGPT's key names opens here
and computes what nanoGPT's own forward pass computes; its ``meta.pkl`` gives the same ids;
pickles that would run code are refused without running."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
import torch.nn.functional as F

from model.__main__ import main
from model.adapters.nanogpt import open_nanogpt
from model.checkpoints import CheckpointError
from model.loading import open_model

CHARS = sorted(set("\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
PROMPT = "ROMEO: But soft, what light\nthrough yonder window breaks?"


def nanogpt_state(vocab: int, n_layer=2, n_embd=32, block=64, bias=True, seed=0):
    """Random weights under nanoGPT's names (nn.Linear layout, tied lm_head)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return scale * torch.randn(*shape, generator=g)

    sd = {"transformer.wte.weight": r(vocab, n_embd), "transformer.wpe.weight": r(block, n_embd)}
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        sd[p + "ln_1.weight"] = 1 + r(n_embd)
        sd[p + "attn.c_attn.weight"] = r(3 * n_embd, n_embd)
        sd[p + "attn.c_proj.weight"] = r(n_embd, n_embd)
        sd[p + "ln_2.weight"] = 1 + r(n_embd)
        sd[p + "mlp.c_fc.weight"] = r(4 * n_embd, n_embd)
        sd[p + "mlp.c_proj.weight"] = r(n_embd, 4 * n_embd)
        if bias:
            for k, n in (("ln_1.bias", n_embd), ("attn.c_attn.bias", 3 * n_embd),
                         ("attn.c_proj.bias", n_embd), ("ln_2.bias", n_embd),
                         ("mlp.c_fc.bias", 4 * n_embd), ("mlp.c_proj.bias", n_embd)):
                sd[p + k] = r(n)
    sd["transformer.ln_f.weight"] = 1 + r(n_embd)
    if bias:
        sd["transformer.ln_f.bias"] = r(n_embd)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    return sd


def nanogpt_forward(sd: dict, idx: torch.Tensor, n_layer: int, n_head: int) -> torch.Tensor:
    """nanoGPT's model.py forward, written out: pre-norm blocks, exact GELU, eps 1e-5."""
    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd.get(name + ".bias"), 1e-5)

    def lin(x, name):
        return F.linear(x, sd[name + ".weight"], sd.get(name + ".bias"))

    B, T = idx.shape
    x = sd["transformer.wte.weight"][idx] + sd["transformer.wpe.weight"][:T]
    C = x.shape[-1]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        q, k, v = lin(ln(x, p + "ln_1"), p + "attn.c_attn").split(C, dim=2)
        q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + lin(y.transpose(1, 2).reshape(B, T, C), p + "attn.c_proj")
        x = x + lin(F.gelu(lin(ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
    return F.linear(ln(x, "transformer.ln_f"), sd["lm_head.weight"])


def write_ckpt(path, sd, vocab, bias=True, compiled=True, dataset="shakespeare_char"):
    params = [torch.nn.Parameter(t.clone()) for t in list(sd.values())[:3]]
    opt = torch.optim.AdamW(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    opt.step()  # a real optimizer state, as nanoGPT saves one
    prefix = "_orig_mod." if compiled else ""
    torch.save({
        "model": {prefix + k: v for k, v in sd.items()},
        "optimizer": opt.state_dict(),
        "model_args": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64, "bias": bias,
                       "vocab_size": vocab, "dropout": 0.0},
        "iter_num": 5000, "best_val_loss": torch.tensor(1.4697),
        "config": {"dataset": dataset, "batch_size": 64, "compile": compiled},
    }, path)


def write_meta(path, chars=CHARS):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                     "stoi": {c: i for i, c in enumerate(chars)}}, f)


@pytest.mark.parametrize("bias, compiled", [(True, True), (False, False)])
def test_logits_match_nanogpts_forward(tmp_path, bias, compiled):
    """nanoGPT's layout: out-dir beside data/<dataset>/meta.pkl, as its train.py leaves them."""
    sd = nanogpt_state(len(CHARS), bias=bias)
    (tmp_path / "out-shakespeare-char").mkdir()
    write_ckpt(tmp_path / "out-shakespeare-char" / "ckpt.pt", sd, len(CHARS), bias, compiled)
    write_meta(tmp_path / "data" / "shakespeare_char" / "meta.pkl")
    ck = open_model(tmp_path / "out-shakespeare-char")
    assert ck.config.bias is bias and ck.config.activation == "gelu"
    assert ck.summary["steps"] == 5000 and ck.summary["source"] == "nanogpt"
    ids = ck.tokenizer.encode(PROMPT)
    assert ids == [CHARS.index(c) for c in PROMPT]  # nanoGPT's encode: stoi of each character
    x = torch.tensor([ids])
    with torch.no_grad():
        ours = ck.model(x, all_logits=True)[0]
        want = nanogpt_forward(sd, x, 2, 2)
    torch.testing.assert_close(ours, want, atol=1e-4, rtol=0)


def test_same_as_transformers_with_the_same_weights(tmp_path):
    """A peer besides the written-out forward: GPT2LMHeadModel (exact GELU) given these weights
    (its Conv1D layers take them transposed)."""
    transformers = pytest.importorskip("transformers")
    sd = nanogpt_state(len(CHARS))
    write_ckpt(tmp_path / "ckpt.pt", sd, len(CHARS))
    write_meta(tmp_path / "meta.pkl")
    cfg = transformers.GPT2Config(vocab_size=len(CHARS), n_positions=64, n_embd=32, n_layer=2,
                                  n_head=2, activation_function="gelu")
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    conv = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    hf.load_state_dict({k: (v.t() if k.endswith(conv) else v) for k, v in sd.items()},
                       strict=False)
    ck = open_nanogpt(tmp_path / "ckpt.pt")
    x = torch.tensor([ck.tokenizer.encode(PROMPT)])
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x, all_logits=True)[0], hf(x).logits, atol=1e-4,
                                   rtol=0)


def test_padded_vocabulary_is_cut_to_the_tokenizers(tmp_path):
    sd = nanogpt_state(len(CHARS) + 7)
    write_ckpt(tmp_path / "ckpt.pt", sd, len(CHARS) + 7)
    write_meta(tmp_path / "meta.pkl")
    ck = open_model(tmp_path / "ckpt.pt")
    assert ck.config.vocab_size == len(CHARS) and "cut" in ck.summary["note"]
    x = torch.tensor([ck.tokenizer.encode(PROMPT)])
    with torch.no_grad():
        want = nanogpt_forward(sd, x, 2, 2)[..., :len(CHARS)]
        torch.testing.assert_close(ck.model(x, all_logits=True)[0], want, atol=1e-4, rtol=0)


def _gpt2_sized_tokenizer_json(path):
    """A byte-level BPE with GPT-2's 50,257 ids (the 256 bytes, filler pieces, <|endoftext|>
    last): what nanoGPT's GPT-2 models need, without GPT-2's own files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from model.bpe_tokenizer import _bytes_to_unicode

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode().values())}
    vocab.update({f"piece{i}": i for i in range(256, 50256)})
    vocab["<|endoftext|>"] = 50256
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(path))


def test_gpt2_vocabulary_with_gpt2s_tokenizer_beside_it_and_padding_cut(tmp_path):
    """nanoGPT's GPT-2 runs: vocab_size 50304 (padded), no meta.pkl, GPT-2's BPE."""
    _gpt2_sized_tokenizer_json(tmp_path / "tokenizer.json")
    sd = nanogpt_state(50304, n_embd=32)
    write_ckpt(tmp_path / "ckpt.pt", sd, 50304, dataset="openwebtext")
    ck = open_model(tmp_path / "ckpt.pt")
    assert ck.tokenizer.vocab_size == ck.config.vocab_size == 50257
    assert ck.summary["tokenizer_from"] == str(tmp_path)
    x = torch.tensor([ck.tokenizer.encode("hi there")])
    with torch.no_grad():
        want = nanogpt_forward(sd, x, 2, 2)[..., :50257]
        torch.testing.assert_close(ck.model(x, all_logits=True)[0], want, atol=1e-4, rtol=0)


def test_cli_generate_and_inspect_from_ckpt(tmp_path, capsys):
    write_ckpt(tmp_path / "ckpt.pt", nanogpt_state(len(CHARS)), len(CHARS))
    write_meta(tmp_path / "meta.pkl")
    assert main(["generate", "--checkpoint", str(tmp_path / "ckpt.pt"), "--prompt", "ROMEO:",
                 "--tokens", "8", "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
    assert main(["inspect", "--checkpoint", str(tmp_path), "--prompt", "To be"]) == 0
    assert "layer 1" in capsys.readouterr().out


# -- bad input ---------------------------------------------------------------------------------
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('MARK').touch()",))


def test_malicious_ckpt_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"model_args": {}, "model": {"x": _Evil(marker)}}, tmp_path / "ckpt.pt")
    assert main(["generate", "--checkpoint", str(tmp_path / "ckpt.pt"), "--tokens", "1"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_malicious_meta_pkl_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_ckpt(tmp_path / "ckpt.pt", nanogpt_state(len(CHARS)), len(CHARS))
    marker = tmp_path / "pwned"
    for payload in (_Evil(marker), _EvalEvil()):
        with open(tmp_path / "meta.pkl", "wb") as f:
            pickle.dump({"itos": payload, "stoi": {}}, f)
        with pytest.raises(CheckpointError, match="meta.pkl: refused.*asks for"):
            open_nanogpt(tmp_path)
    assert not marker.exists() and not (tmp_path / "MARK").exists()


def test_missing_tokenizer_names_what_is_missing(tmp_path):
    write_ckpt(tmp_path / "ckpt.pt", nanogpt_state(len(CHARS)), len(CHARS))
    with pytest.raises(CheckpointError) as e:
        open_model(tmp_path / "ckpt.pt")
    msg = str(e.value)
    assert "no tokenizer found" in msg and "meta.pkl" in msg
    assert str(tmp_path / "data" / "shakespeare_char" / "meta.pkl") in msg


def test_word_level_meta_is_refused_clearly(tmp_path):
    write_ckpt(tmp_path / "ckpt.pt", nanogpt_state(3), 3)
    write_meta(tmp_path / "meta.pkl", ["the", "cat", "sat"])
    with pytest.raises(CheckpointError, match="not single characters"):
        open_model(tmp_path)


def test_weights_that_do_not_match_model_args(tmp_path):
    sd = nanogpt_state(len(CHARS))
    sd["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(100, 32)
    write_ckpt(tmp_path / "ckpt.pt", sd, len(CHARS))
    write_meta(tmp_path / "meta.pkl")
    with pytest.raises(CheckpointError, match=r"_orig_mod\.transformer\.h\.1\.mlp\.c_fc\.weight "
                                              r"has shape \(100, 32\), model_args needs "
                                              r"\(128, 32\)"):
        open_model(tmp_path)


def test_gpt2_vocabulary_without_local_gpt2_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    sd = nanogpt_state(50304, n_embd=32)
    write_ckpt(tmp_path / "ckpt.pt", sd, 50304)
    with pytest.raises(CheckpointError, match="GPT-2's tokenizer"):
        open_model(tmp_path / "ckpt.pt")
