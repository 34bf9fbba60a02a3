"""Self-describing checkpoints: one ``.safetensors`` file per model, written atomically.

The file holds the weights and, in its metadata (all strings)::

    format     "transformer-explorer/1"
    config     ModelConfig as JSON
    tokenizer  tokenizer JSON
    summary    JSON: steps, losses, corpus, date, ... (anything the trainer wants to keep)
    id         random id shared with the optimizer file of the same save

Tied embeddings are stored once (``lm_head.weight`` is left out and re-tied on load);
non-persistent buffers (rotary/sinusoidal tables) are not stored, they follow from the config.
The optimizer state for resuming lives beside the model in ``x.optim.safetensors``: tensors as
safetensors, the rest (param groups, step, trainer state) as JSON metadata. Nothing here ever
unpickles: loading a file can not run code.

Writes go to a temporary file in the same folder, which is flushed, fsync'ed and then renamed
over the target (``os.replace``), so a crash mid-save leaves the previous file intact. A save
with the optimizer state writes both temp files before renaming either (a full disk changes
nothing); a temp file of the same target older than ``STALE_TEMP_S`` (left by a killed save)
is removed by the next save. Write errors name the user's path and the reason in words.

Loading refuses, before building anything, files that are not regular files (a named pipe
would block), configs far larger than the weights the file holds or than the free memory, and
weights that are NaN, infinite or beyond ``MAX_ABS_WEIGHT`` (a flipped bit).
"""
from __future__ import annotations

import base64
import errno
import glob
import json
import math
import os
import stat
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ConfigError, ModelConfig
from .devices import resolve_device
from .encoder_decoder import EncoderDecoder, build_model
from .tokenizer import Tokenizer, TokenizerError, tokenizer_from_dict
from .transformer import GPT

FORMAT = "transformer-explorer/1"
OPTIM_FORMAT = "transformer-explorer-optim/1"
SUFFIX = ".safetensors"
OPTIM_SUFFIX = ".optim.safetensors"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read; the message names the file and the problem."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    model: GPT | EncoderDecoder  # of the config's kind; eval mode, on the requested device
    tokenizer: Tokenizer
    config: ModelConfig
    summary: dict
    path: Path
    id: str = ""

    @property
    def steps(self) -> int:
        s = self.summary.get("steps", 0)
        return int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else 0


def optimizer_path(path: str | Path) -> Path:
    """``x.safetensors`` -> ``x.optim.safetensors`` (beside the model file)."""
    p = Path(path)
    name = p.name[: -len(SUFFIX)] if p.name.endswith(SUFFIX) else p.name
    return p.with_name(name + OPTIM_SUFFIX)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module itself for a ``torch.compile``'d model."""
    return getattr(model, "_orig_mod", model)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


# -- atomic writes -----------------------------------------------------------------------------
def _write_all(f, data: bytes) -> None:
    """Write every byte (a separate function so tests can simulate a crash half-way)."""
    f.write(data)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


STALE_TEMP_S = 10 * 60  # a temp file of the same target untouched this long is left by a kill

_WRITE_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file would exceed the file-size limit set for this process (ulimit -f)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _write_error(path: Path, e: OSError) -> CheckpointError:
    """The user's path and the reason in words; never the hidden temp file's name."""
    why = _WRITE_REASONS.get(e.errno) or e.strerror or str(e)
    return CheckpointError(f"{path}: cannot be saved ({why})")


def _target_folder(path: Path) -> Path:
    """The folder ``path`` goes into, created if missing; refused clearly when a part of it is
    a file (mkdir would only say "File exists") or the target itself is a folder."""
    folder = path.parent if str(path.parent) else Path(".")
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise CheckpointError(f"{path}: cannot be saved there: {p} is a file, not a "
                                      "folder")
            break
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give a file name ending in {SUFFIX}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(path, e) from None
    return folder


