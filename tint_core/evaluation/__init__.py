"""Honest measurement: per-episode accuracy, mean ± interval, variance decomposition, (E, Q) planning.

Names are imported on first use (``tint_core.lazy``): the configuration needs ``CostModel`` without torch or scipy.
"""

# ruff: noqa: F401  (the TYPE_CHECKING imports are the lazy exports; ruff cannot read a computed __all__)
from __future__ import annotations

from typing import TYPE_CHECKING

from tint_core.lazy import lazy_exports

_HOMES = {
    "accuracy": ("AccuracySummary", "episode_accuracy", "summarize"),
    "config": ("CostModel",),
    "planner": ("Plan", "plan_evaluation"),
    "variance": ("VarianceDecomposition", "decompose_variance", "predicted_half_width"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from tint_core.evaluation.accuracy import AccuracySummary, episode_accuracy, summarize
    from tint_core.evaluation.config import CostModel
    from tint_core.evaluation.planner import Plan, plan_evaluation
    from tint_core.evaluation.variance import VarianceDecomposition, decompose_variance, predicted_half_width
