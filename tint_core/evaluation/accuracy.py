"""Per-episode accuracy and the mean over episodes with its 95% confidence interval (SPEC §8)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import BaseModel


def episode_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of the (n, n_way) logits rows whose argmax equals the (n,) labels."""
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        shapes = f"{tuple(logits.shape)}, {tuple(labels.shape)}"
        raise ValueError(f"expected (n, n_way) logits and (n,) labels, got {shapes}")
    return float((logits.argmax(1) == labels).float().mean())


def t_quantile(n_episodes: int, confidence: float = 0.95) -> float:
    """Two-sided Student-t quantile with E − 1 degrees of freedom (1.96 for large E at 95%)."""
    if n_episodes < 2:
        raise ValueError(f"an interval needs at least 2 episodes, got {n_episodes}")
    from scipy import stats  # a second to import: only where an interval is computed

    return float(stats.t.ppf(0.5 + confidence / 2, df=n_episodes - 1))


class AccuracySummary(BaseModel):
    """Mean accuracy over E episodes; ``half_width`` is the confidence interval's half width, not a deviation."""

    mean: float
    half_width: float
    sd: float
    n_episodes: int
    confidence: float

    def __str__(self) -> str:
        level = round(100 * self.confidence)
        return f"{100 * self.mean:.2f}% ± {100 * self.half_width:.2f} ({level}% interval, {self.n_episodes} episodes)"


def summarize(accuracies: Sequence[float] | torch.Tensor, confidence: float = 0.95) -> AccuracySummary:
    """Mean ± t_{E−1} · sd / sqrt(E) of per-episode accuracies (the Student-t quantile keeps small E honest)."""
    values = torch.as_tensor(accuracies, dtype=torch.float64).flatten()
    n = values.numel()
    sd = float(values.std(unbiased=True))
    return AccuracySummary(
        mean=float(values.mean()), half_width=t_quantile(n, confidence) * sd / math.sqrt(n), sd=sd, n_episodes=n,
        confidence=confidence,
    )
