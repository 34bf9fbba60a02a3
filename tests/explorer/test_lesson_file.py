"""The lesson file format: the shipped lessons are valid and cover the lecture, a lesson round-trips
through save/load, and every kind of bad file is refused naming the slide and the field."""
from __future__ import annotations

import copy
import json

import pytest

from explorer import app
from explorer.lesson_file import (
    FORMAT,
    VERSION,
    LessonError,
    lesson_dict,
    load_lesson,
    parse_lesson,
    save_lesson,
    shipped_lessons,
)
from model import shipped


def test_at_least_six_lessons_ship_and_load():
    files = shipped_lessons()
    assert len(files) >= 6
    for p in files:
        lesson = load_lesson(p)
        assert lesson.title and lesson.slides
        for s in lesson.slides:
            assert lesson.model_path(s).is_file(), (p.name, s.model)
            assert s.narration.strip(), (p.name, s.title)


def test_shipped_lessons_cover_every_concept_of_the_lecture():
    seen: set[str] = set()
    for p in shipped_lessons():
        for s in load_lesson(p).slides:
            seen.add(s.panel)
            seen.add(f"{s.panel}:{s.view}")
            if s.panel == "attention":
                seen.add(f"stage:{s.stage}")
                seen.add("average" if s.head is None else "one head")
            seen.add(f"temperature:{'low' if s.temperature < 0.5 else 'high' if s.temperature > 1.5 else 'mid'}")
            if s.steps:
                seen.add("sampled")
            if s.top_k:
                seen.add("top-k")
            if s.question is not None:
                seen.add(f"question:{s.question.kind}")
            if s.model == "induction" and s.panel == "attention" and s.layer == 1:
                seen.add("induction head")
            if s.panel == "attention" and s.family:
                seen.add(f"family:{s.family}")
            if s.mask:
                seen.add("causal mask on an encoder" if s.causal else "masked token")
    wanted = {
        "next token",  # tokenization: the chips
        "architecture:embed.tok",  # input embedding
        "positional encoding:matrix", "positional encoding:curves",  # positional encoding
        "stage:scores", "stage:masked", "stage:probs", "architecture:L1.attn",  # QKᵀ/√d, mask, ×V
        "attention:grid", "one head", "average",  # multi-head attention
        "architecture:L0.ffn", "architecture:L0.add_1", "architecture:L0.ln_1",  # block
        "architecture:", "architecture:final.unembed",  # the stack and the logit lens
        "next token:logits", "temperature:low", "temperature:high", "sampled", "top-k",
        "training:samples", "training:film", "induction head",  # training
        "question:next_token", "question:attends_to", "question:loss",
        # the encoder-decoder: the encoder's self-attention, the decoder's masked one,
        # cross-attention, the two stacks; BERT: a masked token, then GPT's causal mask
        "family:encoder", "family:self", "family:cross", "architecture:L0.cross",
        "masked token", "causal mask on an encoder",
    }
    assert wanted <= seen, sorted(wanted - seen)


def test_lessons_are_package_data():
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert "lessons/*.json" in data["tool"]["setuptools"]["package-data"]["explorer"]
    assert all(p.parent.name == "lessons" and p.parent.parent.name == "explorer"
               for p in shipped_lessons())


def test_save_and_load_round_trip(tmp_path):
    for p in shipped_lessons():
        lesson = load_lesson(p)
        out = tmp_path / p.name
        save_lesson(lesson, out)
        again = load_lesson(out)
        assert again.slides == lesson.slides
        assert (again.title, again.description) == (lesson.title, lesson.description)


def test_a_relative_model_path_starts_at_the_lesson_file(tmp_path):
    model = shipped.resolve_checkpoint("induction")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mine.safetensors").write_bytes(model.read_bytes())
    f = tmp_path / "l.json"
    f.write_text(json.dumps(_good(model="m/mine.safetensors")))
    lesson = load_lesson(f)
    assert lesson.model_path(lesson.slides[0]) == tmp_path / "m" / "mine.safetensors"


def _good(**slide) -> dict:
    s = {"title": "one", "model": "induction", "prompt": "abc", "narration": "hi"}
    s.update(slide)
    return {"format": FORMAT, "version": VERSION, "title": "t",
            "slides": [copy.deepcopy(s), {"model": "induction", "prompt": "ab"}]}


def _with(**fields) -> dict:
    """A good lesson whose second slide has ``fields`` (None deletes a field)."""
    d = _good()
    for k, v in fields.items():
        d["slides"][1][k] = v
    return d