def remove_stale_temps(path: str | Path, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Delete hidden temp files of ``path`` (``.NAME.XXXX.tmp``) that a killed save left behind.

    Rule: only files of this very target whose last change is more than ``older_than_s`` ago.
    A save writes its temp file in well under a second and renames it at once, so an old one
    belongs to no running writer; the age (not a process id) also holds for folders shared
    between machines."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    now = time.time()
    removed = []
    for p in folder.glob(glob.escape(f".{path.name}.") + "*.tmp"):
        try:
            if now - p.lstat().st_mtime > older_than_s:
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a flushed, fsync'ed hidden temp file beside ``path`` (not yet renamed)."""
    folder = _target_folder(path)
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            os.chmod(tmp, mode)
        except OSError:
            pass
    except BaseException as e:
        _unlink(Path(tmp))
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise
    return Path(tmp)


def _commit(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as e:
        _unlink(tmp)
        raise _write_error(path, e) from None
    _fsync_dir(path.parent if str(path.parent) else Path("."))


def _unlink(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.
    Every failure is a :class:`CheckpointError` naming ``path`` (never the temp file)."""
    path = Path(path)
    _commit(_write_temp(path, data), path)
    return path


def check_writable(path: str | Path, optimizer: bool = True) -> None:
    """Raise :class:`CheckpointError` unless a save to ``path`` (and, with ``optimizer``, its
    optimizer file) can be written: a temp file is created and removed there, as a save does.
    Called before training, so that a bad output folder costs no work."""
    path = Path(path)
    if optimizer and optimizer_path(path).is_dir():
        raise CheckpointError(f"{optimizer_path(path)}: is a folder, so the optimizer state "
                              "cannot be saved beside the model")
    _unlink(_write_temp(path, b""))


# -- header ------------------------------------------------------------------------------------
def _check_regular_file(path: Path) -> int:
    """The size of ``path``, a regular file; anything else is refused before it is opened (a
    named pipe would block the reader forever, a device such as /dev/zero never ends)."""
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: is not a regular file (a named pipe, device or socket); "
                              "a checkpoint must be a .safetensors file")
    return st.st_size


def _read_header(path: Path) -> tuple[dict, int]:
    """The parsed JSON header of a safetensors file and the file size, checked for truncation.
    Reads only the header: never the weights, never code."""
    try:
        size = _check_regular_file(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: not a safetensors file (only {size} bytes long)")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > _MAX_HEADER or 8 + n > size:
                if 8 + n > size and 2 <= n <= _MAX_HEADER:
                    raise CheckpointError(
                        f"{path}: the file is truncated (the header needs {8 + n:,} bytes, the "
                        f"file has {size:,})")
                raise CheckpointError(
                    f"{path}: not a safetensors file (its first bytes are not a safetensors "
                    "header; pickled PyTorch files are refused on purpose)")
            raw = f.read(n)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a safetensors file (the header is not JSON)") \
            from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a safetensors file (its JSON header is nested too "
                              "deeply to be read)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (the header is not a JSON object)")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{path}: damaged safetensors header (entry {key!r})")
        end = max(end, offsets[1])
    if 8 + n + end > size:
        raise CheckpointError(
            f"{path}: the file is truncated (the weights need {8 + n + end:,} bytes, the file "
            f"has {size:,}); it was probably cut off while being copied or written")
    return header, size


def _metadata(path: Path, header: dict, expected_format: str) -> dict[str, str]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not meta:
        raise CheckpointError(
            f"{path}: the safetensors file has no metadata, so it was not written by "
            "Transformer Explorer (it needs the model config and tokenizer)")
    fmt = meta.get("format")
    if fmt != expected_format:
        if fmt is None:
            raise CheckpointError(f"{path}: the metadata has no 'format' entry; expected "
                                  f"{expected_format!r}")
        raise CheckpointError(f"{path}: unsupported format {fmt!r} (expected {expected_format!r})")
    return meta


def _json_field(path: Path, meta: dict, key: str, default: Any = None) -> Any:
    if key not in meta:
        if default is not None:
            return default
        raise CheckpointError(f"{path}: the metadata has no {key!r} entry")
    try:
        return json.loads(meta[key])
    except (TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the {key!r} metadata is not valid JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: the {key!r} metadata is JSON nested too deeply to be "
                              "read") from None


def _parse_metadata(path: Path, meta: dict) -> tuple[ModelConfig, Tokenizer, dict]:
    cfg_d = _json_field(path, meta, "config")
    try:
        config = ModelConfig.from_dict(cfg_d)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: incompatible model config: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: the model config is nested too deeply to be read") \
            from None
    tok_d = _json_field(path, meta, "tokenizer")
    try:
        tokenizer = tokenizer_from_dict(tok_d)
    except TokenizerError as e:
        raise CheckpointError(f"{path}: invalid tokenizer: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: the tokenizer is nested too deeply to be read") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{path}: the tokenizer has {tokenizer.vocab_size} characters but the model config "
            f"says vocab_size={config.vocab_size}")
    summary = _json_field(path, meta, "summary", default={})
    if not isinstance(summary, dict):
        raise CheckpointError(f"{path}: the 'summary' metadata is not a JSON object")
    return config, tokenizer, summary


def read_metadata(path: str | Path) -> dict:
    """``{"config": ModelConfig, "tokenizer": Tokenizer, "summary": dict, "id": str}``
    without reading the weights."""
    path = Path(path)
    header, _ = _read_header(path)
    meta = _metadata(path, header, FORMAT)
    config, tokenizer, summary = _parse_metadata(path, meta)
    return {"config": config, "tokenizer": tokenizer, "summary": summary,
            "id": meta.get("id", ""), "format": meta["format"]}


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        return st_load(data)
    except Exception as e:  # SafetensorError and friends: all mean a damaged file
        raise CheckpointError(f"{path}: damaged safetensors file ({e})") from None


# -- model checkpoints -------------------------------------------------------------------------
def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint stores: the state dict without the tied ``lm_head.weight``, on CPU."""
    model = unwrap_model(model)
    tied = getattr(getattr(model, "config", None), "tie_weights", False)
    out = {}
    for k, v in model.state_dict().items():
        if tied and k == "lm_head.weight":
            continue
        out[k] = v.detach().to("cpu").contiguous()
    return out


def save_checkpoint(path: str | Path, model: torch.nn.Module, tokenizer: Tokenizer,
                    summary: dict | None = None, optimizer: torch.optim.Optimizer | None = None,
                    trainer_state: dict | None = None) -> Path:
    """Write the model (and, with ``optimizer``, its state beside it) atomically."""
    path = Path(path)
    model = unwrap_model(model)
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise CheckpointError(f"{path}: cannot save a model without a ModelConfig (.config)")
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{path}: cannot save: the tokenizer has {tokenizer.vocab_size} characters but the "
            f"model has vocab_size={config.vocab_size}")
    ck_id = uuid.uuid4().hex
    summary = dict(summary or {})
    summary.setdefault("date", now_iso())
    meta = {
        "format": FORMAT,
        "config": config.to_json(),
        "tokenizer": tokenizer.to_json(),
        "summary": json.dumps(summary, default=str, ensure_ascii=False),
        "id": ck_id,
    }
    try:
        data = st_save(model_tensors(model), metadata=meta)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot serialise the weights ({e})") from None
    if optimizer is None:
        return atomic_write_bytes(path, data)
    # both files are written in full before either is renamed: a full disk or a size limit
    # leaves the previous pair as it was (and no orphan optimizer file)
    opath = optimizer_path(path)
    model_tmp = _write_temp(path, data)
    try:
        optim_tmp = _write_temp(opath, _optimizer_bytes(opath, optimizer, trainer_state, ck_id))
        # the optimizer first: a crash in between pairs a new optimizer file with an old model,
        # which the shared id detects on resume
        _commit(optim_tmp, opath)
    except BaseException:
        _unlink(model_tmp)
        raise
    _commit(model_tmp, path)
    return path


MAX_ABS_WEIGHT = 1e4  # trained weights stay far below (the shipped models: |w| < 3)


def _stored_elements(header: dict) -> int:
    """How many numbers the file's tensors hold, from the header alone."""
    total = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape):
            total += math.prod(shape)
    return total


def _check_size(path: Path, header: dict, config: ModelConfig) -> None:
    """Refuse a config that the file's weights cannot fill, or that would not fit in memory,
    before the model is built (an absurd config would allocate for minutes, then fail)."""
    from .memory import MemoryLimitError, check_fits, inference_memory

    need, held = config.n_params(), _stored_elements(header)
    # far more than the file holds: damaged metadata (a near miss is built and then reported
    # tensor by tensor, which says more)
    if need > 2 * held + 1_000_000:
        raise CheckpointError(
            f"{path}: the model config (n_layer={config.n_layer}, n_embd={config.n_embd}, "
            f"vocab_size={config.vocab_size}, block_size={config.block_size}) needs {need:,} "
            f"weights but the file holds {held:,}; its metadata is damaged")
    try:
        check_fits(inference_memory(config), "cpu", "the model")  # built on the CPU first
    except MemoryLimitError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _check_weights(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse weights that are NaN, infinite or absurdly large (a flipped bit, a damaged copy):
    such a model would load and then print nonsense as if it were a result."""
    bad, huge = [], []
    for k, v in tensors.items():
        if not v.is_floating_point() or v.numel() == 0:
            continue
        if not torch.isfinite(v).all():
            bad.append(k)
            continue
        biggest = float(v.abs().max())
        if biggest > MAX_ABS_WEIGHT:
            huge.append(f"{k} has a value of {biggest:.3g}")
    if bad:
        raise CheckpointError(f"{path}: the weights contain NaN or infinite values "
                              f"({', '.join(bad[:5])})")
    if huge:
        raise CheckpointError(
            f"{path}: the weights hold absurdly large values ({'; '.join(huge[:3])}; trained "
            f"weights stay below {MAX_ABS_WEIGHT:g}): the file is damaged")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load a checkpoint; every problem is one :class:`CheckpointError` naming file and cause."""
    path = Path(path)
    header, _ = _read_header(path)
    meta = _metadata(path, header, FORMAT)
    config, tokenizer, summary = _parse_metadata(path, meta)
    _check_size(path, header, config)
    tensors = _load_tensors(path)
    try:
        model = build_model(config)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot build the model from its config ({e})") from None
    expected = model.state_dict()
    if config.tie_weights:
        expected.pop("lm_head.weight", None)
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing weights: {', '.join(missing[:5])}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"unexpected weights: {', '.join(unexpected[:5])}"
                        + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""))
    wrong = [f"{k} has shape {tuple(tensors[k].shape)}, the config needs {tuple(v.shape)}"
             for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong[:3])
                        + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""))
    not_float = [k for k, v in expected.items()
                 if k in tensors and v.is_floating_point() and not tensors[k].is_floating_point()]
    if not_float:
        problems.append(f"not floating point: {', '.join(not_float[:5])}")
    if problems:
        raise CheckpointError(f"{path}: the weights do not match the model config "
                              f"({'; '.join(problems)})")
    _check_weights(path, tensors)
    with torch.no_grad():
        model.load_state_dict(tensors, strict=False)
    if config.tie_weights:
        model.lm_head.weight = model.wte.weight
    try:
        dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    model.to(dev).eval()
    return LoadedCheckpoint(model=model, tokenizer=tokenizer, config=config, summary=summary,
                            path=path, id=meta.get("id", ""))


