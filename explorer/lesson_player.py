"""Playing a lesson (File → Open lesson, ``--lesson FILE [--slide N]``) and recording one.

The :class:`LessonPlayer` replays a slide in order: open its model (in the inference worker, as
every model is), set the sampling settings and the prompt, force or draw its tokens, then bring
its panel, view, layer, head and stage to the front and apply its highlight. ``slide_shown``
fires once that state is reached. The :class:`NarrationPane` (the "Lesson" dock) shows the
slide's Markdown narration and its *predict first* question: the class picks a choice, the next
key (PageDown, what clickers send, or the Next button) reveals the answer and counts the pick.

:func:`show_view` is shared with Help → Concepts, which jumps to the panel showing a concept.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from explorer.lesson_file import Highlight, Lesson, LessonError, Question, Slide, ViewSpec
from explorer.presenter import HINT
from explorer.theme import THEME, css_pt
from model import shipped
from model.config import SampleConfig
from model.step_result import StepResult
from model.tokenizer import MASK_CHAR, MASK_TEXT

if TYPE_CHECKING:
    from explorer.main_window import MainWindow

#: the lesson file's panel names → dock titles
DOCKS = {"next token": "Next token", "attention": "Attention",
         "positional encoding": "Positional encoding", "architecture": "Architecture",
         "training": "Training"}
TRAINING_TABS = {"samples": 0, "film": 1}
#: the presenter's keys line while a lesson plays (no longer than its own: it keeps one line)
LESSON_HINT = ("PageDown / PageUp: next / previous slide \u00b7 \u2192 / \u2190: step \u00b7 "
               "1\u20135: panel \u00b7 B: blank \u00b7 F5: leave presenter mode")


def show_view(window: MainWindow, spec: ViewSpec) -> str:
    """Bring ``spec``'s panel to the front with its view, layer, head and stage. Returns "" or
    a sentence saying what could not be shown (a layer the model lacks, an unknown block)."""
    title = DOCKS[spec.panel]
    if title not in window.docks:
        return f"this window has no {title} panel"
    window.show_panel(title)
    panel = window.panels[title]
    cfg = window.session.config
    if spec.panel == "next token":
        window.distribution_panel.controls.show_logits.setChecked(spec.view == "logits")
    elif spec.panel == "attention" and hasattr(panel, "open_head"):
        family = spec.family or "self"
        if family not in panel.families():
            return (f"\"family\" {family!r} needs an encoder-decoder; this model is "
                    f"{_a(cfg.kind if cfg is not None else 'decoder')}")
        n_layer, n_head = (cfg.n_layer, cfg.n_head) if cfg is not None else (1, 1)
        if family == "encoder":
            n_layer = cfg.n_enc_layer
        stack = "encoder " if family == "encoder" else (
            "decoder " if cfg is not None and cfg.kind == "encoder-decoder" else "")
        if spec.layer >= n_layer:
            return (f"\"layer\" is {spec.layer}, but the model has {n_layer} {stack}layers "
                    f"(0–{n_layer - 1})")
        if spec.head is not None and spec.head >= n_head:
            return f"\"head\" is {spec.head}, but the model has {n_head} heads (0–{n_head - 1})"
        if len(panel.families()) > 1:
            panel.set_family(family)
        panel.open_head(spec.layer, spec.head)
        panel.set_view(spec.view or "head")
        panel.set_stage(spec.stage)
    elif spec.panel == "positional encoding" and hasattr(panel, "set_view"):
        panel.set_view(spec.view or "matrix")
    elif spec.panel == "architecture" and hasattr(panel, "select_block"):
        if spec.view and panel.block(spec.view) is None:
            keys = [b.key for b in panel.anatomy.boxes()] if panel.anatomy is not None else []
            return (f"\"view\" {spec.view!r} is not a block of this model's diagram (blocks: "
                    f"{', '.join(keys[:12])}{', …' if len(keys) > 12 else ''})")
        panel.select_block(spec.view or None)
    elif spec.panel == "training" and hasattr(panel, "tabs"):
        panel.tabs.setCurrentIndex(TRAINING_TABS.get(spec.view, 0))
    return ""


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def current_view(window: MainWindow) -> ViewSpec:
    """The panel in front (the presenter's big panel, else the raised optional panel) and its
    view: what "Add slide from current view" records."""
    title = window.presenter.panel if window.presenter.active else ""
    if not title:
        for t in ("Attention", "Positional encoding", "Architecture", "Training"):
            d = window.docks.get(t)
            if d is not None and d.isVisible() and not d.visibleRegion().isEmpty():
                title = t
                break
    name = next((k for k, v in DOCKS.items() if v == title), "next token")
    panel = window.panels.get(title)
    if name == "attention" and hasattr(panel, "stage"):
        return ViewSpec(name, panel.view, panel.layer, None if panel.average else panel.head,
                        panel.stage, "" if panel.family == "self" else panel.family)
    if name == "positional encoding" and hasattr(panel, "view"):
        return ViewSpec(name, panel.view)
    if name == "architecture" and hasattr(panel, "selected"):
        return ViewSpec(name, panel.selected or "")
    if name == "training" and hasattr(panel, "tabs"):
        return ViewSpec(name, "film" if panel.tabs.currentIndex() == 1 else "samples")
    logits = window.distribution_panel.controls.show_logits.isChecked()
    return ViewSpec("next token", "logits" if logits else "probs")


class NarrationPane(QWidget):
    """The "Lesson" dock: slide title and number, the narration, the question and its choices,
    the score, and Previous / Next."""

    picked = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.heading.setTextFormat(Qt.TextFormat.PlainText)
        root.addWidget(self.heading)
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        self.text.setMinimumHeight(80)
        root.addWidget(self.text, 1)
        # one row under the text: back, the choices, the score, on (a projector has few lines)
        nav = QHBoxLayout()
        self.prev_button = QPushButton("\u25c0")
        self.prev_button.setToolTip("Previous slide (PageUp)")
        nav.addWidget(self.prev_button)
        self.choices_row = QWidget()
        self.choices_layout = QHBoxLayout(self.choices_row)
        self.choices_layout.setContentsMargins(0, 0, 0, 0)
        self.choice_group = QButtonGroup(self)
        self.choice_group.setExclusive(True)
        self.choice_buttons: list[QPushButton] = []
        nav.addWidget(self.choices_row, 1)
        self.score = QLabel()
        nav.addWidget(self.score)
        self.next_button = QPushButton("Next \u25b6")
        self.next_button.setToolTip("Reveal the answer, then the next slide (PageDown)")
        nav.addWidget(self.next_button)
        root.addLayout(nav)
        self.setMinimumWidth(220)

    def show_slide(self, lesson: Lesson, index: int, markdown: str, question: Question | None,
                   picked: str | None, revealed: bool, score: str) -> None:
        s = lesson.slides[index]
        self.heading.setText(f"{index + 1}/{len(lesson.slides)}"
                             + (f" \u00b7 {s.title}" if s.title else ""))
        self.heading.setToolTip(lesson.title)
        self.heading.setStyleSheet(f"font-weight: bold; font-size: {css_pt(THEME.font_pt + 1)};")
        self.text.setMarkdown(markdown)
        for b in self.choice_buttons:
            self.choice_group.removeButton(b)
            b.deleteLater()
        self.choice_buttons = []
        if question is not None:
            for c in question.choices:
                b = QPushButton(c)
                b.setCheckable(True)
                b.setChecked(c == picked)
                b.setEnabled(not revealed)
                b.clicked.connect(lambda _c=False, c=c: self.picked.emit(c))
                self.choice_group.addButton(b)
                self.choices_layout.addWidget(b)
                self.choice_buttons.append(b)
        self.choices_row.setVisible(question is not None)
        self.score.setText(score)
        self.score.setVisible(bool(score))
        self.prev_button.setEnabled(index > 0)
        last = index == len(lesson.slides) - 1
        self.next_button.setText("Reveal \u25b6" if question is not None and not revealed
                                 else ("The end" if last else "Next \u25b6"))
        self.next_button.setEnabled(not last or (question is not None and not revealed))


class LessonPlayer(QObject):
    """Plays a :class:`Lesson` in ``window``; records slides from the current view."""

    slide_shown = Signal(int)  # the slide's model, tokens, panel and view are on screen
    failed = Signal(str)  # a slide could not be shown (the message names slide and field)

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.lesson: Lesson | None = None
        self.index = -1
        self.state = "idle"  # loading | stepping | panels | shown
        self.picked: str | None = None
        self.revealed = False
        self.right = 0
        self.answered = 0
        self._counted: set[int] = set()  # slides whose pick was counted (going back keeps it)
        self._target: list[int] | None = None  # ids the window must end with (forced slides)
        self._n_generated = 0
        self._prompt_ids: list[int] = []
        self._kind = "decoder"  # the slide's model's kind (ModelConfig.kind)
        self._asked: set[object] = set()
        self._queue: list[int | None] = []  # the slide's tokens still to step (None: sampled)
        self._issued = 0
        self._saved_keys: list[tuple[QAction, list[QKeySequence]]] = []
        self.pane = NarrationPane()
        self.pane.picked.connect(self.pick)
        self.pane.prev_button.clicked.connect(self.previous)
        self.pane.next_button.clicked.connect(self.next)
        self.dock = None
        self.act_next = QAction("Next slide", window)
        self.act_next.setShortcut(QKeySequence("PgDown"))
        self.act_next.triggered.connect(self.next)
        self.act_prev = QAction("Previous slide", window)
        self.act_prev.setShortcut(QKeySequence("PgUp"))
        self.act_prev.triggered.connect(self.previous)
        for a in (self.act_next, self.act_prev):
            a.setEnabled(False)
            window.addAction(a)
        self.session.step_ready.connect(self._on_step)
        self.session.model_opened.connect(self._on_model_opened)
        self.session.error.connect(self._on_error)
        window.panels_loaded.connect(self._after_panels_loaded)

    # -- opening and closing ------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.lesson is not None

    def open(self, lesson: Lesson, index: int = 0) -> None:
        if not 0 <= index < len(lesson.slides):
            raise LessonError(f"{lesson.path or lesson.title}: there is no slide {index + 1} "
                              f"(the lesson has {len(lesson.slides)})")
        self.lesson = lesson
        self.right = self.answered = 0
        self._counted.clear()
        self.dock = self.window.lesson_dock(self.pane)
        self.dock.setWindowTitle(f"Lesson \u2014 {lesson.title}")
        self.dock.setProperty("presenter_keep", True)
        self.dock.show()
        self._take_page_keys(True)
        self.go(index)

    def close(self) -> None:
        self.lesson = None
        self.index = -1
        self.state = "idle"
        self._take_page_keys(False)
        if self.dock is not None:
            self.dock.setProperty("presenter_keep", False)
            self.dock.hide()

    def _take_page_keys(self, on: bool) -> None:
        """While a lesson plays, PageDown/PageUp (a clicker) move between slides instead of
        stepping tokens (→ / ← still step); the presenter's keys line says so."""
        p = self.window.prompt_panel
        self.window.presenter.hint.setText(LESSON_HINT if on else HINT)
        if on and not self._saved_keys:
            for a in (p.act_step, p.act_back):
                keys = a.shortcuts()
                self._saved_keys.append((a, keys))
                a.setShortcuts([k for k in keys if k.toString() not in ("PgDown", "PgUp")])
        elif not on:
            for a, keys in self._saved_keys:
                a.setShortcuts(keys)
            self._saved_keys = []
        for a in (self.act_next, self.act_prev):
            a.setEnabled(on)

    # -- moving -------------------------------------------------------------------------------
    @Slot()
    def next(self) -> None:
        """Reveal the answer of a pending question, else go to the next slide."""
        if self.lesson is None:
            return
        q = self.slide.question
        if q is not None and not self.revealed:
            self.reveal()
        elif self.index + 1 < len(self.lesson.slides):
            self.go(self.index + 1)

    @Slot()
    def previous(self) -> None:
        if self.lesson is not None and self.index > 0:
            self.go(self.index - 1)

    @property
    def slide(self) -> Slide:
        assert self.lesson is not None
        return self.lesson.slides[self.index]

    def go(self, index: int) -> None:
        assert self.lesson is not None
        self.index = index
        self.picked = None
        self.revealed = index in self._counted
        self._show_text()
        path = self.lesson.model_path(self.slide)
        info = self.session.info
        if info is None or info.path is None or not _same_file(info.path, path):
            self.state = "loading"
            self.session.load_checkpoint(path)
        else:
            self._set_text()

    def _where(self) -> str:
        name = self.lesson.path.name if self.lesson and self.lesson.path else "lesson"
        return f"{name}: slide {self.index + 1}"

    def _set_text(self) -> None:
        s, tok, cfg = self.slide, self.session.tokenizer, self.session.config
        if tok is None or cfg is None:
            return
        kind = cfg.kind
        if s.family in ("encoder", "cross") and kind != "encoder-decoder":
            self._fail(f"\"family\" {s.family!r} needs an encoder-decoder; this model is "
                       f"{_a(kind)}")
            return
        if (s.mask or s.causal) and kind != "encoder":
            field = "mask" if s.mask else "causal"
            self._fail(f"\"{field}\" needs an encoder (BERT-style); this model is {_a(kind)}")
            return
        if kind == "encoder" and (s.forced_ids or s.forced_text or s.steps):
            self._fail("an encoder does not generate: leave out \"forced_ids\", "
                       "\"forced_text\" and \"steps\" (\"mask\" hides tokens instead)")
            return
        text = s.prompt.replace(MASK_TEXT, MASK_CHAR) if kind == "encoder" else s.prompt
        bad = tok.unknown(text)
        if bad:
            self._fail(f"\"prompt\" has characters this model does not know: "
                       f"{''.join(sorted({u.char for u in bad}))!r}")
            return
        ids = list(s.forced_ids)
        if s.forced_text:
            if tok.unknown(s.forced_text):
                self._fail("\"forced_text\" has characters this model does not know")
                return
            ids = tok.encode(s.forced_text)
        too_big = [i for i in ids if i >= tok.vocab_size]
        if too_big:
            self._fail(f"\"forced_ids\" has token {too_big[0]}, but the model's vocabulary has "
                       f"{tok.vocab_size} tokens (0–{tok.vocab_size - 1})")
            return
        prompt_ids = tok.encode(text)
        if kind == "encoder" and s.mask and max(s.mask) >= min(len(prompt_ids), cfg.block_size):
            n = min(len(prompt_ids), cfg.block_size)
            self._fail(f"\"mask\" has position {max(s.mask)}, but the text has {n} tokens "
                       f"(0–{n - 1})")
            return
        self._kind = kind
        # an encoder-decoder's prompt is the source; its window holds the target from <bos>
        self._target = None if s.steps else (
            [cfg.bos_id] + ids if kind == "encoder-decoder" else prompt_ids + ids)
        self._prompt_ids = prompt_ids
        self._n_generated = s.steps or len(ids)
        # one step at a time, each after the previous result: the worker drops steps beyond
        # a few pending ones (held-down keys), and a slide must get every one of its tokens
        self._queue = list(ids) if ids else [None] * s.steps
        self._issued = 0
        self._asked: set[object] = set()  # an encoder's mask positions / causal view asked for
        self.state = "stepping"
        self.window.prompt_panel.set_prompt_text(s.prompt)
        # after the prompt: a new prompt supersedes the requests still waiting in the worker,
        # and the new sampling settings must not be among them
        self.session.set_sample(SampleConfig(temperature=s.temperature, top_k=s.top_k,
                                             top_p=s.top_p, seed=s.seed))

    def _on_prompt(self, r: StepResult) -> bool:
        """``r`` is about the slide's prompt (the source of an encoder-decoder, the text of an
        encoder before its masks), not a result still on its way from before."""
        n = len(self._prompt_ids)
        if self._kind == "encoder-decoder":
            return r.source_ids is not None and \
                [int(x) for x in r.source_ids[:n]] == self._prompt_ids
        if r.cropped:
            return True
        ids = r.original_ids if self._kind == "encoder" and r.original_ids is not None else r.ids
        if self._kind == "encoder":
            return [int(x) for x in ids] == self._prompt_ids
        return [int(x) for x in ids[:n]] == self._prompt_ids

    def _reached(self, r: StepResult) -> bool:
        if r.n_generated != self._n_generated or not self._on_prompt(r):
            return False
        ids = [int(x) for x in r.ids]
        if self._kind == "encoder":
            s = self.slide
            return bool(r.causal_view) == s.causal and set(s.mask) <= set(r.masked_positions) \
                and (not s.mask or r.predicted_at == s.mask[-1])
        if r.cropped:  # a long text: its end must match
            want = self._target[-len(ids):] if self._target is not None else None
            return want is None or want == ids
        if self._target is not None:
            return ids == self._target
        return True

    def _encoder_next(self, r: StepResult) -> None:
        """An encoder's slide: the causal view, then each masked position, one at a time."""
        s = self.slide
        if bool(r.causal_view) != s.causal:
            if "causal" not in self._asked:
                self._asked.add("causal")
                self.session.set_causal_view(s.causal)
            return
        for p in s.mask:
            if p not in r.masked_positions and p not in self._asked:
                self._asked.add(p)
                self.session.toggle_mask(p)
                return

    @Slot(object)
    def _on_step(self, r: StepResult) -> None:
        if self.state != "stepping":
            return
        if self._kind == "encoder" and not self._reached(r):
            if r.n_generated == 0 and self._on_prompt(r):
                self._encoder_next(r)
            return
        if self._issued < len(self._queue):
            on_track = r.n_generated == self._issued and self._on_prompt(r)
            if on_track:
                force = self._queue[self._issued]
                self._issued += 1
                self.session.step(force=force)
        elif self._reached(r):
            self.state = "panels"
            self._on_panels_loaded()

    @Slot()
    def _after_panels_loaded(self) -> None:
        # the window sizes and raises its default docks in the next event-loop turn: the
        # slide's panel comes to the front after that
        QTimer.singleShot(0, self._on_panels_loaded)

    @Slot()
    def _on_panels_loaded(self) -> None:
        if self.state != "panels" or self.window.panels_pending:
            return  # the panels are built after the first result: the view waits for them
        s = self.slide
        problem = show_view(self.window, ViewSpec(s.panel, s.view, s.layer, s.head, s.stage,
                                                  s.family))
        cfg, h = self.session.config, s.highlight
        n_layer = (cfg.n_enc_layer if s.family == "encoder" else cfg.n_layer) if cfg else 0
        if not problem and cfg is not None and h.head is not None \
                and not (h.head[0] < n_layer and h.head[1] < cfg.n_head):
            problem = (f"highlight \"head\" is {list(h.head)}, but the model has {n_layer} "
                       f"layers of {cfg.n_head} heads")
        if problem:
            self._fail(problem)
            return
        self._highlight(s)
        self.window.lesson_dock(self.pane)  # the presenter's panel keys may have moved it
        self.window.prompt_panel.leave_editor()  # the stepping keys work at once
        self.state = "shown"
        self.dock.show()
        self.dock.raise_()
        self.slide_shown.emit(self.index)

    def _highlight(self, s: Slide) -> None:
        h, r = s.highlight, self.session.result
        if r is None:
            return
        if h.head is not None and "Attention" in self.window.panels:
            attention = self.window.panels["Attention"]
            if hasattr(attention, "open_head"):
                attention.open_head(*h.head)
        family = s.family or "self"
        token = h.cell[0] if h.cell is not None and family != "encoder" else h.token
        if token is not None:
            self.session.select_token(min(token, r.T - 1))
        maps = r.family_maps(family)[0] if family == "self" or r.source_ids is not None \
            else None
        if h.cell is not None and maps is not None:
            rows = r.source_pieces if family == "encoder" else r.pieces
            cols = r.source_pieces if family in ("encoder", "cross") else r.pieces
            q, k = min(h.cell[0], len(rows) - 1), min(h.cell[1], len(cols) - 1)
            attention = self.window.panels.get("Attention")
            layer, head = h.head or (s.layer, s.head)
            heads = maps[layer]
            v = heads.mean(axis=0)[q, k] if head is None else heads[head, q, k]
            if hasattr(attention, "hover_label"):
                attention.hover_label.setText(
                    f"Highlighted: query {rows[q]!r} @{q} \u2192 key {cols[k]!r} @{k}: "
                    f"weight {float(v):.3f}")

    @Slot(object)
    def _on_model_opened(self, _path: Path) -> None:
        if self.state == "loading":
            self._set_text()

    @Slot(str, str)
    def _on_error(self, _title: str, _text: str) -> None:
        if self.state == "loading":  # the slide's model did not open: the dialog said why
            self.state = "idle"
            self.failed.emit(f"{self._where()}: \"model\" {self.slide.model!r} did not open")

    def _fail(self, text: str) -> None:
        self.state = "idle"
        message = f"{self._where()}: {text}"
        self.failed.emit(message)

    # -- predict first ------------------------------------------------------------------------
    @Slot(str)
    def pick(self, choice: str) -> None:
        q = self.slide.question if self.lesson is not None else None
        if q is None or self.revealed or choice not in q.choices:
            return
        self.picked = choice
        self._show_text()

    def reveal(self) -> None:
        q = self.slide.question
        if q is None or self.revealed:
            return
        self.revealed = True
        if self.picked is not None and self.index not in self._counted:
            self._counted.add(self.index)
            self.answered += 1
            self.right += int(self.picked == q.answer)
        self._show_text()

    def _show_text(self) -> None:
        assert self.lesson is not None
        s, q = self.slide, self.slide.question
        md = s.narration
        if q is not None:
            md += f"\n\n---\n\n**Predict first:** {q.text}"
            if self.revealed:
                verdict = ""
                if self.picked is not None:
                    verdict = (" \u2014 you picked it: **right**." if self.picked == q.answer
                               else f" \u2014 you picked **{self.picked}**: wrong.")
                md += f"\n\n**Answer: {q.answer}**{verdict}"
                if q.explain:
                    md += f"\n\n{q.explain}"
            else:
                md += "\n\n*Pick a choice below; the next key (PageDown) reveals the answer.*"
        score = f"{self.right} of {self.answered} right" if self.answered else ""
        self.pane.show_slide(self.lesson, self.index, md, q, self.picked, self.revealed, score)

    # -- recording ----------------------------------------------------------------------------
    def record_slide(self, title: str = "") -> Slide:
        """A slide that replays what is on screen now: the model, the prompt, the generated
        tokens (forced, so they replay exactly), the sampling settings and the panel's view."""
        r, info = self.session.result, self.session.info
        if r is None or info is None:
            raise LessonError("No model is shown yet: nothing to record")
        if info.path is None:
            raise LessonError("This model is not saved in a file (it came from a training run): "
                              "save it with File → Save model as, then add the slide")
        if r.cropped:
            raise LessonError("The text no longer fits the context window: a slide can only "
                              "record a text that fits (Reset, or generate fewer tokens)")
        shipped_names = {p.resolve(): p.stem for p in shipped.shipped_models()}
        model = shipped_names.get(Path(info.path).resolve(), str(info.path))
        tok = self.session.tokenizer
        n_prompt = r.n_prompt
        prompt = tok.decode(int(x) for x in r.ids[:n_prompt]) if tok is not None else ""
        v = current_view(self.window)
        sm = self.session.sample
        sel = self.session.selected_token
        forced = tuple(int(x) for x in r.ids[n_prompt:])
        mask: tuple[int, ...] = ()
        if r.kind == "encoder-decoder":
            prompt = self.session.prompt  # the source; the window holds the target
        elif r.kind == "encoder":
            # the text as typed (a [MASK] written in it stays), the hidden positions apart:
            # the shown prediction's last, so that it is shown again
            orig = r.original_ids if r.original_ids is not None else r.ids
            prompt = self.session.prompt
            mask_id = self.session.config.mask_id
            hidden = [int(p) for p in r.masked_positions if int(orig[p]) != mask_id]
            if r.predicted_at in hidden:
                hidden.remove(r.predicted_at)
                hidden.append(int(r.predicted_at))
            mask, forced = tuple(hidden), ()
        return Slide(title=title, model=model, prompt=prompt, forced_ids=forced,
                     temperature=float(sm.temperature), top_k=int(sm.top_k),
                     top_p=float(sm.top_p), seed=sm.seed, panel=v.panel, view=v.view,
                     layer=v.layer, head=v.head, stage=v.stage, family=v.family, mask=mask,
                     causal=bool(r.kind == "encoder" and r.causal_view),
                     highlight=Highlight(token=sel if sel >= 0 and not mask else None))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False