Q = {"kind": "next_token", "text": "?", "choices": ["a", "b"], "answer": "a"}
BAD = [
    # (the file's data, words the message must hold)
    ([1, 2], ["one JSON object", "a list"]),
    ({**_good(), "format": "x"}, ["\"format\""]),
    ({**_good(), "version": VERSION + 1}, ["newer", "update"]),
    ({**_good(), "version": "1"}, ["\"version\""]),
    ({**_good(), "slides": []}, ["\"slides\"", "non-empty"]),
    ({**_good(), "colour": 1}, ["unknown field \"colour\""]),
    (_with(model=None), ["slide 2", "\"model\"", "string"]),
    ({**_good(), "slides": [_good()["slides"][0], {"prompt": "a"}]},
     ["slide 2", "\"model\"", "missing"]),
    ({**_good(), "slides": [_good()["slides"][0], "x"]}, ["slide 2", "object"]),
    (_with(colour="red"), ["slide 2", "unknown field \"colour\""]),
    (_with(panel="heads"), ["slide 2", "\"panel\"", "attention"]),
    (_with(panel="attention", view="mosaic"), ["slide 2", "\"view\"", "grid"]),
    (_with(stage="logits"), ["slide 2", "\"stage\"", "scores"]),
    (_with(layer=-1), ["slide 2", "\"layer\""]),
    (_with(head="all"), ["slide 2", "\"head\""]),
    (_with(forced_ids=[1, -2]), ["slide 2", "\"forced_ids\""]),
    (_with(steps=5, sampling={"temperature": 0.8, "seed": None}),
     ["slide 2", "\"steps\"", "seed"]),
    (_with(forced_text="ab", forced_ids=[1]), ["slide 2", "only one of"]),
    (_with(sampling={"temperature": -1}), ["slide 2, sampling", "\"temperature\""]),
    (_with(sampling={"seed": 1.5}), ["slide 2, sampling", "\"seed\""]),
    (_with(highlight={"cell": [1]}), ["slide 2, highlight", "\"cell\""]),
    (_with(question={**Q, "answer": "c"}), ["slide 2, question", "\"answer\""]),
    (_with(question={**Q, "kind": "guess"}), ["slide 2, question", "\"kind\""]),
    (_with(question={**Q, "kind": "loss"}), ["slide 2, question", "up", "down"]),
    (_with(question={**Q, "choices": ["a"]}), ["slide 2, question", "\"choices\""]),
    (_with(question={**Q, "text": 3}), ["slide 2, question", "\"text\""]),
    # an encoder-decoder's attention family, an encoder's masks and causal view
    (_with(family="decoder"), ["slide 2", "\"family\"", "encoder, self, cross", "'decoder'"]),
    (_with(family=1), ["slide 2", "\"family\"", "string"]),
    (_with(mask=3), ["slide 2", "\"mask\"", "list of token positions"]),
    (_with(mask=[1, -1]), ["slide 2", "\"mask\"", "[1, -1]"]),
    (_with(mask=[True]), ["slide 2", "\"mask\""]),
    (_with(mask=[2, 2]), ["slide 2", "\"mask\"", "position 2 twice"]),
    (_with(causal="yes"), ["slide 2", "\"causal\"", "true or false"]),
    (_with(mask=[1], steps=3), ["slide 2", "\"mask\"", "does not generate", "\"steps\""]),
    (_with(causal=True, forced_text="ab"), ["slide 2", "\"causal\"", "does not generate"]),
    (_with(mask=[1], family="cross"), ["slide 2", "\"family\" 'cross'", "encoder (BERT"]),
]


@pytest.mark.parametrize("data,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_lesson_data_names_the_slide_and_field(tmp_path, data, words):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(data))
    with pytest.raises(LessonError) as e:
        load_lesson(f)
    msg = str(e.value)
    assert msg.startswith(str(f)) and "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


def test_bad_lesson_files(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(LessonError, match="no such lesson file"):
        load_lesson(missing)
    with pytest.raises(LessonError, match="is a folder"):
        load_lesson(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "transformer-explorer-lesson",\n "slides": [}')
    with pytest.raises(LessonError, match=r"not valid JSON \(line 2"):
        load_lesson(broken)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LessonError, match="not UTF-8"):
        load_lesson(binary)


def test_good_data_parses_and_dumps_back():
    lesson = parse_lesson(_good())
    assert parse_lesson(lesson_dict(lesson)).slides == lesson.slides


def test_family_mask_and_causal_parse_and_dump_back():
    from explorer.lesson_file import slide_dict

    lesson = parse_lesson(_with(panel="attention", family="cross", layer=1))
    s = lesson.slides[1]
    assert (s.family, s.mask, s.causal) == ("cross", (), False)
    assert slide_dict(s)["family"] == "cross" and "mask" not in slide_dict(s)
    lesson = parse_lesson(_with(mask=[5, 2], causal=True))
    s = lesson.slides[1]
    assert (s.family, s.mask, s.causal) == ("", (5, 2), True)  # the order is kept
    d = slide_dict(s)
    assert d["mask"] == [5, 2] and d["causal"] is True and "family" not in d
    assert parse_lesson(lesson_dict(lesson)).slides == lesson.slides
    plain = parse_lesson(_good()).slides[0]  # the defaults: written out nowhere
    assert (plain.family, plain.mask, plain.causal) == ("", (), False)
    assert not {"family", "mask", "causal"} & set(slide_dict(plain))


def test_cli_refuses_a_bad_lesson_with_one_line(tmp_path, capsys, qapp):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(_with(stage="logits")))
    assert app.main(["--lesson", str(f)]) == app.LESSON_EXIT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "slide 2" in err and "\"stage\"" in err
    assert app.main(["--lesson", str(shipped_lessons()[0]), "--slide", "99"]) == app.LESSON_EXIT
    assert "no slide 99" in capsys.readouterr().err


def test_slide_option_needs_a_lesson():
    with pytest.raises(SystemExit):
        app.parse_args(["--slide", "2"])
    a = app.parse_args(["--lesson", "x.json", "--slide", "2"])
    assert (a.lesson, a.slide) == ("x.json", 2)


def test_a_shipped_lesson_is_found_by_name():
    first = shipped_lessons()[0]
    assert app.find_lesson(first.stem) == first
    assert app.find_lesson("no_such_lesson").name == "no_such_lesson"


def test_the_documented_example_is_a_valid_lesson():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "LESSONS.md").read_text()
    example = doc.split("## Example", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    lesson = parse_lesson(json.loads(example))
    assert len(lesson.slides) == 2 and lesson.slides[0].question.answer == "a @5"
