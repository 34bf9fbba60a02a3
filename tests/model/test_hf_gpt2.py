"""Hugging Face GPT-2-family folders: opened here, they compute what transformers computes
(logits to 1e-4, every attention map to 1e-5), export back, and refuse bad input clearly."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from model.__main__ import main
from model.adapters.hf_gpt2 import open_hf_folder, save_hf_folder
from model.bpe_tokenizer import BPETokenizer
from model.checkpoints import CheckpointError, save_checkpoint
from model.config import CaptureSpec, ModelConfig
from model.loading import open_model
from model.stepper import Stepper
from model.transformer import GPT

pytest.importorskip("transformers")

PROMPT = "The quick brown fox, naïve 😀 café\n  jumps"
ATTENTION_ONLY = CaptureSpec(attention=True, scores=False, residual=False, ffn=False,
                             logit_lens=False, embeddings=False, sublayers=False)


def _hf_logits(hf, ids: list[int]):
    with torch.no_grad():
        out = hf(torch.tensor([ids]), output_attentions=True)
    return out.logits[0], out.attentions


def _our_logits(model, ids: list[int]):
    with torch.no_grad():
        return model(torch.tensor([ids]), all_logits=True)[0][0]


@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_logits_and_every_attention_map_match_transformers(make_hf_folder, activation):
    hf, folder = make_hf_folder(activation=activation)
    ck = open_model(folder)
    assert ck.config.activation == ("gelu_tanh" if activation == "gelu_new" else "gelu")
    ids = ck.tokenizer.encode(PROMPT)
    want, maps = _hf_logits(hf, ids)
    torch.testing.assert_close(_our_logits(ck.model, ids), want, atol=1e-4, rtol=0)
    # through the capture path the GUI uses: the stepper's result
    r = Stepper(ck.model, ck.tokenizer, capture=ATTENTION_ONLY).set_prompt(PROMPT)
    assert list(r.ids) == ids
    assert r.attention.shape == (2, 2, len(ids), len(ids))
    for layer, m in enumerate(maps):
        torch.testing.assert_close(torch.tensor(r.attention[layer]), m[0], atol=1e-5, rtol=0)


def test_weights_keep_the_files_layout_and_step_like_transformers(make_hf_folder):
    """The Conv1D weights stay views of the file's (in, out) tensors and the tied unembedding
    is stored (C, V) (the fast layout for one new token); the cached steps still give
    transformers' logits."""
    hf, folder = make_hf_folder()
    ck = open_model(folder)
    m = ck.model
    for lin in (m.h[0].attn.c_attn, m.h[0].attn.c_proj, m.h[0].mlp.c_fc, m.h[0].mlp.c_proj):
        assert not lin.weight.is_contiguous() and lin.weight.t().is_contiguous()
    assert m.lm_head.weight is m.wte.weight and m.wte.weight.t().is_contiguous()
    st = Stepper(ck.model, ck.tokenizer)
    r = st.set_prompt(PROMPT)
    for _ in range(3):
        r = st.step()
        want, _ = _hf_logits(hf, [int(i) for i in r.ids])
        torch.testing.assert_close(torch.from_numpy(r.logits.copy()), want[-1], atol=1e-4,
                                   rtol=0)
    # a checkpoint saved from it is contiguous and loads back to the same numbers
    again = GPT(ck.config)
    again.load_state_dict(m.state_dict())
    ids = ck.tokenizer.encode(PROMPT)
    torch.testing.assert_close(_our_logits(again.eval(), ids), _our_logits(m, ids), atol=1e-5,
                               rtol=0)


def test_the_other_activation_would_not_match(make_hf_folder):
    """The comparison above can fail: exact GELU where GPT-2 uses the tanh form shows."""
    hf, folder = make_hf_folder(activation="gelu_new")
    ck = open_model(folder)
    wrong = GPT(ModelConfig(**{**ck.config.to_dict(), "activation": "gelu"}))
    wrong.load_state_dict(ck.model.state_dict())
    ids = ck.tokenizer.encode(PROMPT)
    # several times the 1e-4 tolerance the tests above use
    assert (_our_logits(wrong.eval(), ids) - _hf_logits(hf, ids)[0]).abs().max() > 5e-4


def test_layer_norm_epsilon_and_untied_unembedding_are_read(make_hf_folder):
    hf, folder = make_hf_folder(layer_norm_epsilon=1e-2, tie_word_embeddings=False)
    with torch.no_grad():
        hf.lm_head.weight.copy_(torch.randn_like(hf.lm_head.weight))
    hf.save_pretrained(str(folder))
    ck = open_model(folder)
    assert ck.config.layer_norm_epsilon == 1e-2 and not ck.config.tie_weights
    ids = ck.tokenizer.encode(PROMPT)
    torch.testing.assert_close(_our_logits(ck.model, ids), _hf_logits(hf, ids)[0], atol=1e-4,
                               rtol=0)


def test_pytorch_model_bin_and_vocab_merges_without_tokenizer_json(make_hf_folder):
    hf, folder = make_hf_folder()
    (folder / "model.safetensors").unlink()
    (folder / "tokenizer.json").unlink()
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    ck = open_model(folder / "pytorch_model.bin")  # a file of the folder opens the folder
    assert ck.path == folder
    ids = ck.tokenizer.encode(PROMPT)
    torch.testing.assert_close(_our_logits(ck.model, ids), _hf_logits(hf, ids)[0], atol=1e-4,
                               rtol=0)