# -- optimizer state ---------------------------------------------------------------------------
def encode_bytes(t: torch.Tensor) -> str:
    """A uint8 tensor (e.g. a generator state) as base64 text, for JSON metadata."""
    return base64.b64encode(t.detach().cpu().contiguous().numpy().tobytes()).decode("ascii")


def decode_bytes(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s.encode("ascii"))), dtype=torch.uint8)


def save_optimizer_state(path: str | Path, optimizer: torch.optim.Optimizer,
                         trainer_state: dict | None = None, checkpoint_id: str = "") -> Path:
    """Optimizer tensors as safetensors; param groups, scalars and trainer state as JSON."""
    path = Path(path)
    return atomic_write_bytes(path, _optimizer_bytes(path, optimizer, trainer_state,
                                                     checkpoint_id))


def _optimizer_bytes(path: Path, optimizer: torch.optim.Optimizer, trainer_state: dict | None,
                     checkpoint_id: str) -> bytes:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = v.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = v
    meta = {
        "format": OPTIM_FORMAT,
        "param_groups": json.dumps(sd["param_groups"], default=_json_default),
        "scalars": json.dumps(scalars, default=_json_default),
        "trainer_state": json.dumps(trainer_state or {}, default=_json_default),
        "id": checkpoint_id,
    }
    try:
        return st_save(tensors, metadata=meta)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot serialise the optimizer state ({e})") from None


