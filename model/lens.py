"""The logit lens of a stepped window, top-k only, without the whole (L+1, T, V) tensor.

The lens puts every residual (after the embedding and after each layer) through the final norm
and the unembedding. For a character model that is a few hundred kilobytes and one batched
product; for GPT-2 (V = 50,257) at 1,024 tokens it would be 13 × 1024 × 50257 floats ≈ 2.7 GB
and about a teraflop. So, past :data:`LENS_FULL_MAX` elements:

- only the last :func:`lens_positions` positions of a pass get the lens: as many unembedding
  rows as the pass would need to give logits at every position once (a cached step: its one
  new position; a 128-token prompt of a 12-layer model: its last 10);
- their rows go through the unembedding in chunks of about :data:`LENS_CHUNK_ELEMS` logits,
  each reduced to its top-k before the next is computed.

Up to :data:`LENS_FULL_MAX` the computation is the one batched product it always was (results
bit-identical to before).

The last residual of the last position through the final norm and the unembedding is the
model's own next-token output, so :func:`lens_topk` also returns that row's logits: a caller
that records the lens (the stepper's window) takes them from here and lets the forward pass skip
its own unembedding (``Recording.logits_from_lens``), which would read the (V, C) unembedding
matrix a second time (154 MB for GPT-2: most of a cached step's memory traffic after the blocks).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .topk import topk_rows

#: (L+1)·t·V logits up to which a pass's lens is computed whole, in one product
LENS_FULL_MAX = 2**24
#: logits per chunk past that (16 MB of float32: 83 rows of GPT-2's vocabulary)
LENS_CHUNK_ELEMS = 2**22


def lens_positions(n_rows: int, t: int, vocab: int) -> int:
    """How many of a pass's ``t`` last positions get the lens, with ``n_rows`` = L+1 residuals
    per position: all of them while the whole lens is at most :data:`LENS_FULL_MAX` logits,
    else ⌈t / n_rows⌉ (the unembedding work of one row per position), at least 1."""
    if n_rows * t * vocab <= LENS_FULL_MAX:
        return t
    return min(t, max(1, math.ceil(t / n_rows)))


def lens_topk(unembed: Callable[[torch.Tensor], torch.Tensor], resid: list[torch.Tensor],
              vocab: int, k: int) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Top-k probabilities and ids of the logit lens of one pass: ``resid`` is its L+1
    residuals, each (1, t, C); ``unembed`` maps (..., C) to (..., ``vocab``) logits (final
    norm, then unembedding). Returns (values, indices, first, last): (L+1, t - first, k) for
    positions first…t-1 (see :func:`lens_positions`), and ``last`` (V,) the logits of the last
    residual at position t-1 (the model's next-token logits; a view into one product)."""
    n_rows, t = len(resid), resid[0].shape[1]
    n = lens_positions(n_rows, t, vocab)
    if n_rows * t * vocab <= LENS_FULL_MAX:  # one product, exactly as it always was
        logits = unembed(torch.stack(resid))[:, 0]  # (L+1, t, V)
        probs = torch.softmax(logits.float(), dim=-1)
        values, indices = topk_rows(probs, k)
        return values, indices, 0, logits[-1, -1]
    first = t - n
    # (R, C) the residuals that get the lens (only these are copied: 3 of GPT-2's 40 MB at 1,000)
    rows = torch.stack([r[0, first:] for r in resid]).reshape(n_rows * n, -1)
    values = torch.empty((rows.shape[0], k), dtype=torch.float32, device=rows.device)
    indices = torch.empty((rows.shape[0], k), dtype=torch.long, device=rows.device)
    step = max(1, LENS_CHUNK_ELEMS // vocab)
    for a in range(0, rows.shape[0], step):
        logits = unembed(rows[a:a + step])  # (step, V); the loop ends with the last row's
        probs = torch.softmax(logits.float(), dim=-1)
        top = probs.topk(k, dim=-1)
        values[a:a + step], indices[a:a + step] = top.values, top.indices
    return values.view(n_rows, n, k), indices.view(n_rows, n, k), first, logits[-1]


__all__ = ["LENS_CHUNK_ELEMS", "LENS_FULL_MAX", "lens_positions", "lens_topk"]
