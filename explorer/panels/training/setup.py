"""The training dock's form: corpus, model (presets or custom) and training settings.

Presets show their parameter count and a measured time per 1,000 steps (a few steps of each are
timed in the background on first show, see :class:`explorer.training_worker.SpeedProbe`). What is
wrong with the values is shown in red under the form (:meth:`SetupForm.show_error`); the checks
themselves live in :mod:`.training_plan`.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.panels.training.plan import FormValues, fmt_duration, fmt_params, train_flops
from explorer.theme import THEME
from explorer.training_worker import SpeedProbe
from model.config import ModelConfig
from model.corpora import task_tokenizer

TASK_SOURCES = ("copy", "induction", "reverse", "sort")

#: the model kinds the dock trains: label and what the kind learns
MODEL_KINDS: dict[str, tuple[str, str, str]] = {
    "decoder": ("Decoder (GPT)", "predicts the next token",
                "A decoder (GPT) predicts the next token from the tokens before it: causal "
                "self-attention, each position sees only the positions before it."),
    "encoder-decoder": ("Encoder–decoder (seq2seq)", "turns a source into a target",
                        "An encoder–decoder (Vaswani et al. 2017) reads a source with an "
                        "encoder and writes the target token by token, looking back at the "
                        "source through cross-attention. Its score: exact match of held-out "
                        "pairs it never trains on."),
    "encoder": ("Encoder (BERT-style)", "fills in masked tokens",
                "A BERT-style encoder (Devlin et al. 2019) fills in hidden [MASK] tokens from "
                "both sides: self-attention without a causal mask. Its score: masked-token "
                "accuracy on held-out text."),
}
#: what each kind can be trained on: (label, source) with source "task:NAME", "file", "current"
#: or "sample" (the text that ships with the package, model.shipped.resolve_corpus("sonnets"))
KIND_SOURCES: dict[str, list[tuple[str, str]]] = {
    "decoder": [(f"Task: {t}", f"task:{t}") for t in TASK_SOURCES]
    + [("Text file…", "file"), ("The loaded model's corpus", "current")],
    "encoder-decoder": [("Task: reverse (abcd → dcba)", "task:reverse"),
                        ("Task: sort (dbca → abcd)", "task:sort"),
                        ("Task: copy (abcd → abcd)", "task:copy"),
                        ("Task: numbers to words (307 → three hundred seven)", "task:numbers"),
                        ("Task: dates (2024-03-07 → 7 March 2024)", "task:dates"),
                        ("Pairs file (source<TAB>target)…", "file")],
    "encoder": [("Sample text: 16 of Shakespeare's sonnets", "sample")]
    + [(f"Task: {t}", f"task:{t}") for t in TASK_SOURCES] + [("Text file…", "file")],
}

#: model presets: a 2-layer model is the smallest that can grow an induction head. "tiny" with the
#: defaults (batch 64, lr 3e-3, learned positions, 1,000 steps) learns the copy task in the app in
#: 30 s on the 2-core target machine: an induction head appears in layer 1 around step 300-500
#: (score 0.5), validation loss 2.54 -> 1.42 (the floor for block 32 is about 1.40)
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=4, n_embd=64, block_size=32),
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),
    "medium": dict(n_layer=6, n_head=6, n_embd=192, block_size=256),
}
PRESET_BATCH = {"tiny": 64, "small": 16, "medium": 12}
#: encoder-decoder presets (layers of each stack). The default, "tiny" with batch 64, lr 3e-3,
#: learned positions and 600 steps, learns task:reverse to 100 % exact match of the 2,000
#: held-out pairs at one torch thread on the 2-core target machine in 24 s of training in the
#: app at a load average of 2.5 (70-113 s at 7), with a cross-attention head of layer 1 on the
#: mirrored source letter (README, Training; the test
#: tests/explorer/test_training_kinds.py trains it for 150 steps). A block of 64 holds
#: every task's pairs (the longest number words have 42 characters).
SEQ2SEQ_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=4, n_embd=64, block_size=64),
    "small": dict(n_layer=3, n_head=4, n_embd=96, block_size=64),
}
#: BERT-style encoder presets (a window of block_size characters, 15 % of them to predict)
ENCODER_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=4, n_embd=64, block_size=64),
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
}
KIND_PRESETS = {"decoder": PRESETS, "encoder-decoder": SEQ2SEQ_PRESETS,
                "encoder": ENCODER_PRESETS}
KIND_BATCH = {"decoder": PRESET_BATCH, "encoder-decoder": {"tiny": 64, "small": 64},
              "encoder": {"tiny": 32, "small": 32}}
#: the training fields a kind starts with (the decoder's are the form's defaults). The encoder's
#: "tiny" on the sonnets sits at the always-a-space plateau (17 % masked-token accuracy) for
#: its first ~800 steps; 2,000 steps reach 44.6 % (78 s at one torch thread, headless, load
#: average 2-4; 1,000 steps: 18.8 %; 1,000 at lr 1e-3: 17.3 %)
KIND_TRAINING = {"decoder": dict(steps=1000, lr=3e-3), "encoder-decoder": dict(steps=600, lr=3e-3),
                 "encoder": dict(steps=2000, lr=3e-3)}


def preset_config(kind: str, name: str) -> ModelConfig:
    """A preset of ``kind`` as a config (for its parameter count): the copy task's vocabulary
    and the kind's special tokens."""
    vocab = task_tokenizer("copy").vocab_size
    extra = {"encoder-decoder": dict(pad_id=0, bos_id=1, eos_id=2),
             "encoder": dict(mask_id=0)}.get(kind, {})
    vocab += len(extra)
    return ModelConfig(kind=kind, vocab_size=vocab, **KIND_PRESETS[kind][name], **extra)