def test_original_gpt2_key_names_without_prefix_and_with_mask_buffers(make_hf_folder):
    """OpenAI's converted gpt2 checkpoint: keys without 'transformer.', plus attn.bias masks."""
    hf, folder = make_hf_folder()
    state = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items()
             if k != "lm_head.weight"}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    ck = open_model(folder)
    ids = ck.tokenizer.encode(PROMPT)
    torch.testing.assert_close(_our_logits(ck.model, ids), _hf_logits(hf, ids)[0], atol=1e-4,
                               rtol=0)


# -- export ------------------------------------------------------------------------------------
def _random_gpt(tokenizer, **kw) -> GPT:
    torch.manual_seed(3)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2,
                      n_embd=16, **kw)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name or name.startswith("ln_f"):
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("kw", [
    {"activation": "gelu_tanh"},
    {"activation": "gelu", "bias": False, "tie_weights": False, "n_ffn": 24,
     "layer_norm_epsilon": 1e-3},
])
def test_export_round_trip(tmp_path, bpe_folder, kw):
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    tok = BPETokenizer.from_folder(bpe_folder)
    model = _random_gpt(tok, **kw)
    ids = tok.encode(PROMPT)
    want = _our_logits(model, ids)
    out = save_hf_folder(model, tok, tmp_path / "export")
    hf = GPT2LMHeadModel.from_pretrained(str(out), attn_implementation="eager").eval()
    torch.testing.assert_close(_hf_logits(hf, ids)[0], want, atol=1e-4, rtol=0)
    assert GPT2TokenizerFast.from_pretrained(str(out))(PROMPT)["input_ids"] == ids
    back = open_hf_folder(out)
    torch.testing.assert_close(_our_logits(back.model, ids), want, atol=1e-5, rtol=0)
    assert back.tokenizer.encode(PROMPT) == ids


def test_cli_export_of_a_character_model_and_generate_from_the_folder(tmp_path, capsys):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from model.tokenizer import CharTokenizer

    tok = CharTokenizer.from_text("abcdefgh \n")
    model = _random_gpt(tok)
    ck = save_checkpoint(tmp_path / "m.safetensors", model, tok)
    assert main(["export", "--checkpoint", str(ck), "--hf-folder", str(tmp_path / "hf")]) == 0
    ids = tok.encode("abc cab\nhead")
    hf = GPT2LMHeadModel.from_pretrained(str(tmp_path / "hf")).eval()
    torch.testing.assert_close(_hf_logits(hf, ids)[0], _our_logits(model, ids), atol=1e-4,
                               rtol=0)
    assert AutoTokenizer.from_pretrained(str(tmp_path / "hf"))("abc cab\nhead")["input_ids"] \
        == ids
    back = open_model(tmp_path / "hf")
    assert back.tokenizer.encode("abc cab\nhead") == ids
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(tmp_path / "hf"), "--prompt", "abc",
                 "--tokens", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("abc")


def test_export_refuses_what_gpt2_cannot_express(tmp_path):
    from model.tokenizer import CharTokenizer

    tok = CharTokenizer.from_text("ab")
    with pytest.raises(CheckpointError, match="rotary"):
        save_hf_folder(_random_gpt(tok, pos_kind="rotary"), tok, tmp_path / "x")
    assert not (tmp_path / "x" / "config.json").exists()


# -- names in the local Hugging Face cache -----------------------------------------------------
def test_model_name_found_in_the_local_cache(make_hf_folder, tmp_path, monkeypatch):
    hf, folder = make_hf_folder()
    repo = tmp_path / "cache" / "models--gpt2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots").mkdir()
    folder.rename(repo / "snapshots" / "abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    ck = open_model("gpt2")
    ids = ck.tokenizer.encode(PROMPT)
    torch.testing.assert_close(_our_logits(ck.model, ids), _hf_logits(hf, ids)[0], atol=1e-4,
                               rtol=0)


def test_model_name_absent_from_the_cache_says_where_and_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--checkpoint", "gpt2-medium", "--tokens", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "hub") in err and str(tmp_path / "home" / "hub") in err
    assert "huggingface-cli download gpt2-medium" in err


# -- bad input ---------------------------------------------------------------------------------
def test_folder_without_config(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    assert main(["inspect", "--checkpoint", str(tmp_path / "m"), "--prompt", "a"]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CheckpointError, match="no config.json"):
        open_hf_folder(tmp_path / "m")


def test_unsupported_model_type_names_the_supported_families(make_hf_folder):
    _, folder = make_hf_folder()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "llama"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="'llama' is not supported.*GPT-2 family.*gpt2"):
        open_model(folder)


def test_weights_that_do_not_match_the_config_name_tensor_and_shapes(make_hf_folder):
    _, folder = make_hf_folder()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["n_inner"] = 64  # the file's FFN is 4 * 32 = 128 wide
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        open_model(folder)
    msg = str(e.value)
    assert "do not match config.json" in msg
    # shapes as the file stores them (Conv1D: in, out)
    assert "transformer.h.0.mlp.c_fc.weight has shape (32, 128), config.json needs (32, 64)" \
        in msg


def test_missing_layer_is_named(make_hf_folder):
    _, folder = make_hf_folder()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["n_layer"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"missing h\.2\.ln_1\.weight"):
        open_model(folder)


def test_tokenizer_whose_vocabulary_differs_from_the_model(make_hf_folder):
    _, folder = make_hf_folder()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["vocab_size"] += 5
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"tokenizer has 300 tokens but config.json says "
                                              r"vocab_size=305"):
        open_model(folder)


class _Evil:
    """Pickles as a call to os.system that would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pytorch_model_bin_is_refused_and_nothing_runs(make_hf_folder, tmp_path,
                                                                  capsys):
    _, folder = make_hf_folder()
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"transformer.wte.weight": _Evil(marker)}, f)
    assert main(["generate", "--checkpoint", str(folder), "--tokens", "1"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "pytorch_model.bin" in err
    assert not marker.exists()
