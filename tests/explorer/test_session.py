"""The session and the inference worker without a window: every model loads in the worker, a file
that fails to open leaves the current model working, and what the worker emits to the GUI thread
is numpy and plain data; moving a sampling setting shows at once what the worker's stepper then
computes, by the one rule (model.sampling.next_token)."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
from PySide6.QtCore import QObject, Slot

import model.loading
from explorer import inference_worker as W
from explorer.session import Session
from explorer.training_worker import Snapshot, copy_state
from model.checkpoints import load_checkpoint
from model.config import SampleConfig


class Recorder(QObject):
    """Lives in the GUI thread; keeps every payload the worker emits (queued into this thread)."""

    def __init__(self, worker: W.InferenceWorker):
        super().__init__()
        self.payloads: list[tuple[str, tuple]] = []
        worker.result_ready.connect(self.on_result)
        worker.model_ready.connect(self.on_model)
        worker.failed.connect(self.on_failed)
        worker.notice.connect(self.on_notice)
        worker.saved.connect(self.on_saved)

    @Slot(object, int, str)
    def on_result(self, *args) -> None:
        self.payloads.append(("result_ready", args))

    @Slot(object, object, int)
    def on_model(self, *args) -> None:
        self.payloads.append(("model_ready", args))

    @Slot(str, str, str, int)
    def on_failed(self, *args) -> None:
        self.payloads.append(("failed", args))

    @Slot(str, int)
    def on_notice(self, *args) -> None:
        self.payloads.append(("notice", args))

    @Slot(object, int)
    def on_saved(self, *args) -> None:
        self.payloads.append(("saved", args))


def torch_objects(x, where: str = "", seen: set | None = None) -> list[str]:
    """Where a torch.Tensor or nn.Module sits inside ``x`` (dataclasses, containers, objects)."""
    seen = set() if seen is None else seen
    if id(x) in seen or isinstance(x, (str, bytes, int, float, bool, type(None))):
        return []
    seen.add(id(x))
    if isinstance(x, (torch.Tensor, torch.nn.Module)):
        return [where or "."]
    if isinstance(x, np.ndarray):
        return torch_objects(x.tolist(), where, seen) if x.dtype == object else []
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        items = [(f.name, getattr(x, f.name)) for f in dataclasses.fields(x)]
    elif isinstance(x, dict):
        items = [(repr(k), v) for k, v in x.items()]
    elif isinstance(x, (list, tuple, set, frozenset)):
        items = list(enumerate(x))
    elif hasattr(x, "__dict__"):
        items = list(vars(x).items())
    else:
        return []
    out = []
    for k, v in items:
        out += torch_objects(v, f"{where}.{k}", seen)
    return out


@pytest.fixture
def session(qtbot, tiny_models):
    s = Session(device="cpu")
    rec = Recorder(s.worker)
    s.prompt = "Hello"
    with qtbot.waitSignal(s.step_ready, timeout=20000):
        s.start(tiny_models["tiny"])
    yield s, rec
    s.close()


def test_a_bad_file_leaves_the_current_model_working(qtbot, session, tmp_path):
    s, _ = session
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a model" * 20)
    info, result, current = s.info, s.result, s.positional
    with qtbot.waitSignal(s.error, timeout=10000) as err:
        s.load_checkpoint(bad)
    title, text = err.args
    assert "open" in title.lower() and bad.name in text
    assert s.info is info and s.result is result and s.positional is current
    with qtbot.waitSignal(s.step_ready, timeout=10000):  # the previous model still steps
        s.step()
    assert s.result.n_generated == result.n_generated + 1 and s.info.name == "tiny"


def test_a_bad_file_opened_while_the_first_model_loads(qtbot, tiny_models, tmp_path):
    """The open may replace the start-up request still queued: a model is shown either way."""
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a model" * 20)
    s = Session(device="cpu")
    try:
        with qtbot.waitSignal(s.error, timeout=20000):
            s.start(tiny_models["tiny"])
            s.load_checkpoint(bad)
        qtbot.waitUntil(lambda: not s.loading and s.result is not None, timeout=20000)
        assert s.info is not None and s._opening is None
        with qtbot.waitSignal(s.step_ready, timeout=10000):
            s.step()
    finally:
        s.close()


def test_files_load_in_the_worker_thread(qtbot, session, tiny_models, monkeypatch):
    s, _ = session
    threads = []
    real = model.loading.load_checkpoint

    def recording(*a, **k):
        threads.append(threading.current_thread())
        return real(*a, **k)

    monkeypatch.setattr(model.loading, "load_checkpoint", recording)  # what open_model calls
    with qtbot.waitSignal(s.model_opened, timeout=10000) as opened:
        s.load_checkpoint(tiny_models["other"])
    assert opened.args == [tiny_models["other"]]
    assert threads and threading.main_thread() not in threads
    assert s.info.name == "other" and s.config.n_embd == 24 and s.result.text == "Hello"
    assert s.info.n_params == sum(p.numel() for p in load_checkpoint(tiny_models["other"])
                                  .model.parameters())


def test_a_training_snapshot_is_built_in_the_worker(qtbot, session, tiny_models, monkeypatch):
    s, _ = session
    ck = load_checkpoint(tiny_models["other"])
    snap = Snapshot(step=7, config=ck.model.config, tokenizer=ck.tokenizer,
                    state_dict=copy_state(ck.model))
    assert all(isinstance(v, np.ndarray) for v in snap.state_dict.values())  # no tensors
    threads = []
    real = Snapshot.build

    def recording(self, device="cpu"):
        threads.append(threading.current_thread())
        return real(self, device)

    monkeypatch.setattr(Snapshot, "build", recording)
    with qtbot.waitSignal(s.model_changed, timeout=10000):
        s.use_snapshot(snap, "tiny run @ step 7", {"steps": 7})
    assert threads and threading.main_thread() not in threads
    assert s.info.name == "tiny run @ step 7" and s.info.trained and s.info.path is None
    ref = ck.model.state_dict()
    copied = s.copy_weights().result(timeout=10)  # the worker's model, copied in its thread
    assert copied.config == ck.model.config and set(copied.state_dict) == set(ref)
    for k, v in copied.state_dict.items():
        torch.testing.assert_close(torch.from_numpy(v), ref[k])


def test_the_worker_emits_no_torch_objects(qtbot, session, tiny_models, tmp_path):
    s, rec = session
    with qtbot.waitSignal(s.step_ready, timeout=10000):
        s.step()
    with qtbot.waitSignal(s.model_opened, timeout=10000):
        s.load_checkpoint(tiny_models["abc"])
    with qtbot.waitSignal(s.error, timeout=10000):
        s.load_checkpoint(tmp_path / "missing.safetensors")
    with qtbot.waitSignal(s.model_saved, timeout=10000):
        s.save_checkpoint(tmp_path / "saved.safetensors")
    assert load_checkpoint(tmp_path / "saved.safetensors").tokenizer.vocab_size == 5
    # the recorder's slots are queued after the session's
    qtbot.waitUntil(lambda: any(k == "saved" for k, _ in rec.payloads), timeout=5000)
    kinds = {k for k, _ in rec.payloads}
    assert {"result_ready", "model_ready", "failed", "saved"} <= kinds
    for kind, args in rec.payloads:
        assert torch_objects(args) == [], kind
    assert not hasattr(s, "model")


class Answers(QObject):
    """Records what the worker emits; a GUI-thread slot, so it runs queued in this thread."""

    def __init__(self):
        super().__init__()
        self.results: list = []

    @Slot(object, int, str)
    def on_result(self, result, generation, kind) -> None:
        self.results.append((kind, result))


def test_set_sample_shows_what_the_worker_then_computes(qtbot, tiny_models):
    s = Session(device="cpu", sample=SampleConfig(temperature=1.3))  # seed None: the stepper's own
    s.prompt = "Hello there"
    answers = Answers()
    s.worker.result_ready.connect(answers.on_result)
    try:
        with qtbot.waitSignal(s.step_ready, timeout=20000):
            s.start(tiny_models["tiny"])
        for _ in range(3):
            with qtbot.waitSignal(s.step_ready, timeout=5000):
                s.step()
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.resample()
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.back()  # the next position now draws with index 1
        assert s.result.draw == 1
        drawn = s.result
        planned = set()
        for cfg in (SampleConfig(temperature=0.4), SampleConfig(temperature=2.5, top_k=5),
                    SampleConfig(temperature=1.0, top_p=0.5), SampleConfig(seed=3),
                    SampleConfig(temperature=0.0)):
            got = s.results_received
            with qtbot.assertNotEmitted(s.step_ready, wait=0):
                s.set_sample(cfg)
            shown = s.result
            assert shown.sample == cfg and shown.auto_seed == drawn.auto_seed
            qtbot.waitUntil(lambda got=got: s.results_received > got, timeout=5000)
            # under load an answer for the previous settings can still be on its way: wait for
            # the one for these settings
            qtbot.waitUntil(lambda cfg=cfg: answers.results[-1][0] == "Redistribute"
                            and answers.results[-1][1].sample == cfg, timeout=5000)
            worker = answers.results[-1][1]
            np.testing.assert_array_equal(shown.dist.probs, worker.dist.probs)
            assert (shown.planned, shown.draw, shown.seed) == \
                (worker.planned, worker.draw, worker.seed)
            assert s.result is shown  # the answer is not drawn again
            planned.add(shown.planned)
        assert len(planned) > 1  # the settings changed the plan: the comparison has teeth
        with qtbot.waitSignal(s.step_ready, timeout=5000):
            s.step()
        assert s.result.chosen == shown.planned == int(np.argmax(shown.logits))
    finally:
        s.close()


def test_a_copy_for_training_refuses_a_model_replaced_meanwhile(qtbot, session, tiny_models):
    """Training plans for the model shown; if another one is current when the worker gets to
    the copy, the run is told so instead of training weights it was not planned for."""
    s, _ = session
    with qtbot.waitSignal(s.model_opened, timeout=10000):
        s.load_checkpoint(tiny_models["other"])  # handled first: the copy finds another model
        reply = s.copy_weights()
    with pytest.raises(RuntimeError, match="changed"):
        reply.result(timeout=10)
    copied = s.copy_weights().result(timeout=10)  # the model shown now
    assert copied.config == s.config and copied.tokenizer.vocab_size == s.tokenizer.vocab_size
