"""The Session directly (no window): moving a sampling setting shows at once what the worker's
stepper then computes, by the one rule (model.sampling.next_token), with the seed the result
carries; the worker's answer changes nothing shown."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Slot

from explorer.session import Session
from model.config import SampleConfig


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
            qtbot.waitUntil(lambda: answers.results[-1][0] == "Redistribute", timeout=5000)
            worker = answers.results[-1][1]
            assert worker.sample == cfg
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
