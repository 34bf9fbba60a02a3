"""File → Open model folder, drops of a folder and of a nanoGPT ckpt.pt, File → Export as Hugging
Face folder (written in the worker; transformers opens it with the same logits), recent files
that remember folders, and token bytes on hover. Models: tiny random GPT-2s saved by
transformers' ``save_pretrained`` with a byte-level BPE trained by the tokenizers library."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog

TEXT = "The quick brown fox jumps over the lazy dog. Then the dog sleeps; the fox runs on.\n" * 30
CHARS = sorted(set("\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    folder.mkdir()
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=299, min_frequency=2, show_progress=False)
    bpe.add_special_tokens(["<|endoftext|>"])
    bpe.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    vocab = bpe.get_vocab_size()
    cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=vocab - 1, eos_token_id=vocab - 1, initializer_range=0.2)
    GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def nanogpt_ckpt(tmp_path_factory) -> Path:
    """``out/ckpt.pt`` with nanoGPT's key names and ``meta.pkl`` beside it."""
    g = torch.Generator().manual_seed(0)
    V, C, L, B = len(CHARS), 32, 2, 64

    def r(*shape):
        return 0.2 * torch.randn(*shape, generator=g)

    sd = {"transformer.wte.weight": r(V, C), "transformer.wpe.weight": r(B, C)}
    for i in range(L):
        p = f"transformer.h.{i}."
        sd |= {p + "ln_1.weight": 1 + r(C), p + "attn.c_attn.weight": r(3 * C, C),
               p + "attn.c_proj.weight": r(C, C), p + "ln_2.weight": 1 + r(C),
               p + "mlp.c_fc.weight": r(4 * C, C), p + "mlp.c_proj.weight": r(C, 4 * C)}
    sd["transformer.ln_f.weight"] = 1 + r(C)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    out = tmp_path_factory.mktemp("nanogpt") / "out"
    out.mkdir()
    torch.save({"model": sd, "model_args": {"n_layer": L, "n_head": 2, "n_embd": C,
                                            "block_size": B, "bias": False, "vocab_size": V,
                                            "dropout": 0.0},
                "iter_num": 100, "config": {"dataset": "shakespeare_char"}}, out / "ckpt.pt")
    with open(out / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": V, "itos": dict(enumerate(CHARS)),
                     "stoi": {c: i for i, c in enumerate(CHARS)}}, f)
    return out / "ckpt.pt"


_MIME: list[QMimeData] = []  # an event does not own its mime data: keep it alive


def drop(window, path: Path) -> QDropEvent:
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(path))])
    _MIME.append(md)
    return QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, md,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)


def test_open_model_folder_from_the_file_menu_and_again_from_recent(qtbot, window, hf_folder,
                                                                     monkeypatch):
    from model.bpe_tokenizer import BPETokenizer

    asked = []

    def choose(parent, caption, start, *a, **k):
        asked.append(caption)
        return str(hf_folder)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(choose))
    s = window.session
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        window.act_open_folder.trigger()
    assert asked and "folder" in asked[0].lower()
    assert s.info.summary["source"] == "huggingface" and s.info.name == "tiny-gpt2"
    assert isinstance(s.tokenizer, BPETokenizer) and s.config.vocab_size == 300
    assert window.recent_files()[0] == str(hf_folder)  # folders are remembered too
    with qtbot.waitSignal(s.model_opened, timeout=20000):  # and open again from the menu
        window.open_model(window.tiny_models_path)
    window._fill_recent()
    act = next(a for a in window.recent_menu.actions() if a.data() == str(hf_folder))
    with qtbot.waitSignal(s.model_opened, timeout=20000) as blocker:
        act.trigger()
    assert blocker.args[0] == hf_folder and s.info.summary["source"] == "huggingface"


@pytest.fixture
def window(make_window, tiny_models):
    w = make_window(tiny_models["tiny"])
    w.tiny_models_path = tiny_models["tiny"]
    return w


def test_drop_a_folder_and_a_nanogpt_checkpoint(qtbot, window, hf_folder, nanogpt_ckpt,
                                                tmp_path):
    s = window.session
    assert window._dropped_model(drop(window, hf_folder)) == str(hf_folder)
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        window.dropEvent(drop(window, hf_folder))
    assert s.info.summary["source"] == "huggingface"
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        window.dropEvent(drop(window, nanogpt_ckpt))
    assert s.info.summary["source"] == "nanogpt" and s.config.vocab_size == len(CHARS)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model", encoding="utf-8")
    assert window._dropped_model(drop(window, notes)) is None


