"""Where the spread of episode accuracies comes from (SPEC §8).

Episode e has a true accuracy p_e (mean μ, between-episode variance σ²) and its measured accuracy averages
n = N·Q Bernoulli(p_e) outcomes, so

    Var(Â_e) = σ² (1 − 1/n) + μ (1 − μ) / n        and        Var(mean of E episodes) = Var(Â_e) / E.

σ² is estimated by solving the first equation for it with the sample variance and mean of the observed accuracies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import BaseModel

from tint_core.evaluation.accuracy import t_quantile


class VarianceDecomposition(BaseModel):
    """Observed per-episode variance split into its between-episode and binomial (finite-query) parts."""

    mean: float
    observed_variance: float
    between_episode_variance: float
    binomial_variance: float
    n_per_episode: int


def episode_variance(mu: float, sigma2: float, n_per_episode: int) -> float:
    """Var(Â_e) = σ² (1 − 1/n) + μ (1 − μ) / n for n = N·Q queries per episode."""
    n = n_per_episode
    return sigma2 * (1 - 1 / n) + mu * (1 - mu) / n


def decompose_variance(accuracies: Sequence[float] | torch.Tensor, n_per_episode: int) -> VarianceDecomposition:
    """Estimate σ² from per-episode accuracies measured on ``n_per_episode`` = N·Q queries each.

    The estimate is clipped at 0: with few episodes the sample variance can fall below the binomial part.
    """
    values = torch.as_tensor(accuracies, dtype=torch.float64).flatten()
    if values.numel() < 2:
        raise ValueError("need at least 2 episodes to estimate a variance")
    if n_per_episode < 2:
        raise ValueError(f"n_per_episode must be at least 2, got {n_per_episode}")
    mu, observed = float(values.mean()), float(values.var(unbiased=True))
    n = n_per_episode
    sigma2 = max(0.0, (observed - mu * (1 - mu) / n) / (1 - 1 / n))
    return VarianceDecomposition(
        mean=mu, observed_variance=observed, between_episode_variance=sigma2,
        binomial_variance=episode_variance(mu, sigma2, n) - sigma2, n_per_episode=n,
    )


def predicted_half_width(
    mu: float, sigma2: float, n_way: int, n_query: int, n_episodes: int, confidence: float = 0.95
) -> float:
    """Expected half width of the interval on the mean accuracy of E episodes with Q queries per class."""
    return t_quantile(n_episodes, confidence) * math.sqrt(episode_variance(mu, sigma2, n_way * n_query) / n_episodes)
