"""Capture buffers: what a stepped context window recorded, row by row, in arrays that grow up
to block-size capacity and that results view without copying (:class:`CaptureBuffers`), and the
copy of one forward pass's :class:`~model.capture.Recording` into them (:func:`store`).
"""
from __future__ import annotations

import numpy as np
import torch

from .capture import Recording
from .config import CaptureSpec, ModelConfig
from .step_result import QKScores
from .topk import topk_rows

#: the least a buffer grows to (a few steps past a short prompt without another copy)
MIN_ROWS = 64
#: a set of buffers whose float32 arrays would pass this many bytes at block-size capacity
#: keeps its large per-position values (:data:`HALF_NAMES`) in float16. A GPT-2-small's set
#: at 1,024 tokens is 0.95 GB in float32, and a full-window pass (a slid step, a new prompt)
#: makes the next set while the window still shows the last one: two sets at once. The
#: shipped and test models stay far below it, in float32.
HALF_ABOVE_BYTES = 256 * 2**20
#: what float16 holds well enough to look at (3 significant digits; weights in [0, 1] to
#: ±0.0005): the attention maps, the sublayers' outputs, the FFN's activations and the
#: queries, keys, values and heads. The residual stream (the logit lens reads it), the
#: embeddings, the norm statistics and the lens stay float32.
HALF_NAMES = frozenset({"attention", "cross_attention", "attn_out", "mlp_out", "cross_out",
                        "ffn", "q", "k", "v", "heads"})


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class CaptureBuffers:
    """Capture arrays that grow up to block-size capacity; results get read-only prefix views.

    ``seen`` is how many rows some result may already show: rewriting one of them copies
    the buffers first, so older results never change. The arrays hold ``capacity`` rows (and
    columns, for the square ones) and grow by doubling (:meth:`reserve`, into fresh arrays:
    results keep viewing the old ones): a 128-token window of a GPT-2-small then touches
    10 MB of attention rather than rows scattered over 600 MB of block-size (1024²) maps.
    """

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], type]],
                 zeroed: bool = True, rows: int | None = None, qk_scores: bool = False,
                 qk_shown: bool = True):
        self.shapes = shapes  # name -> (full shape, axes that have block-size length, dtype)
        # the views' "scores" are QKScores of the "q" and "k" arrays (not kept: 0.6 GB for a
        # GPT-2-small at 1,024 tokens, its queries and keys 75 MB); without ``qk_shown`` the
        # views have no "q" and "k" of their own (CaptureSpec.qkv is off)
        self.qk_scores, self.qk_shown = qk_scores, qk_shown
        shape, axes, _ = next(iter(shapes.values()))
        self.block = shape[axes[0]]
        # room for half as many steps again before the first growth (a copy of everything)
        self.capacity = self.block if rows is None else \
            min(self.block, max(rows + rows // 2, MIN_ROWS))
        # zeroed=False when the first write fills every entry (a full window): zeroing 10+ MB
        # each slid step costs more than the rest of the bookkeeping
        new = np.zeros if zeroed else np.empty
        self.arrays = {n: new(self._shape(n, self.capacity), dtype=d)
                       for n, (_, _, d) in shapes.items()}
        self.seen = 0
        # float16 values (see HALF_ABOVE_BYTES): a large model's
        self.half = any(d == np.float16 for _, _, d in shapes.values())

    def _shape(self, name: str, capacity: int) -> tuple[int, ...]:
        shape, axes, _ = self.shapes[name]
        return tuple(capacity if i in axes else s for i, s in enumerate(shape))

    def full_nbytes(self) -> int:
        """Bytes of the arrays at block-size capacity."""
        return sum(int(np.prod(s)) * np.dtype(d).itemsize for s, _, d in self.shapes.values())

    def _prefix(self, name: str, n: int) -> tuple:
        shape, axes, _ = self.shapes[name]
        return tuple(slice(0, n) if i in axes else slice(None) for i in range(len(shape)))

    def _fresh(self, capacity: int, keep: int) -> None:
        """New zeroed arrays of ``capacity`` holding rows [:keep] of the current ones."""
        fresh = {n: np.zeros(self._shape(n, capacity), dtype=d)
                 for n, (_, _, d) in self.shapes.items()}
        for n, a in self.arrays.items():
            sl = self._prefix(n, keep)
            fresh[n][sl] = a[sl]
        self.arrays, self.capacity = fresh, capacity

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` rows (at most the block size)."""
        if rows > self.capacity:
            self._fresh(min(self.block, max(rows, 2 * self.capacity)), self.capacity)
            self.seen = 0  # no result views the new arrays

    def make_writable(self, row: int) -> None:
        if row < self.seen:  # copy-on-write: keep rows [:row], forget the rest
            self._fresh(self.capacity, row)
            self.seen = row

    def write(self, name: str, row: int, data: np.ndarray) -> None:
        """Store rows row..row+t. Square (…, T, T) arrays also get columns [:row+t]."""
        a = self.arrays[name]
        t = data.shape[-2] if len(self.shapes[name][1]) == 2 else None
        if t is not None:
            a[..., row:row + t, :row + t] = data
        else:
            axis = self.shapes[name][1][0]
            idx = (slice(None),) * axis + (slice(row, row + data.shape[axis]),)
            a[idx] = data

    def views(self, n: int) -> dict[str, np.ndarray]:
        self.seen = max(self.seen, n)
        out = {}
        for name, a in self.arrays.items():
            v = a[self._prefix(name, n)]
            v.flags.writeable = False
            out[name] = v
        if self.qk_scores:
            out["scores"] = QKScores(out["q"], out["k"])
            if not self.qk_shown:
                del out["q"], out["k"]
        return out


def new_buffers(config: ModelConfig, spec: CaptureSpec, lens_k: int, additive_positions: bool,
                zeroed: bool = True, rows: int | None = None,
                source_len: int | None = None) -> CaptureBuffers:
    """Empty buffers for what ``spec`` records, for a window of up to ``config.block_size``
    tokens, with room for ``rows`` of them and some steps after (None: all). An
    encoder-decoder's decoder (``source_len``: the tokens of its source) also keeps its
    cross-attention, (L, H, T, S), and the cross-attention sublayer's output (L, T, C).
    :data:`HALF_NAMES` are float16 when the float32 set would pass :data:`HALF_ABOVE_BYTES`."""
    L, H, B, C, F, k = (config.n_layer, config.n_head, config.block_size, config.n_embd,
                        config.n_ffn, lens_k)
    f32, i64 = np.float32, np.int64
    shapes: dict = {}
    if spec.attention:
        shapes["attention"] = ((L, H, B, B), (2, 3), f32)
    if spec.residual:
        shapes["residual"] = ((L + 1, B, C), (1,), f32)
    if spec.sublayers:
        shapes["attn_out"] = ((L, B, C), (1,), f32)
        shapes["mlp_out"] = ((L, B, C), (1,), f32)
    if source_len is not None:
        if spec.attention:
            shapes["cross_attention"] = ((L, H, B, source_len), (2,), f32)
        if spec.scores:
            shapes["cross_scores"] = ((L, H, B, source_len), (2,), f32)
        if spec.sublayers:
            shapes["cross_out"] = ((L, B, C), (1,), f32)
    if spec.ffn:
        shapes["ffn"] = ((L, B, F), (1,), f32)
    if spec.norms:  # ln_1, ln_2 (and a decoder of an encoder-decoder's ln_3) of every layer,
        # and pre-norm's final norm
        per = 3 if config.kind == "encoder-decoder" else 2
        n_norms = per * L + (1 if config.norm == "pre" else 0)
        shapes["norm_stats"] = ((n_norms, B, 2), (1,), f32)
    if spec.embeddings:
        shapes["tok_emb"] = ((B, C), (0,), f32)
        if additive_positions:
            shapes["pos_emb"] = ((B, C), (0,), f32)
    if spec.qkv or spec.scores:  # the scores are computed from the queries and keys
        hs = config.head_size
        for name in ("q", "k", "v") if spec.qkv else ("q", "k"):
            shapes[name] = ((L, H, B, hs), (2,), f32)
    if spec.qkv:
        shapes["heads"] = ((L, B, C), (1,), f32)
    if spec.logit_lens:
        shapes["lens_ids"] = ((L + 1, B, k), (1,), i64)
        shapes["lens_probs"] = ((L + 1, B, k), (1,), f32)
    if sum(int(np.prod(shape)) * np.dtype(d).itemsize
           for shape, _, d in shapes.values()) > HALF_ABOVE_BYTES:
        shapes = {n: (shape, axes, np.float16 if n in HALF_NAMES else d)
                  for n, (shape, axes, d) in shapes.items()}
    return CaptureBuffers(shapes, zeroed=zeroed, rows=rows, qk_scores=spec.scores,
                          qk_shown=spec.qkv)


def store(bufs: CaptureBuffers, rec: Recording, spec: CaptureSpec, past: int, lens_k: int,
          lens: tuple[torch.Tensor, torch.Tensor, int] | None = None) -> None:
    """Copy what ``rec`` recorded for rows past…past+t into ``bufs`` (emptying ``rec``'s
    per-layer lists as it goes). A recording with ``defer_lens`` has no logit lens: give its
    top-k as ``lens`` (:func:`model.lens.lens_topk`); positions before its ``first`` hold id -1
    and probability NaN (not computed)."""
    if spec.logit_lens:
        _write_lens(bufs, rec, past, lens_k, lens)
    if spec.attention:
        _write_layers(bufs, "attention", past, rec.attn_probs)  # L × (1, H, t, Tk)
    if spec.residual:
        _write_layers(bufs, "residual", past, rec.resid)  # (L+1) × (1, t, C)
    if "cross_attention" in bufs.arrays:
        _write_layers(bufs, "cross_attention", past, rec.cross_attn_probs)  # L × (1, H, t, S)
    if "cross_scores" in bufs.arrays:
        _write_layers(bufs, "cross_scores", past, rec.cross_attn_scores)
    if "cross_out" in bufs.arrays:
        _write_layers(bufs, "cross_out", past, rec.cross_out)  # L × (1, t, C)
    if spec.sublayers:
        _write_layers(bufs, "attn_out", past, rec.attn_out)  # L × (1, t, C)
        _write_layers(bufs, "mlp_out", past, rec.mlp_out)
    if spec.ffn:
        _write_layers(bufs, "ffn", past, rec.ffn_hidden)  # L × (1, t, F)
    if spec.norms:  # N × (1, t, 2), two numbers a row: one copy, not one per norm
        bufs.write("norm_stats", past, to_numpy(torch.stack(rec.norm_stats)[:, 0]))
    if spec.embeddings:
        bufs.write("tok_emb", past, to_numpy(rec.tok_emb[0]))  # (t, C)
        if rec.pos_emb is not None and "pos_emb" in bufs.arrays:
            bufs.write("pos_emb", past, to_numpy(rec.pos_emb))
    if "q" in bufs.arrays:  # CaptureSpec.qkv, or the scores' queries and keys (qk_scores)
        for name, tensors in (("q", rec.q), ("k", rec.k), ("v", rec.v)):
            if name not in bufs.arrays:
                continue
            arr = bufs.arrays[name]
            for i, x in enumerate(tensors):  # (1, H, t, hs)
                _copy(x[0], arr[i, :, past:past + x.shape[2]])
    if spec.qkv:
        _write_layers(bufs, "heads", past, rec.heads)  # L × (1, t, C)


def _write_lens(bufs: CaptureBuffers, rec: Recording, past: int, lens_k: int,
                lens: tuple[torch.Tensor, torch.Tensor, int] | None) -> None:
    if lens is not None:
        values, indices, first = lens
    elif rec.logit_lens is not None:
        probs = torch.softmax(rec.logit_lens[:, 0].float(), dim=-1)  # (L+1, t, V)
        values, indices = topk_rows(probs, lens_k)  # (L+1, t, k)
        first = 0
    else:
        raise ValueError("the recording has no logit lens (defer_lens): pass its top-k as lens")
    if first:  # positions the lens left out: shown as not computed
        bufs.arrays["lens_ids"][:, past:past + first] = -1
        bufs.arrays["lens_probs"][:, past:past + first] = np.nan
    bufs.write("lens_ids", past + first, indices.cpu().numpy())
    bufs.write("lens_probs", past + first, to_numpy(values))


def _write_layers(bufs: CaptureBuffers, name: str, past: int, tensors: list) -> None:
    """Copy per-layer tensors (1, …) into buffer ``name`` at rows past…past+t, one layer at a
    time, dropping each from the (local) recording once copied: the whole (L, …) stack never
    exists twice (a GPT-2-small's attention at 1024 tokens is 600 MB per copy)."""
    arr = bufs.arrays[name]
    axes = bufs.shapes[name][1]
    square = len(axes) == 2  # (L, H, T, T) vs (L, T, X) or (L, H, T, S)
    for i in range(len(tensors)):
        x = tensors[i][0]  # (H, t, Tk), (t, X) or (H, t, S)
        tensors[i] = None
        t = x.shape[-2]
        if square:
            dst = arr[i, :, past:past + t, :past + t]
        else:
            dst = arr[i, :, past:past + t] if axes == (2,) else arr[i, past:past + t]
        _copy(x, dst)


def _copy(x: torch.Tensor, dst: np.ndarray) -> None:
    """``dst[...] = x`` (converted to ``dst``'s dtype), unless the pass computed or kept ``x``
    there already (Recording.out)."""
    same = (x.device.type == "cpu" and x.element_size() == dst.itemsize
            and x.data_ptr() == dst.ctypes.data and tuple(x.shape) == dst.shape
            and tuple(s * x.element_size() for s in x.stride()) == dst.strides)
    if not same:
        dst[...] = to_numpy(x)


__all__ = ["CaptureBuffers", "new_buffers", "store", "to_numpy"]
