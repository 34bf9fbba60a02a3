"""The catalogue of bad inputs and faults for the command line (issue 11): each ends in one line
on stderr naming the problem and exit status 2 (130 for Ctrl+C), never a traceback or a hang,
and the files already saved stay valid."""
from __future__ import annotations

import errno
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import model.checkpoints as ckpt
from model.__main__ import main
from model.checkpoints import load_checkpoint, optimizer_path, save_checkpoint
from model.config import ModelConfig
from model.corpora import MAX_CORPUS_BYTES
from model.tokenizer import CharTokenizer
from model.transformer import GPT

ROOT = Path(__file__).resolve().parents[2]
TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
TOK = CharTokenizer.from_text(TEXT)
TINY = ["--layers", "1", "--heads", "2", "--embd", "16", "--block", "16", "--batch", "4",
        "--eval-interval", "10", "--eval-iters", "2", "--sample-interval", "100", "--quiet",
        "--threads", "1", "--device", "cpu"]
DEEP = 100_000  # nesting far past Python's recursion limit


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=TOK.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    return GPT(cfg).eval()


def rewrite(src: Path, out: Path, tensors=None, **meta_changes) -> Path:
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    meta.update(meta_changes)
    save_file(load_file(str(src)) if tensors is None else tensors, str(out), metadata=meta)
    return out


class Fifos:
    """Named pipes for the tests. Should a reader block on one (the bug), a helper thread opens
    it for writing after a while and closes it: the reader gets an end of file, so the test fails
    with a wrong message instead of hanging the suite."""

    def __init__(self):
        self.done = threading.Event()

    def make(self, path: Path) -> Path:
        os.mkfifo(path)
        threading.Thread(target=self._unblock, args=(path,), daemon=True).start()
        return path

    def _unblock(self, path: Path) -> None:
        if not self.done.wait(10):
            with open(path, "wb"):
                pass


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    fifos = Fifos()
    corpus = d / "fox.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    good = save_checkpoint(d / "good.safetensors", tiny_model(), TOK, {"steps": 20})

    nested = d / "nested_header.safetensors"  # the safetensors JSON header itself
    header = b'{"__metadata__": {"format": "x"}, "a": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    nested.write_bytes(struct.pack("<Q", len(header)) + header)
    nested_meta = rewrite(good, d / "nested_config.safetensors",
                          config="[" * DEEP + "]" * DEEP)

    cfg = json.loads(read_meta(good)["config"])
    cfg["n_layer"] = 10**6
    million = rewrite(good, d / "million_layers.safetensors", config=json.dumps(cfg))

    tensors = load_file(str(good))
    w = tensors["h.0.mlp.c_fc.weight"]
    bits = w.view(torch.int32)
    bits[3, 5] ^= 1 << 30  # the top exponent bit: 0.02 becomes 6.9e36
    assert abs(float(w[3, 5])) > 1e30
    flipped = rewrite(good, d / "flipped.safetensors", tensors=tensors)

    big = d / "big.txt"  # sparse: the size is there, the disk is not used
    with open(big, "wb") as f:
        f.truncate(MAX_CORPUS_BYTES + 1)
    (d / "afile").write_text("not a folder")
    (d / "folder.safetensors").mkdir()
    yield {
        "{corpus}": corpus, "{good}": good, "{nested}": nested, "{nested_meta}": nested_meta,
        "{million}": million, "{flipped}": flipped, "{big}": big,
        "{fifo_corpus}": fifos.make(d / "corpus.fifo"),
        "{fifo_ckpt}": fifos.make(d / "model.fifo"),
        "{under_file}": d / "afile" / "m.safetensors", "{folder}": d / "folder.safetensors",
        "{out}": d / "out.safetensors",
    }
    fifos.done.set()


def read_meta(path: Path) -> dict:
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata())


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