# -- the form ---------------------------------------------------------------------------------
def _compact(combo: QComboBox) -> None:
    """A combo box whose long item texts do not widen the form (the popup shows them whole)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(10)


class _Probe(QObject):
    timed = Signal(str, float)  # key, seconds per step (emitted from the pool thread)


class SetupForm(QWidget):
    """Corpus, model and training fields. ``changed`` fires on every edit."""

    changed = Signal()
    file_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._updating = False
        self.timings: dict[str, float] = {}  # preset key -> seconds per step (measured)
        self._probe: SpeedProbe | None = None  # the measurement running
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)

        # model kind: what the model learns, which decides what it can be trained on
        g = QGroupBox("Model kind")
        kv = QVBoxLayout(g)
        self.kind = QComboBox()
        for i, (key, (label, _, tip)) in enumerate(MODEL_KINDS.items()):
            self.kind.addItem(label, key)
            self.kind.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.kind.setToolTip("Decoder: GPT. Encoder–decoder: the original Transformer, trained "
                             "on source → target pairs. Encoder: BERT, trained to fill in "
                             "masked tokens.")
        _compact(self.kind)
        kv.addWidget(self.kind)
        self.kind_info = QLabel(MODEL_KINDS["decoder"][1])
        self.kind_info.setToolTip(MODEL_KINDS["decoder"][2])
        self.kind_info.setWordWrap(True)
        self.kind_info.setStyleSheet(f"color: {THEME.muted};")
        kv.addWidget(self.kind_info)
        lay.addWidget(g)

        # corpus
        g = QGroupBox("Corpus")
        f = QFormLayout(g)
        self.source = QComboBox()
        self._fill_sources("decoder")
        _compact(self.source)
        f.addRow("Train on", self.source)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("a UTF-8 text file")
        self.browse = QPushButton("Open…")
        self.browse.clicked.connect(self.file_requested)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        self.path_row = QWidget()
        self.path_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        f.addRow("File", self.path_row)
        tok_row = QHBoxLayout()
        tok_row.setContentsMargins(0, 0, 0, 0)
        self.tokens = QComboBox()
        self.tokens.addItem("characters", "char")
        self.tokens.addItem("byte-level BPE", "bpe")
        self.tokens.setToolTip("How a text file is cut into tokens for a new model: one token "
                               "per character, or a byte-level BPE (as GPT-2) learned from the "
                               "text with this many tokens (python -m model train --tokenizer "
                               "bpe:VOCAB)")
        _compact(self.tokens)
        self.bpe_vocab = self._spin(260, 65_536, 2000)
        self.bpe_vocab.setSingleStep(500)
        self.bpe_vocab.setSuffix(" tokens")
        self.bpe_vocab.setToolTip("Vocabulary size of the BPE: 256 bytes, then the merges "
                                  "learned from the text, then <|endoftext|>")
        tok_row.addWidget(self.tokens)
        tok_row.addWidget(self.bpe_vocab, 1)  # the count stays readable in a narrow dock
        self.tokens_row = QWidget()
        self.tokens_row.setLayout(tok_row)
        f.addRow("Tokens", self.tokens_row)
        self._corpus_form = f
        self.corpus_info = QLabel("")
        self.corpus_info.setWordWrap(True)
        self.corpus_info.setStyleSheet(f"color: {THEME.muted};")
        f.addRow(self.corpus_info)
        lay.addWidget(g)

        # model
        g = QGroupBox("Model")
        v = QVBoxLayout(g)
        self.new_model = QRadioButton("Train a new model")
        self.cont_model = QRadioButton("Continue the loaded model")
        self.new_model.setChecked(True)
        bg = QButtonGroup(self)
        bg.addButton(self.new_model)
        bg.addButton(self.cont_model)
        v.addWidget(self.new_model)
        v.addWidget(self.cont_model)
        f = QFormLayout()
        self.preset = QComboBox()
        self._fill_presets("decoder")
        _compact(self.preset)
        f.addRow("Preset", self.preset)
        v.addLayout(f)
        grid = QGridLayout()
        self.layers = self._spin(1, 48, 2)
        self.heads = self._spin(1, 64, 4)
        self.width = self._spin(1, 4096, 64)
        self.block = self._spin(1, 4096, 32)
        self.pos = QComboBox()
        self.pos.addItems(["learned", "sinusoidal", "rotary", "none"])
        self.norm = QComboBox()
        self.norm.addItems(["pre", "post"])
        self.dropout = QDoubleSpinBox()
        self.dropout.setRange(0.0, 0.99)
        self.dropout.setSingleStep(0.05)
        self.dropout.setDecimals(2)
        self.layers.setToolTip("transformer blocks (an encoder–decoder has this many in each "
                               "stack)")
        cells = [("Layers", self.layers), ("Heads", self.heads), ("Width", self.width),
                 ("Block", self.block), ("Positions", self.pos), ("Norm", self.norm),
                 ("Dropout", self.dropout)]
        tips = {"Width": "n_embd: size of each token's vector", "Block": "block size: the "
                "longest context the model sees", "Positions": "how positions are encoded",
                "Norm": "layer norm before (pre, GPT-2) or after (post, Vaswani) each sublayer"}
        for i, (label, w) in enumerate(cells):
            lab = QLabel(label)
            if label in tips:
                lab.setToolTip(tips[label])
                w.setToolTip(tips[label])
            w.setMinimumWidth(60)
            grid.addWidget(lab, i // 2, 2 * (i % 2))
            grid.addWidget(w, i // 2, 2 * (i % 2) + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        v.addLayout(grid)
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        self.model_info.setStyleSheet(f"color: {THEME.muted};")
        v.addWidget(self.model_info)
        lay.addWidget(g)

        # training
        g = QGroupBox("Training")
        f = QFormLayout(g)
        self.steps = self._spin(1, 10_000_000, 1000)
        self.steps.setSingleStep(100)
        self.batch = self._spin(1, 4096, 64)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.0, 10.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(3e-3)
        self.seed = self._spin(0, 2**31 - 1, 1337)
        self.seed.setGroupSeparatorShown(False)
        self.device = QComboBox()
        self.device.addItem("auto", "auto")
        _compact(self.device)
        self.sample_every = self._spin(0, 1_000_000, 0)
        self.sample_every.setSpecialValueText("auto")
        self.sample_every.setSuffix(" steps")
        self.attention_every = self._spin(0, 1_000_000, 0)
        self.attention_every.setSpecialValueText("auto")
        self.attention_every.setSuffix(" steps")
        f.addRow("Steps", self.steps)
        f.addRow("Batch size", self.batch)
        f.addRow("Learning rate", self.lr)
        f.addRow("Seed", self.seed)
        f.addRow("Device", self.device)
        f.addRow("Sample every", self.sample_every)
        f.addRow("Attention every", self.attention_every)
        row = QHBoxLayout()
        self.out_path = QLineEdit()
        self.out_path.setPlaceholderText("new file in the runs folder")
        self.out_path.setToolTip("Where the checkpoint is saved (on Stop, at the end and every "
                                 "10 % of the steps); empty = a new file per run")
        self.out_browse = QPushButton("…")
        self.out_browse.setToolTip("Choose where to save the checkpoint")
        self.out_browse.clicked.connect(self._choose_out)
        row.addWidget(self.out_path, 1)
        row.addWidget(self.out_browse)
        f.addRow("Save to", row)
        lay.addWidget(g)

        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setStyleSheet(f"color: {THEME.bad}; font-weight: bold;")
        self.error.hide()
        lay.addWidget(self.error)

        for w in (self.source, self.preset, self.pos, self.norm, self.device, self.tokens):
            w.currentIndexChanged.connect(self._on_edit)
        self.kind.currentIndexChanged.connect(self._on_kind)
        for w in (self.layers, self.heads, self.width, self.block, self.steps, self.batch,
                  self.bpe_vocab, self.seed, self.sample_every, self.attention_every, self.dropout, self.lr):
            w.valueChanged.connect(self._on_edit)
        self.path.textChanged.connect(self._on_edit)
        self.out_path.textChanged.connect(self._on_edit)
        self.new_model.toggled.connect(self._on_edit)
        self.preset.currentIndexChanged.connect(self._on_preset)
        self._label_device: str | None = None  # the device the preset labels are timed on
        self._probing = False
        self._probe_sink = _Probe(self)
        self._probe_sink.timed.connect(self._on_timed)
        self._on_preset()
        self._on_edit()

    @staticmethod
    def _spin(lo: int, hi: int, value: int) -> QSpinBox:
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setValue(value)
        s.setGroupSeparatorShown(hi >= 10_000)
        s.setKeyboardTracking(False)
        return s

    # -- values --------------------------------------------------------------------------------
    def values(self) -> FormValues:
        return FormValues(
            source=self.source.currentData(), path=self.path.text().strip(),
            continue_model=self.cont_model.isChecked(), preset=self.preset.currentData(),
            layers=self.layers.value(), heads=self.heads.value(), width=self.width.value(),
            block=self.block.value(), pos=self.pos.currentText(), norm=self.norm.currentText(),
            dropout=float(self.dropout.value()), steps=self.steps.value(),
            batch=self.batch.value(), lr=float(self.lr.value()), seed=self.seed.value(),
            device=self.device.currentData() or "auto", sample_every=self.sample_every.value(),
            attention_every=self.attention_every.value(), out_path=self.out_path.text().strip(),
            tokenizer=self.tokenizer_spec(), kind=self.kind_name())

    def kind_name(self) -> str:
        """``decoder``, ``encoder-decoder`` or ``encoder`` (ModelConfig.kind)."""
        return self.kind.currentData() or "decoder"

    def set_kind(self, kind: str) -> None:
        i = self.kind.findData(kind)
        if i >= 0:
            self.kind.setCurrentIndex(i)

    def can_continue(self, has_model: bool) -> bool:
        """Whether "Continue the loaded model" is offered: a model is loaded and the kind is a
        decoder (the encoder kinds are trained anew, as with python -m model train)."""
        return has_model and self.kind_name() == "decoder"

    def _fill_sources(self, kind: str) -> None:
        """The corpus choices of ``kind``: its first (default) one chosen, or a file when a
        file was chosen."""
        current = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        for label, data in KIND_SOURCES[kind]:
            self.source.addItem(label, data)
        self.source.setCurrentIndex(self.source.findData("file") if current == "file" else 0)
        self.source.blockSignals(False)
        tips = {"decoder": "Synthetic tasks have a known answer (see the Attention tab); a "
                           "UTF-8 text file can also be dropped onto this panel.",
                "encoder-decoder": "Pairs the model learns to map; a UTF-8 file of "
                                   "source<TAB>target lines (one pair a line) can also be "
                                   "dropped onto this panel.",
                "encoder": "The text whose hidden characters the model learns to fill in; a "
                           "UTF-8 text file can also be dropped onto this panel."}
        self.source.setToolTip(tips[kind])

    def _fill_presets(self, kind: str) -> None:
        self.preset.blockSignals(True)
        self.preset.clear()
        for name in KIND_PRESETS[kind]:
            self.preset.addItem(name, name)
        self.preset.addItem("custom", "custom")
        self.preset.setCurrentIndex(0)
        self.preset.blockSignals(False)

    def tokenizer_spec(self) -> str:
        """``char`` or ``bpe:VOCAB``, as ``python -m model train --tokenizer`` takes it (a
        synthetic task always has its own character tokens)."""
        if self.tokens.currentData() == "char" or str(self.source.currentData()).startswith(
                "task:") or self.kind_name() != "decoder":
            return "char"
        return f"bpe:{self.bpe_vocab.value()}"

    def set_source(self, source: str, path: str | None = None) -> None:
        i = self.source.findData(source)
        if i >= 0:
            self.source.setCurrentIndex(i)
        if path is not None:
            self.path.setText(path)

    def set_model_fields(self, cfg) -> None:
        """Show a config in the model fields (a preset or the loaded model)."""
        self._updating = True
        try:
            self.layers.setValue(cfg["n_layer"] if isinstance(cfg, dict) else cfg.n_layer)
            get = (lambda k: cfg[k]) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k))
            self.heads.setValue(get("n_head"))
            self.width.setValue(get("n_embd"))
            self.block.setValue(get("block_size"))
            if not isinstance(cfg, dict):
                self.pos.setCurrentText(cfg.pos_kind)
                self.norm.setCurrentText(cfg.norm)
                self.dropout.setValue(cfg.dropout)
        finally:
            self._updating = False

    def set_devices(self, devices: list[tuple[str, str]]) -> None:
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItem("auto", "auto")
        for name, desc in devices:
            self.device.addItem(desc if desc.lower() != name else name, name)
        self.device.blockSignals(False)

    def set_running(self, running: bool) -> None:
        for w in (self.kind, self.source, self.path_row, self.new_model, self.cont_model,
                  self.preset,
                  self.steps, self.batch, self.lr, self.seed, self.device, self.sample_every,
                  self.attention_every, self.out_path, self.out_browse):
            w.setEnabled(not running)
        self._update_model_enabled(running)

    def _update_model_enabled(self, running: bool = False) -> None:
        custom = self.preset.currentData() == "custom" and not self.cont_model.isChecked()
        for w in (self.layers, self.heads, self.width, self.block, self.pos, self.norm,
                  self.dropout):
            w.setEnabled(custom and not running)
        self.preset.setEnabled(not self.cont_model.isChecked() and not running)

    def show_error(self, text: str | None) -> None:
        self.error.setText(text or "")
        self.error.setVisible(bool(text))

    # -- slots ---------------------------------------------------------------------------------
    @Slot()
    def _on_preset(self) -> None:
        name = self.preset.currentData()
        kind = self.kind_name()
        if name in KIND_PRESETS[kind]:
            self.set_model_fields(KIND_PRESETS[kind][name])
            self._updating = True
            self.batch.setValue(KIND_BATCH[kind][name])
            self._updating = False
        self._update_model_enabled()
        self.changed.emit()

    @Slot()
    def _on_kind(self) -> None:
        """A new kind: its corpus choices, presets (the default one chosen) and training
        defaults; the encoder kinds are always trained anew."""
        kind = self.kind_name()
        self.kind_info.setText(MODEL_KINDS[kind][1])
        self.kind_info.setToolTip(MODEL_KINDS[kind][2])
        self._updating = True
        try:
            self._fill_sources(kind)
            self._fill_presets(kind)
            if kind != "decoder":
                self.new_model.setChecked(True)
                self.pos.setCurrentText("learned")  # cross-attention has no rotation
            for field, value in KIND_TRAINING[kind].items():
                getattr(self, field).setValue(value)
            self.path.setPlaceholderText("a UTF-8 file of source<TAB>target lines"
                                         if kind == "encoder-decoder" else "a UTF-8 text file")
        finally:
            self._updating = False
        self.cont_model.setEnabled(self.cont_model.isEnabled() and kind == "decoder")
        self._refresh_preset_labels(self._label_device)
        self._on_preset()
        self._on_edit()

    @Slot()
    def _on_edit(self, *_: object) -> None:
        self._corpus_form.setRowVisible(self.path_row, self.source.currentData() == "file")
        # a tokenizer is chosen for a new model on text; tasks and the loaded model bring theirs
        text = not str(self.source.currentData()).startswith("task:")
        self._corpus_form.setRowVisible(self.tokens_row, text and self.kind_name() == "decoder")
        self.tokens.setEnabled(not self.cont_model.isChecked())
        self.bpe_vocab.setEnabled(self.tokens.currentData() == "bpe" and self.tokens.isEnabled())
        self._update_model_enabled()
        if not self._updating:
            self.changed.emit()

    @Slot()
    def _choose_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the trained model to", "",
                                              "Model (*.safetensors)")
        if path:
            if not path.endswith(".safetensors"):
                path += ".safetensors"
            self.out_path.setText(path)

    # -- speed estimates -----------------------------------------------------------------------
    def measure_presets(self, vocab_size: int, device: str) -> None:
        """Time a few steps of each preset in the background (once per batch and device)."""
        jobs = []
        self._label_device = device
        for name, kw in PRESETS.items():
            cfg = ModelConfig(vocab_size=vocab_size, **kw)
            key = f"{name}|{PRESET_BATCH[name]}|{device}"
            if key not in self.timings:
                jobs.append((key, cfg, PRESET_BATCH[name], device))
        self._refresh_preset_labels(device)
        if jobs and not self._probing:
            self._probing = True
            self._probe = SpeedProbe(jobs, self._probe_sink)
            QThreadPool.globalInstance().start(self._probe)

    def cancel_measurement(self) -> None:
        probe = self._probe
        if probe is not None:
            probe.cancel()

    @Slot(str, float)
    def _on_timed(self, key: str, seconds: float) -> None:
        if key == "done":
            self._probing = False
            return
        if key == "error" or not math.isfinite(seconds):
            return
        self.timings[key] = seconds
        self._refresh_preset_labels(key.split("|")[2])
        self.changed.emit()

    def _refresh_preset_labels(self, device: str | None) -> None:
        """Each preset's parameter count and, for the decoder presets (timed in the
        background), the time per 1,000 steps."""
        kind = self.kind_name()
        for i in range(self.preset.count()):
            name = self.preset.itemData(i)
            if name not in KIND_PRESETS[kind]:
                continue
            text = f"{name} — {fmt_params(preset_config(kind, name).n_params())} params"
            if kind == "decoder" and device is not None:
                t = self.timings.get(f"{name}|{PRESET_BATCH[name]}|{device}")
                text += f", ~{fmt_duration(1000 * t)} per 1,000 steps" if t else ", timing…"
            self.preset.setItemText(i, text)

    def seconds_per_step(self, cfg, batch: int, device: str) -> float | None:
        """Measured for a preset at its batch size; otherwise scaled by FLOPs from the nearest
        measured preset (CPU time of these small models grows about linearly with FLOPs).
        None for the encoder kinds (their steps are not timed)."""
        if cfg.kind != "decoder":
            return None
        best = None
        for name, kw in PRESETS.items():
            key = f"{name}|{PRESET_BATCH[name]}|{device}"
            t = self.timings.get(key)
            if t is None:
                continue
            ref = ModelConfig(vocab_size=cfg.vocab_size, **kw)
            ratio = train_flops(cfg, batch) / train_flops(ref, PRESET_BATCH[name])
            score = abs(math.log(max(ratio, 1e-9)))
            if best is None or score < best[0]:
                best = (score, t * ratio)
        return None if best is None else best[1]


__all__ = ["PRESETS", "PRESET_BATCH", "TASK_SOURCES", "MODEL_KINDS", "KIND_SOURCES",
           "SEQ2SEQ_PRESETS", "ENCODER_PRESETS", "KIND_PRESETS", "KIND_BATCH", "KIND_TRAINING",
           "preset_config", "SetupForm"]
