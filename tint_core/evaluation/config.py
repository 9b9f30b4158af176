"""The evaluation's configuration models; no torch, no scipy (the pipeline's configuration imports them)."""

from __future__ import annotations

from pydantic import Field

from tint_core.config import TintConfig


class CostModel(TintConfig, title="Cost model"):
    """Cost of an evaluation = E · (per_episode + N · Q · per_query), in any unit (e.g. GPU seconds)."""

    per_episode: float = Field(1.0, gt=0, description="cost of one episode (TI, NTI, generation, distillation)")
    per_query: float = Field(0.0, ge=0, description="cost of classifying one query image")
