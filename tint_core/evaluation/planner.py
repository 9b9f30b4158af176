"""Choose the number of episodes E and queries per class Q that reach a target interval at least cost.

Generation and distillation are paid per episode, queries almost nothing: more queries shrink only the binomial
part of the variance, more episodes shrink both. The planner scans Q and takes, for each, the least E that meets
the target (Student-t quantile included), then the cheapest pair.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from tint_core.evaluation.config import CostModel
from tint_core.evaluation.variance import episode_variance, predicted_half_width


class Plan(BaseModel):
    """A proposed (E, Q) with its predicted interval half width and cost."""

    n_episodes: int
    n_query: int
    predicted_half_width: float
    cost: float


def plan_evaluation(
    mu: float,
    sigma2: float,
    n_way: int,
    half_width: float,
    cost: CostModel,
    max_query: int,
    confidence: float = 0.95,
    max_episodes: int = 1_000_000,
) -> Plan:
    """Cheapest (E, Q ≤ max_query) whose predicted interval half width is at most ``half_width``.

    Args:
        mu, sigma2: expected accuracy and between-episode variance (e.g. from a pilot run's
            :func:`~tint_core.evaluation.variance.decompose_variance`).
        n_way: N.
        half_width: target half width of the interval (0.01 = ±1 point).
        cost: per-episode and per-query costs.
        max_query: largest Q the data allows (images per class minus K).

    Raises:
        ValueError: no E up to ``max_episodes`` reaches the target.
    """
    if not (0 <= mu <= 1 and sigma2 >= 0 and half_width > 0 and max_query >= 1):
        raise ValueError(f"need 0 ≤ mu ≤ 1, sigma2 ≥ 0, half_width > 0, max_query ≥ 1; got {mu}, {sigma2}, "
                         f"{half_width}, {max_query}")
    from scipy import stats  # a second to import: only where an interval is computed

    z = float(stats.norm.ppf(0.5 + confidence / 2))
    best: Plan | None = None
    for n_query in range(1, max_query + 1):
        variance = episode_variance(mu, sigma2, n_way * n_query)
        n_episodes = max(2, math.ceil(variance * (z / half_width) ** 2))
        # The t quantile exceeds z at small E, so step up until the target is really met.
        while n_episodes <= max_episodes and predicted_half_width(
            mu, sigma2, n_way, n_query, n_episodes, confidence
        ) > half_width:
            n_episodes += 1
        if n_episodes > max_episodes:
            continue
        plan = Plan(
            n_episodes=n_episodes, n_query=n_query,
            predicted_half_width=predicted_half_width(mu, sigma2, n_way, n_query, n_episodes, confidence),
            cost=n_episodes * (cost.per_episode + n_way * n_query * cost.per_query),
        )
        if best is None or (plan.cost, plan.n_episodes) < (best.cost, best.n_episodes):
            best = plan
    if best is None:
        raise ValueError(f"no plan with at most {max_episodes} episodes reaches ±{half_width}")
    return best
