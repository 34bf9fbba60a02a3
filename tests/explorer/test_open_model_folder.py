"""``--checkpoint FOLDER``: the GUI's loader (the inference worker) opens a Hugging Face GPT-2
folder through model.loading.open_model, with its byte-level BPE tokenizer."""
from __future__ import annotations

import torch

from explorer.session import Session
from model.adapters.hf_gpt2 import save_hf_folder
from model.bpe_tokenizer import BPETokenizer
from model.config import ModelConfig
from model.transformer import GPT

TEXT = "The quick brown fox jumps over the lazy dog.\nThe fox naps; the dog runs.\n" * 40


def test_session_opens_a_hugging_face_folder(qtbot, tmp_path):
    tok = BPETokenizer.train(TEXT, 300)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2,
                            n_embd=16, activation="gelu_tanh"))
    folder = save_hf_folder(model, tok, tmp_path / "tiny-gpt2")
    s = Session(device="cpu")
    s.prompt = "The fox jumps"
    try:
        with qtbot.waitSignal(s.step_ready, timeout=20000):
            s.start(folder)
        assert s.info is not None and s.info.summary["source"] == "huggingface"
        assert isinstance(s.tokenizer, BPETokenizer)
        assert list(s.result.ids) == tok.encode("The fox jumps")
        assert s.result.pieces == tok.token_pieces(tok.encode("The fox jumps"))
        assert "␣fox" in s.result.pieces
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.step()
        assert len(s.result.ids) == len(tok.encode("The fox jumps")) + 1
    finally:
        s.close()
