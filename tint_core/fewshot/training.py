"""Pieces shared by every training loop here: optimiser choice, learning-rate schedule, curves."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from pydantic import BaseModel, Field

from tint_core.fewshot.config import OptimizerName


def make_optimizer(
    params: Iterable[torch.nn.Parameter], name: OptimizerName, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum) or AdamW."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adamw'")


def one_cycle(optimizer: torch.optim.Optimizer, lr: float, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Warm up over the first 15% of steps, then cosine decay: robust across the short runs used here."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 2), pct_start=0.15)


class TrainingCurves(BaseModel):
    """Metrics of one training run, ``curves[name][i]`` per epoch (pre-training) or per step (students), and the
    optimiser steps it took."""

    curves: dict[str, list[float]] = Field(default_factory=dict)
    steps: int = Field(0, description="optimiser steps taken (counted by the loops that record them per step)")

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.curves.setdefault(name, []).append(float(value))

    def step(self, **values: float) -> None:
        """Record one optimiser step and its metrics."""
        self.steps += 1
        self.add(**values)

    def last(self, name: str) -> float:
        return self.curves[name][-1]