def _json_default(v):
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return str(v)


@dataclass(frozen=True)
class OptimizerState:
    state_dict: dict  # for optimizer.load_state_dict
    trainer_state: dict
    id: str
    path: Path


def load_optimizer_state(path: str | Path) -> OptimizerState:
    """Read an optimizer file written by :func:`save_optimizer_state` (never unpickles)."""
    path = Path(path)
    header, _ = _read_header(path)
    meta = _metadata(path, header, OPTIM_FORMAT)
    groups = _json_field(path, meta, "param_groups")
    scalars = _json_field(path, meta, "scalars", default={})
    trainer_state = _json_field(path, meta, "trainer_state", default={})
    if not (isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"),
                                                                                list)
                                             for g in groups)):
        raise CheckpointError(f"{path}: the optimizer param groups are malformed")
    if not isinstance(scalars, dict) or not isinstance(trainer_state, dict):
        raise CheckpointError(f"{path}: the optimizer metadata is malformed")
    for g in groups:
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
    tensors = _load_tensors(path)
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, t in tensors.items():
            prefix, pid, name = key.split(".", 2)
            if prefix != "state":
                raise ValueError(key)
            state.setdefault(int(pid), {})[name] = t
        for pid, d in scalars.items():
            state.setdefault(int(pid), {}).update(d)
    except ValueError:
        raise CheckpointError(f"{path}: unexpected entry in the optimizer state") from None
    return OptimizerState(state_dict={"state": state, "param_groups": groups},
                          trainer_state=trainer_state, id=meta.get("id", ""), path=path)


__all__ = [
    "FORMAT", "CheckpointError", "LoadedCheckpoint", "OptimizerState", "save_checkpoint",
    "load_checkpoint", "read_metadata", "optimizer_path", "save_optimizer_state",
    "load_optimizer_state", "atomic_write_bytes", "model_tensors", "unwrap_model",
    "check_writable", "remove_stale_temps", "MAX_ABS_WEIGHT",
]
