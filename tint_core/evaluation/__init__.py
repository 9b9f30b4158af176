"""Honest measurement: per-episode accuracy, mean ± interval, variance decomposition, (E, Q) planning."""

from tint_core.evaluation.accuracy import AccuracySummary, episode_accuracy, summarize
from tint_core.evaluation.planner import CostModel, Plan, plan_evaluation
from tint_core.evaluation.variance import VarianceDecomposition, decompose_variance, predicted_half_width

__all__ = [
    "AccuracySummary",
    "CostModel",
    "Plan",
    "VarianceDecomposition",
    "decompose_variance",
    "episode_accuracy",
    "plan_evaluation",
    "predicted_half_width",
    "summarize",
]
