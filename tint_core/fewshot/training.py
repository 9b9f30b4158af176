"""Pieces shared by every training loop here: optimiser choice, learning-rate schedule, curves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from pydantic import BaseModel, Field

OptimizerName = Literal["sgd", "adamw"]


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
    """Per-epoch metrics of one training run: ``curves[name][epoch]``."""

    curves: dict[str, list[float]] = Field(default_factory=dict)

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.curves.setdefault(name, []).append(float(value))

    def last(self, name: str) -> float:
        return self.curves[name][-1]
