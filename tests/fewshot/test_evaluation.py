import math

import numpy as np
import pytest
import torch

from tint_core.evaluation import (
    CostModel,
    decompose_variance,
    episode_accuracy,
    plan_evaluation,
    predicted_half_width,
    summarize,
)


def _simulate(mu, sigma2, n_way, n_query, n_episodes, replications, seed):
    """Per-episode accuracies (replications, E): p_e ~ Beta(mean mu, variance sigma2), then N·Q Bernoulli draws."""
    rng = np.random.default_rng(seed)
    strength = mu * (1 - mu) / sigma2 - 1  # Beta(a, b) with a + b = strength has the wanted variance
    p = rng.beta(mu * strength, (1 - mu) * strength, size=(replications, n_episodes))
    n = n_way * n_query
    return torch.from_numpy(rng.binomial(n, p) / n)


def test_episode_accuracy_counts_argmax_hits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert episode_accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


def test_interval_uses_the_student_t_quantile_and_is_not_the_standard_deviation():
    summary = summarize([0.5, 0.7, 0.6, 0.8])
    sd = torch.tensor([0.5, 0.7, 0.6, 0.8]).std().item()
    assert summary.sd == pytest.approx(sd)
    assert summary.half_width == pytest.approx(3.182446 * sd / 2, rel=1e-5)  # t_{0.975, 3}
    large = summarize(torch.linspace(0, 1, 600))
    assert large.half_width == pytest.approx(1.9640 * large.sd / math.sqrt(600), rel=1e-3)
    assert "± " in str(summary) and "interval" in str(summary)


def test_estimated_sigma2_and_predicted_width_match_the_spread_of_simulated_replications():
    mu, sigma2, n_way, n_query, n_episodes = 0.7, 0.01, 5, 15, 200
    accuracies = _simulate(mu, sigma2, n_way, n_query, n_episodes, replications=400, seed=0)
    estimates = torch.tensor([decompose_variance(row, n_way * n_query).between_episode_variance for row in accuracies])
    # σ̂² is unbiased up to the μ̂(1 − μ̂) plug-in: its mean over 400 replications is within 5% of the truth.
    assert float(estimates.mean()) == pytest.approx(sigma2, rel=0.05)
    # The predicted half width matches 1.96 × the empirical sd of the 400 replicated means within 10%.
    empirical = 1.96 * float(accuracies.mean(1).std())
    assert predicted_half_width(mu, sigma2, n_way, n_query, n_episodes) == pytest.approx(empirical, rel=0.10)


def test_binomial_part_dominates_when_episodes_do_not_differ():
    accuracies = _simulate(0.8, 1e-9, 5, 3, 500, replications=1, seed=1)[0]
    decomposition = decompose_variance(accuracies, 15)
    assert decomposition.between_episode_variance < 0.2 * decomposition.binomial_variance
    assert decomposition.binomial_variance == pytest.approx(0.8 * 0.2 / 15, rel=0.1)


def test_planner_prefers_many_queries_when_episodes_are_expensive_and_meets_its_target_in_simulation():
    mu, sigma2, target = 0.75, 0.004, 0.02
    expensive = plan_evaluation(mu, sigma2, 5, target, CostModel(per_episode=100.0, per_query=0.01), max_query=40)
    cheap = plan_evaluation(mu, sigma2, 5, target, CostModel(per_episode=1.0, per_query=1.0), max_query=40)
    assert expensive.n_query > cheap.n_query and expensive.n_episodes < cheap.n_episodes
    assert expensive.predicted_half_width <= target
    # One episode fewer would miss the target: the plan is the least E for its Q.
    assert predicted_half_width(mu, sigma2, 5, expensive.n_query, expensive.n_episodes - 1) > target
    means = _simulate(mu, sigma2, 5, expensive.n_query, expensive.n_episodes, replications=2000, seed=2).mean(1)
    assert 1.96 * float(means.std()) <= target * 1.05  # the realised 95% half width meets the target (5% slack)
    covered = ((means - mu).abs() <= target).double().mean()
    assert float(covered) >= 0.93


def test_impossible_targets_are_refused():
    with pytest.raises(ValueError, match="no plan"):
        plan_evaluation(0.5, 0.05, 5, 0.001, CostModel(), max_query=10, max_episodes=100)
