"""An encoder-decoder in the session and the inference worker: the worker picks the stepper by
the model's kind, the source is the prompt, stepping writes the target, stepping past the end
token is refused with a status-line message (no dialog) and Run stops there; an encoder opened
after it gets its masked stepper, and back."""
from __future__ import annotations

import numpy as np
import pytest
from test_session import Recorder, torch_objects

from explorer.session import Session
from model.shipped import MODELS

NUMBERS = MODELS / "numbers_to_words.safetensors"


@pytest.fixture
def seq2seq(qtbot):
    s = Session(device="cpu")
    rec = Recorder(s.worker)
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.start(NUMBERS, prompt="42", sample={"temperature": 0.0})
    yield s, rec
    s.close()


def test_the_worker_steps_an_encoder_decoder_target(qtbot, seq2seq):
    s, rec = seq2seq
    r = s.result
    assert s.config.kind == "encoder-decoder" and r.kind == "encoder-decoder"
    assert r.source_pieces == ["4", "2", "<eos>"] and r.pieces == ["<bos>"]
    assert r.families == ("encoder", "self", "cross")
    errors = []
    s.error.connect(lambda *a: errors.append(a))
    while not r.note:
        with qtbot.waitSignal(s.step_ready, timeout=10000):
            s.step()
        r = s.result
    assert "".join(r.tokens[1:-1]) == "forty two" and "end token" in r.note
    np.testing.assert_allclose(r.cross_attention.sum(-1), 1, atol=1e-5)
    with qtbot.waitSignal(s.message, timeout=10000) as said:  # one more Step: a status line
        s.step()
    assert "end token" in said.args[0] and not errors
    with qtbot.waitSignal(s.step_ready, timeout=10000):  # a new source restarts the target
        s.set_prompt("7")
    assert s.result.source_pieces == ["7", "<eos>"] and s.result.n_generated == 0
    with qtbot.waitSignal(s.running_changed, timeout=20000,
                          check_params_cb=lambda running: not running):
        s.run(40)
    qtbot.waitUntil(lambda: "seven" in "".join(s.result.tokens), timeout=10000)
    assert s.result.n_generated == len("seven") + 1 and not errors  # the run ended at eos
    for kind, args in rec.payloads:
        assert torch_objects(args) == [], kind


def test_a_source_longer_than_the_block_size_is_said_and_not_sent(qtbot, seq2seq):
    s, _ = seq2seq
    result = s.result
    errors = []
    s.error.connect(lambda *a: errors.append(a))
    with qtbot.waitSignal(s.message, timeout=10000) as said:  # a status line, no dialog
        check = s.set_prompt("1" * 48)
    assert check.too_long and not check.cropped and not check.ok
    assert "48 tokens" in said.args[0] and "block size 48" in said.args[0]
    with qtbot.waitSignal(s.step_ready, timeout=10000):  # the last good source goes on
        s.step()
    assert s.result.source_ids.tolist() == result.source_ids.tolist() and not errors
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        check = s.set_prompt("1" * 47)  # with its end token exactly the block size
    assert check.ok and s.result.S == 48


def test_head_ranking_and_ablation_of_the_decoder(qtbot, seq2seq):
    from model.ablation import Ablation

    s, _ = seq2seq
    with qtbot.waitSignal(s.heads_ranked, timeout=10000) as ranked:
        s.rank_heads()
    eff = ranked.args[0]
    assert eff.delta.shape == (s.config.n_layer, s.config.n_head)
    assert eff.token == s.result.planned
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.set_ablation(Ablation.parse("0.0,1.3"))
    assert s.result.ablation == Ablation.parse("0.0,1.3")
    assert s.result.intact_logits is not None


def test_an_encoder_opened_after_an_encoder_decoder_masks_instead(qtbot, seq2seq):
    """The worker picks the stepper by kind both ways (an encoder: model.masked_stepper)."""
    s, _ = seq2seq
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        s.load_checkpoint(MODELS / "sonnets_encoder.safetensors")
    assert s.is_encoder and s.result.predicted_at is not None and s.result.source_ids is None
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.set_prompt("Shall I")  # the digits of the source are not in its vocabulary
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.toggle_mask(1)
    assert s.result.masked_positions == (1,)
    with qtbot.waitSignal(s.model_opened, timeout=20000):
        s.load_checkpoint(MODELS / "numbers_to_words.safetensors")
    assert not s.is_encoder and s.result.predicted_at is None
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step()
    assert s.result.n_generated == 1


def test_training_snapshots_of_each_kind(qtbot, seq2seq):
    """A snapshot (the Training dock's "Explore this model") of an encoder-decoder is stepped,
    one of an encoder masks."""
    from explorer.training_worker import Snapshot, copy_state
    from model.checkpoints import load_checkpoint

    s, _ = seq2seq
    for name, kind in (("numbers_to_words", "encoder-decoder"), ("sonnets_encoder", "encoder")):
        ck = load_checkpoint(MODELS / f"{name}.safetensors")
        snap = Snapshot(step=5, config=ck.model.config, tokenizer=ck.tokenizer,
                        state_dict=copy_state(ck.model))
        with qtbot.waitSignal(s.model_changed, timeout=10000):
            s.use_snapshot(snap, f"{name} @ step 5", {"steps": 5})
        qtbot.waitUntil(lambda n=name: s.result is not None
                        and s.info.name == f"{n} @ step 5", timeout=10000)
        assert s.result.kind == kind
        assert (s.result.cross_attention is not None) == (kind == "encoder-decoder")
        assert (s.result.predicted_at is not None) == (kind == "encoder")
