"""The pipeline's steps as plain functions over the artifact store (no orchestration here).

Every step has two functions with one signature: ``<step>_keys(store, ...)`` gives the content keys of what it
writes, computed without doing the work, and ``<step>(store, ...)`` returns references to those artifacts, computing
only what the store lacks. Steps take and return ``ArtifactRef``s, never tensors. ``tasks/`` wraps each pair as a
cached Prefect task; ``flows/`` wires them. See docs/pipeline.md.
"""

from tint_core.pipeline.config import (
    METHODS,
    BenchmarkConfig,
    DatasetConfig,
    DistillAppConfig,
    EpisodeConfig,
    EvaluationConfig,
    GeneratorConfig,
    StudentSetup,
    TeacherSetup,
)
from tint_core.pipeline.presets import demo_config

__all__ = [
    "METHODS",
    "BenchmarkConfig",
    "DatasetConfig",
    "DistillAppConfig",
    "EpisodeConfig",
    "EvaluationConfig",
    "GeneratorConfig",
    "StudentSetup",
    "TeacherSetup",
    "demo_config",
]