def test_a_dropped_folder_that_holds_no_model_is_explained(qtbot, window, tmp_path, dialogs):
    empty = tmp_path / "empty"
    empty.mkdir()
    s = window.session
    info = s.info
    window.interactive = True
    with qtbot.waitSignal(s.error, timeout=20000):
        window.dropEvent(drop(window, empty))
    assert dialogs and "config.json" in dialogs[-1][2] and str(empty) in dialogs[-1][2]
    assert s.info is info  # the current model stays


def test_export_as_hugging_face_folder_gives_transformers_the_same_logits(
        qtbot, window, hf_folder, tmp_path, monkeypatch):
    from transformers import GPT2LMHeadModel

    s = window.session
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        window.open_model(hf_folder)
    out = tmp_path / "exported"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: str(out)))
    with qtbot.waitSignal(s.model_exported, timeout=20000) as blocker:
        window.act_export.trigger()
    assert blocker.args[0] == out and (out / "config.json").is_file()
    assert s.info.path == hf_folder  # exporting does not change what is open
    assert window.recent_files()[0] == str(out)
    ids = s.tokenizer.encode("The quick brown fox")
    theirs = GPT2LMHeadModel.from_pretrained(str(out)).eval()
    with torch.no_grad():
        want = theirs(torch.tensor([ids])).logits[0, -1]
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.set_prompt("The quick brown fox")
    torch.testing.assert_close(torch.from_numpy(s.result.logits.copy()), want, atol=1e-4,
                               rtol=0)


def test_export_failure_is_one_clear_message(qtbot, window, tmp_path, dialogs):
    blocker_file = tmp_path / "a-file"
    blocker_file.write_text("x", encoding="utf-8")
    window.interactive = True
    with qtbot.waitSignal(window.session.error, timeout=20000):
        window.export_model(blocker_file)
    kind, title, text = dialogs[-1]
    assert "export" in title.lower() and str(blocker_file) in text


def test_hover_shows_the_tokens_id_and_bytes(qtbot, window, hf_folder):
    s = window.session
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        window.open_model(hf_folder)
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.set_prompt("The fox")
    r = s.result
    i = r.pieces.index("␣fox")
    tip = window.prompt_panel.strip.tooltip_for(i)
    assert f"id {int(r.ids[i])}" in tip and "bytes 20 66 6f 78" in tip


def test_the_window_repaints_and_shows_progress_while_a_model_loads(qtbot, window, hf_folder,
                                                                     monkeypatch):
    """A slow load (a GPT-2-small takes seconds) runs in the worker: the GUI thread keeps
    painting and the status bar says what is happening."""
    import time

    import model.loading

    real = model.loading.open_model

    def slow(*a, **k):
        time.sleep(1.0)
        return real(*a, **k)

    monkeypatch.setattr(model.loading, "open_model", slow)
    paints = []
    messages = []
    window.session.message.connect(messages.append)
    from PySide6.QtCore import QObject

    class Painted(QObject):
        def eventFilter(self, obj, ev):  # noqa: N802
            if ev.type() == ev.Type.Paint:
                paints.append(time.perf_counter())
            return False

    watcher = Painted()
    window.prompt_panel.strip.installEventFilter(watcher)
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.session.model_opened, timeout=20000):
        window.open_model(hf_folder)
        for _ in range(5):  # repaints asked for while the worker reads
            qtbot.wait(100)
            window.prompt_panel.strip.update()
    during = [t for t in paints if t - t0 < 0.9]
    assert len(during) >= 3, paints
    assert any("reading the weights" in m for m in messages), messages
    window.prompt_panel.strip.removeEventFilter(watcher)


def test_next_token_bars_are_labelled_with_bpe_pieces_that_fit(qtbot, window, hf_folder):
    """pyqtgraph draws no tick label wider than its axis: the axis widens for BPE pieces."""
    from explorer.panels.distribution import LABEL_AXIS_MAX, LABEL_AXIS_MIN

    s = window.session
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        window.open_model(hf_folder)
    panel = window.distribution_panel
    panel.flush()
    ids = s.result.dist.order[:len(panel._ticks)].tolist()
    assert [p for _, p in panel._ticks] == s.tokenizer.token_pieces(ids)
    widest = max(panel._label_metrics.horizontalAdvance(p) for _, p in panel._ticks)
    width = panel.plot.getAxis("left").minimumWidth()  # setWidth fixes it; layout comes later
    assert width >= min(widest + 8, LABEL_AXIS_MAX)
    assert width > LABEL_AXIS_MIN or widest + 8 <= LABEL_AXIS_MIN
