"""GPT-2's weight layout <-> this project's GPT.

GPT-2 (OpenAI's code, Hugging Face's ``GPT2LMHeadModel``) and nanoGPT name their tensors
``transformer.wte``, ``transformer.h.N.attn.c_attn`` ... like this project does, with three
differences: the ``transformer.`` prefix, the positional table ``wpe`` (here ``pe.wpe``), and
Hugging Face's ``Conv1D`` layers, which store a weight as (in, out) where ``nn.Linear`` stores
(out, in). The query, key and value projections stay fused in ``c_attn`` on both sides (split
in that order along the output dimension), so no reshuffling of heads is needed.
"""
from __future__ import annotations

import re

import torch
from torch.overrides import TorchFunctionMode

from ..checkpoints import CheckpointError
from ..config import ModelConfig
from ..transformer import GPT

# weights stored transposed by Hugging Face's Conv1D
_CONV1D = re.compile(r"^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")
# buffers of older GPT-2 code (the causal mask), not weights
_BUFFERS = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
_PREFIXES = ("_orig_mod.", "module.", "transformer.")


def _ours(key: str) -> str:
    """A GPT-2 key without prefixes -> this project's name."""
    return "pe.wpe.weight" if key == "wpe.weight" else key


def _theirs(key: str) -> str:
    return "wpe.weight" if key == "pe.wpe.weight" else key


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def _shape(t) -> tuple[int, ...]:
    return tuple(t.shape)


class _SkipInit(TorchFunctionMode):
    """Inside it, the random initialisation of new layers does nothing (their memory is left
    as allocated): a model whose every weight is about to be replaced skips seconds of random
    numbers at GPT-2 size. A torch function mode is per thread, so a model built meanwhile in
    another thread (a training run) is initialised as usual."""

    _SKIPPED = frozenset({"normal_", "uniform_", "kaiming_uniform_", "trunc_normal_", "zeros_",
                          "ones_", "zero_", "fill_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self._SKIPPED:
            return args[0] if args else (kwargs or {}).get("tensor")
        return func(*args, **(kwargs or {}))


def gpt_from_gpt2_state(state: dict[str, torch.Tensor], config: ModelConfig, *, conv1d: bool,
                        source: str, config_name: str = "the config") -> GPT:
    """Build a GPT from a state dict in GPT-2's layout. ``conv1d``: weights are stored (in, out)
    (Hugging Face) rather than (out, in) (nanoGPT). Every mismatch is one :class:`CheckpointError`
    naming the tensor and both shapes."""
    if config.pos_kind != "learned" or config.norm != "pre":
        raise ValueError("GPT-2 layout means learned positions and pre-norm")
    # every weight is replaced by the file's (a GPT-2-layout model has no buffers to compute)
    with _SkipInit():
        model = GPT(config)
    expected = model.state_dict()
    if config.tie_weights:
        expected.pop("lm_head.weight")
    tensors: dict[str, torch.Tensor] = {}
    original: dict[str, str] = {}  # our name -> the file's name, for messages
    unexpected = []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. a version number some exporters store beside the tensors
        short = _strip(key)
        if _BUFFERS.match(short):
            continue
        name = _ours(short)
        if name == "lm_head.weight" and config.tie_weights:
            continue  # the same matrix as wte: it is tied again below
        if name not in expected:
            unexpected.append(key)
            continue
        if conv1d and _CONV1D.match(short) and value.dim() == 2:
            value = value.t()  # a view: the file's (in, out) layout is kept (see below)
        tensors[name] = value
        original[name] = key
    missing = [_theirs(k) for k in expected if k not in tensors]
    problems = []
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None or got.shape == want.shape:
            continue
        flip = conv1d and _CONV1D.match(name) is not None
        shown_got = _shape(got.t()) if flip else _shape(got)
        shown_want = _shape(want.t()) if flip else _shape(want)
        problems.append(f"{original[name]} has shape {shown_got}, {config_name} needs "
                        f"{shown_want}")
    if problems or missing or unexpected:
        parts = problems[:3] + ([f"and {len(problems) - 3} more wrong shapes"]
                                if len(problems) > 3 else [])
        if missing:
            parts.append("missing " + ", ".join(missing[:4])
                         + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:4])
                         + (f" and {len(unexpected) - 4} more" if len(unexpected) > 4 else ""))
        raise CheckpointError(f"{source}: the weights do not match {config_name}: "
                              + "; ".join(parts))
    bad = [original[k] for k, v in tensors.items()
           if not v.is_floating_point() or not _all_finite(v)]
    if bad:
        raise CheckpointError(f"{source}: these weights are not finite numbers: "
                              f"{', '.join(bad[:5])}")
    if config.tie_weights and "wte.weight" in tensors:
        # the unembedding as (C, V) in memory (the parameter stays a (V, C) view of it)
        tensors["wte.weight"] = tensors["wte.weight"].t().contiguous().t()
    with torch.no_grad():
        # no copy into nn.Linear's own (out, in) layout: each weight is a transposed view of
        # the file's (in, out) tensor (the embedding one of its (C, V) copy). For one new token
        # (a generation step) x @ W with W stored (in, out) is 1.5-1.7x faster than with W
        # stored (out, in) on MKL (measured for GPT-2-small's c_attn, c_fc and the 50,257-row
        # unembedding; about equal for prompts), it is the layout transformers computes with,
        # and opening a folder copies 340 MB less.
        model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()},
                              strict=False, assign=True)
    if config.tie_weights:
        model.lm_head.weight = model.wte.weight
    return model.eval()


def _all_finite(v: torch.Tensor) -> bool:
    """No NaN or infinity in ``v``. The smallest and largest value in one pass (NaN
    propagates to both): 12× faster than ``isfinite(v).all()``, which builds a bool tensor of
    every weight (2.3 s of a GPT-2-small's 5 s load here)."""
    if v.numel() == 0:
        return True
    lo, hi = torch.aminmax(v)
    return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))


def gpt2_state_from_gpt(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights under Hugging Face ``GPT2LMHeadModel``'s names and layout (Conv1D
    weights (in, out); zero biases where this model has none, which computes the same)."""
    config = model.config
    if config.pos_kind != "learned":
        raise CheckpointError(
            f"GPT-2's format has a learned positional table only; this model uses "
            f"{config.pos_kind!r} positions, so it cannot be saved in Hugging Face's GPT-2 format")
    if config.norm != "pre":
        raise CheckpointError("GPT-2's format is pre-norm only; this model is post-norm, so it "
                              "cannot be saved in Hugging Face's GPT-2 format")
    sd = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, value in sd.items():
        if name == "lm_head.weight":
            if not config.tie_weights:
                out[name] = value
            continue
        short = _theirs(name)
        if _CONV1D.match(short):
            value = value.t()
        out["transformer." + short] = value
    if not config.bias:  # GPT-2 always has biases: zeros add nothing
        d, f = config.n_embd, config.n_ffn
        zeros = {"ln_1.bias": d, "ln_2.bias": d, "attn.c_attn.bias": 3 * d,
                 "attn.c_proj.bias": d, "mlp.c_fc.bias": f, "mlp.c_proj.bias": d}
        for i in range(config.n_layer):
            for k, n in zeros.items():
                out[f"transformer.h.{i}.{k}"] = torch.zeros(n)
        out["transformer.ln_f.bias"] = torch.zeros(d)
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in out.items()}


__all__ = ["gpt_from_gpt2_state", "gpt2_state_from_gpt"]