GEN = ["generate", "--prompt", "the ", "--tokens", "5", "--checkpoint"]
TRAIN = ["train", "--corpus", "{corpus}", "--steps", "3", "--out"]
CASES = {
    # tracebacks
    "threads -1": (["train", "--corpus", "{corpus}", "--out", "{out}", "--threads", "-1"],
                   ["--threads", "-1 must be 0 or more"]),
    "seed 10**25": ([*TRAIN, "{out}", *TINY, "--seed", str(10**25)], ["seed=", "too large"]),
    "embd 65536": ([*TRAIN, "{out}", "--embd", "65536", "--quiet"],
                   ["training this model", "would need about", "TB", "is free"]),
    "/dev/zero corpus": ([*TRAIN[:2], "/dev/zero", *TRAIN[3:], "{out}", *TINY],
                         ["/dev/zero", "not a regular file"]),
    "corpus over the limit": ([*TRAIN[:2], "{big}", *TRAIN[3:], "{out}", *TINY],
                              ["big.txt", "at most 256 MB"]),
    "nested JSON header": ([*GEN, "{nested}"], ["nested_header.safetensors", "nested too deeply"]),
    "nested JSON config": ([*GEN, "{nested_meta}"], ["nested_config", "nested too deeply"]),
    "nested JSON in eval": (["eval", "--corpus", "{corpus}", "--checkpoint", "{nested}"],
                            ["nested too deeply"]),
    # hangs
    "n_layer 10**6": ([*GEN, "{million}"], ["million_layers", "n_layer=1000000", "file holds"]),
    "FIFO checkpoint": ([*GEN, "{fifo_ckpt}"], ["model.fifo", "not a regular file"]),
    "FIFO corpus": ([*TRAIN[:2], "{fifo_corpus}", *TRAIN[3:], "{out}", *TINY],
                    ["corpus.fifo", "not a regular file"]),
    # wrong results
    "flipped exponent bit (generate)": ([*GEN, "{flipped}"],
                                        ["flipped.safetensors", "h.0.mlp.c_fc.weight",
                                         "absurdly large"]),
    "flipped exponent bit (inspect)": (["inspect", "--prompt", "the", "--checkpoint",
                                        "{flipped}"], ["h.0.mlp.c_fc.weight"]),
    "flipped exponent bit (eval)": (["eval", "--corpus", "{corpus}", "--checkpoint",
                                     "{flipped}"], ["h.0.mlp.c_fc.weight"]),
    "resume with another shape": ([*TRAIN, "{out}", "--resume", "{good}", "--layers", "3",
                                   "--embd", "32", "--quiet"],
                                  ["--layers 3", "n_layer=1", "--embd 32", "n_embd=16",
                                   "leave these flags out"]),
    "out under a file": ([*TRAIN, "{under_file}", *TINY], ["afile is a file, not a folder"]),
    "out is a folder": ([*TRAIN, "{folder}", *TINY], ["folder.safetensors: is a folder"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_exit_2(case, files, capsys, monkeypatch):
    argv, expected = CASES[case]
    argv = [str(files.get(a, a)) for a in argv]
    ran = []
    monkeypatch.setattr("model.trainer.Trainer.run", lambda self: ran.append(1))
    assert main(argv) == 2
    line = one_error_line(capsys)
    for word in expected:
        assert word in line, line
    assert ".tmp" not in line
    assert not ran, "refused only after training"
    assert not files["{out}"].exists()


def test_resume_with_the_same_shape_flags_is_fine(files, tmp_path):
    out = tmp_path / "more.safetensors"
    assert main([*TRAIN[:2], str(files["{corpus}"]), "--steps", "22", "--out", str(out),
                 "--resume", str(files["{good}"]), "--layers", "1", "--embd", "16", "--quiet",
                 "--threads", "1", "--device", "cpu"]) == 0
    assert load_checkpoint(out).steps == 22


def test_read_only_output_is_refused_before_training(files, tmp_path, capsys, monkeypatch):
    """Errno 30 (as root, chmod does not stop writes, so the write itself is made to fail)."""
    def read_only(f, data):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ckpt, "_write_all", read_only)
    ran = []
    monkeypatch.setattr("model.trainer.Trainer.run", lambda self: ran.append(1))
    out = tmp_path / "ro" / "m.safetensors"
    assert main([*TRAIN[:2], str(files["{corpus}"]), "--steps", "3", "--out", str(out),
                 *TINY]) == 2
    line = one_error_line(capsys)
    assert str(out) in line and "read-only" in line and ".tmp" not in line
    assert not ran
    assert not any(p.name.endswith(".tmp") for p in out.parent.iterdir())


def test_full_disk_at_the_save_keeps_the_previous_pair_and_leaves_no_orphan(files, tmp_path,
                                                                              capsys,
                                                                              monkeypatch):
    """Errno 28 while the final checkpoint is written: one line naming the user's path; the
    model and optimizer files of the previous run are untouched, no temp file is left."""
    out = tmp_path / "m.safetensors"
    train = [*TRAIN[:2], str(files["{corpus}"]), "--steps", "3", "--out", str(out), *TINY]
    assert main(train) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"m.safetensors", "m.optim.safetensors"}
    real = ckpt._write_all
    sizes = []

    def disk_fills_up(f, data):
        sizes.append(len(data))
        if len(sizes) >= 3:  # the writability probe passes, the model's temp file fits, the
            raise OSError(errno.ENOSPC, "No space left on device")  # optimizer's does not
        real(f, data)

    monkeypatch.setattr(ckpt, "_write_all", disk_fills_up)
    capsys.readouterr()
    assert main([*train, "--seed", "7"]) == 2
    line = one_error_line(capsys)
    assert str(out) in line or str(optimizer_path(out)) in line
    assert "disk is full" in line and ".tmp" not in line
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no orphan optimizer file, no temp file, the old pair intact
    ck = load_checkpoint(out)
    assert ckpt.load_optimizer_state(optimizer_path(out)).id == ck.id


def test_file_size_limit_is_one_line(files, tmp_path):
    """Errno 27: a real RLIMIT_FSIZE in a child process (SIGXFSZ ignored, as Python does)."""
    out = tmp_path / "m.safetensors"
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (8000, 8000))\n"
            "from model.__main__ import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run(
        [sys.executable, "-c", code, "train", "--corpus", str(files["{corpus}"]), "--steps", "2",
         "--out", str(out), *TINY], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and str(out) in lines[0] and "file-size limit" in lines[0], lines
    assert not out.exists() and not optimizer_path(out).exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_stale_temp_files_of_the_target_are_removed_on_the_next_save(tmp_path):
    """A kill during a save leaves ``.m.safetensors.XXXX.tmp``; the next save of the same
    target removes those older than ckpt.STALE_TEMP_S, and nothing else."""
    path = tmp_path / "m.safetensors"
    stale = tmp_path / ".m.safetensors.k1ll3d00.tmp"
    fresh = tmp_path / ".m.safetensors.wr1t1ng0.tmp"  # maybe another process's save right now
    other = tmp_path / ".n.safetensors.k1ll3d00.tmp"  # another target's
    for p in (stale, fresh, other):
        p.write_bytes(b"\0" * 1000)
    old = time.time() - ckpt.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_checkpoint(path, tiny_model(), TOK)
    assert not stale.exists()
    assert fresh.exists() and other.exists()
    assert load_checkpoint(path).config.n_layer == 1


