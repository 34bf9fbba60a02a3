"""Top-k along the last axis, fast for a small vocabulary (the logit lens of a stepped window).

Used by the Stepper for the logit lens: (L+1) × T rows of a character vocabulary each step.
"""
from __future__ import annotations

import torch

_SMALL_VOCAB = 1024  # up to here _topk transposes the probabilities (V/1024 × their size)
_MANY_ROWS = 64  # below this torch.topk is faster (a cached step has L+1 rows)


def topk_rows(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``probs.topk(k, dim=-1)`` as (values, int64 indices), several times faster for a small
    vocabulary: on a CPU torch.topk over rows of 65 costs ~0.6 µs a row (0.8 ms for the logit
    lens of a full 256-token window), while a max down the columns of the transposed (V, N)
    matrix is vectorised across rows. k rounds of "take each row's max, then blank it"; among
    equal values the lowest id comes first (torch.topk leaves the order of ties unspecified)."""
    V = probs.shape[-1]
    if V > _SMALL_VOCAB or probs.numel() < _MANY_ROWS * V or probs.device.type != "cpu":
        top = probs.topk(k, dim=-1)
        return top.values, top.indices
    lead = probs.shape[:-1]
    q = probs.reshape(-1, V).t().contiguous()  # (V, N)
    # weight V - id: the largest weight among a row's maxima marks its lowest id
    w = torch.arange(V, 0, -1, dtype=q.dtype, device=q.device).unsqueeze(1)  # (V, 1)
    values = q.new_empty((k, q.shape[1]))  # (k, N)
    indices = torch.empty((k, q.shape[1]), dtype=torch.long, device=q.device)  # (k, N)
    for r in range(k):
        m = q.amax(dim=0, keepdim=True)  # (1, N)
        # 1.0 where q equals its column's max (q - m == 0; in-place ops keep it float: fast)
        hit = q.sub(m).eq_(0).mul_(w).amax(dim=0, keepdim=True)  # (1, N) V - lowest such id
        i = hit.neg_().add_(V).long().clamp_(max=V - 1)  # (1, N); clamp: NaN rows match nothing
        values[r] = m[0]
        indices[r] = i[0]
        q.scatter_(0, i, float("-inf"))  # exclude the pick from the next round
    if torch.isnan(values).any():  # NaN probabilities: torch.topk's own ordering
        top = probs.topk(k, dim=-1)
        return top.values, top.indices
    return (values.t().reshape(*lead, k).contiguous(),
            indices.t().reshape(*lead, k).contiguous())
