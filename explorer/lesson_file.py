"""The lesson file: a versioned JSON list of slides that replays a demo exactly (docs/LESSONS.md).

Pure data: reading, checking and writing a lesson needs no Qt and no torch, so a bad file is
refused with one message that names the slide and the field before anything is shown. Playing a
lesson is :mod:`explorer.lessons`' job.

A slide replays identically on every machine because its generated tokens are either forced
(``forced_ids`` / ``forced_text``) or drawn with a fixed seed (or greedily, temperature 0): never
from timing or the clock.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from model.shipped import resolve_checkpoint

FORMAT = "transformer-explorer-lesson"
VERSION = 1
#: panels a slide may show, with the views each accepts ("" = the panel's own default)
PANELS: dict[str, tuple[str, ...]] = {
    "next token": ("probs", "logits"),
    "attention": ("head", "grid", "lines"),
    "positional encoding": ("matrix", "curves", "similarity", "prompt"),
    "architecture": (),  # the view is a block key of the diagram, e.g. "L0.attn", "final.unembed"
    "training": ("samples", "film"),
}
STAGES = ("scores", "masked", "probs")
#: an encoder-decoder's attention families: the encoder's self-attention, the decoder's masked
#: self-attention, cross-attention ("" = the decoder's own, as for a decoder-only model)
FAMILIES = ("encoder", "self", "cross")
QUESTION_KINDS = ("next_token", "attends_to", "loss")
LOSS_CHOICES = ("up", "down")
MAX_STEPS = 512  # a slide that generates more is a mistake, not a lesson


class LessonError(ValueError):
    """A lesson file that cannot be played; the message names the file, slide and field."""


@dataclass(frozen=True)
class ViewSpec:
    """What a slide (or a concept's "Show it" button) brings to the front."""

    panel: str = "next token"
    view: str = ""
    layer: int = 0
    head: int | None = 0  # None: the mean over the layer's heads
    stage: str = "probs"
    family: str = ""  # an encoder-decoder's attention family (FAMILIES); "" = "self"


@dataclass(frozen=True)
class Question:
    """A *predict first* question: the class picks, the next key reveals ``answer``."""

    kind: str  # one of QUESTION_KINDS
    text: str  # the question, Markdown
    choices: tuple[str, ...]
    answer: str  # one of choices
    explain: str = ""  # Markdown shown with the answer


@dataclass(frozen=True)
class Highlight:
    token: int | None = None  # a position in the context window (selected, as if clicked)
    head: tuple[int, int] | None = None  # (layer, head) opened in the attention panel
    cell: tuple[int, int] | None = None  # (query, key) of the attention map, its value shown


@dataclass(frozen=True)
class Slide:
    title: str
    model: str  # a shipped model's name ("induction") or a path (relative to the lesson file)
    prompt: str
    narration: str = ""  # Markdown
    forced_ids: tuple[int, ...] = ()  # generated after the prompt, exactly these token ids
    forced_text: str = ""  # or exactly these characters' tokens
    steps: int = 0  # or this many sampled tokens (needs a seed or temperature 0)
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = 0
    panel: str = "next token"
    view: str = ""
    layer: int = 0
    head: int | None = 0  # None: the mean over the layer's heads
    stage: str = "probs"
    family: str = ""  # an encoder-decoder's attention family (FAMILIES); "" = "self"
    mask: tuple[int, ...] = ()  # an encoder: positions hidden behind [MASK], in this order
    causal: bool = False  # an encoder: its input under a decoder's causal mask (as GPT)
    highlight: Highlight = field(default_factory=Highlight)
    question: Question | None = None


@dataclass(frozen=True)
class Lesson:
    title: str
    slides: tuple[Slide, ...]
    description: str = ""
    path: Path | None = None  # where it was read from (relative model paths start there)

    def model_path(self, slide: Slide) -> Path:
        """The file ``slide.model`` names: a path (relative to the lesson file) that exists,
        else a shipped model of that name."""
        p = Path(slide.model)
        if not p.is_absolute() and self.path is not None:
            beside = self.path.parent / p
            if beside.exists():
                return beside
        return resolve_checkpoint(slide.model)


# -- reading --------------------------------------------------------------------------------------
def load_lesson(path: str | Path) -> Lesson:
    """Read and check a lesson file; :class:`LessonError` names what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LessonError(f"{path}: no such lesson file") from None
    except IsADirectoryError:
        raise LessonError(f"{path}: is a folder, not a lesson file") from None
    except UnicodeDecodeError:
        raise LessonError(f"{path}: not a lesson file (not UTF-8 text)") from None
    except OSError as e:
        raise LessonError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LessonError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: "
                          f"{e.msg})") from None
    return parse_lesson(data, path)


def parse_lesson(data: object, path: Path | None = None) -> Lesson:
    where = str(path) if path is not None else "lesson"
    if not isinstance(data, dict):
        raise LessonError(f"{where}: a lesson file holds one JSON object, got "
                          f"{_kind(data)}")
    if data.get("format") != FORMAT:
        raise LessonError(f"{where}: \"format\" must be {FORMAT!r} (is this a lesson file?)")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise LessonError(f"{where}: \"version\" must be a whole number (this app reads "
                          f"version {VERSION})")
    if version > VERSION:
        raise LessonError(f"{where}: lesson format version {version} is newer than this app "
                          f"reads (version {VERSION}): update Transformer Explorer")
    if version < 1:
        raise LessonError(f"{where}: \"version\" must be 1 or more, got {version}")
    _unknown(data, {"format", "version", "title", "description", "slides"}, where)
    title = _str(data, "title", where, required=True)
    description = _str(data, "description", where)
    slides = data.get("slides")
    if not isinstance(slides, list) or not slides:
        raise LessonError(f"{where}: \"slides\" must be a non-empty list of slides")
    return Lesson(title=title, description=description, path=path,
                  slides=tuple(_slide(s, f"{where}: slide {i + 1}")
                               for i, s in enumerate(slides)))


SLIDE_KEYS = {"title", "model", "prompt", "narration", "forced_ids", "forced_text", "steps",
              "sampling", "panel", "view", "layer", "head", "stage", "family", "mask", "causal",
              "highlight", "question"}


def _slide(d: object, where: str) -> Slide:
    if not isinstance(d, dict):
        raise LessonError(f"{where}: a slide is a JSON object, got {_kind(d)}")
    _unknown(d, SLIDE_KEYS, where)
    title = _str(d, "title", where)
    model = _str(d, "model", where, required=True)
    prompt = _str(d, "prompt", where, required=True)
    forced_ids = d.get("forced_ids", [])
    if not isinstance(forced_ids, list) or not all(_is_int(x) and x >= 0 for x in forced_ids):
        raise LessonError(f"{where}: \"forced_ids\" must be a list of token ids (whole numbers "
                          f">= 0)")
    forced_text = _str(d, "forced_text", where)
    steps = _int(d, "steps", where, 0, 0, MAX_STEPS)
    if sum(bool(x) for x in (forced_ids, forced_text, steps)) > 1:
        raise LessonError(f"{where}: give only one of \"forced_ids\", \"forced_text\" and "
                          f"\"steps\"")
    s = d.get("sampling", {})
    if not isinstance(s, dict):
        raise LessonError(f"{where}: \"sampling\" must be an object like "
                          f"{{\"temperature\": 0.8, \"seed\": 1}}")
    sw = where + ", sampling"
    _unknown(s, {"temperature", "top_k", "top_p", "seed"}, sw)
    temperature = _float(s, "temperature", sw, 0.8, 0.0, 100.0)
    top_k = _int(s, "top_k", sw, 0, 0, 1 << 30)
    top_p = _float(s, "top_p", sw, 1.0, 1e-9, 1.0)
    seed = s.get("seed", 0)
    if seed is not None and not (_is_int(seed) and 0 <= seed < 2 ** 63):
        raise LessonError(f"{sw}: \"seed\" must be a whole number >= 0 or null, got {seed!r}")
    if steps and seed is None and temperature != 0:
        raise LessonError(f"{where}: \"steps\" draws tokens at random: set sampling.seed (or "
                          f"temperature 0) so the slide replays the same tokens")
    panel = _choice(d, "panel", where, PANELS, "next token")
    view = _str(d, "view", where)
    if view and PANELS[panel] and view not in PANELS[panel]:
        raise LessonError(f"{where}: \"view\" of the {panel} panel must be one of "
                          f"{', '.join(PANELS[panel])}; got {view!r}")
    layer = _int(d, "layer", where, 0, 0, 4096)
    head = d.get("head", 0)
    if head is not None and not (_is_int(head) and 0 <= head < 4096):
        raise LessonError(f"{where}: \"head\" must be a head number >= 0 (or null for the mean "
                          f"of the heads), got {head!r}")
    stage = _choice(d, "stage", where, STAGES, "probs")
    family = _choice(d, "family", where, FAMILIES, "", " (an encoder-decoder's attention)")
    mask = d.get("mask", [])
    if not isinstance(mask, list) or not all(_is_int(x) and 0 <= x < 4096 for x in mask):
        raise LessonError(f"{where}: \"mask\" must be a list of token positions (whole numbers "
                          f">= 0, from 0) to hide behind [MASK], e.g. [3]; got {mask!r}")
    if len(set(mask)) != len(mask):
        raise LessonError(f"{where}: \"mask\" has position "
                          f"{next(x for x in mask if mask.count(x) > 1)} twice")
    causal = d.get("causal", False)
    if not isinstance(causal, bool):
        raise LessonError(f"{where}: \"causal\" must be true or false, got {causal!r}")
    if (mask or causal) and (forced_ids or forced_text or steps):
        raise LessonError(f"{where}: \"mask\" and \"causal\" are for an encoder, which does "
                          f"not generate: leave out \"forced_ids\", \"forced_text\" and "
                          f"\"steps\"")
    if (mask or causal) and family in ("encoder", "cross"):
        raise LessonError(f"{where}: \"family\" {family!r} is an encoder-decoder's; \"mask\" "
                          f"and \"causal\" are for an encoder (BERT-style)")
    return Slide(title=title, model=model, prompt=prompt, narration=_str(d, "narration", where),
                 forced_ids=tuple(forced_ids), forced_text=forced_text, steps=steps,
                 temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, panel=panel,
                 view=view, layer=layer, head=head, stage=stage, family=family,
                 mask=tuple(int(x) for x in mask), causal=causal,
                 highlight=_highlight(d.get("highlight", {}), where + ", highlight"),
                 question=_question(d.get("question"), where + ", question"))


def _highlight(d: object, where: str) -> Highlight:
    if not isinstance(d, dict):
        raise LessonError(f"{where}: must be an object like {{\"token\": 3}}")
    _unknown(d, {"token", "head", "cell"}, where)
    token = d.get("token")
    if token is not None and not (_is_int(token) and token >= 0):
        raise LessonError(f"{where}: \"token\" must be a position >= 0, got {token!r}")
    return Highlight(token=token, head=_pair(d, "head", where, "[layer, head]"),
                     cell=_pair(d, "cell", where, "[query, key]"))


def _pair(d: dict, key: str, where: str, shape: str) -> tuple[int, int] | None:
    v = d.get(key)
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x >= 0 for x in v)):
        raise LessonError(f"{where}: \"{key}\" must be {shape}, two whole numbers >= 0; got "
                          f"{v!r}")
    return int(v[0]), int(v[1])


def _question(d: object, where: str) -> Question | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise LessonError(f"{where}: must be an object with kind, text, choices and answer")
    _unknown(d, {"kind", "text", "choices", "answer", "explain"}, where)
    kind = _str(d, "kind", where, required=True)
    if kind not in QUESTION_KINDS:
        raise LessonError(f"{where}: \"kind\" must be one of {', '.join(QUESTION_KINDS)}; got "
                          f"{kind!r}")
    choices = d.get("choices", list(LOSS_CHOICES) if kind == "loss" else None)
    if not (isinstance(choices, list) and 2 <= len(choices) <= 6
            and all(isinstance(c, str) and c for c in choices)):
        raise LessonError(f"{where}: \"choices\" must be a list of 2 to 6 non-empty strings")
    if len(set(choices)) != len(choices):
        raise LessonError(f"{where}: \"choices\" has the same choice twice")
    if kind == "loss" and set(choices) != set(LOSS_CHOICES):
        raise LessonError(f"{where}: a \"loss\" question's choices are \"up\" and \"down\"")
    answer = _str(d, "answer", where, required=True)
    if answer not in choices:
        raise LessonError(f"{where}: \"answer\" {answer!r} is not one of the choices "
                          f"{choices}")
    return Question(kind=kind, text=_str(d, "text", where, required=True),
                    choices=tuple(choices), answer=answer, explain=_str(d, "explain", where))


# -- field helpers --------------------------------------------------------------------------------
def _kind(v: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            type(None): "null"}.get(type(v), "a number")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _unknown(d: dict, known: set[str], where: str) -> None:
    extra = sorted(set(d) - known)
    if extra:
        raise LessonError(f"{where}: unknown field \"{extra[0]}\" (known: "
                          f"{', '.join(sorted(known))})")


def _str(d: dict, key: str, where: str, required: bool = False) -> str:
    if key not in d:
        if required:
            raise LessonError(f"{where}: \"{key}\" is missing")
        return ""
    v = d[key]
    if not isinstance(v, str):
        raise LessonError(f"{where}: \"{key}\" must be a string, got {_kind(v)}")
    if required and not v and key != "prompt":
        raise LessonError(f"{where}: \"{key}\" must not be empty")
    return v


def _choice(d: dict, key: str, where: str, choices, default: str, what: str = "") -> str:
    """A string field that must be one of ``choices``; missing or "" gives ``default`` ("" is
    accepted as the default, for a field whose absence means "not set")."""
    v = _str(d, key, where) or default
    if v and v not in choices:
        raise LessonError(f"{where}: \"{key}\" must be one of {', '.join(choices)}{what}; got "
                          f"{v!r}")
    return v


def _int(d: dict, key: str, where: str, default: int, lo: int, hi: int) -> int:
    v = d.get(key, default)
    if not _is_int(v) or not lo <= v <= hi:
        raise LessonError(f"{where}: \"{key}\" must be a whole number from {lo} to {hi}, got "
                          f"{v!r}")
    return int(v)


def _float(d: dict, key: str, where: str, default: float, lo: float, hi: float) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not lo <= v <= hi:
        raise LessonError(f"{where}: \"{key}\" must be a number from {lo:g} to {hi:g}, got "
                          f"{v!r}")
    return float(v)


# -- writing --------------------------------------------------------------------------------------
def slide_dict(s: Slide) -> dict:
    """The slide as the file holds it (defaults left out, so a file stays short)."""
    d: dict = {"title": s.title, "model": s.model, "prompt": s.prompt}
    if s.forced_ids:
        d["forced_ids"] = list(s.forced_ids)
    if s.forced_text:
        d["forced_text"] = s.forced_text
    if s.steps:
        d["steps"] = s.steps
    d["sampling"] = {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                     "seed": s.seed}
    d.update(panel=s.panel, view=s.view, layer=s.layer, head=s.head, stage=s.stage)
    if s.family:
        d["family"] = s.family
    if s.mask:
        d["mask"] = list(s.mask)
    if s.causal:
        d["causal"] = True
    h = s.highlight
    hd = {k: (list(v) if isinstance(v, tuple) else v)
          for k, v in (("token", h.token), ("head", h.head), ("cell", h.cell)) if v is not None}
    if hd:
        d["highlight"] = hd
    d["narration"] = s.narration
    if s.question is not None:
        q = s.question
        d["question"] = {"kind": q.kind, "text": q.text, "choices": list(q.choices),
                         "answer": q.answer, "explain": q.explain}
    return d


def lesson_dict(lesson: Lesson) -> dict:
    return {"format": FORMAT, "version": VERSION, "title": lesson.title,
            "description": lesson.description, "slides": [slide_dict(s) for s in lesson.slides]}


def save_lesson(lesson: Lesson, path: str | Path) -> None:
    """Write ``lesson`` to ``path`` atomically (a failed write leaves the old file whole);
    OSError says why it failed."""
    path = Path(path)
    text = json.dumps(lesson_dict(lesson), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shipped_lessons() -> list[Path]:
    """The lessons that ship with the app (``lessons/`` in a checkout, package data in a
    wheel), sorted by name."""
    return sorted(LESSONS_DIR.glob("*.json")) if LESSONS_DIR.is_dir() else []


LESSONS_DIR = Path(__file__).resolve().parent / "lessons"
