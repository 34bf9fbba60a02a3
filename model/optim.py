"""Optimisation pieces of training: AdamW with weight-decay groups, the learning-rate schedule
(linear warm-up, cosine decay) and loading optimizer state saved on another machine."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up over ``warmup_steps``
    to ``lr``, then a cosine down to ``min_lr`` at ``steps``."""
    w = cfg.warmup_steps
    if step < w:
        return cfg.lr * (step + 1) / (w + 1)
    if step >= cfg.steps:
        return cfg.min_lr
    ratio = (step - w) / (cfg.steps - w)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


LR_SCHEDULES = ("continue", "restart")


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate per step: linear warm-up over ``warmup_steps`` from ``origin``, then a
    cosine from ``lr`` down to ``min_lr`` at ``steps``.

    A fresh run has ``origin = 0`` (the same curve as :func:`lr_at`). A resumed run either
    restarts (warm-up and cosine anew from the resumed step: ``origin = start``) or continues
    the cosine where the saved run left it: ``start_progress`` is how far along the cosine (0 to
    1) that run was at ``start_step``, and the rest of the cosine is stretched over the steps
    left. Continuing an interrupted run with the same ``steps`` gives exactly its original curve;
    a run that had reached the end of its cosine stays at ``min_lr``.
    """

    lr: float
    min_lr: float
    warmup_steps: int
    steps: int
    origin: int = 0
    start_step: int = 0
    start_progress: float | None = None

    @classmethod
    def of(cls, cfg: TrainConfig, **kw) -> LRSchedule:
        return cls(cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.steps, **kw)

    def progress(self, step: int) -> float | None:
        """How far along the cosine ``step`` is (0 to 1), or None during the warm-up."""
        if step >= self.steps:
            return 1.0
        if self.start_progress is not None:
            span = max(1, self.steps - self.start_step)
            f = self.start_progress + (1.0 - self.start_progress) * (step - self.start_step) / span
        else:
            local = step - self.origin
            if local < self.warmup_steps:
                return None
            f = (local - self.warmup_steps) / max(1, self.steps - self.origin - self.warmup_steps)
        return min(1.0, max(0.0, f))

    def __call__(self, step: int) -> float:
        f = self.progress(step)
        if f is None:
            return self.lr * (step - self.origin + 1) / (self.warmup_steps + 1)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * f)) * (self.lr - self.min_lr)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and embeddings (>= 2-D), none on biases and norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights counted once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig,
                   device: torch.device | None = None) -> torch.optim.AdamW:
    """AdamW with decay groups; the fused kernel where the device supports it (CUDA, MPS, and
    the CPU on torch >= 2.4: one kernel instead of ~10 small ops per tensor)."""
    device = device or next(model.parameters()).device
    kwargs = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if device.type in ("cuda", "mps", "cpu"):
        try:
            return torch.optim.AdamW(param_groups(model, cfg.weight_decay), fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass  # older torch or an unsupported device: the default implementation
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), **kwargs)


def apply_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict`` keeping this machine's implementation flags (fused,
    foreach, capturable), so a state saved on a GPU loads on a CPU and back."""
    groups = state.get("param_groups", [])
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(f"the saved optimizer has {len(groups)} parameter groups, this model "
                         f"needs {len(optimizer.param_groups)}")
    fixed = []
    for saved, current in zip(groups, optimizer.param_groups, strict=True):
        g = dict(saved)
        for key in ("fused", "foreach", "capturable", "differentiable"):
            if key in current:
                g[key] = current[key]
        if len(g.get("params", [])) != len(current["params"]):
            raise ValueError("the saved optimizer state belongs to a model with different "
                             "parameters")
        fixed.append(g)
    optimizer.load_state_dict({"state": state.get("state", {}), "param_groups": fixed})


def total_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The gradient norm over all parameters (what clipping would measure), as a tensor."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    get = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
    if get is not None:
        return get(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


__all__ = ["lr_at", "LR_SCHEDULES", "LRSchedule", "param_groups", "make_optimizer", "apply_optimizer_state", "total_norm"]