def test_eval_of_a_finite_model_with_a_huge_loss(files, tmp_path, capsys):
    """Finite weights (within the bound) whose loss is above 709: exp overflows a float."""
    m = tiny_model()
    with torch.no_grad():
        m.ln_f.weight.fill_(1000.0)
        m.wte.weight.mul_(100.0)
    path = save_checkpoint(tmp_path / "loud.safetensors", m, TOK)
    corpus = str(files["{corpus}"])
    assert main(["eval", "--checkpoint", str(path), "--corpus", corpus]) == 0
    out = capsys.readouterr().out
    assert "perplexity inf" in out
    assert main(["eval", "--checkpoint", str(path), "--corpus", corpus, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["loss"] > 710 and data["perplexity"] is None


def test_generate_with_non_finite_logits(files, capsys, monkeypatch):
    real = GPT.forward

    def nan_logits(self, *a, **k):
        logits, loss = real(self, *a, **k)
        return logits * float("nan"), loss

    monkeypatch.setattr(GPT, "forward", nan_logits)
    assert main([*GEN, str(files["{good}"])]) == 2
    assert "NaN or infinite" in one_error_line(capsys)


class _Reader:
    """A stdout whose reader presses Ctrl+C after ``n`` pieces of text arrived."""

    def __init__(self, n: int):
        self.n = n
        self.parts: list[str] = []

    def write(self, s: str) -> int:
        self.parts.append(s)
        if len(self.parts) == self.n:
            raise KeyboardInterrupt
        return len(s)

    def flush(self) -> None:
        pass


def test_generate_streams_the_text_and_stops_cleanly_on_ctrl_c(files, capsys, monkeypatch):
    """``--tokens 10**7`` must show text at once; Ctrl+C ends it with one line, exit 130."""
    forwards = []
    real = GPT.forward

    def counted(self, *a, **k):
        forwards.append(1)
        assert len(forwards) < 1000, "nothing was shown after 1,000 tokens"
        return real(self, *a, **k)

    monkeypatch.setattr(GPT, "forward", counted)
    reader = _Reader(40)
    monkeypatch.setattr(sys, "stdout", reader)
    try:
        rc = main([*GEN[:4], str(10**7), "--checkpoint", str(files["{good}"])])
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C escaped main()")
    finally:
        monkeypatch.undo()
    assert rc == 130
    assert reader.parts[0] == "the " and len(reader.parts) >= 40
    assert len(forwards) < 100  # stopped right away, not after ten million tokens
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted"]


def test_ctrl_c_during_start_up_is_one_line(files, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("model.speedups.tune_malloc", interrupted)
    try:
        rc = main([*GEN, str(files["{good}"])])
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C escaped main()")
    assert rc == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]


def test_piping_into_head_exits_quietly():
    """``python -m model generate … | head -c 20``: the reader leaves, the writer ends quietly
    (no BrokenPipeError) and at once (the text streams, so the broken pipe shows at once)."""
    ckpt_path = "induction"  # a shipped model, by name
    proc = subprocess.Popen(
        [sys.executable, "-m", "model", "generate", "--checkpoint", ckpt_path, "--tokens",
         str(10**6), "--seed", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no text after 60 s: generate must stream"
        assert proc.stdout.read1(20)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert err == "" and rc == 0
